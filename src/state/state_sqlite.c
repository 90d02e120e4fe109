/* state_sqlite: the embedded state backend.  One SQLite database in WAL
 * mode under khd's directory; prepared statements are made once.  With
 * synchronous=NORMAL a commit survives kill -9 of khd (the WAL is in the
 * kernel's page cache); with --sync full it also survives power loss. */
#include "state/state.h"
#include "state/state_int.h"
#include "common/log.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_GETMETA,
	S_PUTMETA,
	S_PUTTYPE,
	S_PUTNODE,
	S_DELNODE,
	S_PUTPRIN,
	S_PUTDOM,
	S_PUTCHAN,
	S_DELCHAN,
	S_PUTKEY,
	S_PUTCHANKEY,
	S_DELCHANKEYS,
	S_PUTREC,
	S_GETRECS,
	S_LASTREC,
	S_PUTSIG,
	S_GETSIGS,
	S_PUTTOTAL,
	S_GETTOTALS,
	S_PUTMNODE,
	S_DELMNODE,
	S_GETMNODES,
	S_COUNT
};

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_GETMETA] = "SELECT value FROM meta WHERE key=?1",
    [S_PUTMETA] = "INSERT OR REPLACE INTO meta(key,value) VALUES(?1,?2)",
    [S_PUTTYPE] = "INSERT OR REPLACE INTO types(name,backend,cpu_milli,mem,pids,max_ifs,count)"
		  " VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [S_PUTNODE] = "INSERT OR REPLACE INTO nodes(rank,type,state,owner,chan,ifs,resets)"
		  " VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [S_DELNODE] = "DELETE FROM nodes WHERE rank=?1",
    [S_PUTPRIN] = "INSERT OR REPLACE INTO principals(name,pwhash,created) VALUES(?1,?2,?3)",
    [S_PUTDOM] = "INSERT OR REPLACE INTO domains(netid,kind,owner,created) VALUES(?1,?2,?3,?4)",
    [S_PUTCHAN] = "INSERT OR REPLACE INTO channels(id,owner,type,created,credhash,nets)"
		  " VALUES(?1,?2,?3,?4,?5,?6)",
    [S_DELCHAN] = "DELETE FROM channels WHERE id=?1",
    [S_PUTKEY] = "INSERT OR IGNORE INTO keys(owner,line) VALUES(?1,?2)",
    [S_PUTCHANKEY] = "INSERT OR IGNORE INTO chankeys(chan,line) VALUES(?1,?2)",
    [S_DELCHANKEYS] = "DELETE FROM chankeys WHERE chan=?1",
    [S_PUTREC] = "INSERT INTO ledger(principal,seq,t0,t1,line) VALUES(?1,?2,?3,?4,?5)",
    [S_GETRECS] = "SELECT seq,line FROM ledger WHERE principal=?1 AND seq>?2 AND seq<=?3"
		  " AND t0>=?4 AND t0<?5 ORDER BY seq",
    [S_LASTREC] = "SELECT seq,line FROM ledger WHERE principal=?1 ORDER BY seq DESC LIMIT 1",
    [S_PUTSIG] = "INSERT OR REPLACE INTO ledger_sigs(principal,seq,sig) VALUES(?1,?2,?3)",
    [S_GETSIGS] = "SELECT seq,sig FROM ledger_sigs WHERE principal=?1 AND seq>?2 AND seq<=?3"
		  " ORDER BY seq",
    [S_PUTTOTAL] = "INSERT OR REPLACE INTO usage_totals(principal,usage) VALUES(?1,?2)",
    [S_GETTOTALS] = "SELECT principal,usage FROM usage_totals ORDER BY principal",
    [S_PUTMNODE] = "INSERT OR REPLACE INTO meter_nodes(rank,principal,since,cpu,mem,peak,net)"
		   " VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [S_DELMNODE] = "DELETE FROM meter_nodes WHERE rank=?1",
    [S_GETMNODES] = "SELECT rank,principal,since,cpu,mem,peak,net FROM meter_nodes"
		    " ORDER BY rank",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS types(name TEXT PRIMARY KEY, backend TEXT NOT NULL,"
    " cpu_milli INTEGER NOT NULL, mem INTEGER NOT NULL, pids INTEGER NOT NULL,"
    " max_ifs INTEGER NOT NULL, count INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS principals(name TEXT PRIMARY KEY, pwhash TEXT NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS domains(netid INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
    " owner TEXT REFERENCES principals(name), created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS channels(id INTEGER PRIMARY KEY,"
    " owner TEXT NOT NULL REFERENCES principals(name), type TEXT NOT NULL,"
    " created INTEGER NOT NULL, credhash TEXT NOT NULL, nets TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS nodes(rank INTEGER PRIMARY KEY, type TEXT NOT NULL,"
    " state INTEGER NOT NULL, owner TEXT REFERENCES principals(name), chan INTEGER,"
    " ifs TEXT NOT NULL, resets INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS keys(owner TEXT NOT NULL REFERENCES principals(name),"
    " line TEXT NOT NULL, PRIMARY KEY(owner, line));"
    "CREATE TABLE IF NOT EXISTS chankeys(chan INTEGER NOT NULL REFERENCES channels(id),"
    " line TEXT NOT NULL, PRIMARY KEY(chan, line));"
    /* Metering.  Records are append-only: nothing in khd updates or
     * deletes a ledger row.  No index on t0: each tick adds a row to
     * every active principal's range, and a second index would double
     * the pages a tick dirties; a time query scans one principal. */
    "CREATE TABLE IF NOT EXISTS ledger(principal TEXT NOT NULL, seq INTEGER NOT NULL,"
    " t0 INTEGER NOT NULL, t1 INTEGER NOT NULL, line TEXT NOT NULL,"
    " PRIMARY KEY(principal, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ledger_sigs(principal TEXT NOT NULL, seq INTEGER NOT NULL,"
    " sig TEXT NOT NULL, PRIMARY KEY(principal, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS usage_totals(principal TEXT PRIMARY KEY, usage TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meter_nodes(rank INTEGER PRIMARY KEY, principal TEXT NOT NULL,"
    " since INTEGER NOT NULL, cpu INTEGER NOT NULL, mem INTEGER NOT NULL,"
    " peak INTEGER NOT NULL, net TEXT NOT NULL DEFAULT '');";

/* Columns added since a table was first made: a state.db of an older khd
 * gets them on open (the default reads as "nothing stored"). */
static const struct {
	const char *probe, *add;
} added[] = {
    {"SELECT net FROM meter_nodes LIMIT 0",
     "ALTER TABLE meter_nodes ADD COLUMN net TEXT NOT NULL DEFAULT ''"},
};

struct sqlite_state {
	struct state base;
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
};

#define DB(s) (((struct sqlite_state *)(s))->db)

static int
dberr(struct state *s, const char *what)
{
	log_warnx("state: %s: %s", what, sqlite3_errmsg(DB(s)));
	return -1;
}

static sqlite3_stmt *
stmt(struct state *s, int which)
{
	sqlite3_stmt *st = ((struct sqlite_state *)s)->st[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static int
run(struct state *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return dberr(s, what);
	return 0;
}

static int
sq_begin(struct state *s)
{
	if (run(s, stmt(s, S_BEGIN), "begin") < 0)
		return -1;
	s->in_tx = 1;
	return 0;
}

static int
sq_commit(struct state *s)
{
	if (run(s, stmt(s, S_COMMIT), "commit") < 0) {
		s->ops->rollback(s);
		return -1;
	}
	s->in_tx = 0;
	return 0;
}

static void
sq_rollback(struct state *s)
{
	if (sqlite3_get_autocommit(DB(s)) == 0)
		run(s, stmt(s, S_ROLLBACK), "rollback");
	s->in_tx = 0;
}

static int
sq_get_meta(struct state *s, const char *key, char *val, size_t len)
{
	sqlite3_stmt *st = stmt(s, S_GETMETA);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(val, len, "%s", (const char *)sqlite3_column_text(st, 0));
		sqlite3_reset(st);
		return 1;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : dberr(s, "get meta");
}

static int
sq_put_meta(struct state *s, const char *key, const char *val)
{
	sqlite3_stmt *st = stmt(s, S_PUTMETA);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
	return run(s, st, "put meta");
}

static int
sq_put_type(struct state *s, const struct node_type *t)
{
	sqlite3_stmt *st = stmt(s, S_PUTTYPE);
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->backend, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, t->cpu_milli);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)t->mem);
	sqlite3_bind_int(st, 5, t->pids);
	sqlite3_bind_int(st, 6, t->max_ifs);
	sqlite3_bind_int(st, 7, t->count);
	return run(s, st, "put type");
}

