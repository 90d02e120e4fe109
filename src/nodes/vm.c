/* vm: the QEMU node.  A node is one QEMU process (qemu-system-x86_64)
 * booting the kernel and ramdisk its principal loaded, started by the
 * spawner as a child of khd in the node's cgroup and network namespace;
 * its serial port is the console pty, each domain a virtio-net NIC on a
 * macvtap of the domain's segment.  The kernel and ramdisk are written
 * once per content under the facility's run directory and linked into the
 * node's own directory, from which QEMU loads them. */
#include "nodes/vm.h"
#include "common/log.h"
#include "common/util.h"
#include "nodes/ct_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

const struct node_backend *
node_backend(const char *name)
{
	if (name && strcmp(name, "ct") == 0)
		return &node_ct;
	if (name && strcmp(name, "vm") == 0)
		return &node_vm;
	return NULL;
}

/* An executable named prog in PATH (or prog itself when it has a '/'). */
static int
find_program(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? (snprintf(out, len, "%s", prog), 0) : -1;
	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		if (n > 0 && n < sizeof(buf) - 64) {
			snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
			if (access(buf, X_OK) == 0) {
				snprintf(out, len, "%s", buf);
				return 0;
			}
		}
		p += n + (p[n] == ':');
	}
	return -1;
}

void
node_vm_init(struct node_host *host)
{
	const char *q = getenv("KH_QEMU"), *accel = getenv("KH_VM_ACCEL");
	uint64_t t0;

	host->vm_ok = host->kvm = 0;
	host->vm_why[0] = host->kvm_why[0] = '\0';
	if (find_program(q && *q ? q : "qemu-system-x86_64", host->qemu, sizeof(host->qemu)) < 0) {
		snprintf(host->vm_why, sizeof(host->vm_why),
			 "no %s in PATH (Debian package qemu-system-x86)",
			 q && *q ? q : "qemu-system-x86_64");
		host->qemu[0] = '\0';
		return;
	}
	host->vm_ok = 1;
	/* Debian's qemu-system-data has it; $KH_QEMU_BIOS names another. */
	const char *bios = getenv("KH_QEMU_BIOS");
	snprintf(host->bios, sizeof(host->bios), "%s", bios ? bios : "/usr/share/qemu/qboot.rom");
	if (host->bios[0] && access(host->bios, R_OK) < 0)
		host->bios[0] = '\0';
	if (accel && strcmp(accel, "tcg") == 0) {
		snprintf(host->kvm_why, sizeof(host->kvm_why), "KH_VM_ACCEL=tcg");
		return;
	}
	t0 = now_ns();
	host->kvm = vm_kvm_probe(500, host->kvm_why, sizeof(host->kvm_why));
	host->kvm_probe_us = (now_ns() - t0) / 1000;
}

static int
valid_id(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '-'))
			return 0;
	return 1;
}

/* shared/id holds the bytes (written once, under a temporary name renamed
 * into place when whole); dir/name becomes another link to it. */
static int
place(const char *shared, const char *id, const void *p, size_t len, const char *dir,
      const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32], link_[PATH_MAX];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", shared, id);
	snprintf(link_, sizeof(link_), "%s/%s", dir, name);
	if (stat(path, &st) < 0 || (size_t)st.st_size != len) {
		snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
			return seterr(err, errlen, "vm: %s: %s", tmp, strerror(errno));
		if (write_all(fd, p, len) < 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return seterr(err, errlen, "vm: write %s: %s", tmp, strerror(e));
		}
		close(fd);
		if (rename(tmp, path) < 0) {
			unlink(tmp);
			return seterr(err, errlen, "vm: rename %s: %s", path, strerror(errno));
		}
	}
	/* Readable by QEMU's uid (docs/nodes.md), which gets it by descriptor:
	 * the directories above stay host root's alone (0700). */
	if (chmod(path, 0644) < 0)
		return seterr(err, errlen, "vm: chmod %s: %s", path, strerror(errno));
	unlink(link_);
	if (link(path, link_) < 0)
		return seterr(err, errlen, "vm: link %s: %s", link_, strerror(errno));
	return 0;
}

