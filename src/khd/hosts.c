/* hosts: khd's side of a facility over several hosts (hosts.h).  The
 * front end is the facility's one writer: it decides, the agents do.
 * Whenever an agent (re)connects it is told everything again (the wiring
 * of every allocated node on it, which domains span which hosts), and
 * what it runs is reconciled with what the state says runs there. */
#include "khd/hosts.h"
#include "agent/front.h"
#include "agent/link.h"
#include "allocator/alloc.h"
#include "common/log.h"
#include "common/util.h"
#include "console/console.h"
#include "khd/khd.h"
#include "khd/machine.h"
#include "khd/meter.h"
#include "memory/mem.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rnode { /* what the front end knows of a node on an agent's host */
	struct front_stats s;
	int have_stats;
};

struct hosts {
	struct front *fr;
	uint32_t next_gen;
	struct rnode *rn; /* by rank */
	uint64_t *span;	  /* by netid: the hosts last told they span it */
	int nspan;
	uint64_t respan_timer;
};

static struct hosts *
H(const struct khd *k)
{
	return k->hosts;
}

int
hosts_remote(const struct khd *k, int rank)
{
	const struct fac_host *h;
	if (k->fac.nhosts <= 1 || (h = fac_host_of(&k->fac, rank)) == NULL ||
	    h->state == HOST_LOCAL)
		return -1;
	return (int)(h - k->fac.hosts);
}

int
hosts_lost(const struct khd *k, int rank)
{
	const struct fac_host *h = k->fac.nhosts > 1 ? fac_host_of(&k->fac, rank) : NULL;
	return h != NULL && h->state == HOST_LOST;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
say(struct khd *k, int rank, const char *fmt, const char *a, const char *b)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, rank, a, b);
	console_output(k, rank, msg, strlen(msg));
}

/* ---- which domains span which hosts ---- */

/* Every up host with members of a domain is told the other such hosts;
 * a host that has none any more is told none.  The external domain stays
 * on each host: its nodes reach out through their own host. */
static void
respan(struct ev *ev, void *arg)
{
	struct khd *k = arg;
	struct hosts *hs = H(k);
	struct facility *f = &k->fac;
	int maxnet = NETID_FIRST_PRIVATE;
	(void)ev;

	hs->respan_timer = 0;
	for (int i = 0; i < f->ndomains; i++)
		if (f->domains[i].netid >= maxnet)
			maxnet = f->domains[i].netid + 1;
	for (int i = 0; i < f->nnodes; i++)
		for (int j = 0; j < f->nodes[i].nifs; j++)
			if (f->nodes[i].ifs[j] >= maxnet)
				maxnet = f->nodes[i].ifs[j] + 1;
	uint64_t *want = calloc((size_t)maxnet, sizeof(*want));
	if (want == NULL)
		fatal("hosts");
	for (int i = 0; i < f->nnodes; i++) {
		const struct node *n = &f->nodes[i];
		int h = hosts_remote(k, n->rank);
		if (n->state == NODE_FREE || h < 0 || h >= 64 || f->hosts[h].state != HOST_UP)
			continue;
		for (int j = 0; j < n->nifs; j++)
			if (n->ifs[j] >= NETID_EXTERNAL)
				want[n->ifs[j]] |= 1ull << h;
	}
	if (maxnet > hs->nspan) {
		hs->span = realloc(hs->span, (size_t)maxnet * sizeof(*hs->span));
		if (hs->span == NULL)
			fatal("hosts");
		memset(hs->span + hs->nspan, 0, (size_t)(maxnet - hs->nspan) * sizeof(*hs->span));
		hs->nspan = maxnet;
	}
	for (int net = 0; net < hs->nspan; net++) {
		uint64_t now = net < maxnet ? want[net] : 0, was = hs->span[net];
		if (now == was)
			continue;
		for (int h = 0; h < f->nhosts && h < 64; h++) {
			int peers[64], np = 0;
			if (!((now | was) >> h & 1))
				continue;
			for (int o = 0; (now >> h & 1) && o < f->nhosts && o < 64; o++)
				if (o != h && (now >> o & 1))
					peers[np++] = o;
			front_span(hs->fr, h, net, peers, np);
		}
		hs->span[net] = now;
	}
	free(want);
}

static void
respan_later(struct khd *k)
{
	if (H(k) != NULL && H(k)->respan_timer == 0)
		H(k)->respan_timer = ev_after(k->ev, 0, respan, k);
}

/* ---- what the agents say ---- */

static struct machine *
mine(struct khd *k, int host, int rank, uint32_t gen)
{
	struct machine *m = machine_of(k, rank);
	if (m == NULL || !m->running || m->gen != gen || hosts_remote(k, rank) != host)
		return NULL;
	return m;
}

