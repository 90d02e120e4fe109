/* meter: khd's usage sampler (docs/metering.md).  Once a second it reads
 * every allocated node's trusted counters (its cgroup, its interfaces from
 * outside the node, its console as khd relays it), charges what changed to
 * the owning principal as one ledger record, and stores the records and the
 * new baselines in one transaction. */
#ifndef KH_METER_H
#define KH_METER_H

#include "common/sbuf.h"
#include "meter/usage.h"

#include <stddef.h>
#include <stdint.h>

struct khd;
struct node;

#define METER_TICK_MS	 1000
#define METER_SIGN_MS	 60000	    /* a principal's chain head is signed this often */
#define METER_PART_BYTES (4u << 20) /* most bytes of one export or records reply */
/* Records overlapping a range began at most this long before it. */
#define METER_LOOKBACK_MS (86400ULL * 1000)

struct meter_stats {
	uint64_t ticks;
	uint64_t tick_ns_sum, tick_ns_last, tick_ns_max;
	uint64_t read_ns_sum;  /* of which reading counters (cgroups, interfaces) */
	uint64_t nodes_last;   /* nodes sampled by the last tick */
	uint64_t records;      /* records written since khd started */
	uint64_t store_errors; /* ticks whose transaction failed (their usage carried over) */
};

/* Load the ledger key (DIR/ledger.key, made on first start), every chain's
 * head and every principal's totals.  Call after the state is loaded. */
int meter_init(struct khd *k, char *err, size_t errlen);
/* Before leftover node cgroups of a khd that died are cleared (and before
 * its pinned fabric is let go): charge what they used since the last
 * committed sample, their interfaces' traffic included, and node-time up
 * to now. */
void meter_recover(struct khd *k);
/* Meter every allocated node from now on and start the 1 s timer. */
void meter_start(struct khd *k);
/* A last sample of everything (khd stopping), then free. */
void meter_close(struct khd *k);

/* Hooks of machine.c, console.c and the allocator. */
void meter_node_allocated(struct khd *k, const struct node *n);
int meter_releasing(struct khd *k, struct node *const *nodes, int n);
void meter_node_released(struct khd *k, const struct node *n);
/* Read the node's cgroup now: it is about to be killed or reaped. */
void meter_node_sync(struct khd *k, int rank);
/* The node's cgroup is gone (its usage so far is kept for the next tick). */
void meter_node_ended(struct khd *k, int rank);
void meter_console(struct khd *k, int rank, uint64_t in, uint64_t out);

/* Reads for the verbs (docs/protocol.md "Metering").  Times are unix ms;
 * from == to == 0 means all of it.  Return 0, or -1 with err. */
int meter_usage(struct khd *k, int pidx, uint64_t from, uint64_t to, struct usage *out, char *err,
		size_t errlen);
/* Export lines of principal pidx's chain: the header when after is 0, the
 * records (after, after+max] with their block signatures (fewer when the
 * reply would pass METER_PART_BYTES), and, when that reaches the chain's
 * head, the end line (signing the head first when its
 * block is open).  *more is 1 when records are left for another call. */
int meter_export(struct khd *k, int pidx, uint64_t after, uint64_t max, struct sbuf *out, int *more,
		 char *err, size_t errlen);
/* Record lines ("r ...") of pidx overlapping [from, to) with seq > after,
 * at most max; *more as above. */
int meter_records(struct khd *k, int pidx, uint64_t from, uint64_t to, uint64_t after, uint64_t max,
		  struct sbuf *out, int *more, char *err, size_t errlen);
/* The principal's running totals (every committed record), or NULL. */
const struct usage *meter_total(struct khd *k, int pidx);
const struct meter_stats *meter_stats(struct khd *k);
/* The public key in hex (ledger.pub's content without newline). */
void meter_pubkey(struct khd *k, char *hex, size_t len);

#endif
