/* ct_int: between the ct backend (in khd) and its spawner, a small process
 * that clones the nodes so that khd's own memory is never copied. */
#ifndef KH_CT_INT_H
#define KH_CT_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One boot request.  Descriptors ride along (SCM_RIGHTS) in this order:
 * console slave, netns (has_netns), v2 cgroup dir (has_cgfd), then nprocs
 * cgroup.procs files (v1, or v2 on kernels without CLONE_INTO_CGROUP). */
struct ct_req {
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
	char env[128];	       /* one more NAME=VALUE for /init; "": none */
};

/* Most descriptors a request carries. */
#define CT_REQ_MAXFDS 8

struct ct_rep {
	int pid; /* the node's init, a child of khd (CLONE_PARENT); 0 on error */
	int err; /* errno of the failed clone */
};

/* Start the spawner: a fresh image of this very program (/proc/self/exe),
 * which turns into the spawner before main().  Returns 0 or -1 with err. */
int ct_spawner_start(pid_t *pid, int *sock, char *err, size_t errlen);
/* Stop it (close its socket, reap it). */
void ct_spawner_stop(pid_t pid, int sock);

#endif
