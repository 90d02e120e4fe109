/* vm_spawn: the first steps of a program the spawner starts for a node
 * backend (CT_REQ_EXEC: a vm node's QEMU), from the spawner's clone to its
 * exec.  It runs in the node's cgroup (limits and counters hold for it)
 * and network namespace (where the node's interfaces live, so a khd that
 * died can still find and read them through it), with the node's console
 * as its standard input and output.  No container: the program is the
 * host's own, and the isolation of a vm node is the virtual machine. */
#include "nodes/ct_int.h"
#include "nodes/node.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* Say on the console why the program cannot start, and end. */
static void __attribute__((noreturn))
fail(const struct ct_req *rq, int console, const char *what, int code)
{
	char msg[256];
	int e = errno;
	int n =
	    snprintf(msg, sizeof(msg), "\r\nkh: node %s: %s: %s\r\n", rq->name, what, strerror(e));

	if (n > 0 && write(console, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1) < 0)
		n = 0;
	_exit(code);
}

/* Move fd to the number want without disturbing a descriptor that is
 * still to be placed (they are first moved above every target). */
static int
lift(int fd, int floor)
{
	return fcntl(fd, F_DUPFD, floor);
}

/* mkdir -p of path's parents (and of path itself when dir). */
static int
make_path(const char *path, int dir)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return errno = ENAMETOOLONG, -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	if (dir)
		return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
	int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? -1 : close(fd);
}

/* The host's path, read-only at the same path under root (dir or file).
 * A path that does not exist is left out when optional. */
