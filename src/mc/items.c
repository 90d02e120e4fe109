/* items: the storage engine's operations (items.h).  Every operation locks
 * the stripes of its key's probe window for the few table reads and writes
 * it needs; building a new item (copying values, hashing them) happens with
 * no lock held, and a rewrite (append, incr, touch) checks under the lock
 * that the item it read is still the current one, or starts again. */
#include "mc/items.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

#define REWRITE_TRIES 64

static inline struct mc_item *
item_at(struct mc_cache *c, uint64_t word0)
{
	return mc_arena_at(&c->arena, word0 & MC_OFF_MASK);
}

static inline uint64_t
item_off(struct mc_cache *c, const struct mc_item *it)
{
	return mc_arena_off(&c->arena, it);
}

static inline void
stat_add(uint64_t *s, int64_t v)
{
	__atomic_fetch_add(s, (uint64_t)v, __ATOMIC_RELAXED);
}

static inline uint8_t
flags_of(struct mc_chunk *ch)
{
	return __atomic_load_n(&ch->flags, __ATOMIC_RELAXED);
}

struct flush_walk {
	struct mc_cache *c;
	uint64_t below;
};

static void
mark_flushed(void *arg, struct mc_entry *e)
{
	struct flush_walk *w = arg;
	struct mc_item *it = mc_arena_at(&w->c->arena, e->word0 & MC_OFF_MASK);
	if (it->version < w->below)
		__atomic_store_n(&it->state, 0, __ATOMIC_RELEASE);
}

/* Everything stored before version v is flushed.  The server checks
 * flush_version lazily, on access; a one-sided reader does not look at it
 * for every get, so when the arena is exposed every flushed item is also
 * marked deleted, under every stripe, before the flush is answered. */
