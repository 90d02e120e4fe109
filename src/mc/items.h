/* items: khmcd's storage engine.  It owns the arena, the slab allocator and
 * the table, and gives the protocol its operations: make an item, store it
 * (set, add, replace, append, prepend, cas), get, touch, delete, incr/decr,
 * flush.  Semantics are memcached 1.6's, CAS values included: each store
 * takes the next number of one counter, as memcached's do.
 *
 * An item is never changed once linked, except its state byte: a store,
 * append, incr or touch writes a new item into fresh memory, switches the
 * table entry, then drops the old one; a delete marks the item invalid, then
 * unlinks it, then drops it.  Memory goes back to its class when the last
 * reference is dropped: the table's link holds one, every get holds one
 * until its reply is written (mc_release).  No lock is held across I/O and
 * none across a call into the caller. */
#ifndef KH_MC_ITEMS_H
#define KH_MC_ITEMS_H

#include "mc/arena.h"
#include "mc/assoc.h"
#include "mc/slabs.h"

#include <stddef.h>
#include <stdint.h>

/* memcached's default item size limit, and its arithmetic: key + value +
 * 59 (+ 4 with non-zero flags) bytes at most. */
#define MC_ITEM_SIZE_MAX     (1u << 20)
#define MC_REALTIME_MAXDELTA (60 * 60 * 24 * 30)

enum mc_op { MC_SET, MC_ADD, MC_REPLACE, MC_APPEND, MC_PREPEND, MC_CAS };

enum mc_res {
	MC_STORED,
	MC_NOT_STORED,
	MC_EXISTS,
	MC_NOT_FOUND,
	MC_DELETED,
	MC_TOUCHED,
	MC_OK,
	MC_NON_NUMERIC,
	MC_TOO_LARGE,
	MC_NOMEM,
};

struct mc_cache_config {
	uint64_t item_bytes;	  /* the item area: -m megabytes */
	uint64_t initial_buckets; /* the first table (power of two), 0: 4096 */
	double factor;		  /* slab growth factor, 0: 1.25 */
};

struct mc_cache {
	struct mc_arena arena;
	struct mc_slabs slabs;
	struct mc_assoc assoc;
	uint64_t cas;		/* atomic: the last version given */
	uint64_t flush_version; /* atomic: items below it are flushed */
	uint64_t flush_at;	/* atomic: a delayed flush_all due then, 0 none */
	uint32_t started;	/* unix seconds */
	/* statistics, atomic */
	uint64_t curr_items, total_items, bytes;
	uint64_t evictions, reclaimed, expired_unfetched, evicted_unfetched, evicted_active;
	uint64_t cls_items[MC_MAX_CLASSES];
};

int mc_cache_init(struct mc_cache *c, const struct mc_cache_config *cfg, char *err, size_t errlen);
void mc_cache_destroy(struct mc_cache *c);

/* memcached's exptime argument as absolute unix seconds: 0 never, negative
 * already expired, up to 30 days relative to now, beyond that absolute. */
uint32_t mc_exptime(const struct mc_cache *c, int64_t exptime, uint32_t now);
/* Whether memcached would refuse an item this large. */
int mc_too_large(size_t klen, size_t vlen, uint32_t flags);

/* A new item for key with room for vlen value bytes, not yet visible.
 * NULL with *res MC_TOO_LARGE or MC_NOMEM. */
struct mc_chunk *mc_item_new(struct mc_cache *c, const char *key, size_t klen, uint32_t flags,
			     uint32_t exptime, uint32_t vlen, uint32_t now, enum mc_res *res);
static inline char *
mc_item_value(struct mc_chunk *ch)
{
	struct mc_item *it = mc_chunk_item(ch);
	return (char *)it + MC_ITEM_HDR + it->key_len;
}
static inline const char *
mc_item_key(const struct mc_item *it)
{
	return (const char *)it + MC_ITEM_HDR;
}
/* Store a filled item made by mc_item_new (which this consumes).  cas: the
 * version to compare (MC_CAS; for the others 0 = none).  stale: ms's I
 * flag.  *cas_out (if given) gets the stored item's version.  Returns
 * MC_STORED, MC_NOT_STORED, MC_EXISTS, MC_NOT_FOUND or MC_NOMEM. */
enum mc_res mc_store(struct mc_cache *c, struct mc_chunk *ch, enum mc_op op, uint64_t cas,
		     int stale, uint32_t now, uint64_t *cas_out);
/* Give up an item from mc_item_new that will not be stored. */
void mc_item_discard(struct mc_cache *c, struct mc_chunk *ch);

/* The live item of key with a reference for the caller, or NULL.  bump:
 * count it as a hit for the LRU. */
struct mc_chunk *mc_get(struct mc_cache *c, const char *key, size_t klen, uint32_t now, int bump);
/* Touch then get (gat): the item with its new exptime, or NULL. */
struct mc_chunk *mc_get_touch(struct mc_cache *c, const char *key, size_t klen, uint32_t exptime,
			      uint32_t now);
/* Drop a reference from mc_get or mc_get_touch. */
void mc_release(struct mc_cache *c, struct mc_chunk *ch);

/* Delete key (if cas is not 0, only at that version): MC_DELETED,
 * MC_NOT_FOUND, MC_EXISTS.  stale: md's I flag, mark instead of delete. */
enum mc_res mc_delete(struct mc_cache *c, const char *key, size_t klen, uint64_t cas, int stale,
		      uint32_t exptime, uint32_t now);
/* MC_TOUCHED or MC_NOT_FOUND (or MC_NOMEM). */
enum mc_res mc_touch(struct mc_cache *c, const char *key, size_t klen, uint32_t exptime,
		     uint32_t now);
/* incr/decr with memcached's rules (decimal text, incr wraps, decr stops at
 * 0, a shorter result is padded with spaces).  cmp: if not 0, the version
 * the item must have (else MC_EXISTS).  MC_OK with *value and *cas (and the
 * new item in *keep, referenced, if keep is given), MC_NOT_FOUND,
 * MC_NON_NUMERIC, MC_NOMEM. */
enum mc_res mc_arith(struct mc_cache *c, const char *key, size_t klen, int incr, uint64_t delta,
		     uint64_t cmp, uint32_t now, uint64_t *value, uint64_t *cas,
		     struct mc_chunk **keep);
/* Count a hit on ch for the LRU (mc_get with bump does it). */
void mc_bump(struct mc_chunk *ch, uint32_t now);
/* flush_all: everything stored before `at` (0 or the past: now) is gone. */
void mc_flush(struct mc_cache *c, uint32_t at, uint32_t now);
/* Called about once a second: a delayed flush_all that is due reaches the
 * arena header (for one-sided readers) even when no command comes. */
void mc_cache_tick(struct mc_cache *c, uint32_t now);

/* Parse a number as memcached's safe_strtoull does (leading blanks, a sign,
 * digits, then a blank or the end; negative numbers refused). */
int mc_strtoull(const char *s, size_t n, uint64_t *out);

#endif
