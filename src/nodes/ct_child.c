/* ct_child: a container node's first steps, shared by the spawner's
 * clone (ct_spawn.c) and the waiting process that a free node keeps ready
 * (ctnode_main.c, a small static program): its /dev, /proc and /sys, the
 * system call filter and the capabilities node root keeps.  Only the C
 * library: the waiting program links nothing else. */
#include "nodes/ct_child.h"

#include "nodes/node.h"
#include "nodes/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT		 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef NS_GET_USERNS
#define NS_GET_USERNS _IO(0xb7, 0x1)
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define UNS_OPEN_TREE_CLONE   1
#define UNS_OPEN_TREE_CLOEXEC O_CLOEXEC
#define UNS_AT_RECURSIVE      0x8000
#define UNS_MOUNT_ATTR_IDMAP  0x00100000

/* The kernel's struct mount_attr (MOUNT_ATTR_SIZE_VER0). */
struct uns_mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};

/* Capabilities node root keeps: enough to run an appliance (users, files,
 * sockets, interface and route setup in its own network namespace), not
 * enough to reach past the node: no SYS_ADMIN (mounts, namespaces), MKNOD
 * (devices), SYS_MODULE, SYS_RAWIO, SYS_BOOT (kexec), SYS_TIME, SYSLOG,
 * DAC_READ_SEARCH (open_by_handle_at escapes), SYS_NICE (real-time
 * priority outruns CPU quotas), SYS_PTRACE, BPF, PERFMON, ... */
static const int ct_keep_caps[] = {
    CAP_CHOWN,	       CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,     CAP_KILL,
    CAP_SETGID,	       CAP_SETUID,	 CAP_SETPCAP, CAP_SETFCAP,    CAP_NET_BIND_SERVICE,
    CAP_NET_BROADCAST, CAP_NET_ADMIN,	 CAP_NET_RAW, CAP_SYS_CHROOT, CAP_AUDIT_WRITE,
};

/* Host-wide knobs under /proc that root in the node must not turn (sysctls,
 * IRQ affinity, SysRq) or read (other keys, the host's timers and tasks):
 * read-only binds of themselves, or /dev/null over them.  The rest of
 * /proc that matters (kcore, kmsg, PCI config) wants capabilities the node
 * does not have. */
static const char *const ct_proc_ro[] = {"proc/sys", "proc/irq"};
static const char *const ct_proc_null[] = {"proc/sysrq-trigger", "proc/keys", "proc/timer_list"};

/* Say on the console why the node cannot start, and end it. */
void
child_fail(const struct ct_plan *p, const char *what, int code)
{
	char msg[256];
	int e = errno;
	int n;

	if (p->later != NULL) {
		snprintf(msg, sizeof(msg), "%s: %s", what, strerror(e));
		p->later(p, msg, code);
	}
	n = snprintf(msg, sizeof(msg), "\r\nkh: node %s: %s: %s\r\n", p->rq->name, what,
		     strerror(e));
	if (n > 0 &&
	    write(p->slave, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1) < 0)
		n = 0;
	_exit(code);
}