static void
on_up(void *arg, int host, const char *name, const struct front_running *run, int nrun)
{
	struct khd *k = arg;
	struct facility *f = &k->fac;
	struct fac_host *fh = &f->hosts[host];
	int first = fh->first, last = fh->first + fh->count;
	char *runs = calloc((size_t)(fh->count > 0 ? fh->count : 1), 1);

	if (runs == NULL)
		fatal("hosts");
	if (strcmp(name, fh->name) != 0)
		log_info("host %s: its agent calls itself %s", fh->name, name);
	fac_host_set_state(f, host, HOST_UP, wall_ms());
	/* Its nodes' wiring, all of it: the agent may be new. */
	for (int r = first; r < last; r++) {
		const struct node *n = fac_node(f, r);
		if (n && n->state != NODE_FREE)
			front_wire(H(k)->fr, host, r, n->ifs, n->nifs);
	}
	/* What it runs against what runs there by the state. */
	for (int i = 0; i < nrun; i++) {
		int r = run[i].rank;
		struct machine *m = r >= first && r < last ? machine_of(k, r) : NULL;
		struct node *n = m ? fac_node(f, r) : NULL;
		if (m == NULL || n == NULL || n->state != NODE_RUNNING ||
		    (m->running && m->gen != run[i].gen)) {
			/* not ours to run any more (released or reset meanwhile) */
			front_kill(H(k)->fr, host, r, run[i].gen);
			if (m == NULL)
				front_release(H(k)->fr, host, r);
			continue;
		}
		runs[r - first] = 1;
		if (!m->running) { /* a front end that restarted takes it over (its
				      meter baseline was seeded at start) */
			m->running = 1;
			m->gen = run[i].gen;
			m->boot_ns = now_ns();
			log_info("node %d: runs on host %s: adopted", r, fh->name);
		}
	}
	/* Nodes the state says run there, which it does not run: they ended
	 * while their host was out of reach, or the agent restarted. */
	for (int r = first; r < last; r++) {
		struct machine *m = machine_of(k, r);
		struct node *n = fac_node(f, r);
		if (runs[r - first] || m == NULL || n == NULL)
			continue;
		if (m->running || n->state == NODE_RUNNING) {
			say(k, r, "\n## node %d: it stopped while host %s was out of reach%s\n",
			    fh->name, "");
			if (m->running)
				machine_ended(m, 0, 1);
			else
				alloc_set_state(f, n, NODE_MONITOR);
		}
	}
	free(runs);
	respan_later(k);
}

static void
on_lost(void *arg, int host, const char *why)
{
	struct khd *k = arg;
	struct facility *f = &k->fac;
	struct fac_host *fh = &f->hosts[host];

	/* Usage up to now is charged; while lost, nothing is. */
	for (int r = fh->first; r < fh->first + fh->count; r++) {
		struct machine *m = machine_of(k, r);
		if (m != NULL) {
			meter_node_sync(k, r);
			if (m->running)
				say(k, r, "\n## node %d: host %s lost (%s)\n", fh->name, why);
		}
	}
	fac_host_set_state(f, host, HOST_LOST, wall_ms());
	respan_later(k);
}

static void
on_booted(void *arg, int host, int rank, uint32_t gen)
{
	struct khd *k = arg;
	if (mine(k, host, rank, gen))
		log_debug("node %d: booted on host %s", rank, k->fac.hosts[host].name);
}

static void
on_failed(void *arg, int host, int rank, uint32_t gen, const char *why)
{
	struct khd *k = arg;
	struct machine *m = mine(k, host, rank, gen);
	if (m == NULL)
		return;
	say(k, rank, "## node %d: boot failed on host %s: %s\n", k->fac.hosts[host].name, why);
	machine_ended(m, NODE_EXIT_SETUP << 8, 1);
}

static void
on_output(void *arg, int host, int rank, uint32_t gen, const void *p, size_t n)
{
	struct khd *k = arg;
	struct machine *m = mine(k, host, rank, gen);
	if (m == NULL)
		return;
	m->heard = 1;
	console_output(k, rank, p, n);
}

static void
on_exited(void *arg, int host, int rank, uint32_t gen, int status)
{
	struct khd *k = arg;
	struct machine *m = mine(k, host, rank, gen);
	if (m != NULL)
		machine_ended(m, status, m->dying);
}

static void
on_stats(void *arg, int host, int rank, uint32_t gen, const struct front_stats *s)
{
	struct khd *k = arg;
	struct machine *m = mine(k, host, rank, gen);
	if (m == NULL)
		return;
	H(k)->rn[rank].s = *s;
	H(k)->rn[rank].have_stats = 1;
}

static const struct front_ops ops = {.up = on_up,
				     .lost = on_lost,
				     .booted = on_booted,
				     .failed = on_failed,
				     .output = on_output,
				     .exited = on_exited,
				     .stats = on_stats};

/* ---- what khd asks ---- */

