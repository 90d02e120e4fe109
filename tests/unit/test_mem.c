/* test_mem: node memory (src/memory/mem.c): blob dedup, sparse extents,
 * copy-on-write pages, boundaries, wipe.  A random sequence of operations
 * is checked against a flat byte array, the obvious model of RAM. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "memory/mem.h"

#define MiB (1024u * 1024u)

static unsigned char *
pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n);
	uint32_t x = seed * 2654435761u + 1;

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (unsigned char)(x >> 16);
	}
	return p;
}

static int
is_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* blob-1.1: the same bytes are one blob, counted once; others are new. */
static void
blob_1_1_dedup(void **state)
{
	struct blobstore *s = blobstore_new();
	unsigned char *a = pattern(10000, 1), *b = pattern(10000, 2);
	unsigned char h[32];
	struct blob *x, *y, *z;

	assert_non_null(s);
	x = blob_put(s, a, 10000);
	y = blob_put(s, a, 10000);
	assert_ptr_equal(x, y);
	assert_int_equal(blobstore_bytes(s), 10000);
	assert_int_equal(blobstore_count(s), 1);
	z = blob_put(s, b, 10000);
	assert_ptr_not_equal(x, z);
	assert_int_equal(blobstore_bytes(s), 20000);
	/* The hash is BLAKE2b-256 of the bytes, as the image cache expects. */
	crypto_generichash(h, sizeof(h), a, 10000, NULL, 0);
	assert_memory_equal(blob_hash(x), h, 32);
	assert_memory_equal(blob_data(x), a, 10000);
	assert_int_equal(blob_len(x), 10000);
	/* The store keeps its own copy. */
	memset(a, 0, 10000);
	assert_memory_not_equal(blob_data(x), a, 10000);
	blob_unref(x);
	assert_int_equal(blobstore_bytes(s), 20000);
	blob_unref(y);
	assert_int_equal(blobstore_bytes(s), 10000);
	blob_unref(z);
	assert_int_equal(blobstore_bytes(s), 0);
	assert_int_equal(blobstore_count(s), 0);
	free(a);
	free(b);
	blobstore_free(s);
}

/* blob-1.2: blob_take stores without copying, or frees a duplicate. */
static void
blob_1_2_take(void **state)
{
	struct blobstore *s = blobstore_new();
	unsigned char *a = pattern(5000, 3), *dup = pattern(5000, 3);
	struct blob *x, *y;

	x = blob_take(s, a, 5000);
	assert_non_null(x);
	assert_ptr_equal(blob_data(x), a);
	y = blob_take(s, dup, 5000); /* dup is freed: ASan would see a leak */
	assert_ptr_equal(x, y);
	assert_int_equal(blobstore_bytes(s), 5000);
	/* A zero-length blob is refused. */
	errno = 0;
	assert_null(blob_put(s, a, 0));
	assert_int_equal(errno, EINVAL);
	blob_unref(x);
	blob_unref(y);
	assert_int_equal(blobstore_bytes(s), 0);
	blobstore_free(s);
}

/* blob-1.3: many distinct blobs (the table grows) stay findable. */
static void
blob_1_3_many(void **state)
{
	struct blobstore *s = blobstore_new();
	struct blob *b[500];

	for (unsigned i = 0; i < 500; i++) {
		unsigned v = i;
		b[i] = blob_put(s, &v, sizeof(v));
		assert_non_null(b[i]);
	}
	assert_int_equal(blobstore_count(s), 500);
	for (unsigned i = 0; i < 500; i++) {
		unsigned v = i;
		struct blob *again = blob_put(s, &v, sizeof(v));
		assert_ptr_equal(again, b[i]);
		blob_unref(again);
	}
	for (unsigned i = 0; i < 500; i += 2)
		blob_unref(b[i]);
	assert_int_equal(blobstore_count(s), 250);
	for (unsigned i = 1; i < 500; i += 2) {
		unsigned v = i;
		struct blob *again = blob_put(s, &v, sizeof(v));
		assert_ptr_equal(again, b[i]);
		blob_unref(again);
		blob_unref(b[i]);
	}
	assert_int_equal(blobstore_count(s), 0);
	blobstore_free(s);
}

/* mem-1.1: a broadcast load of 16 MiB into 1000 nodes of 256 MiB stores the
 * bytes once and costs no private page; every node reads them. */
