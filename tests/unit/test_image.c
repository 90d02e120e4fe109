/* test_image: uImage headers, image classification, safe ramdisk unpacking
 * and the unpacked-image cache (src/image/).  Archives are built here: newc
 * cpio by hand (and by the real cpio tool), gzip'd with zlib, wrapped in a
 * uImage header computed here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zlib.h>

#include "image/cache.h"
#include "image/ramdisk.h"
#include "image/uimage.h"

/* ---- building archives ---- */

struct cb {
	unsigned char *p;
	size_t n, cap;
};

static void
cb_put(struct cb *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 256;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n > 0)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void
cb_pad4(struct cb *b)
{
	static const unsigned char z[4];
	cb_put(b, z, (4 - b->n % 4) % 4);
}

struct ent {
	const char *name;
	uint32_t mode;
	const char *data; /* file data or symlink target */
	uint32_t ino, nlink, uid, gid, mtime, rmaj, rmin;
};

static void
cpio_entry(struct cb *b, const char *magic, const struct ent *e)
{
	char hdr[160];
	size_t len = e->data ? strlen(e->data) : 0;
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += (unsigned char)e->data[i];
	snprintf(hdr, sizeof(hdr), "%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", magic,
		 e->ino ? e->ino : 1000 + (uint32_t)b->n, e->mode, e->uid, e->gid,
		 e->nlink ? e->nlink : 1, e->mtime, (uint32_t)len, 8, 1, e->rmaj, e->rmin,
		 (uint32_t)strlen(e->name) + 1, strcmp(magic, "070702") == 0 ? sum : 0);
	cb_put(b, hdr, 110);
	cb_put(b, e->name, strlen(e->name) + 1);
	cb_pad4(b);
	cb_put(b, e->data, len);
	cb_pad4(b);
}

static void
cpio_trailer(struct cb *b, const char *magic)
{
	struct ent t = {.name = "TRAILER!!!"};
	cpio_entry(b, magic, &t);
}

static struct cb
cpio_of(const struct ent *es, size_t n, const char *magic)
{
	struct cb b = {0};

	for (size_t i = 0; i < n; i++)
		cpio_entry(&b, magic, &es[i]);
	cpio_trailer(&b, magic);
	return b;
}

static struct cb
gzip_of(const void *p, size_t n)
{
	struct cb out = {0};
	z_stream z = {0};

	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
			 Z_OK);
	out.cap = deflateBound(&z, n) + 64;
	out.p = malloc(out.cap);
	z.next_in = (unsigned char *)p;
	z.avail_in = (uInt)n;
	z.next_out = out.p;
	z.avail_out = (uInt)out.cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	out.n = out.cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* What mkimage -A ppc -O linux -T <type> -C <comp> -n <name> makes. */
static struct cb
uimage_of(const void *p, size_t n, uint8_t type, uint8_t comp, const char *name)
{
	struct cb b = {0};
	unsigned char h[64] = {0};

	put_be32(h, UIMAGE_MAGIC);
	put_be32(h + 8, 1262304000);
	put_be32(h + 12, (uint32_t)n);
	put_be32(h + 16, 0x11000000);
	put_be32(h + 20, 0x11000000);
	put_be32(h + 24, (uint32_t)crc32(0, p, (uInt)n));
	h[28] = 5; /* Linux */
	h[29] = 7; /* PowerPC */
	h[30] = type;
	h[31] = comp;
	memcpy(h + 32, name, strlen(name) < 32 ? strlen(name) : 32);
	put_be32(h + 4, (uint32_t)crc32(0, h, 64));
	cb_put(&b, h, 64);
	cb_put(&b, p, n);
	return b;
}

/* ---- scratch directories ---- */

static char *
scratch(void)
{
	char *t = strdup("/tmp/kh-test-image-XXXXXX");
	assert_non_null(mkdtemp(t));
	return t;
}

static void
scratch_done(char *t)
{
	assert_int_equal(ramdisk_remove(AT_FDCWD, t), 0);
	free(t);
}

static char *
path2(const char *a, const char *b)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", a, b) > 0);
	return p;
}

