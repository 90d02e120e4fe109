/* meter: the sampler.  Each metered node keeps the counters already
 * charged (its baseline); a reading adds the difference to what is pending,
 * a charge moves what is pending into the principal's usage.  Records,
 * totals and baselines of one tick are written in one transaction, and the
 * in-memory chain heads move only after it committed: a crash loses
 * nothing committed and never charges anything twice.
 *
 * Counters that die with something (a cgroup reaped, an interface deleted)
 * are read just before, into the pending usage, so nothing is lost between
 * the last tick and the end. */
#include "khd/meter.h"
#include "allocator/alloc.h"
#include "common/log.h"
#include "common/util.h"
#include "fabric/fabric.h"
#include "khd/hosts.h"
#include "khd/khd.h"
#include "khd/machine.h"
#include "meter/ledger.h"
#include "nodes/cgroup.h"
#include "rdma/rdma.h"
#include "state/state.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { C_RXB, C_TXB, C_RXP, C_TXP, C_N };

struct mport {
	uint32_t netid; /* 0: no interface here at the last reading */
	uint64_t c[C_N];
};

/* RDMA usage taken from the engine, by domain, waiting for a charge. */
struct mrdma {
	uint32_t netid;
	uint64_t ops, rd, wr;
};
#define MRDMA (2 * KH_MAX_IFS)

/* A metered node.  Plain data: a release charges a copy. */
struct mnode {
	int owner, type;
	uint64_t t_ms;	   /* charged up to (unix ms) */
	int cg;		   /* its cgroup existed at the last reading */
	uint64_t cpu;	   /* that cgroup's CPU counter, read (ns) */
	uint64_t peak;	   /* that cgroup's peak counter, read */
	uint64_t mem;	   /* memory at the last reading */
	uint64_t t_mem;	   /* time of that reading (ms) */
	uint64_t ipeak;	   /* highest memory seen since the last charge */
	uint64_t cpu_pend; /* ns read, not charged */
	uint64_t mem_pend; /* B*ms read, not charged */
	uint64_t cpu_rem;  /* ns below a whole us, carried to the next charge */
	uint64_t mem_rem;  /* B*ms below a whole KiB*s, carried */
	uint64_t con_in, con_out;
	struct mport port[KH_MAX_IFS];
	struct mport gone[KH_MAX_IFS]; /* removed interfaces' last counts, not charged */
	int ngone;
	struct mrdma rdma[MRDMA]; /* what its RDMA device moved, taken, not charged */
	int nrdma;
	struct state_meter_node stored; /* the row as last committed */
	int stored_ok;
};

struct mprin {
	int loaded;
	uint64_t seq;
	uint8_t head[LEDGER_HASH_LEN];
	uint64_t signed_seq, signed_ms;
	struct usage total;
	struct usage unsaved; /* charged, but its transaction failed: goes into the next record */
	uint64_t unsaved_t0;
};

/* What a release wrote into its transaction, applied once it commits. */
struct staged {
	int pidx;
	uint64_t seq;
	uint8_t head[LEDGER_HASH_LEN];
	struct usage total;
};

struct meter {
	struct khd *k;
	struct ledger_key key;
	struct mnode **node; /* by rank; NULL: not metered */
	struct mprin *prin;
	int nprin;
	uint64_t timer, last_tick_ms;
	int soon;
	struct staged *stage;
	int nstage, capstage;
	struct meter_stats stats;
	struct sbuf line; /* scratch */
	int closing;
	uint64_t start_ms; /* up to when meter_recover charged: metering goes on from there */
};

static uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct mprin *
prin(struct meter *mt, int pidx)
{
	if (pidx >= mt->nprin) {
		int n = mt->nprin ? mt->nprin : 16;
		while (n <= pidx)
			n *= 2;
		struct mprin *p = realloc(mt->prin, (size_t)n * sizeof(*p));
		if (p == NULL)
			fatal("meter");
		memset(p + mt->nprin, 0, (size_t)(n - mt->nprin) * sizeof(*p));
		mt->prin = p;
		mt->nprin = n;
	}
	return &mt->prin[pidx];
}

struct head_ctx {
	struct mprin *p;
	int bad;
};

static int
head_cb(void *arg, uint64_t seq, const char *line)
{
	struct head_ctx *c = arg;
	struct ledger_rec r;
	char why[256];

	ledger_rec_init(&r);
	if (ledger_rec_parse(line, &r, why, sizeof(why)) < 0 || r.seq != seq) {
		log_warnx("meter: damaged ledger record seq %" PRIu64 ": %s", seq, why);
		c->bad = 1;
	} else {
		c->p->seq = r.seq;
		memcpy(c->p->head, r.hash, LEDGER_HASH_LEN);
	}
	ledger_rec_free(&r);
	return 0;
}

/* The principal's chain head and totals, from the store, once. */
static struct mprin *
prin_loaded(struct meter *mt, int pidx)
{
	struct mprin *p = prin(mt, pidx);
	if (!p->loaded) {
		struct head_ctx c = {p, 0};
		usage_init(&p->total);
		usage_init(&p->unsaved);
		state_get_last_record(mt->k->fac.st, mt->k->fac.principals[pidx].name, head_cb, &c);
		p->signed_ms = wall_ms();
		p->loaded = 1;
	}
	return p;
}

static int
total_cb(void *arg, const char *principal, const char *text)
{
	struct meter *mt = arg;
	int idx;
	char why[256];

	if (fac_principal(&mt->k->fac, principal, &idx) == NULL)
		return 0;
	struct mprin *p = prin_loaded(mt, idx);
	if (usage_decode(text, &p->total, why, sizeof(why)) < 0)
		log_warnx("meter: totals of %s: %s", principal, why);
	return 0;
}

int
meter_init(struct khd *k, char *err, size_t errlen)
{
	struct meter *mt = calloc(1, sizeof(*mt));
	char why[256];

	if (mt == NULL || (mt->node = calloc(KH_MAX_NODES, sizeof(*mt->node))) == NULL)
		fatal("meter");
	mt->k = k;
	sbuf_init(&mt->line);
	if (ledger_key_load_or_create(k->dir, &mt->key, why, sizeof(why)) < 0) {
		seterr(err, errlen, "ledger key: %s", why);
		free(mt->node);
		free(mt);
		return -1;
	}
	k->meter = mt;
	for (int i = 0; i < k->fac.nprincipals; i++)
		prin_loaded(mt, i);
	state_get_totals(k->fac.st, total_cb, mt);
	return 0;
}

static void
free_stage(struct meter *mt)
{
	for (int i = 0; i < mt->nstage; i++)
		usage_free(&mt->stage[i].total);
	mt->nstage = 0;
}

static void
node_forget(struct meter *mt, int rank)
{
	free(mt->node[rank]);
	mt->node[rank] = NULL;
}

