/* mcitem-*: what a one-sided reader checks on a copy of an item (item.h):
 * a good item passes; a flipped bit anywhere, a torn copy of two items, a
 * stale version, another key, a deleted or expired item do not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc/item.h"

/* An item as khmcd writes one, into buf; returns its length. */
static size_t
make_item(unsigned char *buf, const char *key, const char *value, size_t vlen, uint64_t version,
	  uint32_t flags, uint32_t exptime)
{
	struct mc_item it = {0};
	size_t klen = strlen(key);

	it.magic = MC_ITEM_MAGIC;
	it.total_len = (uint32_t)(MC_ITEM_HDR + klen + vlen);
	it.version = version;
	it.flags = flags;
	it.exptime = exptime;
	it.key_len = (uint16_t)klen;
	it.state = MC_ITEM_VALID;
	it.value_len = (uint32_t)vlen;
	memcpy(buf + MC_ITEM_HDR, key, klen);
	memcpy(buf + MC_ITEM_HDR + klen, value, vlen);
	it.checksum = mc_item_sum(mc_item_kvhash(buf + MC_ITEM_HDR, klen + vlen), version, flags,
				  exptime, (uint32_t)klen, (uint32_t)vlen);
	memcpy(buf, &it, MC_ITEM_HDR);
	return it.total_len;
}

/* mcitem-1.1: a good item passes and is read back. */
static void
mcitem_1_1(void **state)
{
	unsigned char buf[512];
	struct mc_item_view v;
	size_t n = make_item(buf, "alpha", "hello world", 11, 0x1234567890ull, 42, 0);

	assert_int_equal(mc_item_check(buf, n, "alpha", 5, 0x34567890u, 1000, &v), MC_CHECK_OK);
	assert_int_equal(v.version, 0x1234567890ull);
	assert_int_equal(v.flags, 42);
	assert_int_equal(v.value_len, 11);
	assert_memory_equal(v.value, "hello world", 11);
	/* more bytes copied than the item has: fine (the reader read a bit more) */
	assert_int_equal(mc_item_check(buf, sizeof(buf), "alpha", 5, 0x34567890u, 0, NULL),
			 MC_CHECK_OK);
	/* an empty value */
	n = make_item(buf, "e", "", 0, 7, 0, 0);
	assert_int_equal(mc_item_check(buf, n, "e", 1, 7, 0, NULL), MC_CHECK_OK);
}

/* mcitem-1.2: flip any bit of any byte of an item: rejected. */
static void
mcitem_1_2(void **state)
{
	static unsigned char buf[MC_ITEM_HDR + 250 + 3000];
	char key[251], value[3000];
	struct {
		size_t klen, vlen;
	} shapes[] = {{1, 0}, {1, 1}, {5, 11}, {13, 64}, {250, 3000}, {100, 999}};

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		memset(key, 'k', shapes[s].klen);
		key[shapes[s].klen] = '\0';
		for (size_t i = 0; i < shapes[s].vlen; i++)
			value[i] = (char)(i * 131 + s);
		size_t n = make_item(buf, key, value, shapes[s].vlen, 77 + s, 5, 0);
		assert_int_equal(
		    mc_item_check(buf, n, key, shapes[s].klen, (uint32_t)(77 + s), 0, NULL),
		    MC_CHECK_OK);
		for (size_t i = 0; i < n; i++) {
			for (int bit = 0; bit < 8; bit++) {
				buf[i] ^= (unsigned char)(1u << bit);
				int rc = mc_item_check(buf, n, key, shapes[s].klen,
						       (uint32_t)(77 + s), 0, NULL);
				if (rc == MC_CHECK_OK)
					fail_msg("shape %zu: byte %zu bit %d flipped, still valid",
						 s, i, bit);
				buf[i] ^= (unsigned char)(1u << bit);
			}
		}
	}
}

/* mcitem-1.3: a torn copy (the start of one item, the rest of another of
 * the same key and length, as when a chunk is reused mid-read): rejected
 * at every split, whichever version the entry named, unless the copy is
 * one of the two items whole (their first and last bytes agree). */
static void
mcitem_1_3(void **state)
{
	unsigned char a[600], b[600], mix[600];
	char va[500], vb[500];

	for (int i = 0; i < 500; i++) {
		va[i] = (char)('a' + i % 26);
		vb[i] = (char)('a' + (i + 1) % 26);
	}
	size_t n = make_item(a, "torn-key", va, 500, 1000, 1, 0);
	assert_int_equal(make_item(b, "torn-key", vb, 500, 1001, 1, 0), n);
	for (size_t split = 1; split < n; split++) {
		memcpy(mix, a, split);
		memcpy(mix + split, b + split, n - split);
		int is_a = memcmp(mix, a, n) == 0, is_b = memcmp(mix, b, n) == 0;
		assert_int_equal(mc_item_check(mix, n, "torn-key", 8, 1000, 0, NULL) == MC_CHECK_OK,
				 is_a);
		assert_int_equal(mc_item_check(mix, n, "torn-key", 8, 1001, 0, NULL) == MC_CHECK_OK,
				 is_b);
	}
	/* another key's item in the same place: not ours */
	n = make_item(b, "other-k", vb, 500, 1000, 1, 0);
	assert_int_equal(mc_item_check(b, n, "torn-key", 8, 1000, 0, NULL), MC_CHECK_STALE);
}

