/* ct_spawn: the spawner, a small process that clone()s nodes for khd (a
 * fork costs in proportion to the caller's memory, and khd's grows), and a
 * container node's first steps from clone to the exec of its /init.  A
 * program started for another backend (a vm node's QEMU) takes its own
 * first steps (vm_spawn.c). */
#include "common/util.h"
#include "nodes/ct_child.h"
#include "nodes/ct_int.h"
#include "nodes/node.h"
#include "nodes/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_execveat
#define SYS_execveat 322
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#define CT_CLONE_INTO_CGROUP 0x200000000ULL

/* The spawner's environment marker: KH_CT_SPAWNER=<pid of khd>. */
#define CT_SPAWNER_ENV "KH_CT_SPAWNER"
/* The descriptor the spawner talks on. */
#define CT_SPAWNER_FD 3

/* The kernel's struct clone_args up to the cgroup field (CLONE_ARGS_SIZE_VER2),
 * spelled out so that old or new uapi headers make no difference. */
struct ct_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

static void __attribute__((noreturn)) child_main(const struct ct_plan *p)
{
	const struct ct_req *rq = p->rq;
	char opts[96];
	int fd, us = -1;

	/* Join the node's cgroup before anything is charged, then make it
	 * the root of the node's view (on v2 clone3 put us there already). */
	for (int i = 0; i < p->nprocs; i++)
		CHILD_TRY(p, (int)write(p->procs[i], "0", 1), "join cgroup");
	CHILD_TRY(p, unshare(CLONE_NEWCGROUP), "cgroup namespace");
	if (p->netns >= 0)
		CHILD_TRY(p, setns(p->netns, CLONE_NEWNET), "enter network namespace");
	/* The node's user namespace: the one that owns its network. */
	if (rq->idbase != 0)
		CHILD_TRY(p, us = userns_of(p->netns), "the node's user namespace");
	/* The global OOM killer should pick a node before khd. */
	if ((fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)) >= 0) {
		if (write(fd, "500", 3) < 0)
			errno = 0;
		close(fd);
	}

	/* Nothing mounted here may show up on the host. */
	CHILD_TRY(p, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "private mounts");
	CHILD_TRY(p, mount("tmpfs", rq->scratch, "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts),
		  "mount tmpfs");
	CHILD_TRY(p, chdir(rq->scratch), "chdir scratch");
	CHILD_TRY(p, mkdir("upper", 0755), "mkdir upper");
	CHILD_TRY(p, mkdir("work", 0755), "mkdir work");
	CHILD_TRY(p, mkdir("root", 0755), "mkdir root");
	/* Layers by descriptor and relative path: the node's mount table then
	 * names no host directory. */
	if (us >= 0) {
		/* The shared tree, owned by host root, shows as owned by node
		 * root (host uid k as k inside); its root's owner is the top's. */
		struct stat st;
		CHILD_TRY(p, fd = userns_idmapped(rq->lower, us), "open root");
		CHILD_TRY(p, fstat(fd, &st), "stat root");
		CHILD_TRY(p, chown("upper", st.st_uid, st.st_gid), "chown upper");
	} else {
		CHILD_TRY(p, fd = open(rq->lower, O_PATH | O_DIRECTORY | O_CLOEXEC), "open root");
	}
	snprintf(opts, sizeof(opts), "lowerdir=/proc/self/fd/%d,upperdir=upper,workdir=work", fd);
	/* nodev: device nodes in the image are inert; only our /dev works. */
	CHILD_TRY(p, mount("overlay", "root", "overlay", MS_NODEV, opts), "mount overlay");
	close(fd);
	CHILD_TRY(p, chdir("root"), "chdir root");
	umask(0);
	child_dev(p);
	child_dev_binds(p, "", CHILD_BIND_CONSOLE | CHILD_BIND_DEVICE);
	child_proc_sys(p);
	/* Stack the old root under the new and cut it loose: no host file
	 * stays reachable. */
	CHILD_TRY(p, (int)syscall(SYS_pivot_root, ".", "."), "pivot_root");
	CHILD_TRY(p, umount2(".", MNT_DETACH), "detach old root");
	CHILD_TRY(p, chdir("/"), "chdir /");
	child_exec_init(p, us);
}

