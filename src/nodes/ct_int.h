/* ct_int: between the ct backend (in khd) and its spawner, a small process
 * that clones the nodes so that khd's own memory is never copied. */
#ifndef KH_CT_INT_H
#define KH_CT_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { CT_OP_BOOT = 1, CT_OP_EXEC = 2 };

/* Room for an exec's argv and environment, NUL-terminated strings one
 * after the other (a protocol request is at most 8 KiB anyway). */
#define CT_EXEC_MAX 8192

/* One request.  Boot: descriptors ride along (SCM_RIGHTS) in this order:
 * console slave, netns (has_netns), v2 cgroup dir (has_cgfd), then nprocs
 * cgroup.procs files (v1, or v2 on kernels without CLONE_INTO_CGROUP).
 * Exec: the node's init pidfd, then nprocs cgroup.procs files. */
struct ct_req {
	int op;		      /* CT_OP_BOOT or CT_OP_EXEC */
	uint64_t clone_flags; /* namespaces to make */
	uint64_t mem;	      /* tmpfs size; 0: the tmpfs default */
	int has_netns;
	int has_cgfd;
	int nprocs;
	char name[64];	  /* hostname */
	char console[64]; /* the slave's path, for the /dev/console bind */
	char lower[PATH_MAX];
	char scratch[PATH_MAX];
	char device[PATH_MAX]; /* the RDMA device's socket, bound at /dev/khrdma; "": none */
	/* exec: argc strings of argv, then envc of the environment */
	int argc, envc;
	uint32_t slen;
	char strs[CT_EXEC_MAX];
};

/* Most descriptors a request carries. */
#define CT_REQ_MAXFDS 8

/* The answer.  Exec: on success three descriptors ride along: the
 * process's stdin (write end), stdout and stderr (read ends).  A process
 * that could not exec is a child of khd all the same (pid set, err and
 * what say why): khd reaps it. */
struct ct_rep {
	int pid;       /* the node's init or the exec'd process, a child of khd
			  (CLONE_PARENT); 0 when none was made */
	int err;       /* errno of what failed */
	char what[64]; /* exec: the step that failed ("" for the exec itself) */
};

/* Start the spawner: a fresh image of this very program (/proc/self/exe),
 * which turns into the spawner before main().  Returns 0 or -1 with err. */
int ct_spawner_start(pid_t *pid, int *sock, char *err, size_t errlen);
/* Stop it (close its socket, reap it). */
void ct_spawner_stop(pid_t pid, int sock);

#endif
