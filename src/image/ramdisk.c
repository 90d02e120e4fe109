/* ramdisk: tell kernels, ramdisks and empty memory apart, and unpack newc
 * cpio archives (plain or gzip'd, bare or in a uImage) into a directory.
 * Archives come from principals, so every entry is treated as hostile. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include "image/ramdisk.h"
#include "common/util.h"
#include "image/uimage.h"

#define CPIO_HDRLEN  110
#define MAX_ENTRIES  (1u << 20)
#define MAX_DEPTH    256 /* components in a name: bounds the work per entry */
#define GZ_BUFSZ     65536
#define LINK_BUCKETS 256
#define ERRNAME_MAX  80

/* ---- the cpio byte stream, from memory or through inflate ---- */

struct src {
	const unsigned char *in;
	size_t inlen;
	int gz;
	z_stream zs;
	int zlive; /* inflateInit2 done */
	int zend;  /* last gzip member ended */
	unsigned char *buf;
	const unsigned char *win; /* bytes ready: win[wpos..wlen) */
	size_t wpos, wlen;
	uint64_t off; /* cpio stream bytes consumed */
	char *err;
	size_t errlen;
};

static int
src_init(struct src *s, const unsigned char *in, size_t inlen, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->in = in;
	s->inlen = inlen;
	s->err = err;
	s->errlen = errlen;
	if (inlen >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
		s->gz = 1;
		if ((s->buf = malloc(GZ_BUFSZ)) == NULL) {
			snprintf(err, errlen, "ramdisk: out of memory");
			return -1;
		}
		s->zs.next_in = (unsigned char *)in;
		s->zs.avail_in = 0;
		if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) {
			free(s->buf);
			snprintf(err, errlen, "ramdisk: cannot start inflate");
			return -1;
		}
		s->zlive = 1;
	} else {
		s->win = in;
		s->wlen = inlen;
	}
	return 0;
}

static void
src_done(struct src *s)
{
	if (s->zlive)
		inflateEnd(&s->zs);
	free(s->buf);
}

/* zlib counts input in uInt: hand it at most 1 GiB at a time. */
static void
src_feed(struct src *s)
{
	size_t used = (size_t)(s->zs.next_in - s->in);
	size_t left = s->inlen - used;

	if (s->zs.avail_in == 0 && left > 0)
		s->zs.avail_in = left > (1u << 30) ? (1u << 30) : (uInt)left;
}

static size_t
src_inleft(const struct src *s)
{
	return s->inlen - (size_t)(s->zs.next_in - s->in);
}

/* Make bytes ready in the window: 1, 0 at the end of the stream, -1 on
 * a gzip error (err set). */
static int
src_more(struct src *s)
{
	if (s->wpos < s->wlen)
		return 1;
	if (!s->gz || s->zend)
		return 0;
	for (;;) {
		int r;
		size_t got;

		src_feed(s);
		s->zs.next_out = s->buf;
		s->zs.avail_out = GZ_BUFSZ;
		r = inflate(&s->zs, Z_NO_FLUSH);
		got = GZ_BUFSZ - s->zs.avail_out;
		if (r == Z_STREAM_END) {
			/* Concatenated members form one stream, as gzip -d reads
			 * them; anything else after the end is padding. */
			const unsigned char *nx = s->zs.next_in;
			if (src_inleft(s) >= 2 && nx[0] == 0x1f && nx[1] == 0x8b)
				inflateReset(&s->zs);
			else
				s->zend = 1;
		} else if (r == Z_BUF_ERROR && got == 0 && src_inleft(s) == 0) {
			snprintf(s->err, s->errlen,
				 "ramdisk: truncated gzip data at cpio offset %llu",
				 (unsigned long long)s->off);
			return -1;
		} else if (r != Z_OK && (r != Z_BUF_ERROR || got == 0)) {
			snprintf(
			    s->err, s->errlen, "ramdisk: corrupt gzip data at cpio offset %llu: %s",
			    (unsigned long long)s->off,
			    s->zs.msg ? s->zs.msg : (r == Z_MEM_ERROR ? "out of memory" : "error"));
			return -1;
		}
		if (got > 0) {
			s->win = s->buf;
			s->wpos = 0;
			s->wlen = got;
			return 1;
		}
		if (s->zend)
			return 0;
	}
}

static int
src_truncated(struct src *s)
{
	snprintf(s->err, s->errlen, "ramdisk: truncated cpio at offset %llu",
		 (unsigned long long)s->off);
	return -1;
}

/* Up to want bytes, in place: *p points at them.  Returns how many (> 0),
 * or -1 when the stream ends first (truncated) or is corrupt. */
