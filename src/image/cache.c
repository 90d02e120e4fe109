/* imgcache: a content-addressed cache of unpacked ramdisks.  A tree appears
 * under its hash only once complete (ramdisk_unpack renames it into place),
 * so a name on disk always means a whole tree, even after a crash. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <sodium.h>

#include "common/log.h"
#include "common/util.h"
#include "image/cache.h"
#include "image/ramdisk.h"

struct imgent {
	unsigned char hash[IMGCACHE_HASHLEN];
	unsigned refs;
};

struct imgcache {
	pthread_mutex_t lock;
	char *dir;
	uint64_t max_bytes;
	struct imgent *ent;
	size_t n, cap;
};

static void
hexname(const unsigned char *h, char out[2 * IMGCACHE_HASHLEN + 1])
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 0; i < IMGCACHE_HASHLEN; i++) {
		out[2 * i] = hx[h[i] >> 4];
		out[2 * i + 1] = hx[h[i] & 15];
	}
	out[2 * IMGCACHE_HASHLEN] = '\0';
}

static int
is_hexname(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == 2 * IMGCACHE_HASHLEN;
}

struct imgcache *
imgcache_new(const char *dir, char *err, size_t errlen)
{
	struct imgcache *c;
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "imgcache: libsodium did not initialise");
		return NULL;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "imgcache: mkdir %s: %s", dir, strerror(errno));
		return NULL;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		snprintf(err, errlen, "imgcache: %s: %s", dir, strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	if ((st.st_mode & 077) != 0 && fchmod(fd, 0700) == -1) {
		snprintf(err, errlen, "imgcache: chmod %s: %s", dir, strerror(errno));
		close(fd);
		return NULL;
	}
	if ((d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "imgcache: %s: %s", dir, strerror(errno));
		close(fd);
		return NULL;
	}
	/* Half-made trees of a run that died while unpacking. */
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".tmp-") != NULL &&
		    ramdisk_remove(dirfd(d), de->d_name) == -1) {
			snprintf(err, errlen, "imgcache: remove %s/%s: %s", dir, de->d_name,
				 strerror(errno));
			closedir(d);
			return NULL;
		}
	}
	closedir(d);
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->dir = strdup(dir)) == NULL) {
		free(c);
		snprintf(err, errlen, "imgcache: out of memory");
		return NULL;
	}
	c->max_bytes = RAMDISK_MAX_BYTES;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void
imgcache_free(struct imgcache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c->ent);
	free(c->dir);
	free(c);
}

void
imgcache_set_limit(struct imgcache *c, uint64_t max_bytes)
{
	pthread_mutex_lock(&c->lock);
	c->max_bytes = max_bytes;
	pthread_mutex_unlock(&c->lock);
}

static struct imgent *
find(struct imgcache *c, const unsigned char *hash)
{
	for (size_t i = 0; i < c->n; i++)
		if (memcmp(c->ent[i].hash, hash, IMGCACHE_HASHLEN) == 0)
			return &c->ent[i];
	return NULL;
}

static struct imgent *
add(struct imgcache *c, const unsigned char *hash)
{
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct imgent *ne = realloc(c->ent, ncap * sizeof(*ne));
		if (ne == NULL)
			return NULL;
		c->ent = ne;
		c->cap = ncap;
	}
	memcpy(c->ent[c->n].hash, hash, IMGCACHE_HASHLEN);
	c->ent[c->n].refs = 0;
	return &c->ent[c->n++];
}

