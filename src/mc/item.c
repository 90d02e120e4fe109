/* item: the key hash, the item checksum and the one-sided reader's check of
 * a copied item (item.h).  Pure functions of their arguments. */
#include "mc/item.h"

#include <string.h>

#define P1 UINT64_C(0x9e3779b185ebca87)
#define P2 UINT64_C(0xc2b2ae3d27d4eb4f)
#define P3 UINT64_C(0x165667b19e3779f9)
#define P4 UINT64_C(0x85ebca77c2b2ae63)
#define P5 UINT64_C(0x27d4eb2f165667c5)

#define MC_KEY_SEED UINT64_C(0x6b68636d636b6579)

static inline uint64_t
rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t
rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t
rd32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* One lane step: a bijection of acc for a fixed word and of the word for a
 * fixed acc, which is why a change in one word always shows. */
static inline uint64_t
lane(uint64_t acc, uint64_t w)
{
	acc += w * P2;
	acc = rotl(acc, 31);
	return acc * P1;
}

static inline uint64_t
merge(uint64_t h, uint64_t v)
{
	h ^= lane(0, v);
	return h * P1 + P4;
}

uint64_t
mc_hash64(const void *data, size_t n, uint64_t seed)
{
	const unsigned char *p = data, *end = p + n;
	uint64_t h;

	if (n >= 32) {
		uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
		const unsigned char *last = end - 32;
		do {
			v1 = lane(v1, rd64(p));
			v2 = lane(v2, rd64(p + 8));
			v3 = lane(v3, rd64(p + 16));
			v4 = lane(v4, rd64(p + 24));
			p += 32;
		} while (p <= last);
		h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
		h = merge(h, v1);
		h = merge(h, v2);
		h = merge(h, v3);
		h = merge(h, v4);
	} else {
		h = seed + P5;
	}
	h += (uint64_t)n;
	for (; p + 8 <= end; p += 8) {
		h ^= lane(0, rd64(p));
		h = rotl(h, 27) * P1 + P4;
	}
	if (p + 4 <= end) {
		h ^= (uint64_t)rd32(p) * P1;
		h = rotl(h, 23) * P2 + P3;
		p += 4;
	}
	for (; p < end; p++) {
		h ^= (uint64_t)*p * P5;
		h = rotl(h, 11) * P1;
	}
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t
mc_key_hash(const void *key, size_t klen)
{
	return mc_hash64(key, klen, MC_KEY_SEED);
}

uint64_t
mc_item_kvhash(const void *kv, size_t n)
{
	return mc_hash64(kv, n, MC_SUM_SEED);
}

uint64_t
mc_item_sum(uint64_t kvhash, uint64_t version, uint32_t flags, uint32_t exptime, uint32_t key_len,
	    uint32_t value_len)
{
	unsigned char meta[24];
	uint64_t fe = (uint64_t)flags | (uint64_t)exptime << 32;
	uint64_t kl = (uint64_t)key_len | (uint64_t)value_len << 32;

	memcpy(meta, &version, 8);
	memcpy(meta + 8, &fe, 8);
	memcpy(meta + 16, &kl, 8);
	return mc_hash64(meta, sizeof(meta), kvhash);
}

int
mc_item_check(const void *bytes, size_t len, const char *key, size_t klen, uint32_t version_low,
	      uint32_t now, struct mc_item_view *v)
{
	return mc_item_check_sum(bytes, len, key, klen, version_low, now, v, 1);
}

int
mc_item_check_sum(const void *bytes, size_t len, const char *key, size_t klen, uint32_t version_low,
		  uint32_t now, struct mc_item_view *v, int sum)
{
	struct mc_item it;
	const char *b = bytes;

	if (len < MC_ITEM_HDR)
		return MC_CHECK_TORN;
	memcpy(&it, b, MC_ITEM_HDR);
	if (it.magic != MC_ITEM_MAGIC || it.total_len > len || it.key_len > MC_KEY_MAX ||
	    it.pad != 0 || it.key_len == 0 ||
	    (uint64_t)MC_ITEM_HDR + it.key_len + it.value_len != it.total_len)
		return MC_CHECK_TORN;
	if (it.state != MC_ITEM_VALID || (uint32_t)it.version != version_low ||
	    it.key_len != klen || memcmp(b + MC_ITEM_HDR, key, klen) != 0)
		return MC_CHECK_STALE;
	if (sum) {
		uint64_t kvh = mc_item_kvhash(b + MC_ITEM_HDR, it.key_len + (size_t)it.value_len);
		if (mc_item_sum(kvh, it.version, it.flags, it.exptime, it.key_len, it.value_len) !=
		    it.checksum)
			return MC_CHECK_TORN;
	}
	if (now != 0 && it.exptime != 0 && it.exptime <= now)
		return MC_CHECK_EXPIRED;
	if (v != NULL) {
		v->version = it.version;
		v->flags = it.flags;
		v->exptime = it.exptime;
		v->value = b + MC_ITEM_HDR + it.key_len;
		v->value_len = it.value_len;
	}
	return MC_CHECK_OK;
}

size_t
mc_window_match(const void *window, uint64_t hash, struct mc_entry *out, size_t max)
{
	const unsigned char *w = window;
	size_t n = 0;

	for (unsigned i = 0; i < MC_PROBE * MC_BUCKET_ENTRIES && n < max; i++) {
		struct mc_entry e;
		memcpy(&e, w + (size_t)i * sizeof(e), sizeof(e));
		if (e.word0 != 0 && (e.word0 >> MC_OFF_BITS) == mc_key_tag(hash))
			out[n++] = e;
	}
	return n;
}

uint64_t
mc_hdr_sum(const struct mc_arena_hdr *h)
{
	struct mc_arena_hdr c;
	memcpy(&c, h, sizeof(c));
	c.hdr_sum = 0;
	return mc_hash64(&c, sizeof(c), MC_SUM_SEED);
}

int
mc_hdr_check(const struct mc_arena_hdr *copy)
{
	if (memcmp(copy->magic, MC_ARENA_MAGIC, 4) != 0 || copy->layout != MC_LAYOUT_VERSION)
		return -1;
	return copy->hdr_sum == mc_hdr_sum(copy) ? 0 : -1;
}
