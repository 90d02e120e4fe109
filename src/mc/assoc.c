/* assoc: the arena's hash table, its striped locks and its growth
 * (assoc.h).  The chunk header before each item keeps the key hash, so a
 * growth rehashes without reading keys. */
#include "mc/assoc.h"
#include "mc/slabs.h"

#include <string.h>

static inline struct mc_entry *
bucket(const struct mc_assoc *t, uint64_t off, uint64_t b)
{
	return (struct mc_entry *)mc_arena_at(t->arena, off + b * MC_BUCKET_BYTES);
}

static inline uint64_t
span_of(uint64_t n)
{
	uint64_t sp = n / MC_STRIPES;
	return sp < MC_PROBE ? MC_PROBE : sp;
}

static void
stripes_of(uint64_t n, uint64_t hash, uint32_t *s0, uint32_t *s1)
{
	uint64_t home = hash & (n - 1), last = (home + MC_PROBE - 1) & (n - 1);
	uint64_t sp = span_of(n);
	uint32_t a = (uint32_t)(home / sp), b = (uint32_t)(last / sp);

	*s0 = a < b ? a : b;
	*s1 = a < b ? b : a;
}

void
mc_assoc_init(struct mc_assoc *t, struct mc_arena *a, uint64_t buckets)
{
	memset(t, 0, sizeof(*t));
	t->arena = a;
	if (buckets < MC_PROBE)
		buckets = MC_PROBE;
	if (buckets > a->max_buckets)
		buckets = a->max_buckets;
	t->nbuckets = buckets;
	t->off = a->table_area_off;
	t->half = 0;
	for (uint32_t i = 0; i < MC_STRIPES; i++)
		pthread_mutex_init(&t->stripes[i].m, NULL);
	struct mc_arena_hdr *h = a->hdr;
	mc_arena_hdr_lock(a);
	__atomic_store_n(&h->table_off, t->off, __ATOMIC_RELAXED);
	__atomic_store_n(&h->table_buckets, t->nbuckets, __ATOMIC_RELAXED);
	__atomic_store_n(&h->table_gen, t->gen, __ATOMIC_RELEASE);
	mc_arena_hdr_unlock(a);
}

void
mc_assoc_destroy(struct mc_assoc *t)
{
	for (uint32_t i = 0; i < MC_STRIPES; i++)
		pthread_mutex_destroy(&t->stripes[i].m);
}

static int
snapshot(struct mc_assoc *t, uint64_t hash, struct mc_locked *lk)
{
	lk->gen = __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE);
	lk->nbuckets = __atomic_load_n(&t->nbuckets, __ATOMIC_RELAXED);
	lk->off = __atomic_load_n(&t->off, __ATOMIC_RELAXED);
	stripes_of(lk->nbuckets, hash, &lk->s0, &lk->s1);
	return 0;
}

/* With the stripes held, the table cannot change: did it before? */
static int
still_current(struct mc_assoc *t, const struct mc_locked *lk)
{
	return __atomic_load_n(&t->gen, __ATOMIC_RELAXED) == lk->gen;
}

void
mc_assoc_unlock(struct mc_assoc *t, const struct mc_locked *lk)
{
	if (lk->s1 != lk->s0)
		pthread_mutex_unlock(&t->stripes[lk->s1].m);
	pthread_mutex_unlock(&t->stripes[lk->s0].m);
}

void
mc_assoc_lock(struct mc_assoc *t, uint64_t hash, struct mc_locked *lk)
{
	for (;;) {
		snapshot(t, hash, lk);
		pthread_mutex_lock(&t->stripes[lk->s0].m);
		if (lk->s1 != lk->s0)
			pthread_mutex_lock(&t->stripes[lk->s1].m);
		if (still_current(t, lk))
			return;
		mc_assoc_unlock(t, lk);
	}
}