static int
tree_path(struct imgcache *c, const unsigned char *hash, char *out, size_t outlen)
{
	char hex[2 * IMGCACHE_HASHLEN + 1];

	hexname(hash, hex);
	if ((size_t)snprintf(out, outlen, "%s/%s", c->dir, hex) >= outlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Take a reference, recording the tree if this run has not seen it yet.
 * Called with the lock held, the tree known to be on disk. */
static int
take(struct imgcache *c, struct imgent *e, const unsigned char *hash)
{
	if (e == NULL && (e = add(c, hash)) == NULL)
		return -1;
	e->refs++;
	return 0;
}

int
imgcache_rootfs(struct imgcache *c, const unsigned char hash[IMGCACHE_HASHLEN], const void *data,
		size_t len, char *path_out, size_t pathlen, char *err, size_t errlen)
{
	unsigned char h[IMGCACHE_HASHLEN];
	struct imgent *e;
	struct stat st;
	int r = -1;

	pthread_mutex_lock(&c->lock);
	if (tree_path(c, hash, path_out, pathlen) == -1) {
		snprintf(err, errlen, "imgcache: path too long");
		goto out;
	}
	e = find(c, hash);
	if (e != NULL && e->refs > 0) {
		e->refs++;
		r = 0;
		goto out;
	}
	if (lstat(path_out, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (take(c, e, hash) == -1)
			snprintf(err, errlen, "imgcache: out of memory");
		else
			r = 0;
		goto out;
	}
	/* A miss: only now are the bytes read, and they must be what the hash
	 * names, or a later hit would serve the wrong tree. */
	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	if (sodium_memcmp(h, hash, sizeof(h)) != 0) {
		snprintf(err, errlen, "imgcache: data does not match its hash");
		goto out;
	}
	if (ramdisk_unpack_limit(data, len, path_out, c->max_bytes, err, errlen) == -1)
		goto out;
	if (take(c, e, hash) == -1) {
		snprintf(err, errlen, "imgcache: out of memory");
		goto out;
	}
	r = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

int
imgcache_hold(struct imgcache *c, const unsigned char hash[IMGCACHE_HASHLEN], char *path_out,
	      size_t pathlen)
{
	struct stat st;
	int r = -1;

	pthread_mutex_lock(&c->lock);
	if (tree_path(c, hash, path_out, pathlen) == -1)
		goto out;
	if (lstat(path_out, &st) == -1)
		goto out;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOENT;
		goto out;
	}
	if (take(c, find(c, hash), hash) == -1) {
		errno = ENOMEM;
		goto out;
	}
	r = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

void
imgcache_put(struct imgcache *c, const unsigned char hash[IMGCACHE_HASHLEN])
{
	struct imgent *e;

	pthread_mutex_lock(&c->lock);
	if ((e = find(c, hash)) != NULL && e->refs > 0)
		e->refs--;
	pthread_mutex_unlock(&c->lock);
}

unsigned
imgcache_refs(struct imgcache *c, const unsigned char hash[IMGCACHE_HASHLEN])
{
	struct imgent *e;
	unsigned n;

	pthread_mutex_lock(&c->lock);
	n = (e = find(c, hash)) != NULL ? e->refs : 0;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static int
held(struct imgcache *c, const char *name)
{
	char hex[2 * IMGCACHE_HASHLEN + 1];

	for (size_t i = 0; i < c->n; i++) {
		hexname(c->ent[i].hash, hex);
		if (c->ent[i].refs > 0 && strcmp(hex, name) == 0)
			return 1;
	}
	return 0;
}

int
imgcache_gc(struct imgcache *c, char *err, size_t errlen)
{
	struct dirent *de;
	DIR *d;
	int removed = 0;

	pthread_mutex_lock(&c->lock);
	if ((d = opendir(c->dir)) == NULL) {
		snprintf(err, errlen, "imgcache: %s: %s", c->dir, strerror(errno));
		removed = -1;
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (!is_hexname(de->d_name) || held(c, de->d_name))
			continue;
		if (ramdisk_remove(dirfd(d), de->d_name) == -1) {
			snprintf(err, errlen, "imgcache: remove %s/%s: %s", c->dir, de->d_name,
				 strerror(errno));
			removed = -1;
			break;
		}
		removed++;
	}
	closedir(d);
	/* Forget the unheld entries: their trees are gone. */
	for (size_t i = 0; i < c->n;) {
		if (c->ent[i].refs == 0)
			c->ent[i] = c->ent[--c->n];
		else
			i++;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return removed;
}

int
dir_tmpfs(const char *path, const char *name, char *err, size_t errlen)
{
	struct statfs sf;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	if (statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC)
		return 0;
	if (mount(name, path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
		log_warn("%s: cannot mount a tmpfs; using the disk", path);
	return 0;
}
