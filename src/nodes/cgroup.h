/* cgroup: the control group of a node (CPU quota, memory and pids limits,
 * usage counters), on cgroup v1 or v2, whichever the host has.  One
 * cgroup_host is found at start; nodes live at <base>/kh-<facility>/n<rank>. */
#ifndef KH_CGROUP_H
#define KH_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* Controllers we use (bits of cgroup_host.ctrl and of each dir's mask). */
#define CG_CPU	   0x01
#define CG_CPUACCT 0x02
#define CG_MEMORY  0x04
#define CG_PIDS	   0x08

/* Most distinct directories a node's cgroup spans (v1: one per hierarchy). */
#define CG_MAXDIRS 4
/* Longest relative node path ("kh-<facility>/n<rank>") with terminator. */
#define CG_RELMAX 64

struct cgroup_host {
	int version;   /* 1 or 2 */
	unsigned ctrl; /* controllers available to nodes */
	int ndirs;
	struct {
		unsigned ctrl;	     /* controllers of this hierarchy (v2: all of ctrl) */
		char path[PATH_MAX]; /* where kh-<facility>/ directories are made */
	} dir[CG_MAXDIRS];
};

struct cgroup_limits {
	int cpu_milli; /* CPU quota in thousandths of a CPU; 0: none */
	uint64_t mem;  /* memory limit in bytes, swap none; 0: none */
	int pids;      /* most tasks; 0: none */
};

struct cgroup_stats {
	uint64_t cpu_ns;    /* CPU time used */
	uint64_t mem;	    /* memory charged now (anon, page cache, tmpfs, kernel) */
	uint64_t mem_peak;  /* highest mem seen (0 when the kernel does not keep it) */
	uint64_t oom_kills; /* processes killed by the OOM killer for this cgroup */
};

/* Which cgroup version /sys/fs/cgroup is: 2 for a cgroup2 mount (pure v2),
 * 1 for the v1 layout (tmpfs of v1 hierarchies, maybe a "unified" beside
 * them: the hybrid layout), -1 when neither. */
int cgroup_detect(void);

/* Find the hierarchies.  version 0: as cgroup_detect() says; 1 or 2: that
 * one (a v2 test on a hybrid host uses its cgroup2 mount).  parent: the
 * cgroup (path from the hierarchy's root, e.g. "/kh") below which facility
 * directories go; NULL: the caller's own cgroup in each hierarchy.  On v2 the
 * controllers are enabled for children of the parent; when our own cgroup
 * holds processes (the no-internal-process rule forbids that) the caller is
 * first moved into a "khd" leaf beside them.  Returns 0 or -1 with err. */
int cgroup_host_init(struct cgroup_host *h, int version, const char *parent, char *err,
		     size_t errlen);

/* Make the node cgroup rel ("kh-<facility>/n<rank>") in every hierarchy with
 * the limits.  A limit whose controller is missing is an error.  A stale
 * empty cgroup of that name is replaced.  All or nothing.  Returns 0 or -1. */
int cgroup_node_create(const struct cgroup_host *h, const char *rel,
		       const struct cgroup_limits *lim, char *err, size_t errlen);

/* v1: rename the node cgroup from to to (both "kh-<facility>/<name>") in
 * every hierarchy, all or nothing (v2 cannot rename: EINVAL).  Returns 0
 * or -1 with errno (EEXIST: to is there already). */
int cgroup_node_rename(const struct cgroup_host *h, const char *from, const char *to);
/* Close the facility directories cgroup_node_rename keeps open. */
void cgroup_rename_forget(void);

/* Open the node's cgroup.procs files for writing (close-on-exec), one per
 * hierarchy: a process writing "0" to each joins the node.  Returns how
 * many were opened into fds (up to CG_MAXDIRS), or -1. */
int cgroup_node_procs(const struct cgroup_host *h, const char *rel, int *fds);

/* v2: a directory fd of the node's cgroup for clone3(CLONE_INTO_CGROUP);
 * -1 on v1 or error. */
int cgroup_node_dirfd(const struct cgroup_host *h, const char *rel);

/* SIGKILL every process of the node cgroup: cgroup.kill on v2; on v1 each
 * process in cgroup.procs, once (one that forks meanwhile leaves a child
 * for another call).  Returns 0; 1 when v1 processes were signalled (they
 * may take a moment to go); -1 on error. */
int cgroup_node_kill(const struct cgroup_host *h, const char *rel);

/* Remove the node cgroup, then its facility directory if empty.  Processes
 * that just exited may hold it busy a moment: retried for at most ~20 ms.
 * A missing cgroup is not an error.  Returns 0 or -1 with err. */
int cgroup_node_remove(const struct cgroup_host *h, const char *rel, char *err, size_t errlen);

/* Kill and remove every node cgroup of a facility ("kh-<facility>/n*").
 * Returns 0, or -1 when some remain. */
int cgroup_facility_clear(const struct cgroup_host *h, const char *facility);
/* The same, but for the nodes keep(arg, rank) says to keep (running nodes
 * khd adopts). */
int cgroup_facility_clear_but(const struct cgroup_host *h, const char *facility,
			      int (*keep)(void *arg, int rank), void *arg);

/* Usage counters of the node cgroup.  Returns 0 or -1. */
int cgroup_node_stats(const struct cgroup_host *h, const char *rel, struct cgroup_stats *st);

/* Path of the node cgroup's directory in the hierarchy of controller ctl
 * (one CG_* bit).  Returns 0, or -1 when no hierarchy has it. */
int cgroup_node_path(const struct cgroup_host *h, unsigned ctl, const char *rel, char *buf,
		     size_t len);

#endif
