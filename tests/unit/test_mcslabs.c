/* mcslabs-*: khmcd's storage engine without the network: the arena
 * (mcslabs-1), slab classes and the LRU (mcslabs-2), references that keep
 * memory until a reply is written (mcslabs-3), the table growing beside
 * itself (mcslabs-4), and operation semantics (mcslabs-5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mc/items.h"

#define NOW 1800000000u

static struct mc_cache *
cache_new(uint64_t mb, uint64_t buckets)
{
	struct mc_cache *c = malloc(sizeof(*c));
	struct mc_cache_config cfg = {.item_bytes = mb << 20, .initial_buckets = buckets};
	char err[128];

	assert_non_null(c);
	assert_int_equal(mc_cache_init(c, &cfg, err, sizeof(err)), 0);
	return c;
}

static void
cache_free(struct mc_cache *c)
{
	mc_cache_destroy(c);
	free(c);
}

static enum mc_res
put_op(struct mc_cache *c, enum mc_op op, const char *key, const char *v, size_t vlen,
       uint32_t exptime, uint64_t cas)
{
	enum mc_res res;
	struct mc_chunk *ch =
	    mc_item_new(c, key, strlen(key), 0, exptime, (uint32_t)vlen, NOW, &res);
	if (ch == NULL)
		return res;
	memcpy(mc_item_value(ch), v, vlen);
	return mc_store(c, ch, op, cas, 0, NOW, NULL);
}

static enum mc_res
put(struct mc_cache *c, const char *key, size_t vlen)
{
	static char v[1 << 20];
	memset(v, key[0], vlen);
	return put_op(c, MC_SET, key, v, vlen, 0, 0);
}

/* The value of key as a string in buf, or NULL. */
static const char *
get(struct mc_cache *c, const char *key, char *buf, size_t cap)
{
	struct mc_chunk *ch = mc_get(c, key, strlen(key), NOW, 1);
	if (ch == NULL)
		return NULL;
	const struct mc_item *it = mc_chunk_item(ch);
	assert_true(it->value_len < cap);
	memcpy(buf, mc_item_key(it) + it->key_len, it->value_len);
	buf[it->value_len] = '\0';
	mc_release(c, ch);
	return buf;
}

static int
has(struct mc_cache *c, const char *key)
{
	char buf[1 << 12];
	struct mc_chunk *ch = mc_get(c, key, strlen(key), NOW, 0);
	(void)buf;
	if (ch != NULL)
		mc_release(c, ch);
	return ch != NULL;
}

/* mcslabs-1.1: one sealed memfd, mapped once, with the header filled. */
static void
mcslabs_1_1(void **state)
{
	struct mc_cache *c = cache_new(8, 64);
	struct mc_arena *a = &c->arena;
	const struct mc_arena_hdr *h = a->hdr;

	assert_true(a->fd >= 0);
	int seals = fcntl(a->fd, F_GET_SEALS);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	assert_int_not_equal(ftruncate(a->fd, 4096), 0);
	assert_int_equal(lseek(a->fd, 0, SEEK_END), (off_t)a->size);
	assert_memory_equal(h->magic, "KHMC", 4);
	assert_int_equal(h->layout, MC_LAYOUT_VERSION);
	assert_int_equal(h->arena_size, a->size);
	assert_int_equal(h->table_area_off, MC_HDR_SIZE);
	assert_int_equal(h->table_off, MC_HDR_SIZE);
	assert_int_equal(h->table_buckets, 64);
	assert_int_equal(h->item_size, 8u << 20);
	assert_true(h->item_off >= h->table_area_off + h->table_area_size);
	assert_true(h->item_off + h->item_size <= a->size);
	assert_int_equal(h->probe, MC_PROBE);
	assert_int_equal(h->bucket_bytes, 64);
	assert_true(h->start_time > 0);
	/* the table area holds the largest table twice */
	assert_true(h->table_area_size >= 2 * a->max_buckets * MC_BUCKET_BYTES);
	cache_free(c);
}

/* mcslabs-2.1: classes as memcached's: 96 bytes, growing by 1.25, 8-byte
 * aligned, up to 512 KiB, then the large ones up to the largest item. */