static void tick(struct ev *ev, void *arg);

/* Let the next tick come early (a node's cgroup ended: what it used lives
 * only in memory until then), but at most 5 times a second. */
static void
soon(struct meter *mt)
{
	if (mt->soon || mt->k->ev == NULL)
		return;
	uint64_t now = wall_ms(), at = mt->last_tick_ms + 200;
	if (mt->timer)
		ev_cancel(mt->k->ev, mt->timer);
	mt->timer = ev_after(mt->k->ev, at > now ? at - now : 0, tick, mt);
	mt->soon = 1;
}

static struct mnode *
node_new(struct meter *mt, const struct node *n, uint64_t since)
{
	struct mnode *m = calloc(1, sizeof(*m));
	if (m == NULL)
		fatal("meter");
	m->owner = n->owner;
	m->type = n->type;
	m->t_ms = m->t_mem = since;
	node_forget(mt, n->rank);
	mt->node[n->rank] = m;
	return m;
}

void
meter_node_allocated(struct khd *k, const struct node *n)
{
	struct meter *mt = k->meter;
	if (mt == NULL || n->rank < 0 || n->rank >= KH_MAX_NODES)
		return;
	/* Its baseline row is stored by the next tick: a crash before then
	 * loses that node's first second, which is cheaper than a tick per
	 * allocation. */
	node_new(mt, n, wall_ms());
	prin_loaded(mt, n->owner);
}

/* Read the node's cgroup into m: CPU and memory since the last reading. */
static void
read_cgroup(struct meter *mt, int rank, struct mnode *m, uint64_t now)
{
	struct khd *k = mt->k;
	struct machine *mc = machine_of(k, rank);
	struct node_stats st;
	uint64_t cur = 0;

	int remote = hosts_remote(k, rank) >= 0;
	if (mc && ((mc->h.cg[0] && k->host_ok) || (remote && mc->running))) {
		if (remote ? hosts_stats(k, rank, &st) == 0
			   : mc->be->stats(&k->host, &mc->h, &st) == 0) {
			if (!m->cg) { /* a new cgroup: its counters start from zero */
				m->cg = 1;
				m->cpu = m->peak = 0;
			}
			m->cpu_pend += st.cpu_ns >= m->cpu ? st.cpu_ns - m->cpu : st.cpu_ns;
			m->cpu = st.cpu_ns;
			if (st.mem_peak > m->peak && st.mem_peak > m->ipeak)
				m->ipeak = st.mem_peak; /* reached since the last reading */
			m->peak = st.mem_peak;
			cur = st.mem;
		} else {
			/* Unreadable for now: the baseline stays (only the node's
			 * end, meter_node_ended, says a cgroup is gone), and the
			 * next reading charges what this one missed. */
			cur = m->mem;
		}
	}
	if (cur > m->ipeak)
		m->ipeak = cur;
	/* Memory is integrated between readings by the trapezoid rule. */
	if (now > m->t_mem)
		m->mem_pend += (m->mem + cur) / 2 * (now - m->t_mem);
	m->t_mem = now;
	m->mem = cur;
}

static void
add_net(struct usage *u, uint32_t netid, const uint64_t *c)
{
	static const char *const cls[C_N] = {"net-rx", "net-tx", "net-rxpk", "net-txpk"};
	char res[USAGE_NAME_MAX];
	for (int i = 0; i < C_N; i++)
		if (c[i]) {
			snprintf(res, sizeof(res), "%s:%u", cls[i], netid);
			usage_add(u, res, c[i]);
		}
}

static void
add_nz(struct usage *u, const char *res, uint64_t q)
{
	if (q)
		usage_add(u, res, q);
}

/* Move everything m used up to now into u (the principal's usage). */
static void
charge(struct meter *mt, int rank, struct mnode *m, uint64_t now, struct usage *u)
{
	struct khd *k = mt->k;
	char res[USAGE_NAME_MAX];
	struct fabric_ifstats ifs[KH_MAX_IFS];
	int seen = 0;

	/* A node whose host is lost is not charged while it is (hosts.c
	 * charged it up to the loss). */
	if (hosts_lost(k, rank)) {
		m->t_ms = m->t_mem = now > m->t_ms ? now : m->t_ms;
		return;
	}
	read_cgroup(mt, rank, m, now);
	snprintf(res, sizeof(res), "node-time:%s", k->fac.types[m->type].name);
	usage_add(u, res, now > m->t_ms ? now - m->t_ms : 0);
	m->t_ms = now > m->t_ms ? now : m->t_ms;

	uint64_t ns = m->cpu_pend + m->cpu_rem;
	add_nz(u, "cpu", ns / 1000);
	m->cpu_rem = ns % 1000;
	m->cpu_pend = 0;
	uint64_t bms = m->mem_pend + m->mem_rem;
	add_nz(u, "mem", bms / (1024 * 1000));
	m->mem_rem = bms % (1024 * 1000);
	m->mem_pend = 0;
	add_nz(u, "mem-peak", m->ipeak);
	m->ipeak = m->mem;

	/* A failed reading changes nothing: the next one charges it all. */
	int nif = hosts_remote(k, rank) >= 0 ? hosts_counters(k, rank, ifs, KH_MAX_IFS)
		  : k->fab		     ? fabric_node_counters(k->fab, rank, ifs, KH_MAX_IFS)
					     : 0;
	if (nif < 0)
		seen = -1;
	for (int i = 0; i < nif; i++) {
		int s = ifs[i].slot;
		if (s < 0 || s >= KH_MAX_IFS)
			continue;
		uint64_t cur[C_N] = {ifs[i].rx_bytes, ifs[i].tx_bytes, ifs[i].rx_packets,
				     ifs[i].tx_packets};
		uint64_t d[C_N];
		struct mport *p = &m->port[s];
		/* Another interface at this place (its counters start from zero):
		 * the old one's end was charged when it was removed. */
		int fresh = p->netid != ifs[i].netid;
		for (int c = 0; c < C_N; c++)
			fresh |= cur[c] < p->c[c];
		for (int c = 0; c < C_N; c++)
			d[c] = fresh ? cur[c] : cur[c] - p->c[c];
		add_net(u, ifs[i].netid, d);
		p->netid = ifs[i].netid;
		memcpy(p->c, cur, sizeof(cur));
		seen |= 1 << s;
	}
	for (int s = 0; s < KH_MAX_IFS && seen >= 0; s++)
		if (!(seen & (1 << s)))
			m->port[s] = (struct mport){0}; /* gone: a new one counts from zero */
	for (int i = 0; i < m->ngone; i++)
		add_net(u, m->gone[i].netid, m->gone[i].c);
	m->ngone = 0;
	add_nz(u, "console-in", m->con_in);
	add_nz(u, "console-out", m->con_out);
	m->con_in = m->con_out = 0;
	for (int i = 0; i < m->nrdma; i++) {
		snprintf(res, sizeof(res), "rdma-ops:%u", m->rdma[i].netid);
		add_nz(u, res, m->rdma[i].ops);
		snprintf(res, sizeof(res), "rdma-rd:%u", m->rdma[i].netid);
		add_nz(u, res, m->rdma[i].rd);
		snprintf(res, sizeof(res), "rdma-wr:%u", m->rdma[i].netid);
		add_nz(u, res, m->rdma[i].wr);
	}
	m->nrdma = 0;
}

