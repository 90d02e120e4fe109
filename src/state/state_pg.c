/* state_pg: the PostgreSQL state backend (docs/state.md), the same schema
 * and operations as state_sqlite.c over libpq, for a facility whose state
 * lives in a database server.  Statements are prepared once per
 * connection; every change is inside BEGIN/COMMIT and a commit returns
 * once the server has flushed it (synchronous_commit on), so kill -9 of
 * khd loses nothing acknowledged and an unfinished transaction is rolled
 * back by the server when the connection drops.
 *
 * Two front ends on one database must never give a node twice, although
 * each keeps its own picture of the facility in memory.  So the writes
 * are conditional on what the writer believes the rows hold: a node row is
 * updated only from the allocation the front end saw (a free node is
 * claimed only while it is free), a channel, domain or principal is
 * created only where none is or the same one is; and the schema refuses
 * the rest on its own: a node's (chan, owner) must be an existing channel
 * of that owner, and a trigger refuses moving a node from one allocation
 * to another without freeing it first.  A conflicting write fails, the
 * transaction rolls back, and the caller's change is all or nothing. */
#include "allocator/alloc.h"
#include "state/state.h"
#include "state/state_int.h"
#include "common/log.h"
#include "common/sbuf.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	P_GETMETA,
	P_PUTMETA,
	P_PUTTYPE,
	P_NEWNODE,
	P_PUTNODE,
	P_PUTNODES,
	P_DELNODE,
	P_PUTPRIN,
	P_PUTDOM,
	P_PUTCHAN,
	P_DELCHAN,
	P_PUTKEY,
	P_PUTCHANKEY,
	P_DELCHANKEYS,
	P_PUTREC,
	P_GETRECS,
	P_LASTREC,
	P_PUTSIG,
	P_GETSIGS,
	P_PUTTOTAL,
	P_GETTOTALS,
	P_PUTMNODE,
	P_DELMNODE,
	P_GETMNODES,
	P_COUNT
};

static const char *const sql_text[P_COUNT] = {
    [P_GETMETA] = "SELECT value FROM meta WHERE key=$1",
    [P_PUTMETA] = "INSERT INTO meta(key,value) VALUES($1,$2)"
		  " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
    [P_PUTTYPE] = "INSERT INTO types(name,backend,cpu_milli,mem,pids,max_ifs,count)"
		  " VALUES($1,$2,$3,$4,$5,$6,$7) ON CONFLICT(name) DO UPDATE SET"
		  " backend=excluded.backend, cpu_milli=excluded.cpu_milli, mem=excluded.mem,"
		  " pids=excluded.pids, max_ifs=excluded.max_ifs, count=excluded.count",
    /* A rank new to this front end: the primary key refuses a second. */
    [P_NEWNODE] = "INSERT INTO nodes(rank,type,state,owner,chan,ifs,resets)"
		  " VALUES($1,$2,$3,$4,$5,$6,$7)",
    /* A known rank changes only from the allocation the writer saw ($8:
     * its channel then, NULL when it was free). */
    [P_PUTNODE] = "UPDATE nodes SET type=$2, state=$3, owner=$4, chan=$5, ifs=$6, resets=$7"
		  " WHERE rank=$1 AND chan IS NOT DISTINCT FROM $8::integer",
    /* The same for many nodes at once, as arrays (struct nodebatch). */
    [P_PUTNODES] = "UPDATE nodes AS n SET type=v.type, state=v.state, owner=v.owner, chan=v.chan,"
		   " ifs=v.ifs, resets=v.resets FROM unnest($1::integer[], $2::text[],"
		   " $3::integer[], $4::text[], $5::integer[], $6::text[], $7::bigint[],"
		   " $8::integer[]) AS v(rank, type, state, owner, chan, ifs, resets, old)"
		   " WHERE n.rank=v.rank AND n.chan IS NOT DISTINCT FROM v.old",
    [P_DELNODE] = "DELETE FROM nodes WHERE rank=$1 AND chan IS NULL",
    [P_PUTPRIN] = "INSERT INTO principals(name,pwhash,created) VALUES($1,$2,$3)"
		  " ON CONFLICT(name) DO UPDATE SET created=principals.created"
		  " WHERE principals.pwhash=excluded.pwhash",
    [P_PUTDOM] = "INSERT INTO domains(netid,kind,owner,created) VALUES($1,$2,$3,$4)"
		 " ON CONFLICT(netid) DO UPDATE SET created=domains.created"
		 " WHERE domains.kind=excluded.kind"
		 " AND domains.owner IS NOT DISTINCT FROM excluded.owner",
    [P_PUTCHAN] = "INSERT INTO channels(id,owner,type,created,credhash,nets)"
		  " VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(id) DO UPDATE SET"
		  " type=excluded.type, credhash=excluded.credhash, nets=excluded.nets"
		  " WHERE channels.owner=excluded.owner AND channels.created=excluded.created",
    [P_DELCHAN] = "DELETE FROM channels WHERE id=$1",
    [P_PUTKEY] = "INSERT INTO keys(owner,line) VALUES($1,$2) ON CONFLICT DO NOTHING",
    [P_PUTCHANKEY] = "INSERT INTO chankeys(chan,line) VALUES($1,$2) ON CONFLICT DO NOTHING",
    [P_DELCHANKEYS] = "DELETE FROM chankeys WHERE chan=$1",
    [P_PUTREC] = "INSERT INTO ledger(principal,seq,t0,t1,line) VALUES($1,$2,$3,$4,$5)",
    [P_GETRECS] = "SELECT seq,line FROM ledger WHERE principal=$1 AND seq>$2 AND seq<=$3"
		  " AND t0>=$4 AND t0<$5 ORDER BY seq",
    [P_LASTREC] = "SELECT seq,line FROM ledger WHERE principal=$1 ORDER BY seq DESC LIMIT 1",
    [P_PUTSIG] = "INSERT INTO ledger_sigs(principal,seq,sig) VALUES($1,$2,$3)"
		 " ON CONFLICT(principal,seq) DO UPDATE SET sig=excluded.sig",
    [P_GETSIGS] = "SELECT seq,sig FROM ledger_sigs WHERE principal=$1 AND seq>$2 AND seq<=$3"
		  " ORDER BY seq",
    [P_PUTTOTAL] = "INSERT INTO usage_totals(principal,usage) VALUES($1,$2)"
		   " ON CONFLICT(principal) DO UPDATE SET usage=excluded.usage",
    [P_GETTOTALS] = "SELECT principal,usage FROM usage_totals ORDER BY principal",
    [P_PUTMNODE] = "INSERT INTO meter_nodes(rank,principal,since,cpu,mem,peak,net)"
		   " VALUES($1,$2,$3,$4,$5,$6,$7) ON CONFLICT(rank) DO UPDATE SET"
		   " principal=excluded.principal, since=excluded.since, cpu=excluded.cpu,"
		   " mem=excluded.mem, peak=excluded.peak, net=excluded.net",
    [P_DELMNODE] = "DELETE FROM meter_nodes WHERE rank=$1",
    [P_GETMNODES] = "SELECT rank,principal,since,cpu,mem,peak,net FROM meter_nodes"
		    " ORDER BY rank",
};