static void
mem_1_1_broadcast(void **state)
{
	struct blobstore *s = blobstore_new();
	unsigned char *img = pattern(16 * MiB, 7), buf[8192];
	struct mem *m[1000];
	struct blob *b;

	b = blob_take(s, img, 16 * MiB);
	assert_non_null(b);
	for (int i = 0; i < 1000; i++) {
		m[i] = mem_new(s, MEM_BASE, 256 * MiB);
		assert_non_null(m[i]);
		assert_int_equal(mem_map_blob(m[i], 0x11000000, b), 0);
	}
	blob_unref(b); /* the nodes hold it now */
	assert_int_equal(blobstore_bytes(s), 16 * MiB);
	assert_int_equal(blobstore_count(s), 1);
	for (int i = 0; i < 1000; i++) {
		size_t off = ((size_t)i * 16411) % (16 * MiB - sizeof(buf));
		assert_int_equal(mem_private_bytes(m[i]), 0);
		assert_int_equal(mem_extent_count(m[i]), 1);
		assert_int_equal(mem_read(m[i], 0x11000000 + off, buf, sizeof(buf)), 0);
		assert_memory_equal(buf, (const unsigned char *)blob_data(b) + off, sizeof(buf));
	}
	/* Loading the same file again (another khdo loadramdisk) adds nothing. */
	{
		unsigned char *again = malloc(16 * MiB);
		memcpy(again, blob_data(b), 16 * MiB);
		struct blob *b2 = blob_take(s, again, 16 * MiB);
		assert_ptr_equal(b2, b);
		assert_int_equal(mem_map_blob(m[0], 0x11000000, b2), 0);
		blob_unref(b2);
		assert_int_equal(blobstore_bytes(s), 16 * MiB);
		assert_int_equal(mem_extent_count(m[0]), 1);
	}
	for (int i = 0; i < 1000; i++)
		mem_free(m[i]);
	assert_int_equal(blobstore_bytes(s), 0);
	blobstore_free(s);
}

/* mem-1.2: a fresh node is all zero and has nothing private. */
static void
mem_1_2_zero(void **state)
{
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, 256 * MiB);
	unsigned char buf[10000];

	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(mem_read(m, MEM_BASE + 256 * MiB - sizeof(buf), buf, sizeof(buf)), 0);
	assert_true(is_zero(buf, sizeof(buf)));
	assert_int_equal(mem_private_bytes(m), 0);
	assert_int_equal(mem_base(m), MEM_BASE);
	assert_int_equal(mem_size(m), 256 * MiB);
	mem_free(m);
	blobstore_free(s);
}

/* mem-2.1: a write into a shared blob copies only the touched page; the
 * blob and the other nodes keep the original bytes. */
