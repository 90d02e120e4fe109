/* appliance: the tree of an appliance taken from a root file system, the
 * ELF closure of its programs (found as the dynamic loader would, from the
 * files' own headers: nothing is run but busybox --list-full), and its
 * reproducible archive. */
#include "appliance/appliance.h"
#include "appliance/cpio.h"
#include "appliance/elf.h"
#include "appliance/gz.h"
#include "common/sbuf.h"
#include "common/util.h"
#include "image/uimage.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_HOPS     40 /* symlinks followed in one lookup, as the kernel */
#define MAX_INCLUDE  8	/* nesting of ld.so.conf includes */
#define MAX_ENTRIES  (1u << 20)
#define ROOT_PATH    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SERVICE_PATH "etc/kh/service"

enum ent_kind { E_DIR, E_FILE, E_LINK, E_NODE, E_DATA };

struct ent {
	char *path; /* no leading '/' */
	enum ent_kind kind;
	uint32_t mode; /* type bits and permissions */
	char *src;     /* E_FILE: the host path to read */
	uint64_t size; /* E_FILE: its size when added */
	char *data;    /* E_LINK: the target; E_DATA: the contents */
	size_t len;    /* E_DATA: bytes of data */
	dev_t rdev;    /* E_NODE */
	int elf_done;  /* E_FILE: its closure was taken */
	int weak;      /* a busybox applet link: a real program replaces it */
	int gone;      /* removed (a shadowed applet): not in the archive */
};

struct app {
	char *root; /* "" for "/", else the root without a trailing '/' */
	struct ent *e;
	size_t n, cap;
	size_t *ht; /* open addressing: index + 1, 0 free */
	size_t htcap;
	char **ldconf;
	size_t nldconf;
	int ldconf_read;
	char *busybox; /* the busybox program in the appliance, or NULL */
	int have_service;
	int have_kmods;
	struct sbuf users; /* -u USER names, '\n'-separated */
	struct sbuf progs; /* basenames of PROGRAMs, "\nNAME\n" each */
};

/* ---- small helpers ---- */

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

static void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		abort();
	return q;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

/* The host path of p ("usr/bin/x" or "/usr/bin/x") under the root. */
static char *
host_path(const struct app *a, const char *p)
{
	while (*p == '/')
		p++;
	return xasprintf("%s/%s", a->root, p);
}

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct ent *
ent_find_any(const struct app *a, const char *path)
{
	if (a->htcap == 0)
		return NULL;
	for (size_t i = hash(path) & (a->htcap - 1);; i = (i + 1) & (a->htcap - 1)) {
		if (a->ht[i] == 0)
			return NULL;
		if (strcmp(a->e[a->ht[i] - 1].path, path) == 0)
			return &a->e[a->ht[i] - 1];
	}
}

/* The live entry at path, or NULL. */
static struct ent *
ent_find(const struct app *a, const char *path)
{
	struct ent *e = ent_find_any(a, path);

	return e && !e->gone ? e : NULL;
}

static void
ht_insert(struct app *a, size_t idx)
{
	size_t i = hash(a->e[idx].path) & (a->htcap - 1);

	while (a->ht[i] != 0)
		i = (i + 1) & (a->htcap - 1);
	a->ht[i] = idx + 1;
}

static const char *
kind_name(enum ent_kind k)
{
	switch (k) {
	case E_DIR:
		return "a directory";
	case E_LINK:
		return "a symlink";
	case E_NODE:
		return "a device";
	default:
		return "a file";
	}
}

/* Add an entry (path without leading '/'), or find the one there.  A
 * directory meets only directories; otherwise the first entry stays unless
 * replace is set.  Returns the entry, or NULL with err. */
static struct ent *
ent_put(struct app *a, const char *path, enum ent_kind kind, uint32_t mode, int replace, char *err,
	size_t errlen)
{
	struct ent *e = ent_find_any(a, path);

	if (e != NULL && e->gone) {
		free(e->src);
		free(e->data);
		char *p = e->path;
		memset(e, 0, sizeof(*e));
		e->path = p;
		e->kind = kind;
		e->mode = mode;
		return e;
	}
	if (e != NULL) {
		if ((e->kind == E_DIR) != (kind == E_DIR)) {
			seterr(err, errlen, "/%s would be both %s and %s", path, kind_name(e->kind),
			       kind_name(kind));
			return NULL;
		}
		if (kind == E_DIR)
			return e;
		if (!replace && !e->weak) {
			if (e->kind == kind)
				return e;
			seterr(err, errlen, "/%s would be both %s and %s", path, kind_name(e->kind),
			       kind_name(kind));
			return NULL;
		}
		free(e->src);
		free(e->data);
		char *p = e->path;
		memset(e, 0, sizeof(*e));
		e->path = p;
		e->kind = kind;
		e->mode = mode;
		return e;
	}
	if (a->n >= MAX_ENTRIES) {
		seterr(err, errlen, "more than %u files", MAX_ENTRIES);
		return NULL;
	}
	if (a->n + 1 > a->htcap / 2) {
		a->htcap = a->htcap ? a->htcap * 2 : 1024;
		free(a->ht);
		if ((a->ht = calloc(a->htcap, sizeof(*a->ht))) == NULL)
			abort();
		for (size_t i = 0; i < a->n; i++)
			ht_insert(a, i);
	}
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 256;
		a->e = xrealloc(a->e, a->cap * sizeof(*a->e));
	}
	e = &a->e[a->n];
	memset(e, 0, sizeof(*e));
	e->path = xstrdup(path);
	e->kind = kind;
	e->mode = mode;
	ht_insert(a, a->n++);
	return e;
}

/* ---- lookups in the root, symlinks kept ---- */

enum { W_ADD = 1, W_FOLLOW = 2 };

/* A path walk met a symbolic link at cur/<component>: what remains to
 * walk becomes target + what followed the link (next), from the root
 * when the target is absolute, else from cur. */
static void
follow_link(struct sbuf *cur, struct sbuf *rest, struct sbuf *tmp, const char *target,
	    const char *next)
{
	sbuf_reset(tmp);
	sbuf_printf(tmp, "%s/%s", target, next);
	sbuf_reset(rest);
	sbuf_adds(rest, tmp->s);
	if (target[0] == '/') {
		sbuf_reset(cur);
		sbuf_adds(cur, "");
	}
}

/* Resolve path (absolute in the root) one component at a time, the way the
 * kernel would inside a chroot.  With W_ADD, every directory passed gets a
 * directory entry and every symlink met a symlink entry, so the appliance
 * has the same names.  W_FOLLOW follows a symlink in the last component too.
 * *out gets the resolved path (no leading '/', "" for the root itself) and
 * *st its lstat.  Returns 0, or -1 with err (and errno) set. */