/* The engine's count for one node and domain, into the node's pending
 * usage.  Counts of a node no longer metered (moved after its release
 * committed) are dropped. */
static void
rdma_usage(void *arg, const struct re_usage *ru)
{
	struct meter *mt = arg;
	struct mnode *m = ru->rank < KH_MAX_NODES ? mt->node[ru->rank] : NULL;
	int i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nrdma && m->rdma[i].netid != ru->netid; i++)
		;
	if (i == m->nrdma) {
		if (m->nrdma == MRDMA) {
			/* Only a node that changed domains dozens of times within
			 * one tick gets here; its oldest domain takes the count. */
			log_warnx("meter: node %u: RDMA usage of too many domains at once",
				  ru->rank);
			i = 0;
		} else {
			m->rdma[m->nrdma++] = (struct mrdma){.netid = ru->netid};
		}
	}
	m->rdma[i].ops += ru->ops;
	m->rdma[i].rd += ru->rd;
	m->rdma[i].wr += ru->wr;
}

static void
rdma_collect(struct meter *mt)
{
	if (mt->k->rdma && rdma_take(mt->k->rdma, rdma_usage, mt) < 0)
		log_warnx("meter: no RDMA usage from the engine this time");
}

/* Seal u as principal pidx's next record after (seq, head) and write it;
 * the new head goes to *seq, head. */
static int
write_record(struct meter *mt, int pidx, uint64_t t0, uint64_t t1, const struct usage *u,
	     uint64_t *seq, uint8_t *head)
{
	const char *name = mt->k->fac.principals[pidx].name;
	struct ledger_rec r;
	char why[256];
	int rc = -1;

	ledger_rec_init(&r);
	snprintf(r.principal, sizeof(r.principal), "%s", name);
	r.t0 = t0;
	r.t1 = t1 > t0 ? t1 : t0;
	usage_copy(&r.use, u);
	sbuf_reset(&mt->line);
	if (ledger_rec_seal(&r, *seq, *seq ? head : NULL, why, sizeof(why)) < 0 ||
	    ledger_rec_format(&r, &mt->line, why, sizeof(why)) < 0)
		log_warnx("meter: record of %s: %s", name, why);
	else if (state_put_record(mt->k->fac.st, name, r.seq, r.t0, r.t1, mt->line.s) == 0) {
		*seq = r.seq;
		memcpy(head, r.hash, LEDGER_HASH_LEN);
		mt->stats.records++;
		rc = 0;
	}
	ledger_rec_free(&r);
	return rc;
}

static int
write_total(struct meter *mt, int pidx, const struct usage *total)
{
	sbuf_reset(&mt->line);
	usage_encode(total, &mt->line);
	return state_put_total(mt->k->fac.st, mt->k->fac.principals[pidx].name,
			       mt->line.s ? mt->line.s : "");
}

static int
write_sig(struct meter *mt, int pidx, uint64_t seq, const uint8_t *head)
{
	struct ledger_sig s;
	char why[256], hex[LEDGER_HEX_LEN];
	const char *name = mt->k->fac.principals[pidx].name;

	if (ledger_sign(&mt->key, name, seq, head, &s, why, sizeof(why)) < 0) {
		log_warnx("meter: sign %s: %s", name, why);
		return -1;
	}
	ledger_hex(s.sig, LEDGER_SIG_LEN, hex);
	return state_put_sig(mt->k->fac.st, name, seq, hex);
}

static void
port_of(struct state_meter_port *sp, uint32_t netid, const uint64_t *c)
{
	*sp = (struct state_meter_port){.netid = netid,
					.rx_bytes = c[C_RXB],
					.tx_bytes = c[C_TXB],
					.rx_packets = c[C_RXP],
					.tx_packets = c[C_TXP]};
}

static void
row_of(struct meter *mt, int rank, const struct mnode *m, struct state_meter_node *row)
{
	memset(row, 0, sizeof(*row));
	row->rank = rank;
	snprintf(row->principal, sizeof(row->principal), "%s",
		 mt->k->fac.principals[m->owner].name);
	row->since_ms = m->t_ms;
	row->cpu_ns = m->cg ? m->cpu : 0;
	row->mem = m->mem;
	row->peak = m->cg ? m->peak : 0;
	for (int s = 0; s < KH_MAX_IFS; s++)
		if (m->port[s].netid)
			port_of(&row->port[s], m->port[s].netid, m->port[s].c);
}

/* Rows are rewritten only when a counter moved: an idle node costs its
 * row nothing per tick, and "meter_t" says up to when every metered node
 * was charged. */
static int
row_changed(const struct state_meter_node *a, const struct state_meter_node *b)
{
	if (a->cpu_ns != b->cpu_ns || a->mem != b->mem || a->peak != b->peak ||
	    strcmp(a->principal, b->principal) != 0)
		return 1;
	for (int s = 0; s < KH_MAX_IFS; s++) {
		const struct state_meter_port *p = &a->port[s], *q = &b->port[s];
		if (p->netid != q->netid || p->rx_bytes != q->rx_bytes ||
		    p->tx_bytes != q->tx_bytes || p->rx_packets != q->rx_packets ||
		    p->tx_packets != q->tx_packets)
			return 1;
	}
	return 0;
}

/* Per principal, during a tick. */
struct pscratch {
	int has;
	uint64_t t0;
	struct usage u;
	uint64_t seq;
	uint8_t head[LEDGER_HASH_LEN];
	int sign;
};

/* Write the record, total and maybe signature of pr from ps (after its
 * usage is complete).  The new head goes into ps. */
static int
write_prin(struct meter *mt, int p, struct mprin *pr, struct pscratch *ps, uint64_t now)
{
	struct usage tot;
	int rc = 0;

	usage_init(&tot);
	usage_copy(&tot, &pr->total);
	usage_merge(&tot, &ps->u);
	ps->seq = pr->seq;
	memcpy(ps->head, pr->head, sizeof(ps->head));
	ps->sign = now - pr->signed_ms >= METER_SIGN_MS;
	if (write_record(mt, p, ps->t0, now, &ps->u, &ps->seq, ps->head) < 0 ||
	    write_total(mt, p, &tot) < 0 || (ps->sign && write_sig(mt, p, ps->seq, ps->head) < 0))
		rc = -1;
	usage_free(&tot);
	return rc;
}