static ssize_t
src_chunk(struct src *s, size_t want, const unsigned char **p)
{
	size_t k;
	int r = src_more(s);

	if (r == -1)
		return -1;
	if (r == 0)
		return src_truncated(s);
	k = s->wlen - s->wpos < want ? s->wlen - s->wpos : want;
	*p = s->win + s->wpos;
	s->wpos += k;
	s->off += k;
	return (ssize_t)k;
}

static int
src_read(struct src *s, void *dst, size_t n)
{
	unsigned char *d = dst;

	while (n > 0) {
		const unsigned char *p;
		ssize_t k = src_chunk(s, n, &p);
		if (k == -1)
			return -1;
		memcpy(d, p, (size_t)k);
		d += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
src_skip(struct src *s, uint64_t n)
{
	while (n > 0) {
		const unsigned char *p;
		ssize_t k = src_chunk(s, n > SIZE_MAX ? SIZE_MAX : (size_t)n, &p);
		if (k == -1)
			return -1;
		n -= (uint64_t)k;
	}
	return 0;
}

/* Read to the end so that gzip's own CRC and length are checked. */
static int
src_drain(struct src *s)
{
	int r;

	while ((r = src_more(s)) == 1) {
		s->off += s->wlen - s->wpos;
		s->wpos = s->wlen;
	}
	return r;
}

/* ---- classification ---- */

static uint32_t
rd_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t
rd_le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static int
all_zero(const unsigned char *p, size_t len)
{
	static const unsigned char zero[256];

	while (len > 0) {
		size_t k = len < sizeof(zero) ? len : sizeof(zero);
		if (memcmp(p, zero, k) != 0)
			return 0;
		p += k;
		len -= k;
	}
	return 1;
}

static int
is_newc(const unsigned char *p, size_t len)
{
	return len >= 6 && (memcmp(p, "070701", 6) == 0 || memcmp(p, "070702", 6) == 0);
}

/* What a cpio-or-gzip payload is: 1 a ramdisk, 0 not, -1 corrupt gzip. */
static int
payload_kind(const unsigned char *p, size_t len, const char **what, char *err, size_t errlen)
{
	struct src s;
	unsigned char magic[6];
	int r;

	if (is_newc(p, len))
		return 1;
	if (len >= 6 && memcmp(p, "070707", 6) == 0) {
		*what = "old-format (odc) cpio archive: make it with cpio -H newc";
		return 0;
	}
	if (len < 2 || p[0] != 0x1f || p[1] != 0x8b) {
		*what = "neither a newc cpio archive nor gzip data";
		return 0;
	}
	if (src_init(&s, p, len, err, errlen) == -1)
		return -1;
	r = src_read(&s, magic, sizeof(magic));
	src_done(&s);
	if (r == -1) {
		/* Fewer than 6 bytes inflate: call that corrupt, not truncated cpio. */
		if (strstr(err, "truncated cpio") != NULL)
			snprintf(err, errlen, "ramdisk: gzip data too short for a cpio archive");
		return -1;
	}
	if (!is_newc(magic, sizeof(magic))) {
		*what = "gzip data that is not a newc cpio archive";
		return 0;
	}
	return 1;
}

int
image_classify(const void *data, size_t len, enum img_kind *kind, size_t *payload_off,
	       size_t *payload_len, char *err, size_t errlen)
{
	const unsigned char *p = data;
	const char *what = NULL;
	int r;

	*payload_off = 0;
	*payload_len = len;
	if (len == 0 || all_zero(p, len)) {
		*kind = IMG_EMPTY;
		snprintf(err, errlen, "nothing loaded");
		return 0;
	}
	if (len >= 4 && rd_be32(p) == UIMAGE_MAGIC) {
		struct uimage_hdr h;
		char e[128];

		if (uimage_verify(p, len, &h, e, sizeof(e)) == -1) {
			snprintf(err, errlen, "uImage: %s", e);
			return -1;
		}
		*payload_off = UIMAGE_HDRSIZE;
		*payload_len = h.size;
		switch (h.type) {
		case UIMAGE_TYPE_KERNEL:
		case UIMAGE_TYPE_MULTI:
		case 14: /* IH_TYPE_KERNEL_NOLOAD */
			*kind = IMG_KERNEL;
			snprintf(err, errlen, "uImage \"%s\": %s %s %s (%s)", h.name,
				 uimage_arch_name(h.arch), uimage_os_name(h.os),
				 uimage_type_name(h.type), uimage_comp_name(h.comp));
			return 0;
		case UIMAGE_TYPE_RAMDISK:
			if (h.comp != UIMAGE_COMP_NONE && h.comp != UIMAGE_COMP_GZIP) {
				snprintf(err, errlen, "uImage \"%s\": %s ramdisk not supported",
					 h.name, uimage_comp_name(h.comp));
				return -1;
			}
			r = payload_kind(p + UIMAGE_HDRSIZE, h.size, &what, err, errlen);
			if (r == -1)
				return -1;
			if (r == 0) {
				*kind = IMG_OTHER;
				snprintf(err, errlen, "uImage \"%s\": RAMDisk Image holding %s",
					 h.name, what);
				return 0;
			}
			*kind = IMG_RAMDISK;
			return 0;
		default:
			*kind = IMG_OTHER;
			snprintf(err, errlen, "uImage \"%s\": %s %s %s", h.name,
				 uimage_arch_name(h.arch), uimage_os_name(h.os),
				 uimage_type_name(h.type));
			return 0;
		}
	}
	if ((len >= 4 && memcmp(p, "0707", 4) == 0) || (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)) {
		r = payload_kind(p, len, &what, err, errlen);
		if (r == -1)
			return -1;
		*kind = r ? IMG_RAMDISK : IMG_OTHER;
		if (r == 0)
			snprintf(err, errlen, "%s", what);
		return 0;
	}
	*kind = IMG_KERNEL;
	if (len >= 4 && memcmp(p, "\177ELF", 4) == 0) {
		snprintf(err, errlen, "ELF executable (a vmlinux kernel?)");
		return 0;
	}
	if (len >= 0x206 && memcmp(p + 0x202, "HdrS", 4) == 0) {
		snprintf(err, errlen, "x86 bzImage kernel");
		return 0;
	}
	if (len >= 0x40 && rd_le32(p + 0x38) == 0x644d5241) { /* "ARM\x64" */
		snprintf(err, errlen, "arm64 Image kernel");
		return 0;
	}
	*kind = IMG_OTHER;
	snprintf(err, errlen, "unrecognised data (not a uImage, cpio archive or gzip data)");
	return 0;
}

/* ---- unpacking ---- */

struct cpio_hdr {
	uint32_t ino, mode, uid, gid, nlink, mtime, filesize;
	uint32_t devmajor, devminor, rdevmajor, rdevminor, namesize, check;
	int crc; /* "070702": check is the sum of the data bytes */
};

/* A directory's attributes, applied once its entries exist (entries made
 * inside would change its mtime, and its mode may forbid making them). */
struct dirattr {
	char *path; /* "" is the root */
	size_t seq;
	uint32_t mode, uid, gid, mtime;
	int owner, times; /* restore owner / mtime */
};

struct link {
	struct link *next;
	uint32_t ino, major, minor;
	char path[]; /* first name of the inode */
};

struct unpack {
	struct src s;
	int rootfd;
	int root; /* euid 0: restore owners and device nodes */
	uint64_t max_bytes, bytes;
	size_t entries;
	struct dirattr *dirs;
	size_t ndirs, dircap;
	struct link *links[LINK_BUCKETS];
	char *err;
	size_t errlen;
	const char *name; /* entry being made, for messages */
};

/* Names come from the archive: show them on one line, shortened. */
static const char *
safe_name(const char *name, char *buf, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n && name[i] != '\0'; i++)
		buf[i] = (name[i] < 0x20 || name[i] == 0x7f) ? '?' : name[i];
	buf[i] = '\0';
	if (name[i] != '\0' && n > 4)
		memcpy(buf + n - 4, "...", 4);
	return buf;
}

static int
up_fail(struct unpack *u, const char *what, int errnum)
{
	char nb[ERRNAME_MAX];

	if (errnum != 0)
		snprintf(u->err, u->errlen, "ramdisk: \"%s\": %s: %s",
			 safe_name(u->name, nb, sizeof(nb)), what, strerror(errnum));
	else
		snprintf(u->err, u->errlen, "ramdisk: \"%s\": %s",
			 safe_name(u->name, nb, sizeof(nb)), what);
	return -1;
}

static int
hexfield(const char *p, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 8; i++) {
		char c = p[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

static int
read_header(struct unpack *u, struct cpio_hdr *h, uint64_t at)
{
	char raw[CPIO_HDRLEN];
	uint32_t *f[13] = {&h->ino,	  &h->mode,	&h->uid,      &h->gid,	    &h->nlink,
			   &h->mtime,	  &h->filesize, &h->devmajor, &h->devminor, &h->rdevmajor,
			   &h->rdevminor, &h->namesize, &h->check};

	if (src_read(&u->s, raw, sizeof(raw)) == -1)
		return -1;
	if (memcmp(raw, "07070", 5) != 0 || (raw[5] != '1' && raw[5] != '2')) {
		snprintf(u->err, u->errlen, "ramdisk: bad cpio magic at offset %llu",
			 (unsigned long long)at);
		return -1;
	}
	h->crc = raw[5] == '2';
	for (int i = 0; i < 13; i++) {
		if (hexfield(raw + 6 + 8 * i, f[i]) == -1) {
			snprintf(u->err, u->errlen, "ramdisk: corrupt cpio header at offset %llu",
				 (unsigned long long)at);
			return -1;
		}
	}
	return 0;
}

/* Rewrite a name as a clean relative path: no leading '/', no empty or "."
 * components.  Returns 0, 1 when nothing is left (the root), -1 on "..". */
static int
clean_name(char *name)
{
	char *r = name, *w = name;

	while (*r != '\0') {
		size_t n;
		while (*r == '/')
			r++;
		if (*r == '\0')
			break;
		n = strcspn(r, "/");
		if (n == 1 && r[0] == '.') {
			r += n;
			continue;
		}
		if (n == 2 && r[0] == '.' && r[1] == '.')
			return -1;
		if (w != name)
			*w++ = '/';
		memmove(w, r, n);
		w += n;
		r += n;
	}
	*w = '\0';
	return w == name;
}

static int
add_dirattr(struct unpack *u, const char *path, size_t plen, uint32_t mode, uint32_t uid,
	    uint32_t gid, uint32_t mtime, int owner, int times)
{
	struct dirattr *d;

	if (u->ndirs == u->dircap) {
		size_t ncap = u->dircap ? u->dircap * 2 : 64;
		struct dirattr *nd = realloc(u->dirs, ncap * sizeof(*nd));
		if (nd == NULL)
			return up_fail(u, "out of memory", 0);
		u->dirs = nd;
		u->dircap = ncap;
	}
	d = &u->dirs[u->ndirs];
	if ((d->path = strndup(path, plen)) == NULL)
		return up_fail(u, "out of memory", 0);
	d->seq = u->ndirs++;
	d->mode = mode;
	d->uid = uid;
	d->gid = gid;
	d->mtime = mtime;
	d->owner = owner;
	d->times = times;
	return 0;
}

/* Open the directory that holds path's last component, one component at a
 * time and never through a symlink.  create: make missing directories (as
 * cpio -d does).  On success *pfd is that directory and *leaf the last
 * component. */
static int
walk(struct unpack *u, const char *path, int create, int *pfd, const char **leaf)
{
	char comp[NAME_MAX + 1];
	const char *p = path;
	int fd = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 0);

	if (fd == -1)
		return up_fail(u, "dup", errno);
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n;
		int nfd;

		if (slash == NULL) {
			*pfd = fd;
			*leaf = p;
			return 0;
		}
		n = (size_t)(slash - p);
		if (n > NAME_MAX) {
			close(fd);
			return up_fail(u, "name component too long", 0);
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0700) == -1 && errno != EEXIST) {
				int e = errno;
				close(fd);
				return up_fail(u, "mkdir", e);
			}
			if (add_dirattr(u, path, (size_t)(slash - path), 0755, 0, 0, 0, 0, 0) ==
			    -1) {
				close(fd);
				return -1;
			}
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd == -1) {
			int e = errno;
			struct stat st;
			int link =
			    fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
			close(fd);
			if (link)
				return up_fail(u, "path goes through a symlink", 0);
			return up_fail(u, "parent directory", e);
		}
		close(fd);
		fd = nfd;
		p = slash + 1;
	}
}

