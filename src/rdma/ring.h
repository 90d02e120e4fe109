/* ring: what libkhrdma and the facility's copy engine share.  A device
 * context is one connection to the node's device socket (/dev/khrdma): a
 * few fixed-size messages on it (open, register, deregister), and one ring
 * memfd made and sealed by the engine holding a submission queue (the node
 * writes descriptors) and a completion queue (the engine writes results).
 * The node can write anything anywhere in the ring: the engine reads only
 * sq_tail, cq_head, waiting and the descriptors from it, each once, and
 * checks them before use; what it writes it never reads back. */
#ifndef KH_RDMA_RING_H
#define KH_RDMA_RING_H

#include <stdint.h>

#define KHR_PROTO      1
#define KHR_SQ_DEPTH   256 /* descriptors in flight per context */
#define KHR_CQ_DEPTH   256 /* one completion per descriptor */
#define KHR_RING_HDR   4096
#define KHR_SQ_OFF     KHR_RING_HDR
#define KHR_CQ_OFF     (KHR_SQ_OFF + KHR_SQ_DEPTH * 64)
#define KHR_RING_SIZE  (KHR_CQ_OFF + KHR_CQ_DEPTH * 32)
#define KHR_IFNAMSIZ   16
#define KHR_MAX_OP_LEN (1u << 30) /* one operation moves at most 1 GiB */
#define KHR_HOST_LOCAL 0	  /* a descriptor's host: this host's engine */

/* Descriptor, 64 bytes, one cache line.  The requester is the context it
 * was posted on, never a field of its own. */
struct khr_sqe {
	uint8_t op;	/* enum khrdma_opcode */
	uint8_t flags;	/* 0 */
	uint16_t host;	/* target host (KHR_HOST_LOCAL) */
	uint32_t rank;	/* target node */
	uint64_t wr_id; /* returned in the completion */
	uint64_t rkey;	/* the target's region */
	uint64_t roff;	/* offset in it */
	uint64_t loff;	/* offset in the local region */
	uint32_t lkey;	/* the local region (this context's) */
	uint32_t len;	/* bytes (8 for the atomics) */
	uint64_t arg0;	/* CAS: compare; FADD: addend */
	uint64_t arg1;	/* CAS: swap */
};

/* Completion, 32 bytes. */
struct khr_cqe {
	uint64_t wr_id;
	int32_t status; /* enum khrdma_status */
	uint8_t op;
	uint8_t pad[3];
	uint32_t len; /* bytes moved */
	uint32_t pad2;
	uint64_t result; /* atomics: the value before */
};

/* The ring's first page.  Each party's words sit on their own cache lines,
 * so polling one side does not bounce the other's. */
struct khr_ring_hdr {
	uint32_t sq_tail; /* node: descriptors posted */
	uint32_t pad0[15];
	uint32_t cq_head; /* node: completions consumed */
	uint32_t waiting; /* node: 1 = blocked on its completion eventfd */
	uint32_t pad1[14];
	uint32_t sq_head; /* engine: descriptors taken */
	uint32_t pad2[15];
	uint32_t cq_tail; /* engine: completions written */
	uint32_t asleep;  /* engine: 1 = ring the doorbell to wake it */
	uint32_t pad3[14];
};

/* Messages on the device socket (SOCK_SEQPACKET, one per request). */
enum khr_msg { KHR_M_OPEN = 1, KHR_M_REG, KHR_M_DEREG, KHR_M_FENCE };

struct khr_req {
	uint32_t type;
	uint32_t proto;		   /* KHR_PROTO */
	char ifname[KHR_IFNAMSIZ]; /* OPEN */
	uint64_t off, len;	   /* REG: the range of the memfd that rides along */
	uint64_t key;		   /* DEREG */
	uint32_t access;	   /* REG: KHRDMA_REMOTE_* */
	uint32_t pad;
};

struct khr_rep {
	uint32_t type;
	int32_t status; /* enum khrdma_status; msg says why */
	uint64_t key;	/* REG: the remote key */
	uint32_t lkey;	/* REG: the local key */
	uint32_t rank;	/* OPEN: this node, its domain and address in it */
	uint32_t netid;
	uint32_t slot;	 /* eth<slot> */
	uint32_t host;	 /* this host's id (0: the only one) */
	uint32_t net4;	 /* the domain's IPv4 network, host order */
	uint32_t prefix; /* its prefix length */
	uint32_t sq_depth, cq_depth, ring_size;
	char msg[120];
};

#endif
