/* item: the bytes a one-sided reader sees in khmcd's arena (the header page,
 * the hash table's buckets, the items) and the pure functions such a reader
 * runs on copies of them: the key hash, the item checksum, mc_item_check.
 * khmcd, libkhmc and the tests share it; nothing here touches shared state.
 * The layout is binding (docs/mc.md, "The arena"): every field is
 * little-endian and fixed-width, every reference is an offset in the arena. */
#ifndef KH_MC_ITEM_H
#define KH_MC_ITEM_H

#include <stddef.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the arena layout is little-endian; this code reads it in place"
#endif

#define MC_ARENA_MAGIC	  "KHMC"
#define MC_LAYOUT_VERSION 2
#define MC_HDR_SIZE	  4096u /* the header page */

/* The hash table: buckets of four 16-byte entries; a key lives in its home
 * bucket (hash mod bucket count) or one of the next MC_PROBE - 1 ones. */
#define MC_BUCKET_BYTES	  64u
#define MC_BUCKET_ENTRIES 4u
#define MC_PROBE	  8u
#define MC_OFF_BITS	  40
#define MC_OFF_MASK	  ((UINT64_C(1) << MC_OFF_BITS) - 1)

#define MC_ITEM_MAGIC 0x4d49484bu /* "KHIM" in memory */
#define MC_ITEM_HDR   40u	  /* sizeof(struct mc_item) */
#define MC_KEY_MAX    250u
#define MC_ITEM_VALID 1

/* Where the arena is exposed through a domain's RDMA device (docs/mc.md,
 * "One-sided gets"): the keys of the current table and of the item area
 * there.  A reader got the header's own key with the "rdma" command. */
#define MC_RDMA_SLOTS 8
struct mc_rdma_slot {
	uint32_t netid; /* 0: slot unused */
	uint32_t rank;	/* the server's node in that domain */
	uint64_t table_key;
	uint64_t items_key; /* offsets in it count from item_off */
};

/* The header page, at offset 0.  table_off, table_buckets, table_gen,
 * flush_version and the rdma slots change while the server runs, each
 * change under the arena's header lock, ending with hdr_sum: a one-sided
 * reader's copy whose sum does not match was torn and is read again. */
struct mc_arena_hdr {
	char magic[4];				 /* 0: "KHMC" */
	uint32_t layout;			 /* 4: MC_LAYOUT_VERSION */
	uint64_t arena_size;			 /* 8: bytes in the whole arena */
	uint64_t table_gen;			 /* 16: +1 each time a grown table is published */
	uint64_t table_off;			 /* 24: offset of the current table */
	uint64_t table_buckets;			 /* 32: its bucket count, a power of two */
	uint64_t table_area_off;		 /* 40: the table area: two halves */
	uint64_t table_area_size;		 /* 48 */
	uint64_t item_off;			 /* 56: the item area: exactly -m megabytes */
	uint64_t item_size;			 /* 64 */
	uint64_t start_time;			 /* 72: server start, unix seconds */
	uint64_t flush_version;			 /* 80: items with a lower version are flushed */
	uint32_t probe;				 /* 88: MC_PROBE */
	uint32_t bucket_bytes;			 /* 92: MC_BUCKET_BYTES */
	uint64_t hdr_sum;			 /* 96: mc_hdr_sum of everything else here */
	uint64_t features;			 /* 104: MC_FEAT_* */
	struct mc_rdma_slot rdma[MC_RDMA_SLOTS]; /* 112 */
};

/* Memory that held an item is reused only after a fence of the RDMA device
 * (khrdma_fence): a one-sided copy of an item whose header checks out was
 * not torn by a reuse, and the value's checksum need not be computed to
 * know it (slabs.h). */
#define MC_FEAT_FENCED_REUSE 1

/* One table entry.  Empty is all zero.  Writers store len and ver first and
 * word0 last (release); a removal clears word0 first. */
struct mc_entry {
	uint64_t word0; /* item offset (low 40 bits) | key hash tag << 40 */
	uint32_t len;	/* the item's total length */
	uint32_t ver;	/* low 32 bits of the item's version */
};

/* An item: this header, then the key, then the value; it starts 8-byte
 * aligned.  Never changed once published, except state (1 -> 0). */
