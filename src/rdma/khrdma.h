/* khrdma.h: the facility's one-sided memory device, for software in nodes
 * (libkhrdma).  Verbs-shaped: open the device of one domain interface,
 * register memory regions with remote permissions, post one-sided READ,
 * WRITE, compare-and-swap and fetch-and-add to a peer's region, and poll or
 * wait for completions.  The facility executes every operation and checks
 * it when it runs: both nodes in the domain, the key live, the range inside
 * the region, the permission given.  docs/rdma.md has the whole story and
 * a complete example program.
 *
 * Thread safety: a device context is used by one thread at a time (open
 * one per thread); regions and contexts are independent objects. */
#ifndef KHRDMA_H
#define KHRDMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Remote permissions of a region (registering always allows local use). */
#define KHRDMA_REMOTE_READ   1
#define KHRDMA_REMOTE_WRITE  2
#define KHRDMA_REMOTE_ATOMIC 4

enum khrdma_opcode { KHRDMA_READ = 1, KHRDMA_WRITE = 2, KHRDMA_CAS = 3, KHRDMA_FADD = 4 };

/* Completion status (and the value khrdma calls return when negative). */
enum khrdma_status {
	KHRDMA_OK = 0,
	KHRDMA_E_KEY = 1,	  /* remote access: no such key, or revoked */
	KHRDMA_E_RANGE = 2,	  /* remote access: outside the region */
	KHRDMA_E_PERM = 3,	  /* remote access: the region does not permit it */
	KHRDMA_E_NOT_MEMBER = 4,  /* the peer is not in this domain (any more) */
	KHRDMA_E_REVOKED = 5,	  /* this context lost its domain (rmnet, reset) */
	KHRDMA_E_LOCAL = 6,	  /* the local key or range is wrong */
	KHRDMA_E_BADDESC = 7,	  /* malformed: opcode, length, alignment */
	KHRDMA_E_UNREACHABLE = 8, /* the target host has no engine here */
	KHRDMA_E_NODEV = 9,	  /* no device in this node, or no such interface */
	KHRDMA_E_FULL = 10,	  /* the queue is full: poll completions first */
	KHRDMA_E_LIMIT = 11,	  /* too much registered memory, too many regions */
	KHRDMA_E_SYS = 12,	  /* a system call failed (errno says which) */
	KHRDMA_E_TIMEOUT = 13,	  /* khrdma_wait: nothing completed in time */
	KHRDMA_E_DEAD = 14,	  /* the facility closed the device */
};

typedef struct khrdma_dev khrdma_dev;

/* A peer in the device's domain: its node's rank, on a host of the
 * facility (0: the host this node runs on). */
struct khrdma_peer {
	uint32_t host;
	uint32_t rank;
};

/* A registered region.  key is what peers name it by (give it to them by
 * any means); lkey names it as a local buffer of this context. */
struct khrdma_mr {
	khrdma_dev *dev;
	void *addr;
	size_t len;
	uint64_t key;
	uint32_t lkey;
	int access;
};

struct khrdma_wc {
	uint64_t wr_id;
	int status;	 /* enum khrdma_status */
	int opcode;	 /* enum khrdma_opcode */
	uint32_t len;	 /* bytes moved */
	uint64_t result; /* CAS, FADD: the remote value before the operation */
};

struct khrdma_info {
	char ifname[16];
	uint32_t rank;	/* this node */
	uint32_t netid; /* the domain */
	uint32_t host;	/* this node's host */
	char addr[16];	/* this node's IPv4 address in the domain */
	int sq_depth;	/* most operations in flight */
};

/* Open the device of domain interface ifname ("eth1").  path is the
 * device socket (NULL: $KHRDMA_DEVICE, else /dev/khrdma).  NULL on error:
 * khrdma_last_error() says why (one line). */
khrdma_dev *khrdma_open(const char *ifname, const char *path);
/* Close: every region of the context is deregistered, in-flight
 * operations are dropped. */
void khrdma_close(khrdma_dev *d);
int khrdma_query(khrdma_dev *d, struct khrdma_info *info);
/* The reason of the last failed call of this thread. */
const char *khrdma_last_error(void);
const char *khrdma_strerror(int status);