static int
walk(struct app *a, const char *path, int flags, char **out, struct stat *st, char *err,
     size_t errlen)
{
	struct sbuf cur, rest, tmp;
	int hops = 0, rc = -1;

	sbuf_init(&cur);
	sbuf_init(&rest);
	sbuf_init(&tmp);
	sbuf_adds(&cur, "");
	sbuf_adds(&rest, path);
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0755;
	for (;;) {
		char *r = rest.s;
		while (*r == '/')
			r++;
		if (*r == '\0')
			break;
		size_t clen = strcspn(r, "/");
		char *next = r + clen;
		while (*next == '/')
			next++;
		int last = *next == '\0';
		if (clen > NAME_MAX) {
			errno = ENAMETOOLONG;
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (clen == 1 && r[0] == '.') {
			sbuf_consume(&rest, (size_t)(next - rest.s));
			continue;
		}
		if (clen == 2 && r[0] == '.' && r[1] == '.') {
			char *sl = strrchr(cur.s, '/');
			cur.len = sl ? (size_t)(sl - cur.s) : 0;
			cur.s[cur.len] = '\0';
			sbuf_consume(&rest, (size_t)(next - rest.s));
			memset(st, 0, sizeof(*st));
			st->st_mode = S_IFDIR | 0755;
			continue;
		}
		sbuf_reset(&tmp);
		if (cur.len > 0)
			sbuf_printf(&tmp, "%s/", cur.s);
		sbuf_add(&tmp, r, clen);
		char *hp = host_path(a, tmp.s);
		int lr = lstat(hp, st);
		int saved = errno;
		if (lr < 0) {
			free(hp);
			errno = saved;
			seterr(err, errlen, "%s: %s", path, strerror(saved));
			goto out;
		}
		if (S_ISLNK(st->st_mode) && (!last || (flags & W_FOLLOW))) {
			char target[PATH_MAX];
			ssize_t tl = readlink(hp, target, sizeof(target) - 1);
			saved = errno;
			free(hp);
			if (tl <= 0) {
				errno = tl < 0 ? saved : EINVAL;
				seterr(err, errlen, "%s: %s", tmp.s, strerror(errno));
				goto out;
			}
			target[tl] = '\0';
			if (++hops > MAX_HOPS) {
				errno = ELOOP;
				seterr(err, errlen, "%s: %s", path, strerror(errno));
				goto out;
			}
			if (flags & W_ADD) {
				struct ent *e =
				    ent_put(a, tmp.s, E_LINK, S_IFLNK | 0777, 0, err, errlen);
				if (e == NULL)
					goto out;
				if (e->data == NULL)
					e->data = xstrdup(target);
			}
			follow_link(&cur, &rest, &tmp, target, next);
			continue;
		}
		free(hp);
		if (!last && !S_ISDIR(st->st_mode)) {
			errno = ENOTDIR;
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (!last && (flags & W_ADD) &&
		    ent_put(a, tmp.s, E_DIR, S_IFDIR | (st->st_mode & 07777), 0, err, errlen) ==
			NULL)
			goto out;
		sbuf_reset(&cur);
		sbuf_adds(&cur, tmp.s);
		sbuf_consume(&rest, (size_t)(next - rest.s));
	}
	*out = xstrdup(cur.s);
	rc = 0;
out:
	sbuf_free(&cur);
	sbuf_free(&rest);
	sbuf_free(&tmp);
	return rc;
}

/* ---- ld.so.conf ---- */

static void
ldconf_add(struct app *a, const char *dir)
{
	for (size_t i = 0; i < a->nldconf; i++)
		if (strcmp(a->ldconf[i], dir) == 0)
			return;
	a->ldconf = xrealloc(a->ldconf, (a->nldconf + 1) * sizeof(*a->ldconf));
	a->ldconf[a->nldconf++] = xstrdup(dir);
}

static void ldconf_file(struct app *a, const char *path, int depth);

/* "include PATTERN": relative patterns are from the including file's
 * directory, as ldconfig takes them; the glob runs under the root. */
static void
ldconf_include(struct app *a, const char *from, const char *pat, int depth)
{
	char *full, *hp;
	glob_t g;

	if (pat[0] == '/')
		full = xstrdup(pat);
	else {
		const char *sl = strrchr(from, '/');
		full = xasprintf("%.*s/%s", sl ? (int)(sl - from) : 0, from, pat);
	}
	hp = host_path(a, full);
	if (glob(hp, 0, NULL, &g) == 0) {
		size_t rl = strlen(a->root);
		for (size_t i = 0; i < g.gl_pathc; i++)
			ldconf_file(a, g.gl_pathv[i] + rl, depth + 1);
		globfree(&g);
	}
	free(hp);
	free(full);
}

static void
ldconf_file(struct app *a, const char *path, int depth)
{
	char *hp = host_path(a, path), *line = NULL;
	size_t cap = 0;
	FILE *f;

	if (depth > MAX_INCLUDE || (f = fopen(hp, "re")) == NULL) {
		free(hp);
		return;
	}
	while (getline(&line, &cap, f) > 0) {
		char *h = strchr(line, '#'), *save = NULL;
		if (h)
			*h = '\0';
		char *w = strtok_r(line, " \t\r\n:,", &save);
		if (w == NULL)
			continue;
		if (strcmp(w, "include") == 0) {
			while ((w = strtok_r(NULL, " \t\r\n", &save)) != NULL)
				ldconf_include(a, path, w, depth);
			continue;
		}
		if (strcmp(w, "hwcap") == 0)
			continue;
		for (; w; w = strtok_r(NULL, " \t\r\n:,", &save)) {
			char *eq = strchr(w, '='); /* libc5's "DIR=TYPE" */
			if (eq)
				*eq = '\0';
			if (w[0] == '/')
				ldconf_add(a, w);
		}
	}
	free(line);
	fclose(f);
	free(hp);
}

char *const *
app_ldconf(struct app *a, size_t *n)
{
	if (!a->ldconf_read) {
		a->ldconf_read = 1;
		ldconf_file(a, "/etc/ld.so.conf", 0);
	}
	*n = a->nldconf;
	return a->ldconf;
}

/* ---- the ELF closure ---- */

struct obj {
	const char *path; /* in the root, no leading '/' */
	struct elf_info ei;
};

/* Is the file at root path p an ELF object the loader would take for an
 * object of class/machine? */
static int
compatible(struct app *a, const char *p, const struct elf_info *want)
{
	struct elf_info ei;
	char e[8];
	char *hp = host_path(a, p);
	int r = elf_read(hp, &ei, e, sizeof(e));

	free(hp);
	if (r != 1)
		return 0;
	r = ei.class == want->class && ei.data == want->data && ei.machine == want->machine &&
	    ei.type == ET_DYN;
	elf_free(&ei);
	return r;
}

static int add_elf(struct app *a, const char *path, const char *exe_rpath, char *err,
		   size_t errlen);

/* Try dir/name; on success add it (and its closure) and return 1. */
static int
try_dir(struct app *a, const char *dir, const char *origin, const char *name,
	const struct elf_info *want, const char *exe_rpath, char *err, size_t errlen)
{
	struct sbuf d;
	char *res = NULL, *cand;
	struct stat st;
	char e[8];
	int rc = 0;

	sbuf_init(&d);
	sbuf_adds(&d, "");
	for (const char *p = dir; *p;) {
		if (strncmp(p, "$ORIGIN", 7) == 0 && (p[7] == '/' || p[7] == '\0')) {
			sbuf_printf(&d, "/%s", origin);
			p += 7;
		} else if (strncmp(p, "${ORIGIN}", 9) == 0) {
			sbuf_printf(&d, "/%s", origin);
			p += 9;
		} else if (*p == '$') {
			/* $LIB, $PLATFORM: not expanded; such a directory is
			 * skipped rather than guessed. */
			sbuf_free(&d);
			return 0;
		} else
			sbuf_add(&d, p++, 1);
	}
	if (d.s[0] != '/') { /* relative entries are relative to the cwd */
		sbuf_free(&d);
		return 0;
	}
	cand = xasprintf("%s/%s", d.s, name);
	sbuf_free(&d);
	if (walk(a, cand, W_FOLLOW, &res, &st, e, sizeof(e)) == 0 && S_ISREG(st.st_mode) &&
	    compatible(a, res, want)) {
		rc = add_elf(a, cand, exe_rpath, err, errlen) < 0 ? -1 : 1;
	}
	free(res);
	free(cand);
	return rc;
}

/* Try every directory of a colon-separated list. */
static int
try_list(struct app *a, const char *list, const char *origin, const char *name,
	 const struct elf_info *want, const char *exe_rpath, char *err, size_t errlen)
{
	char *l = xstrdup(list), *save = NULL;
	int rc = 0;

	for (char *d = strtok_r(l, ":", &save); d && rc == 0; d = strtok_r(NULL, ":", &save))
		rc = try_dir(a, d, origin, name, want, exe_rpath, err, errlen);
	free(l);
	return rc;
}

/* Find a DT_NEEDED name as ld.so does: DT_RPATH of the object and of the
 * executable when the object has no DT_RUNPATH; DT_RUNPATH; ld.so.conf (the
 * cache is made from it); the default directories.  LD_LIBRARY_PATH is not
 * part of a node's environment and is ignored. */
static int
find_lib(struct app *a, const struct obj *o, const char *name, const char *exe_rpath, char *err,
	 size_t errlen)
{
	char *origin = xstrdup(o->path);
	char *sl = strrchr(origin, '/');
	const char *ma = elf_multiarch(o->ei.class, o->ei.data, o->ei.machine);
	size_t nconf;
	char *const *conf;
	int rc = 0;

	if (sl)
		*sl = '\0';
	else
		origin[0] = '\0';
	if (strchr(name, '/')) {
		char *res = NULL;
		struct stat st;
		char e[8];
		if (name[0] == '/' && walk(a, name, W_FOLLOW, &res, &st, e, sizeof(e)) == 0)
			rc = add_elf(a, name, exe_rpath, err, errlen) < 0 ? -1 : 1;
		free(res);
		goto out;
	}
	if (o->ei.runpath == NULL && o->ei.rpath &&
	    (rc = try_list(a, o->ei.rpath, origin, name, &o->ei, exe_rpath, err, errlen)) != 0)
		goto out;
	if (o->ei.runpath == NULL && exe_rpath &&
	    (rc = try_list(a, exe_rpath, "", name, &o->ei, exe_rpath, err, errlen)) != 0)
		goto out;
	if (o->ei.runpath &&
	    (rc = try_list(a, o->ei.runpath, origin, name, &o->ei, exe_rpath, err, errlen)) != 0)
		goto out;
	conf = app_ldconf(a, &nconf);
	for (size_t i = 0; i < nconf; i++)
		if ((rc = try_dir(a, conf[i], origin, name, &o->ei, exe_rpath, err, errlen)) != 0)
			goto out;
	const char *defs[6];
	size_t nd = 0;
	char *m1 = NULL, *m2 = NULL;
	if (ma) {
		defs[nd++] = m1 = xasprintf("/lib/%s", ma);
		defs[nd++] = m2 = xasprintf("/usr/lib/%s", ma);
	}
	if (o->ei.class == ELFCLASS64) {
		defs[nd++] = "/lib64";
		defs[nd++] = "/usr/lib64";
	}
	defs[nd++] = "/lib";
	defs[nd++] = "/usr/lib";
	for (size_t i = 0; i < nd && rc == 0; i++)
		rc = try_dir(a, defs[i], origin, name, &o->ei, exe_rpath, err, errlen);
	free(m1);
	free(m2);
out:
	free(origin);
	if (rc == 0)
		seterr(err, errlen, "%s (needed by /%s) is not in the root's library directories",
		       name, o->path);
	return rc > 0 ? 0 : -1;
}

/* Add the regular file at root path (symlinks kept) without closure. */
static int
add_root_file(struct app *a, const char *path, char **res, struct stat *st, char *err,
	      size_t errlen)
{
	struct ent *e;

	if (walk(a, path, W_ADD | W_FOLLOW, res, st, err, errlen) < 0)
		return -1;
	if (!S_ISREG(st->st_mode)) {
		seterr(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	char *hp = host_path(a, *res);
	if (access(hp, R_OK) < 0) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		free(hp);
		goto fail;
	}
	if ((e = ent_put(a, *res, E_FILE, S_IFREG | (st->st_mode & 07777), 0, err, errlen)) ==
	    NULL) {
		free(hp);
		goto fail;
	}
	if (e->src == NULL) {
		e->src = hp;
		e->size = (uint64_t)st->st_size;
	} else
		free(hp);
	return 0;
fail:
	free(*res);
	*res = NULL;
	return -1;
}

/* The closure of the file at appliance path p read from host file src:
 * its interpreter and libraries.  Non-ELF files need nothing. */
static int
closure(struct app *a, const char *p, const char *src, const char *exe_rpath, char *err,
	size_t errlen)
{
	struct ent *e = ent_find(a, p);
	struct obj o = {.path = p};
	int r, rc = -1;

	if (e != NULL && e->kind == E_FILE) {
		if (e->elf_done)
			return 0;
		e->elf_done = 1;
	}
	if ((r = elf_read(src, &o.ei, err, errlen)) <= 0)
		return r;
	if (o.ei.type == ET_EXEC || (o.ei.type == ET_DYN && o.ei.interp))
		exe_rpath = o.ei.runpath ? NULL : o.ei.rpath; /* an executable */
	if (o.ei.interp) {
		char *res = NULL;
		struct stat st;
		if (add_root_file(a, o.ei.interp, &res, &st, err, errlen) < 0) {
			seterr(err, errlen, "%s (the interpreter of /%s) is not in the root",
			       o.ei.interp, p);
			goto out;
		}
		char *hp = host_path(a, res);
		r = closure(a, res, hp, NULL, err, errlen);
		free(hp);
		free(res);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < o.ei.nneeded; i++)
		if (find_lib(a, &o, o.ei.needed[i], exe_rpath, err, errlen) < 0)
			goto out;
	rc = 0;
out:
	elf_free(&o.ei);
	return rc;
}

/* Add the ELF (or other) file at root path with its closure. */
static int
add_elf(struct app *a, const char *path, const char *exe_rpath, char *err, size_t errlen)
{
	char *res = NULL;
	struct stat st;

	if (add_root_file(a, path, &res, &st, err, errlen) < 0)
		return -1;
	char *hp = host_path(a, res);
	int rc = closure(a, res, hp, exe_rpath, err, errlen);
	free(hp);
	free(res);
	return rc;
}

/* A script's "#!" interpreter (first word), or NULL. */
static char *
shebang(const char *src)
{
	char buf[256];
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 3 || buf[0] != '#' || buf[1] != '!')
		return NULL;
	buf[n] = '\0';
	char *p = buf + 2;
	p += strspn(p, " \t");
	size_t l = strcspn(p, " \t\r\n");
	if (l == 0 || p[l] == '\0' || p[0] != '/')
		return NULL; /* no end of line within the buffer: not trusted */
	p[l] = '\0';
	return xstrdup(p);
}

/* ---- placing files at a destination ---- */

/* Make the directories that lead to dest (absolute in the appliance):
 * entries already there are used (and their symlinks followed); names the
 * root has come from the root (a symlink stays a symlink); others become
 * directories 0755.  *out gets the resolved path of dest's parent joined
 * with its last name. */
static int
place(struct app *a, const char *dest, char **out, char *err, size_t errlen)
{
	struct sbuf cur, rest, tmp;
	int hops = 0, rc = -1;
	const char *base = strrchr(dest, '/');

	if (base == NULL || base[1] == '\0' || strcmp(base, "/.") == 0 || strcmp(base, "/..") == 0)
		return seterr(err, errlen, "%s: not a file name", dest);
	sbuf_init(&cur);
	sbuf_init(&rest);
	sbuf_init(&tmp);
	sbuf_adds(&cur, "");
	sbuf_add(&rest, dest, (size_t)(base - dest));
	for (;;) {
		char *r = rest.s;
		while (*r == '/')
			r++;
		if (*r == '\0')
			break;
		size_t clen = strcspn(r, "/");
		char *next = r + clen;
		if ((clen == 1 && r[0] == '.') || (clen == 2 && r[0] == '.' && r[1] == '.')) {
			if (clen == 2) {
				char *sl = strrchr(cur.s, '/');
				cur.len = sl ? (size_t)(sl - cur.s) : 0;
				cur.s[cur.len] = '\0';
			}
			sbuf_consume(&rest, (size_t)(next - rest.s));
			continue;
		}
		sbuf_reset(&tmp);
		if (cur.len > 0)
			sbuf_printf(&tmp, "%s/", cur.s);
		sbuf_add(&tmp, r, clen);
		struct ent *e = ent_find(a, tmp.s);
		const char *target = NULL;
		char lbuf[PATH_MAX];
		if (e == NULL) {
			struct stat st;
			char *hp = host_path(a, tmp.s);
			uint32_t mode = S_IFDIR | 0755;
			int have = lstat(hp, &st) == 0;
			if (have && S_ISLNK(st.st_mode)) {
				ssize_t tl = readlink(hp, lbuf, sizeof(lbuf) - 1);
				if (tl > 0) {
					lbuf[tl] = '\0';
					e = ent_put(a, tmp.s, E_LINK, S_IFLNK | 0777, 0, err,
						    errlen);
					if (e && e->data == NULL)
						e->data = xstrdup(lbuf);
				}
			} else if (have && S_ISDIR(st.st_mode))
				mode = S_IFDIR | (st.st_mode & 07777);
			free(hp);
			if (e == NULL &&
			    (e = ent_put(a, tmp.s, E_DIR, mode, 0, err, errlen)) == NULL)
				goto out;
		}
		if (e->kind == E_LINK) {
			target = e->data;
			if (++hops > MAX_HOPS) {
				seterr(err, errlen, "%s: %s", dest, strerror(ELOOP));
				goto out;
			}
			follow_link(&cur, &rest, &tmp, target, next);
			continue;
		}
		if (e->kind != E_DIR) {
			seterr(err, errlen, "%s: /%s is not a directory", dest, tmp.s);
			goto out;
		}
		sbuf_reset(&cur);
		sbuf_adds(&cur, tmp.s);
		sbuf_consume(&rest, (size_t)(next - rest.s));
	}
	*out = cur.len ? xasprintf("%s/%s", cur.s, base + 1) : xstrdup(base + 1);
	rc = 0;
out:
	sbuf_free(&cur);
	sbuf_free(&rest);
	sbuf_free(&tmp);
	return rc;
}

static int
put_data(struct app *a, const char *dest, uint32_t mode, const char *data, size_t len, char *err,
	 size_t errlen)
{
	char *p = NULL;
	struct ent *e;

	if (place(a, dest, &p, err, errlen) < 0)
		return -1;
	e = ent_put(a, p, S_ISLNK(mode) ? E_LINK : E_DATA, mode, 1, err, errlen);
	free(p);
	if (e == NULL)
		return -1;
	e->data = xrealloc(NULL, len + 1);
	memcpy(e->data, data, len);
	e->data[len] = '\0';
	e->len = len;
	return 0;
}

/* ---- -f: files and trees ---- */

static int add_tree(struct app *a, const char *src, const char *dest, int from_root, char *err,
		    size_t errlen);

/* One file system object at host path src, to appliance path dest (its
 * parents resolved already).  Directories recurse. */
static int
add_obj(struct app *a, const char *src, const char *dest, const struct stat *st, int from_root,
	char *err, size_t errlen)
{
	struct ent *e;
	uint32_t perm = st->st_mode & 07777;

	if (S_ISDIR(st->st_mode)) {
		if (ent_put(a, dest, E_DIR, S_IFDIR | perm, 0, err, errlen) == NULL)
			return -1;
		return add_tree(a, src, dest, from_root, err, errlen);
	}
	if (S_ISLNK(st->st_mode)) {
		char t[PATH_MAX];
		ssize_t n = readlink(src, t, sizeof(t) - 1);
		if (n <= 0)
			return seterr(err, errlen, "%s: %s", src,
				      n < 0 ? strerror(errno) : "empty link");
		t[n] = '\0';
		if ((e = ent_put(a, dest, E_LINK, S_IFLNK | 0777, 1, err, errlen)) == NULL)
			return -1;
		free(e->data);
		e->data = xstrdup(t);
		if (from_root) {
			/* the target comes along when the root has it; a relative
			 * target is relative to the link's place in the root */
			const char *in_root = src + strlen(a->root), *tt = t;
			size_t dl = (size_t)(strrchr(in_root, '/') - in_root);
			/* The link's directory is a real one (no symlink in it), so
			 * leading ".." can be taken off by name, and no directory on
			 * the way is added that the appliance did not have. */
			for (;;) {
				if (strncmp(tt, "./", 2) == 0)
					tt += 2;
				else if (strncmp(tt, "../", 3) == 0) {
					tt += 3;
					while (dl > 0 && in_root[dl - 1] != '/')
						dl--;
					if (dl > 0)
						dl--;
				} else
					break;
			}
			char *abs =
			    t[0] == '/' ? xstrdup(t) : xasprintf("%.*s/%s", (int)dl, in_root, tt);
			char *res = NULL, e2[8];
			struct stat tst;
			if (walk(a, abs, W_FOLLOW, &res, &tst, e2, sizeof(e2)) == 0 &&
			    S_ISREG(tst.st_mode) && add_elf(a, abs, NULL, err, errlen) < 0) {
				free(res);
				free(abs);
				return -1;
			}
			free(res);
			free(abs);
		}
		return 0;
	}
	if (S_ISREG(st->st_mode)) {
		if (access(src, R_OK) < 0)
			return seterr(err, errlen, "%s: %s", src, strerror(errno));
		if ((e = ent_put(a, dest, E_FILE, S_IFREG | perm, 1, err, errlen)) == NULL)
			return -1;
		e->src = xstrdup(src);
		e->size = (uint64_t)st->st_size;
		char *interp = shebang(src);
		if (interp) {
			char *res = NULL, e2[8];
			struct stat tst;
			int rc = 0;
			if (walk(a, interp, W_FOLLOW, &res, &tst, e2, sizeof(e2)) == 0)
				rc = add_elf(a, interp, NULL, err, errlen);
			free(res);
			free(interp);
			if (rc < 0)
				return -1;
		}
		return closure(a, dest, src, NULL, err, errlen);
	}
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) || S_ISFIFO(st->st_mode)) {
		if ((e = ent_put(a, dest, E_NODE, st->st_mode & (S_IFMT | 07777), 1, err,
				 errlen)) == NULL)
			return -1;
		e->rdev = st->st_rdev;
		return 0;
	}
	return 0; /* sockets: nothing to carry */
}