/* The tables of state_sqlite.c with PostgreSQL's types; "ord" keeps the
 * order rows were made in (SQLite's rowid), which types (their index is
 * the node's type) and principals are loaded in. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS types(name text PRIMARY KEY, backend text NOT NULL,"
    " cpu_milli integer NOT NULL, mem bigint NOT NULL, pids integer NOT NULL,"
    " max_ifs integer NOT NULL, count integer NOT NULL,"
    " ord bigint GENERATED ALWAYS AS IDENTITY);"
    "CREATE TABLE IF NOT EXISTS principals(name text PRIMARY KEY, pwhash text NOT NULL,"
    " created bigint NOT NULL, ord bigint GENERATED ALWAYS AS IDENTITY);"
    "CREATE TABLE IF NOT EXISTS domains(netid integer PRIMARY KEY, kind integer NOT NULL,"
    " owner text REFERENCES principals(name), created bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS channels(id integer PRIMARY KEY,"
    " owner text NOT NULL REFERENCES principals(name), type text NOT NULL REFERENCES types(name),"
    " created bigint NOT NULL, credhash text NOT NULL, nets text NOT NULL,"
    " UNIQUE(id, owner));"
    /* A node is free (no owner, no channel) or in exactly one channel of
     * its owner; checked at commit, when a release has removed both. */
    "CREATE TABLE IF NOT EXISTS nodes(rank integer PRIMARY KEY,"
    " type text NOT NULL REFERENCES types(name), state integer NOT NULL,"
    " owner text REFERENCES principals(name), chan integer, ifs text NOT NULL,"
    " resets bigint NOT NULL,"
    " CONSTRAINT nodes_free CHECK ((owner IS NULL) = (chan IS NULL) AND"
    " (state = 0) = (chan IS NULL)),"
    " CONSTRAINT nodes_chan FOREIGN KEY(chan, owner) REFERENCES channels(id, owner)"
    " DEFERRABLE INITIALLY DEFERRED);"
    "CREATE OR REPLACE FUNCTION kh_node_claim() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF OLD.chan IS NOT NULL AND NEW.chan IS NOT NULL AND NEW.chan <> OLD.chan THEN"
    "   RAISE EXCEPTION 'node % is already given (channel con%)', OLD.rank, OLD.chan"
    "    USING ERRCODE = 'unique_violation';"
    "  END IF;"
    "  RETURN NEW;"
    " END $$;"
    "CREATE OR REPLACE TRIGGER nodes_claim BEFORE UPDATE ON nodes"
    " FOR EACH ROW EXECUTE FUNCTION kh_node_claim();"
    /* What the facility is made of changed: a NOTIFY on channel kh_state
     * with the table's name, delivered at commit only (never for a change
     * rolled back), for whoever keeps a copy (issue 17's agents) to learn
     * it without polling. */
    "CREATE OR REPLACE FUNCTION kh_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM pg_notify('kh_state', TG_TABLE_NAME); RETURN NULL; END $$;"
    "CREATE OR REPLACE TRIGGER nodes_notify AFTER INSERT OR UPDATE OR DELETE ON nodes"
    " FOR EACH STATEMENT EXECUTE FUNCTION kh_notify();"
    "CREATE OR REPLACE TRIGGER channels_notify AFTER INSERT OR UPDATE OR DELETE ON channels"
    " FOR EACH STATEMENT EXECUTE FUNCTION kh_notify();"
    "CREATE OR REPLACE TRIGGER domains_notify AFTER INSERT OR UPDATE OR DELETE ON domains"
    " FOR EACH STATEMENT EXECUTE FUNCTION kh_notify();"
    "CREATE OR REPLACE TRIGGER principals_notify AFTER INSERT OR UPDATE OR DELETE ON principals"
    " FOR EACH STATEMENT EXECUTE FUNCTION kh_notify();"
    "CREATE TABLE IF NOT EXISTS keys(owner text NOT NULL REFERENCES principals(name),"
    " line text NOT NULL, ord bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY(owner, line));"
    "CREATE TABLE IF NOT EXISTS chankeys(chan integer NOT NULL REFERENCES channels(id),"
    " line text NOT NULL, ord bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY(chan, line));"
    "CREATE TABLE IF NOT EXISTS ledger(principal text NOT NULL, seq bigint NOT NULL,"
    " t0 bigint NOT NULL, t1 bigint NOT NULL, line text NOT NULL,"
    " PRIMARY KEY(principal, seq));"
    "CREATE TABLE IF NOT EXISTS ledger_sigs(principal text NOT NULL, seq bigint NOT NULL,"
    " sig text NOT NULL, PRIMARY KEY(principal, seq));"
    "CREATE TABLE IF NOT EXISTS usage_totals(principal text PRIMARY KEY, usage text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meter_nodes(rank integer PRIMARY KEY, principal text NOT NULL,"
    " since bigint NOT NULL, cpu bigint NOT NULL, mem bigint NOT NULL,"
    " peak bigint NOT NULL, net text NOT NULL DEFAULT '');"
    "CREATE OR REPLACE TRIGGER keys_notify AFTER INSERT OR UPDATE OR DELETE ON keys"
    " FOR EACH STATEMENT EXECUTE FUNCTION kh_notify();"
    "CREATE OR REPLACE TRIGGER chankeys_notify AFTER INSERT OR UPDATE OR DELETE ON chankeys"
    " FOR EACH STATEMENT EXECUTE FUNCTION kh_notify();";