/* Make room for a new entry: remove a non-directory (or empty directory)
 * already there, as a later entry of the same name replaces an earlier one. */
static int
clear_leaf(struct unpack *u, int pfd, const char *leaf)
{
	if (unlinkat(pfd, leaf, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno == EISDIR && unlinkat(pfd, leaf, AT_REMOVEDIR) == 0)
		return 0;
	if (errno == ENOTEMPTY || errno == EEXIST)
		return up_fail(u, "replaces a non-empty directory", 0);
	return up_fail(u, "remove old entry", errno);
}

static int
set_attrs_fd(struct unpack *u, int fd, const struct cpio_hdr *h)
{
	struct timespec ts[2] = {{.tv_sec = h->mtime}, {.tv_sec = h->mtime}};

	/* chown first: it clears set-id bits the chmod then restores. */
	if (u->root && fchown(fd, h->uid, h->gid) == -1)
		return up_fail(u, "chown", errno);
	if (fchmod(fd, h->mode & 07777) == -1)
		return up_fail(u, "chmod", errno);
	if (futimens(fd, ts) == -1)
		return up_fail(u, "set mtime", errno);
	return 0;
}

/* Write the entry's data into fd (or skip it when fd is -1). */
static int
copy_data(struct unpack *u, int fd, const struct cpio_hdr *h)
{
	uint64_t left = h->filesize;
	uint32_t sum = 0;

	while (left > 0) {
		const unsigned char *p;
		ssize_t k = src_chunk(&u->s, left > GZ_BUFSZ ? GZ_BUFSZ : (size_t)left, &p);

		if (k == -1)
			return -1;
		if (h->crc)
			for (ssize_t i = 0; i < k; i++)
				sum += p[i];
		if (fd != -1 && write_all(fd, p, (size_t)k) < 0)
			return up_fail(u, "write", errno);
		left -= (uint64_t)k;
	}
	if (h->crc && fd != -1 && sum != h->check)
		return up_fail(u, "data checksum mismatch", 0);
	return 0;
}

static struct link **
link_bucket(struct unpack *u, const struct cpio_hdr *h)
{
	return &u->links[(h->ino ^ h->devmajor * 31 ^ h->devminor * 17) % LINK_BUCKETS];
}

static struct link *
link_find(struct unpack *u, const struct cpio_hdr *h)
{
	struct link *l;

	for (l = *link_bucket(u, h); l != NULL; l = l->next)
		if (l->ino == h->ino && l->major == h->devmajor && l->minor == h->devminor)
			return l;
	return NULL;
}

static int
make_file(struct unpack *u, const struct cpio_hdr *h, const char *path, int pfd, const char *leaf)
{
	struct link *l = NULL;
	int fd, flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC;

	if (clear_leaf(u, pfd, leaf) == -1)
		return -1;
	/* newc writes every name of a multiply linked inode; the data comes
	 * with one of them (GNU cpio: the last).  Later names link to the first
	 * and add their data, if any, to the shared inode. */
	if (h->nlink > 1 && (l = link_find(u, h)) != NULL) {
		int spfd, r;
		const char *sleaf;
		struct stat st;

		if (walk(u, l->path, 0, &spfd, &sleaf) == -1)
			return -1;
		/* A later entry may have put a fifo or a device node at the
		 * first name: opening its new link would block, or write the
		 * data into a host device. */
		r = fstatat(spfd, sleaf, &st, AT_SYMLINK_NOFOLLOW);
		if (r == 0 && !S_ISREG(st.st_mode)) {
			close(spfd);
			return up_fail(u, "hard link to a name that is not a regular file", 0);
		}
		if (r == 0)
			r = linkat(spfd, sleaf, pfd, leaf, 0);
		close(spfd);
		if (r == -1)
			return up_fail(u, "hard link", errno);
	} else {
		flags |= O_CREAT | O_EXCL;
		if (h->nlink > 1) {
			size_t n = strlen(path) + 1;
			struct link **b = link_bucket(u, h);
			if ((l = malloc(sizeof(*l) + n)) == NULL)
				return up_fail(u, "out of memory", 0);
			l->ino = h->ino;
			l->major = h->devmajor;
			l->minor = h->devminor;
			memcpy(l->path, path, n);
			l->next = *b;
			*b = l;
		}
	}
	/* O_NONBLOCK and the check after: whatever is at leaf, only a
	 * regular file ever gets the data. */
	if ((fd = openat(pfd, leaf, flags | O_NONBLOCK, 0600)) == -1)
		return up_fail(u, "create", errno);
	struct stat fst;
	if (fstat(fd, &fst) == -1 || !S_ISREG(fst.st_mode)) {
		up_fail(u, "not a regular file", 0);
		goto fail;
	}
	if (copy_data(u, fd, h) == -1)
		goto fail;
	/* A linked inode may already hold longer data from an earlier name. */
	if (h->filesize > 0 && ftruncate(fd, h->filesize) == -1) {
		up_fail(u, "truncate", errno);
		goto fail;
	}
	if (set_attrs_fd(u, fd, h) == -1)
		goto fail;
	if (close(fd) == -1)
		return up_fail(u, "close", errno);
	return 0;
fail:
	close(fd);
	return -1;
}

static int
make_symlink(struct unpack *u, const struct cpio_hdr *h, int pfd, const char *leaf)
{
	char target[RAMDISK_MAX_NAME];
	struct timespec ts[2] = {{.tv_sec = h->mtime}, {.tv_sec = h->mtime}};

	if (h->filesize == 0 || h->filesize >= sizeof(target))
		return up_fail(u, "bad symlink target length", 0);
	if (src_read(&u->s, target, h->filesize) == -1)
		return -1;
	target[h->filesize] = '\0';
	if (strlen(target) != h->filesize)
		return up_fail(u, "symlink target holds a NUL byte", 0);
	/* The target is stored, never followed here: inside the node it
	 * resolves within the node's own root. */
	if (clear_leaf(u, pfd, leaf) == -1)
		return -1;
	if (symlinkat(target, pfd, leaf) == -1)
		return up_fail(u, "symlink", errno);
	if (u->root && fchownat(pfd, leaf, h->uid, h->gid, AT_SYMLINK_NOFOLLOW) == -1)
		return up_fail(u, "chown", errno);
	if (utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW) == -1)
		return up_fail(u, "set mtime", errno);
	return 0;
}

