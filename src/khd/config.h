/* config: the facility's configuration file, DIR/khd.conf:
 *	host NAME		(this host's name, for control blocks)
 *	host NAME IP:PORT	(a host of the facility, its agent there; docs/policy.md)
 *	state sqlite | postgresql:CONNINFO | postgresql://URI
 *	on_stop keep|stop    (what SIGTERM does with running nodes; default stop)
 *	cluster_key FILE     (the key the hosts' agents hold; docs/hosts.md)
 *	type NAME [backend=ct] [cpus=1] [mem=256M] [pids=512] [ifs=8] [count=64]
 *	policy MODULE...		(src/policy, docs/policy.md)
 *	MODULE settings...		(e.g. limits * max_nodes=64)
 * The first type is the default one (khget without -t, khd --nodes). */
#ifndef KH_CONFIG_H
#define KH_CONFIG_H

#include "allocator/facility.h"

#include <stddef.h>

struct policy;

struct config {
	char host[256];
	char state[1024]; /* the state backend's spec (state.h); empty: sqlite */
	int on_stop_keep; /* on_stop keep: SIGTERM leaves running nodes running */
	char cluster_key[1024]; /* cluster_key: its path (relative: to khd's directory) */
	struct node_type types[KH_MAX_TYPES];
	int ntypes;
	/* host NAME ADDR lines, in order; none: the facility is this host.
	 * Each type's count is per host. */
	struct fac_host hosts[KH_MAX_HOSTS];
	int nhosts;
	struct policy *policy; /* the policy chain; config_free frees it */
};

/* The built-in type: ct1, 1 CPU, 256 MiB, 512 pids, 8 interfaces. */
void config_default_type(struct node_type *t, int count);
/* Is spec a state backend's spec (the form only: the server is tried
 * when khd opens it)?  0, or -1 with why. */
int config_state_check(const char *spec, char *why, size_t len);
/* Is addr an agent's address, IPv4:PORT?  0 or -1. */
int config_addr_check(const char *addr);
/* Parse text (a whole file).  Returns 0, or -1 with "line N: reason" (and
 * nothing to free). */
int config_parse(const char *text, struct config *c, char *err, size_t errlen);
/* Read path; a missing file is an empty configuration (returns 0). */
int config_load(const char *path, struct config *c, char *err, size_t errlen);
/* What a parsed configuration holds besides itself (its policy). */
void config_free(struct config *c);

#endif
