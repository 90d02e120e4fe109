/* mem: node memory.  A blobstore keeps each distinct byte string once, named
 * by its BLAKE2b-256 hash; a node's memory is a sorted list of extents that
 * point into blobs, overlaid by private pages made on write. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "memory/mem.h"

struct blob {
	struct blobstore *store;
	struct blob *next; /* hash chain */
	unsigned char hash[MEM_HASHLEN];
	unsigned char *data;
	size_t len;
	size_t refs;
};

struct blobstore {
	pthread_mutex_t lock;
	struct blob **tab;
	size_t cap; /* power of two */
	size_t n;
	size_t bytes;
};

/* [off, off+len) of RAM (offsets from base) reads blob bytes from boff on.
 * dirty: a write overlapped it since it was mapped, so its bytes are no
 * longer the blob's. */
struct extent {
	uint64_t off;
	uint64_t len;
	struct blob *b;
	uint64_t boff;
	int dirty;
};

struct page {
	uint64_t idx;
	unsigned char *data; /* NULL: empty slot */
};

struct mem {
	struct blobstore *store;
	uint64_t base, size;
	struct extent *ext;
	size_t next, extcap;
	struct page *pg; /* open addressing, linear probing */
	size_t pgcap, npg;
};

/* ---- blobs ---- */

static size_t
hash_slot(const unsigned char *h, size_t cap)
{
	uint64_t v;

	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (cap - 1));
}

