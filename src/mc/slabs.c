/* slabs: size classes, pages, free lists and per-class LRUs over the item
 * area (slabs.h).  Memory is taken from the area only as chunks are first
 * handed out, so an idle cache touches none of it. */
#include "mc/slabs.h"

#include <string.h>

#define ALIGN	8u
#define PAGE_4K 4096u

/* The largest item: the largest key and value memcached takes (value
 * bytes + key bytes <= 1 MiB - 59), with both headers, in 4 KiB pages. */
#define MC_LARGEST_CHUNK                                                                           \
	((MC_CHUNK_HDR + MC_ITEM_HDR + (1u << 20) - 59u + PAGE_4K - 1) / PAGE_4K * PAGE_4K)

static inline struct mc_chunk *
at(struct mc_slabs *s, uint64_t off)
{
	return off ? (struct mc_chunk *)mc_arena_at(s->arena, off) : NULL;
}

static inline uint64_t
off_of(struct mc_slabs *s, struct mc_chunk *ch)
{
	return mc_arena_off(s->arena, ch);
}

void
mc_slabs_init(struct mc_slabs *s, struct mc_arena *a, double factor, mc_reclaim_fn *reclaim,
	      void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->arena = a;
	s->reclaim = reclaim;
	s->ctx = ctx;
	pthread_mutex_init(&s->page_lock, NULL);
	s->page_next = a->item_off;
	s->page_end = a->item_off + a->item_size;

	int i = 0;
	uint32_t size = MC_MIN_CHUNK;
	while (++i < MC_MAX_CLASSES - 4 && size < MC_CHUNK_MAX / factor) {
		if (size % ALIGN)
			size += ALIGN - size % ALIGN;
		s->cls[i].size = size;
		size = (uint32_t)(size * factor);
	}
	s->cls[i].size = MC_CHUNK_MAX;
	/* Larger items take a page each, of their own size: items are one
	 * contiguous read for the one-sided path, so never chained. */
	uint32_t large[] = {MC_CHUNK_MAX / 4 * 5, MC_CHUNK_MAX / 16 * 25, MC_LARGEST_CHUNK};
	for (size_t k = 0; k < sizeof(large) / sizeof(large[0]); k++)
		s->cls[++i].size = large[k];
	s->nclasses = i;
	for (i = 1; i <= s->nclasses; i++) {
		struct mc_slabclass *c = &s->cls[i];
		pthread_mutex_init(&c->lock, NULL);
		if (c->size <= MC_CHUNK_MAX) {
			c->run = MC_PAGE_SIZE;
			c->perpage = MC_PAGE_SIZE / c->size;
		} else {
			c->run = c->size;
			c->perpage = 1;
		}
	}
}

void
mc_slabs_destroy(struct mc_slabs *s)
{
	for (int i = 1; i <= s->nclasses; i++)
		pthread_mutex_destroy(&s->cls[i].lock);
	pthread_mutex_destroy(&s->page_lock);
}

