/* kh-ctnode: the waiting process of a free container node, a small static
 * program khd carries inside itself (ctnode_blob.S) and the spawner
 * executes from a sealed memfd.  A hardware node waits powered on at its
 * firmware; a ct node waits as this.  Made in khd's idle time, it sets up
 * everything a boot does not need to know: namespaces, cgroup, network
 * and user namespace, memory (a tmpfs), /dev, /proc, /sys, console, a
 * pivot into a read-only staging root, and the node's system call filter.
 * Then it sleeps on its socket.  A boot sends what only the boot knows
 * (name, image tree, RDMA device, environment); what is left is the
 * overlay, a few moves and the exec of /init.
 *
 * Usage, by the spawner only (ct_spawn.c): kh-ctnode SCRATCH TMPFS_OPTS
 * IDBASE HAS_NETNS IMAGES CONSOLE DEVICES, with the boot socket on 3, the node's
 * network namespace on 4 and its console (CONSOLE's slave) on 5.  It is
 * the first process of its PID namespace, in the node's cgroup already,
 * host root until the boot.
 *
 * The staging root, a small tmpfs mounted at SCRATCH and then made "/":
 *   old/  the host's tree (a private copy), detached once pivoted
 *   h/    img/: a copy of IMAGES mapped for the node's user namespace,
 *         dev/: one of DEVICES (the RDMA sockets), until the boot
 *   s/    the node's memory: a tmpfs of its size with upper/ and work/
 *   r/    where the overlay goes at boot, then moved onto "/"
 *   dev/ proc/ sys/   made here, moved into r/ at boot
 * After the boot it is the mount namespace's root under the node's root,
 * covered by it (".." never climbs into a covered directory), read-only
 * and empty but for the node's own memory. */
#include "nodes/ct_child.h"
#include "nodes/node.h"
#include "nodes/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#define CT_MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define CT_OPEN_TREE_CLONE	   1
#define CT_AT_RECURSIVE		   0x8000

#define SOCK	3
#define NETNS	4
#define CONSOLE 5

static struct ct_req rq;
static struct ct_plan plan;
static int userns = -1;
/* The image trees' directory ("": none), mapped for the node's user
 * namespace ahead: a boot then only opens its tree in it. */
static const char *images = "";
/* The directory of the RDMA devices' sockets ("": none). */
static const char *devices = "";

/* A copy of the host's directory dir (mapped for userns when >= 0)
 * mounted at at. */
static int
attach(const char *dir, const char *at, int us)
{
	int fd = us >= 0 ? userns_idmapped(dir, us)
			 : (int)syscall(SYS_open_tree, AT_FDCWD, dir,
					CT_OPEN_TREE_CLONE | O_CLOEXEC | CT_AT_RECURSIVE);
	int r;

	if (fd < 0)
		return -1;
	r = (int)syscall(SYS_move_mount, fd, "", AT_FDCWD, at, CT_MOVE_MOUNT_F_EMPTY_PATH);
	close(fd);
	return r;
}

/* Wait for the boot: the strings are in rq.  EOF (khd is gone, or gave
 * the node up) or a message that is not a boot ends the process. */
static void
wait_boot(void)
{
	struct ct_warm_boot b;
	ssize_t n;

	while ((n = recv(SOCK, &b, sizeof(b), 0)) < 0 && errno == EINTR)
		;
	if (n <= 0)
		_exit(0);
	if (n != (ssize_t)sizeof(b) || b.magic != CT_WARM_MAGIC)
		_exit(NODE_EXIT_SETUP);
	b.name[sizeof(b.name) - 1] = b.env[sizeof(b.env) - 1] = '\0';
	b.lower[sizeof(b.lower) - 1] = b.device[sizeof(b.device) - 1] = '\0';
	memcpy(rq.name, b.name, sizeof(rq.name));
	memcpy(rq.env, b.env, sizeof(rq.env));
	memcpy(rq.lower, b.lower, sizeof(b.lower));
	memcpy(rq.device, b.device, sizeof(b.device));
}

/* A step of the setup failed: khd reads why (it boots the node the usual
 * way instead). */