/* Two khd starting at once on an empty database make the schema one
 * after the other (CREATE ... IF NOT EXISTS alone races). */
#define SCHEMA_LOCK 0x6b68737461746531LL /* "khstate1" */

/* A transaction's writes are pipelined: sent without waiting for each
 * answer (libpq's pipeline mode), their answers checked before COMMIT is
 * sent, so an allocation of 1000 nodes costs a few round trips to the
 * server, not 1000.  At most PENDING_MAX are in flight, so neither side's
 * socket buffer fills while the other waits. */
#define PENDING_MAX 256

struct pending {
	const char *what;
	char why[96]; /* what it means when the row count is not expect */
	int expect;   /* 0: any row count will do */
};

/* A transaction's node updates (an allocation's, a release's) go as one
 * statement of arrays, not one each: the server's cost per statement is
 * most of what an allocation of many nodes costs it. */
#define BATCH_MAX 1024
enum { B_RANK, B_TYPE, B_STATE, B_OWNER, B_CHAN, B_IFS, B_RESETS, B_OLD, B_COLS };

struct nodebatch {
	int n, lo, hi;			/* rows, the lowest and highest rank */
	struct sbuf col[B_COLS];	/* array literals, without their braces */
	unsigned char in[KH_MAX_NODES]; /* a rank is in it (once per statement) */
};

struct pg_state {
	struct state base;
	PGconn *conn;
	int failed;	   /* a statement of the open transaction failed */
	int piped;	   /* in pipeline mode */
	uint64_t retry_ms; /* no new connection tried before (monotonic ms) */
	int npending;
	struct pending pend[PENDING_MAX];
	struct nodebatch batch;
};

#define CONN(s) (((struct pg_state *)(s))->conn)

/* libpq's messages end in a newline and may span lines: one line. */
static const char *
oneline(const char *msg, char *buf, size_t len)
{
	size_t n = 0;
	for (const char *p = msg ? msg : "error"; *p && n + 1 < len; p++) {
		char c = *p == '\n' || *p == '\t' || *p == '\r' ? ' ' : *p;
		if (c == ' ' && (n == 0 || buf[n - 1] == ' '))
			continue;
		buf[n++] = c;
	}
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
	return buf;
}

static int
dberr(struct state *s, const char *what, const PGresult *r)
{
	char line[512];
	oneline(r ? PQresultErrorMessage(r) : PQerrorMessage(CONN(s)), line, sizeof(line));
	log_warnx("state: %s: %s", what, line);
	((struct pg_state *)s)->failed = 1;
	return -1;
}

/* CREATE ... IF NOT EXISTS tells of what exists as a NOTICE: not news. */
static void
notice(void *arg, const char *msg)
{
	char line[512];
	(void)arg;
	log_debug("state: postgresql: %s", oneline(msg, line, sizeof(line)));
}

/* Statement parameters as text (libpq's default format). */
struct args {
	const char *v[8];
	char buf[8][24];
	int n;
};

static void
a_str(struct args *a, const char *s)
{
	a->v[a->n++] = s;
}

static void
a_int(struct args *a, long long x)
{
	snprintf(a->buf[a->n], sizeof(a->buf[a->n]), "%lld", x);
	a->v[a->n] = a->buf[a->n];
	a->n++;
}

/* PostgreSQL's bigint is signed: counters above 2^63 are clamped, as
 * SQLite's are (none of ours gets there). */
static long long
i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (long long)v;
}