/* ---- the spawner ---- */

/* Turn a received request and its descriptors into a plan.  Returns 0 or
 * -1 (EINVAL) when they do not match. */
static int
make_plan(struct ct_plan *p, struct ct_req *rq, const int *fds, int nfds)
{
	int k = 0;

	rq->name[sizeof(rq->name) - 1] = rq->console[sizeof(rq->console) - 1] = '\0';
	rq->lower[sizeof(rq->lower) - 1] = rq->scratch[sizeof(rq->scratch) - 1] = '\0';
	int exec = rq->kind == CT_REQ_EXEC;

	rq->argv[sizeof(rq->argv) - 1] = '\0';
	if ((rq->kind != CT_REQ_NODE && !exec) || rq->nprocs < 0 || rq->nprocs > CG_MAXDIRS ||
	    rq->nkeep < 0 || rq->nkeep > CT_EXEC_MAXKEEP || (!exec && rq->nkeep) ||
	    (exec && rq->argc < 1) ||
	    nfds != 1 + exec + !!rq->has_netns + rq->nkeep + !!rq->has_cgfd + rq->nprocs)
		return -1;
	memset(p, 0, sizeof(*p));
	p->rq = rq;
	p->slave = fds[k++];
	p->errfd = exec ? fds[k++] : -1;
	p->netns = rq->has_netns ? fds[k++] : -1;
	p->nkeep = rq->nkeep;
	for (int i = 0; i < rq->nkeep; i++)
		p->keep[i] = fds[k++];
	p->cgfd = rq->has_cgfd ? fds[k++] : -1;
	p->nprocs = rq->nprocs;
	for (int i = 0; i < rq->nprocs; i++)
		p->procs[i] = fds[k++];
	if (rq->mem > 0)
		snprintf(p->tmpfs_opts, sizeof(p->tmpfs_opts), "mode=0755,size=%llu",
			 (unsigned long long)rq->mem);
	else
		snprintf(p->tmpfs_opts, sizeof(p->tmpfs_opts), "mode=0755");
	return 0;
}

/* A node's first steps (child_main) run in the spawner's own memory
 * (CLONE_VM | CLONE_VFORK, as posix_spawn does), on a stack of their own:
 * cloning a copy of the spawner's address space, faulting its pages in
 * and unmapping it all again at the exec of /init cost a node more CPU
 * than its mounts.  The spawner sleeps until the child execs (or exits),
 * so nothing else uses its memory meanwhile.  The child answers khd
 * first thing, with its pid as the spawner sees it (CLONE_PARENT_SETTID
 * writes it before the child runs), so khd goes on with the next node
 * while this one sets itself up on the other core. */
#define CT_SLOT_STACK (256 * 1024)
struct ct_slot {
	pid_t pid;   /* the child, as the spawner sees it */
	int sock;    /* where the answer goes */
	int replied; /* the child has answered */
	struct ct_plan p;
};
#define CT_SLOT_HEAD (((sizeof(struct ct_slot) + 4095) / 4096 + 1) * 4096) /* + a guard page */
#define CT_SLOT_SIZE (CT_SLOT_HEAD + CT_SLOT_STACK)

static struct ct_slot *ct_slot; /* or NULL: clone a copy */

/* AddressSanitizer marks a stack's frames in its shadow and clears them as
 * they return; a child's frames never return (it execs), so the next
 * child on the stack starts from a clean shadow. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1
#endif
#endif
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define SLOT_FRESH(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLOT_FRESH(p, n) ((void)(p), (void)(n))
#endif

static void
slot_init(void)
{
	char *m = mmap(NULL, CT_SLOT_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

	if (m == MAP_FAILED)
		return;
	/* A stack that overflows meets the guard page, not the plan. */
	if (mprotect(m + CT_SLOT_HEAD - 4096, 4096, PROT_NONE) < 0) {
		munmap(m, CT_SLOT_SIZE);
		return;
	}
	ct_slot = (struct ct_slot *)(void *)m;
}

