/* rdma-*: the copy engine's checks and execution, driven the way the
 * engine process drives it: rings in memory, regions as sealed memfds,
 * descriptors written as a node would (or as a hostile node would). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rdma/engine.h"
#include "rdma/khrdma.h"
#include "rdma/ring.h"

/* A memfd of len bytes holding fill, sealed (or not) as a node's would be. */
static int
mfd(size_t len, int fill, int seal)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	memset(p, fill, len);
	munmap(p, len);
	if (seal)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	return fd;
}

/* A node's side of one context: its ring and a view of its memfds. */
struct side {
	struct re_ep *ep;
	void *ring;
	struct khr_ring_hdr *h;
	uint32_t tail, head;
};

static void
open_side(struct rdma_engine *e, struct side *s, int rank, const char *ifname)
{
	struct khr_rep rep;
	memset(s, 0, sizeof(*s));
	s->ring = aligned_alloc(4096, KHR_RING_SIZE);
	memset(s->ring, 0, KHR_RING_SIZE);
	s->h = s->ring;
	s->ep = re_ep_open(e, rank, ifname, s->ring, &rep);
	assert_non_null(s->ep);
	assert_int_equal(rep.status, 0);
}

static void
close_side(struct rdma_engine *e, struct side *s)
{
	re_ep_close(e, s->ep);
	free(s->ring);
}

static uint64_t
reg(struct rdma_engine *e, struct side *s, int fd, uint64_t off, uint64_t len, uint32_t access,
    uint32_t *lkey)
{
	struct khr_rep rep;
	memset(&rep, 0, sizeof(rep));
	int st = re_reg(e, s->ep, fd, off, len, access, &rep);
	assert_int_equal(st, 0);
	if (lkey)
		*lkey = rep.lkey;
	return rep.key;
}

static void
post(struct side *s, const struct khr_sqe *d)
{
	struct khr_sqe *sq = (struct khr_sqe *)((char *)s->ring + KHR_SQ_OFF);
	sq[s->tail % KHR_SQ_DEPTH] = *d;
	s->tail++;
	__atomic_store_n(&s->h->sq_tail, s->tail, __ATOMIC_RELEASE);
}

/* Run the engine until s has a completion; return it. */
static struct khr_cqe
run(struct rdma_engine *e, struct side *s)
{
	struct khr_cqe *cq = (struct khr_cqe *)((char *)s->ring + KHR_CQ_OFF);
	for (int i = 0; i < 100000; i++) {
		if (__atomic_load_n(&s->h->cq_tail, __ATOMIC_ACQUIRE) != s->head) {
			struct khr_cqe c = cq[s->head % KHR_CQ_DEPTH];
			s->head++;
			s->h->cq_head = s->head;
			return c;
		}
		int sig = 0;
		re_service(e, s->ep, 256 * 1024, &sig);
	}
	fail_msg("no completion");
	struct khr_cqe none = {0};
	return none;
}

static int
op(struct rdma_engine *e, struct side *s, const struct khr_sqe *d)
{
	post(s, d);
	return run(e, s).status;
}

/* Three nodes in domain 5 (A rank 1 on eth0, B rank 2 on eth0, D rank 4
 * on eth1), C rank 3 in domain 6 only; D is in 6 too (eth0). */
struct world {
	struct rdma_engine *e;
	struct side a, b, c, d;
	int bfd, afd;
	uint64_t bkey, bro, batom;
	uint32_t alkey;
};

static void
world_up(struct world *w)
{
	static const uint32_t a[] = {5}, c[] = {6}, d[] = {6, 5};
	w->e = re_new(7, NULL);
	assert_non_null(w->e);
	assert_int_equal(re_node_set(w->e, 1, a, 1, 0), 0);
	assert_int_equal(re_node_set(w->e, 2, a, 1, 0), 0);
	assert_int_equal(re_node_set(w->e, 3, c, 1, 0), 0);
	assert_int_equal(re_node_set(w->e, 4, d, 2, 0), 0);
	open_side(w->e, &w->a, 1, "eth0");
	open_side(w->e, &w->b, 2, "eth0");
	open_side(w->e, &w->c, 3, "eth0");
	open_side(w->e, &w->d, 4, "eth1");
	w->bfd = mfd(3 * 4096, 'B', 1);
	w->afd = mfd(2 * 4096, 'a', 1);
	w->bkey = reg(w->e, &w->b, w->bfd, 0, 4096,
		      KHRDMA_REMOTE_READ | KHRDMA_REMOTE_WRITE | KHRDMA_REMOTE_ATOMIC, NULL);
	w->bro = reg(w->e, &w->b, w->bfd, 4096, 4096, KHRDMA_REMOTE_READ, NULL);
	w->batom = reg(w->e, &w->b, w->bfd, 8192, 4096, KHRDMA_REMOTE_ATOMIC, NULL);
	reg(w->e, &w->a, w->afd, 0, 8192, 0, &w->alkey);
}

