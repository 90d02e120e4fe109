/* state: durable storage of the facility behind one interface.  The
 * embedded backend is SQLite in WAL mode; the PostgreSQL backend (for many
 * hosts) implements the same operations (struct state_ops, docs/state.md).  Every change
 * khd acknowledges happens inside state_begin/state_commit, so a crash at
 * any point leaves either all of a change or none of it.  A write inside
 * a transaction may report its failure only at commit (PostgreSQL's are
 * pipelined); then the commit fails and nothing of the transaction is
 * kept. */
#ifndef KH_STATE_H
#define KH_STATE_H

#include "allocator/facility.h"

#include <stddef.h>

struct state;

/* A node interface's traffic counters as charged, as the node sees them
 * (netid 0: no interface at that slot then). */
struct state_meter_port {
	uint32_t netid;
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
};

/* What the sampler (khd/meter.c) must find again after a crash to charge a
 * node's leftover cgroup and interfaces from where it stopped: the
 * counters it charged. */
struct state_meter_node {
	int rank;
	char principal[KH_NAME_MAX + 1];
	uint64_t since_ms;			  /* unix ms up to which the node is charged */
	uint64_t cpu_ns;			  /* its cgroup's CPU counter, charged up to here */
	uint64_t mem;				  /* memory at that moment */
	uint64_t peak;				  /* its cgroup's peak counter then */
	struct state_meter_port port[KH_MAX_IFS]; /* by slot: eth<slot> */
};

/* Callbacks of the metering reads; a non-zero return stops the walk. */
typedef int state_rec_fn(void *arg, uint64_t seq, const char *line);
typedef int state_sig_fn(void *arg, uint64_t seq, const char *sighex);
typedef int state_total_fn(void *arg, const char *principal, const char *usage);
typedef int state_mnode_fn(void *arg, const struct state_meter_node *mn);

struct state_ops {
	const char *name;
	int (*begin)(struct state *);
	int (*commit)(struct state *);
	void (*rollback)(struct state *);
	int (*load)(struct state *, struct facility *);
	int (*get_meta)(struct state *, const char *key, char *val, size_t len);
	int (*put_meta)(struct state *, const char *key, const char *val);
	int (*put_type)(struct state *, const struct node_type *);
	int (*put_node)(struct state *, const struct facility *, const struct node *);
	int (*del_node)(struct state *, int rank);
	int (*put_principal)(struct state *, const struct principal *);
	int (*put_domain)(struct state *, const struct facility *, const struct domain *);
	int (*put_channel)(struct state *, const struct facility *, const struct channel *);
	int (*del_channel)(struct state *, int id);
	int (*put_key)(struct state *, const struct facility *, const struct sshkey *);
	/* Forget the keys registered for channel chan (transferred again, or gone). */
	int (*del_chankeys)(struct state *, int chan);
	/* Metering (docs/metering.md): ledger records (kept as their export
	 * line, meter/ledger.h), block signatures, each principal's running
	 * totals (usage_encode's text) and the per-node baselines. */
	int (*put_record)(struct state *, const char *principal, uint64_t seq, uint64_t t0,
			  uint64_t t1, const char *line);
	/* Records of principal with seq in (after, upto] (upto 0: no bound) and
	 * t0 in [from, to) (to 0: no bound), in seq order. */
	int (*get_records)(struct state *, const char *principal, uint64_t after, uint64_t upto,
			   uint64_t from, uint64_t to, state_rec_fn *fn, void *arg);
	/* The last record of principal: 1 (fn called), 0 when it has none, -1. */
	int (*get_last_record)(struct state *, const char *principal, state_rec_fn *fn, void *arg);
	int (*put_sig)(struct state *, const char *principal, uint64_t seq, const char *sighex);
	int (*get_sigs)(struct state *, const char *principal, uint64_t after, uint64_t upto,
			state_sig_fn *fn, void *arg);
	int (*put_total)(struct state *, const char *principal, const char *usage);
	int (*get_totals)(struct state *, state_total_fn *fn, void *arg);
	int (*put_meter_node)(struct state *, const struct state_meter_node *);
	int (*del_meter_node)(struct state *, int rank);
	int (*get_meter_nodes)(struct state *, state_mnode_fn *fn, void *arg);
	void (*close)(struct state *);
};

struct state {
	const struct state_ops *ops;
	int in_tx;
};

/* Open the SQLite backend on DIR/state.db.  sync_full: fsync every commit
 * (survives power loss); otherwise commits survive a crash of khd. */
