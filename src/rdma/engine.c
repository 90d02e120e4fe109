/* engine: checks and executes one-sided operations (engine.h).  Keys are
 * (generation << 24 | slot): the slot finds the region in one step; the
 * generation, 40 random bits drawn anew for every registration, makes a
 * key dead once its region is revoked (a slot's next generation differs
 * from its last) and makes keys impractical to guess: a peer in the
 * domain reaches a region only with the key its owner handed out. */
#include "rdma/engine.h"
#include "fabric/addr.h"
#include "rdma/khrdma.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

#define KEY_SLOT_BITS 24
#define KEY_SLOT_MASK ((1u << KEY_SLOT_BITS) - 1)
#define MAX_SLOTS     (1u << KEY_SLOT_BITS)
#define NODE_MAX_REGS 65536 /* regions one node may hold */
#define NODE_CNT      64    /* usage records per node between takes */
#define EP_MAX_BATCH  64    /* descriptors per endpoint per service call */

struct re_region {
	struct re_file *file;
	uint8_t *base; /* the registered range, in our mapping */
	uint64_t len;
	uint32_t access;
	uint32_t lkey;
	uint32_t slot;
	struct re_ep *ep;
	void *map;
	size_t maplen;
};

struct re_slotent {
	struct re_region *r;
	uint64_t gen;
};

/* A memfd some region of the node lives in: its memory is counted once
 * against the node's limit, however many regions share it. */
struct re_file {
	dev_t dev;
	ino_t ino;
	uint64_t bytes; /* its allocated size when first registered */
	uint32_t refs;	/* regions in it */
	struct re_file *next;
};

struct re_cnt {
	uint32_t netid; /* 0: free */
	uint32_t refs;	/* open endpoints counting here */
	uint64_t ops, rd, wr;
};

struct re_node {
	uint32_t netids[RE_MAX_IFS];
	uint64_t reg_limit, reg_bytes; /* bytes of the files regions live in */
	uint32_t nregions;
	struct re_file *files;
	struct re_ep *eps;
	struct re_cnt *cnt; /* NODE_CNT, made on first use */
	int dirty;
};

struct re_ep {
	int rank, slot;
	uint32_t netid;
	int alive;  /* 0: revoked, every operation fails */
	int broken; /* its ring was found corrupt: no longer serviced */
	struct khr_ring_hdr *hdr;
	struct khr_sqe *sq;
	struct khr_cqe *cq;
	uint32_t sq_head, cq_tail; /* ours; never read back from the ring */
	struct re_region **lregs;  /* by lkey */
	uint32_t nlregs, caplregs;
	struct re_cnt *cnt;
	int has_cur; /* an operation in progress (a large one, in pieces) */
	struct khr_sqe cur;
	uint64_t cur_done;
	uint64_t cur_seq;   /* when it was taken (the engine's count of operations) */
	struct re_ep *next; /* the node's endpoints */
};

struct rdma_engine {
	uint32_t host;
	struct re_stats *st, own;
	struct re_node *nodes;
	struct re_slotent *slots;
	uint32_t nslots, capslots;
	uint32_t *freeslots;
	uint32_t nfree, capfree;
	int take_from;	/* re_take goes on from this rank */
	uint64_t taken; /* operations taken from rings, ever */
	long pagesz;
};

struct rdma_engine *
re_new(uint32_t host, struct re_stats *stats)
{
	struct rdma_engine *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->nodes = calloc(RE_MAX_NODES, sizeof(*e->nodes));
	if (e->nodes == NULL) {
		free(e);
		return NULL;
	}
	e->host = host;
	e->st = stats ? stats : &e->own;
	e->pagesz = sysconf(_SC_PAGESIZE);
	return e;
}

static void ep_revoke(struct rdma_engine *e, struct re_ep *ep);

void
re_free(struct rdma_engine *e)
{
	if (e == NULL)
		return;
	for (int r = 0; r < RE_MAX_NODES; r++) {
		while (e->nodes[r].eps)
			re_ep_close(e, e->nodes[r].eps);
		free(e->nodes[r].cnt);
	}
	free(e->nodes);
	free(e->slots);
	free(e->freeslots);
	free(e);
}

