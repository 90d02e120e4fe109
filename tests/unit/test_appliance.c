/* test_appliance: khappliance's library (src/appliance/): the ELF reader
 * against readelf, the closure of real programs against what the loader
 * really maps, the search order on synthetic ELF files in a scratch root,
 * ld.so.conf, recipes, reproducible archives that unpack to the same bytes,
 * uImage headers, and bad input that fails with one line and no file. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "appliance/appliance.h"
#include "appliance/elf.h"
#include "image/ramdisk.h"
#include "image/uimage.h"

/* ---- helpers ---- */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *
fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	assert_true(vasprintf(&s, f, ap) >= 0);
	va_end(ap);
	return s;
}

static char *
scratch(void)
{
	char t[] = "/tmp/kh-appl-test-XXXXXX";

	assert_non_null(mkdtemp(t));
	return strdup(t);
}

static void
rmtree(const char *d)
{
	char *c = fmt("rm -rf '%s'", d);
	assert_int_equal(system(c), 0);
	free(c);
}

static void
mkdirs(const char *path)
{
	char *c = fmt("mkdir -p '%s'", path);
	assert_int_equal(system(c), 0);
	free(c);
}

static void
write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
	chmod(path, mode);
}

static void
write_str(const char *path, const char *s, mode_t mode)
{
	write_file(path, s, strlen(s), mode);
}

static unsigned char *
slurp(const char *path, size_t *n)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	unsigned char *p;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*n = (size_t)st.st_size;
	return p;
}

/* Build an appliance of the given items over root and write it to out. */
static int
build(const char *root, const struct app_item *items, size_t n, const char *out, int uimage,
      uint32_t mtime, char *err, size_t errlen, struct app_stats *st)
{
	struct app_stats dummy;
	struct app *a = app_new(root, err, errlen);
	int rc = -1;

	if (a == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (app_add(a, &items[i], err, errlen) < 0)
			goto out;
	if (app_finish(a, err, errlen) < 0)
		goto out;
	rc = app_write(a, out, uimage, "test", mtime, st ? st : &dummy, err, errlen);
out:
	app_free(a);
	return rc;
}

/* The entries of an appliance, as "path mode target" lines. */
struct list {
	char **v;
	size_t n;
};

static void
collect(void *ctx, const char *path, uint32_t mode, const char *target)
{
	struct list *l = ctx;

	l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	assert_non_null(l->v);
	l->v[l->n++] = target ? fmt("%s %o %s", path, mode, target) : fmt("%s %o", path, mode);
}

static void
list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
list_has(const struct list *l, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < l->n; i++)
		if (strncmp(l->v[i], prefix, n) == 0 && (l->v[i][n] == ' ' || l->v[i][n] == '\0'))
			return 1;
	return 0;
}

static struct app *
tree2(const char *root, const struct app_item *items, size_t n, struct list *l, int finish)
{
	char err[512];
	struct app *a = app_new(root, err, sizeof(err));

	assert_non_null(a);
	for (size_t i = 0; i < n; i++)
		if (app_add(a, &items[i], err, sizeof(err)) < 0)
			fail_msg("app_add %s: %s", items[i].arg, err);
	if (finish)
		assert_int_equal(app_finish(a, err, sizeof(err)), 0);
	memset(l, 0, sizeof(*l));
	app_foreach(a, collect, l);
	return a;
}

static struct app *
tree(const char *root, const struct app_item *items, size_t n, struct list *l)
{
	return tree2(root, items, n, l, 1);
}

#define PROG(s)                                                                                    \
	{                                                                                          \
		APP_PROGRAM, (char *)(s), NULL, (char *)"test"                                     \
	}
#define FILEARG(s, b)                                                                              \
	{                                                                                          \
		APP_FILE, (char *)(s), (char *)(b), (char *)"test"                                 \
	}

/* ---- a synthetic ELF64 writer (little-endian): ehdr, PT_LOAD of the whole
 * file, PT_INTERP, PT_DYNAMIC, strings.  Enough for the loader's view. ---- */

struct melf {
	uint16_t type, machine;
	const char *interp;
	const char *needed[4];
	const char *runpath, *rpath;
};