static void
world_down(struct world *w)
{
	close_side(w->e, &w->a);
	close_side(w->e, &w->b);
	close_side(w->e, &w->c);
	close_side(w->e, &w->d);
	re_free(w->e);
	close(w->afd);
	close(w->bfd);
}

static uint8_t
byte_at(int fd, off_t off)
{
	uint8_t v = 0;
	assert_int_equal(pread(fd, &v, 1, off), 1);
	return v;
}

static struct khr_sqe
rd(uint32_t rank, uint64_t rkey, uint64_t roff, uint32_t lkey, uint64_t loff, uint32_t len)
{
	return (struct khr_sqe){.op = KHRDMA_READ,
				.rank = rank,
				.rkey = rkey,
				.roff = roff,
				.lkey = lkey,
				.loff = loff,
				.len = len,
				.wr_id = 42};
}

/* rdma-1.1: a read and a write between two members move the bytes. */
static void
rdma_1_1_read_write(void **state)
{
	struct world w;
	(void)state;
	world_up(&w);
	struct khr_sqe d = rd(2, w.bkey, 100, w.alkey, 10, 200);
	post(&w.a, &d);
	struct khr_cqe c = run(w.e, &w.a);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.len, 200);
	assert_int_equal(c.wr_id, 42);
	assert_int_equal(byte_at(w.afd, 10), 'B');
	assert_int_equal(byte_at(w.afd, 209), 'B');
	assert_int_equal(byte_at(w.afd, 210), 'a');
	assert_int_equal(byte_at(w.afd, 9), 'a');
	d.op = KHRDMA_WRITE;
	d.roff = 4000;
	d.len = 96;
	d.loff = 1000; /* still 'a' */
	assert_int_equal(op(w.e, &w.a, &d), 0);
	assert_int_equal(byte_at(w.bfd, 4000), 'a');
	assert_int_equal(byte_at(w.bfd, 4095), 'a');
	assert_int_equal(byte_at(w.bfd, 4096), 'B'); /* the next region is untouched */
	world_down(&w);
}

/* rdma-1.2: compare-and-swap and fetch-and-add are atomic 8-byte
 * operations returning the value before; alignment is required. */
static void
rdma_1_2_atomics(void **state)
{
	struct world w;
	uint64_t zero = 0;
	(void)state;
	world_up(&w);
	assert_int_equal(pwrite(w.bfd, &zero, 8, 8192 + 16), 8);
	struct khr_sqe d = {.op = KHRDMA_FADD,
			    .rank = 2,
			    .rkey = w.batom,
			    .roff = 16,
			    .lkey = w.alkey,
			    .loff = 0,
			    .len = 8,
			    .arg0 = 5};
	post(&w.a, &d);
	struct khr_cqe c = run(w.e, &w.a);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.result, 0);
	post(&w.a, &d);
	assert_int_equal(run(w.e, &w.a).result, 5);
	d.op = KHRDMA_CAS;
	d.arg0 = 10; /* compare */
	d.arg1 = 77; /* swap */
	post(&w.a, &d);
	assert_int_equal(run(w.e, &w.a).result, 10);
	post(&w.a, &d); /* 77 != 10: no swap, returns 77 */
	assert_int_equal(run(w.e, &w.a).result, 77);
	uint64_t v;
	assert_int_equal(pread(w.bfd, &v, 8, 8192 + 16), 8);
	assert_int_equal(v, 77);
	assert_int_equal(pread(w.afd, &v, 8, 0), 8);
	assert_int_equal(v, 77); /* the value before lands in the local buffer too */
	d.roff = 12;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_BADDESC);
	d.roff = 16;
	d.len = 4;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_BADDESC);
	d.len = 8;
	d.rkey = w.bkey; /* read-write, but not atomic */
	d.rkey = w.bro;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_PERM);
	world_down(&w);
}

/* rdma-1.3: membership.  A node of another domain, with a valid key,
 * gets NOT_MEMBER; so does a target outside the requester's domain; a key
 * aimed at the wrong rank or of another generation is unknown. */
