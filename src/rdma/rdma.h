/* rdma: khd's side of the nodes' one-sided memory device (docs/rdma.md).
 * khd runs the copy engine as a separate process (rdmad.c) and tells it
 * what it must enforce: which nodes run, in which domains, and when
 * something is revoked.  A booted node finds its device at /dev/khrdma, a
 * socket only it can reach.  Every call returns quickly; revocations are
 * pipelined and rdma_sync waits until the engine has applied them all. */
#ifndef KH_RDMA_H
#define KH_RDMA_H

#include "rdma/engine.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct rdma;

/* Start the engine; node sockets live in DIR/run/rdma.  log: the file the
 * engine appends its warnings to.  Returns NULL with err. */
struct rdma *rdma_start(const char *dir, const char *log, char *err, size_t errlen);
/* Stop the engine (every device closes). */
void rdma_stop(struct rdma *r);
/* khd stops and leaves nodes running: the engine keeps their devices,
 * contexts, regions and untaken usage for the next khd, whose rdma_start
 * attaches to it (docs/rdma.md, "khd restarts"). */
void rdma_leave(struct rdma *r);
/* After rdma_start attached to such an engine: node rank was adopted with
 * domains netids[0..n); its device goes on.  -1 when the engine kept no
 * device for it. */
int rdma_node_adopt(struct rdma *r, int rank, const int *netids, int n);
/* Every kept device no node was adopted for is revoked and removed.
 * Returns how many. */
int rdma_adopt_done(struct rdma *r);

/* Node rank boots with domains netids[0..n) by interface slot: its device
 * socket is made and handed to the engine.  path receives the socket's
 * path, to be bound at the node's /dev/khrdma.  reg_limit: most bytes its
 * regions may hold (its memory).  Returns 0, or -1 with err (the node then
 * boots without a device). */
int rdma_node_boot(struct rdma *r, int rank, const int *netids, int n, uint64_t reg_limit,
		   char *path, size_t pathlen, char *err, size_t errlen);
/* Its domains changed (addnet, rmnet): what left is revoked. */
void rdma_node_set(struct rdma *r, int rank, const int *netids, int n);
/* It ended, was reset or released: everything of it is revoked, its
 * socket removed.  Its usage stays for the next take. */
void rdma_node_end(struct rdma *r, int rank);
/* Its usage not yet taken is forgotten (released: billing ended). */
void rdma_node_discard(struct rdma *r, int rank);
/* Wait until the engine has applied everything sent so far.  A dead or
 * stuck engine is replaced (every device closes).  Returns 0 or -1. */
int rdma_sync(struct rdma *r);
/* Take the usage every node's operations accumulated since the last take:
 * fn once per (node, domain).  Returns 0 or -1. */
int rdma_take(struct rdma *r, void (*fn)(void *arg, const struct re_usage *u), void *arg);
/* Facility-wide counters (zero when there is no engine). */
void rdma_stats(const struct rdma *r, struct re_stats *out);
/* The engine's pid (benchmarks pin it), or 0. */
pid_t rdma_engine_pid(const struct rdma *r);
/* The descriptor to watch for the engine's end (readable when it dies or
 * answers); it changes when the engine is replaced.  -1: none. */
int rdma_fd(const struct rdma *r);

#endif
