/* proto: the line protocol between the tools and khd (docs/protocol.md).
 * A request is one line "VERB key=value ...", values percent-encoded; a
 * reply is body lines "- text" ended by "ok" or "err CODE message". */
#ifndef KH_PROTO_H
#define KH_PROTO_H

#include "common/sbuf.h"

#include <stddef.h>

#define PROTO_MAX_LINE 8192 /* bytes, newline included */
#define PROTO_MAX_ARGS 32
#define PROTO_MAX_KEY  24
#define PROTO_MAX_VERB 24

struct proto_req {
	char verb[PROTO_MAX_VERB];
	int nargs;
	struct {
		char key[PROTO_MAX_KEY];
		const char *val; /* points into buf */
	} args[PROTO_MAX_ARGS];
	char buf[PROTO_MAX_LINE];
};

/* Parse one request line (without its newline).  On error returns -1 and
 * writes a one-line reason into err. */
int proto_parse(const char *line, size_t len, struct proto_req *req, char *err, size_t errlen);
/* The value of key, or NULL. */
const char *proto_get(const struct proto_req *req, const char *key);

/* Build a request: start it with proto_begin, add arguments, end with
 * proto_end (which appends the newline). */
void proto_begin(struct sbuf *b, const char *verb);
void proto_arg(struct sbuf *b, const char *key, const char *val);
void proto_end(struct sbuf *b);

#endif