static int
bind_ro(const char *root, const char *path, int optional)
{
	char at[PATH_MAX];
	struct stat st;

	if (stat(path, &st) < 0)
		return optional ? 0 : -1;
	if (snprintf(at, sizeof(at), "%s%s", root, path) >= (int)sizeof(at))
		return errno = ENAMETOOLONG, -1;
	if (make_path(at, S_ISDIR(st.st_mode)) < 0 ||
	    mount(path, at, NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    mount(NULL, at, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, NULL) < 0)
		return -1;
	return 0;
}

/* QEMU's own mount namespace, whose root holds nothing of the host's but
 * what QEMU reads: /usr (the program, its libraries, the firmware; /bin,
 * /lib, /lib64 ... as the host has them), /etc/ld.so.cache, /proc (its
 * descriptors are named there), and /dev/null, /dev/zero, /dev/urandom,
 * /dev/random and /dev/kvm; all of it read-only.  Its /proc shows QEMU
 * no process but its own (hidepid=2).  Not khd's directory,
 * the nodes' files, /home, /root, /tmp, /etc or /run.  A program or
 * firmware outside /usr ($KH_QEMU, $KH_QEMU_BIOS) is bound in too. */
static int
private_root(const char *prog, const char *bios)
{
	static const char *const top[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
	static const char *const dev[] = {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"};
	const char *root = "/tmp";
	char link_[PATH_MAX], at[PATH_MAX];
	struct stat st;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("kh-vm", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") < 0)
		return -1;
	if (bind_ro(root, "/usr", 0) < 0 || bind_ro(root, "/etc/ld.so.cache", 1) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		char path[16];
		ssize_t n;
		snprintf(path, sizeof(path), "/%s", top[i]);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			if ((n = readlink(path, link_, sizeof(link_) - 1)) < 0)
				return -1;
			link_[n] = '\0';
			snprintf(at, sizeof(at), "%s%s", root, path);
			if (symlink(link_, at) < 0)
				return -1;
		} else if (bind_ro(root, path, 0) < 0)
			return -1;
	}
	for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
		if (bind_ro(root, dev[i], 1) < 0)
			return -1;
	/* /dev/kvm is written to (its ioctls need a descriptor open for
	 * writing): bound as it is. */
	if (stat("/dev/kvm", &st) == 0) {
		snprintf(at, sizeof(at), "%s/dev/kvm", root);
		if (make_path(at, 0) < 0 || mount("/dev/kvm", at, NULL, MS_BIND, NULL) < 0)
			return -1;
	}
	if (strncmp(prog, "/usr/", 5) != 0 && bind_ro(root, prog, 0) < 0)
		return -1;
	if (bios && strncmp(bios, "/usr/", 5) != 0 && bind_ro(root, bios, 0) < 0)
		return -1;
	snprintf(at, sizeof(at), "%s/proc", root);
	if (make_path(at, 1) < 0 ||
	    mount("proc", at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0)
		return -1;
	snprintf(at, sizeof(at), "%s/.old", root);
	if (make_path(at, 1) < 0 || syscall(SYS_pivot_root, root, at) < 0 || chdir("/") < 0 ||
	    umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0 ||
	    mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return -1;
	return 0;
}

void
vm_spawn_child(const struct ct_req *rq, int console, int errfd, int netns, const int *procs,
	       int nprocs, const int *keep, int nkeep)
{
	char *argv[CT_EXEC_ARGMAX / 2 + 1];
	char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", NULL};
	int moved[CT_EXEC_MAXKEEP], con, err, fd, argc = 0, files[2], filearg[2], nfiles = 0;
	char fdpath[2][32];
	const char *s = rq->argv, *end = rq->argv + sizeof(rq->argv);

	/* Charged to the node from the start. */
	for (int i = 0; i < nprocs; i++)
		if (write(procs[i], "0", 1) < 0)
			fail(rq, console, "join cgroup", NODE_EXIT_SETUP);
	if (netns >= 0 && setns(netns, CLONE_NEWNET) < 0)
		fail(rq, console, "enter network namespace", NODE_EXIT_SETUP);
	/* The global OOM killer should pick a node before khd. */
	if ((fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)) >= 0) {
		if (write(fd, "500", 3) < 0)
			errno = 0;
		close(fd);
	}
	if (setsid() < 0)
		fail(rq, console, "setsid", NODE_EXIT_SETUP);
	if (chdir("/") < 0)
		fail(rq, console, "chdir /", NODE_EXIT_SETUP);
	for (int i = 0; i < rq->argc && s < end; i++) {
		argv[argc++] = (char *)s;
		s += strnlen(s, (size_t)(end - s)) + 1;
	}
	if (argc != rq->argc || argc >= (int)(sizeof(argv) / sizeof(argv[0])))
		fail(rq, console, "bad argument list", NODE_EXIT_SETUP);
	argv[argc] = NULL;
	/* Unprivileged: the files QEMU reads from host root's directories
	 * are opened here and named by descriptor. */
	if (rq->idbase != 0)
		for (int i = 1; i + 1 < argc && nfiles < 2; i++)
			if (strcmp(argv[i], "-kernel") == 0 || strcmp(argv[i], "-initrd") == 0) {
				if ((files[nfiles] = open(argv[i + 1], O_RDONLY)) < 0)
					fail(rq, console, argv[i + 1], NODE_EXIT_SETUP);
				filearg[nfiles++] = i + 1;
			}

	/* Then QEMU's own view of the files (after the kernel and ramdisk,
	 * which it will not see, are open). */
	if (rq->idbase != 0) {
		const char *bios = NULL;
		for (int i = 1; i + 1 < argc; i++)
			if (strcmp(argv[i], "-bios") == 0)
				bios = argv[i + 1];
		if (private_root(argv[0], bios) < 0)
			fail(rq, console, "private mount namespace", NODE_EXIT_SETUP);
	}

	/* Descriptors: console on 0 and 1, errfd on 2, keep[i] on 3+i.  First
	 * all of them above the highest target, then into place. */
	int floor = 3 + nkeep + nfiles + 1;
	if ((con = lift(console, floor)) < 0 || (err = lift(errfd, floor)) < 0)
		fail(rq, console, "descriptors", NODE_EXIT_SETUP);
	for (int i = 0; i < nkeep; i++)
		if ((moved[i] = lift(keep[i], floor)) < 0)
			fail(rq, console, "descriptors", NODE_EXIT_SETUP);
	if (dup2(con, 0) < 0 || dup2(con, 1) < 0 || dup2(err, 2) < 0)
		fail(rq, console, "console on 0 and 1", NODE_EXIT_SETUP);
	for (int i = 0; i < nfiles; i++)
		if ((files[i] = lift(files[i], floor)) < 0)
			fail(rq, console, "descriptors", NODE_EXIT_SETUP);
	for (int i = 0; i < nkeep; i++)
		if (dup2(moved[i], 3 + i) < 0)
			fail(rq, con, "descriptors", NODE_EXIT_SETUP);
	for (int i = 0; i < nfiles; i++) {
		if (dup2(files[i], 3 + nkeep + i) < 0)
			fail(rq, con, "descriptors", NODE_EXIT_SETUP);
		snprintf(fdpath[i], sizeof(fdpath[i]), "/proc/self/fd/%d", 3 + nkeep + i);
		argv[filearg[i]] = fdpath[i];
	}
	if (syscall(SYS_close_range, 3U + (unsigned)(nkeep + nfiles), ~0U, 0U) < 0)
		for (fd = 3 + nkeep + nfiles; fd < 65536; fd++)
			close(fd);
	/* Then host root no more: the node's uid, with the group that may
	 * open /dev/kvm, and no way back (every uid changes: no capability
	 * is left). */
	if (rq->idbase != 0) {
		struct stat kvm;
		gid_t g = (gid_t)rq->idbase;
		int ng = stat("/dev/kvm", &kvm) == 0 && kvm.st_gid != 0;
		if (setgroups((size_t)ng, ng ? &kvm.st_gid : NULL) < 0 || setresgid(g, g, g) < 0 ||
		    setresuid(rq->idbase, rq->idbase, rq->idbase) < 0 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			fail(rq, con, "drop privileges", NODE_EXIT_SETUP);
	}
	/* Nothing of the spawner's: no ignored signal, no blocked mask. */
	ct_signals_default();
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	execve(argv[0], argv, envp);
	fail(rq, 1, argv[0], 127);
}