static void
rdma_1_3_membership(void **state)
{
	struct world w;
	uint32_t clkey, dlkey;
	int cfd = mfd(4096, 'c', 1), dfd = mfd(4096, 'd', 1);
	(void)state;
	world_up(&w);
	reg(w.e, &w.c, cfd, 0, 4096, KHRDMA_REMOTE_READ, &clkey);
	uint64_t dkey = reg(w.e, &w.d, dfd, 0, 4096, KHRDMA_REMOTE_READ, &dlkey);
	struct khr_sqe d = rd(2, w.bkey, 0, clkey, 0, 8);
	assert_int_equal(op(w.e, &w.c, &d), KHRDMA_E_NOT_MEMBER); /* C is in 6, B in 5 */
	d = rd(3, w.bkey, 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_NOT_MEMBER); /* C is not in 5 */
	d = rd(4, w.bkey, 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_KEY); /* D is in 5, the key is B's */
	d = rd(2, w.bkey + (1ULL << 24), 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_KEY); /* another generation */
	d = rd(2, 0, 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_KEY);
	d = rd(4, dkey, 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), 0); /* D's region on its domain-5 interface */
	d = rd(RE_MAX_NODES + 7, w.bkey, 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_NOT_MEMBER);
	/* D's domain-6 side cannot use D's domain-5 key from domain 6 */
	struct side d6;
	uint32_t l6;
	open_side(w.e, &d6, 4, "eth0");
	int fd6 = mfd(4096, 0, 1);
	reg(w.e, &d6, fd6, 0, 4096, 0, &l6);
	d = rd(4, dkey, 0, l6, 0, 8);
	assert_int_equal(op(w.e, &d6, &d), KHRDMA_E_KEY);
	close_side(w.e, &d6);
	close(fd6);
	world_down(&w);
	close(cfd);
	close(dfd);
}

/* rdma-1.4: ranges, permissions, local buffers and malformed descriptors,
 * overflowing arithmetic included. */
static void
rdma_1_4_bounds(void **state)
{
	struct world w;
	(void)state;
	world_up(&w);
	struct khr_sqe d = rd(2, w.bkey, 4096, w.alkey, 0, 1);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_RANGE);
	d = rd(2, w.bkey, 4095, w.alkey, 0, 2);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_RANGE);
	d = rd(2, w.bkey, UINT64_MAX - 2, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_RANGE);
	d = rd(2, w.bkey, 4096, w.alkey, 0, 0);
	assert_int_equal(op(w.e, &w.a, &d), 0); /* empty, at the end: allowed */
	d = rd(2, w.bkey, 0, w.alkey, UINT64_MAX - 2, 8);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_LOCAL);
	d = rd(2, w.bkey, 0, w.alkey, 8190, 4);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_LOCAL);
	d = rd(2, w.bkey, 0, w.alkey + 1, 0, 4);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_LOCAL);
	d = rd(2, w.bkey, 0, 0xffffffffu, 0, 4);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_LOCAL);
	d = rd(2, w.bro, 0, w.alkey, 0, 4);
	assert_int_equal(op(w.e, &w.a, &d), 0);
	d.op = KHRDMA_WRITE;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_PERM);
	d = rd(2, w.batom, 0, w.alkey, 0, 4);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_PERM); /* atomic only */
	d = rd(2, w.bkey, 0, w.alkey, 0, 4);
	d.op = 0;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_BADDESC);
	d.op = 200;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_BADDESC);
	d.op = KHRDMA_READ;
	d.flags = 1;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_BADDESC);
	d.flags = 0;
	d.len = KHR_MAX_OP_LEN + 1;
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_BADDESC);
	d.len = 4;
	d.host = 3; /* another host: no engine to forward to yet */
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_UNREACHABLE);
	d.host = 7; /* this engine's own host id */
	assert_int_equal(op(w.e, &w.a, &d), 0);
	world_down(&w);
}

/* rdma-2.1: deregistration revokes at once, and a key is never live
 * again, even when its slot is reused. */
