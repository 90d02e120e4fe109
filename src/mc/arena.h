/* arena: khmcd's one shared memory file.  A sealed memfd, mapped once,
 * holding the header page, the table area (two halves, each room for the
 * largest table) and the item area (exactly the -m limit).  Pages are
 * allocated by the kernel when first touched; mc_arena_punch gives them back.
 * The later RDMA path registers this one region (mc.h: mc_arena_fd). */
#ifndef KH_MC_ARENA_H
#define KH_MC_ARENA_H

#include "mc/item.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct mc_arena {
	pthread_mutex_t hdr_lock; /* writers of the header's changing fields */
	int fd;
	unsigned char *base;
	size_t size;
	struct mc_arena_hdr *hdr;
	uint64_t table_area_off;
	uint64_t table_half;  /* bytes in one half of the table area */
	uint64_t max_buckets; /* the largest table */
	uint64_t item_off;
	uint64_t item_size;
};

/* Create the arena: item_bytes of items, tables of up to max_buckets (a
 * power of two).  Fills the header (table fields are the table's to set).
 * Returns 0, or -1 with a reason in err. */
int mc_arena_open(struct mc_arena *a, uint64_t item_bytes, uint64_t max_buckets, char *err,
		  size_t errlen);
void mc_arena_close(struct mc_arena *a);
/* Change the header: with its lock held, then its sum written. */
void mc_arena_hdr_lock(struct mc_arena *a);
void mc_arena_hdr_unlock(struct mc_arena *a);
/* Give the pages of [off, off + len) back; they read as zeros afterwards. */
int mc_arena_punch(struct mc_arena *a, uint64_t off, uint64_t len);

static inline void *
mc_arena_at(const struct mc_arena *a, uint64_t off)
{
	return a->base + off;
}

static inline uint64_t
mc_arena_off(const struct mc_arena *a, const void *p)
{
	return (uint64_t)((const unsigned char *)p - a->base);
}

#endif