static int
cmpstr(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static int
add_tree(struct app *a, const char *src, const char *dest, int from_root, char *err, size_t errlen)
{
	DIR *d = opendir(src);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	if (d == NULL)
		return seterr(err, errlen, "%s: %s", src, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmpstr);
	for (size_t i = 0; i < n; i++) {
		char *s = xasprintf("%s/%s", src, names[i]);
		char *t = xasprintf("%s/%s", dest, names[i]);
		struct stat st;
		if (rc == 0 && lstat(s, &st) < 0)
			rc = seterr(err, errlen, "%s: %s", s, strerror(errno));
		else if (rc == 0)
			rc = add_obj(a, s, t, &st, from_root, err, errlen);
		free(s);
		free(t);
		free(names[i]);
	}
	free(names);
	return rc;
}

/* Normalize an absolute path textually ("/a//b/./c" -> "/a/b/c"); ".."
 * is refused in destinations. */
static int
clean_dest(const char *in, char **out, char *err, size_t errlen)
{
	struct sbuf b;

	if (in[0] != '/')
		return seterr(err, errlen, "%s: a destination must be an absolute path", in);
	sbuf_init(&b);
	sbuf_adds(&b, "");
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		size_t l = strcspn(p, "/");
		if (l == 0)
			break;
		if (l == 2 && p[0] == '.' && p[1] == '.') {
			sbuf_free(&b);
			return seterr(err, errlen, "%s: \"..\" in a destination", in);
		}
		if (!(l == 1 && p[0] == '.')) {
			sbuf_adds(&b, "/");
			sbuf_add(&b, p, l);
		}
		p += l;
	}
	if (b.len == 0) {
		sbuf_free(&b);
		return seterr(err, errlen, "%s: the destination is the root", in);
	}
	*out = xstrdup(b.s);
	sbuf_free(&b);
	return 0;
}

