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