static int
entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static char *
slurp(const char *dir, const char *name)
{
	static char buf[4096];
	char *p = path2(dir, name);
	int fd = open(p, O_RDONLY | O_NOFOLLOW);
	ssize_t n;

	free(p);
	if (fd == -1)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static struct stat
lst(const char *dir, const char *name)
{
	struct stat st;
	char *p = path2(dir, name);
	int r = lstat(p, &st);

	if (r == -1)
		print_error("lstat %s: %s\n", p, strerror(errno));
	assert_int_equal(r, 0);
	free(p);
	return st;
}

static int
exists(const char *dir, const char *name)
{
	struct stat st;
	char *p = path2(dir, name);
	int r = lstat(p, &st) == 0;
	free(p);
	return r;
}

/* ---- the sample appliance ---- */

static const struct ent sample[] = {
    {.name = ".", .mode = 040755},
    {.name = "etc", .mode = 040755, .mtime = 1000000},
    {.name = "etc/hosts", .mode = 0100644, .data = "127.0.0.1 localhost\n", .mtime = 1234567},
    {.name = "bin", .mode = 040755},
    {.name = "bin/busybox", .mode = 0104755, .data = "#!busybox\n"},
    {.name = "bin/sh", .mode = 0120777, .data = "busybox"},
    {.name = "usr/lib/deep/file", .mode = 0100600, .data = "deep\n"},
    {.name = "h1", .mode = 0100644, .data = "", .ino = 77, .nlink = 2},
    {.name = "h2", .mode = 0100644, .data = "linked data\n", .ino = 77, .nlink = 2},
    {.name = "ro", .mode = 040555},
    {.name = "ro/f", .mode = 0100444, .data = "ro\n"},
    {.name = "home/user", .mode = 040700, .uid = 1000, .gid = 100},
    {.name = "home/user/.profile", .mode = 0100640, .data = "PS1=$\n", .uid = 1000, .gid = 100},
    {.name = "dev", .mode = 040755},
    {.name = "dev/null", .mode = 020666, .rmaj = 1, .rmin = 3},
    {.name = "run/fifo", .mode = 010644},
    {.name = "./tmp/", .mode = 041777},
};
#define NSAMPLE (sizeof(sample) / sizeof(sample[0]))

static void
check_sample(const char *root)
{
	struct stat st, st2;

	assert_string_equal(slurp(root, "etc/hosts"), "127.0.0.1 localhost\n");
	st = lst(root, "etc/hosts");
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_mtime, 1234567);
	/* Directory mtimes survive the entries made inside them. */
	assert_int_equal(lst(root, "etc").st_mtime, 1000000);
	assert_int_equal(lst(root, "bin/busybox").st_mode & 07777, 04755);
	st = lst(root, "bin/sh");
	assert_true(S_ISLNK(st.st_mode));
	{
		char t[64];
		char *p = path2(root, "bin/sh");
		ssize_t n = readlink(p, t, sizeof(t));
		free(p);
		assert_int_equal(n, 7);
		assert_memory_equal(t, "busybox", 7);
	}
	assert_string_equal(slurp(root, "usr/lib/deep/file"), "deep\n");
	assert_int_equal(lst(root, "usr").st_mode & 07777, 0755);
	assert_int_equal(lst(root, "usr/lib/deep/file").st_mode & 07777, 0600);
	st = lst(root, "h1");
	st2 = lst(root, "h2");
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(st.st_nlink, 2);
	assert_string_equal(slurp(root, "h1"), "linked data\n");
	/* Read-only directories get their mode after their entries exist. */
	assert_int_equal(lst(root, "ro").st_mode & 07777, 0555);
	assert_string_equal(slurp(root, "ro/f"), "ro\n");
	assert_int_equal(lst(root, "tmp").st_mode & 07777, 01777);
	assert_true(S_ISFIFO(lst(root, "run/fifo").st_mode));
	st = lst(root, ".");
	assert_int_equal(st.st_mode & 07777, 0755);
	if (geteuid() == 0) {
		st = lst(root, "home/user/.profile");
		assert_int_equal(st.st_uid, 1000);
		assert_int_equal(st.st_gid, 100);
		assert_int_equal(lst(root, "home/user").st_uid, 1000);
		st = lst(root, "dev/null");
		if (S_ISCHR(st.st_mode)) { /* absent where mknod is not allowed */
			assert_int_equal(major(st.st_rdev), 1);
			assert_int_equal(minor(st.st_rdev), 3);
		}
	}
}

/* ---- uImage ---- */

/* uimage-1.1: a header mkimage would write parses field by field. */
static void
uimage_1_1_parse(void **state)
{
	struct cb img = uimage_of("hello", 5, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_GZIP, "apache");
	struct uimage_hdr h;
	char err[128];

	assert_int_equal(uimage_verify(img.p, img.n, &h, err, sizeof(err)), 0);
	assert_int_equal(h.size, 5);
	assert_int_equal(h.load, 0x11000000);
	assert_int_equal(h.ep, 0x11000000);
	assert_int_equal(h.time, 1262304000);
	assert_int_equal(h.dcrc, crc32(0, (const unsigned char *)"hello", 5));
	assert_string_equal(h.name, "apache");
	assert_string_equal(uimage_type_name(h.type), "RAMDisk Image");
	assert_string_equal(uimage_comp_name(h.comp), "gzip compressed");
	assert_string_equal(uimage_os_name(h.os), "Linux");
	assert_string_equal(uimage_arch_name(h.arch), "PowerPC");
	free(img.p);
}

/* uimage-1.2: a 32-character name fills the field with no terminator. */
static void
uimage_1_2_long_name(void **state)
{
	const char *n32 = "0123456789abcdef0123456789ABCDEF";
	struct cb img = uimage_of("x", 1, UIMAGE_TYPE_KERNEL, 0, n32);
	struct uimage_hdr h;
	char err[128];

	assert_int_equal(uimage_parse(img.p, img.n, &h, err, sizeof(err)), 0);
	assert_string_equal(h.name, n32);
	free(img.p);
}