/* ---- regions ---- */

/* A region of f is gone (or did not come): the last one takes the file's
 * memory off the node's count. */
static void
file_put(struct re_node *n, struct re_file *f)
{
	if (--f->refs > 0)
		return;
	n->reg_bytes -= f->bytes;
	for (struct re_file **p = &n->files; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	free(f);
}

static void
region_free(struct rdma_engine *e, struct re_region *r)
{
	struct re_node *n = &e->nodes[r->ep->rank];

	e->slots[r->slot].r = NULL;
	if (e->nfree < e->capfree)
		e->freeslots[e->nfree++] = r->slot;
	r->ep->lregs[r->lkey] = NULL;
	file_put(n, r->file);
	n->nregions--;
	e->st->regions--;
	e->st->reg_bytes -= r->len;
	munmap(r->map, r->maplen);
	free(r);
}

/* A generation for a slot whose last one was old: random, 40 bits, never
 * 0 and never old. */
static uint64_t
new_gen(uint64_t old)
{
	uint64_t g = 0;
	while (g == 0 || g == old) {
		if (getrandom(&g, sizeof(g), 0) != (ssize_t)sizeof(g))
			g = old + 1; /* no entropy: at least never the same */
		g &= (1ULL << (64 - KEY_SLOT_BITS)) - 1;
	}
	return g;
}

static int
slot_get(struct rdma_engine *e, uint32_t *slot)
{
	if (e->nfree) {
		*slot = e->freeslots[--e->nfree];
		return 0;
	}
	if (e->nslots == MAX_SLOTS)
		return -1;
	if (e->nslots == e->capslots) {
		uint32_t cap = e->capslots ? e->capslots * 2 : 1024;
		struct re_slotent *s = realloc(e->slots, cap * sizeof(*s));
		uint32_t *f = realloc(e->freeslots, cap * sizeof(*f));
		if (s)
			e->slots = s;
		if (f)
			e->freeslots = f;
		if (s == NULL || f == NULL)
			return -1;
		e->capslots = e->capfree = cap;
	}
	e->slots[e->nslots].gen = 0;
	*slot = e->nslots++;
	return 0;
}

static int __attribute__((format(printf, 3, 4)))
fail(struct khr_rep *rep, int status, const char *fmt, ...)
{
	va_list ap;
	rep->status = status;
	va_start(ap, fmt);
	vsnprintf(rep->msg, sizeof(rep->msg), fmt, ap);
	va_end(ap);
	return status;
}

int
re_reg(struct rdma_engine *e, struct re_ep *ep, int fd, uint64_t off, uint64_t len, uint32_t access,
       struct khr_rep *rep)
{
	struct re_node *n = &e->nodes[ep->rank];
	struct stat sb;
	struct statfs sf;
	uint32_t lkey, slot;

	if (!ep->alive)
		return fail(rep, KHRDMA_E_REVOKED, "the device lost its domain");
	if (access & ~(uint32_t)(KHRDMA_REMOTE_READ | KHRDMA_REMOTE_WRITE | KHRDMA_REMOTE_ATOMIC))
		return fail(rep, KHRDMA_E_BADDESC, "unknown permission bits");
	if (len == 0)
		return fail(rep, KHRDMA_E_BADDESC, "a region of 0 bytes");
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || fstatfs(fd, &sf) < 0 ||
	    sf.f_type == HUGETLBFS_MAGIC)
		return fail(rep, KHRDMA_E_LOCAL, "not device memory (khrdma_alloc)");
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return fail(rep, KHRDMA_E_LOCAL, "memory not sealed against shrinking");
	if (off > (uint64_t)sb.st_size || len > (uint64_t)sb.st_size - off)
		return fail(rep, KHRDMA_E_LOCAL, "range beyond the memory's end");
	/* Pages the engine would have to allocate would be charged to it,
	 * not to the node: the node's memory is in place before it lends it. */
	off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole < off + len)
		return fail(rep, KHRDMA_E_LOCAL, "memory not allocated (holes in the range)");
	struct re_file *f;
	for (f = n->files; f && (f->dev != sb.st_dev || f->ino != sb.st_ino); f = f->next)
		;
	uint64_t fbytes = f ? 0 : (uint64_t)sb.st_blocks * 512;
	if (n->reg_limit && (fbytes > n->reg_limit || n->reg_bytes > n->reg_limit - fbytes))
		return fail(rep, KHRDMA_E_LIMIT, "regions would exceed the node's memory");
	if (n->nregions >= NODE_MAX_REGS)
		return fail(rep, KHRDMA_E_LIMIT, "too many regions");
	if (f == NULL) {
		if ((f = calloc(1, sizeof(*f))) == NULL)
			return fail(rep, KHRDMA_E_SYS, "out of memory");
		*f = (struct re_file){
		    .dev = sb.st_dev, .ino = sb.st_ino, .bytes = fbytes, .next = n->files};
		n->files = f;
		n->reg_bytes += fbytes;
	}
	f->refs++; /* the region takes it below, or it is given back on failure */

	uint64_t pgoff = off % (uint64_t)e->pagesz;
	size_t maplen = (size_t)(len + pgoff);
	void *map =
	    mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(off - pgoff));
	if (map == MAP_FAILED) {
		file_put(n, f);
		return fail(rep, KHRDMA_E_SYS, "map: %s", strerror(errno));
	}

	for (lkey = 0; lkey < ep->nlregs && ep->lregs[lkey]; lkey++)
		;
	if (lkey == ep->caplregs) {
		uint32_t cap = ep->caplregs ? ep->caplregs * 2 : 16;
		struct re_region **l = realloc(ep->lregs, cap * sizeof(*l));
		if (l == NULL) {
			munmap(map, maplen);
			file_put(n, f);
			return fail(rep, KHRDMA_E_SYS, "out of memory");
		}
		ep->lregs = l;
		ep->caplregs = cap;
	}
	struct re_region *r = calloc(1, sizeof(*r));
	if (r == NULL || slot_get(e, &slot) < 0) {
		free(r);
		munmap(map, maplen);
		file_put(n, f);
		return fail(rep, KHRDMA_E_LIMIT, "no room for another region");
	}
	if (lkey == ep->nlregs)
		ep->nlregs++;
	*r = (struct re_region){.file = f,
				.base = (uint8_t *)map + pgoff,
				.len = len,
				.access = access,
				.lkey = lkey,
				.slot = slot,
				.ep = ep,
				.map = map,
				.maplen = maplen};
	ep->lregs[lkey] = r;
	e->slots[slot] = (struct re_slotent){.r = r, .gen = new_gen(e->slots[slot].gen)};
	n->nregions++;
	e->st->regions++;
	e->st->reg_bytes += len;
	rep->status = 0;
	rep->key = e->slots[slot].gen << KEY_SLOT_BITS | slot;
	rep->lkey = lkey;
	return 0;
}