int
mc_assoc_trylock(struct mc_assoc *t, uint64_t hash, struct mc_locked *lk)
{
	snapshot(t, hash, lk);
	if (pthread_mutex_trylock(&t->stripes[lk->s0].m) != 0)
		return -1;
	if (lk->s1 != lk->s0 && pthread_mutex_trylock(&t->stripes[lk->s1].m) != 0) {
		pthread_mutex_unlock(&t->stripes[lk->s0].m);
		return -1;
	}
	if (still_current(t, lk))
		return 0;
	mc_assoc_unlock(t, lk);
	return -1;
}

struct mc_entry *
mc_assoc_find(struct mc_assoc *t, const struct mc_locked *lk, uint64_t hash, const char *key,
	      size_t klen)
{
	uint64_t n = lk->nbuckets, home = hash & (n - 1), tag = mc_key_tag(hash);

	for (uint64_t i = 0; i < MC_PROBE; i++) {
		struct mc_entry *e = bucket(t, lk->off, (home + i) & (n - 1));
		for (unsigned j = 0; j < MC_BUCKET_ENTRIES; j++) {
			uint64_t w = e[j].word0;
			if (w == 0 || (w >> MC_OFF_BITS) != tag)
				continue;
			const struct mc_item *it = mc_arena_at(t->arena, w & MC_OFF_MASK);
			if (it->key_len == klen &&
			    memcmp((const char *)it + MC_ITEM_HDR, key, klen) == 0)
				return &e[j];
		}
	}
	return NULL;
}

struct mc_entry *
mc_assoc_find_off(struct mc_assoc *t, const struct mc_locked *lk, uint64_t hash, uint64_t item_off)
{
	uint64_t n = lk->nbuckets, home = hash & (n - 1);
	uint64_t want = mc_entry_word0(hash, item_off);

	for (uint64_t i = 0; i < MC_PROBE; i++) {
		struct mc_entry *e = bucket(t, lk->off, (home + i) & (n - 1));
		for (unsigned j = 0; j < MC_BUCKET_ENTRIES; j++)
			if (e[j].word0 == want)
				return &e[j];
	}
	return NULL;
}

static void
entry_write(struct mc_entry *e, uint64_t w0, uint32_t len, uint32_t ver)
{
	uint64_t meta = (uint64_t)len | (uint64_t)ver << 32;

	__atomic_store_n((uint64_t *)&e->len, meta, __ATOMIC_RELAXED);
	__atomic_store_n(&e->word0, w0, __ATOMIC_RELEASE);
}

static struct mc_entry *
free_slot(struct mc_assoc *t, uint64_t off, uint64_t n, uint64_t hash)
{
	uint64_t home = hash & (n - 1);

	for (uint64_t i = 0; i < MC_PROBE; i++) {
		struct mc_entry *e = bucket(t, off, (home + i) & (n - 1));
		for (unsigned j = 0; j < MC_BUCKET_ENTRIES; j++)
			if (e[j].word0 == 0)
				return &e[j];
	}
	return NULL;
}

struct mc_entry *
mc_assoc_slot(struct mc_assoc *t, const struct mc_locked *lk, uint64_t hash)
{
	uint64_t cap = lk->nbuckets * MC_BUCKET_ENTRIES;
	uint64_t used = __atomic_load_n(&t->count, __ATOMIC_RELAXED);

	if (used + 1 > cap / 4 * 3 && lk->nbuckets < t->arena->max_buckets)
		return NULL;
	return free_slot(t, lk->off, lk->nbuckets, hash);
}

void
mc_assoc_fill(struct mc_assoc *t, struct mc_entry *e, uint64_t hash, uint64_t item_off,
	      uint32_t len, uint32_t ver)
{
	entry_write(e, mc_entry_word0(hash, item_off), len, ver);
	__atomic_fetch_add(&t->count, 1, __ATOMIC_RELAXED);
}

void
mc_assoc_replace(struct mc_entry *e, uint64_t hash, uint64_t item_off, uint32_t len, uint32_t ver)
{
	entry_write(e, mc_entry_word0(hash, item_off), len, ver);
}

void
mc_assoc_remove(struct mc_assoc *t, struct mc_entry *e)
{
	__atomic_store_n(&e->word0, 0, __ATOMIC_RELEASE);
	__atomic_store_n((uint64_t *)&e->len, 0, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&t->count, 1, __ATOMIC_RELAXED);
}