static void
raise_flush_version(struct mc_cache *c, uint64_t v)
{
	uint64_t cur = __atomic_load_n(&c->flush_version, __ATOMIC_RELAXED);

	while (cur < v && !__atomic_compare_exchange_n(&c->flush_version, &cur, v, 0,
						       __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	mc_arena_hdr_lock(&c->arena);
	cur = __atomic_load_n(&c->arena.hdr->flush_version, __ATOMIC_RELAXED);
	if (cur < v)
		__atomic_store_n(&c->arena.hdr->flush_version, v, __ATOMIC_RELEASE);
	mc_arena_hdr_unlock(&c->arena);
	if (c->assoc.publish) {
		struct flush_walk w = {c, v};
		mc_assoc_each(&c->assoc, mark_flushed, &w);
	}
}

/* Apply a delayed flush_all whose time has come.  Unlike an immediate
 * one it takes no CAS value, as in memcached. */
static void
flush_due(struct mc_cache *c, uint32_t now)
{
	uint64_t at = __atomic_load_n(&c->flush_at, __ATOMIC_RELAXED);

	if (at != 0 && now >= at &&
	    __atomic_compare_exchange_n(&c->flush_at, &at, 0, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_RELAXED))
		raise_flush_version(c, __atomic_load_n(&c->cas, __ATOMIC_ACQUIRE) + 1);
}

static int
dead(struct mc_cache *c, const struct mc_item *it, uint32_t now)
{
	if (it->exptime != 0 && it->exptime <= now)
		return 1;
	return it->version < __atomic_load_n(&c->flush_version, __ATOMIC_ACQUIRE);
}

static void
count_link(struct mc_cache *c, struct mc_chunk *ch, int sign)
{
	stat_add(&c->curr_items, sign);
	stat_add(&c->bytes, sign * (int64_t)mc_chunk_item(ch)->total_len);
	stat_add(&c->cls_items[ch->cls], sign);
}

/* Under the lock: take ch out of the table.  invalidate: mark the item
 * deleted first, for one-sided readers.  The caller drops the link's
 * reference after unlocking. */
static void
unlink_locked(struct mc_cache *c, struct mc_entry *e, struct mc_chunk *ch, int invalidate)
{
	if (invalidate)
		__atomic_store_n(&mc_chunk_item(ch)->state, 0, __ATOMIC_RELEASE);
	mc_assoc_remove(&c->assoc, e);
	__atomic_fetch_and(&ch->flags, (uint8_t)~MC_CH_LINKED, __ATOMIC_RELAXED);
	count_link(c, ch, -1);
}

/* Under the lock: ch (a new item, its version and checksum written) takes
 * entry e, which held old (or was free when old is NULL).  The old item is
 * marked deleted first, live or not: a one-sided reader whose copy of the
 * table still names it then finds it stale and reads the table again, so a
 * get that starts after the store returned never sees the old value (a TCP
 * get holding a reference still sends its value bytes, which the state
 * byte is not part of). */
static void
link_locked(struct mc_cache *c, struct mc_entry *e, struct mc_chunk *ch, struct mc_chunk *old)
{
	struct mc_item *it = mc_chunk_item(ch);

	__atomic_fetch_add(&ch->refs, 1, __ATOMIC_RELAXED);
	__atomic_fetch_or(&ch->flags, MC_CH_LINKED, __ATOMIC_RELAXED);
	if (old != NULL) {
		__atomic_store_n(&mc_chunk_item(old)->state, 0, __ATOMIC_RELEASE);
		mc_assoc_replace(e, ch->hash, item_off(c, it), it->total_len,
				 (uint32_t)it->version);
		__atomic_fetch_and(&old->flags, (uint8_t)~MC_CH_LINKED, __ATOMIC_RELAXED);
		count_link(c, old, -1);
	} else {
		mc_assoc_fill(&c->assoc, e, ch->hash, item_off(c, it), it->total_len,
			      (uint32_t)it->version);
	}
	count_link(c, ch, 1);
	stat_add(&c->total_items, 1);
}

/* Under the lock: write the version and checksum of a new item. */
static void
seal(struct mc_item *it, uint64_t kvh, uint64_t version)
{
	it->version = version;
	it->checksum =
	    mc_item_sum(kvh, version, it->flags, it->exptime, it->key_len, it->value_len);
}

static uint64_t
kvhash_of(const struct mc_item *it)
{
	return mc_item_kvhash((const char *)it + MC_ITEM_HDR, it->key_len + (size_t)it->value_len);
}

/* The allocator's eviction hook (the class lock is held; see slabs.h). */
static int
reclaim(void *ctx, struct mc_chunk *ch, uint32_t now, int force)
{
	struct mc_cache *c = ctx;
	uint8_t fl = flags_of(ch);
	struct mc_item *it = mc_chunk_item(ch);
	struct mc_locked lk;

	if (!(fl & MC_CH_LINKED) || __atomic_load_n(&ch->refs, __ATOMIC_RELAXED) != 1)
		return MC_RECLAIM_BUSY;
	int expired = dead(c, it, now);
	if (!expired && !force) {
		if (!(fl & MC_CH_ACTIVE))
			return MC_RECLAIM_CANDIDATE;
		__atomic_fetch_and(&ch->flags, (uint8_t)~MC_CH_ACTIVE, __ATOMIC_RELAXED);
		return MC_RECLAIM_ACTIVE;
	}
	mc_assoc_lock(&c->assoc, ch->hash, &lk);
	struct mc_entry *e = mc_assoc_find_off(&c->assoc, &lk, ch->hash, item_off(c, it));
	if (e == NULL || !(flags_of(ch) & MC_CH_LINKED) ||
	    __atomic_load_n(&ch->refs, __ATOMIC_RELAXED) != 1) {
		mc_assoc_unlock(&c->assoc, &lk);
		return MC_RECLAIM_BUSY;
	}
	unlink_locked(c, e, ch, 1);
	__atomic_store_n(&ch->refs, 0, __ATOMIC_RELAXED);
	mc_assoc_unlock(&c->assoc, &lk);
	int fetched = (flags_of(ch) & MC_CH_FETCHED) != 0;
	if (expired) {
		stat_add(&c->reclaimed, 1);
		if (!fetched)
			stat_add(&c->expired_unfetched, 1);
		return MC_RECLAIM_EXPIRED;
	}
	stat_add(&c->evictions, 1);
	if (!fetched)
		stat_add(&c->evicted_unfetched, 1);
	return MC_RECLAIM_EVICTED;
}

static uint64_t
next_pow2(uint64_t v)
{
	uint64_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

int
mc_cache_init(struct mc_cache *c, const struct mc_cache_config *cfg, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	uint64_t max_items = cfg->item_bytes / MC_MIN_CHUNK;
	uint64_t max_buckets = next_pow2(max_items / 2 > 64 ? max_items / 2 : 64);
	uint64_t initial = cfg->initial_buckets ? next_pow2(cfg->initial_buckets) : 4096;
	if (initial > max_buckets)
		max_buckets = initial;
	if (mc_arena_open(&c->arena, cfg->item_bytes, max_buckets, err, errlen) < 0)
		return -1;
	c->started = (uint32_t)c->arena.hdr->start_time;
	if (mc_slabs_init(&c->slabs, &c->arena, cfg->factor > 1.0 ? cfg->factor : 1.25, reclaim,
			  c) < 0) {
		mc_arena_close(&c->arena);
		return seterr(err, errlen, "out of memory");
	}
	mc_assoc_init(&c->assoc, &c->arena, initial);
	return 0;
}

void
mc_cache_destroy(struct mc_cache *c)
{
	mc_assoc_destroy(&c->assoc);
	mc_slabs_destroy(&c->slabs);
	mc_arena_close(&c->arena);
}

uint32_t
mc_exptime(const struct mc_cache *c, int64_t exptime, uint32_t now)
{
	if (exptime == 0)
		return 0;
	if (exptime < 0)
		return 1; /* long gone */
	if (exptime > MC_REALTIME_MAXDELTA)
		return exptime <= c->started ? 1 : (uint32_t)exptime;
	return now + (uint32_t)exptime;
}

int
mc_too_large(size_t klen, size_t vlen, uint32_t flags)
{
	return klen + vlen + 59 + (flags != 0 ? 4 : 0) > MC_ITEM_SIZE_MAX;
}

static void
write_header(struct mc_chunk *ch, const char *key, size_t klen, uint32_t flags, uint32_t exptime,
	     uint32_t vlen, uint64_t hash)
{
	struct mc_item *it = mc_chunk_item(ch);

	it->magic = MC_ITEM_MAGIC;
	it->total_len = (uint32_t)(MC_ITEM_HDR + klen + vlen);
	it->version = 0;
	it->flags = flags;
	it->exptime = exptime;
	it->key_len = (uint16_t)klen;
	it->state = MC_ITEM_VALID;
	it->pad = 0;
	it->value_len = vlen;
	it->checksum = 0;
	memcpy((char *)it + MC_ITEM_HDR, key, klen);
	ch->hash = hash;
}

struct mc_chunk *
mc_item_new(struct mc_cache *c, const char *key, size_t klen, uint32_t flags, uint32_t exptime,
	    uint32_t vlen, uint32_t now, enum mc_res *res)
{
	if (klen == 0 || klen > MC_KEY_MAX || mc_too_large(klen, vlen, flags)) {
		*res = MC_TOO_LARGE;
		return NULL;
	}
	struct mc_chunk *ch =
	    mc_slabs_alloc(&c->slabs, MC_CHUNK_HDR + MC_ITEM_HDR + klen + vlen, now);
	if (ch == NULL) {
		*res = MC_NOMEM;
		return NULL;
	}
	write_header(ch, key, klen, flags, exptime, vlen, mc_key_hash(key, klen));
	return ch;
}

void
mc_release(struct mc_cache *c, struct mc_chunk *ch)
{
	if (__atomic_sub_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL) == 0)
		mc_slabs_free(&c->slabs, ch);
}

void
mc_item_discard(struct mc_cache *c, struct mc_chunk *ch)
{
	mc_release(c, ch);
}

void
mc_bump(struct mc_chunk *ch, uint32_t now)
{
	uint8_t want = MC_CH_ACTIVE | MC_CH_FETCHED;

	if ((flags_of(ch) & want) != want)
		__atomic_fetch_or(&ch->flags, want, __ATOMIC_RELAXED);
	if (__atomic_load_n(&ch->time, __ATOMIC_RELAXED) != now)
		__atomic_store_n(&ch->time, now, __ATOMIC_RELAXED);
}

/* A rewrite: a new item made from the current one of a key (append,
 * prepend, incr, decr, touch, md I).  plan sizes it, fill writes it. */
struct rewrite {
	enum mc_res (*plan)(struct rewrite *rw, const struct mc_item *old);
	void (*fill)(struct rewrite *rw, const struct mc_item *old, char *value);
	uint32_t vlen, flags, exptime;
	int keep_version;     /* touch: the CAS value stays */
	uint8_t keep_chflags; /* chunk flags carried over from the old item */
	uint8_t set_chflags;  /* chunk flags the new item gets */
	uint64_t cas;	      /* if not 0, the old item must have this version */
	/* the operations' own data */
	const struct mc_item *data;
	int incr;
	uint64_t delta, value;
	char num[24];
	size_t numlen;
};

static enum mc_res
rewrite(struct mc_cache *c, const char *key, size_t klen, uint32_t now, struct rewrite *rw,
	struct mc_chunk **keep, uint64_t *cas_out)
{
	uint64_t hash = mc_key_hash(key, klen);
	struct mc_locked lk;

	flush_due(c, now);
	for (int tries = 0; tries < REWRITE_TRIES; tries++) {
		mc_assoc_lock(&c->assoc, hash, &lk);
		struct mc_entry *e = mc_assoc_find(&c->assoc, &lk, hash, key, klen);
		if (e == NULL) {
			mc_assoc_unlock(&c->assoc, &lk);
			return MC_NOT_FOUND;
		}
		struct mc_item *old = item_at(c, e->word0);
		struct mc_chunk *och = mc_item_chunk(old);
		if (dead(c, old, now)) {
			unlink_locked(c, e, och, 1);
			mc_assoc_unlock(&c->assoc, &lk);
			mc_release(c, och);
			return MC_NOT_FOUND;
		}
		if (rw->cas != 0 && old->version != rw->cas) {
			mc_assoc_unlock(&c->assoc, &lk);
			return MC_EXISTS;
		}
		uint64_t oldver = old->version, w0 = e->word0;
		__atomic_fetch_add(&och->refs, 1, __ATOMIC_RELAXED);
		mc_assoc_unlock(&c->assoc, &lk);

		enum mc_res r = rw->plan(rw, old);
		if (r == MC_OK && mc_too_large(klen, rw->vlen, rw->flags))
			r = MC_TOO_LARGE;
		struct mc_chunk *nch = NULL;
		if (r == MC_OK) {
			nch = mc_slabs_alloc(&c->slabs,
					     MC_CHUNK_HDR + MC_ITEM_HDR + klen + rw->vlen, now);
			if (nch == NULL)
				r = MC_NOMEM;
		}
		if (r != MC_OK) {
			mc_release(c, och);
			return r;
		}
		write_header(nch, key, klen, rw->flags, rw->exptime, rw->vlen, hash);
		rw->fill(rw, old, mc_item_value(nch));
		uint64_t kvh = kvhash_of(mc_chunk_item(nch));
		__atomic_fetch_or(&nch->flags,
				  (uint8_t)((flags_of(och) & rw->keep_chflags) | rw->set_chflags),
				  __ATOMIC_RELAXED);

		mc_assoc_lock(&c->assoc, hash, &lk);
		e = mc_assoc_find(&c->assoc, &lk, hash, key, klen);
		if (e != NULL && e->word0 == w0 && !dead(c, old, now)) {
			uint64_t ver = rw->keep_version
					   ? oldver
					   : __atomic_add_fetch(&c->cas, 1, __ATOMIC_ACQ_REL);
			seal(mc_chunk_item(nch), kvh, ver);
			link_locked(c, e, nch, och);
			mc_assoc_unlock(&c->assoc, &lk);
			mc_release(c, och); /* the table's link */
			mc_release(c, och); /* ours */
			if (cas_out != NULL)
				*cas_out = ver;
			if (keep != NULL)
				*keep = nch;
			else
				mc_release(c, nch);
			return MC_OK;
		}
		mc_assoc_unlock(&c->assoc, &lk);
		mc_release(c, och);
		mc_release(c, nch);
	}
	return MC_NOMEM;
}

/* append and prepend */
static enum mc_res
concat_plan(struct rewrite *rw, const struct mc_item *old)
{
	rw->vlen = old->value_len + rw->data->value_len;
	rw->flags = old->flags;
	rw->exptime = old->exptime;
	return MC_OK;
}

static void
append_fill(struct rewrite *rw, const struct mc_item *old, char *v)
{
	memcpy(v, mc_item_key(old) + old->key_len, old->value_len);
	memcpy(v + old->value_len, mc_item_key(rw->data) + rw->data->key_len, rw->data->value_len);
}

static void
prepend_fill(struct rewrite *rw, const struct mc_item *old, char *v)
{
	memcpy(v, mc_item_key(rw->data) + rw->data->key_len, rw->data->value_len);
	memcpy(v + rw->data->value_len, mc_item_key(old) + old->key_len, old->value_len);
}

enum mc_res
mc_store(struct mc_cache *c, struct mc_chunk *ch, enum mc_op op, uint64_t cas, int stale,
	 uint32_t now, uint64_t *cas_out)
{
	struct mc_item *it = mc_chunk_item(ch);
	const char *key = mc_item_key(it);
	struct mc_locked lk;

	if (op == MC_APPEND || op == MC_PREPEND) {
		struct rewrite rw = {.plan = concat_plan,
				     .fill = op == MC_APPEND ? append_fill : prepend_fill,
				     .cas = cas,
				     .data = it};
		enum mc_res r = rewrite(c, key, it->key_len, now, &rw, NULL, cas_out);
		mc_release(c, ch);
		if (r == MC_OK)
			return MC_STORED;
		return r == MC_EXISTS ? MC_EXISTS : MC_NOT_STORED;
	}

	uint64_t kvh = kvhash_of(it);
	flush_due(c, now);
	for (;;) {
		mc_assoc_lock(&c->assoc, ch->hash, &lk);
		struct mc_entry *e = mc_assoc_find(&c->assoc, &lk, ch->hash, key, it->key_len);
		struct mc_chunk *old = e ? mc_item_chunk(item_at(c, e->word0)) : NULL;
		int live = old != NULL && !dead(c, mc_chunk_item(old), now);
		enum mc_res r = MC_STORED;
		int mark_stale = 0;

		switch (op) {
		case MC_ADD:
			if (live) {
				mc_bump(old, now);
				r = MC_NOT_STORED;
			}
			break;
		case MC_REPLACE:
			if (!live)
				r = MC_NOT_STORED;
			break;
		case MC_CAS:
			if (!live)
				r = MC_NOT_FOUND;
			else if (cas != 0 && mc_chunk_item(old)->version == cas)
				r = MC_STORED;
			else if (stale && cas != 0 && cas < mc_chunk_item(old)->version)
				mark_stale = 1;
			else
				r = MC_EXISTS;
			break;
		default:
			break;
		}
		if (r != MC_STORED) {
			if (old != NULL && !live)
				unlink_locked(c, e, old, 1);
			mc_assoc_unlock(&c->assoc, &lk);
			if (old != NULL && !live)
				mc_release(c, old);
			mc_release(c, ch);
			return r;
		}
		if (e == NULL && (e = mc_assoc_slot(&c->assoc, &lk, ch->hash)) == NULL) {
			uint64_t gen = lk.gen;
			mc_assoc_unlock(&c->assoc, &lk);
			if (mc_assoc_grow(&c->assoc, gen) < 0) {
				mc_release(c, ch);
				return MC_NOMEM;
			}
			continue;
		}
		if (mark_stale) {
			it->exptime = mc_chunk_item(old)->exptime;
			__atomic_fetch_or(&ch->flags,
					  (uint8_t)(MC_CH_STALE | (flags_of(old) & MC_CH_WON)),
					  __ATOMIC_RELAXED);
		}
		uint64_t ver = __atomic_add_fetch(&c->cas, 1, __ATOMIC_ACQ_REL);
		seal(it, kvh, ver);
		link_locked(c, e, ch, old);
		mc_assoc_unlock(&c->assoc, &lk);
		if (old != NULL)
			mc_release(c, old);
		mc_release(c, ch);
		if (cas_out != NULL)
			*cas_out = ver;
		return MC_STORED;
	}
}

struct mc_chunk *
mc_get(struct mc_cache *c, const char *key, size_t klen, uint32_t now, int do_bump)
{
	uint64_t hash = mc_key_hash(key, klen);
	struct mc_locked lk;

	flush_due(c, now);
	mc_assoc_lock(&c->assoc, hash, &lk);
	struct mc_entry *e = mc_assoc_find(&c->assoc, &lk, hash, key, klen);
	if (e == NULL) {
		mc_assoc_unlock(&c->assoc, &lk);
		return NULL;
	}
	struct mc_item *it = item_at(c, e->word0);
	struct mc_chunk *ch = mc_item_chunk(it);
	if (dead(c, it, now)) {
		unlink_locked(c, e, ch, 1);
		mc_assoc_unlock(&c->assoc, &lk);
		mc_release(c, ch);
		return NULL;
	}
	__atomic_fetch_add(&ch->refs, 1, __ATOMIC_RELAXED);
	mc_assoc_unlock(&c->assoc, &lk);
	if (do_bump)
		mc_bump(ch, now);
	return ch;
}

static enum mc_res
touch_plan(struct rewrite *rw, const struct mc_item *old)
{
	rw->vlen = old->value_len;
	rw->flags = old->flags;
	return MC_OK;
}

static void
copy_fill(struct rewrite *rw, const struct mc_item *old, char *v)
{
	memcpy(v, mc_item_key(old) + old->key_len, old->value_len);
}

struct mc_chunk *
mc_get_touch(struct mc_cache *c, const char *key, size_t klen, uint32_t exptime, uint32_t now)
{
	struct rewrite rw = {.plan = touch_plan,
			     .fill = copy_fill,
			     .exptime = exptime,
			     .keep_version = 1,
			     .keep_chflags = MC_CH_FETCHED | MC_CH_STALE | MC_CH_WON};
	struct mc_chunk *ch = NULL;

	if (rewrite(c, key, klen, now, &rw, &ch, NULL) != MC_OK)
		return NULL;
	mc_bump(ch, now);
	return ch;
}

enum mc_res
mc_touch(struct mc_cache *c, const char *key, size_t klen, uint32_t exptime, uint32_t now)
{
	struct rewrite rw = {.plan = touch_plan,
			     .fill = copy_fill,
			     .exptime = exptime,
			     .keep_version = 1,
			     .keep_chflags = MC_CH_FETCHED | MC_CH_STALE | MC_CH_WON,
			     .set_chflags = MC_CH_ACTIVE};
	enum mc_res r = rewrite(c, key, klen, now, &rw, NULL, NULL);

	return r == MC_OK ? MC_TOUCHED : r;
}

static enum mc_res
stale_plan(struct rewrite *rw, const struct mc_item *old)
{
	rw->vlen = old->value_len;
	rw->flags = old->flags;
	if (rw->exptime == UINT32_MAX)
		rw->exptime = old->exptime;
	return MC_OK;
}

enum mc_res
mc_delete(struct mc_cache *c, const char *key, size_t klen, uint64_t cas, int stale,
	  uint32_t exptime, uint32_t now)
{
	uint64_t hash = mc_key_hash(key, klen);
	struct mc_locked lk;

	if (stale) {
		/* md I: the item stays, marked stale, with a new CAS value and
		 * its token free for the next client to win. */
		struct rewrite rw = {.plan = stale_plan,
				     .fill = copy_fill,
				     .exptime = exptime,
				     .cas = cas,
				     .keep_chflags = MC_CH_FETCHED,
				     .set_chflags = MC_CH_STALE};
		enum mc_res r = rewrite(c, key, klen, now, &rw, NULL, NULL);
		return r == MC_OK ? MC_DELETED : r;
	}
	flush_due(c, now);
	mc_assoc_lock(&c->assoc, hash, &lk);
	struct mc_entry *e = mc_assoc_find(&c->assoc, &lk, hash, key, klen);
	if (e == NULL) {
		mc_assoc_unlock(&c->assoc, &lk);
		return MC_NOT_FOUND;
	}
	struct mc_item *it = item_at(c, e->word0);
	struct mc_chunk *ch = mc_item_chunk(it);
	enum mc_res r = MC_DELETED;
	if (dead(c, it, now))
		r = MC_NOT_FOUND;
	else if (cas != 0 && it->version != cas)
		r = MC_EXISTS;
	if (r == MC_EXISTS) {
		mc_assoc_unlock(&c->assoc, &lk);
		return r;
	}
	unlink_locked(c, e, ch, 1);
	mc_assoc_unlock(&c->assoc, &lk);
	mc_release(c, ch);
	return r;
}

int
mc_strtoull(const char *s, size_t n, uint64_t *out)
{
	size_t i = 0, d0;
	uint64_t v = 0;
	int neg = 0, range = 0;

#define BLANK(ch) ((ch) == ' ' || ((ch) >= '\t' && (ch) <= '\r'))
	while (i < n && BLANK(s[i]))
		i++;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	for (d0 = i; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			range = 1;
		else
			v = v * 10 + d;
	}
	if (i == d0 || range)
		return -1;
	if (i < n && s[i] != '\0' && !BLANK(s[i]))
		return -1;
#undef BLANK
	if (neg)
		v = (uint64_t)0 - v;
	if ((int64_t)v < 0 && memchr(s, '-', n) != NULL)
		return -1;
	*out = v;
	return 0;
}

static enum mc_res
arith_plan(struct rewrite *rw, const struct mc_item *old)
{
	uint64_t v;

	if (old->value_len == 0 ||
	    mc_strtoull(mc_item_key(old) + old->key_len, old->value_len, &v) < 0)
		return MC_NON_NUMERIC;
	if (rw->incr)
		v += rw->delta;
	else
		v = rw->delta > v ? 0 : v - rw->delta;
	rw->value = v;
	rw->numlen = (size_t)snprintf(rw->num, sizeof(rw->num), "%llu", (unsigned long long)v);
	/* memcached rewrites a number in place when it fits, padded with
	 * spaces; we write a new item with the same bytes. */
	rw->vlen = rw->numlen <= old->value_len ? old->value_len : (uint32_t)rw->numlen;
	rw->flags = old->flags;
	rw->exptime = old->exptime;
	return MC_OK;
}

static void
arith_fill(struct rewrite *rw, const struct mc_item *old, char *v)
{
	memcpy(v, rw->num, rw->numlen);
	memset(v + rw->numlen, ' ', rw->vlen - rw->numlen);
}

enum mc_res
mc_arith(struct mc_cache *c, const char *key, size_t klen, int incr, uint64_t delta, uint64_t cmp,
	 uint32_t now, uint64_t *value, uint64_t *cas, struct mc_chunk **keep)
{
	struct rewrite rw = {.plan = arith_plan,
			     .fill = arith_fill,
			     .incr = incr,
			     .delta = delta,
			     .cas = cmp,
			     .keep_chflags = MC_CH_FETCHED};
	enum mc_res r = rewrite(c, key, klen, now, &rw, keep, cas);

	if (r == MC_OK)
		*value = rw.value;
	else if (r == MC_TOO_LARGE)
		r = MC_NOMEM;
	return r;
}

void
mc_flush(struct mc_cache *c, uint32_t at, uint32_t now)
{
	if (at == 0 || at <= now) {
		__atomic_store_n(&c->flush_at, 0, __ATOMIC_RELAXED);
		raise_flush_version(c, __atomic_add_fetch(&c->cas, 1, __ATOMIC_ACQ_REL));
		return;
	}
	__atomic_store_n(&c->flush_at, at, __ATOMIC_RELAXED);
}

void
mc_cache_tick(struct mc_cache *c, uint32_t now)
{
	flush_due(c, now);
}