static void
mcslabs_2_1(void **state)
{
	struct mc_cache *c = cache_new(4, 64);
	struct mc_slabs *s = &c->slabs;

	assert_int_equal(s->cls[1].size, 96);
	assert_int_equal(s->cls[2].size, 120);
	for (int i = 2; i <= s->nclasses; i++) {
		assert_true(s->cls[i].size > s->cls[i - 1].size);
		assert_int_equal(s->cls[i].size % 8, 0);
	}
	assert_int_equal(mc_slabs_class(s, 1), 1);
	assert_int_equal(mc_slabs_class(s, 96), 1);
	assert_int_equal(mc_slabs_class(s, 97), 2);
	size_t largest = MC_CHUNK_HDR + MC_ITEM_HDR + (1u << 20) - 59;
	assert_int_equal(mc_slabs_class(s, largest), s->nclasses);
	assert_int_equal(mc_slabs_class(s, s->cls[s->nclasses].size + 1), 0);
	int k = mc_slabs_class(s, MC_CHUNK_MAX);
	assert_int_equal(s->cls[k].size, MC_CHUNK_MAX);
	assert_int_equal(s->cls[k].perpage, 2);
	/* nothing is taken from the item area until an item needs it */
	assert_int_equal(s->pages_given, 0);
	cache_free(c);
}

/* mcslabs-2.2: filling past the limit evicts the least recently used
 * items of the class; memory stays within the limit. */
static void
mcslabs_2_2(void **state)
{
	struct mc_cache *c = cache_new(4, 64);
	char key[32];
	int n = 8000; /* ~8 MB of 1000-byte values into 4 MB */

	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%05d", i);
		assert_int_equal(put(c, key, 1000), MC_STORED);
	}
	assert_true(c->evictions > 0);
	assert_true(c->bytes <= 4u << 20);
	assert_int_equal(c->slabs.pages_given, (4u << 20) / MC_PAGE_SIZE);
	assert_false(has(c, "k00000"));
	assert_false(has(c, "k00100"));
	for (int i = n - 100; i < n; i++) {
		snprintf(key, sizeof(key), "k%05d", i);
		assert_true(has(c, key));
	}
	/* evicted items are gone from the table too */
	assert_int_equal(c->assoc.count, c->curr_items);
	cache_free(c);
}

/* mcslabs-2.3: a hit item gets a second round: an older item that was
 * read outlives younger ones that were not. */
static void
mcslabs_2_3(void **state)
{
	struct mc_cache *c = cache_new(3, 64); /* two pages of 889 such items */
	char key[32], buf[2048];
	int i;

	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%05d", i);
		assert_int_equal(put(c, key, 1000), MC_STORED);
	}
	assert_non_null(get(c, "k00000", buf, sizeof(buf)));
	for (; i < 2100; i++) {
		snprintf(key, sizeof(key), "k%05d", i);
		assert_int_equal(put(c, key, 1000), MC_STORED);
	}
	assert_true(c->evictions > 0);
	assert_true(has(c, "k00000"));
	assert_false(has(c, "k00001"));
	cache_free(c);
}

/* mcslabs-2.4: expired items are taken before live ones, and counted as
 * reclaimed, not evicted. */
static void
mcslabs_2_4(void **state)
{
	struct mc_cache *c = cache_new(1, 64);
	char key[32], v[1000];
	int i;

	memset(v, 'x', sizeof(v));
	assert_int_equal(put_op(c, MC_SET, "live", v, sizeof(v), 0, 0), MC_STORED);
	for (i = 0; i < 1500; i++) { /* one page holds 885 */
		snprintf(key, sizeof(key), "e%05d", i);
		assert_int_equal(put_op(c, MC_SET, key, v, sizeof(v), NOW - 1, 0), MC_STORED);
	}
	assert_true(c->reclaimed > 0);
	assert_int_equal(c->evictions, 0);
	assert_true(has(c, "live"));
	cache_free(c);
}

/* mcslabs-2.5: with the only page in use by another class, a class takes
 * it; with its items held by readers, it says it has no memory. */
