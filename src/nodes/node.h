/* node: what khd asks of a node backend (ct: container node; vm: QEMU node).
 * khd picks the backend of a node by its type (node_backend).  khd is
 * single-threaded: every call returns quickly, none leaves a zombie, and a
 * node's end is learnt by polling its pidfd. */
#ifndef KH_NODE_H
#define KH_NODE_H

#include "nodes/cgroup.h"
#include "nodes/userns.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit status of a node whose boot failed before its /init ran (the reason
 * is written to its console); 127 when /init itself cannot be executed. */
#define NODE_EXIT_SETUP 126

/* Ranks whose cgroup ct nodes may have made ahead (node_ct_prepare). */
#define NODE_PREP_RANKS 4096

/* What the backends share on one host: made once by khd at start. */
struct node_host {
	struct cgroup_host cg;
	/* ct: the node's cgroup is made (with its limits) and has never
	 * held a process: its next boot takes it as it is. */
	unsigned char cg_ready[NODE_PREP_RANKS];
	/* ct: a free node's waiting process (node_ct_warm), by rank; pid 0:
	 * none.  kh-ctnode is the program it runs (a sealed memfd; -1: none,
	 * nodes then boot the usual way). */
	struct node_warm {
		pid_t pid;	/* a child of khd, in cgroup p<rank> */
		int sock;	/* khd's end of its boot socket */
		int console;	/* its console's master (made ahead too) */
		int ready;	/* it said its setup is done */
		uint64_t netns; /* its network namespace (device << 32 ^ inode); 0: its own */
		uint64_t key;	/* what else it was made for (memory, scratch) */
		uint64_t start; /* its start time (node_pid_start) */
	} warm[NODE_PREP_RANKS];
	int ctnode_fd;
	pid_t spawner;	  /* the process that clones nodes (a child of khd) */
	int spawner_sock; /* khd's end of its socket */
	/* A second spawner for ct nodes, asked in turn with the first: a
	 * spawner sleeps while the node it cloned sets itself up (ct_spawn.c),
	 * so two set up at once.  0 and -1 when there is none. */
	pid_t spawner2;
	int spawner2_sock;
	int turn;
	struct userns_pool uns; /* ct: the nodes' uid ranges */
	/* vm: what node_vm_init found */
	int vm_ok;	       /* QEMU is there: vm nodes can boot */
	int kvm;	       /* 1: KVM runs guests here; 0: QEMU's TCG emulates */
	char qemu[256];	       /* the QEMU program */
	char bios[256];	       /* its qboot firmware, or "" (QEMU's default) */
	char vm_why[256];      /* why vm nodes cannot boot ("" when they can) */
	char kvm_why[256];     /* why not KVM ("" with KVM) */
	uint64_t kvm_probe_us; /* how long the probe took */
};

/* Find the host's cgroups (cgroup_host_init: version 0 detects, parent NULL
 * is khd's own cgroup) and start the ct spawner, a fresh image of this
 * program made before main() (so call this early, while khd is small: the
 * fork that starts it copies khd's page tables once).  Nodes and the
 * spawner are children of the caller: reap them only through the backend
 * (reap, kill) and node_host_close, never with waitpid(-1).  Returns 0 or
 * -1 with err. */
int node_host_init(struct node_host *host, int cgroup_version, const char *cgroup_parent, char *err,
		   size_t errlen);
/* Stop the spawner (running nodes are not touched). */
void node_host_close(struct node_host *host);
/* Get ready for vm nodes (once, at start, when some type has them): find
 * QEMU (qemu-system-x86_64 in PATH, or $KH_QEMU) and probe /dev/kvm with a
 * tiny guest (vm_kvm.c); KVM when it runs the guest, TCG otherwise.  A
 * host without QEMU is not an error: host->vm_ok stays 0 and vm_why says
 * why.  $KH_VM_ACCEL=tcg skips the probe. */
void node_vm_init(struct node_host *host);
/* Forget the kernel and ramdisk files a khd that died left under rundir
 * (its nodes were stopped), but those of the nodes keep(arg, rank) says
 * still run (adopted; keep NULL: none). */
void node_vm_clear(const char *rundir, int (*keep)(void *arg, int rank), void *arg);

/* One network interface of a vm node: a virtio-net NIC on an open macvtap
 * (fabric_node_tap). */