static struct re_region *
key_region(struct rdma_engine *e, uint64_t key)
{
	uint32_t slot = (uint32_t)(key & KEY_SLOT_MASK);
	uint64_t gen = key >> KEY_SLOT_BITS;
	if (slot >= e->nslots || e->slots[slot].r == NULL || e->slots[slot].gen != gen)
		return NULL;
	return e->slots[slot].r;
}

int
re_dereg(struct rdma_engine *e, struct re_ep *ep, uint64_t key)
{
	struct re_region *r = key_region(e, key);
	if (r == NULL || r->ep != ep)
		return ep->alive ? KHRDMA_E_KEY : 0; /* a revoked context's regions went with it */
	region_free(e, r);
	return 0;
}

/* ---- nodes and endpoints ---- */

static struct re_cnt *
cnt_get(struct rdma_engine *e, int rank, uint32_t netid)
{
	struct re_node *n = &e->nodes[rank];
	struct re_cnt *freec = NULL;

	if (n->cnt == NULL && (n->cnt = calloc(NODE_CNT, sizeof(*n->cnt))) == NULL)
		return NULL;
	for (int i = 0; i < NODE_CNT; i++) {
		struct re_cnt *c = &n->cnt[i];
		if (c->netid == netid)
			return c;
		if (freec == NULL &&
		    (c->netid == 0 || (c->refs == 0 && !c->ops && !c->rd && !c->wr)))
			freec = c;
	}
	if (freec)
		*freec = (struct re_cnt){.netid = netid};
	return freec;
}