static void reply(int sock, pid_t pid, int err);
static void exec_reply(int sock, pid_t pid, int err, const char *what, const int *fds, int nfds);

/* Not instrumented: AddressSanitizer would take the call to the noreturn
 * child_main for a stack switch it was not told of, and say so. */
__attribute__((no_sanitize_address)) static int
slot_child(void *arg)
{
	struct ct_slot *s = arg;

	reply(s->sock, s->pid, 0);
	s->replied = 1;
	child_main(&s->p);
}

/* ---- a free ct node's waiting process (CT_REQ_WARM) ---- */

/* What the clone of a waiting process needs: it runs in our memory
 * (CLONE_VM | CLONE_VFORK: we sleep until it has exec'd kh-ctnode), so
 * this stays on our stack meanwhile. */
struct warm_job {
	int sock, prog, netns, console;
	int nprocs;
	const int *procs;
	char *argv[9];
	int err; /* errno of the step that failed, 0: it exec'd */
};

/* Put fd at want (close-on-exec as asked), from a number above every
 * target so that no other descriptor to be placed is hit. */
static int
place(int fd, int want, int cloexec)
{
	return dup3(fd, want, cloexec ? O_CLOEXEC : 0) < 0 ? -1 : 0;
}

__attribute__((no_sanitize_address)) static int
warm_child(void *arg)
{
	struct warm_job *j = arg;
	char *const envp[] = {NULL};
	int sock, netns = -1, prog, con;

	/* Charged to the node from its first page on. */
	for (int i = 0; i < j->nprocs; i++)
		if (write(j->procs[i], "0", 1) < 0)
			goto fail;
	if ((sock = fcntl(j->sock, F_DUPFD_CLOEXEC, 16)) < 0 ||
	    (prog = fcntl(j->prog, F_DUPFD_CLOEXEC, 16)) < 0 ||
	    (con = fcntl(j->console, F_DUPFD_CLOEXEC, 16)) < 0 ||
	    (j->netns >= 0 && (netns = fcntl(j->netns, F_DUPFD_CLOEXEC, 16)) < 0))
		goto fail;
	if (place(sock, 3, 0) < 0 || (netns >= 0 ? place(netns, 4, 0) : (close(4), 0)) < 0 ||
	    place(con, 5, 0) < 0 || place(prog, 6, 1) < 0)
		goto fail;
	if (syscall(SYS_close_range, 7U, ~0U, 0U) < 0)
		for (int fd = 7; fd < 65536; fd++)
			close(fd);
	syscall(SYS_execveat, 6, "", j->argv, envp, AT_EMPTY_PATH);
fail:
	j->err = errno ? errno : EIO;
	_exit(127);
}

/* Start a waiting process: answer its pid (our child's, as khd's), or an
 * error with the pid of one that did not get to kh-ctnode (khd reaps it). */
static void
spawner_warm(int sock, struct ct_req *rq, const int *fds, int nfds)
{
	char opts[64], id[16];
	struct warm_job j;
	pid_t pid;

	rq->scratch[sizeof(rq->scratch) - 1] = rq->lower[sizeof(rq->lower) - 1] = '\0';
	rq->console[sizeof(rq->console) - 1] = rq->device[sizeof(rq->device) - 1] = '\0';
	if (rq->nprocs < 0 || rq->nprocs > CG_MAXDIRS || rq->scratch[0] != '/' ||
	    rq->lower[0] != '/' || rq->console[0] != '/' ||
	    nfds != 3 + !!rq->has_netns + rq->nprocs) {
		exec_reply(sock, 0, EINVAL, "bad request", NULL, 0);
		return;
	}
	memset(&j, 0, sizeof(j));
	j.sock = fds[0];
	j.prog = fds[1];
	j.console = fds[2];
	j.netns = rq->has_netns ? fds[3] : -1;
	j.procs = fds + 3 + !!rq->has_netns;
	j.nprocs = rq->nprocs;
	if (rq->mem > 0)
		snprintf(opts, sizeof(opts), "mode=0755,size=%llu", (unsigned long long)rq->mem);
	else
		snprintf(opts, sizeof(opts), "mode=0755");
	snprintf(id, sizeof(id), "%u", (unsigned)rq->idbase);
	j.argv[0] = "kh-ctnode";
	j.argv[1] = rq->scratch;
	j.argv[2] = opts;
	j.argv[3] = id;
	j.argv[4] = rq->has_netns ? "1" : "0";
	j.argv[5] = rq->lower; /* the image trees' directory, or "" */
	j.argv[6] = rq->console;
	j.argv[7] = rq->device; /* the RDMA devices' directory, or "" */
	j.argv[8] = NULL;
	if (ct_slot == NULL) {
		exec_reply(sock, 0, ENOMEM, "stack", NULL, 0);
		return;
	}
	SLOT_FRESH((char *)ct_slot + CT_SLOT_HEAD, CT_SLOT_STACK);
	pid = clone(
	    warm_child, (char *)ct_slot + CT_SLOT_SIZE,
	    (int)((rq->clone_flags & (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC)) |
		  CLONE_PARENT | CLONE_VM | CLONE_VFORK),
	    &j);
	if (pid < 0)
		exec_reply(sock, 0, errno, "clone", NULL, 0);
	else
		exec_reply(sock, pid, j.err, j.err ? "exec kh-ctnode" : "", NULL, 0);
}