int
mkdir_ok(const char *path, mode_t mode)
{
	return mkdir(path, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* A fresh /dev: the harmless devices, a private devpts, and the console
 * pty bound at /dev/console.  devtmpfs would show the host's devices. */
void
child_dev(const struct ct_plan *p)
{
	const uid_t id = p->rq->idbase;
	char opts[96];

	static const struct {
		const char *path;
		unsigned maj, min;
	} nodes[] = {{"dev/null", 1, 3},   {"dev/zero", 1, 5},	  {"dev/full", 1, 7},
		     {"dev/random", 1, 8}, {"dev/urandom", 1, 9}, {"dev/tty", 5, 0}};
	static const struct {
		const char *path, *target;
	} links[] = {{"dev/fd", "/proc/self/fd"},
		     {"dev/stdin", "/proc/self/fd/0"},
		     {"dev/stdout", "/proc/self/fd/1"},
		     {"dev/stderr", "/proc/self/fd/2"},
		     {"dev/ptmx", "pts/ptmx"}};

	/* In a user namespace, /dev and what is in it belong to node root
	 * (id), as they did when node root was host root.  The device nodes
	 * are made here, by host root, on a tmpfs host root mounts: they work
	 * in the node although node root could not make them. */
	snprintf(opts, sizeof(opts), "%s,uid=%u,gid=%u", p->tmpfs_opts, (unsigned)id, (unsigned)id);
	CHILD_TRY(p, mkdir_ok("dev", 0755), "mkdir /dev");
	CHILD_TRY(p, mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, opts), "mount /dev");
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		CHILD_TRY(p,
			  mknod(nodes[i].path, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)),
			  nodes[i].path);
		CHILD_TRY(p, lchown(nodes[i].path, id, id), nodes[i].path);
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		CHILD_TRY(p, symlink(links[i].target, links[i].path), links[i].path);
		CHILD_TRY(p, lchown(links[i].path, id, id), links[i].path);
	}
	CHILD_TRY(p, mkdir("dev/pts", 0755), "mkdir /dev/pts");
	CHILD_TRY(p, mkdir("dev/shm", 01777), "mkdir /dev/shm");
	CHILD_TRY(p, lchown("dev/shm", id, id), "/dev/shm");
	CHILD_TRY(p,
		  mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
			"newinstance,ptmxmode=0666,mode=0620"),
		  "mount /dev/pts");
	CHILD_TRY(p, mknod("dev/console", S_IFREG | 0600, 0), "/dev/console");
}

void
child_dev_binds(const struct ct_plan *p, const char *host, int which)
{
	char path[PATH_MAX + 16];

	if (which & CHILD_BIND_CONSOLE) {
		/* The console is node root's terminal. */
		if (p->rq->idbase != 0)
			CHILD_TRY(p, fchown(p->slave, p->rq->idbase, p->rq->idbase),
				  "console owner");
		/* By name: a bind mount's source must be in our own (copied)
		 * mount namespace, which the inherited descriptor's mount is
		 * not. */
		snprintf(path, sizeof(path), "%s%s", host, p->rq->console);
		CHILD_TRY(p, ct_mount(path, "dev/console", NULL, MS_BIND, NULL),
			  "bind /dev/console");
	}
	/* The one-sided memory device: a socket only this node reaches. */
	if ((which & CHILD_BIND_DEVICE) && p->rq->device[0]) {
		snprintf(path, sizeof(path), "%s%s", host, p->rq->device);
		CHILD_TRY(p, mknod("dev/khrdma", S_IFREG | 0666, 0), "/dev/khrdma");
		CHILD_TRY(p, ct_mount(path, "dev/khrdma", NULL, MS_BIND, NULL), "bind /dev/khrdma");
	}
}

/* The node's own /proc and a read-only /sys (its network devices only),
 * with the host-wide knobs out of reach (/proc/sys read-only but for its
 * own network namespace's /proc/sys/net). */