struct blobstore *
blobstore_new(void)
{
	struct blobstore *s;

	if (sodium_init() < 0) {
		errno = EIO;
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->cap = 64;
	if ((s->tab = calloc(s->cap, sizeof(*s->tab))) == NULL) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void
blobstore_free(struct blobstore *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->cap; i++) {
		struct blob *b = s->tab[i], *nb;
		for (; b != NULL; b = nb) {
			nb = b->next;
			free(b->data);
			free(b);
		}
	}
	pthread_mutex_destroy(&s->lock);
	free(s->tab);
	free(s);
}

/* Called with the lock held.  A failed grow only makes chains longer. */
static void
store_grow(struct blobstore *s)
{
	size_t ncap = s->cap * 2;
	struct blob **nt = calloc(ncap, sizeof(*nt));

	if (nt == NULL)
		return;
	for (size_t i = 0; i < s->cap; i++) {
		struct blob *b = s->tab[i], *nb;
		for (; b != NULL; b = nb) {
			size_t j = hash_slot(b->hash, ncap);
			nb = b->next;
			b->next = nt[j];
			nt[j] = b;
		}
	}
	free(s->tab);
	s->tab = nt;
	s->cap = ncap;
}

/* Store data (owned: taken, or NULL to copy from src) under its hash. */
static struct blob *
store_add(struct blobstore *s, const void *src, void *owned, size_t len)
{
	unsigned char h[MEM_HASHLEN];
	struct blob *b;
	size_t i;

	if (len == 0) {
		free(owned);
		errno = EINVAL;
		return NULL;
	}
	/* Hash outside the lock: 16 MiB takes milliseconds. */
	crypto_generichash(h, sizeof(h), owned ? owned : src, len, NULL, 0);
	pthread_mutex_lock(&s->lock);
	i = hash_slot(h, s->cap);
	for (b = s->tab[i]; b != NULL; b = b->next) {
		if (b->len == len && memcmp(b->hash, h, sizeof(h)) == 0) {
			b->refs++;
			pthread_mutex_unlock(&s->lock);
			free(owned);
			return b;
		}
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		goto fail;
	if (owned == NULL) {
		if ((owned = malloc(len)) == NULL) {
			free(b);
			goto fail;
		}
		memcpy(owned, src, len);
	}
	b->store = s;
	memcpy(b->hash, h, sizeof(h));
	b->data = owned;
	b->len = len;
	b->refs = 1;
	b->next = s->tab[i];
	s->tab[i] = b;
	s->n++;
	s->bytes += len;
	if (s->n > s->cap)
		store_grow(s);
	pthread_mutex_unlock(&s->lock);
	return b;
fail:
	pthread_mutex_unlock(&s->lock);
	free(owned);
	errno = ENOMEM;
	return NULL;
}

struct blob *
blob_put(struct blobstore *s, const void *data, size_t len)
{
	return store_add(s, data, NULL, len);
}

struct blob *
blob_take(struct blobstore *s, void *data, size_t len)
{
	if (data == NULL) {
		errno = EINVAL;
		return NULL;
	}
	return store_add(s, NULL, data, len);
}

void
blob_ref(struct blob *b)
{
	pthread_mutex_lock(&b->store->lock);
	b->refs++;
	pthread_mutex_unlock(&b->store->lock);
}

void
blob_unref(struct blob *b)
{
	struct blobstore *s;
	struct blob **pp;

	if (b == NULL)
		return;
	s = b->store;
	pthread_mutex_lock(&s->lock);
	if (--b->refs > 0) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (pp = &s->tab[hash_slot(b->hash, s->cap)]; *pp != b; pp = &(*pp)->next)
		;
	*pp = b->next;
	s->n--;
	s->bytes -= b->len;
	pthread_mutex_unlock(&s->lock);
	free(b->data);
	free(b);
}

const unsigned char *
blob_hash(const struct blob *b)
{
	return b->hash;
}

const void *
blob_data(const struct blob *b)
{
	return b->data;
}

size_t
blob_len(const struct blob *b)
{
	return b->len;
}

size_t
blobstore_bytes(const struct blobstore *s)
{
	struct blobstore *w = (struct blobstore *)s; /* the lock is not part of the value */
	size_t n;

	pthread_mutex_lock(&w->lock);
	n = s->bytes;
	pthread_mutex_unlock(&w->lock);
	return n;
}

size_t
blobstore_count(const struct blobstore *s)
{
	struct blobstore *w = (struct blobstore *)s;
	size_t n;

	pthread_mutex_lock(&w->lock);
	n = s->n;
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* ---- private pages ---- */

/* Fibonacci hashing: the top bits of the product spread neighbouring pages. */
static size_t
pg_slot(uint64_t idx, size_t cap)
{
	return (size_t)((idx * 0x9e3779b97f4a7c15ull) >> (64 - __builtin_ctzll(cap)));
}

static unsigned char *
pg_get(const struct mem *m, uint64_t idx)
{
	if (m->npg == 0)
		return NULL;
	for (size_t i = pg_slot(idx, m->pgcap);; i = (i + 1) & (m->pgcap - 1)) {
		if (m->pg[i].data == NULL)
			return NULL;
		if (m->pg[i].idx == idx)
			return m->pg[i].data;
	}
}

static void
pg_place(struct page *tab, size_t cap, uint64_t idx, unsigned char *data)
{
	size_t i = pg_slot(idx, cap);

	while (tab[i].data != NULL)
		i = (i + 1) & (cap - 1);
	tab[i].idx = idx;
	tab[i].data = data;
}

/* Add a page not yet present.  Keeps the table at most half full. */
static int
pg_add(struct mem *m, uint64_t idx, unsigned char *data)
{
	if ((m->npg + 1) * 2 > m->pgcap) {
		size_t ncap = m->pgcap ? m->pgcap * 2 : 16;
		struct page *nt = calloc(ncap, sizeof(*nt));

		if (nt == NULL)
			return -1;
		for (size_t i = 0; i < m->pgcap; i++)
			if (m->pg[i].data != NULL)
				pg_place(nt, ncap, m->pg[i].idx, m->pg[i].data);
		free(m->pg);
		m->pg = nt;
		m->pgcap = ncap;
	}
	pg_place(m->pg, m->pgcap, idx, data);
	m->npg++;
	return 0;
}

/* Remove and free a page; backward-shift deletion keeps probe chains whole. */
static void
pg_del(struct mem *m, uint64_t idx)
{
	size_t mask = m->pgcap - 1, i, j;

	if (m->npg == 0)
		return;
	for (i = pg_slot(idx, m->pgcap);; i = (i + 1) & mask) {
		if (m->pg[i].data == NULL)
			return;
		if (m->pg[i].idx == idx)
			break;
	}
	free(m->pg[i].data);
	m->pg[i].data = NULL;
	m->npg--;
	for (j = (i + 1) & mask; m->pg[j].data != NULL; j = (j + 1) & mask) {
		size_t home = pg_slot(m->pg[j].idx, m->pgcap);
		/* Move j back into the hole at i unless its home lies in (i, j]. */
		int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			m->pg[i] = m->pg[j];
			m->pg[j].data = NULL;
			i = j;
		}
	}
}

/* ---- extents ---- */

/* Index of the first extent ending after off. */
static size_t
ext_find(const struct mem *m, uint64_t off)
{
	size_t lo = 0, hi = m->next;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->ext[mid].off + m->ext[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The bytes below the private pages: blob extents, zero elsewhere. */
static void
read_under(const struct mem *m, uint64_t off, unsigned char *dst, size_t n)
{
	size_t i = ext_find(m, off);

	while (n > 0) {
		const struct extent *e = i < m->next ? &m->ext[i] : NULL;
		size_t k;

		if (e != NULL && e->off <= off) {
			uint64_t in = off - e->off;
			k = e->len - in < n ? (size_t)(e->len - in) : n;
			memcpy(dst, e->b->data + e->boff + in, k);
			i++;
		} else {
			uint64_t gap = e != NULL ? e->off - off : UINT64_MAX;
			k = gap < n ? (size_t)gap : n;
			memset(dst, 0, k);
		}
		dst += k;
		off += k;
		n -= k;
	}
}

/* Make room for two more extents (a split plus an insert) before changing
 * anything, so that mapping is all or nothing. */
static int
ext_reserve(struct mem *m)
{
	if (m->next + 2 > m->extcap) {
		size_t ncap = m->extcap ? m->extcap * 2 : 4;
		struct extent *ne = realloc(m->ext, ncap * sizeof(*ne));

		if (ne == NULL)
			return -1;
		m->ext = ne;
		m->extcap = ncap;
	}
	return 0;
}

/* Remove [off, off+len) from the extents; needs ext_reserve first. */
static void
ext_punch(struct mem *m, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	size_t i = ext_find(m, off);

	while (i < m->next && m->ext[i].off < end) {
		struct extent *e = &m->ext[i];
		uint64_t eend = e->off + e->len;

		if (e->off < off && eend > end) {
			/* Split: keep the left part, insert the right part after it. */
			memmove(e + 2, e + 1, (m->next - i - 1) * sizeof(*e));
			e[1] = *e;
			e[1].off = end;
			e[1].len = eend - end;
			e[1].boff = e->boff + (end - e->off);
			e->len = off - e->off;
			blob_ref(e->b);
			m->next++;
			return;
		}
		if (e->off < off) {
			e->len = off - e->off;
			i++;
		} else if (eend > end) {
			e->boff += end - e->off;
			e->len = eend - end;
			e->off = end;
			return;
		} else {
			blob_unref(e->b);
			memmove(e, e + 1, (m->next - i - 1) * sizeof(*e));
			m->next--;
		}
	}
}

/* ---- memory ---- */

struct mem *
mem_new(struct blobstore *s, uint64_t base, uint64_t size)
{
	struct mem *m;

	if (size == 0 || base + size < base) {
		errno = EINVAL;
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->store = s;
	m->base = base;
	m->size = size;
	return m;
}

void
mem_wipe(struct mem *m)
{
	for (size_t i = 0; i < m->next; i++)
		blob_unref(m->ext[i].b);
	for (size_t i = 0; i < m->pgcap; i++)
		free(m->pg[i].data);
	free(m->ext);
	free(m->pg);
	m->ext = NULL;
	m->pg = NULL;
	m->next = m->extcap = m->pgcap = m->npg = 0;
}

void
mem_free(struct mem *m)
{
	if (m == NULL)
		return;
	mem_wipe(m);
	free(m);
}

uint64_t
mem_base(const struct mem *m)
{
	return m->base;
}

uint64_t
mem_size(const struct mem *m)
{
	return m->size;
}

/* Offset of [addr, addr+n) in RAM, or -1 (EFAULT) if it does not fit. */
static int
mem_range(const struct mem *m, uint64_t addr, uint64_t n, uint64_t *off)
{
	if (addr < m->base || addr - m->base > m->size || n > m->size - (addr - m->base)) {
		errno = EFAULT;
		return -1;
	}
	*off = addr - m->base;
	return 0;
}

int
mem_map_blob(struct mem *m, uint64_t addr, struct blob *b)
{
	uint64_t off, end, first, last;

	if (mem_range(m, addr, b->len, &off) == -1)
		return -1;
	if (ext_reserve(m) == -1) {
		errno = ENOMEM;
		return -1;
	}
	end = off + b->len;
	ext_punch(m, off, b->len);
	{
		size_t i = ext_find(m, off);
		memmove(&m->ext[i + 1], &m->ext[i], (m->next - i) * sizeof(m->ext[0]));
		m->ext[i] = (struct extent){.off = off, .len = b->len, .b = b, .boff = 0};
		m->next++;
		blob_ref(b);
	}
	/* Private pages shadow extents: drop the ones the blob covers and give
	 * the partly covered ones the blob's bytes. */
	if (m->npg == 0)
		return 0;
	first = off / MEM_PAGE;
	last = (end - 1) / MEM_PAGE;
	for (uint64_t idx = first; idx <= last; idx++) {
		uint64_t ps = idx * MEM_PAGE, pe = ps + MEM_PAGE;
		unsigned char *pg = pg_get(m, idx);

		if (pg == NULL)
			continue;
		if (ps >= off && pe <= end) {
			pg_del(m, idx);
		} else {
			uint64_t s = ps > off ? ps : off, e = pe < end ? pe : end;
			memcpy(pg + (s - ps), b->data + (s - off), e - s);
		}
	}
	return 0;
}

int
mem_write(struct mem *m, uint64_t addr, const void *p, size_t n)
{
	const unsigned char *src = p;
	uint64_t off, first, last;

	if (mem_range(m, addr, n, &off) == -1)
		return -1;
	if (n == 0)
		return 0;
	first = off / MEM_PAGE;
	last = (off + n - 1) / MEM_PAGE;
	/* Copy every touched page first: if memory runs out half way the new
	 * pages hold what was there, so the contents are unchanged. */
	for (uint64_t idx = first; idx <= last; idx++) {
		uint64_t ps = idx * MEM_PAGE;
		unsigned char *pg;

		if (pg_get(m, idx) != NULL)
			continue;
		if ((pg = malloc(MEM_PAGE)) == NULL)
			goto nomem;
		if (ps + MEM_PAGE <= m->size) {
			read_under(m, ps, pg, MEM_PAGE);
		} else {
			read_under(m, ps, pg, (size_t)(m->size - ps));
			memset(pg + (m->size - ps), 0, (size_t)(ps + MEM_PAGE - m->size));
		}
		if (pg_add(m, idx, pg) == -1) {
			free(pg);
			goto nomem;
		}
	}
	for (uint64_t idx = first; idx <= last; idx++) {
		uint64_t ps = idx * MEM_PAGE, s = ps > off ? ps : off;
		uint64_t e = ps + MEM_PAGE < off + n ? ps + MEM_PAGE : off + n;

		memcpy(pg_get(m, idx) + (s - ps), src + (s - off), e - s);
	}
	for (size_t i = ext_find(m, off); i < m->next && m->ext[i].off < off + n; i++)
		m->ext[i].dirty = 1;
	return 0;
nomem:
	errno = ENOMEM;
	return -1;
}

int
mem_read(const struct mem *m, uint64_t addr, void *p, size_t n)
{
	unsigned char *dst = p;
	uint64_t off;

	if (mem_range(m, addr, n, &off) == -1)
		return -1;
	if (m->npg == 0) {
		read_under(m, off, dst, n);
		return 0;
	}
	while (n > 0) {
		uint64_t idx = off / MEM_PAGE, in = off % MEM_PAGE;
		size_t k = MEM_PAGE - in < n ? (size_t)(MEM_PAGE - in) : n;
		const unsigned char *pg = pg_get(m, idx);

		if (pg != NULL)
			memcpy(dst, pg + in, k);
		else
			read_under(m, off, dst, k);
		dst += k;
		off += k;
		n -= k;
	}
	return 0;
}

struct blob *
mem_blob_at(const struct mem *m, uint64_t addr, size_t *avail)
{
	uint64_t off;
	size_t i;

	if (mem_range(m, addr, 0, &off) == -1)
		return NULL;
	i = ext_find(m, off);
	if (i >= m->next || m->ext[i].off != off || m->ext[i].boff != 0 || m->ext[i].dirty)
		return NULL;
	if (avail != NULL)
		*avail = (size_t)m->ext[i].len;
	return m->ext[i].b;
}

struct blob *
mem_blob_get(struct mem *m, uint64_t addr, size_t len)
{
	struct blob *b;
	unsigned char *p;
	uint64_t off;
	size_t avail;

	if (len == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (mem_range(m, addr, len, &off) == -1)
		return NULL;
	b = mem_blob_at(m, addr, &avail);
	if (b != NULL && avail == len && b->len == len) {
		blob_ref(b);
		return b;
	}
	if ((p = malloc(len)) == NULL)
		return NULL;
	mem_read(m, addr, p, len);
	return blob_take(m->store, p, len);
}

uint64_t
mem_private_bytes(const struct mem *m)
{
	return (uint64_t)m->npg * MEM_PAGE;
}

size_t
mem_extent_count(const struct mem *m)
{
	return m->next;
}