static void
ep_revoke(struct rdma_engine *e, struct re_ep *ep)
{
	if (!ep->alive)
		return;
	ep->alive = 0; /* an operation in progress fails when it is looked at next */
	for (uint32_t i = 0; i < ep->nlregs; i++)
		if (ep->lregs[i])
			region_free(e, ep->lregs[i]);
}

int
re_node_set(struct rdma_engine *e, int rank, const uint32_t *netids, int n, uint64_t reg_limit)
{
	if (rank < 0 || rank >= RE_MAX_NODES || n < 0 || n > RE_MAX_IFS)
		return -1;
	struct re_node *nd = &e->nodes[rank];
	for (int s = 0; s < RE_MAX_IFS; s++) {
		uint32_t id = s < n ? netids[s] : 0;
		if (nd->netids[s] == id)
			continue;
		for (struct re_ep *ep = nd->eps; ep; ep = ep->next)
			if (ep->slot == s)
				ep_revoke(e, ep);
		nd->netids[s] = id;
	}
	nd->reg_limit = reg_limit;
	return 0;
}

void
re_node_drop(struct rdma_engine *e, int rank)
{
	if (rank < 0 || rank >= RE_MAX_NODES)
		return;
	struct re_node *nd = &e->nodes[rank];
	for (struct re_ep *ep = nd->eps; ep; ep = ep->next)
		ep_revoke(e, ep);
	memset(nd->netids, 0, sizeof(nd->netids));
}

void
re_node_discard(struct rdma_engine *e, int rank)
{
	if (rank < 0 || rank >= RE_MAX_NODES || e->nodes[rank].cnt == NULL)
		return;
	struct re_node *nd = &e->nodes[rank];
	for (int i = 0; i < NODE_CNT; i++)
		nd->cnt[i].ops = nd->cnt[i].rd = nd->cnt[i].wr = 0;
	nd->dirty = 0;
}

int
re_take(struct rdma_engine *e, struct re_usage *out, int max)
{
	int k = 0;
	for (int i = 0; i < RE_MAX_NODES && k < max; i++) {
		int r = (e->take_from + i) % RE_MAX_NODES;
		struct re_node *nd = &e->nodes[r];
		if (!nd->dirty)
			continue;
		int left = 0;
		for (int c = 0; c < NODE_CNT; c++) {
			struct re_cnt *ct = &nd->cnt[c];
			if (!ct->ops && !ct->rd && !ct->wr)
				continue;
			if (k == max) {
				left = 1;
				break;
			}
			out[k++] = (struct re_usage){.rank = (uint32_t)r,
						     .netid = ct->netid,
						     .ops = ct->ops,
						     .rd = ct->rd,
						     .wr = ct->wr};
			ct->ops = ct->rd = ct->wr = 0;
		}
		nd->dirty = left;
		if (left) {
			e->take_from = r;
			return k;
		}
	}
	e->take_from = 0;
	return k;
}

/* "eth<slot>" with slot a plain decimal below RE_MAX_IFS. */
static int
parse_ifname(const char *s, int *slot)
{
	if (strncmp(s, "eth", 3) != 0 || s[3] < '0' || s[3] > '9')
		return -1;
	if (s[4] == '\0') {
		*slot = s[3] - '0';
		return 0;
	}
	if (s[3] == '0' || s[4] < '0' || s[4] > '9' || s[5] != '\0')
		return -1;
	*slot = (s[3] - '0') * 10 + (s[4] - '0');
	return *slot < RE_MAX_IFS ? 0 : -1;
}