/* Copies no node links to any more go (a node's own links are removed
 * first, by its reap). */
static void
sweep(const char *shared)
{
	DIR *d = opendir(shared);
	struct dirent *e;
	struct stat st;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_nlink == 1 && strstr(e->d_name, ".tmp-") == NULL)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

/* A node's files: its links (and QEMU's log stays for a post-mortem until
 * the next boot).  Copies nobody links to are swept. */
static void
forget_files(struct node_handle *h)
{
	char path[PATH_MAX + 16], shared[PATH_MAX];
	char *slash;

	if (h->dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/kernel", h->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/initrd", h->dir);
	unlink(path);
	/* The copies live in <run>/vm beside <run>/n<rank>. */
	snprintf(shared, sizeof(shared), "%s", h->dir);
	if ((slash = strrchr(shared, '/')) != NULL) {
		snprintf(slash, sizeof(shared) - (size_t)(slash - shared), "/vm");
		sweep(shared);
	}
	free(h->dir);
	h->dir = NULL;
}

void
node_vm_clear(const char *rundir, int (*keep)(void *arg, int rank), void *arg)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(rundir);

	if (d == NULL)
		return;
	/* the nodes' links first, then the copies nobody links to */
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != 'n' ||
		    strspn(e->d_name + 1, "0123456789") != strlen(e->d_name + 1) ||
		    (keep && e->d_name[1] && keep(arg, atoi(e->d_name + 1))))
			continue;
		snprintf(path, sizeof(path), "%s/%.32s/kernel", rundir, e->d_name);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%.32s/initrd", rundir, e->d_name);
		unlink(path);
	}
	closedir(d);
	snprintf(path, sizeof(path), "%s/vm", rundir);
	sweep(path);
}