static void
mem_2_1_cow(void **state)
{
	struct blobstore *s = blobstore_new();
	unsigned char *img = pattern(64 * 1024, 9), buf[64 * 1024];
	struct mem *a = mem_new(s, MEM_BASE, 1 * MiB), *c = mem_new(s, MEM_BASE, 1 * MiB);
	struct blob *b = blob_put(s, img, sizeof(buf));
	size_t avail;

	assert_int_equal(mem_map_blob(a, MEM_BASE, b), 0);
	assert_int_equal(mem_map_blob(c, MEM_BASE, b), 0);
	assert_ptr_equal(mem_blob_at(a, MEM_BASE, &avail), b);
	assert_int_equal(avail, sizeof(buf));
	assert_int_equal(mem_write(a, MEM_BASE + 5000, "XY", 2), 0);
	assert_int_equal(mem_private_bytes(a), MEM_PAGE);
	assert_memory_equal(blob_data(b), img, sizeof(buf));
	assert_int_equal(mem_read(a, MEM_BASE, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, img, 5000);
	assert_memory_equal(buf + 5000, "XY", 2);
	assert_memory_equal(buf + 5002, img + 5002, sizeof(buf) - 5002);
	assert_int_equal(mem_read(c, MEM_BASE, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, img, sizeof(buf));
	/* The written extent is no longer the blob: boot must not use it. */
	assert_null(mem_blob_at(a, MEM_BASE, &avail));
	assert_ptr_equal(mem_blob_at(c, MEM_BASE, &avail), b);
	assert_int_equal(blobstore_bytes(s), sizeof(buf));
	blob_unref(b);
	mem_free(a);
	mem_free(c);
	assert_int_equal(blobstore_bytes(s), 0);
	free(img);
	blobstore_free(s);
}

/* mem-2.2: a write across a page boundary and past the end of an extent
 * into never-written memory. */
static void
mem_2_2_span(void **state)
{
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, 1 * MiB);
	unsigned char *img = pattern(6000, 11), w[3000], buf[16384], want[16384];
	struct blob *b = blob_put(s, img, 6000);
	uint64_t at = MEM_BASE + 100; /* unaligned extent: [100, 6100) */

	memset(w, 0x5a, sizeof(w));
	assert_int_equal(mem_map_blob(m, at, b), 0);
	/* [5000, 8000) in RAM: pages 1 (4096..8191) only, crossing the extent end. */
	assert_int_equal(mem_write(m, MEM_BASE + 5000, w, sizeof(w)), 0);
	assert_int_equal(mem_private_bytes(m), MEM_PAGE);
	/* [8000, 11000): pages 1 and 2. */
	assert_int_equal(mem_write(m, MEM_BASE + 8000, w, sizeof(w)), 0);
	assert_int_equal(mem_private_bytes(m), 2 * MEM_PAGE);
	memset(want, 0, sizeof(want));
	memcpy(want + 100, img, 6000);
	memcpy(want + 5000, w, 3000);
	memcpy(want + 8000, w, 3000);
	assert_int_equal(mem_read(m, MEM_BASE, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, want, sizeof(buf));
	/* A read that starts inside one page and ends in an untouched one. */
	assert_int_equal(mem_read(m, MEM_BASE + 4000, buf, 9000), 0);
	assert_memory_equal(buf, want + 4000, 9000);
	blob_unref(b);
	mem_free(m);
	free(img);
	blobstore_free(s);
}

/* mem-2.3: mapping over private pages: covered pages are dropped, partly
 * covered ones take the blob's bytes and keep the rest. */
static void
mem_2_3_map_over_pages(void **state)
{
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, 64 * 1024);
	unsigned char w[5 * 4096], buf[64 * 1024], want[64 * 1024];
	unsigned char *img = pattern(3 * 4096, 12);
	struct blob *b = blob_put(s, img, 3 * 4096);

	memset(w, 0x77, sizeof(w));
	assert_int_equal(mem_write(m, MEM_BASE + 4096, w, sizeof(w)), 0); /* pages 1..5 */
	assert_int_equal(mem_private_bytes(m), 5 * MEM_PAGE);
	/* [6000, 18288): page 1 partly, 2..3 wholly, 4 partly. */
	assert_int_equal(mem_map_blob(m, MEM_BASE + 6000, b), 0);
	assert_int_equal(mem_private_bytes(m), 3 * MEM_PAGE);
	memset(want, 0, sizeof(want));
	memcpy(want + 4096, w, sizeof(w));
	memcpy(want + 6000, img, 3 * 4096);
	assert_int_equal(mem_read(m, MEM_BASE, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, want, sizeof(buf));
	/* The copy into the partly covered pages is not a modification. */
	size_t avail;
	assert_ptr_equal(mem_blob_at(m, MEM_BASE + 6000, &avail), b);
	assert_int_equal(avail, 3 * 4096);
	blob_unref(b);
	mem_free(m);
	free(img);
	blobstore_free(s);
}

/* mem-3.1: overlapping maps split and trim extents; mem_blob_at follows. */
static void
mem_3_1_overlap(void **state)
{
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, 1 * MiB);
	unsigned char *A = pattern(10000, 21), *B = pattern(1000, 22), *C = pattern(3000, 23);
	unsigned char buf[20000], want[20000];
	struct blob *a = blob_put(s, A, 10000), *bb = blob_put(s, B, 1000),
		    *c = blob_put(s, C, 3000);
	size_t avail;

	assert_int_equal(mem_map_blob(m, MEM_BASE, a), 0);
	assert_int_equal(mem_map_blob(m, MEM_BASE + 4000, bb), 0); /* splits a */
	assert_int_equal(mem_extent_count(m), 3);
	assert_int_equal(mem_map_blob(m, MEM_BASE + 8500, c), 0); /* trims a's tail */
	assert_int_equal(mem_extent_count(m), 4);
	memset(want, 0, sizeof(want));
	memcpy(want, A, 10000);
	memcpy(want + 4000, B, 1000);
	memcpy(want + 8500, C, 3000);
	assert_int_equal(mem_read(m, MEM_BASE, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, want, sizeof(buf));
	assert_ptr_equal(mem_blob_at(m, MEM_BASE, &avail), a);
	assert_int_equal(avail, 4000);
	assert_null(mem_blob_at(m, MEM_BASE + 5000, &avail)); /* middle of a */
	assert_ptr_equal(mem_blob_at(m, MEM_BASE + 4000, &avail), bb);
	assert_int_equal(avail, 1000);
	/* A map over everything leaves one extent and frees the rest. */
	blob_unref(bb);
	blob_unref(c);
	assert_int_equal(blobstore_count(s), 3); /* still mapped */
	struct blob *big = blob_put(s, buf, sizeof(buf));
	assert_int_equal(mem_map_blob(m, MEM_BASE, big), 0);
	assert_int_equal(mem_extent_count(m), 1);
	blob_unref(big);
	blob_unref(a);
	assert_int_equal(blobstore_count(s), 1);
	assert_int_equal(blobstore_bytes(s), sizeof(buf));
	mem_free(m);
	assert_int_equal(blobstore_count(s), 0);
	free(A);
	free(B);
	free(C);
	blobstore_free(s);
}

/* mem-3.2: mem_blob_get hands out the mapped blob when it can, else a
 * copy that still deduplicates with equal bytes. */
static void
mem_3_2_blob_get(void **state)
{
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, 1 * MiB), *n = mem_new(s, MEM_BASE, 1 * MiB);
	unsigned char *img = pattern(20000, 51);
	struct blob *b = blob_put(s, img, 20000), *g, *g2;

	assert_int_equal(mem_map_blob(m, MEM_BASE + 100, b), 0);
	g = mem_blob_get(m, MEM_BASE + 100, 20000);
	assert_ptr_equal(g, b);
	blob_unref(g);
	/* A prefix is other bytes: a new blob. */
	g = mem_blob_get(m, MEM_BASE + 100, 1000);
	assert_ptr_not_equal(g, b);
	assert_int_equal(blob_len(g), 1000);
	assert_memory_equal(blob_data(g), img, 1000);
	/* The same bytes written privately into another node are one blob. */
	assert_int_equal(mem_write(n, MEM_BASE + 5, img, 1000), 0);
	g2 = mem_blob_get(n, MEM_BASE + 5, 1000);
	assert_ptr_equal(g2, g);
	assert_int_equal(blobstore_count(s), 2);
	blob_unref(g);
	blob_unref(g2);
	/* After a write the extent is not the blob any more. */
	assert_int_equal(mem_write(m, MEM_BASE + 150, "x", 1), 0);
	g = mem_blob_get(m, MEM_BASE + 100, 20000);
	assert_ptr_not_equal(g, b);
	assert_int_equal(((const unsigned char *)blob_data(g))[50], 'x');
	blob_unref(g);
	errno = 0;
	assert_null(mem_blob_get(m, MEM_BASE + 1 * MiB - 10, 11));
	assert_int_equal(errno, EFAULT);
	assert_null(mem_blob_get(m, MEM_BASE, 0));
	blob_unref(b);
	mem_free(m);
	mem_free(n);
	assert_int_equal(blobstore_bytes(s), 0);
	free(img);
	blobstore_free(s);
}

/* mem-4.1: everything outside [base, base+size) is refused and changes
 * nothing; the last byte and zero-length accesses at the end are fine. */
static void
mem_4_1_range(void **state)
{
	struct blobstore *s = blobstore_new();
	uint64_t size = 256 * MiB, end = MEM_BASE + size;
	struct mem *m = mem_new(s, MEM_BASE, size);
	unsigned char buf[16] = {0}, *img = pattern(100, 31);
	struct blob *b = blob_put(s, img, 100);

	errno = 0;
	assert_int_equal(mem_read(m, MEM_BASE - 1, buf, 1), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(mem_read(m, end, buf, 1), -1);
	assert_int_equal(mem_read(m, end - 15, buf, 16), -1);
	assert_int_equal(mem_read(m, end - 16, buf, 16), 0);
	assert_int_equal(mem_read(m, end, buf, 0), 0);
	assert_int_equal(mem_read(m, 0, buf, 1), -1);
	assert_int_equal(mem_read(m, UINT64_MAX - 4, buf, 16), -1); /* wraps */
	assert_int_equal(mem_write(m, end - 1, "ab", 2), -1);
	assert_int_equal(mem_write(m, MEM_BASE - 1, "ab", 2), -1);
	assert_int_equal(mem_private_bytes(m), 0);
	assert_int_equal(mem_write(m, end - 1, "a", 1), 0);
	assert_int_equal(mem_read(m, end - 1, buf, 1), 0);
	assert_int_equal(buf[0], 'a');
	assert_int_equal(mem_map_blob(m, end - 99, b), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(mem_map_blob(m, MEM_BASE - 1, b), -1);
	assert_int_equal(mem_extent_count(m), 0);
	assert_int_equal(mem_map_blob(m, end - 100, b), 0);
	assert_int_equal(mem_read(m, end - 100, buf, 16), 0);
	assert_memory_equal(buf, img, 16);
	assert_null(mem_blob_at(m, end, NULL));
	assert_null(mem_blob_at(m, MEM_BASE - 100, NULL));
	/* U-Boot's loadaddr and ramfsaddr are inside a 256 MiB node. */
	assert_int_equal(mem_write(m, 0x10000000, "k", 1), 0);
	assert_int_equal(mem_write(m, 0x11000000, "r", 1), 0);
	blob_unref(b);
	mem_free(m);
	free(img);
	blobstore_free(s);
}

/* mem-4.2: RAM whose size is not a page multiple: the last page is partial. */
static void
mem_4_2_odd_size(void **state)
{
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, 5000);
	unsigned char buf[5000], w[1000];

	memset(w, 0x42, sizeof(w));
	assert_int_equal(mem_write(m, MEM_BASE + 4000, w, 1000), 0);
	assert_int_equal(mem_write(m, MEM_BASE + 4001, w, 1000), -1);
	assert_int_equal(mem_read(m, MEM_BASE, buf, 5000), 0);
	assert_true(is_zero(buf, 4000));
	assert_memory_equal(buf + 4000, w, 1000);
	mem_free(m);
	blobstore_free(s);
}

/* mem-5.1: wipe returns to all zero and drops the node's blob references. */
static void
mem_5_1_wipe(void **state)
{
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, 1 * MiB);
	unsigned char *img = pattern(50000, 41), buf[60000];
	struct blob *b = blob_put(s, img, 50000);

	assert_int_equal(mem_map_blob(m, MEM_BASE + 10, b), 0);
	blob_unref(b);
	assert_int_equal(mem_write(m, MEM_BASE + 20000, "hello", 5), 0);
	assert_int_equal(mem_write(m, MEM_BASE + 900000, "world", 5), 0);
	mem_wipe(m);
	assert_int_equal(blobstore_bytes(s), 0);
	assert_int_equal(mem_private_bytes(m), 0);
	assert_int_equal(mem_extent_count(m), 0);
	assert_int_equal(mem_read(m, MEM_BASE, buf, sizeof(buf)), 0);
	assert_true(is_zero(buf, sizeof(buf)));
	assert_int_equal(mem_read(m, MEM_BASE + 900000, buf, 5), 0);
	assert_true(is_zero(buf, 5));
	/* Usable again after a wipe (reset, then a new load). */
	b = blob_put(s, img, 50000);
	assert_int_equal(mem_map_blob(m, MEM_BASE, b), 0);
	assert_int_equal(mem_read(m, MEM_BASE, buf, 50000), 0);
	assert_memory_equal(buf, img, 50000);
	blob_unref(b);
	mem_free(m);
	assert_int_equal(blobstore_bytes(s), 0);
	free(img);
	blobstore_free(s);
}

/* mem-6.1: random maps, writes, reads and wipes agree with a flat array. */
static void
mem_6_1_model(void **state)
{
	enum { SIZE = 12 * 4096 + 123 };
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, SIZE);
	unsigned char *model = calloc(1, SIZE), *buf = malloc(SIZE);
	uint32_t x = 12345;

#define RND() (x = x * 1103515245u + 12345u, (x >> 8))
	for (int step = 0; step < 20000; step++) {
		unsigned op = RND() % 100;
		size_t off = RND() % SIZE;
		size_t n = 1 + RND() % (op < 40 ? 9000 : 300);

		if (off + n > SIZE)
			n = SIZE - off;
		if (op < 30) {
			/* Few distinct contents so that blobs get shared too. */
			unsigned char *p = pattern(n, RND() % 4);
			struct blob *b = blob_put(s, p, n);
			assert_int_equal(mem_map_blob(m, MEM_BASE + off, b), 0);
			blob_unref(b);
			memcpy(model + off, p, n);
			free(p);
		} else if (op < 60) {
			unsigned char *p = pattern(n, RND());
			assert_int_equal(mem_write(m, MEM_BASE + off, p, n), 0);
			memcpy(model + off, p, n);
			free(p);
		} else if (op < 99) {
			assert_int_equal(mem_read(m, MEM_BASE + off, buf, n), 0);
			assert_memory_equal(buf, model + off, n);
		} else {
			mem_wipe(m);
			memset(model, 0, SIZE);
		}
		if (step % 1000 == 0) {
			assert_int_equal(mem_read(m, MEM_BASE, buf, SIZE), 0);
			assert_memory_equal(buf, model, SIZE);
			assert_true(mem_private_bytes(m) <= (SIZE / MEM_PAGE + 1) * MEM_PAGE);
		}
	}
#undef RND
	assert_int_equal(mem_read(m, MEM_BASE, buf, SIZE), 0);
	assert_memory_equal(buf, model, SIZE);
	mem_free(m);
	assert_int_equal(blobstore_bytes(s), 0);
	free(model);
	free(buf);
	blobstore_free(s);
}