static int
make_node(struct unpack *u, const struct cpio_hdr *h, int pfd, const char *leaf)
{
	struct timespec ts[2] = {{.tv_sec = h->mtime}, {.tv_sec = h->mtime}};
	mode_t type = h->mode & S_IFMT;

	if (src_skip(&u->s, h->filesize) == -1)
		return -1;
	/* Device nodes need privilege; without it they are left out, as an
	 * unprivileged cpio -i does. */
	if ((type == S_IFCHR || type == S_IFBLK) && !u->root)
		return 0;
	if (clear_leaf(u, pfd, leaf) == -1)
		return -1;
	if (mknodat(pfd, leaf, type | 0600, makedev(h->rdevmajor, h->rdevminor)) == -1) {
		if (errno == EPERM && type != S_IFIFO && type != S_IFSOCK)
			return 0; /* e.g. root in a user namespace */
		return up_fail(u, "mknod", errno);
	}
	/* Opening a device or fifo could block or act on it, so set its
	 * attributes by name: the new tree's directories are ours alone and
	 * leaf was made just now, so fchmodat cannot meet a symlink there. */
	if (u->root && fchownat(pfd, leaf, h->uid, h->gid, AT_SYMLINK_NOFOLLOW) == -1)
		return up_fail(u, "chown", errno);
	if (fchmodat(pfd, leaf, h->mode & 07777, 0) == -1)
		return up_fail(u, "chmod", errno);
	if (utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW) == -1)
		return up_fail(u, "set mtime", errno);
	return 0;
}