/* Clone the node's init as a child of khd (CLONE_PARENT), in its new
 * namespaces, on v2 straight into its cgroup.  Returns the pid, 0 in the
 * child, -1 with errno. */
static pid_t
spawn(int sock, const struct ct_plan *p, int *answered)
{
	struct ct_clone_args a;
	pid_t pid;

	/* A node on v1 (only clone3 puts a child into a cgroup): in our
	 * memory.  A pid > 0 has been answered already. */
	if (p->rq->kind == CT_REQ_NODE && p->cgfd < 0 && ct_slot != NULL) {
		SLOT_FRESH((char *)ct_slot + CT_SLOT_HEAD, CT_SLOT_STACK);
		ct_slot->p = *p;
		ct_slot->pid = 0;
		ct_slot->replied = 0;
		pid = clone(slot_child, (char *)ct_slot + CT_SLOT_SIZE,
			    (int)(p->rq->clone_flags | CLONE_PARENT | CLONE_VM | CLONE_VFORK |
				  CLONE_PARENT_SETTID),
			    ct_slot, &ct_slot->pid);
		if (pid > 0 && !ct_slot->replied)
			reply(sock, pid, 0);
		*answered = pid > 0;
		return pid;
	}
	*answered = 0;
	memset(&a, 0, sizeof(a));
	a.flags = p->rq->clone_flags | CLONE_PARENT;
	if (p->cgfd >= 0) {
		a.flags |= CT_CLONE_INTO_CGROUP;
		a.cgroup = (uint64_t)p->cgfd;
	}
	/* exit_signal stays 0: with CLONE_PARENT the kernel uses ours,
	 * SIGCHLD, which khd gave us. */
	pid = (pid_t)syscall(SYS_clone3, &a, sizeof(a));
	if (pid >= 0 || errno != ENOSYS || p->cgfd >= 0)
		return pid;
	/* Before Linux 5.3: plain clone with fork semantics. */
	return (pid_t)syscall(SYS_clone, (unsigned long)(p->rq->clone_flags | CLONE_PARENT), NULL,
			      NULL, NULL, NULL);
}