static int session_setup(struct pg_state *ps, char *err, size_t errlen);

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Outside a transaction a dropped connection is made again (a server
 * restart costs the one request that found it gone); inside one, the
 * transaction is lost with it and the change fails.  While the server is
 * away, a new connection is tried at most once a second: khd waits for
 * each try (the meter's tick included), and the log gets a line a try. */
static int
alive(struct state *s)
{
	struct pg_state *ps = (struct pg_state *)s;
	char err[256];
	if (PQstatus(ps->conn) == CONNECTION_OK)
		return 0;
	if (s->in_tx || now_ms() < ps->retry_ms)
		return -1;
	PQreset(ps->conn);
	if (PQstatus(ps->conn) != CONNECTION_OK) {
		ps->retry_ms = now_ms() + 1000;
		log_warnx("state: cannot reach PostgreSQL: %s",
			  oneline(PQerrorMessage(ps->conn), err, sizeof(err)));
		return -1;
	}
	if (session_setup(ps, err, sizeof(err)) < 0) {
		log_warnx("state: %s", err);
		return -1;
	}
	log_info("state: connected to PostgreSQL again");
	return 0;
}

static void
stmt_name(int which, char *buf, size_t len)
{
	snprintf(buf, len, "kh%d", which);
}

/* The answers to what was sent since the last sync, each checked; report:
 * say what failed (not when rolling back anyway). */
static int
collect(struct state *s, int report)
{
	struct pg_state *ps = (struct pg_state *)s;
	int idx = 0, nulls = 0, bad = 0;

	if (!PQpipelineSync(ps->conn)) {
		if (report)
			dberr(s, "sync", NULL);
		ps->npending = 0;
		ps->failed = 1;
		return -1;
	}
	for (;;) {
		PGresult *r = PQgetResult(ps->conn);
		if (r == NULL) {
			/* One NULL ends each statement's answers; two in a
			 * row: the connection is gone. */
			if (++nulls > 1) {
				bad = 1;
				break;
			}
			idx++;
			continue;
		}
		nulls = 0;
		ExecStatusType st = PQresultStatus(r);
		const struct pending *p = idx < ps->npending ? &ps->pend[idx] : NULL;
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		if (st == PGRES_COMMAND_OK && p && p->expect && atoi(PQcmdTuples(r)) != p->expect) {
			if (report && !bad)
				log_warnx("state: %s: %s", p->what, p->why);
			bad = 1;
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (report && !bad && st != PGRES_PIPELINE_ABORTED)
				dberr(s, p ? p->what : "sync", r);
			bad = 1;
		}
		PQclear(r);
	}
	ps->npending = 0;
	if (bad)
		ps->failed = 1;
	return bad ? -1 : 0;
}

static int flush_nodes(struct state *s);

/* Out of pipeline mode, every answer collected: what a statement whose
 * answer is needed at once (a read, COMMIT) wants. */
static int
unpipe(struct state *s, int report)
{
	struct pg_state *ps = (struct pg_state *)s;
	if (ps->batch.n > 0 && flush_nodes(s) < 0 && !ps->piped)
		return -1;
	if (!ps->piped)
		return 0;
	int rc = collect(s, report);
	if (!PQexitPipelineMode(ps->conn)) {
		if (report)
			dberr(s, "pipeline", NULL);
		rc = -1;
	}
	ps->piped = 0;
	return rc;
}

/* Run prepared statement which and wait for it; its result, or NULL
 * after saying why. */
static PGresult *
run(struct state *s, int which, const struct args *a, const char *what)
{
	char name[16];
	if (!s->in_tx && alive(s) < 0)
		return NULL;
	if (unpipe(s, 1) < 0)
		return NULL;
	stmt_name(which, name, sizeof(name));
	PGresult *r = PQexecPrepared(CONN(s), name, a->n, a->v, NULL, NULL, 0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		dberr(s, what, r);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* A write.  why: it is conditional and must change exactly one row; when
 * it changes none, the row is not what this front end believed, and why
 * says what that means.  Inside a transaction it is only sent: its answer
 * is checked before the commit (the transaction then fails whole). */
static int
put(struct state *s, int which, const struct args *a, const char *what, const char *why, int expect)
{
	struct pg_state *ps = (struct pg_state *)s;
	char name[16];

	if (!s->in_tx) {
		PGresult *r = run(s, which, a, what);
		if (r == NULL)
			return -1;
		int n = atoi(PQcmdTuples(r));
		PQclear(r);
		if (expect && n != expect) {
			log_warnx("state: %s: %s", what, why);
			return -1;
		}
		return 0;
	}
	if (ps->failed)
		return -1;
	/* in the order they were made: the batch first */
	if (which != P_PUTNODES && ps->batch.n > 0 && flush_nodes(s) < 0)
		return -1;
	if (!ps->piped) {
		if (!PQenterPipelineMode(ps->conn))
			return dberr(s, what, NULL);
		ps->piped = 1;
	}
	if (ps->npending == PENDING_MAX && collect(s, 1) < 0)
		return -1;
	stmt_name(which, name, sizeof(name));
	if (!PQsendQueryPrepared(ps->conn, name, a->n, a->v, NULL, NULL, 0))
		return dberr(s, what, NULL);
	struct pending *p = &ps->pend[ps->npending++];
	p->what = what;
	p->expect = expect;
	snprintf(p->why, sizeof(p->why), "%s", why ? why : "");
	return 0;
}

static int
run_cmd(struct state *s, int which, const struct args *a, const char *what)
{
	return put(s, which, a, what, NULL, 0);
}

static int
run_one(struct state *s, int which, const struct args *a, const char *what, const char *why)
{
	return put(s, which, a, what, why, 1);
}

/* Append v to an array literal; NULL is SQL's NULL. */
static void
b_add(struct sbuf *b, const char *v, int quote)
{
	if (b->len > 0)
		sbuf_adds(b, ",");
	if (v == NULL) {
		sbuf_adds(b, "NULL");
		return;
	}
	if (quote)
		sbuf_adds(b, "\"");
	for (; *v; v++) {
		if (quote && (*v == '"' || *v == '\\'))
			sbuf_adds(b, "\\");
		sbuf_add(b, v, 1);
	}
	if (quote)
		sbuf_adds(b, "\"");
}

/* Send the batched node updates as one statement that must change each
 * of their rows. */
static int
flush_nodes(struct state *s)
{
	struct nodebatch *b = &((struct pg_state *)s)->batch;
	struct sbuf lit[B_COLS];
	struct args a = {0};
	char why[96];
	int n = b->n, rc;

	if (n == 0)
		return 0;
	for (int i = 0; i < B_COLS; i++) {
		sbuf_init(&lit[i]);
		sbuf_printf(&lit[i], "{%s}", b->col[i].s ? b->col[i].s : "");
		a_str(&a, lit[i].s);
		sbuf_reset(&b->col[i]);
	}
	snprintf(why, sizeof(why), "a node of ranks %d-%d was changed by another front end", b->lo,
		 b->hi);
	memset(b->in, 0, sizeof(b->in));
	b->n = 0;
	rc = put(s, P_PUTNODES, &a, "put nodes", why, n);
	for (int i = 0; i < B_COLS; i++)
		sbuf_free(&lit[i]);
	return rc;
}

/* An unprepared statement (the transaction's bounds, the schema, the
 * load). */
static int
simple(struct state *s, const char *sql, const char *what)
{
	PGresult *r = PQexec(CONN(s), sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		dberr(s, what, r);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

static int
pg_begin(struct state *s)
{
	struct pg_state *ps = (struct pg_state *)s;
	if (alive(s) < 0)
		return -1;
	/* A server restarted since the last change: the first BEGIN finds
	 * the connection gone; once more on a new one. */
	if (simple(s, "BEGIN", "begin") < 0 && (PQstatus(ps->conn) == CONNECTION_OK ||
						alive(s) < 0 || simple(s, "BEGIN", "begin") < 0))
		return -1;
	s->in_tx = 1;
	ps->failed = 0;
	ps->npending = 0;
	return 0;
}

static void
pg_rollback(struct state *s)
{
	struct nodebatch *b = &((struct pg_state *)s)->batch;
	for (int i = 0; i < B_COLS; i++)
		sbuf_reset(&b->col[i]);
	memset(b->in, 0, sizeof(b->in));
	b->n = 0;
	unpipe(s, 0);
	if (s->in_tx && PQstatus(CONN(s)) == CONNECTION_OK)
		simple(s, "ROLLBACK", "rollback");
	s->in_tx = 0;
	((struct pg_state *)s)->failed = 0;
}

/* Every write's answer first: COMMIT only when all did what they were
 * to.  COMMIT of a transaction the server has aborted answers ROLLBACK,
 * not an error: the command tag tells which. */
static int
pg_commit(struct state *s)
{
	struct pg_state *ps = (struct pg_state *)s;
	if (unpipe(s, 1) < 0 || ps->failed) {
		pg_rollback(s);
		return -1;
	}
	PGresult *r = PQexec(ps->conn, "COMMIT");
	int ok =
	    r && PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
	if (!ok) {
		if (r && PQresultStatus(r) == PGRES_COMMAND_OK)
			log_warnx("state: commit: the transaction was rolled back");
		else
			dberr(s, "commit", r);
	}
	PQclear(r);
	s->in_tx = 0;
	ps->failed = 0;
	if (!ok)
		pg_rollback(s);
	return ok ? 0 : -1;
}

static int
pg_get_meta(struct state *s, const char *key, char *val, size_t len)
{
	struct args a = {0};
	a_str(&a, key);
	PGresult *r = run(s, P_GETMETA, &a, "get meta");
	if (r == NULL)
		return -1;
	int have = PQntuples(r) > 0;
	if (have)
		snprintf(val, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return have;
}

static int
pg_put_meta(struct state *s, const char *key, const char *val)
{
	struct args a = {0};
	a_str(&a, key);
	a_str(&a, val);
	return run_cmd(s, P_PUTMETA, &a, "put meta");
}

static int
pg_put_type(struct state *s, const struct node_type *t)
{
	struct args a = {0};
	a_str(&a, t->name);
	a_str(&a, t->backend);
	a_int(&a, t->cpu_milli);
	a_int(&a, i64(t->mem));
	a_int(&a, t->pids);
	a_int(&a, t->max_ifs);
	a_int(&a, t->count);
	return run_cmd(s, P_PUTTYPE, &a, "put type");
}

static int
pg_put_node(struct state *s, const struct facility *f, const struct node *n)
{
	char ifs[KH_MAX_IFS * 12], why[96];
	/* The node as the facility held it before this change (the allocator
	 * writes the state first and memory after the commit); NULL for a
	 * rank the facility does not have yet. */
	const struct node *old = fac_node_const(f, n->rank);
	struct args a = {0};

	state_ints_text(ifs, sizeof(ifs), n->ifs, n->nifs);
	a_int(&a, n->rank);
	a_str(&a, f->types[n->type].name);
	a_int(&a, n->state);
	a_str(&a, n->owner >= 0 ? f->principals[n->owner].name : NULL);
	if (n->chan > 0)
		a_int(&a, n->chan);
	else
		a_str(&a, NULL);
	a_str(&a, ifs);
	a_int(&a, i64(n->resets));
	if (old == NULL)
		return run_cmd(s, P_NEWNODE, &a, "put node");
	if (old->chan > 0)
		a_int(&a, old->chan);
	else
		a_str(&a, NULL);
	if (!s->in_tx || n->rank < 0 || n->rank >= KH_MAX_NODES) {
		snprintf(why, sizeof(why), "node %d was changed by another front end", n->rank);
		return run_one(s, P_PUTNODE, &a, "put node", why);
	}
	struct nodebatch *b = &((struct pg_state *)s)->batch;
	if (((struct pg_state *)s)->failed || (b->in[n->rank] && flush_nodes(s) < 0))
		return -1;
	static const int quoted[B_COLS] = {[B_TYPE] = 1, [B_OWNER] = 1, [B_IFS] = 1};
	for (int i = 0; i < B_COLS; i++)
		b_add(&b->col[i], a.v[i], quoted[i]);
	b->lo = b->n == 0 || n->rank < b->lo ? n->rank : b->lo;
	b->hi = b->n == 0 || n->rank > b->hi ? n->rank : b->hi;
	b->in[n->rank] = 1;
	if (++b->n == BATCH_MAX)
		return flush_nodes(s);
	return 0;
}

static int
pg_del_node(struct state *s, int rank)
{
	char why[96];
	struct args a = {0};
	a_int(&a, rank);
	snprintf(why, sizeof(why), "node %d is not free", rank);
	return run_one(s, P_DELNODE, &a, "delete node", why);
}

static int
pg_put_principal(struct state *s, const struct principal *p)
{
	char why[96];
	struct args a = {0};
	a_str(&a, p->name);
	a_str(&a, p->pwhash);
	a_int(&a, p->created);
	snprintf(why, sizeof(why), "principal %s was made by another front end", p->name);
	return run_one(s, P_PUTPRIN, &a, "put principal", why);
}

static int
pg_put_domain(struct state *s, const struct facility *f, const struct domain *d)
{
	char why[96];
	struct args a = {0};
	a_int(&a, d->netid);
	a_int(&a, d->kind);
	a_str(&a, d->owner >= 0 ? f->principals[d->owner].name : NULL);
	a_int(&a, d->created);
	snprintf(why, sizeof(why), "domain %d belongs to another principal", d->netid);
	return run_one(s, P_PUTDOM, &a, "put domain", why);
}

static int
pg_put_channel(struct state *s, const struct facility *f, const struct channel *c)
{
	char nets[KH_MAX_IFS * 12], why[96];
	struct args a = {0};
	state_ints_text(nets, sizeof(nets), c->nets, c->nnets);
	a_int(&a, c->id);
	a_str(&a, f->principals[c->owner].name);
	a_str(&a, f->types[c->type].name);
	a_int(&a, c->created);
	a_str(&a, c->credhash);
	a_str(&a, nets);
	snprintf(why, sizeof(why), "channel con%d was made by another front end", c->id);
	return run_one(s, P_PUTCHAN, &a, "put channel", why);
}

static int
pg_del_chankeys(struct state *s, int chan)
{
	struct args a = {0};
	a_int(&a, chan);
	return run_cmd(s, P_DELCHANKEYS, &a, "delete channel keys");
}

static int
pg_del_channel(struct state *s, int id)
{
	struct args a = {0};
	if (pg_del_chankeys(s, id) < 0)
		return -1;
	a_int(&a, id);
	return run_cmd(s, P_DELCHAN, &a, "delete channel");
}

static int
pg_put_key(struct state *s, const struct facility *f, const struct sshkey *k)
{
	struct args a = {0};
	if (k->chan > 0)
		a_int(&a, k->chan);
	else
		a_str(&a, f->principals[k->owner].name);
	a_str(&a, k->line);
	return run_cmd(s, k->chan > 0 ? P_PUTCHANKEY : P_PUTKEY, &a, "put key");
}

static int
pg_put_record(struct state *s, const char *principal, uint64_t seq, uint64_t t0, uint64_t t1,
	      const char *line)
{
	struct args a = {0};
	a_str(&a, principal);
	a_int(&a, i64(seq));
	a_int(&a, i64(t0));
	a_int(&a, i64(t1));
	a_str(&a, line);
	return run_cmd(s, P_PUTREC, &a, "put record");
}

/* Rows of (integer, text) to fn, one at a time: a principal's ledger may
 * be long, and is not held in memory whole (libpq's single-row mode). */
static int
walk(struct state *s, int which, const struct args *a, int (*fn)(void *, uint64_t, const char *),
     void *arg, const char *what)
{
	PGconn *c = CONN(s);
	PGresult *r;
	char name[16];
	int n = 0, stop = 0, bad = 0;

	if ((!s->in_tx && alive(s) < 0) || unpipe(s, 1) < 0)
		return -1;
	stmt_name(which, name, sizeof(name));
	if (!PQsendQueryPrepared(c, name, a->n, a->v, NULL, NULL, 0))
		return dberr(s, what, NULL);
	PQsetSingleRowMode(c);
	while ((r = PQgetResult(c)) != NULL) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_SINGLE_TUPLE && !stop && !bad) {
			n++;
			stop =
			    fn(arg, strtoull(PQgetvalue(r, 0, 0), NULL, 10), PQgetvalue(r, 0, 1));
		} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !bad) {
			dberr(s, what, r);
			bad = 1;
		}
		PQclear(r);
	}
	return bad ? -1 : n;
}

static int
pg_get_records(struct state *s, const char *principal, uint64_t after, uint64_t upto, uint64_t from,
	       uint64_t to, state_rec_fn *fn, void *arg)
{
	struct args a = {0};
	a_str(&a, principal);
	a_int(&a, i64(after));
	a_int(&a, upto ? i64(upto) : INT64_MAX);
	a_int(&a, i64(from));
	a_int(&a, to ? i64(to) : INT64_MAX);
	return walk(s, P_GETRECS, &a, fn, arg, "get records") < 0 ? -1 : 0;
}

static int
pg_get_last_record(struct state *s, const char *principal, state_rec_fn *fn, void *arg)
{
	struct args a = {0};
	a_str(&a, principal);
	int n = walk(s, P_LASTREC, &a, fn, arg, "last record");
	return n < 0 ? -1 : n > 0;
}

static int
pg_put_sig(struct state *s, const char *principal, uint64_t seq, const char *sighex)
{
	struct args a = {0};
	a_str(&a, principal);
	a_int(&a, i64(seq));
	a_str(&a, sighex);
	return run_cmd(s, P_PUTSIG, &a, "put signature");
}

static int
pg_get_sigs(struct state *s, const char *principal, uint64_t after, uint64_t upto, state_sig_fn *fn,
	    void *arg)
{
	struct args a = {0};
	a_str(&a, principal);
	a_int(&a, i64(after));
	a_int(&a, upto ? i64(upto) : INT64_MAX);
	return walk(s, P_GETSIGS, &a, fn, arg, "get signatures") < 0 ? -1 : 0;
}

static int
pg_put_total(struct state *s, const char *principal, const char *usage)
{
	struct args a = {0};
	a_str(&a, principal);
	a_str(&a, usage);
	return run_cmd(s, P_PUTTOTAL, &a, "put total");
}

static int
pg_get_totals(struct state *s, state_total_fn *fn, void *arg)
{
	struct args a = {0};
	PGresult *r = run(s, P_GETTOTALS, &a, "get totals");
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++)
		if (fn(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)) != 0)
			break;
	PQclear(r);
	return 0;
}

static int
pg_put_meter_node(struct state *s, const struct state_meter_node *mn)
{
	char net[KH_MAX_IFS * 112];
	struct args a = {0};
	state_ports_encode(mn, net, sizeof(net));
	a_int(&a, mn->rank);
	a_str(&a, mn->principal);
	a_int(&a, i64(mn->since_ms));
	a_int(&a, i64(mn->cpu_ns));
	a_int(&a, i64(mn->mem));
	a_int(&a, i64(mn->peak));
	a_str(&a, net);
	return run_cmd(s, P_PUTMNODE, &a, "put meter node");
}

static int
pg_del_meter_node(struct state *s, int rank)
{
	struct args a = {0};
	a_int(&a, rank);
	return run_cmd(s, P_DELMNODE, &a, "delete meter node");
}

static uint64_t
u64(const PGresult *r, int row, int col)
{
	return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

static int
pg_get_meter_nodes(struct state *s, state_mnode_fn *fn, void *arg)
{
	struct args a = {0};
	PGresult *r = run(s, P_GETMNODES, &a, "get meter nodes");
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct state_meter_node mn = {.rank = atoi(PQgetvalue(r, i, 0))};
		snprintf(mn.principal, sizeof(mn.principal), "%s", PQgetvalue(r, i, 1));
		mn.since_ms = u64(r, i, 2);
		mn.cpu_ns = u64(r, i, 3);
		mn.mem = u64(r, i, 4);
		mn.peak = u64(r, i, 5);
		if (state_ports_decode(PQgetvalue(r, i, 6), &mn) < 0)
			log_warnx("state: damaged interface baselines of node %d: \"%s\"", mn.rank,
				  PQgetvalue(r, i, 6));
		if (fn(arg, &mn) != 0)
			break;
	}
	PQclear(r);
	return 0;
}

static int
principal_index(struct facility *f, const PGresult *r, int row, int col)
{
	int idx = -1;
	if (!PQgetisnull(r, row, col))
		fac_principal(f, PQgetvalue(r, row, col), &idx);
	return idx;
}

static PGresult *
query(struct state *s, const char *sql)
{
	PGresult *r = PQexec(CONN(s), sql);
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
		dberr(s, "load", r);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* Everything into f, from one snapshot of the database (another front
 * end may be writing).  Rows that refer to something unknown mean a
 * damaged database: khd refuses to start rather than guess. */
static int
load_rows(struct state *s, struct facility *f)
{
	PGresult *r;

	if ((r = query(s, "SELECT name,backend,cpu_milli,mem,pids,max_ifs,count FROM types"
			  " ORDER BY ord")) == NULL)
		return -1;
	f->ntypes = 0;
	for (int i = 0; i < PQntuples(r) && f->ntypes < KH_MAX_TYPES; i++) {
		struct node_type *t = &f->types[f->ntypes++];
		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(r, i, 0));
		snprintf(t->backend, sizeof(t->backend), "%s", PQgetvalue(r, i, 1));
		t->cpu_milli = atoi(PQgetvalue(r, i, 2));
		t->mem = u64(r, i, 3);
		t->pids = atoi(PQgetvalue(r, i, 4));
		t->max_ifs = atoi(PQgetvalue(r, i, 5));
		t->count = atoi(PQgetvalue(r, i, 6));
	}
	PQclear(r);

	if ((r = query(s, "SELECT name,pwhash,created FROM principals ORDER BY ord")) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		f->principals = fac_grow(f->principals, &f->capprincipals, f->nprincipals + 1,
					 sizeof(*f->principals));
		struct principal *p = &f->principals[f->nprincipals++];
		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "%s", PQgetvalue(r, i, 0));
		snprintf(p->pwhash, sizeof(p->pwhash), "%s", PQgetvalue(r, i, 1));
		p->created = strtoll(PQgetvalue(r, i, 2), NULL, 10);
	}
	PQclear(r);

	if ((r = query(s, "SELECT netid,kind,owner,created FROM domains ORDER BY netid")) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		f->domains =
		    fac_grow(f->domains, &f->capdomains, f->ndomains + 1, sizeof(*f->domains));
		struct domain *d = &f->domains[f->ndomains++];
		memset(d, 0, sizeof(*d));
		d->netid = atoi(PQgetvalue(r, i, 0));
		d->kind = atoi(PQgetvalue(r, i, 1));
		d->owner = principal_index(f, r, i, 2);
		d->created = strtoll(PQgetvalue(r, i, 3), NULL, 10);
	}
	PQclear(r);

	if ((r = query(s, "SELECT id,owner,type,created,credhash,nets FROM channels"
			  " ORDER BY id")) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		f->channels =
		    fac_grow(f->channels, &f->capchannels, f->nchannels + 1, sizeof(*f->channels));
		struct channel *c = &f->channels[f->nchannels++];
		memset(c, 0, sizeof(*c));
		c->id = atoi(PQgetvalue(r, i, 0));
		c->owner = principal_index(f, r, i, 1);
		c->type = fac_type(f, PQgetvalue(r, i, 2));
		c->created = strtoll(PQgetvalue(r, i, 3), NULL, 10);
		snprintf(c->credhash, sizeof(c->credhash), "%s", PQgetvalue(r, i, 4));
		c->nnets = state_text_ints(PQgetvalue(r, i, 5), c->nets, KH_MAX_IFS);
		if (c->owner < 0 || c->type < 0) {
			PQclear(r);
			log_warnx("state: channel %d refers to an unknown owner or type", c->id);
			return -1;
		}
	}
	PQclear(r);

	if ((r = query(s, "SELECT rank,type,state,owner,chan,ifs,resets FROM nodes"
			  " ORDER BY rank")) == NULL)
		return -1;
	int nrows = PQntuples(r);
	f->nodes = calloc((size_t)nrows + 1, sizeof(*f->nodes));
	if (f->nodes == NULL)
		fatal("load");
	f->nnodes = 0;
	for (int i = 0; i < nrows; i++) {
		struct node *n = &f->nodes[f->nnodes++];
		n->rank = atoi(PQgetvalue(r, i, 0));
		n->type = fac_type(f, PQgetvalue(r, i, 1));
		n->state = atoi(PQgetvalue(r, i, 2));
		n->owner = principal_index(f, r, i, 3);
		n->chan = PQgetisnull(r, i, 4) ? 0 : atoi(PQgetvalue(r, i, 4));
		n->nifs = state_text_ints(PQgetvalue(r, i, 5), n->ifs, KH_MAX_IFS);
		n->resets = u64(r, i, 6);
		if (n->type < 0 || n->rank != f->nnodes - 1 ||
		    (n->state != NODE_FREE && (n->owner < 0 || fac_channel(f, n->chan) == NULL))) {
			PQclear(r);
			log_warnx("state: node row %d is inconsistent", n->rank);
			return -1;
		}
	}
	PQclear(r);

	if ((r = query(s, "SELECT owner,line FROM keys ORDER BY ord")) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		f->keys = fac_grow(f->keys, &f->capkeys, f->nkeys + 1, sizeof(*f->keys));
		struct sshkey *k = &f->keys[f->nkeys++];
		k->owner = principal_index(f, r, i, 0);
		k->chan = 0;
		if ((k->line = strdup(PQgetvalue(r, i, 1))) == NULL)
			fatal("load");
	}
	PQclear(r);

	if ((r = query(s, "SELECT chan,line FROM chankeys ORDER BY ord")) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		f->keys = fac_grow(f->keys, &f->capkeys, f->nkeys + 1, sizeof(*f->keys));
		struct sshkey *k = &f->keys[f->nkeys++];
		k->owner = -1;
		k->chan = atoi(PQgetvalue(r, i, 0));
		if ((k->line = strdup(PQgetvalue(r, i, 1))) == NULL)
			fatal("load");
	}
	PQclear(r);
	return 0;
}