/* -f SRC[=DEST] */
static int
add_file_arg(struct app *a, const struct app_item *it, char *err, size_t errlen)
{
	char *arg = xstrdup(it->arg), *eq = strchr(arg, '='), *dest = NULL, *src = NULL;
	char *res = NULL, *p = NULL;
	struct stat st;
	int rc = -1, from_root;

	if (eq) {
		*eq = '\0';
		if (clean_dest(eq + 1, &dest, err, errlen) < 0)
			goto out;
	}
	if (arg[0] == '\0') {
		seterr(err, errlen, "-f needs a file name");
		goto out;
	}
	from_root = arg[0] == '/';
	if (from_root) {
		/* In the root: the names on the way are the root's. */
		if (walk(a, arg, dest ? W_FOLLOW : W_ADD | W_FOLLOW, &res, &st, err, errlen) < 0)
			goto out;
		if (res[0] == '\0') {
			seterr(err, errlen, "-f %s: the whole root cannot be an appliance file",
			       arg);
			goto out;
		}
		src = host_path(a, res);
		if (dest == NULL)
			p = xstrdup(res);
	} else {
		src = it->base ? xasprintf("%s/%s", it->base, arg) : xstrdup(arg);
		if (stat(src, &st) < 0) {
			seterr(err, errlen, "%s: %s", src, strerror(errno));
			goto out;
		}
		if (dest == NULL) {
			char *d = xasprintf("/%s", arg);
			int r = clean_dest(d, &dest, err, errlen);
			free(d);
			if (r < 0)
				goto out;
		}
	}
	if (p == NULL && place(a, dest, &p, err, errlen) < 0)
		goto out;
	rc = add_obj(a, src, p, &st, from_root, err, errlen);
out:
	free(arg);
	free(dest);
	free(src);
	free(res);
	free(p);
	return rc;
}

