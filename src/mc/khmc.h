/* khmc: a C client for memcached servers (khmcd, or Debian's memcached),
 * shaped like libmemcached: a handle with a list of servers, keys spread
 * over them by consistent hashing that picks the same server for a key as
 * libmemcached does (docs/mc.md, "libkhmc"), get, multi-get, set, add,
 * replace, delete, incr, decr.  Errors are return codes (khmc_strerror).
 * Link build/libkhmc.a.
 *
 * Reads go through a server's get transport (TCP today; one-sided reads of
 * khmcd's arena later), writes over TCP.  A handle is for one thread. */
#ifndef KH_KHMC_H
#define KH_KHMC_H

#include <stddef.h>
#include <stdint.h>

enum khmc_rc {
	KHMC_OK = 0,
	KHMC_NOTFOUND,	   /* no such key (get, delete, incr, replace's NOT_STORED is NOTSTORED) */
	KHMC_NOTSTORED,	   /* add of an existing key, replace of a missing one */
	KHMC_EXISTS,	   /* cas: the item changed */
	KHMC_BAD_KEY,	   /* empty, longer than 250 bytes, or with a blank or control byte */
	KHMC_NO_SERVERS,   /* no server added */
	KHMC_CONNECT,	   /* cannot connect (errno in khmc_errno) */
	KHMC_IO,	   /* the connection failed or timed out (errno in khmc_errno) */
	KHMC_PROTOCOL,	   /* a reply we do not understand */
	KHMC_SERVER_ERROR, /* the server said SERVER_ERROR (out of memory, too large) */
	KHMC_CLIENT_ERROR, /* the server said CLIENT_ERROR (e.g. incr of a non-number) */
	KHMC_NOMEM,
	KHMC_INVALID, /* a bad argument */
};

/* How keys map to servers. */
enum khmc_dist {
	/* libmemcached's MEMCACHED_BEHAVIOR_KETAMA (= MEMCACHED_BEHAVIOR_
	 * KETAMA_WEIGHTED 0, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA): 100
	 * points per server, one-at-a-time hashes.  The default. */
	KHMC_DIST_KETAMA,
	/* libmemcached's MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED 1 with equal
	 * weights, i.e. libketama's: 160 MD5 points per server, MD5 keys. */
	KHMC_DIST_KETAMA_MD5,
	/* libmemcached's default: one-at-a-time hash modulo server count. */
	KHMC_DIST_MODULA,
};

struct khmc;

struct khmc *khmc_new(void);
void khmc_free(struct khmc *c);
/* Add a server (named "host:port" on the ring, as libmemcached names it;
 * port 0 means 11211). */
int khmc_add_server(struct khmc *c, const char *host, uint16_t port);
/* Add servers from "host:port,host:port,..." (a port may be left out). */
int khmc_add_servers(struct khmc *c, const char *list);
int khmc_set_distribution(struct khmc *c, enum khmc_dist d);
/* I/O timeout per request, milliseconds (default 5000). */
void khmc_set_timeout(struct khmc *c, int ms);
size_t khmc_server_count(const struct khmc *c);
/* "host:port" of server i. */
const char *khmc_server_name(const struct khmc *c, size_t i);
/* The index of the server key goes to. */
size_t khmc_server_for(const struct khmc *c, const char *key, size_t klen);

/* get: *value is malloc'd (NUL-terminated after vlen bytes, for
 * convenience); free() it.  flags and cas may be NULL. */
int khmc_get(struct khmc *c, const char *key, size_t klen, char **value, size_t *vlen,
	     uint32_t *flags, uint64_t *cas);
/* multi-get: fn is called for every key found (i: its index in keys), with
 * the value valid during the call; one request per server. */
typedef void khmc_result_fn(void *arg, size_t i, const char *value, size_t vlen, uint32_t flags,
			    uint64_t cas);
int khmc_mget(struct khmc *c, const char *const *keys, const size_t *klens, size_t n,
	      khmc_result_fn *fn, void *arg);

int khmc_set(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
	     uint32_t exptime, uint32_t flags);
int khmc_add(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
	     uint32_t exptime, uint32_t flags);
int khmc_replace(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
		 uint32_t exptime, uint32_t flags);
int khmc_cas(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
	     uint32_t exptime, uint32_t flags, uint64_t cas);
int khmc_delete(struct khmc *c, const char *key, size_t klen);
/* incr/decr: *value (may be NULL) gets the new value. */
int khmc_incr(struct khmc *c, const char *key, size_t klen, uint64_t delta, uint64_t *value);
int khmc_decr(struct khmc *c, const char *key, size_t klen, uint64_t delta, uint64_t *value);
/* flush_all on every server (as libmemcached's memcached_flush). */
int khmc_flush(struct khmc *c);
/* "stats" of server i: fn gets each name and value. */
typedef void khmc_stat_fn(void *arg, const char *name, const char *value);
int khmc_stats(struct khmc *c, size_t i, khmc_stat_fn *fn, void *arg);

/* One-sided gets (docs/mc.md): servers that expose their memory through
 * this node's RDMA device are read with one-sided reads, and sets, adds
 * and replaces to them go in two phases (the server reads the value from
 * this client's exposed buffer).  ifname: the device's interface, or NULL
 * to use, for each server, the interface of the server's domain.  Servers
 * that do not offer it (another domain, a plain memcached) stay on TCP. */
int khmc_use_rdma(struct khmc *c, const char *ifname);
struct khmc_rdma_stats {
	uint64_t hits, misses; /* gets answered one-sided */
	uint64_t retries;      /* keys read again after a stale or torn read */
	uint64_t fallbacks;    /* keys answered over TCP after the tries */
	uint64_t reads;	       /* one-sided item reads */
};
void khmc_rdma_stats(const struct khmc *c, struct khmc_rdma_stats *st);

const char *khmc_strerror(int rc);
/* The errno behind the last KHMC_CONNECT or KHMC_IO. */
int khmc_errno(const struct khmc *c);

#endif
