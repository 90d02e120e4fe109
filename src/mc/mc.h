/* mc: khmcd, a memcached-compatible cache server (docs/mc.md).  What other
 * code uses: start a server from its settings, stop it, and reach the one
 * memory region that holds all its items and its hash table, which the
 * one-sided (RDMA) path will register and expose.  The layout of that
 * region is in mc/item.h. */
#ifndef KH_MC_H
#define KH_MC_H

#include <stddef.h>
#include <stdint.h>

struct mc_settings {
	const char *listen; /* -l: an address, NULL for all */
	uint16_t port;	    /* -p: 11211; 0 picks a free one */
	uint64_t maxbytes;  /* -m: item memory in bytes (64 MiB) */
	int threads;	    /* -t: worker threads (4) */
	int maxconns;	    /* -c: 1024 */
	int verbose;	    /* -v */
	double factor;	    /* -f: slab growth factor (1.25) */
	uint64_t buckets;   /* the first table's buckets (4096) */
	const char *rdma;   /* --rdma: "auto" (every domain interface, if the node
			       has the device), "off", or an interface (eth1) */
};

void mc_settings_default(struct mc_settings *s);

struct mc_server;
/* Make the cache and listen.  NULL with a reason in err. */
struct mc_server *mc_server_new(const struct mc_settings *s, char *err, size_t errlen);
/* Serve until mc_server_stop; returns 0 (or -1 if a thread could not start). */
int mc_server_run(struct mc_server *srv);
/* Ask mc_server_run to return; async-signal-safe. */
void mc_server_stop(struct mc_server *srv);
/* mc_server_run also returns once fd is readable (e.g. a signalfd). */
void mc_server_stop_on(struct mc_server *srv, int fd);
void mc_server_free(struct mc_server *srv);
/* The port listened on (useful with port 0). */
uint16_t mc_server_port(const struct mc_server *srv);

/* The arena: a memfd (sealed against resizing) mapped at base. */
int mc_arena_fd(const struct mc_server *srv);
void *mc_arena_base(const struct mc_server *srv);
size_t mc_arena_size(const struct mc_server *srv);

#endif
