/* billargs: khbill's command line (docs/metering.md "khbill"), turned into
 * what to do and the protocol requests.  Pure, so the unit tests drive it. */
#ifndef KH_BILLARGS_H
#define KH_BILLARGS_H

#include "common/sbuf.h"

#include <stddef.h>
#include <stdint.h>

enum bill_cmd { BILL_USAGE = 1, BILL_EXPORT, BILL_VERIFY, BILL_INVOICE };
enum bill_fmt { BILL_TEXT = 0, BILL_JSON, BILL_CSV };

struct bill_opts {
	int cmd;
	int help;
	const char *socket;   /* --socket PATH */
	const char *user;     /* the principal */
	const char *cred;     /* -c, or $KH_CRED */
	int operator_;	      /* --operator */
	int all;	      /* --all */
	int has_from, has_to; /* --from, --to given */
	uint64_t from, to;    /* unix seconds */
	const char *file;     /* verify: the export */
	const char *out;      /* export: -o FILE */
	const char *key;      /* verify: --key PUBFILE */
	const char *plan;     /* invoice: --plan FILE */
	int fmt;	      /* --json, --csv */
};

extern const char bill_usage_text[];

/* Parse argv (without the program name).  Returns 0, or -1 with a one-line
 * reason in err.  The credential falls back to $KH_CRED. */
int bill_parse(int argc, char *const argv[], struct bill_opts *o, char *err, size_t errlen);

/* A time for --from/--to: unix seconds ("1700000000"), or ISO 8601 in UTC
 * or with an offset: "2024-05-01", "2024-05-01T13:00", "2024-05-01T13:00:05",
 * each optionally followed by "Z", "+02:00", "-0530" (a space may stand for
 * the "T").  Returns 0, or -1 with a reason. */
int bill_parse_time(const char *s, uint64_t *secs, char *err, size_t errlen);

/* The requests: usage; one part of an export or of the records (after: the
 * last seq the client has; max: records per part). */
void bill_req_usage(const struct bill_opts *o, struct sbuf *req);
void bill_req_export(const struct bill_opts *o, uint64_t after, uint64_t max, struct sbuf *req);
void bill_req_records(const struct bill_opts *o, uint64_t after, uint64_t max, struct sbuf *req);

/* Where a file of the facility's directory is when the tool was not told:
 * $KH_DIR/name, else beside the socket (--socket, $KH_SOCKET, or the
 * default).  Returns 0, or -1 when the path would not fit. */
int bill_default_path(const char *sockopt, const char *name, char *buf, size_t len);

/* The seq of an export or record line ("r <principal> <seq> ..."), or 0. */
uint64_t bill_line_seq(const char *line);

#endif