static void
mcslabs_2_5(void **state)
{
	struct mc_cache *c = cache_new(1, 64);
	enum mc_res res;

	assert_int_equal(c->slabs.npages, 1);
	assert_int_equal(put(c, "a", 100), MC_STORED); /* takes the one page */
	struct mc_chunk *held = mc_get(c, "a", 1, NOW, 0);
	assert_null(mc_item_new(c, "big", 3, 0, 0, 5000, NOW, &res));
	assert_int_equal(res, MC_NOMEM);
	mc_release(c, held);
	assert_int_equal(put(c, "big", 5000), MC_STORED);
	assert_false(has(c, "a"));
	assert_int_equal(c->slabs.pages_moved, 1);
	assert_null(mc_item_new(c, "huge", 4, 0, 0, 1u << 20, NOW, &res));
	assert_int_equal(res, MC_TOO_LARGE);
	cache_free(c);
}

/* mcslabs-2.6: a class with no memory when the area is used up takes a
 * page from another class, emptying it (memcached's slab rebalancing). */
static void
mcslabs_2_6(void **state)
{
	struct mc_cache *c = cache_new(4, 64);
	char key[32];
	int i;

	for (i = 0; i < 40000; i++) { /* all three pages to the small class */
		snprintf(key, sizeof(key), "s%05d", i);
		assert_int_equal(put(c, key, 100), MC_STORED);
	}
	assert_int_equal(c->slabs.pages_given, c->slabs.npages);
	int small = mc_slabs_class(&c->slabs, MC_CHUNK_HDR + MC_ITEM_HDR + 6 + 100);
	assert_int_equal(c->slabs.cls[small].pages, c->slabs.npages);
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "b%05d", i);
		assert_int_equal(put(c, key, 5000), MC_STORED);
	}
	assert_int_equal(c->slabs.pages_moved, 1);
	assert_int_equal(c->slabs.cls[small].pages, c->slabs.npages - 1);
	assert_true(has(c, "b00000"));
	assert_true(has(c, "b00099"));
	assert_true(has(c, "s39999"));
	/* what the moved page held is gone from the table, none of it lost */
	assert_int_equal(c->assoc.count, c->curr_items);
	uint64_t used = 0;
	for (int k = 1; k <= c->slabs.nclasses; k++)
		used += c->slabs.cls[k].used;
	assert_int_equal(used, c->curr_items);
	/* items held by readers keep their pages where they are */
	struct mc_chunk **held = calloc(40100, sizeof(*held));
	int nheld = 0;
	for (i = 0; i < 40100; i++) {
		snprintf(key, sizeof(key), "%c%05d", i < 100 ? 'b' : 's', i < 100 ? i : i - 100);
		if ((held[nheld] = mc_get(c, key, strlen(key), NOW, 0)) != NULL)
			nheld++;
	}
	assert_true(nheld > 0);
	enum mc_res res;
	assert_null(mc_item_new(c, "huge", 4, 0, 0, 20000, NOW, &res));
	assert_int_equal(res, MC_NOMEM);
	for (i = 0; i < nheld; i++)
		mc_release(c, held[i]);
	assert_int_equal(put(c, "huge", 20000), MC_STORED);
	assert_int_equal(c->slabs.pages_moved, 2);
	free(held);
	cache_free(c);
}

/* mcslabs-3.1: a reference from a get keeps the item's memory through a
 * delete and a replacement; the last release frees it. */
static void
mcslabs_3_1(void **state)
{
	struct mc_cache *c = cache_new(4, 64);
	struct mc_chunk *ch;
	int cls;

	assert_int_equal(put(c, "held", 100), MC_STORED);
	ch = mc_get(c, "held", 4, NOW, 1);
	assert_non_null(ch);
	cls = ch->cls;
	uint64_t used = c->slabs.cls[cls].used;
	assert_int_equal(mc_delete(c, "held", 4, 0, 0, 0, NOW), MC_DELETED);
	assert_false(has(c, "held"));
	assert_int_equal(c->slabs.cls[cls].used, used);
	assert_int_equal(mc_chunk_item(ch)->state, 0); /* marked for readers */
	assert_int_equal(mc_chunk_item(ch)->value_len, 100);
	mc_release(c, ch);
	assert_int_equal(c->slabs.cls[cls].used, used - 1);

	assert_int_equal(put(c, "held", 100), MC_STORED);
	ch = mc_get(c, "held", 4, NOW, 1);
	assert_int_equal(put(c, "held", 100), MC_STORED);
	assert_int_equal(c->slabs.cls[cls].used, used + 1);
	/* replaced: marked for one-sided readers too, its bytes intact */
	assert_int_equal(mc_chunk_item(ch)->state, 0);
	assert_int_equal(mc_chunk_item(ch)->value_len, 100);
	mc_release(c, ch);
	assert_int_equal(c->slabs.cls[cls].used, used);
	cache_free(c);
}

