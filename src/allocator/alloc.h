/* alloc: the allocator.  Hands nodes of the free pool to principals, makes
 * and joins communication domains, keeps channels; every change is all or
 * nothing: it is written to the state store in one transaction and applied
 * to the in-memory model only after that transaction committed. */
#ifndef KH_ALLOC_H
#define KH_ALLOC_H

#include "allocator/facility.h"
#include "common/sbuf.h"

enum alloc_code {
	AE_OK = 0,
	AE_BADARG,
	AE_AUTH,
	AE_NONODES,
	AE_NOTFOUND,
	AE_PERM,
	AE_INTERNAL,
	AE_BUSY,
	AE_POLICY /* a policy module refused (src/policy); the allocator never answers it */
};

struct alloc_result {
	int code;
	char msg[256];
};

/* Called after a committed change so node backends and the fabric can act
 * on it.  Any hook may be NULL. */
struct alloc_hooks {
	void *arg;
	void (*released)(void *arg, struct node *n); /* node went back to the pool */
	void (*reset)(void *arg, struct node *n);
	void (*netchanged)(void *arg, struct node *n); /* interfaces changed */
	void (*allocated)(void *arg, struct node *n);
	/* Inside the release's transaction, before it commits: the meter's
	 * final sample of the nodes goes into the same transaction.  -1 fails
	 * the release (nothing changes). */
	int (*releasing)(void *arg, struct node *const *nodes, int n);
};

struct get_req {
	int count;
	int netids[KH_MAX_IFS]; /* -n: existing private domains */
	int nnetids;
	int newnets; /* -p: new private domains; -1 when not given */
	int pub;     /* -i */
	int ext;     /* -x */
	int type;    /* index into facility.types */
	/* Placement (policy_decide): per_host[h] nodes on f->hosts[h], each
	 * host's lowest free ranks of the type; nper_host must be f->nhosts
	 * and the sum count.  NULL: the lowest free ranks on usable hosts. */
	const int *per_host;
	int nper_host;
};

/* Allocate.  pidx is the principal, or -1 with newp the principal to
 * create along with the allocation.  On success *chan is the new channel. */
int alloc_get(struct facility *f, int pidx, const struct principal *newp, const struct get_req *r,
	      int *chan, struct alloc_result *res);
int alloc_release(struct facility *f, int pidx, const int *ranks, int n, struct alloc_result *res);
int alloc_addnet(struct facility *f, int pidx, int netid, const int *ranks, int n,
		 struct alloc_result *res);
int alloc_rmnet(struct facility *f, int pidx, int netid, const int *ranks, int n,
		struct alloc_result *res);
int alloc_reset(struct facility *f, int pidx, const int *ranks, int n, struct alloc_result *res);
int alloc_transfer(struct facility *f, int pidx, int chan, const char *credhash,
		   struct alloc_result *res);
int alloc_addkey(struct facility *f, int pidx, const char *line, struct alloc_result *res);
/* A key registered by whoever holds channel chan's transferred credential
 * (the caller checked that credential). */
int alloc_addkey_chan(struct facility *f, int chan, const char *line, struct alloc_result *res);
/* Whether key k opens channel c over ssh: the owner's keys until the
 * channel is transferred, from then on only the keys its holder added. */
int alloc_key_opens(const struct channel *c, const struct sshkey *k);
/* Change the node's state (monitor/running) durably. */
int alloc_set_state(struct facility *f, struct node *n, int state);

/* The ranks of channel chan, which pidx must own.  *ranks is malloc'd. */
int alloc_chan_ranks(struct facility *f, int pidx, int chan, int **ranks, int *n,
		     struct alloc_result *res);
/* isAllowed(a, b): the two nodes share a domain. */
int alloc_allowed(const struct facility *f, const struct node *a, const struct node *b);
struct node *fac_node(struct facility *f, int rank);
const struct node *fac_node_const(const struct facility *f, int rank);
/* The control block of channel chan, as khget prints it (or as JSON). */
void alloc_block(struct facility *f, int chan, struct sbuf *out, int json);
/* The address a principal uses to reach n (nodeinfo field 3), or "-". */
void alloc_node_addr(const struct node *n, char *buf, size_t len);
void alloc_uni(const struct facility *f, const struct node *n, char *buf, size_t len);

/* Make the pool match the configured types: add nodes, drop free ones from
 * the top.  Called at start, before any request.  The facility is one
 * host, HOST_LOCAL, named f->host (set it first). */
int alloc_pool(struct facility *f, const struct node_type *types, int ntypes,
	       struct alloc_result *res);
/* The same for a facility of nhosts hosts (khd.conf's host lines; 0: as
 * alloc_pool).  Every host gets every type, each type's count per host;
 * ranks go host-major (host 0's nodes, in type order, then host 1's...),
 * so hosts[h] holds ranks h*P .. h*P+P-1 with P the nodes per host.  A
 * stored node whose rank the layout gives another type, or no longer
 * has, is dropped when free; when allocated the whole change is refused
 * (AE_BUSY, nothing changed).  Hosts start HOST_DOWN (a host already
 * known with the same name and address keeps its state). */
int alloc_pool_hosts(struct facility *f, const struct node_type *types, int ntypes,
		     const struct fac_host *hosts, int nhosts, struct alloc_result *res);
/* Recompute the derived counts (domain members, channel nodes). */
void alloc_recount(struct facility *f);
/* Create the external and public domains if missing. */
int alloc_init_domains(struct facility *f, struct alloc_result *res);

#endif
