/* fuzz/rdma: the copy engine (src/rdma/engine.c) against a node that writes
 * anything into its ring: descriptors, sq_tail, cq_head, and the requests
 * of the device socket (register, deregister, open).  Each input is a
 * script run on a fresh engine with three nodes: A (rank 1) and B (rank 2)
 * in domain 5, C (rank 3) in domain 6, one context each.  B's memfd holds a
 * local region (no remote access), then read-write, read-only and atomic
 * regions, then bytes never registered; C has one read-write region; A
 * registers its whole memfd locally.  A step is a command byte and its
 * operands (see below); a descriptor's keys may be taken from the real ones
 * so mutations reach the checks behind them.  Checks: completions never
 * outnumber descriptors and carry a known status; nothing a peer may not
 * write changes (B's read-only and unregistered bytes, C's region, which
 * no one shares a domain with: B and C post only through B's local region,
 * C not at all); a fence completes. */
#include "fuzz.h"
#include "rdma/engine.h"
#include "rdma/khrdma.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG   4096
#define BLEN (5 * PG)

struct side {
	struct re_ep *ep;
	unsigned char *ring;
	uint64_t posted, completed;
};

static int afd = -1, bfd, cfd, dfd, ufd, pfd, zfd;
static unsigned char *bmap, *cmap;
static unsigned char bsnap[BLEN], csnap[PG];

static int
mfd(size_t len, unsigned char **map)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	FUZZ_CHECK(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	FUZZ_CHECK(m != MAP_FAILED);
	memset(m, 1, len); /* every page present, as the engine wants */
	FUZZ_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
	if (map)
		*map = m;
	else
		munmap(m, len);
	return fd;
}

static struct khr_ring_hdr *
hdr(struct side *s)
{
	return (struct khr_ring_hdr *)s->ring;
}

/* Take the completions the engine wrote, as the node's library would. */
static void
reap(struct side *s)
{
	struct khr_ring_hdr *h = hdr(s);
	struct khr_cqe *cq = (struct khr_cqe *)(s->ring + KHR_CQ_OFF);
	uint32_t tail = h->cq_tail;
	if (tail - h->cq_head > KHR_CQ_DEPTH) /* the node broke cq_head itself */
		h->cq_head = tail;
	while (h->cq_head != tail) {
		struct khr_cqe *c = &cq[h->cq_head % KHR_CQ_DEPTH];
		FUZZ_CHECK(c->status >= 0 && c->status <= KHRDMA_E_DEAD);
		s->completed++;
		h->cq_head++;
	}
}

