/* mcstress-*: the storage engine under concurrency.  Writers set, delete,
 * append and prepend on a key space larger than memory (so items are
 * evicted), in a table that starts with 8 buckets (so it grows under
 * them), while readers get.  Every value is a run of records that each
 * carry their key and a checksum, so a reader can tell a value that was set
 * for its key from another item's bytes or a torn one.
 *
 * mcstress-1: readers through the engine (mc_get), as TCP gets are served.
 * mcstress-2: a one-sided reader besides them, that never calls the engine:
 * it copies the arena header, the key's probe window and the item bytes
 * out of the shared memory the way an RDMA read would, checks them with
 * mc_item_check, and retries on failure.  Neither may ever see a wrong
 * value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mc/items.h"

#define NKEYS	  60000
#define ROUND_MS  700
#define REC_MAGIC 0x5245434bu
#define VMAX	  (64u << 10) /* longer values: the one-sided reader gives up */

struct run {
	struct mc_cache cache;
	volatile int stop;
	volatile int big; /* second half: values of other sizes, so pages move */
	uint64_t bad, hits, misses, os_hits, os_misses, os_retries, os_fallbacks, stored, nomem;
};

static uint32_t
now_s(void)
{
	return (uint32_t)time(NULL);
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t
key_of(char *buf, uint64_t k)
{
	return (size_t)sprintf(buf, "stress:%llu", (unsigned long long)k);
}

/* One record: magic, key length, payload length, key, payload, checksum. */
static size_t
put_record(char *p, const char *key, size_t klen, uint64_t *seed, int big)
{
	uint16_t kl = (uint16_t)klen, pl = (uint16_t)((big ? 1500 : 20) + rnd(seed) % 500);
	uint32_t magic = REC_MAGIC;
	size_t n = 8 + klen + pl;

	memcpy(p, &magic, 4);
	memcpy(p + 4, &kl, 2);
	memcpy(p + 6, &pl, 2);
	memcpy(p + 8, key, klen);
	for (uint16_t i = 0; i < pl; i++)
		p[8 + klen + i] = (char)rnd(seed);
	uint64_t h = mc_hash64(p, n, 42);
	memcpy(p + n, &h, 8);
	return n + 8;
}

/* Whether v is one or more whole records, all of key. */
static int
valid_value(const char *v, size_t n, const char *key, size_t klen)
{
	if (n == 0)
		return 0;
	while (n > 0) {
		uint32_t magic;
		uint16_t kl, pl;
		uint64_t h;
		if (n < 16)
			return 0;
		memcpy(&magic, v, 4);
		memcpy(&kl, v + 4, 2);
		memcpy(&pl, v + 6, 2);
		size_t rec = 8 + (size_t)kl + pl;
		if (magic != REC_MAGIC || kl != klen || rec + 8 > n ||
		    memcmp(v + 8, key, klen) != 0)
			return 0;
		memcpy(&h, v + rec, 8);
		if (h != mc_hash64(v, rec, 42))
			return 0;
		v += rec + 8;
		n -= rec + 8;
	}
	return 1;
}

static void
count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void *
writer(void *arg)
{
	struct run *r = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed | 1;
	char key[32], *rec = malloc(4096);

	while (!r->stop) {
		uint64_t k = rnd(&seed) % NKEYS, op = rnd(&seed) % 100;
		size_t klen = key_of(key, k);
		uint32_t now = now_s();
		if (op < 15) {
			mc_delete(&r->cache, key, klen, 0, 0, 0, now);
			continue;
		}
		size_t n = put_record(rec, key, klen, &seed, r->big);
		enum mc_op mop = op < 65 ? MC_SET : op < 85 ? MC_APPEND : MC_PREPEND;
		enum mc_res res;
		struct mc_chunk *ch =
		    mc_item_new(&r->cache, key, klen, (uint32_t)k, 0, (uint32_t)n, now, &res);
		if (ch == NULL) {
			count(&r->nomem, 1);
			continue;
		}
		memcpy(mc_item_value(ch), rec, n);
		if (mc_store(&r->cache, ch, mop, 0, 0, now, NULL) == MC_STORED)
			count(&r->stored, 1);
	}
	free(rec);
	return NULL;
}

static void *
reader(void *arg)
{
	struct run *r = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed | 1, hits = 0, misses = 0;
	char key[32];

	while (!r->stop) {
		uint64_t k = rnd(&seed) % NKEYS;
		size_t klen = key_of(key, k);
		struct mc_chunk *ch = mc_get(&r->cache, key, klen, now_s(), (int)(k & 1));
		if (ch == NULL) {
			misses++;
			continue;
		}
		const struct mc_item *it = mc_chunk_item(ch);
		/* A reply may take a while to be written: the item must stay. */
		if (hits % 8 == 0)
			sched_yield();
		if (!valid_value(mc_item_key(it) + it->key_len, it->value_len, key, klen) ||
		    it->flags != k)
			count(&r->bad, 1);
		hits++;
		mc_release(&r->cache, ch);
	}
	count(&r->hits, hits);
	count(&r->misses, misses);
	return NULL;
}

/* Copy n bytes (a multiple of 8, 8-aligned) out of shared memory a word at
 * a time, as a device would: each word old or new, no order among them. */
static void
dma(void *dst, const void *src, size_t n)
{
	uint64_t *d = dst;
	const uint64_t *s = src;

	for (size_t i = 0; i < n / 8; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* A one-sided get: 1 hit (value in out), 0 miss, -1 gave up (a real
 * client would then ask over TCP). */
static int
onesided_get(struct run *r, const char *key, size_t klen, char *out, size_t *vlen,
	     uint64_t *retries)
{
	const unsigned char *base = r->cache.arena.base;
	size_t asize = r->cache.arena.size;
	uint64_t hash = mc_key_hash(key, klen);
	static _Thread_local unsigned char window[MC_PROBE * MC_BUCKET_BYTES];
	static _Thread_local uint64_t item[(MC_ITEM_HDR + 256 + VMAX) / 8 + 1];

	for (int tries = 0; tries < 32; tries++) {
		struct mc_arena_hdr h;
		uint64_t gen = __atomic_load_n(&((const struct mc_arena_hdr *)base)->table_gen,
					       __ATOMIC_ACQUIRE);
		dma(&h, base, sizeof(h));
		if (h.table_buckets == 0 || (h.table_buckets & (h.table_buckets - 1)) != 0 ||
		    h.table_off + h.table_buckets * MC_BUCKET_BYTES > asize) {
			(*retries)++;
			continue;
		}
		uint64_t home = mc_home_bucket(hash, h.table_buckets);
		for (unsigned i = 0; i < MC_PROBE; i++) {
			uint64_t b = (home + i) & (h.table_buckets - 1);
			dma(window + i * MC_BUCKET_BYTES, base + h.table_off + b * MC_BUCKET_BYTES,
			    MC_BUCKET_BYTES);
		}
		struct mc_entry cand[MC_PROBE * MC_BUCKET_ENTRIES];
		size_t nc = mc_window_match(window, hash, cand, MC_PROBE * MC_BUCKET_ENTRIES);
		int retry = 0;
		for (size_t i = 0; i < nc; i++) {
			uint64_t off = cand[i].word0 & MC_OFF_MASK;
			size_t len = cand[i].len, rlen = (len + 7) / 8 * 8;
			if (len < MC_ITEM_HDR || off % 8 != 0 || off + rlen > asize ||
			    rlen > sizeof(item) || len > MC_ITEM_HDR + 256 + VMAX) {
				retry = 1;
				continue;
			}
			dma(item, base + off, rlen);
			struct mc_item_view v;
			if (mc_item_check(item, len, key, klen, cand[i].ver, 0, &v) !=
			    MC_CHECK_OK) {
				retry = 1;
				continue;
			}
			if (v.version < h.flush_version)
				return 0;
			if (v.value_len > VMAX)
				return -1;
			memcpy(out, v.value, v.value_len);
			*vlen = v.value_len;
			return 1;
		}
		if (!retry && __atomic_load_n(&((const struct mc_arena_hdr *)base)->table_gen,
					      __ATOMIC_ACQUIRE) == gen)
			return 0;
		(*retries)++;
	}
	return -1;
}

static void *
onesided(void *arg)
{
	struct run *r = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed | 1, hits = 0, misses = 0, retries = 0,
		 gave_up = 0;
	char key[32], *val = malloc(VMAX);
	size_t vlen;

	while (!r->stop) {
		uint64_t k = rnd(&seed) % NKEYS;
		size_t klen = key_of(key, k);
		int rc = onesided_get(r, key, klen, val, &vlen, &retries);
		if (rc == 1) {
			hits++;
			if (!valid_value(val, vlen, key, klen))
				count(&r->bad, 1);
		} else if (rc == 0) {
			misses++;
		} else {
			gave_up++;
		}
	}
	count(&r->os_hits, hits);
	count(&r->os_misses, misses);
	count(&r->os_retries, retries);
	count(&r->os_fallbacks, gave_up);
	free(val);
	return NULL;
}

static void
one_round(int with_onesided)
{
	struct run *r = calloc(1, sizeof(*r));
	struct mc_cache_config cfg = {.item_bytes = 12u << 20, .initial_buckets = 8};
	char err[128], key[32];
	pthread_t t[6];
	int n = 0;

	assert_int_equal(mc_cache_init(&r->cache, &cfg, err, sizeof(err)), 0);
	pthread_create(&t[n++], NULL, writer, r);
	pthread_create(&t[n++], NULL, writer, r);
	pthread_create(&t[n++], NULL, reader, r);
	pthread_create(&t[n++], NULL, reader, r);
	if (with_onesided) {
		pthread_create(&t[n++], NULL, onesided, r);
		pthread_create(&t[n++], NULL, onesided, r);
	}
	struct timespec ts = {0, ROUND_MS / 2 * 1000000L};
	nanosleep(&ts, NULL);
	r->big = 1;
	nanosleep(&ts, NULL);
	r->stop = 1;
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);

	/* Quiet now: every key is absent or holds a good value. */
	for (uint64_t k = 0; k < NKEYS; k++) {
		size_t klen = key_of(key, k);
		struct mc_chunk *ch = mc_get(&r->cache, key, klen, now_s(), 0);
		if (ch == NULL)
			continue;
		const struct mc_item *it = mc_chunk_item(ch);
		if (!valid_value(mc_item_key(it) + it->key_len, it->value_len, key, klen))
			r->bad++;
		mc_release(&r->cache, ch);
	}
	print_message(
	    "# stored %llu (no memory %llu), gets %llu hit %llu miss, evictions %llu, "
	    "%llu pages moved, table %llu buckets after %llu growths; one-sided %llu hit %llu miss "
	    "%llu "
	    "retries %llu gave up\n",
	    (unsigned long long)r->stored, (unsigned long long)r->nomem,
	    (unsigned long long)r->hits, (unsigned long long)r->misses,
	    (unsigned long long)r->cache.evictions, (unsigned long long)r->cache.slabs.pages_moved,
	    (unsigned long long)r->cache.assoc.nbuckets, (unsigned long long)r->cache.assoc.grows,
	    (unsigned long long)r->os_hits, (unsigned long long)r->os_misses,
	    (unsigned long long)r->os_retries, (unsigned long long)r->os_fallbacks);
	assert_int_equal(r->bad, 0);
	assert_true(r->hits > 0);
	assert_true(r->cache.evictions > 0);
	assert_true(r->cache.assoc.grows >= 5);
	assert_true(r->cache.slabs.pages_moved > 0);
	assert_true(r->cache.bytes <= cfg.item_bytes);
	if (with_onesided) {
		assert_true(r->os_hits > 0);
		assert_true(r->os_fallbacks * 10 <= r->os_hits + r->os_misses + 10);
	}
	mc_cache_destroy(&r->cache);
	free(r);
}

/* mcstress-1.1: gets through the engine against writers, evictions and
 * table growth. */
static void
mcstress_1_1(void **state)
{
	one_round(0);
}

/* mcstress-2.1: the same with one-sided readers copying the arena. */
static void
mcstress_2_1(void **state)
{
	one_round(1);
	one_round(1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mcstress_1_1),
	    cmocka_unit_test(mcstress_2_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
