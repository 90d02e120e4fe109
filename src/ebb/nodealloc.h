/* nodealloc: the NodeAllocator (docs/ebb.md): grows and shrinks the set
 * of nodes an EBB application runs on.  A backend gives nodes: "kh" asks
 * the facility (khget, then loads and boots the application's own
 * appliance with khdo, all through $KH_SOCKET, which in a node of the
 * public domain is the service interface); "local" starts the program as
 * processes on this host, each a node on loopback. */
#ifndef KH_EBB_NODEALLOC_H
#define KH_EBB_NODEALLOC_H

#include <stddef.h>
#include <stdint.h>

struct nodealloc;

struct nodealloc_conf {
	const char *backend; /* "local" or "kh" */
	/* local: the program and its arguments; "%n" in one becomes the new
	 * node's number, "%p" a free port for its messenger */
	char *const *argv;
	/* kh: principal, credential, the appliance to boot, the private
	 * domain the nodes join, and the command typed on a booted node's
	 * console: "%r" the new nodes' numbers by rank (LO-HI=N,...: see
	 * nodealloc_rank_node), or "%n" its number and "%a" its address in
	 * that domain (a longer script, found by the shell on each node) */
	const char *user, *cred, *appliance, *cmd;
	int netid;
};

struct nodealloc *nodealloc_new(const struct nodealloc_conf *c, char *err, size_t errlen);
void nodealloc_free(struct nodealloc *a);
/* Start node n.  Returns 0 and its messenger's address ("IP:PORT") in
 * addr, or -1 with err.  The node is running once this returns; it joins
 * by itself. */
int nodealloc_grow(struct nodealloc *a, uint16_t n, char *addr, size_t len, char *err,
		   size_t errlen);
/* Start nodes first..first+count-1 at once (kh: one allocation, one
 * broadcast load and boot).  addrs[i] gets node first+i's messenger
 * address.  All or nothing: on error none of them stays. */
int nodealloc_grow_many(struct nodealloc *a, uint16_t first, int count, char (*addrs)[64],
			char *err, size_t errlen);
/* The steps of the last successful grow with their times, e.g. "64 nodes:
 * khget 32 ms, load 112 ms, boot+start 645 ms (typed 46 ms, node 1 up 404
 * ms)" ("" for the local backend). */
const char *nodealloc_steps(const struct nodealloc *a);
/* A kh node's number, from its hostname (kh<facility>-n<rank>) and the
 * runs of ranks a grow typed for "%r": "LO-HI=N[,LO-HI=N]...", rank LO
 * is node N, LO+1 node N+1 ...  Returns it, or -1 (a bad list, or no
 * rank of the list in the hostname). */
int nodealloc_rank_node(const char *runs, const char *hostname);
/* Give node n back (stop it).  Returns 0 or -1. */
int nodealloc_shrink(struct nodealloc *a, uint16_t n);

#endif