static void
service(struct rdma_engine *e, struct side *s, size_t budget)
{
	int sig = 0;
	if (s->ep == NULL)
		return;
	int r = re_service(e, s->ep, budget, &sig);
	FUZZ_CHECK(r >= -1);
	if (r == -1) /* the node broke its ring: the endpoint is dead */
		FUZZ_CHECK(!re_ep_alive(s->ep));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t d5[] = {5}, d6[] = {6};
	struct khr_rep rep;
	uint64_t keys[8];
	uint32_t lkeys[4];
	int nkeys = 0, nlkeys = 0;

	if (afd < 0) {
		afd = mfd(2 * PG, NULL);
		bfd = mfd(BLEN, &bmap);
		cfd = mfd(PG, &cmap);
		dfd = mfd(3 * PG, NULL);
		int pp[2];
		ufd = memfd_create("fuzz-unsealed", MFD_CLOEXEC);
		zfd = open("/dev/zero", O_RDWR | O_CLOEXEC);
		FUZZ_CHECK(ufd >= 0 && ftruncate(ufd, 3 * PG) == 0 && zfd >= 0 && pipe(pp) == 0);
		pfd = pp[0];
	}
	for (size_t i = 0; i < BLEN; i++)
		bmap[i] = (unsigned char)(i * 7 + 1);
	memset(cmap, 0xcc, PG);
	memcpy(bsnap, bmap, BLEN);
	memcpy(csnap, cmap, PG);

	struct rdma_engine *e = re_new(7, NULL);
	FUZZ_CHECK(e != NULL);
	FUZZ_CHECK(re_node_set(e, 1, d5, 1, 0) == 0 && re_node_set(e, 2, d5, 1, 0) == 0 &&
		   re_node_set(e, 3, d6, 1, 0) == 0);
	struct side sides[3] = {{0}};
	const char *ifs[3] = {"eth0", "eth0", "eth0"};
	for (int i = 0; i < 3; i++) {
		sides[i].ring = aligned_alloc(PG, KHR_RING_SIZE);
		FUZZ_CHECK(sides[i].ring != NULL);
		memset(sides[i].ring, 0, KHR_RING_SIZE);
		sides[i].ep = re_ep_open(e, i + 1, ifs[i], sides[i].ring, &rep);
		FUZZ_CHECK(sides[i].ep != NULL);
	}
	struct {
		int side, fd;
		uint64_t off, len;
		uint32_t access;
	} regs[] = {
	    {0, afd, 0, 2 * PG, 0},
	    {1, bfd, 0, PG, 0},
	    {1, bfd, PG, PG, KHRDMA_REMOTE_READ | KHRDMA_REMOTE_WRITE},
	    {1, bfd, 2 * PG, PG, KHRDMA_REMOTE_READ},
	    {1, bfd, 3 * PG, PG, KHRDMA_REMOTE_ATOMIC | KHRDMA_REMOTE_READ},
	    {2, cfd, 0, PG, KHRDMA_REMOTE_READ | KHRDMA_REMOTE_WRITE},
	};
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		memset(&rep, 0, sizeof(rep));
		int st = re_reg(e, sides[regs[i].side].ep, regs[i].fd, regs[i].off, regs[i].len,
				regs[i].access, &rep);
		if (st != 0)
			fprintf(stderr, "register %zu: %s\n", i, rep.msg);
		FUZZ_CHECK(st == 0);
		keys[nkeys++] = rep.key;
		if (i < 2 || i == 5)
			lkeys[nlkeys++] = rep.lkey;
	}

	/* The script.  Command byte c: side = (c >> 4) % 3, then by c & 15:
	 * 0-5: post the next 64 bytes as a descriptor (bit 0: rkey from the
	 * real keys, bit 1: lkey from the real local keys, bit 2: rank 2);
	 * 6: service with a budget of (next byte) KiB; 7: reap completions;
	 * 8: set sq_tail to the next 4 bytes; 9: set cq_head likewise;
	 * 10: deregister a key (next byte); 11: move the node to domain 5 or 6
	 * or none (next byte); 12: drop the node; 13: register (next 17 bytes:
	 * offset, length, access) part of B's memfd; 14: open a context on an
	 * interface named by the next 4 bytes, then close it; 15: a fence.
	 * (13 with access bit 7: A registers another kind of fd, bits 5-6.) */
	size_t p = 0;
	while (p < size) {
		uint8_t c = data[p++];
		struct side *s = &sides[(c >> 4) % 3];
		int rank = (int)((c >> 4) % 3) + 1;
		unsigned cmd = c & 15;
		if (cmd <= 5) {
			struct khr_sqe d;
			if (size - p < sizeof(d))
				break;
			memcpy(&d, data + p, sizeof(d));
			p += sizeof(d);
			if (cmd & 1)
				d.rkey = keys[d.rkey % (uint64_t)nkeys];
			if (cmd & 2)
				d.lkey = lkeys[d.lkey % (uint32_t)nlkeys];
			if (cmd & 4)
				d.rank = 2;
			/* B and C write their own memory only through B's local
			 * region: what changes elsewhere, a peer changed */
			if (rank == 3)
				continue;
			if (rank == 2)
				d.lkey = lkeys[1];
			struct khr_ring_hdr *h = hdr(s);
			struct khr_sqe *sq = (struct khr_sqe *)(s->ring + KHR_SQ_OFF);
			sq[h->sq_tail % KHR_SQ_DEPTH] = d;
			h->sq_tail++;
			s->posted++;
		} else if (cmd == 6 && p < size) {
			service(e, s, (size_t)data[p++] * 1024 + 1);
		} else if (cmd == 7) {
			reap(s);
		} else if ((cmd == 8 || cmd == 9) && size - p >= 4) {
			uint32_t v;
			memcpy(&v, data + p, 4);
			p += 4;
			if (cmd == 8)
				hdr(s)->sq_tail = v;
			else
				hdr(s)->cq_head = v;
			s->posted = UINT64_MAX / 2; /* counts no longer mean anything */
		} else if (cmd == 10 && p < size) {
			(void)re_dereg(e, s->ep, keys[data[p++] % nkeys]);
		} else if (cmd == 11 && p < size) {
			/* C never shares a domain with A and B */
			static const uint32_t ab[] = {5, 8, 0}, cc[] = {6, 7, 0};
			uint32_t d = (rank == 3 ? cc : ab)[data[p++] % 3];
			FUZZ_CHECK(re_node_set(e, rank, &d, 1, 0) == 0);
		} else if (cmd == 12) {
			re_node_drop(e, rank);
		} else if (cmd == 13 && size - p >= 17) {
			uint64_t off, len;
			memcpy(&off, data + p, 8);
			memcpy(&len, data + p + 8, 8);
			uint32_t access = data[p + 16];
			p += 17;
			memset(&rep, 0, sizeof(rep));
			if (access & 0x80) {
				/* what else a node may pass: a sealed memfd of
				 * its own (any range), an unsealed one, a pipe,
				 * /dev/zero; only the first, in range, is taken */
				int kind = (access >> 5) & 3;
				int fd = kind == 0 ? dfd : kind == 1 ? ufd : kind == 2 ? pfd : zfd;
				int st = re_reg(e, sides[0].ep, fd, off, len, access & 7, &rep);
				FUZZ_CHECK(st != 0 ||
					   (kind == 0 && len <= 3 * PG && off <= 3 * PG - len));
			} else if (off >= PG && off <= 2 * PG && len <= 2 * PG - off) {
				/* never over B's read-only or unregistered bytes */
				(void)re_reg(e, sides[1].ep, bfd, off, len, access, &rep);
			}
		} else if (cmd == 14 && size - p >= 4) {
			char name[5];
			memcpy(name, data + p, 4);
			name[4] = '\0';
			p += 4;
			unsigned char *ring = aligned_alloc(PG, KHR_RING_SIZE);
			FUZZ_CHECK(ring != NULL);
			memset(ring, 0, KHR_RING_SIZE);
			struct re_ep *ep = re_ep_open(e, rank, name, ring, &rep);
			if (ep != NULL)
				re_ep_close(e, ep);
			else
				FUZZ_CHECK(rep.status != 0 && rep.msg[0] != '\0');
			free(ring);
		} else if (cmd == 15) {
			uint64_t t = re_fence_ticket(e);
			for (int i = 0; i < 3; i++)
				service(e, &sides[i], 1u << 30);
			FUZZ_CHECK(re_fence_done(e, t));
		}
		if (s->posted < UINT64_MAX / 4)
			FUZZ_CHECK(s->completed <= s->posted);
	}
	for (int round = 0; round < 4; round++)
		for (int i = 0; i < 3; i++) {
			service(e, &sides[i], 1u << 30);
			reap(&sides[i]);
		}
	struct re_usage u[8];
	while (re_take(e, u, 8) == 8)
		;
	for (int i = 0; i < 3; i++) {
		re_ep_close(e, sides[i].ep);
		free(sides[i].ring);
	}
	re_free(e);
	FUZZ_CHECK(memcmp(bmap + 2 * PG, bsnap + 2 * PG, PG) == 0); /* read-only */
	FUZZ_CHECK(memcmp(bmap + 4 * PG, bsnap + 4 * PG, PG) == 0); /* never registered */
	FUZZ_CHECK(memcmp(cmap, csnap, PG) == 0);		    /* no shared domain */
	return 0;
}