/* Memory the device can use without copying: len bytes, page-aligned,
 * zeroed.  NULL on error. */
void *khrdma_alloc(khrdma_dev *d, size_t len);
void khrdma_free(khrdma_dev *d, void *p, size_t len);

/* Register [addr, addr+len) with the remote permissions in access.  Memory
 * from khrdma_alloc registers as it is; other anonymous read-write memory
 * (the heap, a private mapping) is moved, page by page, onto shared memory
 * in place (its contents kept, its address unchanged).  NULL on error. */
struct khrdma_mr *khrdma_reg_mr(khrdma_dev *d, void *addr, size_t len, int access);
/* Register len bytes at off of a memfd the caller made and mapped at addr
 * (sealed against shrinking, its pages allocated): for memory a program
 * manages itself, registered without being moved.  NULL on error. */
struct khrdma_mr *khrdma_reg_fd(khrdma_dev *d, int fd, uint64_t off, size_t len, void *addr,
				int access);
/* Revoke and forget the region: once this returns, no peer operation
 * reaches it (they complete with KHRDMA_E_KEY).  The memory stays. */
int khrdma_dereg_mr(struct khrdma_mr *mr);

/* Return once every operation that the facility had begun, on any device
 * context of any node, when this was called has completed.  A program
 * that frees memory its peers may be reading calls it before reusing that
 * memory: no read that began before the free can then see the new bytes
 * (khmcd does this; docs/mc.md).  0 or a negative khrdma_status. */
int khrdma_fence(khrdma_dev *d);

/* A peer named by its address in the device's domain ("10.0.48.7") or by
 * its rank ("7", "#7").  Returns 0 or a negative khrdma_status. */
int khrdma_peer(khrdma_dev *d, const char *name, struct khrdma_peer *out);

/* Post one operation; its completion carries wr_id.  READ copies len bytes
 * from the peer's region (rkey, roff) into the local region (mr, loff);
 * WRITE the other way; CAS and FADD act on the 8 aligned bytes at roff and
 * store the value before in the local region's 8 bytes at loff (and in the
 * completion).  Returns 0, or a negative khrdma_status (KHRDMA_E_FULL when
 * the queue has no room). */
int khrdma_post_read(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		     const struct khrdma_mr *mr, size_t loff, uint32_t len, uint64_t wr_id);
int khrdma_post_write(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		      const struct khrdma_mr *mr, size_t loff, uint32_t len, uint64_t wr_id);
int khrdma_post_cas(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		    const struct khrdma_mr *mr, size_t loff, uint64_t compare, uint64_t swap,
		    uint64_t wr_id);
int khrdma_post_fadd(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		     const struct khrdma_mr *mr, size_t loff, uint64_t add, uint64_t wr_id);

/* Up to max completions, without blocking.  Returns how many, or a
 * negative khrdma_status. */
int khrdma_poll(khrdma_dev *d, struct khrdma_wc *wc, int max);
/* At least one completion, waiting up to timeout_ms (-1: forever): spins
 * briefly, then sleeps until the engine signals.  Returns how many, or a
 * negative khrdma_status (KHRDMA_E_TIMEOUT). */
int khrdma_wait(khrdma_dev *d, struct khrdma_wc *wc, int max, int timeout_ms);
/* How long khrdma_wait spins before it sleeps (default 50 us). */
void khrdma_set_spin(khrdma_dev *d, unsigned usec);
/* Operations posted and not yet polled. */
int khrdma_outstanding(const khrdma_dev *d);

/* One operation, posted and waited for: 0 or a negative khrdma_status
 * (the completion's status when the operation failed).  Completions of
 * other operations that arrive meanwhile are kept for khrdma_poll. */
int khrdma_read(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		const struct khrdma_mr *mr, size_t loff, uint32_t len);
int khrdma_write(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		 const struct khrdma_mr *mr, size_t loff, uint32_t len);
int khrdma_cas(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
	       const struct khrdma_mr *mr, size_t loff, uint64_t compare, uint64_t swap,
	       uint64_t *old);
int khrdma_fadd(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		const struct khrdma_mr *mr, size_t loff, uint64_t add, uint64_t *old);

#ifdef __cplusplus
}
#endif

#endif