/* ---- programs ---- */

/* busybox's applets as symlinks to it, from its own --list-full (the one
 * program khappliance runs: it is the only source of that list). */
static int
busybox_links(struct app *a, const char *bbpath, char *err, size_t errlen)
{
	int fds[2], status;
	pid_t pid;
	char *hp = host_path(a, bbpath), *line = NULL;
	size_t cap = 0;
	FILE *f;
	int rc = 0, lines = 0;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(hp);
		return seterr(err, errlen, "pipe: %s", strerror(errno));
	}
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		free(hp);
		return seterr(err, errlen, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(fds[1], 1);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 2);
		}
		execl(hp, "busybox", "--list-full", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	if ((f = fdopen(fds[0], "r")) == NULL)
		abort();
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || strstr(line, "..") || line[0] == '/')
			continue;
		lines++;
		char *dest = xasprintf("/%s", line), *p = NULL, *tgt = xasprintf("/%s", bbpath);
		if (rc == 0 && place(a, dest, &p, err, errlen) < 0)
			rc = -1;
		const char *bn = strrchr(line, '/');
		char *key = xasprintf("\n%s\n", bn ? bn + 1 : line);
		int shadowed = a->progs.s && strstr(a->progs.s, key) != NULL;
		free(key);
		if (rc == 0 && !shadowed && ent_find(a, p) == NULL) {
			struct ent *e = ent_put(a, p, E_LINK, S_IFLNK | 0777, 0, err, errlen);
			if (e == NULL)
				rc = -1;
			else {
				e->data = xstrdup(tgt);
				e->weak = 1;
			}
		}
		free(p);
		free(dest);
		free(tgt);
	}
	free(line);
	fclose(f);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	free(hp);
	if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || lines == 0))
		rc = seterr(err, errlen, "/%s --list-full did not list its applets", bbpath);
	return rc;
}

/* A PROGRAM: a name in the root's PATH, or an absolute path in the root. */
static int
add_program(struct app *a, const char *prog, char *err, size_t errlen)
{
	char *path = NULL, *res = NULL;
	struct stat st;
	int rc = -1;

	if (prog[0] == '\0')
		return seterr(err, errlen, "an empty program name");
	if (prog[0] == '/')
		path = xstrdup(prog);
	else if (strchr(prog, '/'))
		return seterr(err, errlen,
			      "%s: a program is a name or an absolute path in the root (-f adds "
			      "other files)",
			      prog);
	else {
		char *dirs = xstrdup(ROOT_PATH), *save = NULL;
		for (char *d = strtok_r(dirs, ":", &save); d && !path;
		     d = strtok_r(NULL, ":", &save)) {
			char *c = xasprintf("%s/%s", d, prog), e[8];
			if (walk(a, c, W_FOLLOW, &res, &st, e, sizeof(e)) == 0 &&
			    S_ISREG(st.st_mode) && (st.st_mode & 0111))
				path = c;
			else
				free(c);
			free(res);
			res = NULL;
		}
		free(dirs);
		if (path == NULL)
			return seterr(err, errlen, "%s: no such program in the root's PATH (%s)",
				      prog, ROOT_PATH);
	}
	if (add_root_file(a, path, &res, &st, err, errlen) < 0)
		goto out;
	char *hp = host_path(a, res);
	char *interp = shebang(hp);
	if (interp) {
		char *r2 = NULL;
		struct stat st2;
		if (add_root_file(a, interp, &r2, &st2, err, errlen) < 0) {
			seterr(err, errlen, "%s: its interpreter %s is not in the root", path,
			       interp);
			free(interp);
			free(hp);
			goto out;
		}
		free(interp);
		char *hp2 = host_path(a, r2);
		int r = closure(a, r2, hp2, NULL, err, errlen);
		free(hp2);
		free(r2);
		if (r < 0) {
			free(hp);
			goto out;
		}
	}
	int r = closure(a, res, hp, NULL, err, errlen);
	free(hp);
	if (r < 0)
		goto out;
	const char *b = strrchr(res, '/');
	b = b ? b + 1 : res;
	if (strcmp(b, "busybox") == 0) {
		if (busybox_links(a, res, err, errlen) < 0)
			goto out;
		free(a->busybox);
		a->busybox = xstrdup(res);
	} else {
		/* A real program beats busybox's applet of the same name, wherever
		 * PATH would have found the applet first. */
		size_t bl = strlen(b);
		for (size_t i = 0; i < a->n; i++) {
			const char *eb = strrchr(a->e[i].path, '/');
			eb = eb ? eb + 1 : a->e[i].path;
			if (a->e[i].weak && strlen(eb) == bl && strcmp(eb, b) == 0)
				a->e[i].gone = 1;
		}
		if (a->progs.len == 0)
			sbuf_adds(&a->progs, "\n");
		sbuf_printf(&a->progs, "%s\n", b);
	}
	rc = 0;
out:
	free(path);
	free(res);
	return rc;
}

/* ---- users ---- */

/* The line of file (passwd or group, under the root) whose field f (0-based)
 * is key, or NULL. */
static char *
db_line(struct app *a, const char *file, int f, const char *key)
{
	char *hp = host_path(a, file), *line = NULL, *found = NULL;
	size_t cap = 0, kl = strlen(key);
	FILE *fp = fopen(hp, "re");

	free(hp);
	if (fp == NULL)
		return NULL;
	while (!found && getline(&line, &cap, fp) > 0) {
		char *p = line;
		for (int i = 0; i < f && p; i++)
			if ((p = strchr(p, ':')) != NULL)
				p++;
		if (p && strncmp(p, key, kl) == 0 && (p[kl] == ':' || p[kl] == '\n'))
			found = xstrdup(line);
	}
	free(line);
	fclose(fp);
	if (found)
		found[strcspn(found, "\n")] = '\0';
	return found;
}

static int
has_line(const char *text, const char *line)
{
	size_t l = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line, l) == 0 && (p[l] == '\n' || p[l] == '\0'))
			return 1;
	return 0;
}

