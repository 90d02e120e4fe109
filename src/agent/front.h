/* front: the front end's side of its links to the hosts' agents
 * (docs/hosts.md).  khd makes one front with the facility's hosts; the
 * front connects to each host's agent, proves the cluster key, says hello,
 * keeps a lease (pings; a host silent for FRONT_LEASE_MS is lost), and
 * connects again after a loss.  What khd asks of a host goes out in order
 * on its link; what the agents say comes back through front_ops.  Console
 * input meant for many nodes of one host crosses once (front_input
 * coalesces), and a ramdisk crosses to a host once per content. */
#ifndef KH_FRONT_H
#define KH_FRONT_H

#include "fabric/fabric.h"
#include "khd/ev.h"
#include "nodes/node.h"

#include <stddef.h>
#include <stdint.h>

#define FRONT_PING_MS	500
#define FRONT_LEASE_MS	3000 /* a host silent this long is lost */
#define FRONT_REDIAL_MS 1000
#define FRONT_MAX_IFS	16

struct front;

/* One node an agent runs, as it says when it connects. */
struct front_running {
	int rank;
	uint32_t gen;
	unsigned char image[32];
};

struct front_stats {
	struct node_stats st;
	struct fabric_ifstats ifs[FRONT_MAX_IFS];
	int nifs;
};

/* What the agents say.  host: the index given to front_host_add. */
struct front_ops {
	/* The agent proved itself and said which nodes it runs. */
	void (*up)(void *arg, int host, const char *name, const struct front_running *run, int n);
	/* Lease expired, or the link broke: its nodes are lost until it is back. */
	void (*lost)(void *arg, int host, const char *why);
	void (*booted)(void *arg, int host, int rank, uint32_t gen);
	void (*failed)(void *arg, int host, int rank, uint32_t gen, const char *why);
	void (*output)(void *arg, int host, int rank, uint32_t gen, const void *p, size_t n);
	void (*exited)(void *arg, int host, int rank, uint32_t gen, int status);
	void (*stats)(void *arg, int host, int rank, uint32_t gen, const struct front_stats *s);
};

struct front *front_new(struct ev *ev, const unsigned char key[32], uint32_t facid,
			const struct front_ops *ops, void *arg);
void front_free(struct front *);
/* A host's agent at "IP:PORT", running ranks first .. first+count-1.
 * Returns its index (0, 1, ...) or -1 with err. */
int front_host_add(struct front *, const char *addr, int first, int count, char *err,
		   size_t errlen);
/* Start connecting (after every host is added). */
void front_start(struct front *);
int front_host_up(const struct front *, int host);
/* The host's underlay address (its IP, no port). */
const char *front_host_ip(const struct front *, int host);

/* Boot rank on host from the ramdisk (data, len; hash its BLAKE2b-256):
 * the bytes go first if the host does not hold them yet. */
struct front_boot {
	int rank;
	uint32_t gen;
	int cpu_milli;
	uint64_t mem;
	int pids;
	const char *name; /* hostname */
	const char *env;  /* NAME=VALUE or NULL */
};
void front_boot(struct front *, int host, const struct front_boot *b, const unsigned char hash[32],
		const void *data, size_t len);
/* Console input for rank: consecutive calls with the same bytes for
 * nodes of one host become one frame. */
void front_input(struct front *, int host, int rank, const void *p, size_t n);
void front_kill(struct front *, int host, int rank, uint32_t gen);
void front_wire(struct front *, int host, int rank, const int *netids, int n);
void front_release(struct front *, int host, int rank);
/* Domain netid on host spans the hosts peers[0..n) (their indexes). */
void front_span(struct front *, int host, int netid, const int *peers, int n);
/* Bytes that crossed to host (for the figures: a broadcast crosses once). */
uint64_t front_sent(const struct front *, int host);

#endif