/* After the transaction: committed, the head and totals move; failed, the
 * usage waits in "unsaved" for the next record (the baselines moved
 * already, so it is charged exactly once). */
static void
apply_prin(struct mprin *pr, struct pscratch *ps, int ok, uint64_t now)
{
	if (ok) {
		pr->seq = ps->seq;
		memcpy(pr->head, ps->head, sizeof(pr->head));
		usage_merge(&pr->total, &ps->u);
		usage_reset(&pr->unsaved);
		if (ps->sign) {
			pr->signed_seq = ps->seq;
			pr->signed_ms = now;
		}
	} else {
		usage_reset(&pr->unsaved);
		usage_merge(&pr->unsaved, &ps->u);
		pr->unsaved_t0 = ps->t0;
	}
}

/* One sample of every metered node, one record per principal, one
 * transaction. */
static void
tick(struct ev *ev, void *arg)
{
	struct meter *mt = arg;
	struct khd *k = mt->k;
	struct facility *f = &k->fac;
	uint64_t t_start = now_ns(), now = wall_ms();
	struct pscratch *ps;
	int nodes = 0, ok = 1;
	char v[32];

	(void)ev;
	mt->timer = 0;
	mt->soon = 0;
	free_stage(mt); /* a release that did not commit: its nodes were not charged */
	ps = calloc((size_t)f->nprincipals + 1, sizeof(*ps));
	if (ps == NULL)
		fatal("meter");
	rdma_collect(mt);
	for (int i = 0; i < f->nnodes; i++) {
		struct mnode *m = mt->node[f->nodes[i].rank];
		if (m == NULL)
			continue;
		struct pscratch *s = &ps[m->owner];
		if (!s->has || m->t_ms < s->t0)
			s->t0 = m->t_ms;
		s->has = 1;
		charge(mt, f->nodes[i].rank, m, now, &s->u);
		nodes++;
	}
	mt->stats.read_ns_sum += now_ns() - t_start;
	for (int p = 0; p < f->nprincipals; p++) {
		struct mprin *pr = prin_loaded(mt, p);
		if (pr->unsaved.n == 0)
			continue;
		usage_merge(&ps[p].u, &pr->unsaved);
		if (!ps[p].has || pr->unsaved_t0 < ps[p].t0)
			ps[p].t0 = pr->unsaved_t0;
		ps[p].has = 1;
	}
	if (state_begin(f->st) < 0)
		ok = 0;
	for (int p = 0; p < f->nprincipals && ok; p++)
		if (ps[p].has && write_prin(mt, p, prin_loaded(mt, p), &ps[p], now) < 0)
			ok = 0;
	for (int i = 0; i < f->nnodes && ok; i++) {
		struct mnode *m = mt->node[f->nodes[i].rank];
		struct state_meter_node row;
		if (m == NULL)
			continue;
		row_of(mt, f->nodes[i].rank, m, &row);
		if ((!m->stored_ok || row_changed(&row, &m->stored)) &&
		    state_put_meter_node(f->st, &row) < 0)
			ok = 0;
	}
	snprintf(v, sizeof(v), "%" PRIu64, now);
	if (ok && (state_put_meta(f->st, "meter_t", v) < 0 || state_commit(f->st) < 0))
		ok = 0;
	if (!ok)
		state_rollback(f->st);
	for (int p = 0; p < f->nprincipals; p++) {
		if (ps[p].has)
			apply_prin(prin_loaded(mt, p), &ps[p], ok, now);
		usage_free(&ps[p].u);
	}
	for (int i = 0; i < f->nnodes; i++) {
		struct mnode *m = mt->node[f->nodes[i].rank];
		if (m == NULL)
			continue;
		if (ok)
			row_of(mt, f->nodes[i].rank, m, &m->stored);
		m->stored_ok = ok;
	}
	if (!ok) {
		mt->stats.store_errors++;
		log_warnx("meter: the tick's transaction failed; its usage goes into the next");
	}
	free(ps);
	mt->last_tick_ms = now;
	uint64_t d = now_ns() - t_start;
	mt->stats.ticks++;
	mt->stats.tick_ns_sum += d;
	mt->stats.tick_ns_last = d;
	if (d > mt->stats.tick_ns_max)
		mt->stats.tick_ns_max = d;
	mt->stats.nodes_last = (uint64_t)nodes;
	if (k->ev && !mt->closing)
		mt->timer = ev_after(k->ev, METER_TICK_MS, tick, mt);
}

/* A release: the nodes' last sample goes into the release's transaction,
 * one record per principal.  Memory changes only once it committed
 * (meter_node_released). */
int
meter_releasing(struct khd *k, struct node *const *nodes, int n)
{
	struct meter *mt = k->meter;
	uint64_t now = wall_ms();
	struct usage *u;
	uint64_t *t0;
	int rc = 0;

	if (mt == NULL)
		return 0;
	free_stage(mt);
	rdma_collect(mt);
	u = calloc((size_t)n + 1, sizeof(*u));
	t0 = calloc((size_t)n + 1, sizeof(*t0));
	if (u == NULL || t0 == NULL)
		fatal("meter");
	for (int i = 0; i < n; i++) {
		int rank = nodes[i]->rank;
		struct mnode *m = mt->node[rank];
		if (m == NULL)
			continue;
		int j;
		for (j = 0; j < mt->nstage && mt->stage[j].pidx != m->owner; j++)
			;
		if (j == mt->nstage) {
			struct mprin *pr = prin_loaded(mt, m->owner);
			mt->stage =
			    fac_grow(mt->stage, &mt->capstage, mt->nstage + 1, sizeof(*mt->stage));
			struct staged *s = &mt->stage[mt->nstage++];
			memset(s, 0, sizeof(*s));
			s->pidx = m->owner;
			s->seq = pr->seq;
			memcpy(s->head, pr->head, sizeof(s->head));
			usage_init(&s->total);
			usage_copy(&s->total, &pr->total);
			t0[j] = m->t_ms;
		}
		if (m->t_ms < t0[j])
			t0[j] = m->t_ms;
		struct mnode copy = *m; /* the node itself changes only at the commit */
		charge(mt, rank, &copy, now, &u[j]);
		if (state_del_meter_node(k->fac.st, rank) < 0)
			rc = -1;
	}
	for (int j = 0; j < mt->nstage && rc == 0; j++) {
		struct staged *s = &mt->stage[j];
		usage_merge(&s->total, &u[j]);
		if (write_record(mt, s->pidx, t0[j], now, &u[j], &s->seq, s->head) < 0 ||
		    write_total(mt, s->pidx, &s->total) < 0)
			rc = -1;
	}
	for (int j = 0; j <= n; j++)
		usage_free(&u[j]);
	free(u);
	free(t0);
	if (rc < 0)
		free_stage(mt);
	return rc;
}