static void __attribute__((noreturn)) fail_setup(const struct ct_plan *p, const char *msg, int code)
{
	char line[300];
	int n = snprintf(line, sizeof(line), "F%s", msg);

	(void)p;
	if (n > 0 && send(SOCK, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1,
			  MSG_NOSIGNAL) < 0)
		_exit(code);
	_exit(code);
}

/* Everything a boot does not need to know. */
static void
setup(const char *scratch)
{
	struct ct_plan *p = &plan;

	/* Woken by its boot, it must not preempt khd, which is booting the
	 * next nodes: batch until its /init runs. */
	{
		struct sched_param sp = {.sched_priority = 0};
		sched_setscheduler(0, SCHED_BATCH, &sp);
	}
	CHILD_TRY(p, unshare(CLONE_NEWCGROUP), "cgroup namespace");
	if (rq.has_netns)
		CHILD_TRY(p, setns(NETNS, CLONE_NEWNET), "enter network namespace");
	if (rq.idbase != 0)
		CHILD_TRY(p, userns = userns_of(NETNS), "the node's user namespace");
	{
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "500", 3) < 0)
				errno = 0;
			close(fd);
		}
	}
	close(NETNS);
	CHILD_TRY(p, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "private mounts");
	CHILD_TRY(p, mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k"),
		  "mount the staging root");
	CHILD_TRY(p, chdir(scratch), "chdir scratch");
	umask(0);
	CHILD_TRY(p, mkdir("old", 0700), "mkdir old");
	CHILD_TRY(p, mkdir("r", 0755), "mkdir r");
	CHILD_TRY(p, mkdir("s", 0700), "mkdir s");
	CHILD_TRY(p, mount("tmpfs", "s", "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts),
		  "mount tmpfs");
	CHILD_TRY(p, mkdir("s/upper", 0755), "mkdir upper");
	CHILD_TRY(p, mkdir("s/work", 0755), "mkdir work");
	/* What of the host's a boot needs, in h/: the image trees (mapped
	 * for the node's user namespace) and the RDMA devices' directory. */
	CHILD_TRY(p, mkdir("h", 0700), "mkdir h");
	CHILD_TRY(p, mount("tmpfs", "h", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=4k"),
		  "mount h");
	CHILD_TRY(p, mkdir("h/img", 0700), "mkdir h/img");
	CHILD_TRY(p, attach(images, "h/img", userns), "the image trees");
	if (devices[0] == '/') {
		CHILD_TRY(p, mkdir("h/dev", 0700), "mkdir h/dev");
		CHILD_TRY(p, attach(devices, "h/dev", -1), "the RDMA devices");
	}
	child_dev(p);
	child_dev_binds(p, "", CHILD_BIND_CONSOLE);
	child_proc_sys(p);
	CHILD_TRY(p, (int)syscall(SYS_pivot_root, ".", "old"), "pivot_root");
	CHILD_TRY(p, chdir("/"), "chdir /");
	/* The host's tree goes now: a waiting node holds none of the host's
	 * mounts (one unmounted there is gone for good). */
	CHILD_TRY(p, umount2("old", MNT_DETACH), "detach the host's tree");
	/* Nothing is made in the staging root from here on. */
	CHILD_TRY(
	    p,
	    mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
	    "read-only staging root");
	/* The node's system call filter, in now: what is left of the boot
	 * passes it with child_key (64 random bits no node sees). */
	if (getrandom(&child_key, sizeof(child_key), 0) != (ssize_t)sizeof(child_key) ||
	    child_key == 0)
		child_key = 0;
	else
		CHILD_TRY(p, child_seccomp(child_key), "seccomp");
	/* Ready: khd boots it only once it has said so. */
	CHILD_TRY(p, (int)send(SOCK, "R", 1, MSG_NOSIGNAL), "say ready");
}

/* What only the boot knows, and the exec of /init. */
static void __attribute__((noreturn)) boot(void)
{
	struct ct_plan *p = &plan;
	char path[PATH_MAX + 8], opts[96];
	int fd;

	size_t il = strlen(images), dl = strlen(devices);

	/* The tree is one of those in h/img (khd checked). */
	if (strncmp(rq.lower, images, il) != 0 || rq.lower[il] != '/')
		child_fail(p, "image tree", NODE_EXIT_SETUP);
	snprintf(path, sizeof(path), "/h/img%s", rq.lower + il);
	CHILD_TRY(p, fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC), "open root");
	if (userns >= 0) {
		/* The shared tree, owned by host root, shows as owned by node
		 * root (host uid k as k inside); its root's owner is the top's. */
		struct stat st;
		CHILD_TRY(p, fstat(fd, &st), "stat root");
		CHILD_TRY(p, chown("s/upper", st.st_uid, st.st_gid), "chown upper");
	}
	snprintf(opts, sizeof(opts), "lowerdir=/proc/self/fd/%d,upperdir=s/upper,workdir=s/work",
		 fd);
	CHILD_TRY(p, ct_mount("overlay", "r", "overlay", MS_NODEV, opts), "mount overlay");
	close(fd);
	/* The one-sided memory device: a socket only this node reaches. */
	if (rq.device[0]) {
		if (dl < 2 || strncmp(rq.device, devices, dl) != 0 || rq.device[dl] != '/' ||
		    strchr(rq.device + dl + 1, '/') != NULL)
			child_fail(p, "RDMA device", NODE_EXIT_SETUP);
		snprintf(path, sizeof(path), "/h/dev%s", rq.device + dl);
		CHILD_TRY(p, mknod("dev/khrdma", S_IFREG | 0666, 0), "/dev/khrdma");
		CHILD_TRY(p, ct_mount(path, "dev/khrdma", NULL, MS_BIND, NULL), "bind /dev/khrdma");
	}
	/* What is left of the host's goes.  The node's memory (s/) stays
	 * where it is, under the node's root like the rest of the staging
	 * root. */
	CHILD_TRY(p, ct_umount2("h", MNT_DETACH), "detach h");
	CHILD_TRY(p, mkdir_ok("r/dev", 0755), "mkdir /dev");
	CHILD_TRY(p, mkdir_ok("r/proc", 0555), "mkdir /proc");
	CHILD_TRY(p, mkdir_ok("r/sys", 0555), "mkdir /sys");
	CHILD_TRY(p, ct_mount("dev", "r/dev", NULL, MS_MOVE, NULL), "move /dev");
	CHILD_TRY(p, ct_mount("proc", "r/proc", NULL, MS_MOVE, NULL), "move /proc");
	CHILD_TRY(p, ct_mount("sys", "r/sys", NULL, MS_MOVE, NULL), "move /sys");
	/* The overlay onto "/", as switch_root does: no pivot_root, which
	 * walks every process on the host.  The staging root is then under
	 * the node's root, covered by it: ".." never climbs into it. */
	CHILD_TRY(p, chdir("r"), "chdir root");
	CHILD_TRY(p, ct_mount(".", "/", NULL, MS_MOVE, NULL), "move root");
	CHILD_TRY(p, chroot("."), "chroot");
	CHILD_TRY(p, chdir("/"), "chdir /");
	child_exec_init(p, userns);
}

int
main(int argc, char **argv)
{
	char *end;
	unsigned long id;

	if (argc != 8 || getpid() != 1 || strlen(argv[6]) >= sizeof(rq.console) ||
	    argv[5][0] != '/')
		return 2;
	images = argv[5];
	devices = argv[7];
	memcpy(rq.console, argv[6], strlen(argv[6]) + 1);
	errno = 0;
	id = strtoul(argv[3], &end, 10);
	if (errno || *end || id > UINT32_MAX || strlen(argv[2]) >= sizeof(plan.tmpfs_opts))
		return 2;
	rq.idbase = (uint32_t)id;
	rq.has_netns = strcmp(argv[4], "1") == 0;
	snprintf(rq.name, sizeof(rq.name), "(waiting)");
	plan.rq = &rq;
	plan.slave = CONSOLE;
	plan.netns = -1;
	plan.cgfd = -1;
	plan.errfd = -1;
	plan.later = fail_setup;
	memcpy(plan.tmpfs_opts, argv[2], strlen(argv[2]) + 1);
	setup(argv[1]);
	wait_boot();
	plan.later = NULL;
	boot();
}