static void
reply(int sock, pid_t pid, int err)
{
	struct ct_rep rep;

	memset(&rep, 0, sizeof(rep));
	rep.pid = pid;
	rep.err = err;
	if (send(sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0)
		_exit(1);
}

/* ---- exec: a process in a running node, as a child of its init would be ---- */

/* What the exec child says when a step fails (its status pipe). */
struct exec_fail {
	int err;
	char what[64];
};

static void __attribute__((noreturn)) exec_fail(int fd, const char *what)
{
	struct exec_fail f;

	memset(&f, 0, sizeof(f));
	f.err = errno;
	snprintf(f.what, sizeof(f.what), "%s", what);
	if (write(fd, &f, sizeof(f)) < 0)
		_exit(127);
	_exit(127);
}

#define EXEC_TRY(fd, expr, what)                                                                   \
	do {                                                                                       \
		if ((expr) < 0)                                                                    \
			exec_fail((fd), (what));                                                   \
	} while (0)

/* The child, already in the node's PID namespace: join its cgroup, then
 * its other namespaces, take on the restrictions of its init, and exec
 * with the pipes on 0, 1, 2.  st is the status pipe (close-on-exec): it
 * carries a failure, or closes silently when the exec succeeds. */
static void __attribute__((noreturn))
exec_child(int nodefd, const int *procs, int nprocs, const int io[3], int st, char **argv,
	   char **envp, int own_userns)
{
	extern char **environ;
	int fd;

	for (int i = 0; i < nprocs; i++)
		EXEC_TRY(st, (int)write(procs[i], "0", 1), "join the node's cgroup");
	if ((fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)) >= 0) {
		if (write(fd, "500", 3) < 0)
			errno = 0;
		close(fd);
	}
	EXEC_TRY(st,
		 setns(nodefd,
		       CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP),
		 "enter the node's namespaces");
	/* Its user namespace last (as host root, the others are open to us;
	 * as node root, they would not be).  EINVAL: the node's is ours: a
	 * node started with user namespaces off, or one whose first process
	 * has not entered its own yet (never to be joined as host root). */
	if (setns(nodefd, CLONE_NEWUSER) == 0)
		EXEC_TRY(st,
			 setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0
			     ? -1
			     : 0,
			 "become the node's root");
	else if (errno != EINVAL || own_userns)
		exec_fail(st, "enter the node's user namespace");
	EXEC_TRY(st, chdir("/"), "chdir /");
	EXEC_TRY(st, child_seccomp(0), "seccomp");
	EXEC_TRY(st, child_caps(), "drop capabilities");
	EXEC_TRY(st, setsid(), "setsid");
	/* The status pipe goes to 3 (still close-on-exec), the pipes to 0-2,
	 * and nothing else of the spawner's crosses into the node. */
	if (st != 3) {
		EXEC_TRY(st, dup3(st, 3, O_CLOEXEC), "status pipe");
		st = 3;
	}
	for (fd = 0; fd < 3; fd++)
		EXEC_TRY(st, dup2(io[fd], fd), "pipes on 0, 1, 2");
	if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
		for (fd = 4; fd < 65536; fd++)
			close(fd);
	ct_signals_default();
	umask(022);
	/* execvpe searches the PATH of environ: the node's, not ours. */
	environ = envp;
	execvpe(argv[0], argv, envp);
	exec_fail(st, "");
}

/* Split the request's strings into argv and envp (NULL-terminated, in
 * one allocation).  Returns NULL when they do not match the counts. */
static char **
exec_vectors(struct ct_req *rq)
{
	int n = rq->argc + rq->envc, k = 0;
	char **v;

	if (rq->argc < 1 || rq->envc < 0 || n > CT_EXEC_ARGMAX / 2 || rq->slen == 0 ||
	    rq->slen > CT_EXEC_ARGMAX || rq->argv[rq->slen - 1] != '\0')
		return NULL;
	if ((v = calloc((size_t)n + 2, sizeof(*v))) == NULL)
		return NULL;
	for (uint32_t i = 0; i < rq->slen; i += (uint32_t)strlen(rq->argv + i) + 1) {
		if (k == n) {
			free(v);
			return NULL;
		}
		v[k < rq->argc ? k : k + 1] = rq->argv + i;
		k++;
	}
	if (k != n) {
		free(v);
		return NULL;
	}
	v[rq->argc] = NULL;
	v[n + 1] = NULL;
	return v;
}

static void
exec_reply(int sock, pid_t pid, int err, const char *what, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(3 * sizeof(int))];
	} cm;
	struct ct_rep rep;
	struct iovec iov = {&rep, sizeof(rep)};
	struct msghdr mh = {0};

	memset(&rep, 0, sizeof(rep));
	rep.pid = pid;
	rep.err = err;
	snprintf(rep.what, sizeof(rep.what), "%s", what);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		struct cmsghdr *c;
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		_exit(1);
}