struct node_nic {
	int slot;	/* eth<slot> in the order of the control block */
	int netid;	/* its domain */
	int fd;		/* the macvtap's character device, open */
	uint8_t mac[6]; /* the MAC the macvtap holds */
	int mtu;
};
struct node_spec {
	const char *name;     /* hostname: 1-63 of [A-Za-z0-9-], e.g. "kh0000002a-n7" */
	const char *facility; /* 8 hex digits; with rank names kernel objects */
	int rank;	      /* >= 0, unique in the facility */
	int cpu_milli;	      /* CPU quota in thousandths of a CPU; 0: none */
	uint64_t mem;	      /* memory limit in bytes (no swap); 0: none */
	int pids;	      /* most tasks in the node; 0: none */
	const char *lower;    /* ct: read-only root directory, shared by many nodes */
	const char *scratch;  /* ct: empty directory of this node (its mount point;
				 nothing is ever written to it on the host) */
	const char *images;   /* ct: the directory lower is in (the image trees), and */
	const char *devices;  /* that of device (the RDMA sockets; NULL: none): a node
				 that waited ready (node_ct_warm) has copies of them */
	int netns_fd;	      /* network namespace to enter; -1: a new empty one */
	const char *device;   /* the RDMA device's socket, for /dev/khrdma; NULL: none */
	/* vm: the kernel (an x86 bzImage) and the initial ramdisk (NULL:
	 * none), each with an id naming its content ([0-9a-z-], so a copy
	 * in shared serves every node booting the same bytes); scratch is
	 * the node's directory (its kernel, initrd and QEMU's log). */
	const void *kernel;
	size_t kernel_len;
	const char *kernel_id;
	const void *initrd;
	size_t initrd_len;
	const char *initrd_id;
	const char *shared;  /* directory of the content-named copies */
	const char *cmdline; /* bootargs; the plan (kh.*) is appended */
	int cpus;	     /* vCPUs */
	const struct node_nic *nics;
	int nnics;
	const char *env; /* one more NAME=VALUE in /init's environment; NULL: none */
};

struct node_handle {
	pid_t pid;	    /* node's init (ct) as seen from the host; 0 once reaped */
	int pidfd;	    /* readable when pid exits; -1 on kernels without pidfds */
	int console;	    /* pty master, non-blocking, close-on-exec; owned by the
			       caller, who closes it after draining (reap leaves it) */
	int status;	    /* wait status, once reaped */
	char cg[CG_RELMAX]; /* the node's cgroup below the host's bases */
	char *dir;	    /* vm: the node's directory (malloc'd; reap frees it) */
	int adopted;	    /* started by an earlier khd (node_adopt): not our child, so
			       its exit status is unknown (status 0 once reaped) */
	uint64_t start;	    /* pid's start time (node_pid_start) when the backend knows
			       it already; 0: ask */
};

struct node_stats {
	uint64_t cpu_ns;    /* CPU time used by everything in the node */
	uint64_t mem;	    /* memory charged now, tmpfs root included */
	uint64_t mem_peak;  /* highest mem (0 if the kernel does not keep it) */
	uint64_t oom_kills; /* processes the node's OOM killer ended */
};

/* A process exec'd in a running node. */
struct node_proc {
	pid_t pid;	  /* as the host sees it: a child of the caller, who reaps it
			     (wait4 gives its usage); it leads its own session */
	int pidfd;	  /* readable when it exits; -1 on kernels without pidfds */
	int in, out, err; /* its stdin (write end), stdout and stderr (read ends):
			     non-blocking, close-on-exec, the caller's to close */
};

