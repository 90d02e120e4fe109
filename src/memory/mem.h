/* mem: node memory as a sparse map of extents over immutable, content-
 * addressed blobs plus private copy-on-write pages, so that loading one
 * appliance into many nodes stores its bytes once (DESIGN.md "Node memory"). */
#ifndef KH_MEM_H
#define KH_MEM_H

#include <stddef.h>
#include <stdint.h>

#define MEM_PAGE    4096u
#define MEM_HASHLEN 32		  /* BLAKE2b-256, libsodium crypto_generichash */
#define MEM_BASE    0x10000000ull /* where node RAM starts (U-Boot's loadaddr) */

struct blobstore;
struct blob;
struct mem;

/* The store of blobs, shared by every node of a facility.  Thread-safe. */
struct blobstore *blobstore_new(void);
/* Free the store and any blob still in it; free every mem using it first. */
void blobstore_free(struct blobstore *);
/* The blob holding these bytes: an existing one with the same hash gets one
 * more reference, else a copy is stored with one reference.  len must be > 0.
 * NULL (errno set) when out of memory or len is 0. */
struct blob *blob_put(struct blobstore *, const void *data, size_t len);
/* Same, but takes ownership of malloced data (freed at once if the bytes
 * are already stored, and on failure too): no copy of a large load. */
struct blob *blob_take(struct blobstore *, void *data, size_t len);
void blob_ref(struct blob *);
/* Drop one reference; the last one frees the bytes. */
void blob_unref(struct blob *);
const unsigned char *blob_hash(const struct blob *);
const void *blob_data(const struct blob *);
size_t blob_len(const struct blob *);
/* Bytes held by all blobs of the store, each counted once. */
size_t blobstore_bytes(const struct blobstore *);
/* How many distinct blobs the store holds. */
size_t blobstore_count(const struct blobstore *);

/* A node's RAM at [base, base+size), all zero.  Costs O(1) until written.
 * Not thread-safe: one owner at a time. */
struct mem *mem_new(struct blobstore *, uint64_t base, uint64_t size);
void mem_free(struct mem *);
uint64_t mem_base(const struct mem *);
uint64_t mem_size(const struct mem *);
/* Make [addr, addr+blob_len) read as the blob, replacing what was there.
 * The mem takes its own reference; the caller keeps its one.  Returns 0, or
 * -1 with errno EFAULT if the range is not inside RAM (nothing changed) or
 * ENOMEM. */
int mem_map_blob(struct mem *, uint64_t addr, struct blob *);
/* Write n bytes; pages of blob extents touched are copied to private pages
 * first (the blob stays shared).  -1 with errno EFAULT outside RAM, ENOMEM;
 * on failure memory reads as before. */
int mem_write(struct mem *, uint64_t addr, const void *p, size_t n);
/* Read n bytes; never written memory reads as zero.  -1 (EFAULT) when
 * [addr, addr+n) is not inside RAM. */
int mem_read(const struct mem *, uint64_t addr, void *p, size_t n);
/* Back to all zero; drops every blob reference and private page. */
void mem_wipe(struct mem *);
/* The blob whose first byte is at addr, if an extent of it starts there and
 * no write has touched that extent since it was mapped; *avail gets how many
 * of its bytes are still mapped (less than blob_len if a later map covered
 * its tail).  No reference is added.  Lets the boot path find a loaded
 * ramdisk and its hash without copying. */
struct blob *mem_blob_at(const struct mem *, uint64_t addr, size_t *avail);
/* The bytes at [addr, addr+len) as a blob, with a reference for the caller:
 * the mapped blob itself when an unmodified extent holds exactly those bytes
 * (no copy), else a copy put into the store (so equal bytes still share one
 * blob).  NULL with errno EFAULT outside RAM, EINVAL for len 0, ENOMEM. */
struct blob *mem_blob_get(struct mem *, uint64_t addr, size_t len);
/* Bytes of private pages (the per-node cost of the memory). */
uint64_t mem_private_bytes(const struct mem *);
/* Number of blob extents currently mapped. */
size_t mem_extent_count(const struct mem *);

#endif