/* mcslabs-3.2: items held by readers are not evicted. */
static void
mcslabs_3_2(void **state)
{
	struct mc_cache *c = cache_new(1, 64);
	char key[32];

	assert_int_equal(put(c, "pinned", 1000), MC_STORED);
	struct mc_chunk *ch = mc_get(c, "pinned", 6, NOW, 0);
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "k%05d", i);
		put(c, key, 1000);
	}
	assert_true(c->evictions > 0);
	assert_true(has(c, "pinned"));
	mc_release(c, ch);
	cache_free(c);
}

/* mcslabs-4.1: from 8 buckets to thousands: every key stays findable, the
 * header names the new table, the old half reads as zeros. */
static void
mcslabs_4_1(void **state)
{
	struct mc_cache *c = cache_new(16, 8);
	const struct mc_arena_hdr *h = c->arena.hdr;
	char key[32];
	int n = 20000;

	assert_int_equal(h->table_buckets, 8);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "g%d", i);
		assert_int_equal(put(c, key, 10), MC_STORED);
	}
	assert_true(h->table_gen >= 10);
	assert_true(h->table_buckets * MC_BUCKET_ENTRIES * 3 / 4 >= (uint64_t)n);
	assert_int_equal(h->table_buckets, c->assoc.nbuckets);
	assert_int_equal(c->assoc.count, n);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "g%d", i);
		assert_true(has(c, key));
	}
	uint64_t other =
	    h->table_area_off + (h->table_off == h->table_area_off ? h->table_area_size / 2 : 0);
	const unsigned char *p = mc_arena_at(&c->arena, other);
	for (uint64_t i = 0; i < h->table_area_size / 2; i++)
		if (p[i] != 0)
			fail_msg("the other half of the table area has a byte at %llu",
				 (unsigned long long)i);
	/* every entry is in its window, and points at its key's item */
	const struct mc_entry *t = mc_arena_at(&c->arena, h->table_off);
	uint64_t entries = 0;
	for (uint64_t b = 0; b < h->table_buckets; b++) {
		for (unsigned j = 0; j < MC_BUCKET_ENTRIES; j++) {
			const struct mc_entry *e = &t[b * MC_BUCKET_ENTRIES + j];
			if (e->word0 == 0)
				continue;
			entries++;
			const struct mc_item *it = mc_arena_at(&c->arena, e->word0 & MC_OFF_MASK);
			uint64_t hash = mc_key_hash(mc_item_key(it), it->key_len);
			uint64_t home = mc_home_bucket(hash, h->table_buckets);
			assert_true(((b - home) & (h->table_buckets - 1)) < MC_PROBE);
			assert_int_equal(e->word0 >> MC_OFF_BITS, mc_key_tag(hash));
			assert_int_equal(e->len, it->total_len);
			assert_int_equal(e->ver, (uint32_t)it->version);
		}
	}
	assert_int_equal(entries, n);
	cache_free(c);
}