/* mem-6.2: thousands of private pages scattered over a large RAM (so the
 * page table sees collisions), some dropped by later maps, others written
 * again: every page stays findable. */
static void
mem_6_2_many_pages(void **state)
{
	enum { SIZE = 64 * 1024 * 1024, TOUCH = 6000 };
	struct blobstore *s = blobstore_new();
	struct mem *m = mem_new(s, MEM_BASE, SIZE);
	unsigned char *model = calloc(1, SIZE), buf[4 * MEM_PAGE];
	size_t *at = calloc(TOUCH, sizeof(*at));
	uint32_t x = 777;

#define RND() (x = x * 1103515245u + 12345u, (x >> 4))
	for (int step = 0; step < TOUCH; step++) {
		size_t off = RND() % (SIZE - 4 * MEM_PAGE), n = 1 + RND() % (3 * MEM_PAGE);

		at[step] = off;
		if (step % 4 == 3) {
			/* Maps over earlier writes drop whole pages from the table. */
			size_t prev = at[RND() % step] & ~(size_t)(MEM_PAGE - 1);
			unsigned char *p = pattern(n, RND() % 8);
			struct blob *b = blob_put(s, p, n);
			assert_int_equal(mem_map_blob(m, MEM_BASE + prev, b), 0);
			blob_unref(b);
			memcpy(model + prev, p, n);
			free(p);
		} else {
			unsigned char w[100];
			memset(w, (int)(step % 251) + 1, sizeof(w));
			n = n < sizeof(w) ? n : sizeof(w);
			assert_int_equal(mem_write(m, MEM_BASE + off, w, n), 0);
			memcpy(model + off, w, n);
		}
	}
#undef RND
	for (int i = 0; i < TOUCH; i++) {
		size_t p = at[i] & ~(size_t)(MEM_PAGE - 1);
		assert_int_equal(mem_read(m, MEM_BASE + p, buf, sizeof(buf)), 0);
		assert_memory_equal(buf, model + p, sizeof(buf));
	}
	mem_free(m);
	free(model);
	free(at);
	blobstore_free(s);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(blob_1_1_dedup),
		cmocka_unit_test(blob_1_2_take),
		cmocka_unit_test(blob_1_3_many),
		cmocka_unit_test(mem_1_1_broadcast),
		cmocka_unit_test(mem_1_2_zero),
		cmocka_unit_test(mem_2_1_cow),
		cmocka_unit_test(mem_2_2_span),
		cmocka_unit_test(mem_2_3_map_over_pages),
		cmocka_unit_test(mem_3_1_overlap),
		cmocka_unit_test(mem_3_2_blob_get),
		cmocka_unit_test(mem_4_1_range),
		cmocka_unit_test(mem_4_2_odd_size),
		cmocka_unit_test(mem_5_1_wipe),
		cmocka_unit_test(mem_6_1_model),
		cmocka_unit_test(mem_6_2_many_pages),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