static int
make_dir(struct unpack *u, const struct cpio_hdr *h, const char *path, int pfd, const char *leaf)
{
	struct stat st;

	if (src_skip(&u->s, h->filesize) == -1)
		return -1;
	if (mkdirat(pfd, leaf, 0700) == -1) {
		if (errno != EEXIST)
			return up_fail(u, "mkdir", errno);
		if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == -1)
			return up_fail(u, "stat", errno);
		if (!S_ISDIR(st.st_mode)) {
			if (clear_leaf(u, pfd, leaf) == -1)
				return -1;
			if (mkdirat(pfd, leaf, 0700) == -1)
				return up_fail(u, "mkdir", errno);
		}
	}
	return add_dirattr(u, path, strlen(path), h->mode & 07777, h->uid, h->gid, h->mtime, 1, 1);
}

static int
pad4(struct unpack *u, uint64_t n)
{
	return src_skip(&u->s, (4 - n % 4) % 4);
}

/* One entry; returns 1 at the trailer, 0 for an entry, -1 on error. */
static int
unpack_entry(struct unpack *u)
{
	struct cpio_hdr h;
	uint64_t at = u->s.off;
	char name[RAMDISK_MAX_NAME];
	const char *leaf;
	mode_t type;
	int pfd, r;

	if (read_header(u, &h, at) == -1)
		return -1;
	if (h.namesize < 2 || h.namesize > sizeof(name)) {
		snprintf(u->err, u->errlen, "ramdisk: bad name size %u at offset %llu", h.namesize,
			 (unsigned long long)at);
		return -1;
	}
	if (src_read(&u->s, name, h.namesize) == -1 || pad4(u, CPIO_HDRLEN + h.namesize) == -1)
		return -1;
	if (name[h.namesize - 1] != '\0' || strlen(name) != h.namesize - 1) {
		snprintf(u->err, u->errlen, "ramdisk: bad entry name at offset %llu",
			 (unsigned long long)at);
		return -1;
	}
	if (strcmp(name, "TRAILER!!!") == 0)
		return 1;
	u->name = name;
	if (++u->entries > MAX_ENTRIES) {
		snprintf(u->err, u->errlen, "ramdisk: more than %u entries", MAX_ENTRIES);
		return -1;
	}
	/* Names count too: a compressed archive of long names is a bomb too. */
	u->bytes += (uint64_t)h.filesize + h.namesize;
	if (u->bytes > u->max_bytes) {
		snprintf(u->err, u->errlen, "ramdisk: unpacks to more than %llu bytes",
			 (unsigned long long)u->max_bytes);
		return -1;
	}
	type = h.mode & S_IFMT;
	if ((r = clean_name(name)) == -1)
		return up_fail(u, "name has a \"..\" component", 0);
	{
		size_t depth = 1;
		for (const char *c = name; *c != '\0'; c++)
			depth += *c == '/';
		if (depth > MAX_DEPTH)
			return up_fail(u, "name nested too deep", 0);
	}
	if (r == 1) {
		/* "." (find . | cpio -o): the root directory itself. */
		if (type != S_IFDIR)
			return up_fail(u, "the root must be a directory", 0);
		if (src_skip(&u->s, h.filesize) == -1)
			return -1;
		r = add_dirattr(u, "", 0, h.mode & 07777, h.uid, h.gid, h.mtime, 1, 1);
		return r == -1 ? -1 : pad4(u, h.filesize);
	}
	if (walk(u, name, 1, &pfd, &leaf) == -1)
		return -1;
	switch (type) {
	case S_IFREG:
		r = make_file(u, &h, name, pfd, leaf);
		break;
	case S_IFDIR:
		r = make_dir(u, &h, name, pfd, leaf);
		break;
	case S_IFLNK:
		r = make_symlink(u, &h, pfd, leaf);
		break;
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		r = make_node(u, &h, pfd, leaf);
		break;
	default:
		r = up_fail(u, "unknown file type", 0);
		break;
	}
	close(pfd);
	if (r == -1)
		return -1;
	return pad4(u, h.filesize);
}

