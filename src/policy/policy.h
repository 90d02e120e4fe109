/* policy: the modules khd consults when it decides on an allocation, UEM's
 * pluggable policies (docs/policy.md).  khd.conf chooses them, in order;
 * each may refuse a request with a reason before anything is allocated,
 * one of them places the nodes on hosts, and all are told what was
 * allocated and released so they can keep their accounting. */
#ifndef KH_POLICY_H
#define KH_POLICY_H

#include "allocator/alloc.h"
#include "common/sbuf.h"

#include <stdint.h>

enum { POLICY_ALLOW = 0, POLICY_REFUSE = 1 };

#define POLICY_MAX_MODULES 8
#define POLICY_MAX_HOSTS   KH_MAX_HOSTS /* placement's answer: nodes per host */

/* One host of the facility as placement sees it (the facility's hosts, in
 * order: per_host[i] is for hosts[i]). */
struct policy_host {
	const char *name;
	int state;		/* enum host_state */
	int usable;		/* HOST_LOCAL or HOST_UP: its free nodes can be given */
	int free[KH_MAX_TYPES]; /* free nodes of each type there; 0 when not usable */
};

/* The facility's state as a module sees it: read only. */
struct policy_view {
	const struct facility *fac; /* nodes, principals, channels, types */
	const struct policy_host *hosts;
	int nhosts;
	int64_t now_ms; /* wall clock, ms (survives a restart, as channels' times do) */
};

/* The request being decided. */
struct policy_req {
	const char *principal;	    /* its name */
	int pidx;		    /* index in fac->principals; -1: this allocation creates it */
	int count;		    /* nodes asked */
	int type;		    /* index in fac->types */
	const struct get_req *opts; /* domains asked (-n, -p, -i, -x) */
	const char *place;	    /* the principal's placement hint (khget --place): a
				       placement module's name, NULL: none */
};

/* A module.  Every hook but name may be NULL.  m is what create made (the
 * module itself when create is NULL). */
struct policy_module {
	const char *name;
	const char *what; /* one line, for khctl policy */
	void *(*create)(void);
	void (*destroy)(void *m);
	/* A khd.conf line that starts with the module's name; args is the
	 * rest of the line (the module may cut it).  0, or -1 with why. */
	int (*conf)(void *m, char *args, char *why, size_t wlen);
	/* khd starts: rebuild the accounting from the facility's state. */
	void (*start)(void *m, const struct policy_view *v);
	/* POLICY_ALLOW, or POLICY_REFUSE with a one-line reason in why.
	 * Must not change anything: the request may still fail later. */
	int (*decide)(void *m, const struct policy_view *v, const struct policy_req *r, char *why,
		      size_t wlen);
	/* Placement: fill per_host[0..v->nhosts-1] with how many of the
	 * request's nodes go to each host (the sum is r->count).  0, or -1
	 * to pass the choice to the next module with a place hook. */
	int (*place)(void *m, const struct policy_view *v, const struct policy_req *r,
		     int *per_host);
	/* The allocation committed as channel chan. */
	void (*allocated)(void *m, const struct policy_view *v, const struct policy_req *r,
			  int chan);
	/* The principal gave back nodes; channels of its were closed with them. */
	void (*released)(void *m, const struct policy_view *v, const char *principal, int nodes,
			 int channels);
	/* Settings and accounting: text lines each starting with the module's
	 * name, or (json) one JSON value. */
	void (*show)(void *m, const struct policy_view *v, struct sbuf *out, int json);
};

/* The modules there are (policy.c lists them). */
extern const struct policy_module policy_limits, policy_single, policy_pack, policy_spread;

struct policy;

/* An empty chain; without a `policy` line khd.conf gets `limits single`. */
struct policy *policy_new(void);
void policy_free(struct policy *p);
/* A khd.conf line whose first word is word: `policy MODULE...`,
 * `placement hints=yes|no`, or a module's own line.  1 when taken, 0 when word is not the policy's,
 * -1 with why when the line is wrong. */
int policy_conf_line(struct policy *p, int lineno, const char *word, char *args, char *why,
		     size_t wlen);
/* After the whole file: settings for a module left out of the chain are
 * an error ("line N: ..." in err). */
int policy_conf_end(struct policy *p, char *err, size_t errlen);

/* Rebuild every module's accounting from the facility (khd's start). */
void policy_start(struct policy *p, const struct facility *f, int64_t now_ms);
/* Ask every module in order.  POLICY_ALLOW with per_host filled (nodes per
 * host, POLICY_MAX_HOSTS at most), POLICY_REFUSE with "refused by policy
 * MODULE: reason" in why, or -1 with why when a module answered nonsense.
 * Placement: the principal's hint (r->place) when the chain has a
 * placement module and hints are on (the default); else the chain's first
 * placement module that answers; without one, everything on host 0. */
int policy_decide(struct policy *p, const struct facility *f, const struct policy_req *r,
		  int64_t now_ms, int *per_host, char *why, size_t wlen);
void policy_allocated(struct policy *p, const struct facility *f, const struct policy_req *r,
		      int chan, int64_t now_ms);
void policy_released(struct policy *p, const struct facility *f, const char *principal, int nodes,
		     int channels, int64_t now_ms);
/* Is name a placement hint a principal may give (pack, spread)? */
int policy_hint_valid(const char *name);
/* The chain's names separated by sep ("limits single"). */
void policy_names(const struct policy *p, struct sbuf *out, const char *sep, int json);
/* `khctl policy`: the chain, then each module's lines (docs/policy.md). */
void policy_show(struct policy *p, const struct facility *f, int64_t now_ms, struct sbuf *out,
		 int json);
/* Wall clock in ms. */
int64_t policy_now_ms(void);

#endif