/* mcslabs-5.1: store semantics and CAS numbering as memcached's. */
static void
mcslabs_5_1(void **state)
{
	struct mc_cache *c = cache_new(4, 64);
	char buf[64];
	uint64_t cas = 0, v;

	assert_int_equal(put_op(c, MC_ADD, "a", "1", 1, 0, 0), MC_STORED);
	assert_int_equal(put_op(c, MC_ADD, "a", "2", 1, 0, 0), MC_NOT_STORED);
	assert_int_equal(put_op(c, MC_REPLACE, "b", "2", 1, 0, 0), MC_NOT_STORED);
	assert_int_equal(put_op(c, MC_REPLACE, "a", "3", 1, 0, 0), MC_STORED);
	assert_int_equal(put_op(c, MC_APPEND, "a", "4", 1, 0, 0), MC_STORED);
	assert_int_equal(put_op(c, MC_PREPEND, "a", "0", 1, 0, 0), MC_STORED);
	assert_string_equal(get(c, "a", buf, sizeof(buf)), "034");
	struct mc_chunk *ch = mc_get(c, "a", 1, NOW, 0);
	cas = mc_chunk_item(ch)->version;
	assert_int_equal(cas, 4); /* add, replace, append, prepend */
	mc_release(c, ch);
	assert_int_equal(put_op(c, MC_CAS, "a", "x", 1, 0, cas + 1), MC_EXISTS);
	assert_int_equal(put_op(c, MC_CAS, "a", "x", 1, 0, cas), MC_STORED);
	assert_int_equal(put_op(c, MC_CAS, "zz", "x", 1, 0, 1), MC_NOT_FOUND);
	assert_int_equal(put_op(c, MC_SET, "n", "99", 2, 0, 0), MC_STORED);
	assert_int_equal(mc_arith(c, "n", 1, 1, 1, 0, NOW, &v, &cas, NULL), MC_OK);
	assert_int_equal(v, 100);
	assert_string_equal(get(c, "n", buf, sizeof(buf)), "100");
	assert_int_equal(mc_arith(c, "n", 1, 0, 95, 0, NOW, &v, &cas, NULL), MC_OK);
	assert_string_equal(get(c, "n", buf, sizeof(buf)), "5  ");
	assert_int_equal(mc_arith(c, "a", 1, 1, 1, 0, NOW, &v, &cas, NULL), MC_NON_NUMERIC);
	assert_int_equal(mc_arith(c, "none", 4, 1, 1, 0, NOW, &v, &cas, NULL), MC_NOT_FOUND);
	/* touch keeps the CAS value */
	ch = mc_get(c, "n", 1, NOW, 0);
	cas = mc_chunk_item(ch)->version;
	mc_release(c, ch);
	assert_int_equal(mc_touch(c, "n", 1, NOW + 100, NOW), MC_TOUCHED);
	ch = mc_get(c, "n", 1, NOW, 0);
	assert_int_equal(mc_chunk_item(ch)->version, cas);
	assert_int_equal(mc_chunk_item(ch)->exptime, NOW + 100);
	mc_release(c, ch);
	/* expiry and flush */
	assert_int_equal(put_op(c, MC_SET, "x", "1", 1, NOW, 0), MC_STORED);
	assert_false(has(c, "x"));
	assert_int_equal(put_op(c, MC_ADD, "x", "1", 1, 0, 0), MC_STORED);
	mc_flush(c, 0, NOW);
	assert_false(has(c, "x"));
	assert_false(has(c, "n"));
	assert_int_equal(c->arena.hdr->flush_version, c->cas);
	assert_int_equal(put_op(c, MC_SET, "x", "1", 1, 0, 0), MC_STORED);
	assert_true(has(c, "x"));
	mc_flush(c, NOW + 10, NOW);
	assert_true(has(c, "x"));
	cache_free(c);
}