/* One exec request: the child is cloned as khd's (CLONE_PARENT) into the
 * node's PID namespace, which the spawner enters only for that clone. */
static void
spawner_exec(int sock, int selfpid, struct ct_req *rq, const int *fds, int nfds)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1}, st[2] = {-1, -1};
	struct ct_clone_args a;
	struct exec_fail f;
	char **v = NULL;
	pid_t pid = 0;
	int e = 0;
	const char *what = "";

	if (nfds < 1 || nfds > CT_REQ_MAXFDS || (v = exec_vectors(rq)) == NULL) {
		exec_reply(sock, 0, EINVAL, "bad request", NULL, 0);
		return;
	}
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0 ||
	    pipe2(st, O_CLOEXEC) < 0) {
		e = errno;
		what = "pipe";
		goto done;
	}
	if (setns(fds[0], CLONE_NEWPID) < 0) {
		e = errno;
		what = "enter the node's PID namespace";
		goto done;
	}
	memset(&a, 0, sizeof(a));
	a.flags = CLONE_PARENT;
	pid = (pid_t)syscall(SYS_clone3, &a, sizeof(a));
	if (pid < 0 && errno == ENOSYS)
		pid =
		    (pid_t)syscall(SYS_clone, (unsigned long)CLONE_PARENT, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		int io[3] = {in[0], out[1], er[1]};
		exec_child(fds[0], fds + 1, nfds - 1, io, st[1], v, v + rq->argc + 1,
			   rq->idbase != 0);
	}
	e = errno;
	/* Back in our own PID namespace for the next node's boot. */
	if (setns(selfpid, CLONE_NEWPID) < 0)
		_exit(1);
	if (pid < 0) {
		pid = 0;
		what = "clone";
		goto done;
	}
	e = 0;
	close(st[1]);
	st[1] = -1;
	/* Silence until the exec closes the pipe; a failure says why. */
	{
		struct pollfd pfd = {st[0], POLLIN, 0};
		ssize_t n = 0;
		if (poll(&pfd, 1, 800) == 1)
			while ((n = read(st[0], &f, sizeof(f))) < 0 && errno == EINTR)
				;
		if (n == (ssize_t)sizeof(f)) {
			f.what[sizeof(f.what) - 1] = '\0';
			e = f.err ? f.err : EIO;
			what = f.what;
		} else if (n != 0) {
			e = ETIMEDOUT;
			what = "start";
		}
	}
done:
	if (e == 0) {
		int give[3] = {in[1], out[0], er[0]};
		exec_reply(sock, pid, 0, "", give, 3);
	} else {
		exec_reply(sock, pid, e, what, NULL, 0);
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (er[i] >= 0)
			close(er[i]);
		if (st[i] >= 0)
			close(st[i]);
	}
	free(v);
}

