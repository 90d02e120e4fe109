/* ct_int: between the node backends (in khd) and their spawner, a small
 * process that clones the nodes so that khd's own memory is never copied:
 * a container node (ct), or a program such as a vm node's QEMU. */
#ifndef KH_CT_INT_H
#define KH_CT_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What a request starts. */
enum {
	CT_REQ_NODE,   /* a container node: namespaces, root file system, /init */
	CT_REQ_EXEC,   /* a program (argv) in the node's cgroup and network namespace */
	CT_REQ_ENTER,  /* a program (argv, env) inside a running node, as its init's child */
	CT_REQ_USERNS, /* a user namespace (idbase) and a network namespace it owns */
	CT_REQ_WARM    /* a free ct node's waiting process (kh-ctnode), booted later */
};

/* Longest argv (CT_REQ_ENTER: argv and environment) of a request, its
 * strings' terminators included (a protocol request is at most 8 KiB). */
#define CT_EXEC_ARGMAX 8192
/* Most descriptors a CT_REQ_EXEC request hands to its program (at 3, 4, ...). */
#define CT_EXEC_MAXKEEP 16

/* One request.  CT_REQ_NODE and CT_REQ_EXEC: descriptors ride along
 * (SCM_RIGHTS) in this order: console slave, the program's standard error
 * (CT_REQ_EXEC), netns (has_netns), nkeep descriptors for the program
 * (CT_REQ_EXEC), v2 cgroup dir (has_cgfd), then nprocs cgroup.procs files
 * (v1, or v2 on kernels without CLONE_INTO_CGROUP).  CT_REQ_ENTER: the
 * node's init pidfd, then nprocs cgroup.procs files.  CT_REQ_USERNS: none
 * (the answer carries the network namespace).  CT_REQ_WARM: the waiting
 * process's end of its boot socket, the kh-ctnode program (a memfd),
 * the console's slave, netns (has_netns), then nprocs cgroup.procs files;
 * scratch, console, mem, idbase and clone_flags as for a node, lower the
 * directory of the image trees, device that of the RDMA devices' sockets
 * ("": none). */
struct ct_req {
	int kind;	      /* CT_REQ_NODE, CT_REQ_EXEC or CT_REQ_ENTER */
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
	/* CT_REQ_NODE: host uid (and gid) of node root, whose user namespace
	 * owns netns; 0: none (the node runs as host root).  CT_REQ_USERNS:
	 * the range of the namespace to make.  CT_REQ_ENTER: non-zero when
	 * the node must have a user namespace of its own. */
	uint32_t idbase;
	/* CT_REQ_EXEC: argc strings, each NUL-terminated, one after the other
	 * (argv[0] is the program's path); the console is its standard input
	 * and output, the kept descriptors are 3, 4, ... in their order.
	 * CT_REQ_ENTER: argc strings of argv, then envc of the environment,
	 * slen bytes in all. */
	int argc;
	int nkeep;
	int envc;
	uint32_t slen;
	char argv[CT_EXEC_ARGMAX];
	char env[128]; /* one more NAME=VALUE for /init; "": none */
};

/* What khd sends a waiting node (CT_REQ_WARM) to boot it. */
#define CT_WARM_MAGIC 0x6b68776dU /* "khwm" */
struct ct_warm_boot {
	uint32_t magic;
	char name[64];
	char env[128];
	char lower[1024]; /* longer: the boot goes the usual way */
	char device[512];
};

/* Most descriptors a request carries. */
#define CT_REQ_MAXFDS (8 + CT_EXEC_MAXKEEP)

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

/* The child of a CT_REQ_EXEC request, in the spawner's clone: join the
 * cgroup (procs), enter netns (>= 0), put console on 0 and 1, errfd on 2,
 * keep[i] on 3+i, and exec the program.  On failure it says why on the
 * console and exits with NODE_EXIT_SETUP (127 when the exec fails). */
void vm_spawn_child(const struct ct_req *rq, int console, int errfd, int netns, const int *procs,
		    int nprocs, const int *keep, int nkeep) __attribute__((noreturn));

/* For the backends (ct.c): a console pty (master for khd, non-blocking;
 * slave for the node; name is the slave's path). */
int ct_open_console(int *master, int *slave, char *name, size_t namelen);
struct node_host;
/* Ask the spawner to start rq with its fds[0..nfixed) (the room behind
 * them, up to CT_REQ_MAXFDS, takes the cgroup's descriptors), inside the
 * node cgroup cg (made already).  Returns the pid (a child of the caller)
 * or -1 with err. */
pid_t ct_spawn_in(struct node_host *host, struct ct_req *rq, int *fds, int nfixed, const char *cg,
		  char *err, size_t errlen);
/* Ask the spawner rq with fds (a spawner gone or wedged is replaced and
 * asked again); the answer in rep, its descriptors in rfds (room for
 * CT_REQ_MAXFDS, or NULL; *nr of them).  Returns rep->pid or -1 with
 * errno. */
struct ct_rep;
pid_t ct_ask(struct node_host *host, const struct ct_req *rq, const int *fds, int nfds,
	     struct ct_rep *rep, int *rfds, int *nr);
/* The end of a node whose first process is h->pid, the same for every
 * backend: SIGKILL (pidfd, cgroup), reap, cgroup counters. */
struct node_handle;
struct node_stats;
int ct_kill(struct node_host *host, struct node_handle *h, int wait_ms);
int ct_reap(struct node_host *host, struct node_handle *h, int *status);
int ct_stats(struct node_host *host, const struct node_handle *h, struct node_stats *st);

/* In a child of the spawner, just before exec: every signal back to its
 * default action, none blocked. */
void ct_signals_default(void);

#endif
