/* ct_child: a container node's first steps, from the spawner's clone (or
 * the waiting process a free node keeps ready, ctnode_main.c) to the exec
 * of its /init.  Only the C library is used here. */
#ifndef KH_CT_CHILD_H
#define KH_CT_CHILD_H

#include "nodes/ct_int.h"

#include <stdint.h>
#include <sys/types.h>

/* A request made ready for the child: its descriptors and mount options. */
struct ct_plan {
	const struct ct_req *rq;
	int slave;
	int errfd; /* CT_REQ_EXEC: the program's standard error */
	int netns;
	int cgfd;
	int nprocs;
	int procs[CT_REQ_MAXFDS];
	int nkeep; /* CT_REQ_EXEC: descriptors for the program */
	int keep[CT_EXEC_MAXKEEP];
	char tmpfs_opts[64];
	/* What a failed step calls with its message ("what: why") instead of
	 * saying it on the console and ending the process (a waiting process
	 * says it when it is booted).  NULL: say it and end. */
	void (*later)(const struct ct_plan *p, const char *msg, int code) __attribute__((noreturn));
};

/* Say on the console why the node cannot start, and end it (exit code). */
void child_fail(const struct ct_plan *p, const char *what, int code) __attribute__((noreturn));

#define CHILD_TRY(p, expr, what)                                                                   \
	do {                                                                                       \
		if ((expr) < 0)                                                                    \
			child_fail((p), (what), NODE_EXIT_SETUP);                                  \
	} while (0)

/* mkdir that is content with a directory already there. */
int mkdir_ok(const char *path, mode_t mode);
/* In the directory that becomes the node's root (or that stages its
 * mounts): a fresh /dev (tmpfs, the harmless devices, a private devpts,
 * an empty file where the console goes), and /proc and a read-only /sys
 * with the host-wide knobs out of reach. */
void child_dev(const struct ct_plan *p);
void child_proc_sys(const struct ct_plan *p);
/* The console and the RDMA device (which: CHILD_BIND_*) bound into dev/:
 * their host paths, seen under host ("" when the host's tree is "/"). */
enum { CHILD_BIND_CONSOLE = 1, CHILD_BIND_DEVICE = 2 };
void child_dev_binds(const struct ct_plan *p, const char *host, int which);
/* The last steps, the same for every node: hostname, its user namespace
 * (userns >= 0), system call filter (unless a waiting node's is in),
 * capabilities, the console as its session's terminal on 0, 1 and 2,
 * nothing else of ours, and the exec of /init. */
void child_exec_init(const struct ct_plan *p, int userns) __attribute__((noreturn));
/* What nodes never need, refused (0 or -1).  key != 0: mount, umount2,
 * setns, open_tree and mount_setattr still pass when their sixth argument
 * is key (a waiting process installs the filter ahead and makes those
 * calls with child_key at its boot). */
int child_seccomp(uint64_t key);
/* The key those calls carry here (0: none), and mount and umount2 with it. */
extern uint64_t child_key;
int ct_mount(const char *src, const char *target, const char *type, unsigned long flags,
	     const void *data);
int ct_umount2(const char *target, int flags);
/* Drop to the capabilities node root keeps (0 or -1). */
int child_caps(void);

#endif