/* Copy every entry of the current table into an empty one of n buckets at
 * off.  Returns 0, or -1 when some window of the new table overflowed. */
static int
rehash(struct mc_assoc *t, uint64_t off, uint64_t n)
{
	uint64_t oldn = t->nbuckets;

	for (uint64_t b = 0; b < oldn; b++) {
		struct mc_entry *e = bucket(t, t->off, b);
		for (unsigned j = 0; j < MC_BUCKET_ENTRIES; j++) {
			uint64_t w = e[j].word0;
			if (w == 0)
				continue;
			struct mc_chunk *ch = mc_item_chunk(mc_arena_at(t->arena, w & MC_OFF_MASK));
			struct mc_entry *d = free_slot(t, off, n, ch->hash);
			if (d == NULL)
				return -1;
			entry_write(d, w, e[j].len, e[j].ver);
		}
	}
	return 0;
}

void
mc_assoc_each(struct mc_assoc *t, void (*fn)(void *arg, struct mc_entry *e), void *arg)
{
	for (uint32_t i = 0; i < MC_STRIPES; i++)
		pthread_mutex_lock(&t->stripes[i].m);
	for (uint64_t b = 0; b < t->nbuckets; b++) {
		struct mc_entry *e = bucket(t, t->off, b);
		for (uint32_t j = 0; j < MC_BUCKET_ENTRIES; j++)
			if (e[j].word0 != 0)
				fn(arg, &e[j]);
	}
	for (uint32_t i = MC_STRIPES; i-- > 0;)
		pthread_mutex_unlock(&t->stripes[i].m);
}

int
mc_assoc_grow(struct mc_assoc *t, uint64_t gen)
{
	struct mc_arena *a = t->arena;
	int rc = 0;

	for (uint32_t i = 0; i < MC_STRIPES; i++)
		pthread_mutex_lock(&t->stripes[i].m);
	if (t->gen != gen)
		goto out; /* another thread grew it meanwhile */
	uint64_t other = a->table_area_off + (uint64_t)(1 - t->half) * a->table_half;
	uint64_t n = t->nbuckets * 2;
	for (; n <= a->max_buckets; n *= 2) {
		if (rehash(t, other, n) == 0)
			break;
		memset(mc_arena_at(a, other), 0, n * MC_BUCKET_BYTES);
	}
	if (n > a->max_buckets) {
		rc = -1;
		goto out;
	}
	uint64_t old = t->off, oldn = t->nbuckets;
	mc_arena_hdr_lock(a);
	if (t->publish && t->publish(t->hook_arg, a->hdr, other, n) < 0) {
		/* It cannot be exposed: the table stays as it was. */
		mc_arena_hdr_unlock(a);
		memset(mc_arena_at(a, other), 0, n * MC_BUCKET_BYTES);
		rc = -1;
		goto out;
	}
	__atomic_store_n(&t->nbuckets, n, __ATOMIC_RELAXED);
	__atomic_store_n(&t->off, other, __ATOMIC_RELAXED);
	t->half = 1 - t->half;
	__atomic_store_n(&t->gen, gen + 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&t->grows, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&a->hdr->table_off, other, __ATOMIC_RELAXED);
	__atomic_store_n(&a->hdr->table_buckets, n, __ATOMIC_RELAXED);
	__atomic_store_n(&a->hdr->table_gen, gen + 1, __ATOMIC_RELEASE);
	mc_arena_hdr_unlock(a);
	if (t->retire)
		t->retire(t->hook_arg, old, oldn);
	/* The other half must read as zeros when it is next built in; its
	 * pages go back to the kernel.  One-sided readers still looking at it
	 * see empty buckets, a miss they check against table_gen. */
	memset(mc_arena_at(a, old), 0, oldn * MC_BUCKET_BYTES);
	mc_arena_punch(a, old, a->table_half);
out:
	for (uint32_t i = MC_STRIPES; i-- > 0;)
		pthread_mutex_unlock(&t->stripes[i].m);
	return rc;
}
