/* khd: the service daemon's one context.  Everything khd knows lives here
 * (STYLE.md: no global mutable state outside this struct). */
#ifndef KH_KHD_H
#define KH_KHD_H

#include "admission/admission.h"
#include "allocator/alloc.h"
#include "allocator/facility.h"
#include "khd/ev.h"

#include <limits.h>

#include "common/version.h"

struct conn;

struct khd {
	struct facility fac;
	struct admission adm;
	struct ev *ev;
	char dir[PATH_MAX];
	char sock[108];
	int lfd;
	int sigfd;
	struct conn *conns;
	int nconns;
	uint64_t started_ns;
};

/* server.c */
int server_listen(struct khd *k, char *err, size_t errlen);
void server_close(struct khd *k);

/* verbs.c: run one request; the reply goes into out. */
struct proto_req;
struct sbuf;
/* Returns 0 when done; >0 (nanoseconds) when the request must wait that
 * long before it is looked at again (throttled principal). */
uint64_t verbs_dispatch(struct khd *k, const struct proto_req *req, struct sbuf *out);

#endif