static void
le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
mkelf(const char *path, const struct melf *m)
{
	unsigned char f[4096];
	size_t off = 64 + 3 * 56, stroff, dynoff, nd = 0, interp_off = 0;
	uint64_t base = 0x400000;
	char strtab[1024];
	size_t sl = 1;
	uint64_t dyn[16][2];

	memset(f, 0, sizeof(f));
	strtab[0] = '\0';
	if (m->interp) {
		interp_off = off;
		memcpy(f + off, m->interp, strlen(m->interp) + 1);
		off += strlen(m->interp) + 1;
	}
	for (int i = 0; i < 4 && m->needed[i]; i++) {
		dyn[nd][0] = DT_NEEDED;
		dyn[nd++][1] = sl;
		memcpy(strtab + sl, m->needed[i], strlen(m->needed[i]) + 1);
		sl += strlen(m->needed[i]) + 1;
	}
	if (m->runpath) {
		dyn[nd][0] = DT_RUNPATH;
		dyn[nd++][1] = sl;
		memcpy(strtab + sl, m->runpath, strlen(m->runpath) + 1);
		sl += strlen(m->runpath) + 1;
	}
	if (m->rpath) {
		dyn[nd][0] = DT_RPATH;
		dyn[nd++][1] = sl;
		memcpy(strtab + sl, m->rpath, strlen(m->rpath) + 1);
		sl += strlen(m->rpath) + 1;
	}
	stroff = off;
	memcpy(f + off, strtab, sl);
	off += sl;
	off = (off + 7) & ~(size_t)7;
	dynoff = off;
	dyn[nd][0] = DT_STRTAB;
	dyn[nd++][1] = base + stroff;
	dyn[nd][0] = DT_STRSZ;
	dyn[nd++][1] = sl;
	dyn[nd][0] = DT_NULL;
	dyn[nd++][1] = 0;
	for (size_t i = 0; i < nd; i++) {
		le(f + off, dyn[i][0], 8);
		le(f + off + 8, dyn[i][1], 8);
		off += 16;
	}
	memcpy(f, ELFMAG, SELFMAG);
	f[EI_CLASS] = ELFCLASS64;
	f[EI_DATA] = ELFDATA2LSB;
	f[EI_VERSION] = EV_CURRENT;
	le(f + 16, m->type, 2);
	le(f + 18, m->machine, 2);
	le(f + 20, EV_CURRENT, 4);
	le(f + 32, 64, 8); /* e_phoff */
	le(f + 52, 64, 2); /* e_ehsize */
	le(f + 54, 56, 2); /* e_phentsize */
	le(f + 56, 3, 2);  /* e_phnum */
	unsigned char *ph = f + 64;
	le(ph, PT_LOAD, 4);
	le(ph + 8, 0, 8);
	le(ph + 16, base, 8);
	le(ph + 32, off, 8);
	le(ph + 40, off, 8);
	ph += 56;
	le(ph, m->interp ? PT_INTERP : PT_NOTE, 4);
	le(ph + 8, interp_off, 8);
	le(ph + 16, base + interp_off, 8);
	le(ph + 32, m->interp ? strlen(m->interp) + 1 : 0, 8);
	ph += 56;
	le(ph, PT_DYNAMIC, 4);
	le(ph + 8, dynoff, 8);
	le(ph + 16, base + dynoff, 8);
	le(ph + 32, nd * 16, 8);
	write_file(path, f, off, 0755);
}

#define LIB(...) (&(struct melf){.type = ET_DYN, .machine = EM_X86_64, __VA_ARGS__})

/* ---- elf-1: the reader against readelf on real files ---- */

/* DT_NEEDED of path by readelf -d, one per line, in order. */
static char *
readelf_needed(const char *path)
{
	char *c =
	    fmt("readelf -d '%s' 2>/dev/null | sed -n 's/.*(NEEDED).*\\[\\(.*\\)\\]/\\1/p'", path);
	FILE *p = popen(c, "r");
	char buf[8192];
	size_t n;

	free(c);
	assert_non_null(p);
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	pclose(p);
	return strdup(buf);
}

static void
elf_1_1_real_files_match_readelf(void **state)
{
	const char *files[] = {"/usr/bin/ls", "/usr/bin/socat", "/usr/sbin/nginx",
			       "/lib/x86_64-linux-gnu/libssl.so.3",
			       "/lib/x86_64-linux-gnu/libc.so.6"};
	char err[256];
	int checked = 0;

	if (system("command -v readelf >/dev/null") != 0)
		skip();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct elf_info ei;
		if (access(files[i], R_OK) != 0)
			continue;
		assert_int_equal(elf_read(files[i], &ei, err, sizeof(err)), 1);
		char *want = readelf_needed(files[i]), got[8192] = "";
		for (size_t k = 0; k < ei.nneeded; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s\n",
				 ei.needed[k]);
		assert_string_equal(got, want);
		free(want);
		elf_free(&ei);
		checked++;
	}
	assert_true(checked >= 2);
}

