/* cpio: write a newc ("070701") archive, the format the kernel's initramfs
 * and the node's monitor unpack, through a byte sink. */
#ifndef KH_CPIO_H
#define KH_CPIO_H

#include <stddef.h>
#include <stdint.h>

/* The sink: returns 0, or -1 having said why (the sink keeps its reason). */
typedef int (*cpio_sink)(void *ctx, const void *p, size_t n);

struct cpio_out {
	cpio_sink sink;
	void *ctx;
	uint64_t off;	   /* bytes written so far */
	uint32_t ino;	   /* the last inode number given */
	uint32_t mtime;	   /* every entry's mtime */
	uint32_t left;	   /* data bytes the current entry still owes */
	uint64_t nentries; /* entries written, the trailer not counted */
};

/* Start an archive.  Every entry gets uid and gid 0, the mtime given and the
 * next inode number (1, 2, ...), so equal inputs give equal bytes. */
void cpio_init(struct cpio_out *c, cpio_sink sink, void *ctx, uint32_t mtime);
/* One entry's header and name (no leading '/').  mode holds the type bits
 * (S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, ...) and the permissions; size is the
 * number of data bytes cpio_data must then supply (a symlink's data is its
 * target).  Returns 0 or -1. */
int cpio_entry(struct cpio_out *c, const char *name, uint32_t mode, uint32_t size,
	       uint32_t rdevmajor, uint32_t rdevminor);
/* Data of the current entry; the padding is written after its last byte. */
int cpio_data(struct cpio_out *c, const void *p, size_t n);
/* The TRAILER!!! entry.  Returns 0 or -1 (also when an entry is unfinished). */
int cpio_finish(struct cpio_out *c);

#endif
