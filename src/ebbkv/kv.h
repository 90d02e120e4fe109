/* ebbkv: an elastic key-value service speaking memcached's text protocol
 * (get, gets, set, add, replace, delete, version, stats, quit), built from
 * libebb's EBBs (docs/ebb.md): the entries in the partitioned hash table
 * EBB, the request count in the counter EBB, nodes from the
 * NodeAllocator.  Clients talk to the door (node 0) only; when the
 * requests per second per node pass a threshold the door grows the set of
 * nodes and moves a share of the keys to the new one, and when they fall
 * it gives nodes back, moving their keys home first. */
#ifndef KH_EBBKV_H
#define KH_EBBKV_H

#include <stddef.h>
#include <stdint.h>

#include "ebb/nodealloc.h"

struct kv_conf {
	const char *listen; /* the door: clients' address (NULL: 0.0.0.0) */
	int port;	    /* the door's port (node 0 only) */
	unsigned cores;
	uint16_t node;	  /* 0: the door; others hold entries */
	const char *msg;  /* this node's messenger address "IP:PORT" */
	const char *home; /* a node other than 0: the door's messenger */
	double grow_rps;  /* requests/s per node above which it grows (0: never) */
	double shrink_rps;
	int max_nodes;
	int grow_step; /* nodes added by one decision to grow (0: 1) */
	int pin;       /* each core's loop on its own CPU (libebb's ebb_conf.pin) */
	struct nodealloc_conf alloc;
};

/* Serve until SIGTERM or SIGINT.  Returns 0, or -1 with err. */
int kv_run(const struct kv_conf *c, char *err, size_t errlen);

#endif
