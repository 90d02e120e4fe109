/* khd: the service daemon's one context.  Everything khd knows lives here
 * (STYLE.md: no global mutable state outside this struct). */
#ifndef KH_KHD_H
#define KH_KHD_H

#include "admission/admission.h"
#include "allocator/alloc.h"
#include "allocator/facility.h"
#include "khd/ev.h"
#include "nodes/node.h"

#include <limits.h>
#include <sys/types.h>

#include "common/version.h"

struct conn;
struct reader;
struct machine;
struct blobstore;
struct imgcache;
struct srviface;
struct sshd;
struct fabric;
struct meter;
struct metrics;
struct rdma;
struct policy;
struct hosts;

struct khd {
	struct facility fac;
	struct admission adm;
	struct ev *ev;
	char dir[PATH_MAX];
	char sock[108];
	int lfd;
	int sigfd;
	struct conn *conns;
	int nconns;
	int adm_pending; /* the request just dispatched waits for adm's worker */
	int conn_max;
	uint64_t heavy_window, heavy_used; /* server.c: the loop's share for heavy requests */
	uint64_t heavy_deferred;
	struct conn *hq_head, *hq_tail; /* heavy requests waiting for room, in order */
	uint64_t hq_timer;		/* from the descriptor limit (server.c) */
	uint64_t conns_reaped;		/* stalled or idle connections closed */
	uint64_t started_ns;
	struct reader *readers;	 /* clients attached to channels */
	struct machine **mach;	 /* by rank: allocated nodes' runtime */
	struct blobstore *blobs; /* node memory contents, stored once */
	struct imgcache *images; /* unpacked ramdisks, once per content */
	struct node_host host;	 /* node backends' shared state (ct spawner) */
	int host_ok;
	struct alloc_hooks hooks;   /* the allocator calls machines through these */
	uint64_t load_timeout_ms;   /* an mrw whose bytes stop this long fails */
	struct sshd *sshd;	    /* khd's own sshd (sshd.c); NULL: none */
	struct srviface *srv;	    /* the service interface in the public domain; NULL: none */
	char srv_env[96];	    /* what a public node is told: KH_SOCKET=ssh://kh@ADDR */
	struct fabric *fab;	    /* communication domains; NULL: nodes get loopback only */
	int no_fabric;		    /* khd --no-fabric */
	uint64_t prep_timer;	    /* getting nodes ready for their next boot in idle time */
	int prep_cg_off;	    /* making cgroups ahead failed once: boots make them */
	int prep_warm_off;	    /* no waiting processes for free ct nodes (KH_WARM=off,
				       or making one failed three times in a row) */
	int prep_warm_fails;	    /* those failures */
	uint64_t settle_timer;	    /* finishing the fabric's batched work */
	struct meter *meter;	    /* usage sampling and the ledger (meter.c); NULL: off */
	struct metrics *metrics;    /* the OpenMetrics endpoint (metrics.c); NULL: none */
	struct rdma *rdma;	    /* the nodes' one-sided memory device; NULL: none */
	int no_rdma;		    /* khd --no-rdma */
	int rdma_watched;	    /* the engine's descriptor khd's loop watches, or -1 */
	int vm_quiet_s;		    /* a booted vm node silent this long is said to be */
	struct policy *policy;	    /* the modules consulted on allocation (src/policy) */
	struct conhold *hold;	    /* the console holder (nodes outlive khd); NULL: none */
	int on_stop_keep;	    /* khd.conf on_stop: SIGTERM leaves the nodes running */
	struct hosts *hosts;	    /* the agents of the other hosts (hosts.c); NULL: one host */
	char cluster_key[PATH_MAX]; /* khd.conf cluster_key: the agents' key file */
	int keep_nodes;		    /* stopping now leaves running nodes running */
	int adopted;		    /* nodes taken over from an earlier khd at start */
	uint64_t console_lost;	    /* bytes adopted nodes printed while no khd ran */
	struct exits *exits;	    /* adopted nodes' exit codes (nodes/exits.h); NULL: none */
	int exits_watched;	    /* its descriptor, as khd's loop watches it, or -1 */
};

/* server.c */
#define CONN_STREAM_BUF (1u << 20) /* per attached client: beyond it, output is dropped */
int server_listen(struct khd *k, char *err, size_t errlen);
void server_close(struct khd *k);
struct reader;
void conn_set_reader(struct conn *c, struct reader *r);
size_t conn_room(const struct conn *c);
void conn_send(struct conn *c, const void *p, size_t n);
/* Make the connection an exec stream (exec/exec.h); returns its exec. */
struct exec;
struct exec *conn_exec(struct conn *c);
/* The ssh socket (sshd.c): listen on path, mode 0666; returns the fd. */
int server_listen_ssh(struct khd *k, const char *path, char *err, size_t errlen);
/* 1 (and the peer's uid) when c came through the ssh socket, else 0. */
int conn_ssh_peer(const struct conn *c, uid_t *uid);
/* A service interface session's key (verbs.c `svc`), or NULL. */
const char *conn_svc_key(const struct conn *c);
int conn_set_svc_key(struct conn *c, const char *key);

/* verbs.c: run one request; the reply goes into out. */
struct proto_req;
struct sbuf;
/* The connection's peer (SO_PEERCRED) at accept; -1 when unknown. */
uid_t conn_peer_uid(const struct conn *c);
/* Returns 0 when done; >0 (nanoseconds) when the request must wait that
 * long before it is looked at again (throttled principal). */
uint64_t verbs_dispatch(struct khd *k, struct conn *c, const struct proto_req *req,
			struct sbuf *out);

#endif