void
meter_node_released(struct khd *k, const struct node *n)
{
	struct meter *mt = k->meter;
	if (mt == NULL)
		return;
	/* The release committed: its records are the chains' new heads. */
	for (int j = 0; j < mt->nstage; j++) {
		struct mprin *pr = prin_loaded(mt, mt->stage[j].pidx);
		pr->seq = mt->stage[j].seq;
		memcpy(pr->head, mt->stage[j].head, sizeof(pr->head));
		usage_reset(&pr->total);
		usage_merge(&pr->total, &mt->stage[j].total);
	}
	free_stage(mt);
	if (n->rank >= 0 && n->rank < KH_MAX_NODES)
		node_forget(mt, n->rank);
}

static struct mnode *
metered(struct khd *k, int rank)
{
	if (k->meter == NULL || rank < 0 || rank >= KH_MAX_NODES)
		return NULL;
	return k->meter->node[rank];
}

void
meter_node_sync(struct khd *k, int rank)
{
	struct mnode *m = metered(k, rank);
	if (m)
		read_cgroup(k->meter, rank, m, wall_ms());
}

void
meter_node_ended(struct khd *k, int rank)
{
	struct mnode *m = metered(k, rank);
	if (m == NULL)
		return;
	m->cg = 0;
	m->cpu = m->peak = 0;
	m->mem = 0;
	soon(k->meter); /* what the cgroup used lives only in memory until then */
}

void
meter_console(struct khd *k, int rank, uint64_t in, uint64_t out)
{
	struct mnode *m = metered(k, rank);
	if (m) {
		m->con_in += in;
		m->con_out += out;
	}
}

/* The fabric is about to delete one of the node's interfaces: keep its
 * last counts for the next charge. */
static void
if_removed(void *arg, int rank, const struct fabric_ifstats *st)
{
	struct mnode *m = metered(arg, rank);
	if (m == NULL || st->slot < 0 || st->slot >= KH_MAX_IFS)
		return;
	struct mport *p = &m->port[st->slot];
	uint64_t cur[C_N] = {st->rx_bytes, st->tx_bytes, st->rx_packets, st->tx_packets};
	int fresh = p->netid != st->netid;
	for (int c = 0; c < C_N; c++)
		fresh |= cur[c] < p->c[c];
	struct mport *g = NULL;
	for (int i = 0; i < m->ngone; i++)
		if (m->gone[i].netid == st->netid)
			g = &m->gone[i];
	if (g == NULL && m->ngone < KH_MAX_IFS) {
		g = &m->gone[m->ngone++];
		*g = (struct mport){.netid = st->netid};
	}
	if (g)
		for (int c = 0; c < C_N; c++)
			g->c[c] += fresh ? cur[c] : cur[c] - p->c[c];
	*p = (struct mport){0};
}

struct rows {
	struct state_meter_node *v;
	int n, cap;
};

static int
row_cb(void *arg, const struct state_meter_node *mn)
{
	struct rows *r = arg;
	r->v = fac_grow(r->v, &r->cap, r->n + 1, sizeof(*r->v));
	r->v[r->n++] = *mn;
	return 0;
}

/* When process dir (an fd of /proc/<pid>) started, in clock ticks since
 * boot; UINT64_MAX when unknown. */
static uint64_t
proc_start(int dir)
{
	char buf[1024], *p;
	ssize_t n;
	int fd = openat(dir, "stat", O_RDONLY | O_CLOEXEC);
	unsigned long long t;

	if (fd < 0)
		return UINT64_MAX;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = '\0';
	/* The command name may hold anything: fields start after its ')'.
	 * starttime is field 22, the 20th after it. */
	if ((p = strrchr(buf, ')')) == NULL)
		return UINT64_MAX;
	p++;
	for (int i = 0; i < 19; i++) {
		p += strspn(p, " ");
		p += strcspn(p, " ");
	}
	return sscanf(p, " %llu", &t) == 1 ? t : UINT64_MAX;
}

/* The network namespace of a node a dead khd left running: that of the
 * oldest process in its cgroup, the node's init, which entered it before
 * any code of the node ran (a later process may have made a namespace of
 * its own).  A process still in khd's namespace (caught between joining
 * the cgroup and entering the node's) is passed over.  Returns an fd, or
 * -1 when the cgroup has no process (the node was not running). */
static int
leftover_netns(const struct cgroup_host *h, const char *rel)
{
	static const unsigned ctls[] = {CG_PIDS, CG_MEMORY, CG_CPUACCT, CG_CPU};
	char dir[PATH_MAX + 64], path[PATH_MAX + 80];
	struct stat self, st;
	uint64_t best_t = UINT64_MAX;
	int best = -1, pid;
	FILE *f = NULL;

	if (stat("/proc/self/ns/net", &self) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(ctls) / sizeof(ctls[0]) && f == NULL; i++)
		if (cgroup_node_path(h, ctls[i], rel, dir, sizeof(dir)) == 0) {
			snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
			f = fopen(path, "re");
		}
	if (f == NULL)
		return -1;
	while (fscanf(f, "%d", &pid) == 1) {
		snprintf(path, sizeof(path), "/proc/%d", pid);
		/* stat and ns of one process, even if the pid is reused */
		int pd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC), ns;
		if (pd < 0)
			continue;
		uint64_t t = proc_start(pd);
		ns = openat(pd, "ns/net", O_RDONLY | O_CLOEXEC);
		close(pd);
		if (ns < 0)
			continue;
		if (fstat(ns, &st) < 0 || (st.st_ino == self.st_ino && st.st_dev == self.st_dev) ||
		    (best >= 0 && t >= best_t)) {
			close(ns);
			continue;
		}
		if (best >= 0)
			close(best);
		best = ns;
		best_t = t;
	}
	fclose(f);
	return best;
}

/* Charge into u what a leftover node's interfaces counted since the
 * baselines in row (an interface below its baseline, on another domain
 * than the baseline's, or without one counts from zero), and put the
 * counters read into next.  Returns the bytes charged, or -1 when there
 * was nothing to read. */
