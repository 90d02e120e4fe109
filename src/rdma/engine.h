/* engine: the facility's copy engine, the part of the RDMA device that
 * checks and executes one-sided operations.  It knows nodes (their domain
 * per interface slot), endpoints (one per device context a node opened,
 * each with its ring) and regions (sealed memfds mapped here, never in a
 * peer).  Everything a node wrote is copied before it is checked; every
 * operation is checked when it runs; revocation (deregistration, a node
 * leaving a domain, its reset, release or end) takes effect for every
 * operation the engine looks at afterwards.  Single-threaded: the engine
 * process (rdmad.c) calls it from one loop; unit tests call it directly. */
#ifndef KH_RDMA_ENGINE_H
#define KH_RDMA_ENGINE_H

#include "rdma/ring.h"

#include <stddef.h>
#include <stdint.h>

#define RE_MAX_NODES 4092 /* ranks 0..RE_MAX_NODES-1 (the address plan's) */
#define RE_MAX_IFS   16

/* What a node's operations moved in one domain, since the last take. */
struct re_usage {
	uint32_t rank;
	uint32_t netid;
	uint64_t ops; /* operations completed (failed ones included) */
	uint64_t rd;  /* bytes read from peers (an atomic: 8) */
	uint64_t wr;  /* bytes written to peers (an atomic: 8) */
};

/* Facility-wide counters (the OpenMetrics endpoint), kept by the engine in
 * memory khd can read at any time (monotonic; khd only reads). */
struct re_stats {
	uint64_t ops[5]; /* by opcode; [0]: malformed */
	uint64_t bytes_rd, bytes_wr;
	uint64_t errors;
	uint64_t wakeups;  /* times the engine left its sleep */
	uint64_t contexts; /* device contexts open now */
	uint64_t regions;  /* regions registered now */
	uint64_t reg_bytes;
};

struct rdma_engine;
struct re_ep;

/* host: this host's id in descriptors (0 is always local too); stats:
 * where the engine keeps its counters (NULL: its own). */
struct rdma_engine *re_new(uint32_t host, struct re_stats *stats);
void re_free(struct rdma_engine *e);

/* Node rank's domains by interface slot (0: none there), its address plan
 * and its limit on registered bytes (0: none).  A slot whose domain
 * changed revokes the endpoints opened on it and their regions.  Returns
 * 0, or -1 for a rank out of range. */
int re_node_set(struct rdma_engine *e, int rank, const uint32_t *netids, int n, uint64_t reg_limit);
/* The node ended, was reset or released: everything of it is revoked and
 * it has no domain until re_node_set.  Its usage is kept for re_take. */
void re_node_drop(struct rdma_engine *e, int rank);
/* Forget the node's usage not yet taken (its node was released). */
void re_node_discard(struct rdma_engine *e, int rank);
/* Move up to max usage records (one per node and domain that moved
 * anything since the last take) into out and zero them.  Returns how many
 * (call again while it returns max). */
int re_take(struct rdma_engine *e, struct re_usage *out, int max);

/* Open a device context of node rank on interface ifname ("eth<slot>").
 * ring: the context's ring, KHR_RING_SIZE bytes, shared with the node.
 * rep is filled for the node (status, msg on failure).  Returns the
 * endpoint, or NULL. */
struct re_ep *re_ep_open(struct rdma_engine *e, int rank, const char *ifname, void *ring,
			 struct khr_rep *rep);
/* Close it: its regions are revoked and unmapped. */
void re_ep_close(struct rdma_engine *e, struct re_ep *ep);
/* 1 while the endpoint may still run operations. */
int re_ep_alive(const struct re_ep *ep);
int re_ep_rank(const struct re_ep *ep);

/* Register len bytes at off of the memfd fd (the caller keeps fd) with the
 * remote permissions access.  The memfd must be sealed against shrinking
 * (so the engine can never fault on it), fully allocated, not hugetlb.
 * Returns 0 with the keys in rep, or a khrdma_status with rep->msg. */
int re_reg(struct rdma_engine *e, struct re_ep *ep, int fd, uint64_t off, uint64_t len,
	   uint32_t access, struct khr_rep *rep);
/* Revoke key (one of ep's regions).  Returns 0 or KHRDMA_E_KEY. */
int re_dereg(struct rdma_engine *e, struct re_ep *ep, uint64_t key);

/* Run up to budget bytes of ep's posted operations (at least one
 * operation if any is posted).  Returns the number of descriptors taken or
 * continued (0: nothing to do), or -1 when the ring was found corrupt (the
 * endpoint is then dead: its node broke it).  *signal is set to 1 when the
 * node asked to be woken and completions were written. */
int re_service(struct rdma_engine *e, struct re_ep *ep, size_t budget, int *signal);
/* 1 when ep has posted descriptors or an operation in progress. */
int re_pending(const struct re_ep *ep);
/* Tell every ring whether the engine sleeps (doorbells wanted). */
void re_ep_set_asleep(struct re_ep *ep, int asleep);

/* A fence: every operation taken from a ring before re_fence_ticket was
 * called has completed once re_fence_done(ticket) says 1.  (Only a large
 * operation, done in pieces, can be in progress between service calls.) */
uint64_t re_fence_ticket(const struct rdma_engine *e);
int re_fence_done(const struct rdma_engine *e, uint64_t ticket);

/* The check alone, for tests: what re_service would complete sqe with, on
 * endpoint ep (0 = it would run). */
int re_check(struct rdma_engine *e, struct re_ep *ep, const struct khr_sqe *sqe);

#endif