static int
sq_put_node(struct state *s, const struct facility *f, const struct node *n)
{
	char ifs[KH_MAX_IFS * 12];
	sqlite3_stmt *st = stmt(s, S_PUTNODE);

	state_ints_text(ifs, sizeof(ifs), n->ifs, n->nifs);
	sqlite3_bind_int(st, 1, n->rank);
	sqlite3_bind_text(st, 2, f->types[n->type].name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, n->state);
	if (n->owner >= 0)
		sqlite3_bind_text(st, 4, f->principals[n->owner].name, -1, SQLITE_STATIC);
	if (n->chan > 0)
		sqlite3_bind_int(st, 5, n->chan);
	sqlite3_bind_text(st, 6, ifs, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)n->resets);
	return run(s, st, "put node");
}

static int
sq_del_node(struct state *s, int rank)
{
	sqlite3_stmt *st = stmt(s, S_DELNODE);
	sqlite3_bind_int(st, 1, rank);
	return run(s, st, "delete node");
}

static int
sq_put_principal(struct state *s, const struct principal *p)
{
	sqlite3_stmt *st = stmt(s, S_PUTPRIN);
	sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, p->created);
	return run(s, st, "put principal");
}

static int
sq_put_domain(struct state *s, const struct facility *f, const struct domain *d)
{
	sqlite3_stmt *st = stmt(s, S_PUTDOM);
	sqlite3_bind_int(st, 1, d->netid);
	sqlite3_bind_int(st, 2, d->kind);
	if (d->owner >= 0)
		sqlite3_bind_text(st, 3, f->principals[d->owner].name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, d->created);
	return run(s, st, "put domain");
}