void
child_proc_sys(const struct ct_plan *p)
{
	const unsigned long ro =
	    MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

	CHILD_TRY(p, mkdir_ok("proc", 0555), "mkdir /proc");
	CHILD_TRY(p, mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
		  "mount /proc");
	for (size_t i = 0; i < sizeof(ct_proc_ro) / sizeof(ct_proc_ro[0]); i++) {
		if (mount(ct_proc_ro[i], ct_proc_ro[i], NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(p, ct_proc_ro[i], NODE_EXIT_SETUP);
		}
		CHILD_TRY(p, mount(NULL, ct_proc_ro[i], NULL, ro, NULL), ct_proc_ro[i]);
	}
	/* /proc/sys/net holds only the node's own network namespace's knobs:
	 * writable, so its root may turn on forwarding (a gateway) or tune its
	 * own stack, as NET_ADMIN lets it. */
	if (mount("proc/sys/net", "proc/sys/net", NULL, MS_BIND, NULL) == 0)
		CHILD_TRY(p,
			  mount(NULL, "proc/sys/net", NULL,
				MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
			  "proc/sys/net");
	else if (errno != ENOENT)
		child_fail(p, "proc/sys/net", NODE_EXIT_SETUP);
	for (size_t i = 0; i < sizeof(ct_proc_null) / sizeof(ct_proc_null[0]); i++)
		if (mount("dev/null", ct_proc_null[i], NULL, MS_BIND, NULL) < 0 && errno != ENOENT)
			child_fail(p, ct_proc_null[i], NODE_EXIT_SETUP);
	CHILD_TRY(p, mkdir_ok("sys", 0555), "mkdir /sys");
	CHILD_TRY(
	    p, mount("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
	    "mount /sys");
}

/* What nodes never need, refused as container runtimes' default profiles
 * refuse it (most also needs a capability a node lacks; the filter holds
 * if a capability slips through, and covers what needs none):
 * new user namespaces (unshare or clone with CLONE_NEWUSER; clone3, whose
 * flags a filter cannot see, answers ENOSYS so libc falls back to clone),
 * keyrings (not namespaced: node root would share the host root's user
 * keyring), kernel modules, kexec, bpf, perf events, setting the clock,
 * open_by_handle_at, userfaultfd, swap, accounting, quotas, port I/O,
 * mounts and namespaces, the kernel log.  The 32-bit and x32 ABIs are
 * refused whole (ENOSYS): nodes run 64-bit programs, and a second table
 * of numbers is a second chance to get a rule wrong. */
/* What a program started by the spawner must not inherit: ignored
 * signals and a blocked mask (exec keeps both). */
void
ct_signals_default(void)
{
	struct sigaction dfl;
	sigset_t none;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

void
child_exec_init(const struct ct_plan *p, int userns)
{
	const struct ct_req *rq = p->rq;
	char *const argv[] = {"/init", NULL};
	char *const envp[] = {"PATH=/sbin:/bin:/usr/sbin:/usr/bin", "HOME=/", "TERM=linux",
			      (char *)(rq->env[0] ? rq->env : NULL), NULL};
	int fd;

	CHILD_TRY(p, sethostname(rq->name, strlen(rq->name)), "sethostname");
	/* Everything is set up: from here on, root is node root. */
	if (userns >= 0) {
		CHILD_TRY(p, userns_enter(userns), "enter the node's user namespace");
		close(userns);
	}
	if (child_key == 0) /* a waiting node's is in already */
		CHILD_TRY(p, child_seccomp(0), "seccomp");
	CHILD_TRY(p, child_caps(), "drop capabilities");
	CHILD_TRY(p, setsid(), "setsid");
	CHILD_TRY(p, ioctl(p->slave, TIOCSCTTY, 0), "console as controlling tty");
	for (fd = 0; fd < 3; fd++)
		CHILD_TRY(p, dup2(p->slave, fd), "console on 0, 1, 2");
	/* Nothing crosses into the node: no descriptor, ignored signal,
	 * blocked mask or scheduling policy (exec keeps them all). */
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
		for (fd = 3; fd < 65536; fd++)
			close(fd);
	ct_signals_default();
	umask(022);
	{
		struct sched_param sp = {.sched_priority = 0};
		CHILD_TRY(p, sched_setscheduler(0, SCHED_OTHER, &sp), "scheduling policy");
	}
	execve(argv[0], argv, envp);
	{
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "\r\nkh: cannot execute /init: %s\r\n",
				 strerror(errno));
		if (n > 0 && write(1, msg, (size_t)n) < 0)
			_exit(127);
	}
	_exit(127);
}

uint64_t child_key;

int
ct_mount(const char *src, const char *target, const char *type, unsigned long flags,
	 const void *data)
{
	return (int)syscall(SYS_mount, src, target, type, flags, data, child_key);
}

int
ct_umount2(const char *target, int flags)
{
	return (int)syscall(SYS_umount2, target, flags, 0, 0, 0, child_key);
}

int
child_seccomp(uint64_t key)
{
#if defined(__x86_64__)
	static const int deny[] = {
	    __NR_add_key,
	    __NR_request_key,
	    __NR_keyctl,
	    __NR_init_module,
	    __NR_finit_module,
	    __NR_delete_module,
	    __NR_kexec_load,
	    __NR_kexec_file_load,
	    __NR_bpf,
	    __NR_perf_event_open,
	    __NR_settimeofday,
	    __NR_clock_settime,
	    __NR_clock_adjtime,
	    __NR_open_by_handle_at,
	    __NR_userfaultfd,
	    __NR_swapon,
	    __NR_swapoff,
	    __NR_acct,
	    __NR_lookup_dcookie,
	    __NR_quotactl,
	    __NR_iopl,
	    __NR_ioperm,
	    __NR_setns,
	    __NR_pivot_root,
	    __NR_mount,
	    __NR_umount2,
	    __NR_fsopen,
	    __NR_fsconfig,
	    __NR_fsmount,
	    __NR_fspick,
	    __NR_open_tree,
	    __NR_move_mount,
	    __NR_mount_setattr,
	    __NR_syslog,
	    __NR_uselib,
	    __NR_ustat,
	    __NR_sysfs,
	    __NR__sysctl,
	    __NR_vhangup,
	};
	enum { ndeny = sizeof(deny) / sizeof(deny[0]) };
	/* What a waiting process still does once its filter is in: */
	static const int keyed[] = {__NR_mount, __NR_umount2, __NR_setns, __NR_open_tree,
				    __NR_mount_setattr};
	enum { nkeyed = sizeof(keyed) / sizeof(keyed[0]) };
	/* arch; nr; x32; clone3; unshare/clone with NEWUSER; the keyed ones;
	 * the list. */
	struct sock_filter f[12 + nkeyed + 7 + ndeny + 4];
	int n = 0;
	const unsigned errno_ret = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
	const unsigned nosys_ret = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, nosys_ret);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, nosys_ret);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, nosys_ret);
	/* unshare(flags) and clone(flags, ...): flags in the low word of arg 0 */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 1, 0);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, args[0]));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, errno_ret);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* With a key: those calls pass when their (otherwise unused) sixth
	 * argument is the key, which lives only in the waiting process until
	 * it execs /init, and in this filter, which node root cannot read.
	 * They still need capabilities node root does not have. */
	if (key != 0) {
		for (int i = 0; i < nkeyed; i++)
			f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
							      (unsigned)keyed[i],
							      (unsigned char)(nkeyed - i), 0);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 6);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						      offsetof(struct seccomp_data, args[5]));
		f[n++] =
		    (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)key, 0, 3);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						      offsetof(struct seccomp_data, args[5]) + 4);
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (uint32_t)(key >> 32), 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, errno_ret);
	}
	for (int i = 0; i < ndeny; i++)
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)deny[i],
						      (unsigned char)(ndeny - i), 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, errno_ret);
	struct sock_fprog prog = {(unsigned short)n, f};

	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
