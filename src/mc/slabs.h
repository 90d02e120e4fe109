/* slabs: the item area's allocator.  Size classes like memcached's (96
 * bytes, growing by -f 1.25, up to 512 KiB, then three large classes up to
 * the largest item), pages of one size (the largest item's) carved from the
 * item area on demand, a free list and an LRU per class, each under its own
 * lock.  When the area is used up, an allocation takes the least recently
 * used item of its class, through the reclaim callback that unlinks it; a
 * class that has nothing to take empties a page of another class and takes
 * the page (memcached's slab rebalancing, done when it is needed).
 *
 * Every chunk starts with a private struct mc_chunk (LRU links, the key hash,
 * a reference count, flags); the item (item.h) follows it.  Lock order: a
 * class lock, then table stripes (inside reclaim); never the other way; a
 * second class lock only by trylock. */
#ifndef KH_MC_SLABS_H
#define KH_MC_SLABS_H

#include "mc/arena.h"

#include <pthread.h>
#include <stdint.h>

#define MC_CHUNK_HDR 40u
/* A page holds the largest item (memcached's key + value limit, both
 * headers, in 4 KiB pages): every page fits every class. */
#define MC_PAGE_SIZE	(((MC_CHUNK_HDR + MC_ITEM_HDR + (1u << 20) - 59u) + 4095u) / 4096u * 4096u)
#define MC_CHUNK_MAX	(1u << 19) /* memcached's slab_chunk_max */
#define MC_MAX_CLASSES	64
#define MC_MIN_CHUNK	96u
#define MC_EVICT_TRIES	64 /* LRU tail items looked at per allocation */
#define MC_EXPIRED_LOOK 16 /* ... of which searched for an expired one first */

/* flags of a chunk */
#define MC_CH_LINKED  0x01 /* in the table (under its stripe lock) */
#define MC_CH_ACTIVE  0x02 /* hit since it last reached the LRU tail */
#define MC_CH_FETCHED 0x04 /* hit at least once */
#define MC_CH_STALE   0x08 /* meta: marked stale (ms/md I) */
#define MC_CH_WON     0x10 /* meta: a client holds the recache token */
#define MC_CH_ONLRU   0x20 /* on its class's LRU (under the class lock) */

struct mc_chunk {
	uint64_t prev;	 /* LRU neighbours, arena offsets of chunks, 0 = none */
	uint64_t next;	 /* ... or the next free chunk */
	uint64_t hash;	 /* the key hash, set before the item is linked */
	uint32_t refs;	 /* atomic: 1 for the table link + 1 per holder */
	uint32_t time;	 /* atomic: last store or hit, unix seconds */
	uint32_t nbytes; /* the size asked for, header included */
	uint8_t cls;
	uint8_t flags; /* atomic: MC_CH_* */
	uint8_t pad[2];
};
_Static_assert(sizeof(struct mc_chunk) == MC_CHUNK_HDR, "chunk header is 40 bytes");

static inline struct mc_item *
mc_chunk_item(struct mc_chunk *ch)
{
	return (struct mc_item *)((unsigned char *)ch + MC_CHUNK_HDR);
}

static inline struct mc_chunk *
mc_item_chunk(struct mc_item *it)
{
	return (struct mc_chunk *)((unsigned char *)it - MC_CHUNK_HDR);
}

/* What a reclaim callback did with an LRU tail chunk (class lock held).
 * Without force it takes only an expired or flushed item; with force, any
 * item it can. */
enum {
	MC_RECLAIM_BUSY = 0,	  /* in use or not linked: leave it */
	MC_RECLAIM_EVICTED = 1,	  /* unlinked while live: refs 0, the allocator's now */
	MC_RECLAIM_EXPIRED = 2,	  /* unlinked, it had expired or was flushed */
	MC_RECLAIM_ACTIVE = 3,	  /* recently hit: flag cleared, give it another round */
	MC_RECLAIM_CANDIDATE = 4, /* live and idle: may be evicted (with force) */
};
typedef int mc_reclaim_fn(void *ctx, struct mc_chunk *ch, uint32_t now, int force);

struct mc_slabclass {
	pthread_mutex_t lock;
	uint32_t size;		   /* chunk bytes, header included */
	uint32_t perpage;	   /* chunks in one page */
	uint64_t free;		   /* free list head (offset), 0 = empty */
	uint64_t limbo, nlimbo;	   /* freed, not yet behind a fence (see mc_slabs) */
	uint64_t carve, carve_end; /* the uncarved rest of the newest page */
	uint64_t head, tail;	   /* LRU, most recent at head */
	uint64_t pages, used, nfree;
	uint64_t requested; /* bytes asked for by the chunks in use */
	uint64_t evictions, reclaimed, outofmemory;
	uint64_t lru_items;	      /* chunks on the LRU */
	uint64_t moved_in, moved_out; /* pages taken from / given to other classes */
	char pad[64];
};

struct mc_slabs {
	struct mc_arena *arena;
	int nclasses; /* classes 1..nclasses; 0 is unused, as in memcached */
	struct mc_slabclass cls[MC_MAX_CLASSES];
	pthread_mutex_t page_lock;
	uint64_t page_size;	      /* MC_PAGE_SIZE, or the item area if smaller */
	uint64_t npages;	      /* pages in the item area */
	uint64_t page_next, page_end; /* the item area not yet given to a class */
	uint64_t pages_given;
	uint8_t *page_cls; /* the class of each page given (server memory) */
	unsigned steal_at; /* where the next search for a page to move starts */
	uint64_t pages_moved;
	mc_reclaim_fn *reclaim;
	void *ctx;
	/* When the arena is exposed to one-sided readers: memory that held an
	 * item is reused only after fence() returned, which waits for every
	 * read the device had begun (khrdma_fence).  A read that began
	 * before the free then never sees the new item's bytes; one that
	 * begins after sees the old item marked deleted, or the new header.
	 * Until then freed chunks wait on their class's limbo list. */
	int (*fence)(void *arg);
	void *fence_arg;
	uint64_t fences; /* atomic: fences waited for */
};

/* Set up the classes over the arena's item area (factor > 1, usually 1.25).
 * Returns 0, or -1 when out of memory. */
int mc_slabs_init(struct mc_slabs *s, struct mc_arena *a, double factor, mc_reclaim_fn *reclaim,
		  void *ctx);
void mc_slabs_destroy(struct mc_slabs *s);
/* The class for a chunk of n bytes (header included), 0 if none fits. */
int mc_slabs_class(const struct mc_slabs *s, size_t n);
/* A chunk of n bytes with refs 1, flags 0, on its class's LRU head; NULL
 * when the class has nothing free, nothing to evict and no page could be
 * moved to it. */
struct mc_chunk *mc_slabs_alloc(struct mc_slabs *s, size_t n, uint32_t now);
/* Return a chunk whose references are all gone (to the free list, or to
 * limbo when there is a fence). */
void mc_slabs_free(struct mc_slabs *s, struct mc_chunk *ch);

#endif