static void
rdma_2_1_dereg(void **state)
{
	struct world w;
	(void)state;
	world_up(&w);
	struct khr_sqe d = rd(2, w.bkey, 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), 0);
	assert_int_equal(re_dereg(w.e, w.b.ep, w.bkey), 0);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_KEY);
	uint64_t again = reg(w.e, &w.b, w.bfd, 0, 4096, KHRDMA_REMOTE_READ, NULL);
	assert_true(again != w.bkey);
	assert_int_equal(again & 0xffffff, w.bkey & 0xffffff); /* same slot */
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_KEY);
	d.rkey = again;
	assert_int_equal(op(w.e, &w.a, &d), 0);
	assert_int_equal(re_dereg(w.e, w.a.ep, again), KHRDMA_E_KEY); /* not A's to revoke */
	assert_int_equal(op(w.e, &w.a, &d), 0);
	world_down(&w);
}

/* rdma-2.2: a node leaving the domain (rmnet) revokes both ways; reset,
 * release or its end (drop) revokes everything of it. */
static void
rdma_2_2_rmnet_drop(void **state)
{
	struct world w;
	static const uint32_t none[] = {0}, five[] = {5};
	(void)state;
	world_up(&w);
	struct khr_sqe d = rd(2, w.bkey, 0, w.alkey, 0, 8);
	assert_int_equal(op(w.e, &w.a, &d), 0);
	/* the target leaves: its regions are gone for everyone */
	assert_int_equal(re_node_set(w.e, 2, none, 1, 0), 0);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_NOT_MEMBER);
	assert_false(re_ep_alive(w.b.ep));
	/* and coming back does not bring its old keys back */
	assert_int_equal(re_node_set(w.e, 2, five, 1, 0), 0);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_KEY);
	/* the requester leaves: its context is dead */
	assert_int_equal(re_node_set(w.e, 1, none, 1, 0), 0);
	assert_int_equal(op(w.e, &w.a, &d), KHRDMA_E_REVOKED);
	/* drop */
	struct khr_sqe dd = rd(1, 0, 0, 0, 0, 0);
	int dfd = mfd(4096, 0, 1);
	uint32_t dl;
	reg(w.e, &w.d, dfd, 0, 4096, 0, &dl);
	dd.lkey = dl;
	re_node_drop(w.e, 4);
	assert_int_equal(op(w.e, &w.d, &dd), KHRDMA_E_REVOKED);
	world_down(&w);
	close(dfd);
}

/* rdma-2.3: an operation in pieces (larger than one round's budget) moves
 * all its bytes with one completion; revoked in the middle, it fails. */
static void
rdma_2_3_large(void **state)
{
	struct world w;
	size_t big = 4u << 20;
	int src = mfd(big, 'S', 1), dst = mfd(big, 0, 1);
	uint32_t dl;
	int sig;
	(void)state;
	world_up(&w);
	uint64_t sk = reg(w.e, &w.b, src, 0, big, KHRDMA_REMOTE_READ, NULL);
	reg(w.e, &w.a, dst, 0, big, 0, &dl);
	struct khr_sqe d = rd(2, sk, 0, dl, 0, (uint32_t)big);
	post(&w.a, &d);
	int calls = 0;
	while (__atomic_load_n(&w.a.h->cq_tail, __ATOMIC_ACQUIRE) == w.a.head) {
		re_service(w.e, w.a.ep, 256 * 1024, &sig);
		calls++;
	}
	assert_int_equal(calls, 16);
	struct khr_cqe c = run(w.e, &w.a);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.len, big);
	assert_int_equal(byte_at(dst, (off_t)big - 1), 'S');
	post(&w.a, &d);
	re_service(w.e, w.a.ep, 256 * 1024, &sig);
	assert_int_equal(__atomic_load_n(&w.a.h->cq_tail, __ATOMIC_ACQUIRE), w.a.head);
	re_dereg(w.e, w.b.ep, sk);
	assert_int_equal(run(w.e, &w.a).status, KHRDMA_E_KEY);
	world_down(&w);
	close(src);
	close(dst);
}

/* rdma-3.1: registration takes only sealed, allocated memfd memory,
 * within the node's limit. */