int
hosts_init(struct khd *k, char *err, size_t errlen)
{
	struct facility *f = &k->fac;
	unsigned char key[LINK_KEYLEN];
	int remote = 0;

	for (int i = 0; i < f->nhosts; i++)
		remote |= f->hosts[i].state != HOST_LOCAL;
	if (!remote)
		return 0;
	if (k->cluster_key[0] == '\0')
		return seterr(err, errlen,
			      "khd.conf has host lines but no cluster_key FILE (the key the agents "
			      "hold)");
	if (link_key_load(k->cluster_key, key, err, errlen) < 0)
		return -1;
	struct hosts *hs = calloc(1, sizeof(*hs));
	if (hs == NULL || (hs->rn = calloc(KH_MAX_NODES, sizeof(*hs->rn))) == NULL)
		fatal("hosts");
	hs->next_gen = (uint32_t)(now_ns() / 1000);
	hs->fr = front_new(k->ev, key, f->id, &ops, k);
	sodium_memzero(key, sizeof(key));
	for (int i = 0; i < f->nhosts; i++)
		if (front_host_add(hs->fr, f->hosts[i].addr, f->hosts[i].first, f->hosts[i].count,
				   err, errlen) != i) {
			front_free(hs->fr);
			free(hs->rn);
			free(hs);
			return -1;
		}
	k->hosts = hs;
	front_start(hs->fr);
	log_info("front end of %d hosts", f->nhosts);
	return 0;
}

void
hosts_close(struct khd *k)
{
	struct hosts *hs = H(k);
	if (hs == NULL)
		return;
	if (hs->respan_timer)
		ev_cancel(k->ev, hs->respan_timer);
	front_free(hs->fr);
	free(hs->rn);
	free(hs->span);
	free(hs);
	k->hosts = NULL;
}

int
hosts_boot(struct machine *m, struct blob *b, char *err, size_t errlen)
{
	struct khd *k = m->k;
	int host = hosts_remote(k, m->rank);
	const struct node *n = fac_node(&k->fac, m->rank);
	const struct node_type *t = &k->fac.types[n->type];

	if (host < 0 || H(k) == NULL || !front_host_up(H(k)->fr, host))
		return seterr(err, errlen, "host %s is not reachable",
			      host < 0 ? "?" : k->fac.hosts[host].name);
	if (strcmp(t->backend, "ct") != 0)
		return seterr(err, errlen, "%s nodes boot on the front end's own host only",
			      t->backend);
	m->gen = ++H(k)->next_gen;
	struct front_boot fb = {.rank = m->rank,
				.gen = m->gen,
				.cpu_milli = t->cpu_milli,
				.mem = t->mem,
				.pids = t->pids,
				.name = m->name,
				.env = NULL};
	front_boot(H(k)->fr, host, &fb, blob_hash(b), blob_data(b), blob_len(b));
	H(k)->rn[m->rank].have_stats = 0;
	return 0;
}

void
hosts_input(struct machine *m, const void *p, size_t n)
{
	if (H(m->k) == NULL)
		return;
	int host = hosts_remote(m->k, m->rank);
	front_input(H(m->k)->fr, host, m->rank, p, n);
}

void
hosts_stop(struct machine *m)
{
	if (H(m->k) == NULL)
		return;
	int host = hosts_remote(m->k, m->rank);
	front_kill(H(m->k)->fr, host, m->rank, m->gen);
}

void
hosts_wire(struct khd *k, const struct node *n)
{
	int host = hosts_remote(k, n->rank);
	if (host < 0 || H(k) == NULL)
		return;
	front_wire(H(k)->fr, host, n->rank, n->ifs, n->nifs);
	respan_later(k);
}

void
hosts_released(struct khd *k, int rank)
{
	int host = hosts_remote(k, rank);
	if (host < 0 || H(k) == NULL)
		return;
	front_release(H(k)->fr, host, rank);
	H(k)->rn[rank].have_stats = 0;
	respan_later(k);
}

int
hosts_stats(struct khd *k, int rank, struct node_stats *st)
{
	if (H(k) == NULL || rank < 0 || rank >= KH_MAX_NODES || !H(k)->rn[rank].have_stats)
		return -1;
	*st = H(k)->rn[rank].s.st;
	return 0;
}

int
hosts_counters(struct khd *k, int rank, struct fabric_ifstats *out, int max)
{
	/* No report yet: a failed reading (the meter keeps its baselines), not
	 * a node without interfaces. */
	if (H(k) == NULL || rank < 0 || rank >= KH_MAX_NODES || !H(k)->rn[rank].have_stats)
		return -1;
	int n = H(k)->rn[rank].s.nifs < max ? H(k)->rn[rank].s.nifs : max;
	memcpy(out, H(k)->rn[rank].s.ifs, (size_t)n * sizeof(*out));
	return n;
}

uint64_t
hosts_sent(const struct khd *k, int host)
{
	return H(k) ? front_sent(H(k)->fr, host) : 0;
}
