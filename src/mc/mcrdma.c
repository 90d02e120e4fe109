/* mcrdma: the arena through the RDMA device (mcrdma.h).  One device context
 * per domain registers the regions (under a lock: a context is for one
 * thread at a time); each worker has its own context per domain, with the
 * item area registered as its local buffer, for the reads of two-phase
 * sets.  A grown table is registered before the header names it and the
 * old one deregistered before its pages are given back, so a reader's key
 * never reaches memory the server no longer means. */
#include "mc/mcrdma.h"
#include "common/log.h"
#include "common/util.h"
#include "mc/arena.h"
#include "mc/items.h"
#include "rdma/khrdma.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mc_rdma_dom {
	char ifname[16];
	khrdma_dev *ctl;
	struct khrdma_info info;
	uint32_t addr4;
	struct khrdma_mr *hdr, *items, *table, *next_table;
	khrdma_dev **thr;	      /* per worker */
	struct khrdma_mr **thr_items; /* the item area, as each worker's local buffer */
};

struct mc_rdma {
	struct mc_cache *c;
	pthread_mutex_t lock;
	int nthreads;
	int ndom;
	struct mc_rdma_dom dom[MC_RDMA_SLOTS];
};

/* Make every page of [off, off+len) present: the device takes only memory
 * the node has. */
static void
touch(struct mc_arena *a, uint64_t off, uint64_t len)
{
	volatile uint8_t *p = mc_arena_at(a, off);
	for (uint64_t i = 0; i < len; i += 4096)
		p[i] = p[i];
}

static struct khrdma_mr *
reg(struct mc_rdma_dom *d, struct mc_arena *a, uint64_t off, uint64_t len, int access)
{
	return khrdma_reg_fd(d->ctl, a->fd, off, (size_t)len, mc_arena_at(a, off), access);
}

static void
dom_close(struct mc_rdma *r, struct mc_rdma_dom *d)
{
	for (int t = 0; d->thr && t < r->nthreads; t++)
		khrdma_close(d->thr[t]); /* its regions go with it */
	free(d->thr);
	free(d->thr_items);
	khrdma_close(d->ctl);
	memset(d, 0, sizeof(*d));
}

static int
dom_open(struct mc_rdma *r, struct mc_rdma_dom *d, const char *ifname, char *err, size_t errlen)
{
	struct mc_arena *a = &r->c->arena;
	struct in_addr in;

	snprintf(d->ifname, sizeof(d->ifname), "%s", ifname);
	if ((d->ctl = khrdma_open(ifname, NULL)) == NULL)
		return seterr(err, errlen, "%s", khrdma_last_error());
	khrdma_query(d->ctl, &d->info);
	d->addr4 = inet_pton(AF_INET, d->info.addr, &in) == 1 ? ntohl(in.s_addr) : 0;
	uint64_t toff = a->hdr->table_off, tlen = a->hdr->table_buckets * MC_BUCKET_BYTES;
	touch(a, toff, tlen);
	if ((d->hdr = reg(d, a, 0, MC_HDR_SIZE, KHRDMA_REMOTE_READ)) == NULL ||
	    (d->items = reg(d, a, a->item_off, a->item_size, KHRDMA_REMOTE_READ)) == NULL ||
	    (d->table = reg(d, a, toff, tlen, KHRDMA_REMOTE_READ)) == NULL)
		goto fail;
	d->thr = calloc((size_t)r->nthreads, sizeof(*d->thr));
	d->thr_items = calloc((size_t)r->nthreads, sizeof(*d->thr_items));
	if (d->thr == NULL || d->thr_items == NULL) {
		seterr(err, errlen, "out of memory");
		goto fail_quiet;
	}
	for (int t = 0; t < r->nthreads; t++) {
		/* A two-phase set waits for one read; the engine may be
		 * asleep (one wake-up, tens of us): spin through it rather
		 * than sleep and add a second. */
		if ((d->thr[t] = khrdma_open(ifname, NULL)) != NULL)
			khrdma_set_spin(d->thr[t], 500);
		if (d->thr[t] == NULL ||
		    (d->thr_items[t] = khrdma_reg_fd(d->thr[t], a->fd, a->item_off, a->item_size,
						     mc_arena_at(a, a->item_off), 0)) == NULL)
			goto fail;
	}
	return 0;
fail:
	seterr(err, errlen, "%s: %s", ifname, khrdma_last_error());
fail_quiet:
	dom_close(r, d);
	return -1;
}

/* The header's slots name every domain's keys (the header lock held). */
static void
write_slots(struct mc_rdma *r, struct mc_arena_hdr *h)
{
	memset(h->rdma, 0, sizeof(h->rdma));
	for (int i = 0; i < r->ndom; i++) {
		struct mc_rdma_dom *d = &r->dom[i];
		h->rdma[i] = (struct mc_rdma_slot){.netid = d->info.netid,
						   .rank = d->info.rank,
						   .table_key = d->table->key,
						   .items_key = d->items->key};
	}
}