static int
pg_load(struct state *s, struct facility *f)
{
	if (alive(s) < 0 ||
	    simple(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "load") < 0)
		return -1;
	int rc = load_rows(s, f);
	simple(s, rc == 0 ? "COMMIT" : "ROLLBACK", "load");
	return rc;
}

static void
pg_close(struct state *s)
{
	for (int i = 0; i < B_COLS; i++)
		sbuf_free(&((struct pg_state *)s)->batch.col[i]);
	PQfinish(CONN(s));
	free(s);
}

static const struct state_ops pg_ops = {
    .name = "postgresql",
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .load = pg_load,
    .get_meta = pg_get_meta,
    .put_meta = pg_put_meta,
    .put_type = pg_put_type,
    .put_node = pg_put_node,
    .del_node = pg_del_node,
    .put_principal = pg_put_principal,
    .put_domain = pg_put_domain,
    .put_channel = pg_put_channel,
    .del_channel = pg_del_channel,
    .put_key = pg_put_key,
    .del_chankeys = pg_del_chankeys,
    .put_record = pg_put_record,
    .get_records = pg_get_records,
    .get_last_record = pg_get_last_record,
    .put_sig = pg_put_sig,
    .get_sigs = pg_get_sigs,
    .put_total = pg_put_total,
    .get_totals = pg_get_totals,
    .put_meter_node = pg_put_meter_node,
    .del_meter_node = pg_del_meter_node,
    .get_meter_nodes = pg_get_meter_nodes,
    .close = pg_close,
};