static int
sq_put_channel(struct state *s, const struct facility *f, const struct channel *c)
{
	char nets[KH_MAX_IFS * 12];
	sqlite3_stmt *st = stmt(s, S_PUTCHAN);

	state_ints_text(nets, sizeof(nets), c->nets, c->nnets);
	sqlite3_bind_int(st, 1, c->id);
	sqlite3_bind_text(st, 2, f->principals[c->owner].name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, f->types[c->type].name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, c->created);
	sqlite3_bind_text(st, 5, c->credhash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, nets, -1, SQLITE_TRANSIENT);
	return run(s, st, "put channel");
}

static int sq_del_chankeys(struct state *s, int chan);

static int
sq_del_channel(struct state *s, int id)
{
	if (sq_del_chankeys(s, id) < 0)
		return -1;
	sqlite3_stmt *st = stmt(s, S_DELCHAN);
	sqlite3_bind_int(st, 1, id);
	return run(s, st, "delete channel");
}

static int
sq_put_key(struct state *s, const struct facility *f, const struct sshkey *k)
{
	sqlite3_stmt *st;
	if (k->chan > 0) {
		st = stmt(s, S_PUTCHANKEY);
		sqlite3_bind_int(st, 1, k->chan);
	} else {
		st = stmt(s, S_PUTKEY);
		sqlite3_bind_text(st, 1, f->principals[k->owner].name, -1, SQLITE_STATIC);
	}
	sqlite3_bind_text(st, 2, k->line, -1, SQLITE_STATIC);
	return run(s, st, "put key");
}

static int
sq_del_chankeys(struct state *s, int chan)
{
	sqlite3_stmt *st = stmt(s, S_DELCHANKEYS);
	sqlite3_bind_int(st, 1, chan);
	return run(s, st, "delete channel keys");
}

/* SQLite integers are signed 64-bit: counters above 2^63 would not come
 * back; none of ours gets there (ms, us, bytes of a node). */
static sqlite3_int64
i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int
sq_put_record(struct state *s, const char *principal, uint64_t seq, uint64_t t0, uint64_t t1,
	      const char *line)
{
	sqlite3_stmt *st = stmt(s, S_PUTREC);
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, i64(seq));
	sqlite3_bind_int64(st, 3, i64(t0));
	sqlite3_bind_int64(st, 4, i64(t1));
	sqlite3_bind_text(st, 5, line, -1, SQLITE_STATIC);
	return run(s, st, "put record");
}

/* Step st, calling fn with (integer column 0, text column 1) per row. */
static int
walk(struct state *s, sqlite3_stmt *st, int (*fn)(void *, uint64_t, const char *), void *arg,
     const char *what)
{
	int rc, n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		       (const char *)sqlite3_column_text(st, 1)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return dberr(s, what);
	return n;
}