static void __attribute__((noreturn)) spawner_main(int sock)
{
	struct ct_req *rq = malloc(sizeof(*rq));
	struct ct_plan *p = malloc(sizeof(*p));
	int selfpid = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	sigset_t all;

	/* Children start with every signal blocked and unblock them only
	 * once the handlers are reset. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_NAME, "kh-ct-spawner", 0, 0, 0);
	slot_init();
	if (ct_slot != NULL)
		ct_slot->sock = sock;
	/* Hold on to nothing of khd's, not even its directory. */
	if (chdir("/") < 0)
		_exit(1);
	if (rq == NULL || p == NULL || selfpid < 0 || send(sock, "", 1, MSG_NOSIGNAL) != 1)
		_exit(1);
	for (;;) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(CT_REQ_MAXFDS * sizeof(int))];
		} cm;
		struct iovec iov = {rq, sizeof(*rq)};
		struct msghdr mh = {0};
		struct cmsghdr *c;
		int fds[CT_REQ_MAXFDS], nfds = 0, answered;
		ssize_t n;
		pid_t pid;

		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n == 0)
			_exit(0); /* khd closed: done */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < k && nfds < CT_REQ_MAXFDS; i++)
				memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		}
		if (n == (ssize_t)sizeof(*rq) && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
		    rq->kind == CT_REQ_ENTER) {
			spawner_exec(sock, selfpid, rq, fds, nfds);
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			continue;
		}
		if (n == (ssize_t)sizeof(*rq) && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
		    rq->kind == CT_REQ_WARM) {
			spawner_warm(sock, rq, fds, nfds);
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			continue;
		}
		if (n == (ssize_t)sizeof(*rq) && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
		    rq->kind == CT_REQ_USERNS) {
			int ns = -1;
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			if (rq->idbase == 0 || (pid = userns_make(rq->idbase, &ns)) < 0)
				exec_reply(sock, 0, rq->idbase ? errno : EINVAL, "user namespace",
					   NULL, 0);
			else
				exec_reply(sock, pid, 0, "", &ns, 1);
			if (ns >= 0)
				close(ns);
			continue;
		}
		if (n != (ssize_t)sizeof(*rq) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
		    make_plan(p, rq, fds, nfds) < 0) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			reply(sock, 0, EINVAL);
			continue;
		}
		pid = spawn(sock, p, &answered);
		if (pid == 0 && rq->kind == CT_REQ_EXEC)
			vm_spawn_child(rq, p->slave, p->errfd, p->netns, p->procs, p->nprocs,
				       p->keep, p->nkeep);
		if (pid == 0)
			child_main(p);
		n = errno;
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (!answered)
			reply(sock, pid > 0 ? pid : 0, pid > 0 ? 0 : (int)n);
	}
}

/* Become the spawner when started as one, before main() runs: this is how
 * a fresh, small image of the program gets to clone the nodes. */
static void __attribute__((constructor)) spawner_ctor(void)
{
	const char *v = getenv(CT_SPAWNER_ENV);
	int type = 0;
	socklen_t tl = sizeof(type);

	if (v == NULL)
		return;
	if (getsockopt(CT_SPAWNER_FD, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_SEQPACKET || atoi(v) != (int)getppid())
		_exit(1); /* not started by ct_spawner_start, or khd is gone */
	unsetenv(CT_SPAWNER_ENV);
	spawner_main(CT_SPAWNER_FD);
}

int
ct_spawner_start(pid_t *pid, int *sock, char *err, size_t errlen)
{
	int sv[2];
	pid_t self = getpid(), p;
	struct pollfd pfd;
	char hello;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "ct: spawner socket: %s", strerror(errno));
		return -1;
	}
	if ((p = fork()) < 0) {
		snprintf(err, errlen, "ct: fork spawner: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (p == 0) {
		char env[64];
		char *const argv[] = {"kh-ct-spawner", NULL};
		char *const envp[] = {env, NULL};
		/* It dies with khd; its nodes do not. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != self)
			_exit(1);
		if (sv[1] == CT_SPAWNER_FD)
			fcntl(sv[1], F_SETFD, 0);
		else if (dup2(sv[1], CT_SPAWNER_FD) < 0)
			_exit(1);
		if (syscall(SYS_close_range, CT_SPAWNER_FD + 1U, ~0U, 0U) < 0)
			for (int fd = CT_SPAWNER_FD + 1; fd < 65536; fd++)
				close(fd);
		/* Not the standard streams of whoever started khd: a caller
		 * reading khd's stderr through a pipe would never see it end. */
		if (stdio_to_null() < 0)
			_exit(1);
		snprintf(env, sizeof(env), "%s=%d", CT_SPAWNER_ENV, (int)self);
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	close(sv[1]);
	/* It says hello once it runs; a failed exec says nothing. */
	pfd.fd = sv[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 10000) != 1 || recv(sv[0], &hello, 1, 0) != 1) {
		snprintf(err, errlen, "ct: the spawner did not start");
		ct_spawner_stop(p, sv[0]);
		return -1;
	}
	*pid = p;
	*sock = sv[0];
	return 0;
}

void
ct_spawner_stop(pid_t pid, int sock)
{
	if (sock >= 0)
		close(sock);
	if (pid <= 0)
		return;
	/* EOF makes it exit; give it a moment, then insist. */
	for (int i = 0; i < 1000; i++) {
		struct timespec ms = {0, 1000000};
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		nanosleep(&ms, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