/* What every connection needs: commits that wait for the server's disk
 * whatever the server's default, NOTICEs kept quiet. */
static int
session_set(struct pg_state *ps, char *err, size_t errlen)
{
	char line[256];
	PGresult *r = PQexec(ps->conn, "SET synchronous_commit TO on;"
				       " SET client_min_messages TO warning");
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(err, errlen, "PostgreSQL: %s",
			 oneline(r ? PQresultErrorMessage(r) : PQerrorMessage(ps->conn), line,
				 sizeof(line)));
	PQclear(r);
	return ok ? 0 : -1;
}

/* The prepared statements (the schema must be there). */
static int
prepare_all(struct pg_state *ps, char *err, size_t errlen)
{
	char name[16], line[256];
	for (int i = 0; i < P_COUNT; i++) {
		stmt_name(i, name, sizeof(name));
		PGresult *r = PQprepare(ps->conn, name, sql_text[i], 0, NULL);
		int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			snprintf(err, errlen, "PostgreSQL: preparing statement %d: %s", i,
				 oneline(r ? PQresultErrorMessage(r) : PQerrorMessage(ps->conn),
					 line, sizeof(line)));
		PQclear(r);
		if (!ok)
			return -1;
	}
	return 0;
}

static int
session_setup(struct pg_state *ps, char *err, size_t errlen)
{
	return session_set(ps, err, errlen) < 0 ? -1 : prepare_all(ps, err, errlen);
}