struct state *state_sqlite_open(const char *dir, int sync_full, char *err, size_t errlen);
/* Connect to PostgreSQL (conninfo: libpq's key=value string or a URI) and
 * make the schema there if it is not yet (docs/state.md).  Every commit is
 * durable on the server (synchronous_commit on).  NULL with one line in
 * err when the server cannot be reached or refuses. */
struct state *state_pg_open(const char *conninfo, char *err, size_t errlen);

enum { STATE_SQLITE, STATE_PG };
/* Which backend spec names: NULL or "sqlite" (DIR/state.db), or
 * "postgresql:CONNINFO" / a postgresql:// URI; -1 with why otherwise. */
int state_spec_check(const char *spec, char *why, size_t len);
/* Open the backend spec names (dir and sync_full are SQLite's). */
struct state *state_open(const char *spec, const char *dir, int sync_full, char *err,
			 size_t errlen);

/* Thin wrappers so callers read as state_put_node(st, ...). */
static inline int
state_begin(struct state *s)
{
	return s->ops->begin(s);
}
static inline int
state_commit(struct state *s)
{
	return s->ops->commit(s);
}
static inline void
state_rollback(struct state *s)
{
	s->ops->rollback(s);
}
static inline int
state_load(struct state *s, struct facility *f)
{
	return s->ops->load(s, f);
}
static inline int
state_get_meta(struct state *s, const char *k, char *v, size_t n)
{
	return s->ops->get_meta(s, k, v, n);
}
static inline int
state_put_meta(struct state *s, const char *k, const char *v)
{
	return s->ops->put_meta(s, k, v);
}
static inline int
state_put_type(struct state *s, const struct node_type *t)
{
	return s->ops->put_type(s, t);
}
static inline int
state_put_node(struct state *s, const struct facility *f, const struct node *n)
{
	return s->ops->put_node(s, f, n);
}
static inline int
state_del_node(struct state *s, int rank)
{
	return s->ops->del_node(s, rank);
}
static inline int
state_put_principal(struct state *s, const struct principal *p)
{
	return s->ops->put_principal(s, p);
}
static inline int
state_put_domain(struct state *s, const struct facility *f, const struct domain *d)
{
	return s->ops->put_domain(s, f, d);
}
static inline int
state_put_channel(struct state *s, const struct facility *f, const struct channel *c)
{
	return s->ops->put_channel(s, f, c);
}
static inline int
state_del_channel(struct state *s, int id)
{
	return s->ops->del_channel(s, id);
}
static inline int
state_put_key(struct state *s, const struct facility *f, const struct sshkey *k)
{
	return s->ops->put_key(s, f, k);
}
static inline int
state_del_chankeys(struct state *s, int chan)
{
	return s->ops->del_chankeys(s, chan);
}
static inline int
state_put_record(struct state *s, const char *p, uint64_t seq, uint64_t t0, uint64_t t1,
		 const char *line)
{
	return s->ops->put_record(s, p, seq, t0, t1, line);
}
static inline int
state_get_records(struct state *s, const char *p, uint64_t after, uint64_t upto, uint64_t from,
		  uint64_t to, state_rec_fn *fn, void *arg)
{
	return s->ops->get_records(s, p, after, upto, from, to, fn, arg);
}
static inline int
state_get_last_record(struct state *s, const char *p, state_rec_fn *fn, void *arg)
{
	return s->ops->get_last_record(s, p, fn, arg);
}
static inline int
state_put_sig(struct state *s, const char *p, uint64_t seq, const char *sighex)
{
	return s->ops->put_sig(s, p, seq, sighex);
}
static inline int
state_get_sigs(struct state *s, const char *p, uint64_t after, uint64_t upto, state_sig_fn *fn,
	       void *arg)
{
	return s->ops->get_sigs(s, p, after, upto, fn, arg);
}
static inline int
state_put_total(struct state *s, const char *p, const char *usage)
{
	return s->ops->put_total(s, p, usage);
}
static inline int
state_get_totals(struct state *s, state_total_fn *fn, void *arg)
{
	return s->ops->get_totals(s, fn, arg);
}
static inline int
state_put_meter_node(struct state *s, const struct state_meter_node *mn)
{
	return s->ops->put_meter_node(s, mn);
}
static inline int
state_del_meter_node(struct state *s, int rank)
{
	return s->ops->del_meter_node(s, rank);
}
static inline int
state_get_meter_nodes(struct state *s, state_mnode_fn *fn, void *arg)
{
	return s->ops->get_meter_nodes(s, fn, arg);
}
static inline void
state_close(struct state *s)
{
	s->ops->close(s);
}

#endif