static int
sq_get_records(struct state *s, const char *principal, uint64_t after, uint64_t upto, uint64_t from,
	       uint64_t to, state_rec_fn *fn, void *arg)
{
	sqlite3_stmt *st = stmt(s, S_GETRECS);
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, i64(after));
	sqlite3_bind_int64(st, 3, upto ? i64(upto) : INT64_MAX);
	sqlite3_bind_int64(st, 4, i64(from));
	sqlite3_bind_int64(st, 5, to ? i64(to) : INT64_MAX);
	return walk(s, st, fn, arg, "get records") < 0 ? -1 : 0;
}

static int
sq_get_last_record(struct state *s, const char *principal, state_rec_fn *fn, void *arg)
{
	sqlite3_stmt *st = stmt(s, S_LASTREC);
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	int n = walk(s, st, fn, arg, "last record");
	return n < 0 ? -1 : n > 0;
}

static int
sq_put_sig(struct state *s, const char *principal, uint64_t seq, const char *sighex)
{
	sqlite3_stmt *st = stmt(s, S_PUTSIG);
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, i64(seq));
	sqlite3_bind_text(st, 3, sighex, -1, SQLITE_STATIC);
	return run(s, st, "put signature");
}

static int
sq_get_sigs(struct state *s, const char *principal, uint64_t after, uint64_t upto, state_sig_fn *fn,
	    void *arg)
{
	sqlite3_stmt *st = stmt(s, S_GETSIGS);
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, i64(after));
	sqlite3_bind_int64(st, 3, upto ? i64(upto) : INT64_MAX);
	return walk(s, st, fn, arg, "get signatures") < 0 ? -1 : 0;
}

static int
sq_put_total(struct state *s, const char *principal, const char *usage)
{
	sqlite3_stmt *st = stmt(s, S_PUTTOTAL);
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, usage, -1, SQLITE_STATIC);
	return run(s, st, "put total");
}