static int64_t
recover_net(struct khd *k, const struct node *n, const char *rel,
	    const struct state_meter_node *row, struct state_meter_node *next, struct usage *u)
{
	struct fabric_ifstats ifs[KH_MAX_IFS];
	int64_t bytes = 0;
	int nif, fd;

	if (!k->host_ok || (fd = leftover_netns(&k->host.cg, rel)) < 0)
		return -1;
	nif = fabric_netns_counters(fd, ifs, KH_MAX_IFS);
	close(fd);
	if (nif < 0) {
		log_warnx("meter: cannot read the interfaces of node %d left running", n->rank);
		return -1;
	}
	for (int i = 0; i < nif; i++) {
		int s = ifs[i].slot;
		if (s < 0 || s >= KH_MAX_IFS)
			continue;
		const struct state_meter_port *b = &row->port[s];
		uint32_t alloc = s < n->nifs && n->ifs[s] > 0 ? (uint32_t)n->ifs[s] : 0;
		/* Its domain: the baseline's, unless the allocation moved it
		 * (then it is another interface at that place); an interface
		 * neither knows is no domain's to charge. */
		uint32_t netid = alloc && alloc != b->netid ? alloc : b->netid;
		uint64_t cur[C_N] = {ifs[i].rx_bytes, ifs[i].tx_bytes, ifs[i].rx_packets,
				     ifs[i].tx_packets};
		uint64_t base[C_N] = {b->rx_bytes, b->tx_bytes, b->rx_packets, b->tx_packets};
		uint64_t d[C_N];
		if (netid == 0)
			continue;
		int fresh = netid != b->netid;
		for (int c = 0; c < C_N; c++)
			fresh |= cur[c] < base[c];
		for (int c = 0; c < C_N; c++)
			d[c] = fresh ? cur[c] : cur[c] - base[c];
		add_net(u, netid, d);
		bytes += (int64_t)(d[C_RXB] + d[C_TXB]);
		port_of(&next->port[s], netid, cur);
	}
	return bytes;
}

void
meter_recover(struct khd *k)
{
	struct meter *mt = k->meter;
	struct facility *f = &k->fac;
	struct rows rows = {0};
	uint64_t now = wall_ms(), meter_t = 0;
	char v[32], rel[CG_RELMAX];
	int ok = 1, charged = 0, nread = 0, nnext = 0;
	int64_t netbytes = 0;

	if (mt == NULL)
		return;
	mt->start_ms = now;
	if (state_get_meta(f->st, "meter_t", v, sizeof(v)) == 1)
		meter_t = strtoull(v, NULL, 10);
	if (state_get_meter_nodes(f->st, row_cb, &rows) < 0 || meter_t == 0) {
		free(rows.v); /* a new facility: nothing was ever metered */
		return;
	}
	struct pscratch *ps = calloc((size_t)f->nprincipals + 1, sizeof(*ps));
	/* The baselines after this charge: should khd die again before it
	 * stopped the nodes, the next one charges only what came after. */
	struct state_meter_node *next = calloc((size_t)f->nnodes + 1, sizeof(*next));
	if (ps == NULL || next == NULL)
		fatal("meter");
	for (int i = 0; i < f->nnodes; i++) {
		struct node *n = &f->nodes[i];
		struct state_meter_node none = {0}, *row = &none;
		if (n->state == NODE_FREE || n->owner < 0)
			continue;
		for (int j = 0; j < rows.n; j++)
			if (rows.v[j].rank == n->rank &&
			    strcmp(f->principals[n->owner].name, rows.v[j].principal) == 0)
				row = &rows.v[j];
		if (row == &none) {
			/* Allocated after the last tick: no baseline yet.  It
			 * began when its channel was made (a second's
			 * resolution), and not before that tick. */
			struct channel *c = fac_channel(f, n->chan);
			none.since_ms = c && c->created > 0 ? (uint64_t)c->created * 1000 : 0;
		}
		/* Charged up to the last tick (rows are rewritten only when a
		 * counter moved), and since then the allocation existed. */
		struct mnode m = {.owner = n->owner, .type = n->type, .t_mem = now};
		m.t_ms = row->since_ms > meter_t ? row->since_ms : meter_t;
		struct state_meter_node *nx = &next[nnext++];
		nx->rank = n->rank;
		snprintf(nx->principal, sizeof(nx->principal), "%s", f->principals[n->owner].name);
		nx->since_ms = now;
		struct cgroup_stats cs;
		snprintf(rel, sizeof(rel), "kh-%08x/n%d", f->id, n->rank);
		int remote = hosts_remote(k, n->rank) >= 0;
		if (remote) {
			/* On an agent's host: its counters come with the agent
			 * (seeded at meter_start), from the last tick's baseline. */
			nx->cpu_ns = row->cpu_ns;
			nx->mem = row->mem;
			nx->peak = row->peak;
			memcpy(nx->port, row->port, sizeof(nx->port));
		} else if (k->host_ok && cgroup_node_stats(&k->host.cg, rel, &cs) == 0) {
			m.cpu_pend = cs.cpu_ns >= row->cpu_ns ? cs.cpu_ns - row->cpu_ns : cs.cpu_ns;
			if (now > m.t_ms)
				m.mem_pend = (row->mem + cs.mem) / 2 * (now - m.t_ms);
			m.ipeak = cs.mem_peak > row->peak ? cs.mem_peak
							  : (cs.mem > row->mem ? cs.mem : row->mem);
			nx->cpu_ns = cs.cpu_ns;
			nx->mem = cs.mem;
			nx->peak = cs.mem_peak;
		}
		struct pscratch *s = &ps[n->owner];
		if (!s->has || m.t_ms < s->t0)
			s->t0 = m.t_ms;
		s->has = 1;
		charge(mt, n->rank, &m, now, &s->u);
		/* The interfaces live on while the node's processes do (the dead
		 * khd pinned its fabric's namespace, which holds their segments). */
		int64_t b = remote ? -1 : recover_net(k, n, rel, row, nx, &s->u);
		if (b >= 0) {
			nread++;
			netbytes += b;
		}
		charged++;
	}
	if (state_begin(f->st) < 0)
		ok = 0;
	for (int p = 0; p < f->nprincipals && ok; p++)
		if (ps[p].has && write_prin(mt, p, prin_loaded(mt, p), &ps[p], now) < 0)
			ok = 0;
	for (int i = 0; i < rows.n && ok; i++)
		if (state_del_meter_node(f->st, rows.v[i].rank) < 0)
			ok = 0;
	for (int i = 0; i < nnext && ok; i++)
		if (state_put_meter_node(f->st, &next[i]) < 0)
			ok = 0;
	snprintf(v, sizeof(v), "%" PRIu64, now);
	if (ok && (state_put_meta(f->st, "meter_t", v) < 0 || state_commit(f->st) < 0))
		ok = 0;
	if (!ok) {
		state_rollback(f->st);
		log_warnx("meter: could not store the usage of the nodes left running");
	} else if (charged) {
		log_info("meter: charged %d nodes for their use since %.3f s ago (khd was not "
			 "running); %" PRId64 " B of traffic (in and out) on the interfaces of %d "
			 "left running",
			 charged, meter_t ? (double)(now - meter_t) / 1000 : 0.0, netbytes, nread);
	}
	for (int p = 0; p < f->nprincipals; p++) {
		if (ps[p].has && ok)
			apply_prin(prin_loaded(mt, p), &ps[p], 1, now);
		usage_free(&ps[p].u);
	}
	free(ps);
	free(next);
	free(rows.v);
}