struct re_ep *
re_ep_open(struct rdma_engine *e, int rank, const char *ifname, void *ring, struct khr_rep *rep)
{
	char name[KHR_IFNAMSIZ];
	int slot;

	memset(rep, 0, sizeof(*rep));
	rep->type = KHR_M_OPEN;
	snprintf(name, sizeof(name), "%.*s", KHR_IFNAMSIZ - 1, ifname);
	if (rank < 0 || rank >= RE_MAX_NODES) {
		fail(rep, KHRDMA_E_NODEV, "no such node");
		return NULL;
	}
	struct re_node *nd = &e->nodes[rank];
	if (parse_ifname(name, &slot) < 0 || nd->netids[slot] == 0) {
		fail(rep, KHRDMA_E_NODEV, "no domain interface %s in this node", name);
		return NULL;
	}
	struct re_ep *ep = calloc(1, sizeof(*ep));
	struct re_cnt *c = cnt_get(e, rank, nd->netids[slot]);
	if (ep == NULL || c == NULL) {
		free(ep);
		fail(rep, KHRDMA_E_LIMIT, "no room for another context");
		return NULL;
	}
	ep->rank = rank;
	ep->slot = slot;
	ep->netid = nd->netids[slot];
	ep->alive = 1;
	ep->hdr = ring;
	ep->sq = (struct khr_sqe *)((char *)ring + KHR_SQ_OFF);
	ep->cq = (struct khr_cqe *)((char *)ring + KHR_CQ_OFF);
	ep->cnt = c;
	c->refs++;
	ep->next = nd->eps;
	nd->eps = ep;
	e->st->contexts++;

	char a[32];
	rep->status = 0;
	rep->rank = (uint32_t)rank;
	rep->netid = ep->netid;
	rep->slot = (uint32_t)slot;
	rep->host = e->host;
	rep->net4 = addr_net4_num((int)ep->netid);
	rep->prefix = ADDR_PREFIX4;
	rep->sq_depth = KHR_SQ_DEPTH;
	rep->cq_depth = KHR_CQ_DEPTH;
	rep->ring_size = KHR_RING_SIZE;
	addr_node4((int)ep->netid, rank, a, sizeof(a));
	snprintf(rep->msg, sizeof(rep->msg), "%s", a);
	return ep;
}

void
re_ep_close(struct rdma_engine *e, struct re_ep *ep)
{
	struct re_node *nd = &e->nodes[ep->rank];
	ep_revoke(e, ep);
	for (struct re_ep **p = &nd->eps; *p; p = &(*p)->next)
		if (*p == ep) {
			*p = ep->next;
			break;
		}
	ep->cnt->refs--;
	e->st->contexts--;
	free(ep->lregs);
	free(ep);
}

int
re_ep_alive(const struct re_ep *ep)
{
	return ep->alive && !ep->broken;
}

int
re_ep_rank(const struct re_ep *ep)
{
	return ep->rank;
}

/* ---- operations ---- */

/* Is rank a member of domain netid now (on any of its interfaces)? */
static int
member(const struct rdma_engine *e, uint32_t rank, uint32_t netid)
{
	const uint32_t *ids = e->nodes[rank].netids;
	for (int s = 0; s < RE_MAX_IFS; s++)
		if (ids[s] == netid)
			return 1;
	return 0;
}

/* Everything an operation needs, checked: 0, or the status it fails with.
 * d is the engine's own copy. */
static int
check_op(struct rdma_engine *e, struct re_ep *ep, const struct khr_sqe *d, struct re_region **rr,
	 struct re_region **lr)
{
	struct re_region *r, *l;
	uint32_t need;

