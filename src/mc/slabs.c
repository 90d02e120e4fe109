/* slabs: size classes, pages, free lists and per-class LRUs over the item
 * area (slabs.h).  Memory is taken from the area only as chunks are first
 * handed out, so an idle cache touches none of it.  A page belongs to one
 * class at a time; page_cls says which. */
#include "mc/slabs.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 8u

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

int
mc_slabs_init(struct mc_slabs *s, struct mc_arena *a, double factor, mc_reclaim_fn *reclaim,
	      void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->arena = a;
	s->reclaim = reclaim;
	s->ctx = ctx;
	pthread_mutex_init(&s->page_lock, NULL);
	s->page_size = a->item_size < MC_PAGE_SIZE ? a->item_size : MC_PAGE_SIZE;
	s->npages = a->item_size / s->page_size;
	s->page_next = a->item_off;
	s->page_end = a->item_off + s->npages * s->page_size;
	s->page_cls = calloc(s->npages ? s->npages : 1, 1);
	if (s->page_cls == NULL)
		return -1;

	int i = 0;
	uint32_t size = MC_MIN_CHUNK;
	while (++i < MC_MAX_CLASSES - 4 && size < MC_CHUNK_MAX / factor) {
		if (size % ALIGN)
			size += ALIGN - size % ALIGN;
		s->cls[i].size = size;
		size = (uint32_t)(size * factor);
	}
	s->cls[i].size = MC_CHUNK_MAX;
	/* Larger items take a chunk of their own class, one or two a page:
	 * items are one contiguous read for the one-sided path, never
	 * chained like memcached's. */
	uint32_t large[] = {MC_CHUNK_MAX / 4 * 5, MC_CHUNK_MAX / 16 * 25, MC_PAGE_SIZE};
	for (size_t k = 0; k < sizeof(large) / sizeof(large[0]); k++)
		s->cls[++i].size = large[k];
	s->nclasses = i;
	for (i = 1; i <= s->nclasses; i++) {
		pthread_mutex_init(&s->cls[i].lock, NULL);
		s->cls[i].perpage = (uint32_t)(s->page_size / s->cls[i].size);
	}
	return 0;
}

