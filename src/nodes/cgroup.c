/* cgroup: node control groups on cgroup v1 (a hierarchy per controller) and
 * v2 (one tree).  Everything here is a few small file operations, cheap
 * enough to run on khd's event loop for every node boot. */
#include "common/util.h"
#include "nodes/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

/* Period of the CPU quota: the kernel's default, 100 ms. */
#define CG_PERIOD_US 100000

static const struct {
	const char *name;
	unsigned bit;
} ctrl_names[] = {
    {"cpu", CG_CPU},
    {"cpuacct", CG_CPUACCT},
    {"memory", CG_MEMORY},
    {"pids", CG_PIDS},
};

/* The CG_* bits named in a comma separated list ("rw,cpu,cpuacct"). */
static unsigned
ctrl_mask(const char *list)
{
	unsigned mask = 0;
	const char *p = list;

	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		for (size_t i = 0; i < sizeof(ctrl_names) / sizeof(ctrl_names[0]); i++)
			if (strlen(ctrl_names[i].name) == n &&
			    strncmp(p, ctrl_names[i].name, n) == 0)
				mask |= ctrl_names[i].bit;
		p += n;
		if (*p == ',')
			p++;
	}
	return mask;
}

int
cgroup_detect(void)
{
	struct statfs sf;

	if (statfs("/sys/fs/cgroup", &sf) < 0)
		return -1;
	if ((unsigned long)sf.f_type == CGROUP2_SUPER_MAGIC)
		return 2;
	if ((unsigned long)sf.f_type == TMPFS_MAGIC ||
	    (unsigned long)sf.f_type == CGROUP_SUPER_MAGIC)
		return 1;
	return -1;
}

/* Write val to dir/file.  Returns 0 or -1 with errno. */
static int
put(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX + 64];
	size_t n = strlen(val);
	int fd, saved;
	ssize_t w;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -1;
	w = write(fd, val, n);
	saved = errno;
	close(fd);
	if (w != (ssize_t)n) {
		errno = w < 0 ? saved : EIO;
		return -1;
	}
	return 0;
}

/* Read dir/file (at most len-1 bytes, terminated).  Returns bytes or -1. */
static ssize_t
get(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX + 64];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	r = read(fd, buf, len - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	return r;
}