struct mc_item {
	uint32_t magic;	    /* 0: MC_ITEM_MAGIC */
	uint32_t total_len; /* 4: MC_ITEM_HDR + key_len + value_len */
	uint64_t version;   /* 8: unique per store, increasing; the CAS value */
	uint32_t flags;	    /* 16: the client's flags */
	uint32_t exptime;   /* 20: absolute unix seconds, 0 = never */
	uint16_t key_len;   /* 24 */
	uint8_t state;	    /* 26: 1 valid, 0 deleted */
	uint8_t pad;	    /* 27 */
	uint32_t value_len; /* 28 */
	uint64_t checksum;  /* 32: mc_item_sum */
};

_Static_assert(sizeof(struct mc_item) == MC_ITEM_HDR, "item header is 40 bytes");
_Static_assert(sizeof(struct mc_entry) == 16, "table entries are 16 bytes");
_Static_assert(sizeof(struct mc_arena_hdr) == 112 + 24 * MC_RDMA_SLOTS, "arena header fields");

/* A 64-bit hash of n bytes (an xxhash-like four-lane multiply-rotate).  Any
 * change confined to one aligned 8-byte word changes the result. */
uint64_t mc_hash64(const void *p, size_t n, uint64_t seed);

/* The key hash: its low bits choose the home bucket, its top 24 bits are
 * the entry's tag. */
uint64_t mc_key_hash(const void *key, size_t klen);
static inline uint64_t
mc_key_tag(uint64_t hash)
{
	return hash >> MC_OFF_BITS;
}
static inline uint64_t
mc_entry_word0(uint64_t hash, uint64_t item_off)
{
	return (mc_key_tag(hash) << MC_OFF_BITS) | (item_off & MC_OFF_MASK);
}

/* The checksum of an item: kvhash = mc_hash64 of its key and value bytes
 * (contiguous) with seed MC_SUM_SEED, then mc_item_sum folds in version,
 * flags, exptime and both lengths. */
#define MC_SUM_SEED UINT64_C(0x6b68636d63737531)
uint64_t mc_item_kvhash(const void *kv, size_t n);
uint64_t mc_item_sum(uint64_t kvhash, uint64_t version, uint32_t flags, uint32_t exptime,
		     uint32_t key_len, uint32_t value_len);

/* The home bucket of hash in a table of n buckets (a power of two). */
static inline uint64_t
mc_home_bucket(uint64_t hash, uint64_t n)
{
	return hash & (n - 1);
}

/* In a copy of a key's probe window (MC_PROBE buckets from its home, in
 * order), the entries whose tag is the key's, at most max of them, copied
 * to out.  Returns how many.  The item each names is a candidate that
 * mc_item_check decides on. */
size_t mc_window_match(const void *window, uint64_t hash, struct mc_entry *out, size_t max);

/* The sum of a header's fields but hdr_sum. */
uint64_t mc_hdr_sum(const struct mc_arena_hdr *h);
/* A copy of the header as a one-sided reader got it: 0 when whole (magic,
 * layout, sum), -1 when torn or not a khmcd arena. */
int mc_hdr_check(const struct mc_arena_hdr *copy);

/* What mc_item_check found. */
enum {
	MC_CHECK_OK = 0,
	MC_CHECK_TORN = -1,    /* not an item, lengths out of bounds, bad checksum */
	MC_CHECK_STALE = -2,   /* another key or version, or deleted */
	MC_CHECK_EXPIRED = -3, /* a valid item past its exptime */
};

struct mc_item_view {
	uint64_t version;
	uint32_t flags;
	uint32_t exptime;
	const char *value; /* inside the bytes checked */
	uint32_t value_len;
};

/* Validate len bytes copied from the arena as a one-sided reader would: an
 * item (magic, lengths within len, pad zero), valid, of this key, whose
 * version's low 32 bits are version_low, with a matching checksum and, when
 * now is not 0, not expired at unix time now.  Fills *v (if given) on
 * success.  A reader also treats an item whose version is below the arena
 * header's flush_version as a miss. */
int mc_item_check(const void *bytes, size_t len, const char *key, size_t klen, uint32_t version_low,
		  uint32_t now, struct mc_item_view *v);
/* The same, with the value's checksum computed only when sum is 1 (a
 * reader of an arena with MC_FEAT_FENCED_REUSE may leave it out). */
int mc_item_check_sum(const void *bytes, size_t len, const char *key, size_t klen,
		      uint32_t version_low, uint32_t now, struct mc_item_view *v, int sum);

#endif