/* A grown table at off is about to be published: register it everywhere. */
static int
publish(void *arg, struct mc_arena_hdr *h, uint64_t off, uint64_t n)
{
	struct mc_rdma *r = arg;
	struct mc_arena *a = &r->c->arena;
	int i, rc = 0;

	touch(a, off, n * MC_BUCKET_BYTES);
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->ndom; i++)
		if ((r->dom[i].next_table =
			 reg(&r->dom[i], a, off, n * MC_BUCKET_BYTES, KHRDMA_REMOTE_READ)) == NULL)
			break;
	if (i < r->ndom) {
		log_warnx("rdma: cannot expose the grown table: %s", khrdma_last_error());
		while (i-- > 0) {
			khrdma_dereg_mr(r->dom[i].next_table);
			r->dom[i].next_table = NULL;
		}
		rc = -1;
	} else {
		for (i = 0; i < r->ndom; i++) {
			struct khrdma_mr *old = r->dom[i].table;
			r->dom[i].table = r->dom[i].next_table;
			r->dom[i].next_table = old; /* retired after the header moved */
		}
		write_slots(r, h);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static void
retire(void *arg, uint64_t off, uint64_t n)
{
	struct mc_rdma *r = arg;
	(void)off;
	(void)n;
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->ndom; i++) {
		khrdma_dereg_mr(r->dom[i].next_table);
		r->dom[i].next_table = NULL;
	}
	pthread_mutex_unlock(&r->lock);
}

/* Every one-sided read the engine had begun is done (one engine serves
 * every domain: a fence on one context covers them all). */
static int
fence(void *arg)
{
	struct mc_rdma *r = arg;
	pthread_mutex_lock(&r->lock);
	int rc = khrdma_fence(r->dom[0].ctl);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

struct mc_rdma *
mc_rdma_open(struct mc_cache *c, const char *ifname, int nthreads, char *err, size_t errlen)
{
	struct mc_rdma *r = calloc(1, sizeof(*r));
	struct mc_arena *a = &c->arena;
	char why[256] = "";

	if (r == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	r->c = c;
	r->nthreads = nthreads;
	pthread_mutex_init(&r->lock, NULL);
	/* Everything a reader may be sent to is present from the start. */
	touch(a, 0, MC_HDR_SIZE);
	touch(a, a->item_off, a->item_size);
	for (int i = 0; i < 16 && r->ndom < MC_RDMA_SLOTS; i++) {
		char name[16];
		if (ifname)
			snprintf(name, sizeof(name), "%s", ifname);
		else
			snprintf(name, sizeof(name), "eth%d", i);
		if (dom_open(r, &r->dom[r->ndom], name, why, sizeof(why)) == 0)
			r->ndom++;
		else if (ifname)
			break;
		if (ifname)
			break;
	}
	if (r->ndom == 0) {
		seterr(err, errlen, "%s", why[0] ? why : "no RDMA device");
		mc_rdma_close(r);
		return NULL;
	}
	/* From now on memory that held an item is reused only after a fence:
	 * readers may trust a copy whose header checks out (item.h). */
	c->slabs.fence_arg = r;
	__atomic_store_n(&c->slabs.fence, fence, __ATOMIC_RELEASE);
	mc_arena_hdr_lock(a);
	write_slots(r, a->hdr);
	a->hdr->features |= MC_FEAT_FENCED_REUSE;
	mc_arena_hdr_unlock(a);
	c->assoc.hook_arg = r;
	c->assoc.retire = retire;
	__atomic_store_n(&c->assoc.publish, publish, __ATOMIC_RELEASE);
	return r;
}

void
mc_rdma_close(struct mc_rdma *r)
{
	if (r == NULL)
		return;
	if (r->c && r->c->assoc.hook_arg == r) {
		r->c->assoc.publish = NULL;
		r->c->assoc.retire = NULL;
		r->c->assoc.hook_arg = NULL;
	}
	if (r->c && r->c->slabs.fence_arg == r) {
		r->c->slabs.fence = NULL;
		r->c->slabs.fence_arg = NULL;
	}
	for (int i = 0; i < r->ndom; i++)
		dom_close(r, &r->dom[i]);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int
mc_rdma_domains(const struct mc_rdma *r, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < r->ndom && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s (domain %u, %s)", i ? ", " : "",
				      r->dom[i].ifname, r->dom[i].info.netid, r->dom[i].info.addr);
	return r->ndom;
}

int
mc_rdma_describe(struct mc_rdma *r, uint32_t local4, char *buf, size_t len)
{
	for (int i = 0; r && i < r->ndom; i++) {
		struct mc_rdma_dom *d = &r->dom[i];
		if (d->addr4 == local4) {
			snprintf(buf, len, "RDMA %u %u %u 0x%llx", d->info.netid, d->info.rank,
				 d->info.host, (unsigned long long)d->hdr->key);
			return 0;
		}
	}
	return -1;
}

int
mc_rdma_fetch(struct mc_rdma *r, int t, uint32_t netid, uint32_t rank, uint64_t rkey, uint64_t roff,
	      void *dst, uint32_t len, char *err, size_t errlen)
{
	struct mc_arena *a = &r->c->arena;
	struct mc_rdma_dom *d = NULL;

	for (int i = 0; i < r->ndom; i++)
		if (r->dom[i].info.netid == netid)
			d = &r->dom[i];
	if (d == NULL || t < 0 || t >= r->nthreads)
		return seterr(err, errlen, "not exposed in domain %u", netid);
	uint64_t loff = mc_arena_off(a, dst) - a->item_off;
	struct khrdma_peer p = {.host = 0, .rank = rank};
	if (khrdma_read(d->thr[t], p, rkey, roff, d->thr_items[t], (size_t)loff, len) < 0)
		return seterr(err, errlen, "%s", khrdma_last_error());
	return 0;
}
