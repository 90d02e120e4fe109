/* userns: container nodes in user namespaces of their own.  Root in a node
 * is an unprivileged uid on the host: each node gets USERNS_IDS host uids
 * (and the same gids) of its own, from a base far above /etc/subuid's. */
#ifndef KH_USERNS_H
#define KH_USERNS_H

#include <stddef.h>
#include <stdint.h>

#define USERNS_IDS	    65536u	/* uids (and gids) of one node: 0-65535 inside */
#define USERNS_RANKS	    4096	/* ranges [0, RANKS): nodes without a fabric, by rank */
#define USERNS_SLOTS	    16384	/* ranges after those: the fabric's namespaces, in turn */
#define USERNS_BASE_DEFAULT 0x40000000u /* 2^30: 1073741824 */

/* The host's ranges: range i is base + i * USERNS_IDS, for
 * USERNS_RANKS + USERNS_SLOTS ranges (up to base + 2^30 + 2^28). */
struct userns_pool {
	int on;			    /* 0: nodes run as host root (KH_USERNS=off) */
	uint32_t base;		    /* host uid of range 0's root */
	uint32_t next;		    /* the slot to try first */
	uint32_t ino[USERNS_SLOTS]; /* slot i: its user namespace (inode), 0: free */
};

/* Read KH_USERNS (off: no user namespaces) and KH_USERNS_BASE, and refuse a
 * base whose ranges overlap /etc/subuid or /etc/subgid.  Returns 0 or -1
 * with err. */
int userns_init(struct userns_pool *u, char *err, size_t errlen);

struct node_host;
struct node_spec;
struct ct_req;
/* For the fabric (fabric_set_netns_maker; arg is the node_host): a new
 * network namespace owned by a new user namespace with a free range of
 * its own.  Returns its descriptor, or -1 with err. */
int userns_fabric_make(void *arg, char *err, size_t errlen);
/* The fabric is done with netns: its range is free again. */
void userns_fabric_drop(void *arg, int netns);

/* A node adopted from an earlier khd runs in netns (one the fabric made
 * for a user namespace), its first process pid: mark its range as taken,
 * so no new node gets it.  Returns 0, or -1 when its range is not one of
 * ours (nothing marked). */
int userns_adopt(struct node_host *host, int netns, int pid);

/* ct_boot's part: set rq->idbase (0 when user namespaces are off).  A node
 * whose *netns is -1 (no fabric) gets a network namespace of its rank's
 * range, in *netns and *own (the caller closes it).  Returns 0 or -1. */
int userns_node(struct node_host *host, const struct node_spec *s, struct ct_req *rq, int *netns,
		int *own, char *err, size_t errlen);

/* The host uid of node root for a node of rank in netns (-1: none, the
 * rank's range); 0 when user namespaces are off or netns is not one the
 * fabric made for a user namespace.  A vm node's QEMU runs as this uid. */
uint32_t userns_base_of(struct node_host *host, int rank, int netns);

/* In the spawner: a user namespace mapping 0-65535 to idbase and up, and a
 * network namespace it owns.  Returns the pid of the (reaped) process that
 * made them and the netns's descriptor in *netns, or -1 with errno. */
int userns_make(uint32_t idbase, int *netns);

/* In a node's first process, still host root: the user namespace owning
 * netns (a descriptor), and lower as an idmapped mount for it (host uid k
 * shows as k inside).  -1 with errno. */
int userns_of(int netns);
int userns_idmapped(const char *lower, int userns);
/* Become root of userns (already the owner of the node's other
 * namespaces' network).  -1 with errno. */
int userns_enter(int userns);

#endif
