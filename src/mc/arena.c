/* arena: the memfd behind khmcd's items and table (arena.h).  Sized once,
 * sealed against shrinking and growing, mapped shared once. */
#include "mc/arena.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static uint64_t
round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

int
mc_arena_open(struct mc_arena *a, uint64_t item_bytes, uint64_t max_buckets, char *err,
	      size_t errlen)
{
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	if (max_buckets == 0 || (max_buckets & (max_buckets - 1)) != 0)
		return seterr(err, errlen, "arena: table size %llu is not a power of two",
			      (unsigned long long)max_buckets);
	a->max_buckets = max_buckets;
	a->table_area_off = MC_HDR_SIZE;
	a->table_half = round_up(max_buckets * MC_BUCKET_BYTES, PAGE);
	a->item_off = a->table_area_off + 2 * a->table_half;
	a->item_size = item_bytes;
	a->size = round_up(a->item_off + item_bytes, PAGE);
	if (a->size > MC_OFF_MASK)
		return seterr(err, errlen, "arena: %llu bytes is more than offsets can reach",
			      (unsigned long long)a->size);

	a->fd = memfd_create("khmcd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (a->fd < 0)
		return seterr(err, errlen, "arena: memfd_create: %s", strerror(errno));
	if (ftruncate(a->fd, (off_t)a->size) < 0) {
		seterr(err, errlen, "arena: ftruncate to %zu bytes: %s", a->size, strerror(errno));
		goto fail;
	}
	if (fcntl(a->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		seterr(err, errlen, "arena: sealing: %s", strerror(errno));
		goto fail;
	}
	void *p = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	if (p == MAP_FAILED) {
		seterr(err, errlen, "arena: mmap of %zu bytes: %s", a->size, strerror(errno));
		goto fail;
	}
	a->base = p;
	a->hdr = p;

	struct mc_arena_hdr *h = a->hdr;
	memcpy(h->magic, MC_ARENA_MAGIC, 4);
	h->layout = MC_LAYOUT_VERSION;
	h->arena_size = a->size;
	h->table_area_off = a->table_area_off;
	h->table_area_size = 2 * a->table_half;
	h->item_off = a->item_off;
	h->item_size = a->item_size;
	h->start_time = (uint64_t)time(NULL);
	h->probe = MC_PROBE;
	h->bucket_bytes = MC_BUCKET_BYTES;
	h->hdr_sum = mc_hdr_sum(h);
	pthread_mutex_init(&a->hdr_lock, NULL);
	return 0;
fail:
	close(a->fd);
	a->fd = -1;
	return -1;
}

void
mc_arena_hdr_lock(struct mc_arena *a)
{
	pthread_mutex_lock(&a->hdr_lock);
}

void
mc_arena_hdr_unlock(struct mc_arena *a)
{
	__atomic_store_n(&a->hdr->hdr_sum, mc_hdr_sum(a->hdr), __ATOMIC_RELEASE);
	pthread_mutex_unlock(&a->hdr_lock);
}

void
mc_arena_close(struct mc_arena *a)
{
	if (a->base != NULL) {
		munmap(a->base, a->size);
		pthread_mutex_destroy(&a->hdr_lock);
	}
	if (a->fd >= 0)
		close(a->fd);
	a->base = NULL;
	a->hdr = NULL;
	a->fd = -1;
}

int
mc_arena_punch(struct mc_arena *a, uint64_t off, uint64_t len)
{
	uint64_t start = round_up(off, PAGE), end = (off + len) / PAGE * PAGE;

	if (end <= start)
		return 0;
	return fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)start,
			 (off_t)(end - start));
}
