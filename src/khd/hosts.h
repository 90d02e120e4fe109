/* hosts: khd as the front end of a facility over several hosts
 * (docs/hosts.md).  The nodes of a host with an agent are booted, fed and
 * stopped through src/agent's links; their monitors, memory, channels,
 * metering and state stay here.  machine.c asks hosts_remote() of a node
 * and hands such nodes here. */
#ifndef KH_HOSTS_H
#define KH_HOSTS_H

#include "fabric/fabric.h"
#include "nodes/node.h"

#include <stddef.h>
#include <stdint.h>

struct khd;
struct machine;
struct node;
struct blob;

/* With host lines in khd.conf: the cluster key (khd.conf cluster_key) and
 * a link to each agent.  Without: nothing.  Returns 0, or -1 with err. */
int hosts_init(struct khd *k, char *err, size_t errlen);
void hosts_close(struct khd *k);
/* The host of rank when an agent runs it, else -1 (the front end's own). */
int hosts_remote(const struct khd *k, int rank);
/* The node's host is lost: it is not metered and not reachable. */
int hosts_lost(const struct khd *k, int rank);

/* Boot m's node from ramdisk b on its host.  0, or -1 with err. */
int hosts_boot(struct machine *m, struct blob *b, char *err, size_t errlen);
void hosts_input(struct machine *m, const void *p, size_t n);
/* Stop the node there; m is back in the monitor at once. */
void hosts_stop(struct machine *m);
void hosts_wire(struct khd *k, const struct node *n);
void hosts_released(struct khd *k, int rank);
/* The last usage figures its agent sent: 0 (hosts_counters: how many
 * interfaces), or -1 when it has sent none since the boot or restart. */
int hosts_stats(struct khd *k, int rank, struct node_stats *st);
int hosts_counters(struct khd *k, int rank, struct fabric_ifstats *out, int max);
/* Bytes sent to host's agent since khd started (a broadcast crosses once). */
uint64_t hosts_sent(const struct khd *k, int host);

#endif