	if (!ep->alive)
		return KHRDMA_E_REVOKED;
	switch (d->op) {
	case KHRDMA_READ:
		need = KHRDMA_REMOTE_READ;
		if (d->len > KHR_MAX_OP_LEN)
			return KHRDMA_E_BADDESC;
		break;
	case KHRDMA_WRITE:
		need = KHRDMA_REMOTE_WRITE;
		if (d->len > KHR_MAX_OP_LEN)
			return KHRDMA_E_BADDESC;
		break;
	case KHRDMA_CAS:
	case KHRDMA_FADD:
		need = KHRDMA_REMOTE_ATOMIC;
		if (d->len != 8)
			return KHRDMA_E_BADDESC;
		break;
	default:
		return KHRDMA_E_BADDESC;
	}
	if (d->flags != 0)
		return KHRDMA_E_BADDESC;
	if (d->host != KHR_HOST_LOCAL && d->host != e->host)
		return KHRDMA_E_UNREACHABLE;
	if (d->lkey >= ep->nlregs || (l = ep->lregs[d->lkey]) == NULL || d->loff > l->len ||
	    d->len > l->len - d->loff)
		return KHRDMA_E_LOCAL;
	/* Membership before the key: a node outside the domain learns
	 * nothing about the keys inside it. */
	if (e->nodes[ep->rank].netids[ep->slot] != ep->netid)
		return KHRDMA_E_REVOKED;
	if (d->rank >= RE_MAX_NODES || !member(e, d->rank, ep->netid))
		return KHRDMA_E_NOT_MEMBER;
	if ((r = key_region(e, d->rkey)) == NULL || (uint32_t)r->ep->rank != d->rank ||
	    !r->ep->alive || r->ep->netid != ep->netid)
		return KHRDMA_E_KEY;
	if (d->roff > r->len || d->len > r->len - d->roff)
		return KHRDMA_E_RANGE;
	if (!(r->access & need))
		return KHRDMA_E_PERM;
	if (need == KHRDMA_REMOTE_ATOMIC && ((uintptr_t)(r->base + d->roff) & 7) != 0)
		return KHRDMA_E_BADDESC;
	*rr = r;
	*lr = l;
	return 0;
}

uint64_t
re_fence_ticket(const struct rdma_engine *e)
{
	return e->taken;
}

int
re_fence_done(const struct rdma_engine *e, uint64_t ticket)
{
	for (int r = 0; r < RE_MAX_NODES; r++)
		for (const struct re_ep *ep = e->nodes[r].eps; ep; ep = ep->next)
			if (ep->has_cur && ep->cur_seq <= ticket)
				return 0;
	return 1;
}

int
re_check(struct rdma_engine *e, struct re_ep *ep, const struct khr_sqe *sqe)
{
	struct re_region *r, *l;
	return check_op(e, ep, sqe, &r, &l);
}

int
re_pending(const struct re_ep *ep)
{
	if (ep->broken)
		return 0;
	return ep->has_cur || __atomic_load_n(&ep->hdr->sq_tail, __ATOMIC_ACQUIRE) != ep->sq_head;
}

void
re_ep_set_asleep(struct re_ep *ep, int asleep)
{
	__atomic_store_n(&ep->hdr->asleep, (uint32_t)asleep, __ATOMIC_SEQ_CST);
}

/* The descriptor at the head, read once, word by word: what the node
 * writes there afterwards changes nothing. */