void
mc_slabs_destroy(struct mc_slabs *s)
{
	for (int i = 1; i <= s->nclasses; i++)
		pthread_mutex_destroy(&s->cls[i].lock);
	pthread_mutex_destroy(&s->page_lock);
	free(s->page_cls);
	s->page_cls = NULL;
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

/* Make the page at off the one class c carves from. */
static void
carve_page(struct mc_slabs *s, struct mc_slabclass *c, int id, uint64_t off)
{
	c->carve = off;
	c->carve_end = off + (uint64_t)c->perpage * c->size;
	c->pages++;
	__atomic_store_n(&s->page_cls[(off - s->arena->item_off) / s->page_size], (uint8_t)id,
			 __ATOMIC_RELAXED);
}

/* A new page for class c, or 0 when the item area is used up. */
static int
grab_page(struct mc_slabs *s, struct mc_slabclass *c, int id)
{
	uint64_t off = 0;

	if (c->perpage == 0)
		return 0;
	pthread_mutex_lock(&s->page_lock);
	if (s->page_end - s->page_next >= s->page_size) {
		off = s->page_next;
		s->page_next += s->page_size;
		s->pages_given++;
	}
	pthread_mutex_unlock(&s->page_lock);
	if (off == 0)
		return 0;
	carve_page(s, c, id, off);
	return 1;
}

/* Walk up from the LRU tail for a chunk to take (class lock held): an
 * expired item among the last few, else the least recently used idle one;
 * items hit since they were last here go back to the head. */
static struct mc_chunk *
evict(struct mc_slabs *s, struct mc_slabclass *c, uint32_t now)
{
	struct mc_chunk *ch = at(s, c->tail), *candidate = NULL, *active = NULL;

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
			if (active == NULL)
				active = ch;
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
	/* Every item looked at was hit lately (a read-heavy load): a store
	 * must not fail for that; the least recently used of them goes. */
	if (candidate == NULL)
		candidate = active;
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

static void
to_limbo(struct mc_slabs *s, struct mc_slabclass *c, struct mc_chunk *ch)
{
	ch->prev = 0;
	ch->next = c->limbo;
	c->limbo = off_of(s, ch);
	c->nlimbo++;
}

/* Empty the page at page of class v (its lock held): every chunk free,
 * uncarved, or an item nobody holds, which is unlinked.  Returns 0, or -1
 * when some chunk is in use (items unlinked so far go to v's free list). */
static int
empty_page(struct mc_slabs *s, struct mc_slabclass *v, uint64_t page, uint32_t now)
{
	uint64_t end = page + (uint64_t)v->perpage * v->size;
	int busy = 0;

	if (v->carve >= page && v->carve < end)
		end = v->carve; /* the rest was never handed out */
	for (uint64_t o = page; o < end; o += v->size) {
		struct mc_chunk *ch = at(s, o);
		uint8_t fl = __atomic_load_n(&ch->flags, __ATOMIC_RELAXED);
		if (!(fl & MC_CH_ONLRU))
			continue; /* on the free list */
		switch (s->reclaim(s->ctx, ch, now, 1)) {
		case MC_RECLAIM_EVICTED:
			v->evictions++;
			break;
		case MC_RECLAIM_EXPIRED:
			v->reclaimed++;
			break;
		default:
			busy = 1;
			continue;
		}
		lru_unlink(s, v, ch);
		__atomic_store_n(&ch->flags, 0, __ATOMIC_RELAXED);
		v->used--;
		v->requested -= ch->nbytes;
		if (s->fence) {
			to_limbo(s, v, ch);
			continue;
		}
		ch->next = v->free;
		v->free = o;
		v->nfree++;
	}
	if (busy)
		return -1;
	/* Take the page's chunks off the free list and limbo (the page is
	 * fenced as a whole before it is carved again). */
	uint64_t *pp = &v->free;
	while (*pp != 0) {
		if (*pp >= page && *pp < page + s->page_size) {
			*pp = at(s, *pp)->next;
			v->nfree--;
		} else {
			pp = &at(s, *pp)->next;
		}
	}
	pp = &v->limbo;
	while (*pp != 0) {
		if (*pp >= page && *pp < page + s->page_size) {
			*pp = at(s, *pp)->next;
			v->nlimbo--;
		} else {
			pp = &at(s, *pp)->next;
		}
	}
	if (v->carve >= page && v->carve < page + s->page_size)
		v->carve = v->carve_end = 0;
	v->pages--;
	return 0;
}

/* Class id has no memory and nothing to evict: move a page of another
 * class to it (its lock held), from a class with more than one page if
 * there is such a page nobody is reading, else from any.  Returns 1 when
 * it has a page to carve. */
static int
steal_from(struct mc_slabs *s, struct mc_slabclass *c, int id, uint32_t now, int only)
{
	if (c->perpage == 0 || s->npages == 0)
		return 0;
	unsigned from = __atomic_load_n(&s->steal_at, __ATOMIC_RELAXED);
	for (uint64_t least = 2; least > 0; least--) {
		for (uint64_t k = 0; k < s->npages; k++) {
			uint64_t p = (from + k) % s->npages;
			int vid = __atomic_load_n(&s->page_cls[p], __ATOMIC_RELAXED);
			if (vid == 0 || vid == id || (only && vid != only))
				continue;
			struct mc_slabclass *v = &s->cls[vid];
			if (pthread_mutex_trylock(&v->lock) != 0)
				continue;
			uint64_t page = s->arena->item_off + p * s->page_size;
			int ok = __atomic_load_n(&s->page_cls[p], __ATOMIC_RELAXED) == vid &&
				 v->pages >= least && empty_page(s, v, page, now) == 0;
			if (ok) {
				/* Ours before v's lock goes: another class
				 * looking for a page must not empty it again. */
				__atomic_store_n(&s->page_cls[p], (uint8_t)id, __ATOMIC_RELAXED);
				v->moved_out++;
			}
			pthread_mutex_unlock(&v->lock);
			if (!ok)
				continue;
			__atomic_store_n(&s->steal_at, (unsigned)((p + 1) % s->npages),
					 __ATOMIC_RELAXED);
			__atomic_fetch_add(&s->pages_moved, 1, __ATOMIC_RELAXED);
			c->moved_in++;
			carve_page(s, c, id, page);
			return 1;
		}
		if (only)
			break; /* a class of one page keeps it */
	}
	return 0;
}

static int
steal_page(struct mc_slabs *s, struct mc_slabclass *c, int id, uint32_t now)
{
	return steal_from(s, c, id, now, 0);
}

/* The time of class v's least recently used item, 0 if none (a racy read:
 * a heuristic only). */
static uint32_t
tail_time(struct mc_slabs *s, struct mc_slabclass *v)
{
	uint64_t t = __atomic_load_n(&v->tail, __ATOMIC_RELAXED);
	return t ? __atomic_load_n(&at(s, t)->time, __ATOMIC_RELAXED) : 0;
}

/* Class id is about to evict its least recently used item.  When another
 * class's least recently used item is clearly older, a page of that class
 * serves the memory better here (memcached's age balancing, done when it is
 * needed instead of by a background thread): the sizes a workload asks for
 * can change, and the memory follows.  Looked at every AGE_EVERY evictions
 * of a class.  Returns 1 when it has a page to carve. */
#define AGE_EVERY 32
#define AGE_SLACK 2 /* seconds */
static int
steal_for_age(struct mc_slabs *s, struct mc_slabclass *c, int id, uint32_t now)
{
	if ((c->evictions + c->reclaimed) % AGE_EVERY != 0 || c->tail == 0)
		return 0;
	uint32_t mine = tail_time(s, c), oldest = mine;
	int victim = 0;
	for (int v = 1; v <= s->nclasses; v++) {
		if (v == id || __atomic_load_n(&s->cls[v].pages, __ATOMIC_RELAXED) < 2)
			continue;
		uint32_t t = tail_time(s, &s->cls[v]);
		if (t != 0 && t + AGE_SLACK < oldest) {
			oldest = t;
			victim = v;
		}
	}
	return victim ? steal_from(s, c, id, now, victim) : 0;
}

/* Wait for the device's reads begun so far, then every chunk in limbo is
 * free (class lock held). */
static void
fence_limbo(struct mc_slabs *s, struct mc_slabclass *c)
{
	if (c->limbo == 0)
		return;
	s->fence(s->fence_arg); /* a dead device reads nothing: go on regardless */
	__atomic_fetch_add(&s->fences, 1, __ATOMIC_RELAXED);
	while (c->limbo != 0) {
		struct mc_chunk *ch = at(s, c->limbo);
		c->limbo = ch->next;
		ch->next = c->free;
		c->free = off_of(s, ch);
		c->nfree++;
	}
	c->nlimbo = 0;
}

#define EVICT_BATCH 16 /* evictions per fence, when there is one */

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
	} else if (c->carve + c->size <= c->carve_end || grab_page(s, c, id)) {
		ch = at(s, c->carve);
		c->carve += c->size;
	} else if (s->fence && c->limbo != 0) {
		fence_limbo(s, c);
		ch = at(s, c->free);
		c->free = ch->next;
		c->nfree--;
	} else if (steal_for_age(s, c, id, now)) {
		if (s->fence) {
			s->fence(s->fence_arg);
			__atomic_fetch_add(&s->fences, 1, __ATOMIC_RELAXED);
		}
		ch = at(s, c->carve);
		c->carve += c->size;
	} else if ((ch = evict(s, c, now)) != NULL) {
		c->used--; /* the evicted chunk was counted as used */
		c->requested -= ch->nbytes;
		if (s->fence) {
			/* A few more into limbo, then one fence for them all. */
			to_limbo(s, c, ch);
			for (int k = 1; k < EVICT_BATCH && (ch = evict(s, c, now)) != NULL; k++) {
				c->used--;
				c->requested -= ch->nbytes;
				to_limbo(s, c, ch);
			}
			fence_limbo(s, c);
			ch = at(s, c->free);
			c->free = ch->next;
			c->nfree--;
		}
	} else if (steal_page(s, c, id, now)) {
		if (s->fence) { /* the page held another class's items */
			s->fence(s->fence_arg);
			__atomic_fetch_add(&s->fences, 1, __ATOMIC_RELAXED);
		}
		ch = at(s, c->carve);
		c->carve += c->size;
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
	if (s->fence) {
		to_limbo(s, c, ch);
	} else {
		ch->prev = 0;
		ch->next = c->free;
		c->free = off_of(s, ch);
		c->nfree++;
	}
	pthread_mutex_unlock(&c->lock);
}