#else
	return 0;
#endif
}

int
child_caps(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	uint64_t keep = 0;

	for (size_t i = 0; i < sizeof(ct_keep_caps) / sizeof(ct_keep_caps[0]); i++)
		keep |= 1ULL << ct_keep_caps[i];
	/* The bounding set caps what any exec gains, setuid root included. */
	for (int c = 0; c < 64; c++) {
		if (keep & (1ULL << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			return -1;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)keep;
	data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
	return (int)syscall(SYS_capset, &hdr, data);
}

/* ---- user namespaces (userns.h): in a node's first process, still host root ---- */

int
userns_of(int netns)
{
	return ioctl(netns, NS_GET_USERNS);
}

int
userns_idmapped(const char *lower, int userns)
{
	struct uns_mount_attr a;
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, lower,
			      UNS_OPEN_TREE_CLONE | UNS_OPEN_TREE_CLOEXEC | UNS_AT_RECURSIVE, 0, 0,
			      child_key);

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.attr_set = UNS_MOUNT_ATTR_IDMAP;
	a.userns_fd = (uint64_t)userns;
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | UNS_AT_RECURSIVE, &a, sizeof(a),
		    child_key) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
userns_enter(int userns)
{
	if (syscall(SYS_setns, userns, CLONE_NEWUSER, 0, 0, 0, child_key) < 0 ||
	    setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		return -1;
	return 0;
}