static int
gen_users(struct app *a, char *err, size_t errlen)
{
	struct sbuf pw, gr;
	int rc = -1;
	int have_pw = ent_find(a, "etc/passwd") != NULL, have_gr = ent_find(a, "etc/group") != NULL;

	if (have_pw && have_gr)
		return a->users.len ? seterr(err, errlen,
					     "-u: /etc/passwd and /etc/group are given "
					     "as files already")
				    : 0;
	sbuf_init(&pw);
	sbuf_init(&gr);
	sbuf_adds(&pw, "root:x:0:0:root:/root:/bin/sh\n");
	sbuf_adds(&gr, "root:x:0:\n");
	for (char *u = a->users.s; u && *u;) {
		size_t l = strcspn(u, "\n");
		char *name = xasprintf("%.*s", (int)l, u);
		u += l + (u[l] == '\n');
		char *line = db_line(a, "/etc/passwd", 0, name), *gl = NULL;
		if (line == NULL) {
			seterr(err, errlen, "-u %s: no such user in the root's /etc/passwd", name);
			free(name);
			goto out;
		}
		if (strcmp(name, "root") != 0)
			sbuf_printf(&pw, "%s\n", line);
		char *g = line;
		for (int i = 0; i < 3 && g; i++)
			if ((g = strchr(g, ':')) != NULL)
				g++;
		if (g) {
			char gid[24];
			snprintf(gid, sizeof(gid), "%.*s", (int)strcspn(g, ":"), g);
			gl = db_line(a, "/etc/group", 2, gid);
		}
		if (gl && !has_line(gr.s, gl))
			sbuf_printf(&gr, "%s\n", gl);
		free(gl);
		free(line);
		free(name);
	}
	if (!have_pw && put_data(a, "/etc/passwd", S_IFREG | 0644, pw.s, pw.len, err, errlen) < 0)
		goto out;
	if (!have_gr && put_data(a, "/etc/group", S_IFREG | 0644, gr.s, gr.len, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	sbuf_free(&pw);
	sbuf_free(&gr);
	return rc;
}

/* ---- the public face ---- */

struct app *
app_new(const char *root, char *err, size_t errlen)
{
	struct app *a;
	struct stat st;
	char *r;

	if (root == NULL || root[0] == '\0')
		root = "/";
	if ((r = realpath(root, NULL)) == NULL) {
		seterr(err, errlen, "%s: %s", root, strerror(errno));
		return NULL;
	}
	if (stat(r, &st) < 0 || !S_ISDIR(st.st_mode)) {
		seterr(err, errlen, "%s: not a directory", root);
		free(r);
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		abort();
	if (strcmp(r, "/") == 0)
		r[0] = '\0';
	a->root = r;
	sbuf_init(&a->users);
	sbuf_init(&a->progs);
	return a;
}

void
app_free(struct app *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->e[i].path);
		free(a->e[i].src);
		free(a->e[i].data);
	}
	for (size_t i = 0; i < a->nldconf; i++)
		free(a->ldconf[i]);
	free(a->ldconf);
	free(a->e);
	free(a->ht);
	free(a->root);
	free(a->busybox);
	sbuf_free(&a->users);
	sbuf_free(&a->progs);
	free(a);
}

/* --init FILE: the service script at /etc/kh/service, mode 0755. */
static int
add_service(struct app *a, const struct app_item *it, char *err, size_t errlen)
{
	char *src, *p = NULL;
	struct stat st;
	struct ent *e;
	int rc = -1;

	if (a->have_service)
		return seterr(err, errlen, "--init given twice");
	if (it->arg[0] == '/')
		src = host_path(a, it->arg);
	else
		src = it->base ? xasprintf("%s/%s", it->base, it->arg) : xstrdup(it->arg);
	if (stat(src, &st) < 0 || access(src, R_OK) < 0) {
		seterr(err, errlen, "%s: %s", src, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, "%s: not a regular file", src);
		goto out;
	}
	if (place(a, "/" SERVICE_PATH, &p, err, errlen) < 0)
		goto out;
	if ((e = ent_put(a, p, E_FILE, S_IFREG | 0755, 1, err, errlen)) == NULL)
		goto out;
	e->src = xstrdup(src);
	e->size = (uint64_t)st.st_size;
	a->have_service = 1;
	rc = 0;
out:
	free(src);
	free(p);
	return rc;
}

/* The modules a vm node's interfaces need: virtio-net on PCI.  Distribution
 * kernels build them as modules (Debian's cloud kernel does). */
static const char *const kmod_wanted[] = {"virtio_pci.ko", "virtio_net.ko"};
#define KMOD_MAX 32

struct kmods {
	char *dep;   /* modules.dep, NUL-terminated, lines split in place */
	char **line; /* each line: "path: dep dep ..." */
	size_t nline;
	const char *order[KMOD_MAX]; /* paths in load order */
	size_t n;
};

/* The modules.dep line of the module at path (relative to the modules
 * directory), or NULL. */
static char *
kmod_line(struct kmods *k, const char *path, size_t plen)
{
	for (size_t i = 0; i < k->nline; i++)
		if (strncmp(k->line[i], path, plen) == 0 && k->line[i][plen] == ':')
			return k->line[i];
	return NULL;
}

/* Module path (plen bytes) after its dependencies, each once. */
static int
kmod_visit(struct kmods *k, const char *path, size_t plen, int depth, char *err, size_t errlen)
{
	char *l = kmod_line(k, path, plen);

	for (size_t i = 0; i < k->n; i++)
		if (strcspn(k->order[i], ":") == plen && strncmp(k->order[i], path, plen) == 0)
			return 0;
	if (l == NULL)
		return seterr(err, errlen, "--kmod: %.*s is not in modules.dep", (int)plen, path);
	if (depth > 16 || k->n == KMOD_MAX)
		return seterr(err, errlen, "--kmod: %.*s: too many dependencies", (int)plen, path);
	for (const char *d = l + plen + 1; *d;) {
		d += strspn(d, " \t");
		size_t n = strcspn(d, " \t");
		if (n > 0 && kmod_visit(k, d, n, depth + 1, err, errlen) < 0)
			return -1;
		d += n;
	}
	k->order[k->n++] = l; /* its line starts with its path */
	return 0;
}

/* --kmod KVER: virtio_pci and virtio_net of the root's kernel KVER with
 * what they depend on (modules.dep), and /etc/kh/modules listing them in
 * load order for /init (a vm node's; a ct node has the host's drivers). */
static int
add_kmods(struct app *a, const char *kver, char *err, size_t errlen)
{
	struct kmods *k;
	struct sbuf list;
	char *path;
	int fd, rc = -1;
	struct stat st;

	if (a->have_kmods)
		return seterr(err, errlen, "--kmod given twice");
	if (kver[0] == '\0' || kver[0] == '.' ||
	    strspn(kver, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.+_-") != strlen(kver))
		return seterr(err, errlen, "--kmod %s: not a kernel version", kver);
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		abort();
	sbuf_init(&list);
	path = xasprintf("%s/lib/modules/%s/modules.dep", a->root, kver);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		seterr(err, errlen, "--kmod %s: %s: %s", kver, path, strerror(errno));
		goto out;
	}
	k->dep = xrealloc(NULL, (size_t)st.st_size + 1);
	ssize_t n = read(fd, k->dep, (size_t)st.st_size);
	if (n != st.st_size) {
		seterr(err, errlen, "--kmod %s: read %s", kver, path);
		goto out;
	}
	k->dep[n] = '\0';
	for (char *l = k->dep, *nl; *l; l = nl) {
		if ((k->nline & (k->nline + 1)) == 0) /* 0, 1, 3, 7, ...: grow */
			k->line = xrealloc(k->line, (2 * k->nline + 2) * sizeof(*k->line));
		nl = strchr(l, '\n');
		if (nl)
			*nl++ = '\0';
		else
			nl = l + strlen(l);
		k->line[k->nline++] = l;
	}
	for (size_t w = 0; w < sizeof(kmod_wanted) / sizeof(kmod_wanted[0]); w++) {
		size_t wl = strlen(kmod_wanted[w]), i;
		for (i = 0; i < k->nline; i++) {
			size_t pl = strcspn(k->line[i], ":");
			if (pl >= wl && strncmp(k->line[i] + pl - wl, kmod_wanted[w], wl) == 0 &&
			    (pl == wl || k->line[i][pl - wl - 1] == '/'))
				break;
		}
		if (i == k->nline) {
			seterr(err, errlen,
			       "--kmod %s: no %s (is virtio built in? then --kmod is not needed)",
			       kver, kmod_wanted[w]);
			goto out;
		}
		if (kmod_visit(k, k->line[i], strcspn(k->line[i], ":"), 0, err, errlen) < 0)
			goto out;
	}
	for (size_t i = 0; i < k->n; i++) {
		size_t pl = strcspn(k->order[i], ":");
		char *src = xasprintf("/lib/modules/%s/%.*s", kver, (int)pl, k->order[i]);
		struct app_item it = {.kind = APP_FILE, .arg = src, .where = "--kmod"};
		int r = add_file_arg(a, &it, err, errlen);
		sbuf_printf(&list, "%s\n", src);
		free(src);
		if (r < 0)
			goto out;
	}
	if (put_data(a, "/etc/kh/modules", S_IFREG | 0644, list.s, list.len, err, errlen) < 0)
		goto out;
	a->have_kmods = 1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	free(k->dep);
	free(k->line);
	free(k);
	sbuf_free(&list);
	return rc;
}

int
app_add(struct app *a, const struct app_item *it, char *err, size_t errlen)
{
	char *p = NULL, *d = NULL;
	int rc;

	switch (it->kind) {
	case APP_PROGRAM:
		return add_program(a, it->arg, err, errlen);
	case APP_FILE:
		return add_file_arg(a, it, err, errlen);
	case APP_INIT:
		return add_service(a, it, err, errlen);
	case APP_KMOD:
		return add_kmods(a, it->arg, err, errlen);
	case APP_USER:
		if (!valid_name(it->arg))
			return seterr(err, errlen, "-u %s: not a user name", it->arg);
		sbuf_printf(&a->users, "%s\n", it->arg);
		return 0;
	case APP_DIR:
		if (clean_dest(it->arg, &d, err, errlen) < 0)
			return -1;
		rc = place(a, d, &p, err, errlen);
		if (rc == 0 && ent_put(a, p, E_DIR, S_IFDIR | 0755, 0, err, errlen) == NULL)
			rc = -1;
		free(p);
		free(d);
		return rc;
	}
	return seterr(err, errlen, "unknown item");
}

/* Is there something at path (absolute in the appliance), following the
 * appliance's own symlinks? */
static struct ent *
lookup(struct app *a, const char *path)
{
	char *p = NULL, e[8];
	struct ent *en;
	int hops = 0;
	char *cur = xstrdup(path);

	for (;;) {
		if (place(a, cur, &p, e, sizeof(e)) < 0) {
			en = NULL;
			break;
		}
		en = ent_find(a, p);
		if (en == NULL || en->kind != E_LINK || ++hops > MAX_HOPS)
			break;
		char *dir = xstrdup(p), *sl = strrchr(dir, '/');
		if (sl)
			*sl = '\0';
		else
			dir[0] = '\0';
		free(cur);
		cur = en->data[0] == '/' ? xstrdup(en->data) : xasprintf("/%s/%s", dir, en->data);
		free(dir);
		free(p);
		p = NULL;
	}
	free(p);
	free(cur);
	return en != NULL && en->kind == E_LINK ? NULL : en;
}

static const char init_script[] =
    "#!/bin/sh\n"
    "# /init of a Kittyhawk appliance, written by khappliance: PID 1 of the\n"
    "# node.  Mount what is not mounted; on a vm node (kh.node= on the kernel\n"
    "# command line) load the modules /etc/kh/modules lists (khappliance\n"
    "# --kmod), set the hostname and configure each eth<k> from the plan\n"
    "# there (kh.eth<k>=IPV4/LEN,IPV6/LEN,mac=MAC[,gw=GW,gw6=GW6]); a ct node's\n"
    "# are configured already.  Start the service (/etc/kh/service) with its\n"
    "# output on the console, keep a shell on the console.  A vm node powers\n"
    "# off when the shell ends (a ct node ends with its PID 1).\n"
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    "HOME=/root\n"
    "export PATH HOME\n"
    "[ -e /proc/self ] || mount -t proc proc /proc 2>/dev/null\n"
    "[ -e /sys/class ] || mount -t sysfs sysfs /sys 2>/dev/null\n"
    "[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null\n"
    "kh_vm() {\n"
    "\tif [ -r /etc/kh/modules ]; then\n"
    "\t\twhile read -r m; do insmod \"$m\" 2>/dev/null; done </etc/kh/modules\n"
    "\tfi\n"
    "\tfor w in $1; do\n"
    "\t\tcase $w in kh.node=*) echo \"${w#kh.node=}\" >/proc/sys/kernel/hostname ;; esac\n"
    "\tdone\n"
    "\tif ! command -v ip >/dev/null 2>&1; then\n"
    "\t\techo \"kh: no ip program: the node's interfaces stay unconfigured\"\n"
    "\t\treturn\n"
    "\tfi\n"
    "\tip link set dev lo up\n"
    "\t# eth<k> is the NIC with the plan's MAC, in whatever order they came\n"
    "\t# (a driver may take a moment to show them).\n"
    "\tfor w in $1; do\n"
    "\t\tcase $w in kh.eth[0-9]*=*mac=*) ;; *) continue ;; esac\n"
    "\t\tifc=${w%%=*} mac=${w##*mac=}\n"
    "\t\tifc=${ifc#kh.} mac=${mac%%,*}\n"
    "\t\tn=0\n"
    "\t\twhile [ $n -lt 50 ] && ! grep -qx \"$mac\" /sys/class/net/*/address 2>/dev/null; do\n"
    "\t\t\tsleep 0.1; n=$((n + 1))\n"
    "\t\tdone\n"
    "\t\tfor d in /sys/class/net/*; do\n"
    "\t\t\tread -r a <\"$d/address\" 2>/dev/null || continue\n"
    "\t\t\t[ \"$a\" = \"$mac\" ] && [ \"${d##*/}\" != \"$ifc\" ] &&\n"
    "\t\t\t\tip link set dev \"${d##*/}\" name \"kh-$ifc\"\n"
    "\t\tdone\n"
    "\tdone\n"
    "\tfor d in /sys/class/net/kh-*; do\n"
    "\t\t[ -e \"$d\" ] && ip link set dev \"${d##*/}\" name \"${d##*/kh-}\"\n"
    "\tdone\n"
    "\tfor w in $1; do\n"
    "\t\tcase $w in kh.eth[0-9]*=*) ;; *) continue ;; esac\n"
    "\t\tifc=${w%%=*}\n"
    "\t\tifc=${ifc#kh.}\n"
    "\t\tfor k in accept_dad router_solicitations; do\n"
    "\t\t\techo 0 >\"/proc/sys/net/ipv6/conf/$ifc/$k\" 2>/dev/null\n"
    "\t\tdone\n"
    "\t\tip link set dev \"$ifc\" up || continue\n"
    "\t\tIFS=,\n"
    "\t\tset -- ${w#*=}\n"
    "\t\tunset IFS\n"
    "\t\tfor a; do\n"
    "\t\t\tcase $a in\n"
    "\t\t\tmac=*) ;;\n"
    "\t\t\tgw=*) ip route add default via \"${a#gw=}\" dev \"$ifc\" ;;\n"
    "\t\t\tgw6=*) ip -6 route add default via \"${a#gw6=}\" dev \"$ifc\" ;;\n"
    "\t\t\t*:*) ip -6 addr add \"$a\" dev \"$ifc\" ;;\n"
    "\t\t\t*) ip addr add \"$a\" dev \"$ifc\" ;;\n"
    "\t\t\tesac\n"
    "\t\tdone\n"
    "\tdone\n"
    "}\n"
    "cmdline=\n"
    "[ \"$$\" = 1 ] && read -r cmdline </proc/cmdline 2>/dev/null\n"
    "vm=\n"
    "case \" $cmdline \" in *\" kh.node=\"*) vm=1; kh_vm \"$cmdline\" ;; esac\n"
    "host=node\n"
    "read -r host </proc/sys/kernel/hostname\n"
    "cd /\n"
    "if [ -x /etc/kh/service ]; then\n"
    "\t/etc/kh/service </dev/null &\n"
    "fi\n"
    "echo \"appliance up on $host\"\n"
    "[ -n \"$vm\" ] || exec /bin/sh\n"
    "/bin/sh\n"
    "poweroff -f\n";

int
app_finish(struct app *a, char *err, size_t errlen)
{
	static const struct {
		const char *path;
		uint32_t mode;
	} dirs[] = {{"/dev", 0755},  {"/proc", 0555}, {"/sys", 0555},
		    {"/tmp", 01777}, {"/run", 0755},  {"/root", 0700}};

	if (lookup(a, "/bin/sh") == NULL) {
		if (a->busybox) {
			char *t = xasprintf("/%s", a->busybox);
			int r = put_data(a, "/bin/sh", S_IFLNK | 0777, t, strlen(t), err, errlen);
			free(t);
			if (r < 0)
				return -1;
		} else if (add_program(a, "/bin/sh", err, errlen) < 0)
			return seterr(err, errlen, "no shell for /init: the root has no /bin/sh");
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *p = NULL;
		if (place(a, dirs[i].path, &p, err, errlen) < 0)
			return -1;
		struct ent *e = ent_put(a, p, E_DIR, S_IFDIR | dirs[i].mode, 0, err, errlen);
		free(p);
		if (e == NULL)
			return -1;
	}
	if (ent_find(a, "init") == NULL && put_data(a, "/init", S_IFREG | 0755, init_script,
						    sizeof(init_script) - 1, err, errlen) < 0)
		return -1;
	return gen_users(a, err, errlen);
}

static int
cmpent(const void *x, const void *y)
{
	return strcmp((*(struct ent *const *)x)->path, (*(struct ent *const *)y)->path);
}

/* The live entries in archive order; *n gets their count. */
static struct ent **
sorted(struct app *a, size_t *n)
{
	struct ent **v = xrealloc(NULL, (a->n + 1) * sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < a->n; i++)
		if (!a->e[i].gone)
			v[(*n)++] = &a->e[i];
	if (*n > 1)
		qsort(v, *n, sizeof(*v), cmpent);
	return v;
}

void
app_foreach(struct app *a,
	    void (*fn)(void *ctx, const char *path, uint32_t mode, const char *target), void *ctx)
{
	size_t n;
	struct ent **v = sorted(a, &n);

	for (size_t i = 0; i < n; i++)
		fn(ctx, v[i]->path, v[i]->mode, v[i]->kind == E_LINK ? v[i]->data : NULL);
	free(v);
}

/* Copy a file's bytes into the archive; it must still be what was added. */
static int
copy_file(struct cpio_out *c, const struct ent *e, unsigned char *buf, size_t bufsz,
	  const char *gzerr, char *err, size_t errlen)
{
	int fd = open(e->src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	uint64_t left = e->size;

	if (fd < 0)
		return seterr(err, errlen, "%s: %s", e->src, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
		close(fd);
		return seterr(err, errlen, "%s: changed while the appliance was made", e->src);
	}
	while (left > 0) {
		ssize_t n = read(fd, buf, left < bufsz ? (size_t)left : bufsz);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return seterr(err, errlen, "%s: %s", e->src,
				      n < 0 ? strerror(errno) : "shrank while being read");
		}
		if (cpio_data(c, buf, (size_t)n) < 0) {
			close(fd);
			return seterr(err, errlen, "%s",
				      gzerr[0] ? gzerr : "cannot write the archive");
		}
		left -= (uint64_t)n;
	}
	close(fd);
	return 0;
}

static int
write_archive(struct app *a, int fd, uint32_t mtime, struct app_stats *st, struct gz_out *gz,
	      char *err, size_t errlen)
{
	size_t n;
	struct ent **v = sorted(a, &n);
	struct cpio_out c;
	char gzerr[256] = "";
	unsigned char *buf = xrealloc(NULL, 1 << 16);
	int rc = -1;

	if (gz_open(gz, fd, 9, gzerr, sizeof(gzerr)) < 0) {
		seterr(err, errlen, "%s", gzerr);
		goto out;
	}
	cpio_init(&c, gz_write, gz, mtime);
	for (size_t i = 0; i < n; i++) {
		const struct ent *e = v[i];
		uint64_t size = 0;
		const char *inl = NULL;
		switch (e->kind) {
		case E_FILE:
			size = e->size;
			break;
		case E_LINK:
			inl = e->data;
			size = strlen(e->data);
			break;
		case E_DATA:
			inl = e->data;
			size = e->len;
			break;
		default:
			break;
		}
		if (size > UINT32_MAX) {
			seterr(err, errlen, "/%s: larger than a cpio entry can hold (4 GiB)",
			       e->path);
			goto fail;
		}
		if (cpio_entry(&c, e->path, e->mode, (uint32_t)size,
			       e->kind == E_NODE ? major(e->rdev) : 0,
			       e->kind == E_NODE ? minor(e->rdev) : 0) < 0)
			goto wfail;
		if (e->kind == E_FILE) {
			if (copy_file(&c, e, buf, 1 << 16, gzerr, err, errlen) < 0)
				goto fail;
		} else if (inl && size > 0 && cpio_data(&c, inl, size) < 0)
			goto wfail;
		st->unpacked += size;
	}
	if (cpio_finish(&c) < 0 || gz_close(gz) < 0)
		goto wfail;
	st->entries = c.nentries;
	rc = 0;
	goto out;
wfail:
	seterr(err, errlen, "%s", gzerr[0] ? gzerr : "cannot write the archive");
fail:
	gz_abort(gz);
out:
	free(buf);
	free(v);
	return rc;
}

/* Copy the bytes of fd (from offset 0) to standard output. */
static int
copy_out(int fd, char *err, size_t errlen)
{
	char buf[65536];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return seterr(err, errlen, "lseek: %s", strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return seterr(err, errlen, "read: %s", strerror(errno));
		if (write_all(1, buf, (size_t)n) < 0)
			return seterr(err, errlen, "standard output: %s", strerror(errno));
	}
	return 0;
}

/* The output file, unnamed (O_TMPFILE) in the directory of path, so that a
 * build that fails or is killed leaves nothing behind.  Where the file
 * system cannot, a named temporary file (*tmp) stands in.  Returns the
 * descriptor, or -1 with err. */
static int
open_out(const char *path, char **tmp, char *err, size_t errlen)
{
	const char *sl = strrchr(path, '/');
	char *dir = sl == NULL	 ? xstrdup(".")
		    : sl == path ? xstrdup("/")
				 : xasprintf("%.*s", (int)(sl - path), path);
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);

	*tmp = NULL;
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		*tmp = xasprintf("%s/.%s.XXXXXX", dir, sl ? sl + 1 : path);
		if ((fd = mkostemp(*tmp, O_CLOEXEC)) < 0) {
			free(*tmp);
			*tmp = NULL;
		}
	}
	if (fd < 0)
		seterr(err, errlen, "%s: %s", path, strerror(errno));
	free(dir);
	return fd;
}