/* mcslabs-5.2: memcached's exptime rules, its size limit, its numbers. */
static void
mcslabs_5_2(void **state)
{
	struct mc_cache *c = cache_new(1, 64);
	uint64_t v;

	c->started = NOW - 100;
	assert_int_equal(mc_exptime(c, 0, NOW), 0);
	assert_int_equal(mc_exptime(c, -1, NOW), 1);
	assert_int_equal(mc_exptime(c, 10, NOW), NOW + 10);
	assert_int_equal(mc_exptime(c, 60 * 60 * 24 * 30, NOW), NOW + 60 * 60 * 24 * 30);
	assert_int_equal(mc_exptime(c, 60 * 60 * 24 * 30 + 1, NOW), 1);
	assert_int_equal(mc_exptime(c, NOW + 5, NOW), NOW + 5);
	assert_false(mc_too_large(1, (1u << 20) - 60, 0));
	assert_true(mc_too_large(1, (1u << 20) - 59, 0));
	assert_true(mc_too_large(1, (1u << 20) - 60, 1));
	static const struct {
		const char *s;
		int ok;
		uint64_t v;
	} nums[] = {{"12", 1, 12},
		    {" 12", 1, 12},
		    {"+7", 1, 7},
		    {"12 ", 1, 12},
		    {"12a", 0, 0},
		    {"", 0, 0},
		    {"-1", 0, 0},
		    {"-0", 1, 0},
		    {"18446744073709551615", 1, UINT64_MAX},
		    {"18446744073709551616", 0, 0},
		    {"abc", 0, 0}};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		int rc = mc_strtoull(nums[i].s, strlen(nums[i].s), &v);
		assert_int_equal(rc == 0, nums[i].ok);
		if (rc == 0)
			assert_int_equal(v, nums[i].v);
	}
	cache_free(c);
}

/* mcslabs-5.3: the memory follows the sizes asked for.  Small items fill
 * every page; later, larger items are stored: pages of the small class,
 * whose items are older, move to the large one instead of the large class
 * evicting its own items at once (memcached's age balancing). */
static void
mcslabs_5_3(void **state)
{
	struct mc_cache *c = cache_new(8, 4096);
	static char v[16384];
	char key[32];
	enum mc_res res;
	(void)state;
	for (int i = 0; i < 20000; i++) { /* 1 KB items: far more than 8 MB */
		snprintf(key, sizeof(key), "small%d", i);
		assert_int_equal(put(c, key, 1000), MC_STORED);
	}
	uint64_t moved = c->slabs.pages_moved;
	memset(v, 'L', sizeof(v));
	for (int i = 0; i < 200; i++) { /* 200 x 16 KB = 3.2 MB, stored 10 s later */
		snprintf(key, sizeof(key), "large%d", i);
		struct mc_chunk *ch =
		    mc_item_new(c, key, strlen(key), 0, 0, sizeof(v), NOW + 10, &res);
		assert_non_null(ch);
		memcpy(mc_item_value(ch), v, sizeof(v));
		assert_int_equal(mc_store(c, ch, MC_SET, 0, 0, NOW + 10, NULL), MC_STORED);
	}
	int kept = 0;
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "large%d", i);
		kept += has(c, key);
	}
	assert_int_equal(kept, 200);
	assert_true(c->slabs.pages_moved > moved + 2);
	cache_free(c);
}

/* mcslabs-5.4: a store succeeds even when every item near the LRU tail was
 * read lately (a read-heavy load marks them all active). */
static void
mcslabs_5_4(void **state)
{
	struct mc_cache *c = cache_new(2, 4096);
	char key[32];
	(void)state;
	int n = 0;
	for (; c->evictions == 0 && n < 100000; n++) { /* fill every page */
		snprintf(key, sizeof(key), "k%d", n);
		assert_int_equal(put(c, key, 1000), MC_STORED);
	}
	for (int i = 0; i < n; i++) { /* every item hit */
		snprintf(key, sizeof(key), "k%d", i);
		struct mc_chunk *ch = mc_get(c, key, strlen(key), NOW, 1);
		if (ch)
			mc_release(c, ch);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "new%d", i);
		assert_int_equal(put(c, key, 1000), MC_STORED);
	}
	cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mcslabs_1_1), cmocka_unit_test(mcslabs_2_1),
	    cmocka_unit_test(mcslabs_2_2), cmocka_unit_test(mcslabs_2_3),
	    cmocka_unit_test(mcslabs_2_4), cmocka_unit_test(mcslabs_2_5),
	    cmocka_unit_test(mcslabs_2_6), cmocka_unit_test(mcslabs_3_1),
	    cmocka_unit_test(mcslabs_3_2), cmocka_unit_test(mcslabs_4_1),
	    cmocka_unit_test(mcslabs_5_1), cmocka_unit_test(mcslabs_5_2),
	    cmocka_unit_test(mcslabs_5_3), cmocka_unit_test(mcslabs_5_4),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