/* The schema, once: under a lock two front ends starting together take
 * in turn; the version it is at kept in meta. */
static int
make_schema(struct pg_state *ps, char *err, size_t errlen)
{
	char sql[160], line[256], have[32] = "";
	PGresult *r;
	int ok;

	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)", SCHEMA_LOCK);
	r = PQexec(ps->conn, sql);
	ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	if (ok) {
		r = PQexec(ps->conn, schema);
		ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			snprintf(err, errlen, "PostgreSQL: making the schema: %s",
				 oneline(PQresultErrorMessage(r), line, sizeof(line)));
		PQclear(r);
	} else {
		snprintf(err, errlen, "PostgreSQL: %s",
			 oneline(PQerrorMessage(ps->conn), line, sizeof(line)));
	}
	if (ok) {
		r = PQexec(ps->conn, "SELECT value FROM meta WHERE key='schema_version'");
		ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
		if (ok && PQntuples(r) > 0)
			snprintf(have, sizeof(have), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	if (ok && have[0] && atoi(have) > STATE_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "PostgreSQL: the schema is version %s, this khd knows up to %d", have,
			 STATE_SCHEMA_VERSION);
		ok = 0;
	} else if (ok && have[0] == '\0') {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO meta(key,value) VALUES('schema_version','%d')",
			 STATE_SCHEMA_VERSION);
		r = PQexec(ps->conn, sql);
		ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	r = PQexec(ps->conn, ok ? "COMMIT" : "ROLLBACK");
	if (ok && (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK)) {
		snprintf(err, errlen, "PostgreSQL: making the schema: %s",
			 oneline(PQerrorMessage(ps->conn), line, sizeof(line)));
		ok = 0;
	}
	PQclear(r);
	return ok ? 0 : -1;
}

struct state *
state_pg_open(const char *conninfo, char *err, size_t errlen)
{
	/* Ours first: what conninfo says overrides them. */
	const char *keys[] = {"application_name", "connect_timeout", "dbname", NULL};
	const char *vals[] = {"khd", "10", conninfo, NULL};
	struct pg_state *ps = calloc(1, sizeof(*ps));
	char line[400];

	if (ps == NULL)
		fatal("state");
	ps->base.ops = &pg_ops;
	ps->conn = PQconnectdbParams(keys, vals, 1);
	if (ps->conn == NULL)
		fatal("state");
	PQsetNoticeProcessor(ps->conn, notice, NULL);
	if (PQstatus(ps->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot reach PostgreSQL: %s",
			 oneline(PQerrorMessage(ps->conn), line, sizeof(line)));
		goto fail;
	}
	if (session_set(ps, err, errlen) < 0 || make_schema(ps, err, errlen) < 0 ||
	    prepare_all(ps, err, errlen) < 0)
		goto fail;
	return &ps->base;
fail:
	pg_close(&ps->base);
	return NULL;
}