/* Name the finished file path: an unnamed one is linked under a fresh
 * temporary name first (linkat cannot replace), then renamed over path. */
static int
commit_out(int fd, const char *path, const char *tmp, char *err, size_t errlen)
{
	char *mine = NULL;
	int e;

	if (tmp == NULL) {
		const char *sl = strrchr(path, '/');
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		for (unsigned i = 0;; i++) {
			mine = xasprintf("%.*s.%s.%ld.%u", sl ? (int)(sl - path + 1) : 0, path,
					 sl ? sl + 1 : path, (long)getpid(), i);
			if (linkat(AT_FDCWD, proc, AT_FDCWD, mine, AT_SYMLINK_FOLLOW) == 0 ||
			    linkat(fd, "", AT_FDCWD, mine, AT_EMPTY_PATH) == 0)
				break;
			e = errno;
			free(mine);
			if (e != EEXIST || i >= 100)
				return seterr(err, errlen, "%s: %s", path, strerror(e));
		}
		tmp = mine;
	}
	if (rename(tmp, path) < 0) {
		e = errno;
		if (mine)
			unlink(mine);
		free(mine);
		return seterr(err, errlen, "%s: %s", path, strerror(e));
	}
	free(mine);
	return 0;
}

int
app_write(struct app *a, const char *path, int uimage, const char *name, uint32_t mtime,
	  struct app_stats *st, char *err, size_t errlen)
{
	struct gz_out *gz = xrealloc(NULL, sizeof(*gz));
	int to_stdout = strcmp(path, "-") == 0, fd = -1, rc = -1;
	char *tmp = NULL;
	struct statvfs vfs;