static int
sq_get_totals(struct state *s, state_total_fn *fn, void *arg)
{
	sqlite3_stmt *st = stmt(s, S_GETTOTALS);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(arg, (const char *)sqlite3_column_text(st, 0),
		       (const char *)sqlite3_column_text(st, 1)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : dberr(s, "get totals");
}

static int
sq_put_meter_node(struct state *s, const struct state_meter_node *mn)
{
	sqlite3_stmt *st = stmt(s, S_PUTMNODE);
	char net[KH_MAX_IFS * 112];
	state_ports_encode(mn, net, sizeof(net));
	sqlite3_bind_int(st, 1, mn->rank);
	sqlite3_bind_text(st, 2, mn->principal, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, i64(mn->since_ms));
	sqlite3_bind_int64(st, 4, i64(mn->cpu_ns));
	sqlite3_bind_int64(st, 5, i64(mn->mem));
	sqlite3_bind_int64(st, 6, i64(mn->peak));
	sqlite3_bind_text(st, 7, net, -1, SQLITE_STATIC);
	return run(s, st, "put meter node");
}

static int
sq_del_meter_node(struct state *s, int rank)
{
	sqlite3_stmt *st = stmt(s, S_DELMNODE);
	sqlite3_bind_int(st, 1, rank);
	return run(s, st, "delete meter node");
}

static int
sq_get_meter_nodes(struct state *s, state_mnode_fn *fn, void *arg)
{
	sqlite3_stmt *st = stmt(s, S_GETMNODES);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct state_meter_node mn = {.rank = sqlite3_column_int(st, 0)};
		snprintf(mn.principal, sizeof(mn.principal), "%s", sqlite3_column_text(st, 1));
		mn.since_ms = (uint64_t)sqlite3_column_int64(st, 2);
		mn.cpu_ns = (uint64_t)sqlite3_column_int64(st, 3);
		mn.mem = (uint64_t)sqlite3_column_int64(st, 4);
		mn.peak = (uint64_t)sqlite3_column_int64(st, 5);
		if (state_ports_decode((const char *)sqlite3_column_text(st, 6), &mn) < 0)
			log_warnx("state: damaged interface baselines of node %d: \"%s\"", mn.rank,
				  sqlite3_column_text(st, 6));
		if (fn(arg, &mn) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : dberr(s, "get meter nodes");
}

static int
principal_index(struct facility *f, const unsigned char *name)
{
	int idx = -1;
	if (name != NULL)
		fac_principal(f, (const char *)name, &idx);
	return idx;
}

/* Load everything into f.  Types come first: nodes and channels refer to
 * them by name.  Rows that refer to something unknown mean a damaged
 * database; khd refuses to start rather than guess. */
static int
sq_load(struct state *s, struct facility *f)
{
	sqlite3 *db = DB(s);
	sqlite3_stmt *st;
	int rc;

#define QUERY(sql)                                                                                 \
	do {                                                                                       \
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)                       \
			return dberr(s, "load");                                                   \
	} while (0)

	QUERY("SELECT name,backend,cpu_milli,mem,pids,max_ifs,count FROM types ORDER BY rowid");
	f->ntypes = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && f->ntypes < KH_MAX_TYPES) {
		struct node_type *t = &f->types[f->ntypes++];
		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "%s", sqlite3_column_text(st, 0));
		snprintf(t->backend, sizeof(t->backend), "%s", sqlite3_column_text(st, 1));
		t->cpu_milli = sqlite3_column_int(st, 2);
		t->mem = (uint64_t)sqlite3_column_int64(st, 3);
		t->pids = sqlite3_column_int(st, 4);
		t->max_ifs = sqlite3_column_int(st, 5);
		t->count = sqlite3_column_int(st, 6);
	}
	sqlite3_finalize(st);

	QUERY("SELECT name,pwhash,created FROM principals ORDER BY rowid");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f->principals = fac_grow(f->principals, &f->capprincipals, f->nprincipals + 1,
					 sizeof(*f->principals));
		struct principal *p = &f->principals[f->nprincipals++];
		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "%s", sqlite3_column_text(st, 0));
		snprintf(p->pwhash, sizeof(p->pwhash), "%s", sqlite3_column_text(st, 1));
		p->created = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);

	QUERY("SELECT netid,kind,owner,created FROM domains ORDER BY netid");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f->domains =
		    fac_grow(f->domains, &f->capdomains, f->ndomains + 1, sizeof(*f->domains));
		struct domain *d = &f->domains[f->ndomains++];
		memset(d, 0, sizeof(*d));
		d->netid = sqlite3_column_int(st, 0);
		d->kind = sqlite3_column_int(st, 1);
		d->owner = principal_index(f, sqlite3_column_text(st, 2));
		d->created = sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);

	QUERY("SELECT id,owner,type,created,credhash,nets FROM channels ORDER BY id");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f->channels =
		    fac_grow(f->channels, &f->capchannels, f->nchannels + 1, sizeof(*f->channels));
		struct channel *c = &f->channels[f->nchannels++];
		memset(c, 0, sizeof(*c));
		c->id = sqlite3_column_int(st, 0);
		c->owner = principal_index(f, sqlite3_column_text(st, 1));
		c->type = fac_type(f, (const char *)sqlite3_column_text(st, 2));
		c->created = sqlite3_column_int64(st, 3);
		snprintf(c->credhash, sizeof(c->credhash), "%s", sqlite3_column_text(st, 4));
		c->nnets =
		    state_text_ints((const char *)sqlite3_column_text(st, 5), c->nets, KH_MAX_IFS);
		if (c->owner < 0 || c->type < 0) {
			sqlite3_finalize(st);
			log_warnx("state: channel %d refers to an unknown owner or type", c->id);
			return -1;
		}
	}
	sqlite3_finalize(st);

	QUERY("SELECT count(*) FROM nodes");
	sqlite3_step(st);
	int nrows = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	f->nodes = calloc((size_t)nrows + 1, sizeof(*f->nodes));
	if (f->nodes == NULL)
		fatal("load");
	f->nnodes = 0;
	QUERY("SELECT rank,type,state,owner,chan,ifs,resets FROM nodes ORDER BY rank");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && f->nnodes < nrows) {
		struct node *n = &f->nodes[f->nnodes++];
		n->rank = sqlite3_column_int(st, 0);
		n->type = fac_type(f, (const char *)sqlite3_column_text(st, 1));
		n->state = sqlite3_column_int(st, 2);
		n->owner = principal_index(f, sqlite3_column_text(st, 3));
		n->chan = sqlite3_column_int(st, 4);
		n->nifs =
		    state_text_ints((const char *)sqlite3_column_text(st, 5), n->ifs, KH_MAX_IFS);
		n->resets = (uint64_t)sqlite3_column_int64(st, 6);
		if (n->type < 0 || n->rank != f->nnodes - 1 ||
		    (n->state != NODE_FREE && (n->owner < 0 || fac_channel(f, n->chan) == NULL))) {
			sqlite3_finalize(st);
			log_warnx("state: node row %d is inconsistent", n->rank);
			return -1;
		}
	}
	sqlite3_finalize(st);

	QUERY("SELECT owner,line FROM keys ORDER BY rowid");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f->keys = fac_grow(f->keys, &f->capkeys, f->nkeys + 1, sizeof(*f->keys));
		struct sshkey *k = &f->keys[f->nkeys++];
		k->owner = principal_index(f, sqlite3_column_text(st, 0));
		k->chan = 0;
		k->line = strdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);

	QUERY("SELECT chan,line FROM chankeys ORDER BY rowid");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f->keys = fac_grow(f->keys, &f->capkeys, f->nkeys + 1, sizeof(*f->keys));
		struct sshkey *k = &f->keys[f->nkeys++];
		k->owner = -1;
		k->chan = sqlite3_column_int(st, 0);
		k->line = strdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
