/* imgcache: unpacked ramdisks, one directory per content hash, so that
 * booting many nodes from one appliance unpacks it once.  Each tree becomes
 * the read-only lower layer of the nodes' overlay mounts. */
#ifndef KH_IMGCACHE_H
#define KH_IMGCACHE_H

#include <stddef.h>
#include <stdint.h>

#define IMGCACHE_HASHLEN 32 /* BLAKE2b-256 (crypto_generichash), as blob_hash */

struct imgcache;

/* Open (creating it, mode 0700) the cache directory dir.  Trees left by an
 * earlier run are kept for reuse; half-made ones ("*.tmp-*") are removed.
 * The directory stays 0700: unpacked trees hold the principals' set-id
 * files and device nodes, which no host user may reach. */
struct imgcache *imgcache_new(const char *dir, char *err, size_t errlen);
/* Forget the cache (references too); the trees stay on disk. */
void imgcache_free(struct imgcache *);
/* Cap on the bytes one ramdisk may unpack to (default RAMDISK_MAX_BYTES). */
void imgcache_set_limit(struct imgcache *, uint64_t max_bytes);

/* The unpacked tree of the ramdisk data[0..len), whose crypto_generichash
 * is hash: unpacked on first use (the hash is checked then), taken as is
 * afterwards without reading data.  Adds a reference, dropped with
 * imgcache_put.  Writes the tree's path ("DIR/<64 hex>") to path_out.
 * Returns 0, or -1 with a one-line reason in err. */
int imgcache_rootfs(struct imgcache *, const unsigned char hash[IMGCACHE_HASHLEN], const void *data,
		    size_t len, char *path_out, size_t pathlen, char *err, size_t errlen);
/* Take a reference on a tree already on disk (khd restarting with nodes
 * still running on it).  Returns 0, or -1 with errno ENOENT if it is not. */
int imgcache_hold(struct imgcache *, const unsigned char hash[IMGCACHE_HASHLEN], char *path_out,
		  size_t pathlen);
/* Drop a reference from imgcache_rootfs or imgcache_hold. */
void imgcache_put(struct imgcache *, const unsigned char hash[IMGCACHE_HASHLEN]);
/* References currently held on hash. */
unsigned imgcache_refs(struct imgcache *, const unsigned char hash[IMGCACHE_HASHLEN]);
/* Remove every tree nobody holds, including those of earlier runs (so take
 * the references of running nodes first).  Returns how many were removed,
 * or -1 with a reason in err. */
int imgcache_gc(struct imgcache *, char *err, size_t errlen);

/* Make directory path (0700) a tmpfs named name, unless it is one already:
 * trees of many small files (unpacked images, nodes' directories and
 * sockets) cost far less there than on ext4.  Without the right to mount,
 * it is logged and the directory used as it is.  -1 with err only when
 * the directory cannot be made. */
int dir_tmpfs(const char *path, const char *name, char *err, size_t errlen);

#endif