static int
dirattr_cmp(const void *a, const void *b)
{
	const struct dirattr *x = a, *y = b;
	int c = strcmp(y->path, x->path);

	if (c != 0)
		return c;
	return x->seq < y->seq ? 1 : -1;
}

/* Give directories their modes, owners and mtimes: children before parents
 * (descending order puts "a/b" before "a"), the last record of a path wins. */
static int
apply_dirattrs(struct unpack *u)
{
	int root_done = 0;

	if (u->ndirs > 0)
		qsort(u->dirs, u->ndirs, sizeof(*u->dirs), dirattr_cmp);
	for (size_t i = 0; i < u->ndirs; i++) {
		struct dirattr *d = &u->dirs[i];
		struct cpio_hdr h = {
		    .mode = d->mode, .uid = d->uid, .gid = d->gid, .mtime = d->mtime};
		struct timespec ts[2] = {{.tv_sec = d->mtime}, {.tv_sec = d->mtime}};
		int fd, pfd, ok = 0;
		const char *leaf;

		if (i > 0 && strcmp(d->path, u->dirs[i - 1].path) == 0)
			continue;
		u->name = d->path[0] ? d->path : ".";
		if (d->path[0] == '\0') {
			fd = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 0);
			root_done = 1;
		} else {
			/* A later entry may have replaced the directory: skip it then. */
			if (walk(u, d->path, 0, &pfd, &leaf) == -1)
				continue;
			fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			close(pfd);
		}
		if (fd == -1)
			continue;
		if (!(d->owner && u->root && fchown(fd, h.uid, h.gid) == -1) &&
		    fchmod(fd, h.mode) == 0 && (!d->times || futimens(fd, ts) == 0))
			ok = 1;
		if (!ok) {
			int e = errno;
			close(fd);
			return up_fail(u, "set directory attributes", e);
		}
		close(fd);
	}
	if (!root_done && fchmod(u->rootfd, 0755) == -1) {
		u->name = ".";
		return up_fail(u, "chmod", errno);
	}
	return 0;
}

