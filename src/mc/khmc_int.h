/* khmc_int: libkhmc's insides.  A server has a TCP connection for writes
 * and a get transport: the TCP one today; the one-sided (RDMA) transport
 * slots in as another struct khmc_transport whose get reads the server's
 * arena and falls back to TCP (item.h has what it must check). */
#ifndef KH_KHMC_INT_H
#define KH_KHMC_INT_H

#include "mc/khmc.h"

#include <stddef.h>
#include <stdint.h>

#define KHMC_NAME_MAX 300

struct khmc_server;

/* A value found by a transport: bytes at value, valid until the next call
 * on the same server. */
struct khmc_hit {
	const char *value;
	size_t vlen;
	uint32_t flags;
	uint64_t cas;
};

struct khmc_transport {
	const char *name;
	/* Look up n keys (all of this server).  fn(arg, i, hit) for each hit;
	 * misses are silent.  Returns a khmc_rc. */
	int (*mget)(struct khmc *c, struct khmc_server *s, const char *const *keys,
		    const size_t *klens, const size_t *idx, size_t n,
		    void (*fn)(void *arg, size_t i, const struct khmc_hit *h), void *arg);
	void (*close)(struct khmc_server *s);
};

struct khmc_server {
	char host[256];
	uint16_t port;
	char name[KHMC_NAME_MAX]; /* "host:port" */
	char ring[KHMC_NAME_MAX]; /* how libmemcached names it on the ring */
	int fd;			  /* the TCP connection, -1 until needed */
	char *rbuf;		  /* replies read but not yet parsed */
	size_t rlen, rcap, rpos;
	const struct khmc_transport *get; /* the get path */
	void *get_state;		  /* for a transport other than TCP */
	int rdma_state;			  /* 0 not tried, 1 one-sided, -1 TCP only */
};

struct khmc_point {
	uint32_t value;
	uint32_t index;
};

struct khmc {
	struct khmc_server *servers;
	size_t nservers, cap;
	enum khmc_dist dist;
	struct khmc_point *points;
	size_t npoints;
	int timeout_ms;
	int err; /* errno of the last failure */
	char *wbuf;
	size_t wlen, wcap;
	struct khmc_rdma *rdma; /* khmc_use_rdma; NULL: TCP only */
};

extern const struct khmc_transport khmc_tcp;
extern const struct khmc_transport khmc_rdma;

/* The one-sided path (khmc_rdma.c).  attach: ask the server and, when it
 * offers it in a domain this node has a device in, switch its gets to
 * one-sided reads (else it stays on TCP for good).  forget: a write went
 * to key: the copy of its table window is old.  store: a two-phase set,
 * add or replace; -1 when that server or verb does not take it. */
void khmc_rdma_attach(struct khmc *c, struct khmc_server *s);
void khmc_rdma_forget(struct khmc_server *s, const char *key, size_t klen);
void khmc_rdma_forget_all(struct khmc_server *s);
int khmc_rdma_store(struct khmc *c, struct khmc_server *s, const char *verb, const char *key,
		    size_t klen, const void *value, size_t vlen, uint32_t exptime, uint32_t flags);
void khmc_rdma_free(struct khmc *c);

/* TCP requests (khmc_tcp.c). */
int khmc_tcp_store(struct khmc *c, struct khmc_server *s, const char *verb, const char *key,
		   size_t klen, const void *value, size_t vlen, uint32_t exptime, uint32_t flags,
		   uint64_t cas);
int khmc_tcp_simple(struct khmc *c, struct khmc_server *s, const char *line, char *reply,
		    size_t cap);
int khmc_tcp_stats(struct khmc *c, struct khmc_server *s, khmc_stat_fn *fn, void *arg);
void khmc_tcp_close(struct khmc_server *s);

/* The ring (khmc_ketama.c). */
int khmc_ring_build(struct khmc *c);
uint32_t khmc_one_at_a_time(const char *p, size_t n);
void khmc_md5(const void *p, size_t n, unsigned char out[16]);

#endif