/* Nodes adopted from an earlier khd go on with the cgroup and interfaces
 * meter_recover charged up to now: their counters as it read them (the
 * rows it stored) are their baselines, so nothing is charged twice. */
static void seed_row(struct khd *k, const struct state_meter_node *row);

static void
seed_adopted(struct meter *mt)
{
	struct khd *k = mt->k;
	struct rows rows = {0};

	int remote = 0;
	for (int i = 0; i < k->fac.nnodes; i++)
		remote |= hosts_remote(k, k->fac.nodes[i].rank) >= 0;
	if ((k->adopted == 0 && !remote) || state_get_meter_nodes(k->fac.st, row_cb, &rows) < 0) {
		free(rows.v);
		return;
	}
	for (int j = 0; j < rows.n; j++) {
		const struct state_meter_node *row = &rows.v[j];
		struct machine *mc = machine_of(k, row->rank);
		const struct node *n = fac_node(&k->fac, row->rank);
		/* adopted here, or (on an agent's host) running there by the
		 * state: its counters go on from this baseline, which the ticks
		 * before its agent connects keep */
		int there = hosts_remote(k, row->rank) >= 0 && n && n->state == NODE_RUNNING;
		if (mc == NULL || (!there && (!mc->running || !mc->h.adopted)))
			continue;
		seed_row(k, row);
	}
	free(rows.v);
}

static void
seed_row(struct khd *k, const struct state_meter_node *row)
{
	struct mnode *m = metered(k, row->rank);
	if (m == NULL || strcmp(k->fac.principals[m->owner].name, row->principal) != 0)
		return;
	m->cg = 1;
	m->cpu = row->cpu_ns;
	m->peak = row->peak;
	m->mem = m->ipeak = row->mem;
	for (int s = 0; s < KH_MAX_IFS; s++) {
		const struct state_meter_port *p = &row->port[s];
		m->port[s] =
		    (struct mport){.netid = p->netid,
				   .c = {p->rx_bytes, p->tx_bytes, p->rx_packets, p->tx_packets}};
	}
}

void
meter_start(struct khd *k)
{
	struct meter *mt = k->meter;
	uint64_t now;

	if (mt == NULL)
		return;
	now = mt->start_ms ? mt->start_ms : wall_ms();
	for (int i = 0; i < k->fac.nnodes; i++) {
		struct node *n = &k->fac.nodes[i];
		if (n->state != NODE_FREE && n->owner >= 0)
			node_new(mt, n, now);
	}
	seed_adopted(mt);
	if (k->fab)
		fabric_set_remove_hook(k->fab, if_removed, k);
	mt->last_tick_ms = now;
	mt->timer = ev_after(k->ev, 0, tick, mt); /* rows of the nodes at once */
}

void
meter_close(struct khd *k)
{
	struct meter *mt = k->meter;
	if (mt == NULL)
		return;
	if (mt->timer)
		ev_cancel(k->ev, mt->timer);
	mt->timer = 0;
	mt->closing = 1;
	tick(NULL, mt); /* usage up to this moment; the downtime is charged at the next start */
	if (k->fab)
		fabric_set_remove_hook(k->fab, NULL, NULL);
	free_stage(mt);
	free(mt->stage);
	for (int i = 0; i < KH_MAX_NODES; i++)
		free(mt->node[i]);
	free(mt->node);
	for (int p = 0; p < mt->nprin; p++)
		if (mt->prin[p].loaded) {
			usage_free(&mt->prin[p].total);
			usage_free(&mt->prin[p].unsaved);
		}
	free(mt->prin);
	ledger_key_wipe(&mt->key);
	sbuf_free(&mt->line);
	free(mt);
	k->meter = NULL;
}

/* Reads for the verbs. */

struct sum_ctx {
	struct usage *out;
	struct ledger_rec r;
	int bad;
};

static int
sum_cb(void *arg, uint64_t seq, const char *line)
{
	struct sum_ctx *c = arg;
	char why[256];
	if (ledger_rec_parse(line, &c->r, why, sizeof(why)) < 0) {
		log_warnx("meter: damaged ledger record seq %" PRIu64 ": %s", seq, why);
		c->bad = 1;
		return 1;
	}
	usage_merge(c->out, &c->r.use);
	return 0;
}

int
meter_usage(struct khd *k, int pidx, uint64_t from, uint64_t to, struct usage *out, char *err,
	    size_t errlen)
{
	struct meter *mt = k->meter;
	usage_reset(out);
	if (mt == NULL)
		return seterr(err, errlen, "metering is off");
	if (from == 0 && to == 0) {
		usage_copy(out, &prin_loaded(mt, pidx)->total);
		return 0;
	}
	struct sum_ctx c = {.out = out};
	ledger_rec_init(&c.r);
	int rc =
	    state_get_records(k->fac.st, k->fac.principals[pidx].name, 0, 0, from, to, sum_cb, &c);
	ledger_rec_free(&c.r);
	if (rc < 0 || c.bad)
		return seterr(err, errlen, "the ledger could not be read (see khd.log)");
	return 0;
}

const struct usage *
meter_total(struct khd *k, int pidx)
{
	if (k->meter == NULL || pidx < 0 || pidx >= k->fac.nprincipals)
		return NULL;
	return &prin_loaded(k->meter, pidx)->total;
}

const struct meter_stats *
meter_stats(struct khd *k)
{
	return k->meter ? &k->meter->stats : NULL;
}

void
meter_pubkey(struct khd *k, char *hex, size_t len)
{
	char h[LEDGER_HEX_LEN];
	if (k->meter == NULL || len < 2 * LEDGER_PK_LEN + 1) {
		if (len)
			hex[0] = '\0';
		return;
	}
	ledger_hex(k->meter->key.pk, LEDGER_PK_LEN, h);
	snprintf(hex, len, "%s", h);
}

struct sigs {
	uint64_t *seq;
	char (*hex)[LEDGER_HEX_LEN];
	int n, cap;
};

static int
sig_cb(void *arg, uint64_t seq, const char *hex)
{
	struct sigs *s = arg;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->seq = realloc(s->seq, (size_t)s->cap * sizeof(*s->seq));
		s->hex = realloc(s->hex, (size_t)s->cap * sizeof(*s->hex));
		if (s->seq == NULL || s->hex == NULL)
			fatal("meter");
	}
	s->seq[s->n] = seq;
	snprintf(s->hex[s->n], sizeof(s->hex[s->n]), "%s", hex);
	s->n++;
	return 0;
}

struct exp_ctx {
	struct ledger_export *x;
	struct sigs *sigs;
	int si;
	struct ledger_rec r;
	char why[256];
	int bad;
	uint64_t last;
};