/* mcitem-1.4: stale, deleted, short, expired. */
static void
mcitem_1_4(void **state)
{
	unsigned char buf[256];
	size_t n = make_item(buf, "key", "value", 5, 0x100000005ull, 0, 2000);

	assert_int_equal(mc_item_check(buf, n, "key", 3, 5, 1999, NULL), MC_CHECK_OK);
	assert_int_equal(mc_item_check(buf, n, "key", 3, 6, 0, NULL), MC_CHECK_STALE);
	assert_int_equal(mc_item_check(buf, n, "kez", 3, 5, 0, NULL), MC_CHECK_STALE);
	assert_int_equal(mc_item_check(buf, n, "ke", 2, 5, 0, NULL), MC_CHECK_STALE);
	assert_int_equal(mc_item_check(buf, n - 1, "key", 3, 5, 0, NULL), MC_CHECK_TORN);
	assert_int_equal(mc_item_check(buf, 10, "key", 3, 5, 0, NULL), MC_CHECK_TORN);
	assert_int_equal(mc_item_check(buf, n, "key", 3, 5, 2000, NULL), MC_CHECK_EXPIRED);
	buf[26] = 0; /* state: deleted */
	assert_int_equal(mc_item_check(buf, n, "key", 3, 5, 0, NULL), MC_CHECK_STALE);
	memset(buf, 0, sizeof(buf)); /* freed memory that reads as zeros */
	assert_int_equal(mc_item_check(buf, n, "key", 3, 5, 0, NULL), MC_CHECK_TORN);
}

/* mcitem-2.1: the hash: any change inside one 8-byte word changes it,
 * for every length and position; seeds and lengths matter. */
static void
mcitem_2_1(void **state)
{
	unsigned char buf[200];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	for (size_t n = 0; n <= sizeof(buf); n++) {
		uint64_t h = mc_hash64(buf, n, 1);
		assert_int_not_equal(h, mc_hash64(buf, n, 2));
		if (n > 0)
			assert_int_not_equal(h, mc_hash64(buf, n - 1, 1));
		for (size_t i = 0; i < n; i++) {
			for (int bit = 0; bit < 8; bit += 3) {
				buf[i] ^= (unsigned char)(1u << bit);
				assert_int_not_equal(h, mc_hash64(buf, n, 1));
				buf[i] ^= (unsigned char)(1u << bit);
			}
		}
	}
	/* the key hash spreads: 4096 keys over 64 buckets, none empty */
	int seen[64] = {0};
	for (int i = 0; i < 4096; i++) {
		char k[16];
		int len = snprintf(k, sizeof(k), "key%d", i);
		seen[mc_home_bucket(mc_key_hash(k, (size_t)len), 64)]++;
	}
	for (int b = 0; b < 64; b++)
		assert_true(seen[b] > 20);
}

/* mcitem-2.2: candidates in a probe window are the entries with the key's
 * tag, in order. */
static void
mcitem_2_2(void **state)
{
	struct mc_entry win[MC_PROBE * MC_BUCKET_ENTRIES], out[8];
	uint64_t h = mc_key_hash("k", 1), other = h ^ (UINT64_C(1) << 63);

	memset(win, 0, sizeof(win));
	assert_int_equal(mc_window_match(win, h, out, 8), 0);
	win[3] = (struct mc_entry){mc_entry_word0(other, 4096), 50, 1};
	win[9] = (struct mc_entry){mc_entry_word0(h, 8192), 60, 2};
	win[31] = (struct mc_entry){mc_entry_word0(h, 12288), 70, 3};
	assert_int_equal(mc_window_match(win, h, out, 8), 2);
	assert_int_equal(out[0].word0 & MC_OFF_MASK, 8192);
	assert_int_equal(out[0].len, 60);
	assert_int_equal(out[1].ver, 3);
	assert_int_equal(mc_window_match(win, h, out, 1), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mcitem_1_1), cmocka_unit_test(mcitem_1_2),
	    cmocka_unit_test(mcitem_1_3), cmocka_unit_test(mcitem_1_4),
	    cmocka_unit_test(mcitem_2_1), cmocka_unit_test(mcitem_2_2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