static void
elf_1_2_interp_and_not_elf(void **state)
{
	struct elf_info ei;
	char err[256];

	assert_int_equal(elf_read("/usr/bin/ls", &ei, err, sizeof(err)), 1);
	assert_string_equal(ei.interp, "/lib64/ld-linux-x86-64.so.2");
	assert_int_equal(ei.class, ELFCLASS64);
	assert_int_equal(ei.machine, EM_X86_64);
	elf_free(&ei);
	/* busybox-static: no interpreter, no libraries */
	assert_int_equal(elf_read("/bin/busybox", &ei, err, sizeof(err)), 1);
	assert_null(ei.interp);
	assert_int_equal(ei.nneeded, 0);
	elf_free(&ei);
	/* a script and an empty file are not ELF: 0, not an error */
	assert_int_equal(elf_read("/etc/passwd", &ei, err, sizeof(err)), 0);
	assert_int_equal(elf_read("/dev/null", &ei, err, sizeof(err)), 0);
	assert_int_equal(elf_read("/nonexistent/x", &ei, err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/x: No such file or directory");
}

static void
elf_1_3_broken_files(void **state)
{
	char *d = scratch(), *p = fmt("%s/bad", d), err[256];
	struct elf_info ei;
	unsigned char f[4096];
	size_t n;

	/* the magic and nothing else */
	write_file(p, "\177ELF\2\1\1", 7, 0644);
	assert_int_equal(elf_read(p, &ei, err, sizeof(err)), 0); /* shorter than e_ident */
	write_file(p, "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\0\0", 18, 0644);
	assert_int_equal(elf_read(p, &ei, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "broken ELF file"));
	/* a good synthetic file, then truncated in the middle of its dynamic
	 * section, then with a string index beyond the table */
	mkelf(p, LIB(.needed = {"liba.so"}));
	assert_int_equal(elf_read(p, &ei, err, sizeof(err)), 1);
	assert_int_equal(ei.nneeded, 1);
	assert_string_equal(ei.needed[0], "liba.so");
	elf_free(&ei);
	unsigned char *b = slurp(p, &n);
	memcpy(f, b, n);
	free(b);
	write_file(p, f, n - 20, 0644);
	assert_int_equal(elf_read(p, &ei, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "broken ELF file"));
	/* DT_NEEDED's value is the first dynamic entry's second word */
	size_t dynoff = (size_t)(f[64 + 2 * 56 + 8] | f[64 + 2 * 56 + 9] << 8);
	le(f + dynoff + 8, 60000, 8);
	write_file(p, f, n, 0644);
	assert_int_equal(elf_read(p, &ei, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "outside the string table"));
	free(p);
	rmtree(d);
	free(d);
}

/* ---- closure-1: real programs against the loader ---- */

/* The files a running process has mapped (real paths), but not exe. */
static void
mapped(pid_t pid, const char *exe, struct list *l)
{
	char *path = fmt("/proc/%d/maps", (int)pid), line[4096];
	FILE *f = fopen(path, "r");

	free(path);
	assert_non_null(f);
	memset(l, 0, sizeof(*l));
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/'), rp[PATH_MAX];
		if (p == NULL)
			continue;
		p[strcspn(p, "\n")] = '\0';
		struct elf_info ei;
		char e[64];
		if (realpath(p, rp) == NULL || strcmp(rp, exe) == 0)
			continue;
		/* ELF objects only: locales and caches are mapped too */
		if (elf_read(rp, &ei, e, sizeof(e)) != 1)
			continue;
		elf_free(&ei);
		int dup = 0;
		for (size_t i = 0; i < l->n; i++)
			dup |= strcmp(l->v[i], rp) == 0;
		if (!dup) {
			l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
			l->v[l->n++] = strdup(rp);
		}
	}
	fclose(f);
}

static int
cmps(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
closure_check(const char *prog, char *const argv[])
{
	char exe[PATH_MAX], err[512];
	int in[2], out[2];
	pid_t pid;
	struct list maps, ents, libs = {0};

	if (realpath(prog, exe) == NULL)
		skip();
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	if ((pid = fork()) == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execv(prog, argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	/* once the line comes back, the loader has mapped everything */
	assert_int_equal(write(in[1], "x\n", 2), 2);
	char c;
	assert_int_equal(read(out[0], &c, 1), 1);
	mapped(pid, exe, &maps);
	kill(pid, SIGTERM);
	close(in[1]);
	close(out[0]);
	waitpid(pid, NULL, 0);

	struct app_item it = PROG(prog);
	struct app *a = tree2("/", &it, 1, &ents, 0); /* no /bin/sh for /init */
	/* every ELF file of the appliance but the program, by real path */
	for (size_t i = 0; i < ents.n; i++) {
		char p[PATH_MAX + 2], rp[PATH_MAX];
		struct elf_info ei;
		snprintf(p, sizeof(p), "/%.*s", (int)strcspn(ents.v[i], " "), ents.v[i]);
		struct stat st;
		if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || realpath(p, rp) == NULL ||
		    strcmp(rp, exe) == 0)
			continue;
		if (elf_read(rp, &ei, err, sizeof(err)) != 1)
			continue;
		elf_free(&ei);
		libs.v = realloc(libs.v, (libs.n + 1) * sizeof(*libs.v));
		libs.v[libs.n++] = strdup(rp);
	}
	qsort(maps.v, maps.n, sizeof(char *), cmps);
	qsort(libs.v, libs.n, sizeof(char *), cmps);
	char got[8192] = "", want[8192] = "";
	for (size_t i = 0; i < libs.n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s\n", libs.v[i]);
	for (size_t i = 0; i < maps.n; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s\n", maps.v[i]);
	assert_string_equal(got, want);
	assert_true(maps.n >= 2); /* libc and the loader at least */
	list_free(&maps);
	list_free(&libs);
	list_free(&ents);
	app_free(a);
}

static void
closure_1_1_cat_as_the_loader_maps_it(void **state)
{
	char *argv[] = {"cat", NULL};
	closure_check("/usr/bin/cat", argv);
}

static void
closure_1_2_socat_fourteen_libraries(void **state)
{
	char *argv[] = {"socat", "-u", "STDIN", "STDOUT", NULL};
	if (access("/usr/bin/socat", X_OK) != 0)
		skip();
	closure_check("/usr/bin/socat", argv);
}

static void
closure_1_3_symlinks_kept(void **state)
{
	struct list l;
	struct app_item it = PROG("ls");
	struct app *a = tree("/", &it, 1, &l);
	struct stat st;

	/* merged /usr: /bin is a symlink on the host, and so in the appliance */
	if (lstat("/bin", &st) == 0 && S_ISLNK(st.st_mode)) {
		char t[PATH_MAX];
		ssize_t n = readlink("/bin", t, sizeof(t) - 1);
		t[n] = '\0';
		char *want = fmt("bin %o %s", S_IFLNK | 0777, t);
		assert_true(list_has(&l, want));
		free(want);
	}
	/* the interpreter's path resolves in the appliance as on the host */
	assert_true(list_has(&l, "lib64"));
	assert_true(list_has(&l, "init"));
	assert_true(list_has(&l, "etc/passwd"));
	list_free(&l);
	app_free(a);
}

static void
closure_1_4_programs_beat_applets(void **state)
{
	struct app_item a1[] = {PROG("busybox"), PROG("ip")}, a2[] = {PROG("ip"), PROG("busybox")};
	struct list l1, l2;

	if (access("/usr/bin/ip", X_OK) != 0)
		skip();
	struct app *x = tree("/", a1, 2, &l1), *y = tree("/", a2, 2, &l2);
	/* whatever PATH finds first, "ip" is iproute2's, in either order */
	assert_int_equal(l1.n, l2.n);
	for (size_t i = 0; i < l1.n; i++) {
		assert_string_equal(l1.v[i], l2.v[i]);
		const char *sp = strchr(l1.v[i], ' ');
		if (sp - l1.v[i] >= 3 && strncmp(sp - 3, "/ip", 3) == 0)
			assert_null(strstr(l1.v[i], "busybox"));
	}
	assert_true(list_has(&l1, "usr/bin/ip"));
	/* the other applets are still there */
	assert_true(list_has(&l1, "usr/bin/wget"));
	list_free(&l1);
	list_free(&l2);
	app_free(x);
	app_free(y);
}

/* ---- search-1: the loader's search order in a scratch root ---- */

static void
search_1_1_order_origin_and_skips(void **state)
{
	char *r = scratch(), err[512];
	struct list l;

	char *p;
#define AT(x) (free(p), p = fmt("%s/%s", r, x))
	p = NULL;
	mkdirs(AT("bin"));
	mkdirs(AT("lib64"));
	mkdirs(AT("opt/app/bin"));
	mkdirs(AT("opt/app/lib"));
	mkdirs(AT("opt/rp"));
	mkdirs(AT("usr/lib/x86_64-linux-gnu"));
	mkdirs(AT("usr/local/lib"));
	mkdirs(AT("etc/ld.so.conf.d"));
	mkdirs(AT("lib"));
	write_str(AT("etc/ld.so.conf"), "# comment\ninclude ld.so.conf.d/*.conf\n", 0644);
	write_str(AT("etc/ld.so.conf.d/a.conf"), "/usr/local/lib # local\n", 0644);
	mkelf(AT("lib64/ld.so"), LIB());
	/* app: RUNPATH $ORIGIN/../lib; needs libx (there) and libc (default) */
	mkelf(AT("opt/app/bin/app"), (&(struct melf){.type = ET_DYN,
						     .machine = EM_X86_64,
						     .interp = "/lib64/ld.so",
						     .needed = {"libx.so", "libc.so"},
						     .runpath = "$ORIGIN/../lib"}));
	mkelf(AT("opt/app/lib/libx.so"), LIB(.needed = {"liby.so"}));
	/* liby: ld.so.conf's directory has one for another machine, skipped;
	 * the default directory has the right one */
	mkelf(AT("usr/local/lib/liby.so"), (&(struct melf){.type = ET_DYN, .machine = EM_AARCH64}));
	mkelf(AT("usr/lib/x86_64-linux-gnu/liby.so"), LIB(.needed = {"libz.so"}));
	/* libz: found through ld.so.conf before the default directory */
	mkelf(AT("usr/local/lib/libz.so"), LIB());
	mkelf(AT("usr/lib/x86_64-linux-gnu/libz.so"), LIB());
	mkelf(AT("usr/lib/x86_64-linux-gnu/libc.so"), LIB());
	/* old: DT_RPATH without RUNPATH, inherited by its libraries */
	mkelf(AT("bin/old"), (&(struct melf){.type = ET_EXEC,
					     .machine = EM_X86_64,
					     .interp = "/lib64/ld.so",
					     .needed = {"libr.so"},
					     .rpath = "/opt/rp"}));
	mkelf(AT("opt/rp/libr.so"), LIB(.needed = {"libq.so"}));
	mkelf(AT("opt/rp/libq.so"), LIB());
	mkelf(AT("lib/libq.so"), LIB());

	size_t n;
	struct app *a = app_new(r, err, sizeof(err));
	char *const *conf = app_ldconf(a, &n);
	assert_int_equal(n, 1);
	assert_string_equal(conf[0], "/usr/local/lib");
	app_free(a);

	struct app_item items[] = {PROG("/opt/app/bin/app"), PROG("old"),
				   PROG("/bin/busybox-not-here")};
	a = app_new(r, err, sizeof(err));
	if (app_add(a, &items[0], err, sizeof(err)) < 0 ||
	    app_add(a, &items[1], err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(app_add(a, &items[2], err, sizeof(err)), -1);
	assert_string_equal(err, "/bin/busybox-not-here: No such file or directory");
	memset(&l, 0, sizeof(l));
	app_foreach(a, collect, &l);
	assert_true(list_has(&l, "lib64/ld.so"));
	assert_true(list_has(&l, "opt/app/lib/libx.so"));
	assert_true(list_has(&l, "usr/lib/x86_64-linux-gnu/liby.so"));
	assert_false(list_has(&l, "usr/local/lib/liby.so"));
	assert_true(list_has(&l, "usr/local/lib/libz.so"));
	assert_false(list_has(&l, "usr/lib/x86_64-linux-gnu/libz.so"));
	assert_true(list_has(&l, "usr/lib/x86_64-linux-gnu/libc.so"));
	assert_true(list_has(&l, "bin/old"));
	assert_true(list_has(&l, "opt/rp/libr.so"));
	/* libr has no RUNPATH: the executable's RPATH finds libq first */
	assert_true(list_has(&l, "opt/rp/libq.so"));
	assert_false(list_has(&l, "lib/libq.so"));
	list_free(&l);
	app_free(a);

	/* a missing library is named with the file that needs it */
	mkelf(AT("bin/broken"), (&(struct melf){.type = ET_EXEC,
						.machine = EM_X86_64,
						.interp = "/lib64/ld.so",
						.needed = {"libnothere.so.7"}}));
	struct app_item b = PROG("broken");
	a = app_new(r, err, sizeof(err));
	assert_int_equal(app_add(a, &b, err, sizeof(err)), -1);
	assert_string_equal(err,
			    "libnothere.so.7 (needed by /bin/broken) is not in the root's library "
			    "directories");
	app_free(a);
	/* ... and a missing interpreter */
	mkelf(AT("bin/nointerp"),
	      (&(struct melf){.type = ET_EXEC, .machine = EM_X86_64, .interp = "/lib/ld-gone.so"}));
	struct app_item ni = PROG("nointerp");
	a = app_new(r, err, sizeof(err));
	assert_int_equal(app_add(a, &ni, err, sizeof(err)), -1);
	assert_string_equal(err, "/lib/ld-gone.so (the interpreter of /bin/nointerp) is not in the "
				 "root");
	app_free(a);
	free(p);
	rmtree(r);
	free(r);
#undef AT
}

static void
search_1_2_scripts_and_plain_files(void **state)
{
	char *d = scratch(), *s = fmt("%s/hello", d), err[512];
	struct list l;

	/* a script PROGRAM comes with its interpreter's closure */
	struct app_item it = PROG("/usr/bin/ldd"); /* a bash script on Debian */
	if (access("/usr/bin/ldd", R_OK) != 0)
		skip();
	struct app *a = tree("/", &it, 1, &l);
	assert_true(list_has(&l, "usr/bin/ldd"));
	assert_true(list_has(&l, "usr/bin/bash"));
	list_free(&l);
	app_free(a);
	/* -f of a non-ELF relative file: copied as it is, to /NAME */
	write_str(s, "not an ELF\n", 0640);
	struct app_item f = FILEARG("hello=/srv/hello.txt", d);
	a = tree("/", &f, 1, &l);
	char *want = fmt("srv/hello.txt %o", S_IFREG | 0640);
	assert_true(list_has(&l, want));
	free(want);
	list_free(&l);
	app_free(a);
	/* a program given as a relative path is refused */
	struct app_item rel = PROG("./hello");
	a = app_new("/", err, sizeof(err));
	assert_int_equal(app_add(a, &rel, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "-f adds other files"));
	app_free(a);
	free(s);
	rmtree(d);
	free(d);
}

static void
search_1_3_trees_and_link_targets(void **state)
{
	char *r = scratch(), *p = NULL, err[512];
	struct list l;

#define AT(x) (free(p), p = fmt("%s/%s", r, x))
	mkdirs(AT("etc/app/sub"));
	mkdirs(AT("etc/data"));
	mkdirs(AT("lib64"));
	write_str(AT("etc/app/a.conf"), "a\n", 0600);
	write_str(AT("etc/data/f"), "f\n", 0644);
	write_str(AT("etc/data/g"), "g\n", 0644);
	assert_int_equal(symlink("../../data/f", AT("etc/app/sub/rel")), 0);
	assert_int_equal(symlink("/etc/data/g", AT("etc/app/abs")), 0);
	assert_int_equal(symlink("/nowhere", AT("etc/app/dangling")), 0);
	mkelf(AT("lib64/ld.so"), LIB());
	mkelf(AT("etc/app/plugin.so"), LIB(.interp = "/lib64/ld.so"));
	assert_int_equal(mkfifo(AT("etc/app/fifo"), 0600), 0);
	struct app_item it = FILEARG("/etc/app", NULL);
	struct app *a = tree2(r, &it, 1, &l, 0); /* no /bin/sh here for /init */
	char *want = fmt("etc/app/a.conf %o", S_IFREG | 0600);
	assert_true(list_has(&l, want));
	free(want);
	assert_true(list_has(&l, "etc/app/sub/rel"));
	assert_true(list_has(&l, "etc/data/f")); /* relative to the link's directory */
	assert_true(list_has(&l, "etc/data/g"));
	assert_true(list_has(&l, "etc/app/dangling"));
	want = fmt("etc/app/fifo %o", S_IFIFO | 0600);
	assert_true(list_has(&l, want));
	free(want);
	assert_true(list_has(&l, "lib64/ld.so")); /* ELF files in a tree bring theirs */
	list_free(&l);
	app_free(a);
	/* -f SRC=DEST: the tree elsewhere */
	struct app_item moved = FILEARG("/etc/app=/opt/x", NULL);
	a = tree2(r, &moved, 1, &l, 0);
	assert_true(list_has(&l, "opt/x/sub/rel"));
	assert_true(list_has(&l, "etc/data/f"));
	assert_false(list_has(&l, "etc/app"));
	list_free(&l);
	app_free(a);
	/* a directory where the appliance has a file is a conflict */
	struct app_item clash[] = {FILEARG("/etc/data/f=/opt/y", NULL),
				   FILEARG("/etc/app=/opt/y", NULL)};
	a = app_new(r, err, sizeof(err));
	assert_int_equal(app_add(a, &clash[0], err, sizeof(err)), 0);
	assert_int_equal(app_add(a, &clash[1], err, sizeof(err)), -1);
	assert_string_equal(err, "/opt/y would be both a file and a directory");
	app_free(a);
	free(p);
	rmtree(r);
	free(r);
#undef AT
}

/* search-1.4: --kmod KVER brings virtio_pci and virtio_net of that kernel
 * with what they depend on (modules.dep, in any order, deps shared), and
 * /etc/kh/modules lists them so that each comes after its dependencies. */
static void
search_1_4_kmod(void **state)
{
	char *r = scratch(), *p = NULL, err[512];
	struct list l;
	static const char *const ko[] = {"virtio/virtio.ko",	 "virtio/virtio_ring.ko",
					 "virtio/virtio_pci.ko", "virtio/modern.ko",
					 "net/virtio_net.ko",	 "net/failover.ko",
					 "net/unused.ko"};

#define AT(x) (free(p), p = fmt("%s/%s", r, x))
	mkdirs(AT("lib/modules/6.1.0-9-cloud-amd64/kernel/virtio"));
	mkdirs(AT("lib/modules/6.1.0-9-cloud-amd64/kernel/net"));
	for (size_t i = 0; i < sizeof(ko) / sizeof(ko[0]); i++) {
		char *f = fmt("lib/modules/6.1.0-9-cloud-amd64/kernel/%s", ko[i]);
		write_str(AT(f), "not really ELF\n", 0644);
		free(f);
	}
	write_str(AT("lib/modules/6.1.0-9-cloud-amd64/modules.dep"),
		  "kernel/net/unused.ko:\n"
		  "kernel/net/virtio_net.ko: kernel/net/failover.ko kernel/virtio/virtio.ko "
		  "kernel/virtio/virtio_ring.ko\n"
		  "kernel/virtio/virtio_pci.ko: kernel/virtio/modern.ko kernel/virtio/virtio.ko "
		  "kernel/virtio/virtio_ring.ko\n"
		  "kernel/virtio/virtio.ko: kernel/virtio/virtio_ring.ko\n"
		  "kernel/virtio/virtio_ring.ko:\n"
		  "kernel/virtio/modern.ko:\n"
		  "kernel/net/failover.ko:\n",
		  0644);
	struct app_item it = {.kind = APP_KMOD, .arg = "6.1.0-9-cloud-amd64", .where = "t"};
	struct app *a = tree2(r, &it, 1, &l, 0);
	assert_true(list_has(&l, "lib/modules/6.1.0-9-cloud-amd64/kernel/net/virtio_net.ko"));
	assert_true(list_has(&l, "lib/modules/6.1.0-9-cloud-amd64/kernel/virtio/modern.ko"));
	assert_false(list_has(&l, "lib/modules/6.1.0-9-cloud-amd64/kernel/net/unused.ko"));
	assert_true(list_has(&l, "etc/kh/modules"));
	list_free(&l);
	app_free(a);
	/* the order: read /etc/kh/modules back from an archive (whose /init
	 * needs a /bin/sh: a plain file will do) */
	char *out = fmt("%s/out.cpio", r), *cmd;
	mkdirs(AT("bin"));
	write_str(AT("bin/sh"), "not a shell\n", 0755);
	assert_int_equal(build(r, &it, 1, out, 0, 0, err, sizeof(err), NULL), 0);
	cmd = fmt("cd '%s' && zcat out.cpio | cpio -i --quiet --to-stdout etc/kh/modules "
		  "| sed 's,.*/kernel/,,' | tr '\\n' ' ' >order",
		  r);
	assert_int_equal(system(cmd), 0);
	size_t n;
	unsigned char *order = slurp(AT("order"), &n);
	order[n] = '\0';
	assert_string_equal((char *)order,
			    "virtio/modern.ko virtio/virtio_ring.ko virtio/virtio.ko "
			    "virtio/virtio_pci.ko net/failover.ko net/virtio_net.ko ");
	free(order);
	free(cmd);
	free(out);
	/* bad input: one line each */
	a = app_new(r, err, sizeof(err));
	struct app_item bad = {.kind = APP_KMOD, .arg = "../../etc", .where = "t"};
	assert_int_equal(app_add(a, &bad, err, sizeof(err)), -1);
	assert_string_equal(err, "--kmod ../../etc: not a kernel version");
	struct app_item none = {.kind = APP_KMOD, .arg = "9.9", .where = "t"};
	assert_int_equal(app_add(a, &none, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--kmod 9.9: "));
	assert_non_null(strstr(err, "modules.dep: No such file or directory"));
	app_free(a);
	write_str(AT("lib/modules/6.1.0-9-cloud-amd64/modules.dep"), "kernel/net/virtio_net.ko:\n",
		  0644);
	a = app_new(r, err, sizeof(err));
	assert_int_equal(app_add(a, &it, err, sizeof(err)), -1);
	assert_string_equal(err,
			    "--kmod 6.1.0-9-cloud-amd64: no virtio_pci.ko (is virtio built in? "
			    "then --kmod is not needed)");
	app_free(a);
	free(p);
	rmtree(r);
	free(r);
#undef AT
}

/* ---- recipe-1: the command line and recipes ---- */

static void
recipe_1_1_parse(void **state)
{
	char *d = scratch(), *r = fmt("%s/web", d), *rf = fmt("%s/recipe", r), err[512];
	struct app_spec s;

	mkdirs(r);
	write_str(rf,
		  "# a comment\n\n  busybox  \n-f nginx.conf=/etc/nginx/nginx.conf\n"
		  "--init service\n-u www-data\n-d /var/log/nginx\n--init=other\n",
		  0644);
	char *argv[] = {"-q", "-o", "x.uimg", "--uimage", "--root=/", "-r", r, "ls", NULL};
	setenv("SOURCE_DATE_EPOCH", "1234", 1);
	assert_int_equal(app_parse_args(8, argv, &s, err, sizeof(err)), 0);
	unsetenv("SOURCE_DATE_EPOCH");
	assert_int_equal(s.mtime, 1234);
	assert_true(s.quiet && s.uimage);
	assert_string_equal(s.out, "x.uimg");
	assert_string_equal(s.root, "/");
	assert_string_equal(s.recipe, "web");
	assert_int_equal(s.nitems, 7);
	assert_int_equal(s.items[0].kind, APP_PROGRAM);
	assert_string_equal(s.items[0].arg, "busybox");
	assert_string_equal(s.items[0].base, r);
	assert_int_equal(s.items[1].kind, APP_FILE);
	assert_string_equal(s.items[1].arg, "nginx.conf=/etc/nginx/nginx.conf");
	assert_int_equal(s.items[2].kind, APP_INIT);
	assert_int_equal(s.items[3].kind, APP_USER);
	assert_int_equal(s.items[4].kind, APP_DIR);
	assert_string_equal(s.items[5].arg, "other");
	assert_string_equal(s.items[6].arg, "ls");
	assert_null(s.items[6].base);
	char *where = fmt("%s:4", rf);
	assert_string_equal(s.items[1].where, where);
	free(where);
	app_spec_free(&s);

	/* the default output is named after the recipe */
	char *argv2[] = {"-r", r, "--uimage", NULL};
	assert_int_equal(app_parse_args(3, argv2, &s, err, sizeof(err)), 0);
	assert_string_equal(app_default_out(&s), "web.uimg");
	app_spec_free(&s);
	free(rf);
	free(r);
	rmtree(d);
	free(d);
}

static void
recipe_1_2_bad_input(void **state)
{
	char *d = scratch(), *rf = fmt("%s/recipe", d), err[512];
	struct app_spec s;
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"busybox\n--frob x\n", ":2: unknown option '--frob'"},
	    {"-o out.cpio.gz\n", ":1: -o belongs on the command line, not in a recipe"},
	    {"-f\n", ":1: -f needs a value"},
	    {"two programs\n", ":1: one program per line, not 'two programs'"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_str(rf, bad[i].text, 0644);
		char *argv[] = {"-r", d, NULL};
		assert_int_equal(app_parse_args(2, argv, &s, err, sizeof(err)), -1);
		char *want = fmt("%s%s", rf, bad[i].want);
		assert_string_equal(err, want);
		free(want);
		app_spec_free(&s);
	}
	char *a1[] = {"--frob", NULL};
	assert_int_equal(app_parse_args(1, a1, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown option '--frob' (khappliance -h: usage)");
	app_spec_free(&s);
	char *a2[] = {"-o", NULL};
	assert_int_equal(app_parse_args(1, a2, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "-o needs a value");
	app_spec_free(&s);
	char *a3[] = {"-o", "x", NULL};
	assert_int_equal(app_parse_args(2, a3, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "nothing to put in the appliance (khappliance -h: usage)");
	app_spec_free(&s);
	char *a4[] = {"-r", "/nonexistent/recipe", NULL};
	assert_int_equal(app_parse_args(2, a4, &s, err, sizeof(err)), -2);
	assert_string_equal(err, "recipe /nonexistent/recipe: No such file or directory");
	app_spec_free(&s);
	setenv("SOURCE_DATE_EPOCH", "yesterday", 1);
	char *a5[] = {"ls", NULL};
	assert_int_equal(app_parse_args(1, a5, &s, err, sizeof(err)), -1);
	unsetenv("SOURCE_DATE_EPOCH");
	assert_string_equal(err, "SOURCE_DATE_EPOCH=yesterday: not a time in seconds");
	app_spec_free(&s);
	free(rf);
	rmtree(d);
	free(d);
}

/* ---- archive-1: bytes ---- */

static void
archive_1_1_reproducible_and_round_trip(void **state)
{
	char *d = scratch(), err[512];
	char *o1 = fmt("%s/a.cpio.gz", d), *o2 = fmt("%s/b.cpio.gz", d),
	     *o3 = fmt("%s/c.cpio.gz", d);
	char *x = fmt("%s/x", d);
	struct app_item items[] = {PROG("busybox"), PROG("ls"), FILEARG("/etc/nginx", NULL)};
	struct app_item rev[] = {PROG("ls"), PROG("busybox"), FILEARG("/etc/nginx", NULL)};
	struct app_stats st;
	size_t n1, n2, n3;
	size_t ni = access("/etc/nginx", R_OK) == 0 ? 3 : 2;

	assert_int_equal(build("/", items, ni, o1, 0, 0, err, sizeof(err), &st), 0);
	assert_int_equal(build("/", rev, ni, o2, 0, 0, err, sizeof(err), NULL), 0);
	assert_int_equal(build("/", items, ni, o3, 0, 1000000, err, sizeof(err), NULL), 0);
	unsigned char *b1 = slurp(o1, &n1), *b2 = slurp(o2, &n2), *b3 = slurp(o3, &n3);
	/* same inputs (in any order): the same bytes; another mtime: not */
	assert_int_equal(n1, n2);
	assert_memory_equal(b1, b2, n1);
	assert_true(n1 != n3 || memcmp(b1, b3, n1) != 0);
	/* gzip header: no name, mtime 0 */
	assert_int_equal(b1[0], 0x1f);
	assert_int_equal(b1[1], 0x8b);
	assert_int_equal(b1[3] & 0x08, 0);
	assert_int_equal(b1[4] | b1[5] | b1[6] | b1[7], 0);
	assert_int_equal(st.bytes, n1);
	assert_true(st.unpacked > 1000000 && st.entries > 100 && st.rootused > st.unpacked);

	/* unpacked by the node's own unpacker: the host's bytes */
	assert_int_equal(ramdisk_unpack(b1, n1, x, err, sizeof(err)), 0);
	static const char *same[] = {"usr/bin/busybox", "usr/bin/ls", "lib64/ld-linux-x86-64.so.2",
				     "usr/lib/x86_64-linux-gnu/libc.so.6", "etc/nginx/mime.types"};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		char *h = fmt("/%s", same[i]), *u = NULL, rp[PATH_MAX];
		if (realpath(h, rp) != NULL) {
			size_t hn, un;
			/* the tree's absolute symlinks point at the host: follow
			 * them on the host, read the file in the tree */
			u = fmt("%s%s", x, rp);
			unsigned char *hb = slurp(h, &hn), *ub = slurp(u, &un);
			assert_int_equal(hn, un);
			assert_memory_equal(hb, ub, hn);
			free(hb);
			free(ub);
		}
		free(h);
		free(u);
	}
	char t[64], *sh = fmt("%s/usr/bin/sh", x), *init = fmt("%s/init", x),
		    *tmp = fmt("%s/tmp", x);
	ssize_t tl = readlink(sh, t, sizeof(t) - 1);
	assert_true(tl > 0);
	t[tl] = '\0';
	assert_string_equal(t, "/usr/bin/busybox");
	struct stat sb;
	assert_int_equal(stat(init, &sb), 0);
	assert_true(sb.st_mode & 0100);
	assert_int_equal(lstat(tmp, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 01777);
	free(sh);
	free(init);
	free(tmp);

	free(b1);
	free(b2);
	free(b3);
	rmtree(d);
	free(d);
	free(o1);
	free(o2);
	free(o3);
	free(x);
}

static void
archive_1_2_uimage(void **state)
{
	char *d = scratch(), *o = fmt("%s/s.uimg", d), err[512];
	struct app_item it = PROG("busybox");
	struct uimage_hdr h;
	size_t n, off, len;
	enum img_kind kind;

	assert_int_equal(build("/", &it, 1, o, 1, 77, err, sizeof(err), NULL), 0);
	unsigned char *b = slurp(o, &n);
	assert_int_equal(uimage_verify(b, n, &h, err, sizeof(err)), 0);
	assert_int_equal(h.type, UIMAGE_TYPE_RAMDISK);
	assert_int_equal(h.comp, UIMAGE_COMP_GZIP);
	assert_int_equal(h.os, 5);
	assert_int_equal(h.time, 77);
	assert_int_equal(h.size, n - UIMAGE_HDRSIZE);
	assert_string_equal(h.name, "test");
	assert_int_equal(image_classify(b, n, &kind, &off, &len, err, sizeof(err)), 0);
	assert_int_equal(kind, IMG_RAMDISK);
	assert_int_equal(off, UIMAGE_HDRSIZE);
	/* one flipped data bit: the data CRC says so */
	b[n / 2] ^= 1;
	assert_int_equal(uimage_verify(b, n, &h, err, sizeof(err)), -1);
	assert_string_equal(err, "Bad Data CRC");
	free(b);
	/* uimage_header alone: parse gives back what was written */
	struct uimage_hdr in = {.time = 1,
				.size = 2,
				.load = 3,
				.ep = 4,
				.dcrc = 5,
				.os = 5,
				.arch = uimage_host_arch(),
				.type = 3,
				.comp = 1},
			  back;
	unsigned char hdr[UIMAGE_HDRSIZE];
	snprintf(in.name, sizeof(in.name), "%s", "a name of exactly thirty-two ch");
	uimage_header(hdr, &in);
	assert_int_equal(uimage_parse(hdr, sizeof(hdr), &back, err, sizeof(err)), 0);
	assert_int_equal(back.load, 3);
	assert_int_equal(back.ep, 4);
	assert_string_equal(back.name, in.name);
	assert_int_not_equal(back.arch, 0);
	free(o);
	rmtree(d);
	free(d);
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.' || (de->d_name[1] != '\0' && de->d_name[1] != '.');
	closedir(d);
	return n;
}

static void
archive_1_3_failures_leave_nothing(void **state)
{
	char *d = scratch(), *o = fmt("%s/out.cpio.gz", d), *f = fmt("%s/grows", d), err[512];
	struct app_item it = FILEARG("grows", d);

	write_str(f, "short\n", 0644);
	struct app *a = app_new("/", err, sizeof(err));
	assert_int_equal(app_add(a, &it, err, sizeof(err)), 0);
	assert_int_equal(app_finish(a, err, sizeof(err)), 0);
	/* the file changes between app_add and app_write */
	write_str(f, "longer than it was\n", 0644);
	struct app_stats st;
	assert_int_equal(app_write(a, o, 0, "x", 0, &st, err, sizeof(err)), -1);
	char *want = fmt("%s: changed while the appliance was made", f);
	assert_string_equal(err, want);
	free(want);
	/* no output, no temporary file: only the source is there */
	assert_int_equal(count_files(d), 1);
	/* an output directory that does not exist */
	assert_int_equal(
	    app_write(a, "/nonexistent/dir/x.cpio.gz", 0, "x", 0, &st, err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/dir/x.cpio.gz: No such file or directory");
	app_free(a);
	/* a -f that is missing, a destination with "..", a root that is not a dir */
	struct app_item miss = FILEARG("/nonexistent/file", NULL);
	struct app_item dd = FILEARG("grows=/etc/../x", d);
	a = app_new("/", err, sizeof(err));
	assert_int_equal(app_add(a, &miss, err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/file: No such file or directory");
	assert_int_equal(app_add(a, &dd, err, sizeof(err)), -1);
	assert_string_equal(err, "/etc/../x: \"..\" in a destination");
	app_free(a);
	assert_null(app_new(f, err, sizeof(err)));
	want = fmt("%s: not a directory", f);
	assert_string_equal(err, want);
	free(want);
	free(o);
	free(f);
	rmtree(d);
	free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(elf_1_1_real_files_match_readelf),
	    cmocka_unit_test(elf_1_2_interp_and_not_elf),
	    cmocka_unit_test(elf_1_3_broken_files),
	    cmocka_unit_test(closure_1_1_cat_as_the_loader_maps_it),
	    cmocka_unit_test(closure_1_2_socat_fourteen_libraries),
	    cmocka_unit_test(closure_1_3_symlinks_kept),
	    cmocka_unit_test(closure_1_4_programs_beat_applets),
	    cmocka_unit_test(search_1_1_order_origin_and_skips),
	    cmocka_unit_test(search_1_2_scripts_and_plain_files),
	    cmocka_unit_test(search_1_3_trees_and_link_targets),
	    cmocka_unit_test(search_1_4_kmod),
	    cmocka_unit_test(recipe_1_1_parse),
	    cmocka_unit_test(recipe_1_2_bad_input),
	    cmocka_unit_test(archive_1_1_reproducible_and_round_trip),
	    cmocka_unit_test(archive_1_2_uimage),
	    cmocka_unit_test(archive_1_3_failures_leave_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
