/* assoc: the hash table in the arena (item.h has its layout).  Open
 * addressing over 64-byte buckets of four entries; a key is found in its home
 * bucket or the MC_PROBE - 1 after it.  Writers lock the stripes that cover
 * a key's probe window (at most two of MC_STRIPES); a table that is too full,
 * or has no free entry in a window, grows by building a table twice the size
 * in the other half of the table area while every stripe is held, then
 * publishing it in the arena header.  Readers outside the server (one-sided)
 * take no lock: entries are written so that any 16 bytes read are either
 * old or new, or fail their item's version check. */
#ifndef KH_MC_ASSOC_H
#define KH_MC_ASSOC_H

#include "mc/arena.h"

#include <pthread.h>
#include <stdint.h>

#define MC_STRIPES 1024u

struct mc_stripe {
	pthread_mutex_t m;
	char pad[64 - sizeof(pthread_mutex_t) % 64];
};

struct mc_assoc {
	struct mc_arena *arena;
	uint64_t gen;	   /* atomic: +1 per published table */
	uint64_t nbuckets; /* atomic: the current table's buckets */
	uint64_t off;	   /* atomic: the current table's offset */
	int half;	   /* which half of the table area holds it */
	uint64_t count;	   /* atomic: entries in use */
	uint64_t grows;	   /* atomic: tables published after the first */
	/* When the arena is exposed through an RDMA device (mc/mcrdma.c):
	 * publish registers a grown table (at off, n buckets) and writes its
	 * keys into the header, whose lock is held; retire deregisters the
	 * table it replaced.  Both run with every stripe held. */
	int (*publish)(void *arg, struct mc_arena_hdr *h, uint64_t off, uint64_t n);
	void (*retire)(void *arg, uint64_t off, uint64_t n);
	void *hook_arg;
	struct mc_stripe stripes[MC_STRIPES];
};

/* The stripes a caller holds, and the table they were taken for. */
struct mc_locked {
	uint64_t nbuckets, off, gen;
	uint32_t s0, s1; /* s1 == s0 when the window is in one stripe */
};

void mc_assoc_init(struct mc_assoc *t, struct mc_arena *a, uint64_t buckets);
void mc_assoc_destroy(struct mc_assoc *t);

/* Lock the stripes of hash's probe window in the current table. */
void mc_assoc_lock(struct mc_assoc *t, uint64_t hash, struct mc_locked *lk);
void mc_assoc_unlock(struct mc_assoc *t, const struct mc_locked *lk);
/* Try to lock them without waiting; 0 when locked. */
int mc_assoc_trylock(struct mc_assoc *t, uint64_t hash, struct mc_locked *lk);

/* Under the lock: the entry of key, NULL when absent. */
struct mc_entry *mc_assoc_find(struct mc_assoc *t, const struct mc_locked *lk, uint64_t hash,
			       const char *key, size_t klen);
/* Under the lock: the entry that points at the item at item_off. */
struct mc_entry *mc_assoc_find_off(struct mc_assoc *t, const struct mc_locked *lk, uint64_t hash,
				   uint64_t item_off);
/* Under the lock: a free entry for a new key, or NULL when the table must
 * grow first (no free entry in the window, or past 3/4 full). */
struct mc_entry *mc_assoc_slot(struct mc_assoc *t, const struct mc_locked *lk, uint64_t hash);
/* Under the lock: fill the free entry from mc_assoc_slot. */
void mc_assoc_fill(struct mc_assoc *t, struct mc_entry *e, uint64_t hash, uint64_t item_off,
		   uint32_t len, uint32_t ver);
/* Under the lock: point an entry at another item of the same key. */
void mc_assoc_replace(struct mc_entry *e, uint64_t hash, uint64_t item_off, uint32_t len,
		      uint32_t ver);
/* Under the lock: empty an entry. */
void mc_assoc_remove(struct mc_assoc *t, struct mc_entry *e);

/* With every stripe held (no writer can run): fn(arg, e) on every entry in
 * use of the current table. */
void mc_assoc_each(struct mc_assoc *t, void (*fn)(void *arg, struct mc_entry *e), void *arg);

/* Grow the table seen at generation gen (no stripe held by the caller).
 * Returns 0 when a larger table is current (grown here or by another
 * thread), -1 when the table is as large as the arena allows. */
int mc_assoc_grow(struct mc_assoc *t, uint64_t gen);

#endif