static int
vm_boot(struct node_host *host, const struct node_spec *s, struct node_handle *h, char *err,
	size_t errlen)
{
	char path[PATH_MAX + 16], kpath[PATH_MAX + 16], ipath[PATH_MAX + 16];
	char cmdline[VM_CMDLINE_MAX + 1];
	struct cgroup_limits lim;
	struct ct_req *rq = NULL;
	int fds[CT_REQ_MAXFDS], nfds = 0, master = -1, slave = -1, logfd = -1, argc;
	uint64_t mem;
	pid_t pid;

	memset(h, 0, sizeof(*h));
	h->pidfd = h->console = -1;
	if (!host->vm_ok)
		return seterr(err, errlen, "vm: %s", host->vm_why[0] ? host->vm_why : "no QEMU");
	if (s->kernel == NULL || s->kernel_len == 0 || !valid_id(s->kernel_id) ||
	    (s->initrd && !valid_id(s->initrd_id)) || s->scratch == NULL || s->shared == NULL ||
	    s->scratch[0] != '/' || s->shared[0] != '/' || s->rank < 0 || s->name == NULL ||
	    s->facility == NULL || strlen(s->facility) != 8 || s->nnics < 0 ||
	    s->nnics > CT_EXEC_MAXKEEP)
		return seterr(err, errlen, "vm: bad boot request");
	/* QEMU takes the RAM size in MiB. */
	mem = s->mem ? s->mem & ~((1ULL << 20) - 1) : 256ULL << 20;
	if (vm_cmdline(s->cmdline, s->name, s->rank, s->nics, s->nnics, VM_CMDLINE_MAX, cmdline,
		       sizeof(cmdline), err, errlen) < 0)
		return -1;
	if ((mkdir(s->scratch, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(s->shared, 0700) < 0 && errno != EEXIST))
		return seterr(err, errlen, "vm: %s: %s", s->scratch, strerror(errno));
	if ((h->dir = strdup(s->scratch)) == NULL)
		return seterr(err, errlen, "vm: out of memory");
	if (place(s->shared, s->kernel_id, s->kernel, s->kernel_len, s->scratch, "kernel", err,
		  errlen) < 0 ||
	    (s->initrd && place(s->shared, s->initrd_id, s->initrd, s->initrd_len, s->scratch,
				"initrd", err, errlen) < 0))
		goto fail_files;
	snprintf(kpath, sizeof(kpath), "%s/kernel", s->scratch);
	snprintf(ipath, sizeof(ipath), "%s/initrd", s->scratch);
	if (!s->initrd)
		unlink(ipath);
	if ((rq = calloc(1, sizeof(*rq))) == NULL) {
		seterr(err, errlen, "vm: out of memory");
		goto fail_files;
	}
	struct vm_qemu q = {.qemu = host->qemu,
			    .bios = host->bios[0] ? host->bios : NULL,
			    .name = s->name,
			    .kvm = host->kvm,
			    .cpus = s->cpus,
			    .mem = mem,
			    .kernel = kpath,
			    .initrd = s->initrd ? ipath : NULL,
			    .cmdline = cmdline,
			    .nics = s->nics,
			    .nnics = s->nnics};
	if ((argc = vm_qemu_argv(&q, rq->argv, sizeof(rq->argv), err, errlen)) < 0)
		goto fail_rq;
	rq->kind = CT_REQ_EXEC;
	rq->argc = argc;
	/* QEMU runs as the node's range's first uid, not as host root. */
	rq->idbase = userns_base_of(host, s->rank, s->netns_fd);
	snprintf(rq->name, sizeof(rq->name), "%s", s->name);

	snprintf(h->cg, sizeof(h->cg), "kh-%s/n%d", s->facility, s->rank);
	lim.cpu_milli = s->cpu_milli;
	lim.mem = s->mem ? mem + vm_overhead(mem, host->kvm) : 0;
	lim.pids = s->pids;
	if (cgroup_node_create(&host->cg, h->cg, &lim, err, errlen) < 0)
		goto fail_rq;
	if (ct_open_console(&master, &slave, rq->console, sizeof(rq->console)) < 0) {
		seterr(err, errlen, "vm: console pty: %s", strerror(errno));
		goto fail_cg;
	}
	/* QEMU's own complaints: khd reads the last line when it fails. */
	snprintf(path, sizeof(path), "%s/qemu.log", s->scratch);
	if ((logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		seterr(err, errlen, "vm: %s: %s", path, strerror(errno));
		goto fail_pty;
	}
	fds[nfds++] = slave;
	fds[nfds++] = logfd;
	if (s->netns_fd >= 0) {
		rq->has_netns = 1;
		fds[nfds++] = s->netns_fd;
	}
	for (int i = 0; i < s->nnics; i++)
		fds[nfds++] = s->nics[i].fd;
	rq->nkeep = s->nnics;
	if ((pid = ct_spawn_in(host, rq, fds, nfds, h->cg, err, errlen)) < 0)
		goto fail_log;
	close(logfd);
	close(slave);
	free(rq);
	h->pid = pid;
	h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	h->console = master;
	return 0;

fail_log:
	close(logfd);
fail_pty:
	close(slave);
	close(master);
fail_cg:
	cgroup_node_remove(&host->cg, h->cg, NULL, 0);
	h->cg[0] = '\0';
fail_rq:
	free(rq);
fail_files:
	forget_files(h);
	return -1;
}

static int
vm_reap(struct node_host *host, struct node_handle *h, int *status)
{
	int r = ct_reap(host, h, status);
	if (r == 1)
		forget_files(h);
	return r;
}

static int
vm_kill(struct node_host *host, struct node_handle *h, int wait_ms)
{
	int r = ct_kill(host, h, wait_ms);
	if (r == 1)
		forget_files(h);
	return r;
}

const struct node_backend node_vm = {
    .name = "vm",
    .boot = vm_boot,
    .kill = vm_kill,
    .reap = vm_reap,
    .stats = ct_stats,
};