#undef QUERY
	return 0;
}

static void
sq_close(struct state *s)
{
	struct sqlite_state *ss = (struct sqlite_state *)s;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(ss->st[i]);
	sqlite3_close(ss->db);
	free(ss);
}

static const struct state_ops sqlite_ops = {
    .name = "sqlite",
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .load = sq_load,
    .get_meta = sq_get_meta,
    .put_meta = sq_put_meta,
    .put_type = sq_put_type,
    .put_node = sq_put_node,
    .del_node = sq_del_node,
    .put_principal = sq_put_principal,
    .put_domain = sq_put_domain,
    .put_channel = sq_put_channel,
    .del_channel = sq_del_channel,
    .put_key = sq_put_key,
    .del_chankeys = sq_del_chankeys,
    .put_record = sq_put_record,
    .get_records = sq_get_records,
    .get_last_record = sq_get_last_record,
    .put_sig = sq_put_sig,
    .get_sigs = sq_get_sigs,
    .put_total = sq_put_total,
    .get_totals = sq_get_totals,
    .put_meter_node = sq_put_meter_node,
    .del_meter_node = sq_del_meter_node,
    .get_meter_nodes = sq_get_meter_nodes,
    .close = sq_close,
};

struct state *
state_sqlite_open(const char *dir, int sync_full, char *err, size_t errlen)
{
	char path[4096], *msg = NULL;
	struct sqlite_state *ss = calloc(1, sizeof(*ss));

	if (ss == NULL)
		fatal("state");
	ss->base.ops = &sqlite_ops;
	snprintf(path, sizeof(path), "%s/state.db", dir);
	if (sqlite3_open_v2(path, &ss->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(ss->db));
		goto fail;
	}
	sqlite3_busy_timeout(ss->db, 5000);
	/* A large page cache: a sample tick touches one ledger page per
	 * active principal, and re-reading them from the file each second is
	 * most of its cost otherwise. */
	if (sqlite3_exec(
		ss->db,
		"PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536;", NULL,
		NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(ss->db,
			 sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL,
			 NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(ss->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : "error");
		sqlite3_free(msg);
		goto fail;
	}
	for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
		sqlite3_stmt *probe = NULL;
		int have =
		    sqlite3_prepare_v2(ss->db, added[i].probe, -1, &probe, NULL) == SQLITE_OK;
		sqlite3_finalize(probe);
		if (!have && sqlite3_exec(ss->db, added[i].add, NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", path, msg ? msg : "error");
			sqlite3_free(msg);
			goto fail;
		}
	}
	/* The schema's version: a state.db of a newer khd is not guessed at. */
	sqlite3_stmt *ver = NULL;
	int have = 0;
	if (sqlite3_prepare_v2(ss->db, "SELECT value FROM meta WHERE key='schema_version'", -1,
			       &ver, NULL) == SQLITE_OK &&
	    sqlite3_step(ver) == SQLITE_ROW)
		have = sqlite3_column_int(ver, 0);
	sqlite3_finalize(ver);
	if (have > STATE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: the schema is version %d, this khd knows up to %d", path,
			 have, STATE_SCHEMA_VERSION);
		goto fail;
	}
	if (have == 0) {
		char sql[96];
		snprintf(sql, sizeof(sql),
			 "INSERT OR REPLACE INTO meta(key,value) VALUES('schema_version','%d')",
			 STATE_SCHEMA_VERSION);
		if (sqlite3_exec(ss->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", path, msg ? msg : "error");
			sqlite3_free(msg);
			goto fail;
		}
	}
	for (int i = 0; i < S_COUNT; i++)
		if (sqlite3_prepare_v3(ss->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &ss->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(ss->db));
			goto fail;
		}
	return &ss->base;
fail:
	sq_close(&ss->base);
	return NULL;
}
