/* state: durable storage of the facility behind one interface.  The
 * embedded backend is SQLite in WAL mode; a PostgreSQL backend for many
 * hosts implements the same operations (struct state_ops).  Every change
 * khd acknowledges happens inside state_begin/state_commit, so a crash at
 * any point leaves either all of a change or none of it. */
#ifndef KH_STATE_H
#define KH_STATE_H

#include "allocator/facility.h"

#include <stddef.h>

struct state;

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
	void (*close)(struct state *);
};

struct state {
	const struct state_ops *ops;
	int in_tx;
};

/* Open the SQLite backend on DIR/state.db.  sync_full: fsync every commit
 * (survives power loss); otherwise commits survive a crash of khd. */
struct state *state_sqlite_open(const char *dir, int sync_full, char *err, size_t errlen);

/* Thin wrappers so callers read as state_put_node(st, ...). */
static inline int state_begin(struct state *s) { return s->ops->begin(s); }
static inline int state_commit(struct state *s) { return s->ops->commit(s); }
static inline void state_rollback(struct state *s) { s->ops->rollback(s); }
static inline int state_load(struct state *s, struct facility *f) { return s->ops->load(s, f); }
static inline int state_get_meta(struct state *s, const char *k, char *v, size_t n) { return s->ops->get_meta(s, k, v, n); }
static inline int state_put_meta(struct state *s, const char *k, const char *v) { return s->ops->put_meta(s, k, v); }
static inline int state_put_type(struct state *s, const struct node_type *t) { return s->ops->put_type(s, t); }
static inline int state_put_node(struct state *s, const struct facility *f, const struct node *n) { return s->ops->put_node(s, f, n); }
static inline int state_del_node(struct state *s, int rank) { return s->ops->del_node(s, rank); }
static inline int state_put_principal(struct state *s, const struct principal *p) { return s->ops->put_principal(s, p); }
static inline int state_put_domain(struct state *s, const struct facility *f, const struct domain *d) { return s->ops->put_domain(s, f, d); }
static inline int state_put_channel(struct state *s, const struct facility *f, const struct channel *c) { return s->ops->put_channel(s, f, c); }
static inline int state_del_channel(struct state *s, int id) { return s->ops->del_channel(s, id); }
static inline int state_put_key(struct state *s, const struct facility *f, const struct sshkey *k) { return s->ops->put_key(s, f, k); }
static inline int state_del_chankeys(struct state *s, int chan) { return s->ops->del_chankeys(s, chan); }
static inline void state_close(struct state *s) { s->ops->close(s); }

#endif