static void
copy_sqe(struct khr_sqe *dst, const struct khr_sqe *src)
{
	uint64_t w[8];
	const uint64_t *s = (const uint64_t *)(const void *)src;
	for (int i = 0; i < 8; i++)
		w[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
	memcpy(dst, w, sizeof(w));
}

static void
complete(struct rdma_engine *e, struct re_ep *ep, const struct khr_sqe *d, int status, uint32_t len,
	 uint64_t result)
{
	struct khr_cqe c = {.wr_id = d->wr_id,
			    .status = status,
			    .op = d->op,
			    .len = status ? 0 : len,
			    .result = result};
	memcpy(&ep->cq[ep->cq_tail % KHR_CQ_DEPTH], &c, sizeof(c));
	ep->cq_tail++;
	__atomic_store_n(&ep->hdr->cq_tail, ep->cq_tail, __ATOMIC_RELEASE);
	ep->cnt->ops++;
	e->nodes[ep->rank].dirty = 1;
	e->st->ops[d->op <= KHRDMA_FADD ? d->op : 0]++;
	if (status)
		e->st->errors++;
}

static void
count(struct rdma_engine *e, struct re_ep *ep, uint64_t rd, uint64_t wr)
{
	ep->cnt->rd += rd;
	ep->cnt->wr += wr;
	e->st->bytes_rd += rd;
	e->st->bytes_wr += wr;
	e->nodes[ep->rank].dirty = 1;
}

/* Run (a piece of) ep's current operation, at most room bytes of it.
 * Returns the bytes moved. */
static size_t
run_cur(struct rdma_engine *e, struct re_ep *ep, size_t room)
{
	struct khr_sqe *d = &ep->cur;
	struct re_region *r, *l;
	int st = check_op(e, ep, d, &r, &l);

	if (st) {
		complete(e, ep, d, st, 0, 0);
		ep->has_cur = 0;
		return 0;
	}
	if (d->op == KHRDMA_CAS || d->op == KHRDMA_FADD) {
		uint64_t *p = (uint64_t *)(void *)(r->base + d->roff), old;
		if (d->op == KHRDMA_CAS) {
			old = d->arg0;
			__atomic_compare_exchange_n(p, &old, d->arg1, 0, __ATOMIC_SEQ_CST,
						    __ATOMIC_SEQ_CST);
		} else {
			old = __atomic_fetch_add(p, d->arg0, __ATOMIC_SEQ_CST);
		}
		memcpy(l->base + d->loff, &old, sizeof(old));
		count(e, ep, 8, 8);
		complete(e, ep, d, 0, 8, old);
		ep->has_cur = 0;
		return 8;
	}
	uint64_t left = d->len - ep->cur_done;
	size_t n = left < room ? (size_t)left : room;
	uint8_t *rp = r->base + d->roff + ep->cur_done, *lp = l->base + d->loff + ep->cur_done;
	/* memmove: two regions may be views of the same pages. */
	if (d->op == KHRDMA_READ) {
		memmove(lp, rp, n);
		count(e, ep, n, 0);
	} else {
		memmove(rp, lp, n);
		count(e, ep, 0, n);
	}
	ep->cur_done += n;
	if (ep->cur_done == d->len) {
		complete(e, ep, d, 0, d->len, 0);
		ep->has_cur = 0;
	}
	return n;
}

int
re_service(struct rdma_engine *e, struct re_ep *ep, size_t budget, int *signal)
{
	struct khr_ring_hdr *h = ep->hdr;
	uint32_t cq0 = ep->cq_tail;
	size_t used = 0;
	int done = 0;

	if (ep->broken)
		return 0;
	while (done < EP_MAX_BATCH) {
		if (!ep->has_cur) {
			uint32_t avail =
			    __atomic_load_n(&h->sq_tail, __ATOMIC_ACQUIRE) - ep->sq_head;
			if (avail == 0)
				break;
			uint32_t inuse =
			    ep->cq_tail - __atomic_load_n(&h->cq_head, __ATOMIC_ACQUIRE);
			if (avail > KHR_SQ_DEPTH || inuse > KHR_CQ_DEPTH) {
				ep->broken = 1; /* the node wrote nonsense into its ring */
				return -1;
			}
			if (inuse == KHR_CQ_DEPTH)
				break; /* its completions are not consumed: wait */
			copy_sqe(&ep->cur, &ep->sq[ep->sq_head % KHR_SQ_DEPTH]);
			/* The next descriptor's line comes over while this one runs. */
			__builtin_prefetch(&ep->sq[(ep->sq_head + 1) % KHR_SQ_DEPTH]);
			ep->sq_head++;
			__atomic_store_n(&h->sq_head, ep->sq_head, __ATOMIC_RELEASE);
			ep->has_cur = 1;
			ep->cur_done = 0;
			ep->cur_seq = ++e->taken;
		}
		done++;
		used += run_cur(e, ep, budget > used ? budget - used : 1);
		if (ep->has_cur || used >= budget)
			break;
	}
	if (ep->cq_tail != cq0) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&h->waiting, __ATOMIC_RELAXED))
			*signal = 1;
	}
	return done;
}