static void
unpack_free(struct unpack *u)
{
	for (size_t i = 0; i < u->ndirs; i++)
		free(u->dirs[i].path);
	free(u->dirs);
	for (int i = 0; i < LINK_BUCKETS; i++) {
		struct link *l = u->links[i], *nl;
		for (; l != NULL; l = nl) {
			nl = l->next;
			free(l);
		}
	}
	src_done(&u->s);
}

static int
unpack_all(struct unpack *u)
{
	int r;

	while ((r = unpack_entry(u)) == 0)
		;
	if (r == -1)
		return -1;
	u->name = ".";
	if (src_drain(&u->s) == -1)
		return -1;
	return apply_dirattrs(u);
}

int
ramdisk_unpack_limit(const void *p, size_t len, const char *dir, uint64_t max_bytes, char *err,
		     size_t errlen)
{
	struct unpack u;
	enum img_kind kind;
	size_t off, plen;
	char tmp[PATH_MAX], desc[256];
	struct stat st;
	int r;

	if (image_classify(p, len, &kind, &off, &plen, desc, sizeof(desc)) == -1) {
		snprintf(err, errlen, "%s%s", strncmp(desc, "ramdisk:", 8) ? "ramdisk: " : "",
			 desc);
		return -1;
	}
	if (kind != IMG_RAMDISK) {
		snprintf(
		    err, errlen, "ramdisk: %s%s",
		    kind == IMG_KERNEL ? "kernel image, not a ramdisk: " : "not a ramdisk: ", desc);
		return -1;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dir) >= sizeof(tmp)) {
		snprintf(err, errlen, "ramdisk: path too long");
		return -1;
	}
	if (lstat(dir, &st) == 0 || errno != ENOENT) {
		snprintf(err, errlen, "ramdisk: %s: %s", dir,
			 errno == ENOENT ? "already exists" : strerror(errno));
		return -1;
	}
	if (mkdtemp(tmp) == NULL) {
		snprintf(err, errlen, "ramdisk: mkdtemp %s: %s", tmp, strerror(errno));
		return -1;
	}
	memset(&u, 0, sizeof(u));
	u.err = err;
	u.errlen = errlen;
	u.max_bytes = max_bytes;
	u.root = geteuid() == 0;
	u.name = ".";
	if ((u.rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "ramdisk: open %s: %s", tmp, strerror(errno));
		r = -1;
	} else if (src_init(&u.s, (const unsigned char *)p + off, plen, err, errlen) == -1) {
		r = -1;
	} else {
		r = unpack_all(&u);
		unpack_free(&u);
	}
	if (u.rootfd != -1)
		close(u.rootfd);
	if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) == -1 &&
	    ((errno != EINVAL && errno != ENOSYS) || rename(tmp, dir) == -1)) {
		snprintf(err, errlen, "ramdisk: rename to %s: %s", dir, strerror(errno));
		r = -1;
	}
	if (r == -1)
		ramdisk_remove(AT_FDCWD, tmp);
	return r;
}