static void
rdma_3_1_reg_checks(void **state)
{
	struct world w;
	struct khr_rep rep;
	int p[2];
	(void)state;
	world_up(&w);
	int unsealed = mfd(4096, 1, 0);
	assert_int_equal(re_reg(w.e, w.a.ep, unsealed, 0, 4096, 0, &rep), KHRDMA_E_LOCAL);
	assert_non_null(strstr(rep.msg, "sealed"));
	assert_int_equal(pipe(p), 0);
	assert_int_equal(re_reg(w.e, w.a.ep, p[0], 0, 1, 0, &rep), KHRDMA_E_LOCAL);
	int holes = memfd_create("h", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(holes, 8192), 0);
	assert_int_equal(fcntl(holes, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	assert_int_equal(re_reg(w.e, w.a.ep, holes, 0, 8192, 0, &rep), KHRDMA_E_LOCAL);
	assert_non_null(strstr(rep.msg, "holes"));
	assert_int_equal(re_reg(w.e, w.a.ep, w.afd, 4096, 8192, 0, &rep), KHRDMA_E_LOCAL);
	assert_int_equal(re_reg(w.e, w.a.ep, w.afd, UINT64_MAX, 2, 0, &rep), KHRDMA_E_LOCAL);
	assert_int_equal(re_reg(w.e, w.a.ep, w.afd, 0, 0, 0, &rep), KHRDMA_E_BADDESC);
	assert_int_equal(re_reg(w.e, w.a.ep, w.afd, 0, 8, 64, &rep), KHRDMA_E_BADDESC);
	static const uint32_t five[] = {5};
	re_node_set(w.e, 1, five, 1, 8192 + 4096); /* a limit: 12 KiB, 8 KiB in use */
	int big = mfd(8192, 1, 1), small = mfd(4096, 1, 1);
	assert_int_equal(re_reg(w.e, w.a.ep, big, 0, 8192, 0, &rep), KHRDMA_E_LIMIT);
	assert_int_equal(re_reg(w.e, w.a.ep, small, 0, 4096, 0, &rep), 0);
	/* the same memory again counts once */
	assert_int_equal(re_reg(w.e, w.a.ep, w.afd, 0, 8192, 0, &rep), 0);
	assert_int_equal(re_reg(w.e, w.a.ep, small, 0, 4096, 0, &rep), 0);
	/* and is counted off when its last region goes */
	assert_int_equal(re_dereg(w.e, w.a.ep, rep.key), 0);
	assert_int_equal(re_reg(w.e, w.a.ep, big, 0, 8192, 0, &rep), KHRDMA_E_LIMIT);
	close(big);
	close(small);
	close(unsealed);
	close(holes);
	close(p[0]);
	close(p[1]);
	world_down(&w);
}

/* rdma-3.2: a hostile node: garbage descriptors never reach outside what
 * it was granted (canaries around the regions stay), and a ring with
 * nonsense indexes ends that context alone. */
static void
rdma_3_2_hostile(void **state)
{
	struct world w;
	(void)state;
	world_up(&w);
	/* B's memfd: [0,4K) rw region, [4K,8K) read-only, [8K,12K) atomic.
	 * A's: 8 KiB local.  Everything else in them is a canary. */
	int canary = mfd(3 * 4096, 'C', 1);
	uint32_t cl;
	reg(w.e, &w.a, canary, 4096, 4096, 0, &cl); /* A's own, the middle page */
	srand(12345);
	uint64_t keys[] = {w.bkey, w.bro, w.batom, 0, 1, UINT64_MAX};
	int ok = 0, errs = 0;
	for (int i = 0; i < 20000; i++) {
		struct khr_sqe d;
		uint8_t *b = (uint8_t *)&d;
		for (size_t j = 0; j < sizeof(d); j++)
			b[j] = (uint8_t)rand();
		if (rand() % 2) { /* plausible ones get further into the checks */
			d.op = (uint8_t)(1 + rand() % 4);
			d.flags = 0;
			d.host = 0;
			d.rank = rand() % 2 ? 2 : (uint32_t)(rand() % 6);
			d.rkey = keys[rand() % 4 ? rand() % 3 : rand() % 6];
			d.roff = (uint64_t)(rand() % 9000) - 400;
			d.lkey = rand() % 3 ? w.alkey : cl;
			d.loff = (uint64_t)(rand() % 9000);
			d.len = rand() % 4 ? (uint32_t)(rand() % 5000) : 8;
		}
		post(&w.a, &d);
		struct khr_cqe c = run(w.e, &w.a);
		if (c.status == 0)
			ok++;
		else
			errs++;
	}
	print_message("hostile: %d completed, %d refused\n", ok, errs);
	assert_true(ok > 100 && errs > 100);
	for (off_t o = 0; o < 3 * 4096; o++)
		if (o < 4096 || o >= 8192)
			assert_int_equal(byte_at(canary, o), 'C');
	/* nonsense indexes */
	w.a.h->sq_tail = w.a.tail + 5000;
	int sig = 0;
	assert_int_equal(re_service(w.e, w.a.ep, 1024, &sig), -1);
	assert_false(re_ep_alive(w.a.ep));
	assert_int_equal(re_service(w.e, w.a.ep, 1024, &sig), 0);
	w.b.h->cq_head = 12345;
	struct khr_sqe d = rd(2, w.bkey, 0, 0, 0, 0);
	post(&w.b, &d);
	assert_int_equal(re_service(w.e, w.b.ep, 1024, &sig), -1);
	/* the others go on */
	uint32_t dl;
	int dfd = mfd(4096, 0, 1);
	reg(w.e, &w.d, dfd, 0, 4096, 0, &dl);
	static const uint32_t five[] = {5};
	re_node_set(w.e, 2, five, 1, 0);
	d = rd(4, 0, 0, dl, 0, 0);
	assert_int_equal(op(w.e, &w.d, &d), KHRDMA_E_KEY);
	close(canary);
	close(dfd);
	world_down(&w);
}

static int seen_ops;
static void
count_cb(struct re_usage *u, int n)
{
	for (int i = 0; i < n; i++)
		seen_ops += (int)u[i].ops;
}

/* rdma-4.1: usage is counted per node and domain of the requester, taken
 * once, and forgotten on discard. */
static void
rdma_4_1_usage(void **state)
{
	struct world w;
	struct re_usage u[16];
	(void)state;
	world_up(&w);
	assert_int_equal(re_take(w.e, u, 16), 0);
	struct khr_sqe d = rd(2, w.bkey, 0, w.alkey, 0, 300);
	op(w.e, &w.a, &d);
	d.op = KHRDMA_WRITE;
	d.len = 100;
	op(w.e, &w.a, &d);
	d.rkey = 999; /* fails: counted as an operation, no bytes */
	op(w.e, &w.a, &d);
	int n = re_take(w.e, u, 16);
	assert_int_equal(n, 1);
	assert_int_equal(u[0].rank, 1);
	assert_int_equal(u[0].netid, 5);
	assert_int_equal(u[0].ops, 3);
	assert_int_equal(u[0].rd, 300);
	assert_int_equal(u[0].wr, 100);
	assert_int_equal(re_take(w.e, u, 16), 0);
	op(w.e, &w.a, &d);
	re_node_discard(w.e, 1);
	assert_int_equal(re_take(w.e, u, 16), 0);
	/* many nodes: the mailbox is filled in parts, nothing lost */
	seen_ops = 0;
	op(w.e, &w.a, &d);
	op(w.e, &w.d, &d);
	op(w.e, &w.c, &d);
	while ((n = re_take(w.e, u, 1)) > 0)
		count_cb(u, n);
	assert_int_equal(seen_ops, 3);
	world_down(&w);
}

/* rdma-4.2: opening: only plan interfaces of the node's domains. */
static void
rdma_4_2_open(void **state)
{
	struct world w;
	struct khr_rep rep;
	void *ring = calloc(1, KHR_RING_SIZE);
	(void)state;
	world_up(&w);
	assert_null(re_ep_open(w.e, 1, "eth1", ring, &rep));
	assert_int_equal(rep.status, KHRDMA_E_NODEV);
	assert_null(re_ep_open(w.e, 1, "eth16", ring, &rep));
	assert_null(re_ep_open(w.e, 1, "eth01", ring, &rep));
	assert_null(re_ep_open(w.e, 1, "lo", ring, &rep));
	assert_null(re_ep_open(w.e, 1, "eth", ring, &rep));
	assert_null(re_ep_open(w.e, 99, "eth0", ring, &rep));
	struct re_ep *ep = re_ep_open(w.e, 4, "eth1", ring, &rep);
	assert_non_null(ep);
	assert_int_equal(rep.netid, 5);
	assert_int_equal(rep.rank, 4);
	assert_string_equal(rep.msg, "10.0.80.5");
	assert_int_equal(rep.net4, (10u << 24) | (5u << 12));
	re_ep_close(w.e, ep);
	free(ring);
	world_down(&w);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rdma_1_1_read_write),
		cmocka_unit_test(rdma_1_2_atomics),
		cmocka_unit_test(rdma_1_3_membership),
		cmocka_unit_test(rdma_1_4_bounds),
		cmocka_unit_test(rdma_2_1_dereg),
		cmocka_unit_test(rdma_2_2_rmnet_drop),
		cmocka_unit_test(rdma_2_3_large),
		cmocka_unit_test(rdma_3_1_reg_checks),
		cmocka_unit_test(rdma_3_2_hostile),
		cmocka_unit_test(rdma_4_1_usage),
		cmocka_unit_test(rdma_4_2_open),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