	memset(st, 0, sizeof(*st));
	if (to_stdout) {
		/* a file first: the uImage header is written last */
		const char *td = getenv("TMPDIR");
		tmp = xasprintf("%s/khappliance.XXXXXX", td && td[0] ? td : "/tmp");
		if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
			seterr(err, errlen, "temporary file: %s", strerror(errno));
			goto out;
		}
		unlink(tmp);
		free(tmp);
		tmp = NULL;
	} else if ((fd = open_out(path, &tmp, err, errlen)) < 0)
		goto out;
	if (uimage) {
		unsigned char zero[UIMAGE_HDRSIZE] = {0};
		if (write_all(fd, zero, sizeof(zero)) < 0) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
	}
	if (write_archive(a, fd, mtime, st, gz, err, errlen) < 0)
		goto out;
	st->bytes = gz->written;
	if (uimage) {
		struct uimage_hdr h = {.time = mtime,
				       .dcrc = gz->crc,
				       .os = 5, /* Linux */
				       .arch = uimage_host_arch(),
				       .type = UIMAGE_TYPE_RAMDISK,
				       .comp = UIMAGE_COMP_GZIP};
		unsigned char hdr[UIMAGE_HDRSIZE];
		if (gz->written > UINT32_MAX) {
			seterr(err, errlen, "%s: too large for a uImage (4 GiB)", path);
			goto out;
		}
		h.size = (uint32_t)gz->written;
		snprintf(h.name, sizeof(h.name), "%s", name ? name : "kittyhawk appliance");
		uimage_header(hdr, &h);
		if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		st->bytes += UIMAGE_HDRSIZE;
	}
	if (to_stdout) {
		if (copy_out(fd, err, errlen) < 0)
			goto out;
	} else {
		if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (commit_out(fd, path, tmp, err, errlen) < 0)
			goto out;
		free(tmp);
		tmp = NULL;
	}
	if (statvfs(a->root[0] ? a->root : "/", &vfs) == 0)
		st->rootused = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(gz);
	return rc;
}