/* uimage-2.1: U-Boot's messages for a bad magic, header or data CRC. */
static void
uimage_2_1_errors(void **state)
{
	struct cb img = uimage_of("hello world", 11, UIMAGE_TYPE_KERNEL, 0, "k");
	struct uimage_hdr h;
	char err[128];

	img.p[0] ^= 1;
	assert_int_equal(uimage_parse(img.p, img.n, &h, err, sizeof(err)), -1);
	assert_string_equal(err, "Bad Magic Number");
	img.p[0] ^= 1;
	img.p[40] ^= 1; /* name byte */
	assert_int_equal(uimage_parse(img.p, img.n, &h, err, sizeof(err)), -1);
	assert_string_equal(err, "Bad Header Checksum");
	img.p[40] ^= 1;
	img.p[64 + 3] ^= 1;
	assert_int_equal(uimage_parse(img.p, img.n, &h, err, sizeof(err)), 0);
	assert_int_equal(uimage_verify(img.p, img.n, &h, err, sizeof(err)), -1);
	assert_string_equal(err, "Bad Data CRC");
	img.p[64 + 3] ^= 1;
	assert_int_equal(uimage_verify(img.p, img.n - 1, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(uimage_parse(img.p, 63, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too short"));
	free(img.p);
}

/* uimage-3.1: names for values U-Boot does not know. */
static void
uimage_3_1_names(void **state)
{
	assert_string_equal(uimage_type_name(UIMAGE_TYPE_KERNEL), "Kernel Image");
	assert_string_equal(uimage_type_name(UIMAGE_TYPE_SCRIPT), "Script");
	assert_string_equal(uimage_type_name(200), "Unknown Image");
	assert_string_equal(uimage_comp_name(UIMAGE_COMP_NONE), "uncompressed");
	assert_string_equal(uimage_comp_name(99), "Unknown Compression");
	assert_string_equal(uimage_arch_name(24), "AMD x86_64");
	assert_string_equal(uimage_arch_name(3), "Intel x86");
	assert_string_equal(uimage_arch_name(250), "Unknown Architecture");
	assert_string_equal(uimage_os_name(99), "Unknown OS");
}

/* ---- classification ---- */

static enum img_kind
classify(const void *p, size_t n, int want_rc, char *err, size_t *off, size_t *len)
{
	enum img_kind k = (enum img_kind) - 1;
	size_t o, l;

	assert_int_equal(image_classify(p, n, &k, &o, &l, err, 256), want_rc);
	if (off)
		*off = o;
	if (len)
		*len = l;
	return k;
}

/* classify-1.1: nothing, a kernel, a ramdisk in every wrapping, other data. */
static void
classify_1_1_kinds(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	struct cb gz = gzip_of(cp.p, cp.n);
	struct cb ur = uimage_of(gz.p, gz.n, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_NONE, "rd");
	struct cb uk =
	    uimage_of("kernelbits", 10, UIMAGE_TYPE_KERNEL, UIMAGE_COMP_GZIP, "Linux-2.6");
	struct cb us = uimage_of("echo hi", 7, UIMAGE_TYPE_SCRIPT, 0, "boot script");
	struct cb ux = uimage_of("not a cpio", 10, UIMAGE_TYPE_RAMDISK, 0, "ext2");
	struct cb gt = gzip_of("plain text, not cpio", 20);
	unsigned char zero[4096] = {0}, bz[0x300] = {0}, elf[64] = {0x7f, 'E', 'L', 'F'};
	char err[256];
	size_t off, len;

	assert_int_equal(classify(zero, 0, 0, err, NULL, NULL), IMG_EMPTY);
	assert_int_equal(classify(zero, sizeof(zero), 0, err, NULL, NULL), IMG_EMPTY);
	assert_int_equal(classify(uk.p, uk.n, 0, err, &off, &len), IMG_KERNEL);
	assert_string_equal(err,
			    "uImage \"Linux-2.6\": PowerPC Linux Kernel Image (gzip compressed)");
	assert_int_equal(off, 64);
	assert_int_equal(len, 10);
	assert_int_equal(classify(cp.p, cp.n, 0, err, &off, &len), IMG_RAMDISK);
	assert_int_equal(off, 0);
	assert_int_equal(len, cp.n);
	assert_int_equal(classify(gz.p, gz.n, 0, err, NULL, NULL), IMG_RAMDISK);
	/* Memory after the image (the rest of the node's RAM) is ignored. */
	cb_put(&ur, zero, 1000);
	assert_int_equal(classify(ur.p, ur.n, 0, err, &off, &len), IMG_RAMDISK);
	assert_int_equal(off, 64);
	assert_int_equal(len, gz.n);
	assert_int_equal(classify(us.p, us.n, 0, err, NULL, NULL), IMG_OTHER);
	assert_non_null(strstr(err, "Script"));
	assert_int_equal(classify(ux.p, ux.n, 0, err, NULL, NULL), IMG_OTHER);
	assert_int_equal(classify(gt.p, gt.n, 0, err, NULL, NULL), IMG_OTHER);
	assert_int_equal(classify("hello", 5, 0, err, NULL, NULL), IMG_OTHER);
	assert_int_equal(classify("070707000000", 12, 0, err, NULL, NULL), IMG_OTHER);
	assert_non_null(strstr(err, "newc"));
	assert_int_equal(classify(elf, sizeof(elf), 0, err, NULL, NULL), IMG_KERNEL);
	memcpy(bz + 0x202, "HdrS", 4);
	bz[0] = 0xeb;
	assert_int_equal(classify(bz, sizeof(bz), 0, err, NULL, NULL), IMG_KERNEL);
	assert_non_null(strstr(err, "bzImage"));
	free(cp.p);
	free(gz.p);
	free(ur.p);
	free(uk.p);
	free(us.p);
	free(ux.p);
	free(gt.p);
}

/* classify-1.2: broken images of a known format are errors, not "other". */
static void
classify_1_2_broken(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	struct cb gz = gzip_of(cp.p, cp.n);
	struct cb ur = uimage_of(gz.p, gz.n, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_GZIP, "rd");
	struct cb ub = uimage_of(gz.p, gz.n, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_BZIP2, "rd");
	char err[256];

	ur.p[ur.n - 10] ^= 0xff;
	classify(ur.p, ur.n, -1, err, NULL, NULL);
	assert_string_equal(err, "uImage: Bad Data CRC");
	classify(ur.p, ur.n - 20, -1, err, NULL, NULL);
	assert_non_null(strstr(err, "truncated"));
	classify(ub.p, ub.n, -1, err, NULL, NULL);
	assert_non_null(strstr(err, "bzip2 compressed"));
	gz.p[10] ^= 0xff; /* first deflate bytes */
	gz.p[11] ^= 0xff;
	classify(gz.p, gz.n, -1, err, NULL, NULL);
	assert_non_null(strstr(err, "gzip"));
	free(cp.p);
	free(gz.p);
	free(ur.p);
	free(ub.p);
}

/* ---- unpacking ---- */

static void
expect_unpacked(const void *p, size_t n, const char *what)
{
	char *t = scratch(), *root = path2(t, "root"), err[256] = "";

	if (ramdisk_unpack(p, n, root, err, sizeof(err)) != 0)
		fail_msg("%s: %s", what, err);
	check_sample(root);
	assert_int_equal(entries_in(t), 1); /* no DIR.tmp-* left */
	free(root);
	scratch_done(t);
}

/* unpack-1.1: the sample appliance in every wrapping unpacks the same. */
static void
unpack_1_1_formats(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	struct cb crc = cpio_of(sample, NSAMPLE, "070702");
	struct cb gz = gzip_of(cp.p, cp.n);
	struct cb u1 = uimage_of(gz.p, gz.n, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_GZIP, "apache");
	struct cb u2 = uimage_of(cp.p, cp.n, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_NONE, "plain");
	struct cb two = {0}, g1 = gzip_of(cp.p, cp.n / 2),
		  g2 = gzip_of(cp.p + cp.n / 2, cp.n - cp.n / 2);

	cb_put(&two, g1.p, g1.n);
	cb_put(&two, g2.p, g2.n);
	expect_unpacked(cp.p, cp.n, "newc");
	expect_unpacked(crc.p, crc.n, "newc crc");
	expect_unpacked(gz.p, gz.n, "gzip");
	expect_unpacked(u1.p, u1.n, "uImage gzip");
	expect_unpacked(u2.p, u2.n, "uImage plain");
	expect_unpacked(two.p, two.n, "two gzip members");
	free(cp.p);
	free(crc.p);
	free(gz.p);
	free(u1.p);
	free(u2.p);
	free(two.p);
	free(g1.p);
	free(g2.p);
}

/* unpack-1.2: an archive made by the real cpio tool from a real tree. */
static void
unpack_1_2_real_cpio(void **state)
{
	char *t = scratch(), *src = path2(t, "src"), *out = path2(t, "a.cpio");
	char *root = path2(t, "root"), *cmd, err[256];
	struct stat a, b;
	struct cb img = {0};
	unsigned char buf[65536];
	ssize_t n;
	int fd;

	if (system("command -v cpio >/dev/null 2>&1") != 0) {
		scratch_done(t);
		skip();
	}
	assert_true(asprintf(&cmd,
			     "set -e; mkdir -p %s/sbin %s/var/empty; cd %s; "
			     "printf 'x%%.0s' $(seq 1 70000) > big; echo one > one; ln one two; "
			     "ln one sbin/three; ln -s ../one sbin/link; chmod 4711 sbin/three; "
			     "touch -d @86400 var; find . | cpio -o -H newc --quiet > %s",
			     src, src, src, out) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	fd = open(out, O_RDONLY);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		cb_put(&img, buf, (size_t)n);
	close(fd);
	if (ramdisk_unpack(img.p, img.n, root, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	a = lst(root, "one");
	b = lst(root, "sbin/three");
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_ino, lst(root, "two").st_ino);
	assert_int_equal(a.st_nlink, 3);
	assert_int_equal(b.st_mode & 07777, 04711);
	assert_string_equal(slurp(root, "two"), "one\n");
	assert_int_equal(lst(root, "big").st_size, 70000);
	assert_true(S_ISLNK(lst(root, "sbin/link").st_mode));
	assert_true(S_ISDIR(lst(root, "var/empty").st_mode));
	assert_int_equal(lst(root, "var").st_mtime, 86400);
	free(src);
	free(out);
	free(root);
	free(img.p);
	scratch_done(t);
}

/* The archive must be refused with an error containing want, leave nothing
 * at root nor beside it, and touch nothing outside. */
static void
expect_refused(const void *p, size_t n, const char *want)
{
	char *t = scratch(), *root = path2(t, "root"), *victim = path2(t, "victim"), err[256];

	assert_int_equal(mkdir(victim, 0755), 0);
	assert_int_equal(ramdisk_unpack(p, n, root, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, want);
	assert_null(strchr(err, '\n'));
	assert_false(exists(t, "root"));
	assert_int_equal(entries_in(t), 1); /* only victim */
	assert_int_equal(entries_in(victim), 0);
	free(root);
	free(victim);
	scratch_done(t);
}

/* hostile-1.1: ".." anywhere in a name is refused. */
static void
hostile_1_1_dotdot(void **state)
{
	static const struct ent a[] = {{.name = "ok", .mode = 0100644, .data = "fine"},
				       {.name = "../victim/evil", .mode = 0100644, .data = "x"}};
	static const struct ent b[] = {
	    {.name = "a/b/../../../victim/evil", .mode = 0100644, .data = "x"}};
	static const struct ent c[] = {{.name = "..", .mode = 040755}};
	struct cb x = cpio_of(a, 2, "070701"), y = cpio_of(b, 1, "070701"),
		  z = cpio_of(c, 1, "070701");

	expect_refused(x.p, x.n, "\"..\"");
	expect_refused(y.p, y.n, "\"..\"");
	expect_refused(z.p, z.n, "\"..\"");
	free(x.p);
	free(y.p);
	free(z.p);
}

/* hostile-1.2: absolute names land inside the new root, as the kernel
 * unpacks them into rootfs. */
static void
hostile_1_2_absolute(void **state)
{
	static const struct ent a[] = {
	    {.name = "/tmp/kh-abs-test", .mode = 0100644, .data = "inside\n"},
	    {.name = "//etc///x", .mode = 0100644, .data = "x\n"}};
	struct cb x = cpio_of(a, 2, "070701");
	char *t = scratch(), *root = path2(t, "root"), err[256];
	struct stat st;

	assert_int_equal(ramdisk_unpack(x.p, x.n, root, err, sizeof(err)), 0);
	assert_string_equal(slurp(root, "tmp/kh-abs-test"), "inside\n");
	assert_string_equal(slurp(root, "etc/x"), "x\n");
	assert_int_equal(lstat("/tmp/kh-abs-test", &st), -1);
	free(root);
	free(x.p);
	scratch_done(t);
}

/* hostile-1.3: a symlink, then an entry through it: refused, never followed. */
static void
hostile_1_3_symlink_dir(void **state)
{
	char *t = scratch(), *victim = path2(t, "victim");
	struct ent a[] = {{.name = "lnk", .mode = 0120777, .data = victim},
			  {.name = "lnk/pwned", .mode = 0100644, .data = "x"}};
	struct ent b[] = {{.name = "d", .mode = 040755},
			  {.name = "d/lnk", .mode = 0120777, .data = "/"},
			  {.name = "d/lnk/etc", .mode = 040755}};
	struct ent c[] = {{.name = "lnk", .mode = 0120777, .data = victim},
			  {.name = "lnk/sub/deeper", .mode = 040755}};
	struct cb x = cpio_of(a, 2, "070701"), y = cpio_of(b, 3, "070701"),
		  z = cpio_of(c, 2, "070701");

	expect_refused(x.p, x.n, "symlink");
	expect_refused(y.p, y.n, "symlink");
	expect_refused(z.p, z.n, "symlink");
	free(x.p);
	free(y.p);
	free(z.p);
	free(victim);
	scratch_done(t);
}

/* hostile-1.4: a file named like an earlier symlink replaces the symlink;
 * the symlink's target is untouched. */
static void
hostile_1_4_symlink_replaced(void **state)
{
	char *t = scratch(), *root = path2(t, "root"), *victim = path2(t, "victim"), err[256];
	struct ent a[] = {
	    {.name = "lnk", .mode = 0120777, .data = victim},
	    {.name = "lnk", .mode = 0100644, .data = "replaced\n"},
	    {.name = "l2", .mode = 0120777, .data = victim},
	    {.name = "l2", .mode = 040700},
	    {.name = "l3", .mode = 0120777, .data = victim},
	    {.name = "h", .mode = 0100644, .data = "", .ino = 5, .nlink = 2},
	    {.name = "l3", .mode = 0100600, .data = "linked\n", .ino = 5, .nlink = 2}};
	struct cb x = cpio_of(a, 7, "070701");
	int fd = open(victim, O_CREAT | O_WRONLY, 0644);

	assert_int_equal(write(fd, "secret\n", 7), 7);
	close(fd);
	assert_int_equal(ramdisk_unpack(x.p, x.n, root, err, sizeof(err)), 0);
	assert_string_equal(slurp(root, "lnk"), "replaced\n");
	assert_true(S_ISDIR(lst(root, "l2").st_mode));
	assert_string_equal(slurp(root, "l3"), "linked\n");
	assert_string_equal(slurp(root, "h"), "linked\n");
	assert_string_equal(slurp(t, "victim"), "secret\n");
	free(root);
	free(victim);
	free(x.p);
	scratch_done(t);
}

/* hostile-1.5: a later name of a multiply linked file must not reach an
 * earlier name that an entry in between replaced by a fifo or a device: the
 * link would open it and write the file's data into it (a fifo hung the
 * unpack; as root, a device node such as a host disk took the bytes).
 * Found while writing fuzz/ramdisk.  The archive is refused, nothing is left. */
static void
hostile_1_5_link_to_node(void **state)
{
	char *t = scratch(), *root = path2(t, "root"), err[256];
	struct ent fifo[] = {
	    {.name = "a", .mode = 0100644, .data = "", .ino = 9, .nlink = 2},
	    {.name = "a", .mode = 010644},
	    {.name = "b", .mode = 0100644, .data = "payload\n", .ino = 9, .nlink = 2}};
	struct ent dev[] = {
	    {.name = "a", .mode = 0100644, .data = "", .ino = 9, .nlink = 2},
	    {.name = "a", .mode = 020666, .rmaj = 1, .rmin = 3}, /* /dev/null */
	    {.name = "b", .mode = 0100644, .data = "payload\n", .ino = 9, .nlink = 2}};
	struct cb x = cpio_of(fifo, 3, "070701"), y = cpio_of(dev, 3, "070701");

	alarm(20); /* a hang is a failure, not a stuck test run */
	assert_int_equal(ramdisk_unpack(x.p, x.n, root, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_false(exists(t, "root"));
	if (geteuid() == 0) { /* device nodes are made only by root */
		assert_int_equal(ramdisk_unpack(y.p, y.n, root, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "not a regular file"));
		assert_false(exists(t, "root"));
	}
	alarm(0);
	free(root);
	free(x.p);
	free(y.p);
	scratch_done(t);
}

/* hostile-2.1: a cut anywhere gives one "truncated" line and no tree. */
static void
hostile_2_1_truncated(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	struct cb gz = gzip_of(cp.p, cp.n);
	size_t cuts[] = {6, 100, 111, 200, 517, cp.n / 2, cp.n - 120, cp.n - 1};

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		expect_refused(cp.p, cuts[i], "truncated cpio at offset");
	expect_refused(gz.p, gz.n / 2, "truncated gzip");
	expect_refused(gz.p, gz.n - 4, "truncated gzip"); /* length trailer cut */
	/* A whole archive missing its trailer is truncated too. */
	{
		struct cb nt = {0};
		for (size_t i = 0; i < 3; i++)
			cpio_entry(&nt, "070701", &sample[i]);
		char want[64];
		snprintf(want, sizeof(want), "truncated cpio at offset %zu", nt.n);
		expect_refused(nt.p, nt.n, want);
		free(nt.p);
	}
	free(cp.p);
	free(gz.p);
}

/* hostile-2.2: bad magic, bad hex, bad name sizes, name without NUL. */
static void
hostile_2_2_corrupt_headers(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	size_t second = 112; /* "." entry: 110 + 2, already aligned */
	char want[64];

	/* Find the second header honestly rather than trusting arithmetic. */
	assert_memory_equal(cp.p + second, "070701", 6);
	cp.p[second + 5] = '7';
	snprintf(want, sizeof(want), "bad cpio magic at offset %zu", second);
	expect_refused(cp.p, cp.n, want);
	cp.p[second + 5] = '1';
	cp.p[second + 20] = 'g';
	snprintf(want, sizeof(want), "corrupt cpio header at offset %zu", second);
	expect_refused(cp.p, cp.n, want);
	cp.p[second + 20] = '0';
	free(cp.p);
	{
		/* namesize 0, namesize larger than allowed, name without NUL. */
		struct ent e = {.name = "abc", .mode = 0100644, .data = "x"};
		struct cb b = {0};
		cpio_entry(&b, "070701", &e);
		memcpy(b.p + 94, "00000000", 8);
		expect_refused(b.p, b.n, "bad name size");
		memcpy(b.p + 94, "00001001", 8);
		expect_refused(b.p, b.n, "bad name size");
		memcpy(b.p + 94, "00000003", 8); /* "ab" + 'c' where the NUL should be */
		expect_refused(b.p, b.n, "bad entry name");
		free(b.p);
	}
	{
		struct ent e[] = {{.name = "f", .mode = 0100644, .data = "abc"}};
		struct cb b = cpio_of(e, 1, "070702");
		b.p[110 + 2 + 1] ^= 1; /* data byte: the sum no longer matches */
		expect_refused(b.p, b.n, "checksum");
		free(b.p);
	}
	{
		struct ent e[] = {{.name = "l", .mode = 0120777, .data = ""}};
		struct cb b = cpio_of(e, 1, "070701");
		expect_refused(b.p, b.n, "symlink");
		free(b.p);
	}
	{
		struct ent e[] = {{.name = "x", .mode = 0170644, .data = "?"}};
		struct cb b = cpio_of(e, 1, "070701");
		expect_refused(b.p, b.n, "unknown file type");
		free(b.p);
	}
	{
		struct ent e[] = {{.name = "d", .mode = 040755},
				  {.name = "d/f", .mode = 0100644, .data = "x"},
				  {.name = "d", .mode = 0100644, .data = "y"}};
		struct cb b = cpio_of(e, 3, "070701");
		expect_refused(b.p, b.n, "non-empty directory");
		free(b.p);
	}
}

/* hostile-2.3: corrupt gzip, wrong uImage CRC, not a ramdisk at all. */
static void
hostile_2_3_bad_wrapping(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	struct cb gz = gzip_of(cp.p, cp.n);
	struct cb u = uimage_of(gz.p, gz.n, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_GZIP, "rd");
	struct cb k = uimage_of(gz.p, gz.n, UIMAGE_TYPE_KERNEL, UIMAGE_COMP_GZIP, "vmlinux");
	unsigned char zero[512] = {0};

	u.p[64 + gz.n / 2] ^= 0x55;
	expect_refused(u.p, u.n, "Bad Data CRC");
	expect_refused(k.p, k.n, "kernel image");
	expect_refused(zero, sizeof(zero), "nothing loaded");
	expect_refused("garbage!", 8, "not a ramdisk");
	/* Damage in the middle of the deflate data: either inflate or gzip's
	 * own CRC (checked after the trailer) catches it. */
	gz.p[gz.n / 2] ^= 0x55;
	expect_refused(gz.p, gz.n, "corrupt gzip data");
	gz.p[gz.n / 2] ^= 0x55;
	gz.p[gz.n - 6] ^= 0x01; /* the CRC itself */
	expect_refused(gz.p, gz.n, "corrupt gzip data");
	free(cp.p);
	free(gz.p);
	free(u.p);
	free(k.p);
}

/* hostile-2.4: a gzip bomb stops at the cap on unpacked bytes. */
static void
hostile_2_4_bomb(void **state)
{
	size_t big = 24u << 20;
	char *zeros = calloc(1, big + 1);
	struct ent e[] = {{.name = "a", .mode = 0100644, .data = NULL},
			  {.name = "b", .mode = 0100644, .data = NULL}};
	struct cb cp = {0}, gz;
	char *t = scratch(), *root = path2(t, "root"), err[256];

	memset(zeros, 'z', big);
	e[0].data = zeros;
	e[1].data = zeros;
	for (int i = 0; i < 2; i++)
		cpio_entry(&cp, "070701", &e[i]);
	cpio_trailer(&cp, "070701");
	gz = gzip_of(cp.p, cp.n);
	assert_true(gz.n < 1u << 20);
	/* The first file fits, the second passes the cap. */
	assert_int_equal(ramdisk_unpack_limit(gz.p, gz.n, root, 40u << 20, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 41943040 bytes"));
	assert_int_equal(entries_in(t), 0);
	free(zeros);
	free(cp.p);
	free(gz.p);
	free(root);
	scratch_done(t);
}

/* hostile-2.5: the target must not exist; an existing one is left alone. */
static void
hostile_2_5_exists(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	char *t = scratch(), *root = path2(t, "root"), err[256];

	assert_int_equal(mkdir(root, 0700), 0);
	assert_int_equal(ramdisk_unpack(cp.p, cp.n, root, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exists"));
	assert_int_equal(entries_in(root), 0);
	assert_int_equal(entries_in(t), 1);
	free(root);
	free(cp.p);
	scratch_done(t);
}

/* remove-1.1: removal handles unwritable and deep directories and never
 * follows a symlink out of the tree. */
static void
remove_1_1_tree(void **state)
{
	char *t = scratch(), *root = path2(t, "root"), *victim = path2(t, "victim"), *cmd;
	char *deep = malloc(3000);
	struct ent e[] = {{.name = "ro", .mode = 040555},
			  {.name = "ro/x", .mode = 0100444, .data = "x"},
			  {.name = "none", .mode = 040000},
			  {.name = "none/y", .mode = 0100000, .data = "y"},
			  {.name = "out", .mode = 0120777, .data = victim},
			  {.name = NULL, .mode = 040755}};
	struct cb cp = {0};
	char err[256];

	deep[0] = '\0';
	for (int i = 0; i < 256; i++) /* the most allowed */
		strcat(deep, i ? "/d" : "d");
	e[5].name = deep;
	for (int i = 0; i < 6; i++)
		cpio_entry(&cp, "070701", &e[i]);
	cpio_trailer(&cp, "070701");
	assert_int_equal(mkdir(victim, 0755), 0);
	assert_true(asprintf(&cmd, "touch %s/keep", victim) > 0);
	assert_int_equal(system(cmd), 0);
	if (ramdisk_unpack(cp.p, cp.n, root, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(ramdisk_remove(AT_FDCWD, root), 0);
	assert_false(exists(t, "root"));
	assert_true(exists(t, "victim/keep"));
	assert_int_equal(ramdisk_remove(AT_FDCWD, root), 0); /* gone already: fine */
	/* One level more than allowed is refused. */
	{
		struct cb d2 = {0};
		struct ent de = {.name = deep, .mode = 0100644, .data = "x"};
		strcat(deep, "/d");
		cpio_entry(&d2, "070701", &de);
		cpio_trailer(&d2, "070701");
		expect_refused(d2.p, d2.n, "too deep");
		free(d2.p);
	}
	free(cmd);
	free(deep);
	free(cp.p);
	free(root);
	free(victim);
	scratch_done(t);
}

/* ---- cache ---- */

static void
hash_of(const void *p, size_t n, unsigned char h[32])
{
	crypto_generichash(h, 32, p, n, NULL, 0);
}

/* cache-1.1: one unpack per content hash; later calls do not read the data;
 * gc removes only trees nobody holds. */
static void
cache_1_1_dedup(void **state)
{
	static const struct ent other[] = {{.name = "only", .mode = 0100644, .data = "other\n"}};
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	struct cb gz = gzip_of(cp.p, cp.n);
	struct cb img = uimage_of(gz.p, gz.n, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_GZIP, "apache");
	struct cb img2 = cpio_of(other, 1, "070701");
	char *t = scratch(), *dir = path2(t, "images"), p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX];
	char err[256];
	unsigned char h[32], h2[32];
	struct imgcache *c;
	struct stat a, b;

	assert_int_equal(sodium_init() >= 0, 1);
	hash_of(img.p, img.n, h);
	hash_of(img2.p, img2.n, h2);
	c = imgcache_new(dir, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(lst(dir, ".").st_mode & 0777, 0700);
	assert_int_equal(imgcache_rootfs(c, h, img.p, img.n, p1, sizeof(p1), err, sizeof(err)), 0);
	check_sample(p1);
	assert_int_equal(stat(p1, &a), 0);
	/* A hit needs no bytes at all: it cannot be unpacking again. */
	assert_int_equal(imgcache_rootfs(c, h, NULL, 0, p2, sizeof(p2), err, sizeof(err)), 0);
	assert_string_equal(p1, p2);
	assert_int_equal(stat(p2, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(imgcache_refs(c, h), 2);
	assert_int_equal(imgcache_rootfs(c, h2, img2.p, img2.n, p3, sizeof(p3), err, sizeof(err)),
			 0);
	assert_string_not_equal(p1, p3);
	assert_string_equal(slurp(p3, "only"), "other\n");
	assert_int_equal(strlen(p1), strlen(dir) + 1 + 64);
	/* gc keeps held trees. */
	assert_int_equal(imgcache_gc(c, err, sizeof(err)), 0);
	imgcache_put(c, h);
	assert_int_equal(imgcache_gc(c, err, sizeof(err)), 0);
	imgcache_put(c, h);
	assert_int_equal(imgcache_refs(c, h), 0);
	assert_int_equal(imgcache_gc(c, err, sizeof(err)), 1);
	assert_int_equal(stat(p1, &a), -1);
	assert_int_equal(stat(p3, &a), 0);
	/* After gc the image unpacks again when asked. */
	assert_int_equal(imgcache_rootfs(c, h, img.p, img.n, p1, sizeof(p1), err, sizeof(err)), 0);
	check_sample(p1);
	imgcache_free(c);
	free(dir);
	free(cp.p);
	free(gz.p);
	free(img.p);
	free(img2.p);
	scratch_done(t);
}

/* cache-1.2: a restarted cache keeps whole trees, drops half-made ones,
 * makes its directory private again, and re-takes references by hash. */
static void
cache_1_2_restart(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	char *t = scratch(), *dir = path2(t, "images"), *stale, p[PATH_MAX], err[256];
	unsigned char h[32], none[32] = {0};
	struct imgcache *c;
	struct stat a, b;

	hash_of(cp.p, cp.n, h);
	c = imgcache_new(dir, err, sizeof(err));
	assert_int_equal(imgcache_rootfs(c, h, cp.p, cp.n, p, sizeof(p), err, sizeof(err)), 0);
	assert_int_equal(stat(p, &a), 0);
	imgcache_free(c);
	stale = path2(dir, "0123.tmp-abcdef");
	assert_int_equal(mkdir(stale, 0700), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	c = imgcache_new(dir, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(lst(dir, ".").st_mode & 0777, 0700);
	assert_false(exists(dir, "0123.tmp-abcdef"));
	assert_int_equal(imgcache_hold(c, none, p, sizeof(p)), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(imgcache_hold(c, h, p, sizeof(p)), 0);
	assert_int_equal(imgcache_gc(c, err, sizeof(err)), 0);
	assert_int_equal(imgcache_rootfs(c, h, NULL, 0, p, sizeof(p), err, sizeof(err)), 0);
	assert_int_equal(stat(p, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(imgcache_refs(c, h), 2);
	imgcache_free(c);
	free(stale);
	free(dir);
	free(cp.p);
	scratch_done(t);
}

/* cache-1.3: a bad image leaves nothing under its hash; wrong hashes are
 * refused; the size cap applies. */
static void
cache_1_3_errors(void **state)
{
	struct cb cp = cpio_of(sample, NSAMPLE, "070701");
	char *t = scratch(), *dir = path2(t, "images"), p[PATH_MAX], err[256];
	unsigned char h[32], hbad[32];
	struct imgcache *c = imgcache_new(dir, err, sizeof(err));
	size_t cut = cp.n - 200;

	hash_of(cp.p, cut, hbad);
	assert_int_equal(imgcache_rootfs(c, hbad, cp.p, cut, p, sizeof(p), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(entries_in(dir), 0);
	assert_int_equal(imgcache_refs(c, hbad), 0);
	hash_of(cp.p, cp.n, h);
	assert_int_equal(imgcache_rootfs(c, h, cp.p, cut, p, sizeof(p), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not match"));
	imgcache_set_limit(c, 10);
	assert_int_equal(imgcache_rootfs(c, h, cp.p, cp.n, p, sizeof(p), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 10 bytes"));
	assert_int_equal(entries_in(dir), 0);
	imgcache_set_limit(c, RAMDISK_MAX_BYTES);
	assert_int_equal(imgcache_rootfs(c, h, cp.p, cp.n, p, sizeof(p), err, sizeof(err)), 0);
	assert_int_equal(entries_in(dir), 1);
	imgcache_free(c);
	free(dir);
	free(cp.p);
	scratch_done(t);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(uimage_1_1_parse),
		cmocka_unit_test(uimage_1_2_long_name),
		cmocka_unit_test(uimage_2_1_errors),
		cmocka_unit_test(uimage_3_1_names),
		cmocka_unit_test(classify_1_1_kinds),
		cmocka_unit_test(classify_1_2_broken),
		cmocka_unit_test(unpack_1_1_formats),
		cmocka_unit_test(unpack_1_2_real_cpio),
		cmocka_unit_test(hostile_1_1_dotdot),
		cmocka_unit_test(hostile_1_2_absolute),
		cmocka_unit_test(hostile_1_3_symlink_dir),
		cmocka_unit_test(hostile_1_4_symlink_replaced),
		cmocka_unit_test(hostile_1_5_link_to_node),
		cmocka_unit_test(hostile_2_1_truncated),
		cmocka_unit_test(hostile_2_2_corrupt_headers),
		cmocka_unit_test(hostile_2_3_bad_wrapping),
		cmocka_unit_test(hostile_2_4_bomb),
		cmocka_unit_test(hostile_2_5_exists),
		cmocka_unit_test(remove_1_1_tree),
		cmocka_unit_test(cache_1_1_dedup),
		cmocka_unit_test(cache_1_2_restart),
		cmocka_unit_test(cache_1_3_errors),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