int
ramdisk_unpack(const void *p, size_t len, const char *dir, char *err, size_t errlen)
{
	return ramdisk_unpack_limit(p, len, dir, RAMDISK_MAX_BYTES, err, errlen);
}

/* ---- removal ---- */

/* Empty the directory top, depth first, holding one directory open at a
 * time (a hostile tree may be deeper than the fd limit). */
static int
empty_tree(int top)
{
	char **stack = NULL;
	size_t depth = 0, cap = 0;
	int fd = fcntl(top, F_DUPFD_CLOEXEC, 0), e;

	if (fd == -1)
		return -1;
	for (;;) {
		struct dirent *de;
		char *sub = NULL;
		DIR *d;
		int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

		if (dfd == -1 || (d = fdopendir(dfd)) == NULL) {
			if (dfd != -1)
				close(dfd);
			goto fail;
		}
		rewinddir(d); /* the dup shares its offset with earlier scans */
		while ((de = readdir(d)) != NULL) {
			const char *n = de->d_name;
			if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
				continue;
			if (de->d_type != DT_DIR) {
				if (unlinkat(fd, n, 0) == 0 || errno == ENOENT)
					continue;
				if (errno != EISDIR) {
					closedir(d);
					free(sub);
					goto fail;
				}
			}
			if (sub == NULL && (sub = strdup(n)) == NULL) {
				closedir(d);
				goto fail;
			}
		}
		closedir(d);
		if (sub != NULL) {
			int nfd;

			if (depth == cap) {
				char **ns = realloc(stack, (cap * 2 + 16) * sizeof(*ns));
				if (ns == NULL) {
					free(sub);
					goto fail;
				}
				stack = ns;
				cap = cap * 2 + 16;
			}
			(void)fchmodat(fd, sub, 0700, 0);
			nfd = openat(fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd == -1) {
				free(sub);
				goto fail;
			}
			stack[depth++] = sub;
			close(fd);
			fd = nfd;
			continue;
		}
		if (depth == 0)
			break;
		{
			int pfd = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			char *name = stack[--depth];

			close(fd);
			fd = pfd;
			if (fd == -1 || unlinkat(fd, name, AT_REMOVEDIR) == -1) {
				free(name);
				goto fail;
			}
			free(name);
		}
	}
	close(fd);
	free(stack);
	return 0;
fail:
	e = errno;
	if (fd != -1)
		close(fd);
	while (depth > 0)
		free(stack[--depth]);
	free(stack);
	errno = e;
	return -1;
}

int
ramdisk_remove(int dirfd, const char *path)
{
	struct stat st;
	int fd, r;

	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, path, 0);
	(void)fchmodat(dirfd, path, 0700, 0);
	if ((fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	r = empty_tree(fd);
	close(fd);
	if (r == -1)
		return -1;
	return unlinkat(dirfd, path, AT_REMOVEDIR);
}