/* The number after "key " at the start of a line of text, or 0. */
static uint64_t
keyed(const char *text, const char *key)
{
	size_t n = strlen(key);
	const char *p = text;

	while (p != NULL) {
		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

static uint64_t
get_u64(const char *dir, const char *file)
{
	char buf[64];

	if (get(dir, file, buf, sizeof(buf)) <= 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void
unescape(char *s)
{
	char *d = s;

	for (; *s != '\0'; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

struct mnt {
	unsigned ctrl;
	char root[PATH_MAX];
	char point[PATH_MAX];
};

/* The cgroup mounts of the wanted version: v1 hierarchies carrying one of
 * our controllers (the first mount of each), or the cgroup2 mount (the one
 * at /sys/fs/cgroup preferred).  Returns how many, or -1. */
static int
find_mounts(int version, struct mnt *m, int max)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int n = 0;

	if (fp == NULL)
		return -1;
	while (getline(&line, &cap, fp) > 0) {
		char *f[6], *save = NULL, *type, *opts, *sep;
		int i;

		if ((sep = strstr(line, " - ")) == NULL)
			continue;
		*sep = '\0';
		type = strtok_r(sep + 3, " ", &save);
		strtok_r(NULL, " ", &save); /* source */
		opts = strtok_r(NULL, " \n", &save);
		if (type == NULL || opts == NULL)
			continue;
		save = NULL;
		for (i = 0; i < 6; i++)
			if ((f[i] = strtok_r(i ? NULL : line, " ", &save)) == NULL)
				break;
		if (i < 5)
			continue;
		unescape(f[3]);
		unescape(f[4]);
		if (version == 1 && strcmp(type, "cgroup") == 0) {
			unsigned mask = ctrl_mask(opts);
			int dup = 0;
			for (int j = 0; j < n; j++)
				dup |= (m[j].ctrl & mask) != 0;
			if (mask == 0 || dup || n == max)
				continue;
			m[n].ctrl = mask;
		} else if (version == 2 && strcmp(type, "cgroup2") == 0) {
			if (n == 1 && strcmp(m[0].point, "/sys/fs/cgroup") == 0)
				continue;
			n = 0;
			m[n].ctrl = 0;
		} else {
			continue;
		}
		snprintf(m[n].root, sizeof(m[n].root), "%s", f[3]);
		snprintf(m[n].point, sizeof(m[n].point), "%s", f[4]);
		n++;
	}
	free(line);
	fclose(fp);
	return n;
}

/* Our own cgroup in the v1 hierarchy carrying mask, or in v2 (mask 0), from
 * /proc/self/cgroup.  Returns 0 or -1. */
static int
own_cgroup(unsigned mask, char *out, size_t len)
{
	FILE *fp = fopen("/proc/self/cgroup", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = -1;

	if (fp == NULL)
		return -1;
	while (found < 0 && getline(&line, &cap, fp) > 0) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			continue;
		*c2 = '\0';
		line[strcspn(line, ":")] = '\0';
		c2[1 + strcspn(c2 + 1, "\n")] = '\0';
		if (mask == 0 ? (strcmp(line, "0") == 0 && c1[1] == '\0')
			      : (c1[1] != '\0' && (ctrl_mask(c1 + 1) & mask) != 0)) {
			snprintf(out, len, "%s", c2 + 1);
			found = 0;
		}
	}
	free(line);
	fclose(fp);
	return found;
}

/* The directory for facility dirs: mount point + the cgroup path below the
 * mount's root.  Returns 0 or -1. */
static int
base_dir(const struct mnt *m, const char *cg, char *out, size_t len)
{
	size_t rn = strlen(m->root);

	if (strcmp(m->root, "/") != 0) {
		if (strncmp(cg, m->root, rn) != 0 || (cg[rn] != '/' && cg[rn] != '\0'))
			return -1;
		cg += rn;
	}
	while (*cg == '/')
		cg++;
	if (snprintf(out, len, "%s%s%s", m->point, *cg ? "/" : "", cg) >= (int)len)
		return -1;
	/* Trailing slashes would double up in the paths we build. */
	for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--)
		out[n - 1] = '\0';
	return 0;
}

/* v2: enable our controllers for children of dir. */
static int
enable_v2(const char *dir, unsigned ctrl)
{
	char val[64] = "";

	if (ctrl & CG_CPU)
		strcat(val, "+cpu ");
	if (ctrl & CG_MEMORY)
		strcat(val, "+memory ");
	if (ctrl & CG_PIDS)
		strcat(val, "+pids ");
	if (val[0] == '\0')
		return 0;
	return put(dir, "cgroup.subtree_control", val);
}

static int
init_v2(struct cgroup_host *h, const struct mnt *m, const char *parent, char *err, size_t errlen)
{
	char own[PATH_MAX], avail[256], leaf[PATH_MAX + 8];
	const char *cg = parent;

	if (cg == NULL) {
		if (own_cgroup(0, own, sizeof(own)) < 0) {
			seterr(err, errlen, "cgroup: no v2 cgroup in /proc/self/cgroup");
			return -1;
		}
		cg = own;
	}
	if (base_dir(m, cg, h->dir[0].path, sizeof(h->dir[0].path)) < 0) {
		seterr(err, errlen, "cgroup: %s is not below the cgroup2 mount %s", cg, m->point);
		return -1;
	}
	if (get(h->dir[0].path, "cgroup.controllers", avail, sizeof(avail)) < 0) {
		seterr(err, errlen, "cgroup: %s: %s", h->dir[0].path, strerror(errno));
		return -1;
	}
	for (char *p = avail; *p; p++)
		if (*p == ' ' || *p == '\n')
			*p = ',';
	h->ctrl = ctrl_mask(avail) & (CG_CPU | CG_MEMORY | CG_PIDS);
	if (enable_v2(h->dir[0].path, h->ctrl) < 0) {
		/* No internal processes: a cgroup that has processes cannot
		 * give controllers to children.  Step aside into a leaf. */
		if (errno != EBUSY || parent != NULL) {
			seterr(err, errlen, "cgroup: enable controllers in %s: %s", h->dir[0].path,
			       strerror(errno));
			return -1;
		}
		snprintf(leaf, sizeof(leaf), "%s/khd", h->dir[0].path);
		if ((mkdir(leaf, 0755) < 0 && errno != EEXIST) ||
		    put(leaf, "cgroup.procs", "0") < 0 || enable_v2(h->dir[0].path, h->ctrl) < 0) {
			seterr(
			    err, errlen,
			    "cgroup: %s holds other processes; run khd in a cgroup of its own: %s",
			    h->dir[0].path, strerror(errno));
			return -1;
		}
	}
	/* cpu.stat (usage) is in every v2 cgroup, with or without "cpu". */
	h->ctrl |= CG_CPUACCT;
	h->dir[0].ctrl = h->ctrl;
	h->ndirs = 1;
	return 0;
}

static int
init_v1(struct cgroup_host *h, const struct mnt *m, int nm, const char *parent, char *err,
	size_t errlen)
{
	char own[PATH_MAX];

	for (int i = 0; i < nm && h->ndirs < CG_MAXDIRS; i++) {
		const char *cg = parent;
		if (cg == NULL) {
			if (own_cgroup(m[i].ctrl, own, sizeof(own)) < 0)
				continue;
			cg = own;
		}
		if (base_dir(&m[i], cg, h->dir[h->ndirs].path, sizeof(h->dir[0].path)) < 0) {
			seterr(err, errlen, "cgroup: %s is not below the cgroup mount %s", cg,
			       m[i].point);
			return -1;
		}
		h->dir[h->ndirs].ctrl = m[i].ctrl;
		h->ctrl |= m[i].ctrl;
		h->ndirs++;
	}
	if (h->ndirs == 0) {
		seterr(err, errlen, "cgroup: no v1 hierarchy with cpu, memory or pids");
		return -1;
	}
	return 0;
}

int
cgroup_host_init(struct cgroup_host *h, int version, const char *parent, char *err, size_t errlen)
{
	struct mnt *m;
	int n, r;

	memset(h, 0, sizeof(*h));
	if (version == 0 && (version = cgroup_detect()) < 0) {
		seterr(err, errlen, "cgroup: /sys/fs/cgroup is neither cgroup v1 nor v2");
		return -1;
	}
	if (version != 1 && version != 2) {
		seterr(err, errlen, "cgroup: no version %d", version);
		return -1;
	}
	if (parent != NULL && parent[0] != '/') {
		seterr(err, errlen, "cgroup: parent %s is not absolute", parent);
		return -1;
	}
	if ((m = calloc(CG_MAXDIRS, sizeof(*m))) == NULL) {
		seterr(err, errlen, "cgroup: out of memory");
		return -1;
	}
	h->version = version;
	n = find_mounts(version, m, CG_MAXDIRS);
	if (n <= 0) {
		seterr(err, errlen, "cgroup: no cgroup%s mount", version == 2 ? "2" : " v1");
		r = -1;
	} else if (version == 2) {
		r = init_v2(h, &m[0], parent, err, errlen);
	} else {
		r = init_v1(h, m, n, parent, err, errlen);
	}
	free(m);
	return r;
}

/* Full path of rel in hierarchy i. */
static int
node_dir(const struct cgroup_host *h, int i, const char *rel, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/%s", h->dir[i].path, rel) >= (int)len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
valid_rel(const char *rel)
{
	const char *slash = strchr(rel, '/');

	return strlen(rel) < CG_RELMAX && slash != NULL && slash != rel && slash[1] != '\0' &&
	       strchr(slash + 1, '/') == NULL && strstr(rel, "..") == NULL;
}

static int
write_limits(const struct cgroup_host *h, const char *rel, const struct cgroup_limits *lim)
{
	char dir[PATH_MAX + CG_RELMAX], v[64];

	for (int i = 0; i < h->ndirs; i++) {
		unsigned c = h->dir[i].ctrl;
		if (node_dir(h, i, rel, dir, sizeof(dir)) < 0)
			return -1;
		if ((c & CG_CPU) && lim->cpu_milli > 0) {
			long q = (long)lim->cpu_milli * CG_PERIOD_US / 1000;
			if (h->version == 2)
				snprintf(v, sizeof(v), "%ld %d", q, CG_PERIOD_US);
			else
				snprintf(v, sizeof(v), "%ld", q);
			if (put(dir, h->version == 2 ? "cpu.max" : "cpu.cfs_quota_us", v) < 0)
				return -1;
		}
		if ((c & CG_MEMORY) && lim->mem > 0) {
			snprintf(v, sizeof(v), "%llu", (unsigned long long)lim->mem);
			if (put(dir, h->version == 2 ? "memory.max" : "memory.limit_in_bytes", v) <
			    0)
				return -1;
			/* No swap: v1 counts memory+swap (set after the memory
			 * limit, which it may not undercut), v2 swap alone.
			 * Absent without swap accounting, which is as good. */
			if (h->version == 2)
				snprintf(v, sizeof(v), "0");
			if (put(dir,
				h->version == 2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes",
				v) < 0 &&
			    errno != ENOENT)
				return -1;
		}
		if ((c & CG_PIDS) && lim->pids > 0) {
			snprintf(v, sizeof(v), "%d", lim->pids);
			if (put(dir, "pids.max", v) < 0)
				return -1;
		}
	}
	return 0;
}

int
cgroup_node_create(const struct cgroup_host *h, const char *rel, const struct cgroup_limits *lim,
		   char *err, size_t errlen)
{
	char dir[PATH_MAX + CG_RELMAX];
	const char *what = "mkdir";
	int made = 0;

	if (!valid_rel(rel)) {
		seterr(err, errlen, "cgroup: bad node path %s", rel);
		return -1;
	}
	if ((lim->cpu_milli > 0 && !(h->ctrl & CG_CPU)) ||
	    (lim->mem > 0 && !(h->ctrl & CG_MEMORY)) || (lim->pids > 0 && !(h->ctrl & CG_PIDS))) {
		seterr(err, errlen, "cgroup: the %s controller is not available",
		       lim->cpu_milli > 0 && !(h->ctrl & CG_CPU) ? "cpu"
		       : lim->mem > 0 && !(h->ctrl & CG_MEMORY)	 ? "memory"
								 : "pids");
		return -1;
	}
	for (made = 0; made < h->ndirs; made++) {
		size_t fl = strcspn(rel, "/");
		if (node_dir(h, made, rel, dir, sizeof(dir)) < 0)
			goto fail;
		/* The facility directory first; on v2 it passes our
		 * controllers on to its nodes. */
		dir[strlen(h->dir[made].path) + 1 + fl] = '\0';
		if (mkdir(dir, 0755) == 0) {
			if (h->version == 2 && enable_v2(dir, h->ctrl) < 0) {
				what = "enable controllers";
				goto fail;
			}
		} else if (errno != EEXIST) {
			goto fail;
		}
		dir[strlen(dir)] = '/';
		if (mkdir(dir, 0755) < 0) {
			/* Left by a node whose khd died: fine if empty. */
			if (errno != EEXIST || rmdir(dir) < 0 || mkdir(dir, 0755) < 0) {
				what = errno == EBUSY ? "stale node cgroup still has processes"
						      : "mkdir";
				goto fail;
			}
		}
	}
	if (write_limits(h, rel, lim) < 0) {
		what = "set limits";
		goto fail;
	}
	return 0;
fail:
	seterr(err, errlen, "cgroup: %s %s: %s", what, dir, strerror(errno));
	while (--made >= 0)
		if (node_dir(h, made, rel, dir, sizeof(dir)) == 0)
			rmdir(dir);
	return -1;
}

/* The facility directories a rename happens in, kept open: a boot renames
 * its node's cgroup in every hierarchy, and walking each path again costs
 * more than the rename.  One facility at a time (khd has one). */
static struct {
	const struct cgroup_host *h; /* only compared: it may be gone */
	char parent[CG_RELMAX];
	int n;
	int fd[CG_MAXDIRS];
} rn = {.h = NULL};

void
cgroup_rename_forget(void)
{
	for (int i = 0; i < rn.n; i++)
		if (rn.fd[i] >= 0)
			close(rn.fd[i]);
	rn.n = 0;
	rn.h = NULL;
}

/* Rename from to to (two names in one parent directory) by the parent's
 * descriptors.  Returns 0, -1 with errno (nothing renamed), or 1 when it
 * cannot be done this way (try the paths). */
static int
rename_in(const struct cgroup_host *h, const char *from, const char *to)
{
	const char *fs = strrchr(from, '/'), *ts = strrchr(to, '/');
	size_t pl = fs ? (size_t)(fs - from) : 0;
	int i, e;

	if (fs == NULL || ts == NULL || (size_t)(ts - to) != pl || strncmp(from, to, pl) != 0 ||
	    pl >= sizeof(rn.parent))
		return 1;
	if (rn.h != h || strlen(rn.parent) != pl || strncmp(rn.parent, from, pl) != 0) {
		char dir[PATH_MAX + CG_RELMAX];
		cgroup_rename_forget();
		memcpy(rn.parent, from, pl);
		rn.parent[pl] = '\0';
		for (i = 0; i < h->ndirs; i++) {
			rn.fd[i] = -1;
			if (node_dir(h, i, rn.parent, dir, sizeof(dir)) == 0)
				rn.fd[i] = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		}
		rn.n = h->ndirs;
		rn.h = h;
	}
	for (i = 0; i < rn.n; i++)
		if (rn.fd[i] < 0 ? (errno = ENOENT, 1)
				 : renameat(rn.fd[i], fs + 1, rn.fd[i], ts + 1) < 0)
			break;
	if (i == rn.n)
		return 0;
	e = errno;
	while (--i >= 0)
		renameat(rn.fd[i], ts + 1, rn.fd[i], fs + 1);
	/* A directory made again since it was opened: open it afresh. */
	cgroup_rename_forget();
	errno = e;
	return e == ENOENT || e == EBADF ? 1 : -1;
}

int
cgroup_node_rename(const struct cgroup_host *h, const char *from, const char *to)
{
	char a[PATH_MAX + CG_RELMAX], b[PATH_MAX + CG_RELMAX];
	int i, e;

	if (h->version != 1 || !valid_rel(from) || !valid_rel(to)) {
		errno = EINVAL;
		return -1;
	}
	if ((i = rename_in(h, from, to)) <= 0)
		return i;
	for (i = 0; i < h->ndirs; i++)
		if (node_dir(h, i, from, a, sizeof(a)) < 0 ||
		    node_dir(h, i, to, b, sizeof(b)) < 0 || rename(a, b) < 0)
			goto fail;
	return 0;
fail:
	e = errno;
	while (--i >= 0)
		if (node_dir(h, i, from, a, sizeof(a)) == 0 &&
		    node_dir(h, i, to, b, sizeof(b)) == 0)
			rename(b, a);
	errno = e;
	return -1;
}

int
cgroup_node_procs(const struct cgroup_host *h, const char *rel, int *fds)
{
	char dir[PATH_MAX + CG_RELMAX + 16];

	for (int i = 0; i < h->ndirs; i++) {
		if (node_dir(h, i, rel, dir, sizeof(dir) - 16) < 0)
			fds[i] = -1;
		else
			fds[i] = open(strcat(dir, "/cgroup.procs"), O_WRONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			while (--i >= 0)
				close(fds[i]);
			return -1;
		}
	}
	return h->ndirs;
}

int
cgroup_node_dirfd(const struct cgroup_host *h, const char *rel)
{
	char dir[PATH_MAX + CG_RELMAX];

	if (h->version != 2 || node_dir(h, 0, rel, dir, sizeof(dir)) < 0)
		return -1;
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Is pid (still) in the cgroup whose path ends in "/rel"? */
static int
member(long pid, const char *rel)
{
	char path[64], line[PATH_MAX + 64];
	size_t rl = strlen(rel);
	int in = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	while (!in && fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strcspn(line, "\n");
		in = n > rl && line[n - rl - 1] == '/' && strncmp(line + n - rl, rel, rl) == 0;
	}
	fclose(fp);
	return in;
}

/* SIGKILL each process listed in dir/cgroup.procs.  A listed pid may have
 * exited and been reused by the time we signal: pin it with a pidfd, check
 * it is still a member, then signal through the pidfd.  Returns how many
 * members were signalled. */
static int
kill_listed(const char *dir, const char *rel)
{
	char path[PATH_MAX + CG_RELMAX + 16], *line = NULL;
	size_t cap = 0;
	int n = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	while (getline(&line, &cap, fp) > 0) {
		long pid = strtol(line, NULL, 10);
		int pfd;
		if (pid <= 1)
			continue;
		if ((pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0)) < 0 && errno != ENOSYS)
			continue; /* gone already */
		if (member(pid, rel)) {
			if (pfd >= 0)
				syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
			else
				kill((pid_t)pid, SIGKILL); /* before Linux 5.3 */
			n++;
		}
		if (pfd >= 0)
			close(pfd);
	}
	free(line);
	fclose(fp);
	return n;
}

int
cgroup_node_kill(const struct cgroup_host *h, const char *rel)
{
	char dir[PATH_MAX + CG_RELMAX];

	if (node_dir(h, 0, rel, dir, sizeof(dir)) < 0)
		return -1;
	if (h->version == 2 && put(dir, "cgroup.kill", "1") == 0)
		return 0;
	return kill_listed(dir, rel) > 0;
}

/* Remove rel's directories, waiting up to ms for each to empty: a killed
 * process may have left cgroup.procs while its memory is still torn down,
 * and rmdir says EBUSY until it is gone. */
static int
node_remove(const struct cgroup_host *h, const char *rel, int ms, char *err, size_t errlen)
{
	char dir[PATH_MAX + CG_RELMAX];
	int r = 0;

	for (int i = 0; i < h->ndirs; i++) {
		if (node_dir(h, i, rel, dir, sizeof(dir)) < 0)
			return -1;
		for (int tries = 0; rmdir(dir) < 0 && errno != ENOENT; tries++) {
			struct timespec one = {0, 1000000};
			if (errno != EBUSY || tries == ms) {
				seterr(err, errlen, "cgroup: rmdir %s: %s", dir, strerror(errno));
				r = -1;
				break;
			}
			nanosleep(&one, NULL);
		}
		/* The facility directory goes with its last node. */
		*strrchr(dir, '/') = '\0';
		rmdir(dir);
	}
	return r;
}

int
cgroup_node_remove(const struct cgroup_host *h, const char *rel, char *err, size_t errlen)
{
	return node_remove(h, rel, 20, err, errlen);
}

int
cgroup_facility_clear(const struct cgroup_host *h, const char *facility)
{
	return cgroup_facility_clear_but(h, facility, NULL, NULL);
}

int
cgroup_facility_clear_but(const struct cgroup_host *h, const char *facility,
			  int (*keep)(void *arg, int rank), void *arg)
{
	char dir[PATH_MAX + CG_RELMAX], rel[CG_RELMAX];
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (h->ndirs == 0 ||
	    snprintf(dir, sizeof(dir), "%s/kh-%s", h->dir[0].path, facility) >= (int)sizeof(dir))
		return -1;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL) {
		/* n<rank>: a node's; p<rank>: one made ahead (node_ct_prepare) */
		if ((e->d_name[0] != 'n' && e->d_name[0] != 'p') || e->d_type != DT_DIR ||
		    snprintf(rel, sizeof(rel), "kh-%s/%s", facility, e->d_name) >= (int)sizeof(rel))
			continue;
		if (keep && e->d_name[0] == 'n' &&
		    strspn(e->d_name + 1, "0123456789") == strlen(e->d_name + 1) && e->d_name[1] &&
		    keep(arg, atoi(e->d_name + 1)))
			continue;
		/* Without cgroup.kill a process may fork while we read the
		 * list: its children show up in the next round. */
		for (int round = 0; round < 100 && cgroup_node_kill(h, rel) > 0; round++) {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
		/* At start, before serving: a large node (a vm's QEMU) may
		 * take a while to die. */
		if (node_remove(h, rel, 2000, NULL, 0) < 0)
			r = -1;
	}
	closedir(d);
	return r;
}

int
cgroup_node_stats(const struct cgroup_host *h, const char *rel, struct cgroup_stats *st)
{
	char dir[PATH_MAX + CG_RELMAX], buf[1024];

	memset(st, 0, sizeof(*st));
	if (h->version == 2) {
		if (node_dir(h, 0, rel, dir, sizeof(dir)) < 0)
			return -1;
		if (get(dir, "cpu.stat", buf, sizeof(buf)) < 0)
			return -1;
		st->cpu_ns = keyed(buf, "usage_usec") * 1000;
		st->mem = get_u64(dir, "memory.current");
		st->mem_peak = get_u64(dir, "memory.peak");
		if (get(dir, "memory.events", buf, sizeof(buf)) > 0)
			st->oom_kills = keyed(buf, "oom_kill");
		return 0;
	}
	if (node_dir(h, 0, rel, dir, sizeof(dir)) < 0 || access(dir, F_OK) < 0)
		return -1;
	if (cgroup_node_path(h, CG_CPUACCT, rel, dir, sizeof(dir)) == 0)
		st->cpu_ns = get_u64(dir, "cpuacct.usage");
	if (cgroup_node_path(h, CG_MEMORY, rel, dir, sizeof(dir)) == 0) {
		st->mem = get_u64(dir, "memory.usage_in_bytes");
		st->mem_peak = get_u64(dir, "memory.max_usage_in_bytes");
		if (get(dir, "memory.oom_control", buf, sizeof(buf)) > 0)
			st->oom_kills = keyed(buf, "oom_kill");
	}
	return 0;
}

int
cgroup_node_path(const struct cgroup_host *h, unsigned ctl, const char *rel, char *buf, size_t len)
{
	for (int i = 0; i < h->ndirs; i++)
		if (h->dir[i].ctrl & ctl)
			return node_dir(h, i, rel, buf, len);
	return -1;
}