int
mc_slabs_class(const struct mc_slabs *s, size_t n)
{
	int lo = 1, hi = s->nclasses;

	if (n > s->cls[hi].size)
		return 0;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (s->cls[mid].size >= n)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void
lru_unlink(struct mc_slabs *s, struct mc_slabclass *c, struct mc_chunk *ch)
{
	struct mc_chunk *p = at(s, ch->prev), *n = at(s, ch->next);

	if (p != NULL)
		p->next = ch->next;
	else
		c->head = ch->next;
	if (n != NULL)
		n->prev = ch->prev;
	else
		c->tail = ch->prev;
	ch->prev = ch->next = 0;
	c->lru_items--;
}

static void
lru_push(struct mc_slabs *s, struct mc_slabclass *c, struct mc_chunk *ch)
{
	uint64_t o = off_of(s, ch);

	ch->prev = 0;
	ch->next = c->head;
	if (c->head != 0)
		at(s, c->head)->prev = o;
	c->head = o;
	if (c->tail == 0)
		c->tail = o;
	c->lru_items++;
}

/* A new page for class c, or 0 when the item area is used up. */
static int
grab_page(struct mc_slabs *s, struct mc_slabclass *c)
{
	int ok = 0;

	pthread_mutex_lock(&s->page_lock);
	if (s->page_end - s->page_next >= c->run) {
		c->carve = s->page_next;
		c->carve_end = s->page_next + (uint64_t)c->perpage * c->size;
		s->page_next += c->run;
		s->pages_given++;
		c->pages++;
		ok = 1;
	}
	pthread_mutex_unlock(&s->page_lock);
	return ok;
}

/* Walk up from the LRU tail for a chunk to take (class lock held): an
 * expired item among the last few, else the least recently used idle one;
 * items hit since they were last here go back to the head. */
static struct mc_chunk *
evict(struct mc_slabs *s, struct mc_slabclass *c, uint32_t now)
{
	struct mc_chunk *ch = at(s, c->tail), *candidate = NULL;

	for (int tries = 0; ch != NULL && tries < MC_EVICT_TRIES; tries++) {
		struct mc_chunk *prev = at(s, ch->prev);
		switch (s->reclaim(s->ctx, ch, now, 0)) {
		case MC_RECLAIM_EXPIRED:
			c->reclaimed++;
			lru_unlink(s, c, ch);
			return ch;
		case MC_RECLAIM_ACTIVE:
			lru_unlink(s, c, ch);
			lru_push(s, c, ch);
			break;
		case MC_RECLAIM_CANDIDATE:
			if (candidate == NULL)
				candidate = ch;
			break;
		default:
			break;
		}
		if (candidate != NULL && tries >= MC_EXPIRED_LOOK)
			break;
		ch = prev;
	}
	if (candidate == NULL)
		return NULL;
	switch (s->reclaim(s->ctx, candidate, now, 1)) {
	case MC_RECLAIM_EVICTED:
		c->evictions++;
		break;
	case MC_RECLAIM_EXPIRED:
		c->reclaimed++;
		break;
	default:
		return NULL;
	}
	lru_unlink(s, c, candidate);
	return candidate;
}

struct mc_chunk *
mc_slabs_alloc(struct mc_slabs *s, size_t n, uint32_t now)
{
	int id = mc_slabs_class(s, n);
	struct mc_chunk *ch = NULL;

	if (id == 0)
		return NULL;
	struct mc_slabclass *c = &s->cls[id];
	pthread_mutex_lock(&c->lock);
	if (c->free != 0) {
		ch = at(s, c->free);
		c->free = ch->next;
		c->nfree--;
	} else if (c->carve + c->size <= c->carve_end || grab_page(s, c)) {
		ch = at(s, c->carve);
		c->carve += c->size;
	} else if ((ch = evict(s, c, now)) != NULL) {
		c->used--; /* the evicted chunk was counted as used */
		c->requested -= ch->nbytes;
	} else {
		c->outofmemory++;
		pthread_mutex_unlock(&c->lock);
		return NULL;
	}
	ch->hash = 0;
	__atomic_store_n(&ch->refs, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->time, now, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->flags, MC_CH_ONLRU, __ATOMIC_RELAXED);
	ch->cls = (uint8_t)id;
	ch->nbytes = (uint32_t)n;
	lru_push(s, c, ch);
	c->used++;
	c->requested += n;
	pthread_mutex_unlock(&c->lock);
	return ch;
}

void
mc_slabs_free(struct mc_slabs *s, struct mc_chunk *ch)
{
	struct mc_slabclass *c = &s->cls[ch->cls];

	pthread_mutex_lock(&c->lock);
	if (__atomic_load_n(&ch->flags, __ATOMIC_RELAXED) & MC_CH_ONLRU)
		lru_unlink(s, c, ch);
	__atomic_store_n(&ch->flags, 0, __ATOMIC_RELAXED);
	c->used--;
	c->requested -= ch->nbytes;
	ch->prev = 0;
	ch->next = c->free;
	c->free = off_of(s, ch);
	c->nfree++;
	pthread_mutex_unlock(&c->lock);
}