struct node_backend {
	const char *name; /* "ct", "vm" */
	/* Start the node: cgroup, namespaces, root file system, console, then
	 * /init.  Returns once the node's first process exists (setup goes on
	 * in it: a failure there ends it with NODE_EXIT_SETUP and a line on
	 * its console).  Returns 0, or -1 with err and nothing left behind. */
	int (*boot)(struct node_host *host, const struct node_spec *spec, struct node_handle *h,
		    char *err, size_t errlen);
	/* SIGKILL everything in the node now.  Then wait up to wait_ms for it
	 * to end and reap it.  Returns 1 when reaped (cleaned up), 0 when
	 * still dying (reap it when pidfd turns readable), -1 on error. */
	int (*kill)(struct node_host *host, struct node_handle *h, int wait_ms);
	/* Collect the node's exit without blocking.  Returns 1 when it had
	 * ended (status stored in *status and h->status; cgroup removed; pidfd
	 * closed), 0 when it still runs. */
	int (*reap)(struct node_host *host, struct node_handle *h, int *status);
	/* Usage counters from the node's cgroup (which reap removes: take the
	 * last figures before reaping).  Returns 0 or -1. */
	int (*stats)(struct node_host *host, const struct node_handle *h, struct node_stats *st);
	/* Run argv[0] (searched in envp's PATH) with argv and envp in the
	 * running node as a child of its init would be: in its namespaces and
	 * cgroup (its CPU and memory are the node's), with the init's
	 * capabilities and system call filter, in a session of its own, with
	 * pipes for stdin, stdout and stderr.  Returns once the program is
	 * exec'd: 0, or -1 with err ("sh: No such file or directory") and
	 * nothing left running. */
	int (*exec)(struct node_host *host, const struct node_handle *h, char *const argv[],
		    char *const envp[], struct node_proc *p, char *err, size_t errlen);
};

/* A ct node's cgroup, made ahead of its boot (in khd's idle time, while
 * the node is free or in the monitor): kh-<facility>/p<rank> with lim.
 * Its next boot renames it n<rank> instead of making one; nothing has
 * ever run in it, so it carries nothing of anyone.  cgroup v1 only (v2
 * cannot rename).  Returns 0 (also when it is made already) or -1 with
 * err. */
int node_ct_prepare(struct node_host *host, const char *facility, int rank,
		    const struct cgroup_limits *lim, char *err, size_t errlen);
/* Is it made ahead? */
int node_ct_prepared(const struct node_host *host, int rank);
/* Remove a cgroup made ahead that no boot took (khd stops); a waiting
 * process in it ends first. */
void node_ct_unprepare(struct node_host *host, const char *facility, int rank);

/* A free ct node waits ready to boot, as a hardware node waits at its
 * firmware: a process (kh-ctnode) made now, in idle time, in the rank's
 * cgroup made ahead (node_ct_prepare first), its network namespace
 * (s->netns_fd, or one of its own), user namespace, memory (s->mem, a
 * tmpfs at s->scratch) and new mount, PID, UTS and IPC namespaces with
 * /dev, /proc and /sys.  The next boot of the rank (node_boot) takes it
 * when it was made for the same network namespace, memory and scratch,
 * and only mounts the image, binds the console and execs /init.  s needs
 * facility, rank, mem, scratch and netns_fd.  Returns 0 or -1 with err. */
int node_ct_warm(struct node_host *host, const struct node_spec *s, char *err, size_t errlen);
/* Does rank have a waiting process made for netns (-1: none) that still
 * waits?  One that ended, or was made for another network namespace,
 * goes (0). */
int node_ct_warmed(struct node_host *host, int rank, int netns);
/* End rank's waiting process, if any; or every one (khd stops). */
void node_ct_unwarm(struct node_host *host, int rank);
void node_ct_unwarm_all(struct node_host *host);

/* When process pid started, in clock ticks since boot (/proc/PID/stat), or
 * 0 when there is no such process. */
uint64_t node_pid_start(pid_t pid);
/* Take over a running node that an earlier khd booted (khd was killed or
 * stopped for an upgrade): its first process pid (the ct node's init, a vm
 * node's QEMU) must still be the process that started at start and be in
 * the node's cgroup kh-<facility>/n<rank>.  dir: the vm node's directory
 * (NULL for ct).  Fills h but for its console (the caller's, from the
 * console holder); the node's end is learnt by its pidfd, and reap and
 * kill work as for a node booted here, but its exit status is unknown.
 * Returns 0, or -1 with err when that node is gone. */
int node_adopt(struct node_host *host, const char *facility, int rank, const char *dir, pid_t pid,
	       uint64_t start, struct node_handle *h, char *err, size_t errlen);

extern const struct node_backend node_ct;
extern const struct node_backend node_vm;

/* The backend of that name ("ct", "vm"), or NULL. */
const struct node_backend *node_backend(const char *name);

#endif
