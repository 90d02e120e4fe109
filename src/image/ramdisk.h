/* ramdisk: recognise what a principal loaded into a node (kernel, ramdisk,
 * nothing) and unpack a newc cpio ramdisk, plain or gzip'd, bare or wrapped
 * in a legacy uImage header, safely into a directory. */
#ifndef KH_RAMDISK_H
#define KH_RAMDISK_H

#include <stddef.h>
#include <stdint.h>

enum img_kind { IMG_EMPTY, IMG_KERNEL, IMG_RAMDISK, IMG_OTHER };

/* Default cap on the bytes a ramdisk may unpack to, data and names (a gzip
 * bomb stops here).  Names may have at most 256 components. */
#define RAMDISK_MAX_BYTES (1ULL << 30)
/* Longest entry name and symlink target accepted, terminator included. */
#define RAMDISK_MAX_NAME 4096

/* Say what the len bytes at p are.  IMG_EMPTY: nothing loaded (no bytes, or
 * all zero).  IMG_KERNEL: a uImage of type kernel (or multi), an ELF, x86
 * bzImage or arm64 Image.  IMG_RAMDISK: newc cpio, gzip'd cpio, or either
 * inside a uImage of type ramdisk; payload_off/payload_len then say where the
 * cpio or gzip bytes are.  IMG_OTHER: anything else.  For all but
 * IMG_RAMDISK err gets a one-line description.  Returns 0, or -1 with a reason
 * in err when the bytes claim a known format but are broken (bad CRC,
 * truncated uImage, corrupt gzip, unsupported uImage compression). */
int image_classify(const void *p, size_t len, enum img_kind *kind, size_t *payload_off,
		   size_t *payload_len, char *err, size_t errlen);

/* Unpack the ramdisk at p (anything image_classify calls IMG_RAMDISK) into
 * the directory dir, which must not exist yet.  Entries are created relative
 * to the new root without following symlinks; names with ".." are refused,
 * leading '/' are dropped.  Owners and device nodes are restored only when
 * running as root.  All or nothing: on error nothing is left at dir and err
 * holds one line ("ramdisk: truncated cpio at offset N").  Returns 0 or -1. */
int ramdisk_unpack(const void *p, size_t len, const char *dir, char *err, size_t errlen);
/* Same, with a cap on the unpacked data bytes instead of RAMDISK_MAX_BYTES. */
int ramdisk_unpack_limit(const void *p, size_t len, const char *dir, uint64_t max_bytes, char *err,
			 size_t errlen);

/* Remove the tree at path (relative to dirfd, AT_FDCWD for the cwd) without
 * following symlinks, even where directory modes forbid writing.  A missing
 * path is not an error.  Returns 0 or -1 with errno set. */
int ramdisk_remove(int dirfd, const char *path);

#endif