static int
exp_cb(void *arg, uint64_t seq, const char *line)
{
	struct exp_ctx *c = arg;
	struct ledger_sig s;

	if (c->x->out->len >= METER_PART_BYTES)
		return 1; /* the rest in the next part */
	if (ledger_rec_parse(line, &c->r, c->why, sizeof(c->why)) < 0) {
		c->bad = 1;
		return 1;
	}
	memcpy(c->r.prev, c->x->head, LEDGER_HASH_LEN);
	if (ledger_export_rec(c->x, &c->r, c->why, sizeof(c->why)) < 0) {
		c->bad = 1;
		return 1;
	}
	c->last = seq;
	while (c->si < c->sigs->n && c->sigs->seq[c->si] < seq)
		c->si++;
	if (c->si < c->sigs->n && c->sigs->seq[c->si] == seq) {
		memset(&s, 0, sizeof(s));
		snprintf(s.principal, sizeof(s.principal), "%s", c->x->principal);
		s.seq = seq;
		memcpy(s.hash, c->x->head, LEDGER_HASH_LEN);
		if (ledger_unhex(c->sigs->hex[c->si], s.sig, LEDGER_SIG_LEN) < 0 ||
		    ledger_export_sig(c->x, &s, c->why, sizeof(c->why)) < 0) {
			c->bad = 1;
			return 1;
		}
	}
	return 0;
}

struct one_ctx {
	struct ledger_rec *r;
	int found, bad;
};

static int
one_cb(void *arg, uint64_t seq, const char *line)
{
	struct one_ctx *c = arg;
	char why[256];
	(void)seq;
	if (ledger_rec_parse(line, c->r, why, sizeof(why)) < 0)
		c->bad = 1;
	else
		c->found = 1;
	return 1;
}

int
meter_export(struct khd *k, int pidx, uint64_t after, uint64_t max, struct sbuf *out, int *more,
	     char *err, size_t errlen)
{
	struct meter *mt = k->meter;
	const char *name = k->fac.principals[pidx].name;
	struct ledger_export x;
	struct sigs sigs = {0};
	struct exp_ctx c = {.x = &x, .sigs = &sigs, .last = after};
	int rc = -1;

	*more = 0;
	if (mt == NULL)
		return seterr(err, errlen, "metering is off");
	struct mprin *pr = prin_loaded(mt, pidx);
	uint64_t upto = pr->seq;
	if (after > upto)
		return seterr(err, errlen, "%s's ledger ends at seq %" PRIu64, name, upto);
	struct sbuf hdr;
	sbuf_init(&hdr);
	ledger_rec_init(&c.r);
	rc = ledger_export_begin(&x, after ? &hdr : out, &mt->key, name, 0, NULL, c.why,
				 sizeof(c.why));
	sbuf_free(&hdr);
	x.out = out;
	if (rc < 0)
		goto out;
	rc = -1;
	if (after > 0) {
		/* A later part of the same export: no header again; the chain
		 * goes on from record `after`, which the client already has. */
		struct one_ctx oc = {.r = &c.r};
		if (state_get_records(k->fac.st, name, after - 1, after, 0, 0, one_cb, &oc) < 0 ||
		    !oc.found) {
			snprintf(c.why, sizeof(c.why), "record %" PRIu64 " not found", after);
			goto out;
		}
		x.seq = after;
		x.nrec = after;
		memcpy(x.head, c.r.hash, LEDGER_HASH_LEN);
		x.head_signed = 1; /* its signature line, if any, went out with it */
	}
	uint64_t last = max && upto - after > max ? after + max : upto;
	if (state_get_sigs(k->fac.st, name, after, last, sig_cb, &sigs) < 0 ||
	    state_get_records(k->fac.st, name, after, last, 0, 0, exp_cb, &c) < 0 || c.bad)
		goto out;
	if (c.last < upto) {
		if (c.last == after) {
			snprintf(c.why, sizeof(c.why), "record %" PRIu64 " is missing", after + 1);
			goto out;
		}
		*more = 1;
		rc = 0;
		goto out;
	}
	struct ledger_sig made;
	int r = ledger_export_end(&x, &made, c.why, sizeof(c.why));
	if (r < 0)
		goto out;
	if (r == 1) {
		/* The export closed a block: store its signature. */
		char hex[LEDGER_HEX_LEN];
		ledger_hex(made.sig, LEDGER_SIG_LEN, hex);
		if (state_begin(k->fac.st) < 0 ||
		    state_put_sig(k->fac.st, name, made.seq, hex) < 0 ||
		    state_commit(k->fac.st) < 0) {
			state_rollback(k->fac.st);
			snprintf(c.why, sizeof(c.why), "cannot store the block signature");
			goto out;
		}
		pr->signed_seq = made.seq;
	}
	rc = 0;
out:
	if (rc < 0)
		seterr(err, errlen, "export of %s: %s", name, c.why[0] ? c.why : "store error");
	ledger_rec_free(&c.r);
	free(sigs.seq);
	free(sigs.hex);
	return rc;
}

struct recs_ctx {
	struct sbuf *out;
	uint64_t max, n, last, from;
	struct ledger_rec r;
};

static int
recs_cb(void *arg, uint64_t seq, const char *line)
{
	struct recs_ctx *c = arg;
	char why[256];
	if ((c->max && c->n == c->max) || c->out->len >= METER_PART_BYTES)
		return 1;
	c->last = seq;
	if (ledger_rec_parse(line, &c->r, why, sizeof(why)) == 0 && c->r.t1 <= c->from &&
	    c->r.t1 > c->r.t0)
		return 0; /* ended before the range */
	sbuf_adds(c->out, line);
	sbuf_adds(c->out, "\n");
	c->n++;
	return 0;
}

int
meter_records(struct khd *k, int pidx, uint64_t from, uint64_t to, uint64_t after, uint64_t max,
	      struct sbuf *out, int *more, char *err, size_t errlen)
{
	struct recs_ctx c = {.out = out, .max = max, .from = from};
	int rc;
	*more = 0;
	if (k->meter == NULL)
		return seterr(err, errlen, "metering is off");
	/* Records overlapping [from, to): a record is one tick, or the time
	 * khd was down, so one that began a day early is looked at too. */
	ledger_rec_init(&c.r);
	rc = state_get_records(k->fac.st, k->fac.principals[pidx].name, after, 0,
			       from > METER_LOOKBACK_MS ? from - METER_LOOKBACK_MS : 0, to, recs_cb,
			       &c);
	ledger_rec_free(&c.r);
	if (rc < 0)
		return seterr(err, errlen, "the ledger could not be read (see khd.log)");
	*more = c.n > 0 && c.last < prin_loaded(k->meter, pidx)->seq;
	return 0;
}
