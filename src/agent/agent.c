/* agent: khagent (agent.h).  One event loop (khd's ev), one front end at a
 * time.  The agent keeps no state of the facility's: the front end, its
 * only writer, tells it everything again whenever it connects (the agent
 * answers with the nodes it runs, so nothing running is lost when the
 * front end restarts).  Nodes are booted exactly as khd boots ct nodes
 * (nodes/ct.c over the image cache, interfaces from the host's fabric). */
#include "agent/agent.h"
#include "agent/link.h"
#include "agent/linkmsg.h"
#include "allocator/facility.h"
#include "common/log.h"
#include "common/util.h"
#include "fabric/fabric.h"
#include "image/cache.h"
#include "khd/ev.h"
#include "nodes/cgroup.h"
#include "nodes/node.h"
#include "nodes/userns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define AG_STATS_MS  1000 /* usage reports */
#define AG_MAX_BLOBS 256
#define AG_OUT_MAX   (64u << 20) /* queued for the front end; beyond: output dropped */

struct anode {
	int rank;
	uint32_t gen;
	struct node_handle h;
	int running, dying;
	int watched_pidfd;
	unsigned char image[32];
	int holds_image;
	struct agent *a;
};

struct ablob {
	unsigned char hash[32];
	size_t len;
	void *map; /* mapped while some node boots from it; NULL otherwise */
};

struct agent {
	struct ev *ev;
	char dir[PATH_MAX];
	char name[KH_NAME_MAX + 1];
	char ip[64];
	int port;
	unsigned char key[LINK_KEYLEN];
	int lfd, sigfd;
	struct link cur;  /* the front end, proven */
	struct link cand; /* a connection proving itself */
	unsigned char cand_nonce[LINK_NONCE];
	int cand_state;	   /* 0 none, 1 challenged, 2 proven just now */
	char refused[256]; /* why handle refused a frame */
	int has_fac;
	uint32_t facid;
	int first, count; /* its ranks */
	struct node_host host;
	int host_ok;
	struct fabric *fab;
	struct imgcache *images;
	struct anode *nodes[KH_MAX_NODES];
	struct ablob blobs[AG_MAX_BLOBS];
	int nblobs;
	/* the blob coming in */
	int bfd;
	unsigned char bhash[32];
	uint64_t btotal, bgot;
	uint64_t lost_out; /* console bytes dropped: no front end, or it lagged */
	int stop;
};

static void cur_event(struct ev *ev, int fd, int events, void *arg);
static void prep_tick(struct ev *ev, void *arg);

static void
hex(const unsigned char *h, char *out)
{
	sodium_bin2hex(out, 65, h, 32);
}

/* ---- sending ---- */

static void
cur_flush(struct agent *a)
{
	if (a->cur.fd < 0)
		return;
	int rc = link_flush(&a->cur);
	if (rc < 0) {
		log_warnx("front end: send failed; waiting for it to connect again");
		ev_unwatch(a->ev, a->cur.fd);
		link_free(&a->cur);
		return;
	}
	ev_watch(a->ev, a->cur.fd, rc == 0 ? EV_READ | EV_WRITE : EV_READ, cur_event, a);
}

_Static_assert(KH_MAX_IFS <= LINK_MAX_IFS, "a node's interfaces fit an L_STATS");
_Static_assert(KH_MAX_NODES <= LINK_MAX_RANKS, "a facility's ranks fit the link's");

static void
send_failed(struct agent *a, uint32_t rank, uint32_t gen, const char *why)
{
	struct linkmsg m = {.type = L_FAILED, .rank = rank};
	if (a->cur.fd < 0)
		return;
	m.u.failed.gen = gen;
	snprintf(m.u.failed.why, sizeof(m.u.failed.why), "%s", why);
	linkmsg_put(&a->cur, &m);
	cur_flush(a);
}

static void
send_exit(struct agent *a, struct anode *n, int status)
{
	struct linkmsg m = {.type = L_EXIT, .rank = (uint32_t)n->rank};
	if (a->cur.fd < 0)
		return;
	m.u.exit.gen = n->gen;
	m.u.exit.status = status;
	linkmsg_put(&a->cur, &m);
	cur_flush(a);
}

static void
send_out(struct agent *a, struct anode *n, const void *p, size_t len)
{
	struct linkmsg m = {.type = L_OUT, .rank = (uint32_t)n->rank};
	m.u.out.gen = n->gen;
	m.u.out.bytes = p;
	m.u.out.len = len;
	linkmsg_put(&a->cur, &m);
}

static void
send_stats(struct agent *a, struct anode *n)
{
	struct node_stats st;
	struct fabric_ifstats ifs[KH_MAX_IFS];
	struct linkmsg m = {.type = L_STATS, .rank = (uint32_t)n->rank};
	int nif;

	if (a->cur.fd < 0 || !n->running || n->h.cg[0] == '\0' ||
	    node_ct.stats(&a->host, &n->h, &st) < 0)
		return;
	nif = a->fab ? fabric_node_counters(a->fab, n->rank, ifs, KH_MAX_IFS) : 0;
	if (nif < 0)
		nif = 0;
	m.u.stats.gen = n->gen;
	m.u.stats.cpu_ns = st.cpu_ns;
	m.u.stats.mem = st.mem;
	m.u.stats.mem_peak = st.mem_peak;
	m.u.stats.oom_kills = st.oom_kills;
	m.u.stats.nifs = (uint32_t)nif;
	for (int i = 0; i < nif; i++)
		m.u.stats.ifs[i] = (struct linkmsg_if){.slot = (uint32_t)ifs[i].slot,
						       .netid = ifs[i].netid,
						       .rx_bytes = ifs[i].rx_bytes,
						       .tx_bytes = ifs[i].tx_bytes,
						       .rx_packets = ifs[i].rx_packets,
						       .tx_packets = ifs[i].tx_packets};
	linkmsg_put(&a->cur, &m);
}

static void
stats_tick(struct ev *ev, void *arg)
{
	struct agent *a = arg;
	for (int r = 0; r < KH_MAX_NODES; r++)
		if (a->nodes[r])
			send_stats(a, a->nodes[r]);
	cur_flush(a);
	ev_after(ev, AG_STATS_MS, stats_tick, a);
}

/* ---- nodes ---- */

/* Is rank one of this host's nodes?  (The front end says which at hello.) */
static int
own(const struct agent *a, uint32_t rank)
{
	return rank < KH_MAX_NODES && (int)rank >= a->first && (int)rank < a->first + a->count;
}

static struct anode *
node_get(struct agent *a, uint32_t rank)
{
	if (!own(a, rank))
		return NULL;
	if (a->nodes[rank] == NULL) {
		struct anode *n = calloc(1, sizeof(*n));
		if (n == NULL)
			fatal("node");
		n->rank = (int)rank;
		n->h.console = -1;
		n->h.pidfd = -1;
		n->watched_pidfd = -1;
		n->a = a;
		a->nodes[rank] = n;
	}
	return a->nodes[rank];
}

static void
node_ended(struct agent *a, struct anode *n, int status)
{
	char buf[16384];
	ssize_t r;

	while (n->h.console >= 0 && (r = read(n->h.console, buf, sizeof(buf))) > 0)
		if (a->cur.fd >= 0)
			send_out(a, n, buf, (size_t)r);
	if (n->h.console >= 0) {
		ev_unwatch(a->ev, n->h.console);
		close(n->h.console);
		n->h.console = -1;
	}
	if (n->watched_pidfd >= 0)
		ev_unwatch(a->ev, n->watched_pidfd);
	n->watched_pidfd = -1;
	if (n->holds_image)
		imgcache_put(a->images, n->image);
	n->holds_image = 0;
	n->running = n->dying = 0;
	if (a->fab)
		fabric_node_down(a->fab, n->rank);
	send_exit(a, n, status);
	log_info("node %d: ended (status 0x%x)", n->rank, status);
}

static void
console_event(struct ev *ev, int fd, int events, void *arg)
{
	struct anode *n = arg;
	struct agent *a = n->a;
	char buf[16384];
	ssize_t r = read(fd, buf, sizeof(buf));
	(void)events;
	if (r > 0) {
		if (a->cur.fd < 0 || link_pending(&a->cur) > AG_OUT_MAX) {
			a->lost_out += (uint64_t)r;
			return;
		}
		send_out(a, n, buf, (size_t)r);
		cur_flush(a);
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	ev_unwatch(ev, fd);
}

static void
exit_event(struct ev *ev, int fd, int events, void *arg)
{
	struct anode *n = arg;
	int status = 0;
	(void)ev;
	(void)fd;
	(void)events;
	/* the last usage figures, before reaping removes the cgroup */
	send_stats(n->a, n);
	if (node_ct.reap(&n->a->host, &n->h, &status) == 1)
		node_ended(n->a, n, status);
}

static void
node_kill(struct agent *a, struct anode *n)
{
	if (!n->running)
		return;
	send_stats(a, n);
	int rc = node_ct.kill(&a->host, &n->h, 200);
	if (rc == 1)
		node_ended(a, n, n->h.status);
	else
		n->dying = 1;
}

static struct ablob *
blob_find(struct agent *a, const unsigned char *hash)
{
	for (int i = 0; i < a->nblobs; i++)
		if (memcmp(a->blobs[i].hash, hash, 32) == 0)
			return &a->blobs[i];
	return NULL;
}

static int
blob_map(struct agent *a, struct ablob *b, char *err, size_t errlen)
{
	char path[PATH_MAX + 80], hx[65];
	if (b->map)
		return 0;
	hex(b->hash, hx);
	snprintf(path, sizeof(path), "%s/blobs/%s", a->dir, hx);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	void *p = b->len ? mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	close(fd);
	if (b->len && p == MAP_FAILED)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	b->map = p;
	return 0;
}

/* A boot (m: its parsed frame).  -1: not this host's node. */
static int
boot(struct agent *a, const struct linkmsg *m)
{
	uint32_t rank = m->rank, gen = m->u.boot.gen;
	const unsigned char *hash = m->u.boot.hash;
	char why[256], lower[PATH_MAX], scratch[PATH_MAX + 32], facid[16];
	struct anode *n;
	struct ablob *b;

	if ((n = node_get(a, rank)) == NULL)
		return -1;
	if (n->running) {
		send_failed(a, rank, gen, "the node runs already");
		return 0;
	}
	n->gen = gen;
	if (!a->host_ok || !a->has_fac) {
		send_failed(a, rank, gen, "this host cannot run nodes (see khagent's log)");
		return 0;
	}
	if ((b = blob_find(a, hash)) == NULL) {
		send_failed(a, rank, gen, "the ramdisk did not reach this host");
		return 0;
	}
	if (blob_map(a, b, why, sizeof(why)) < 0 ||
	    imgcache_rootfs(a->images, hash, b->map, b->len, lower, sizeof(lower), why,
			    sizeof(why)) < 0) {
		send_failed(a, rank, gen, why);
		return 0;
	}
	memcpy(n->image, hash, 32);
	n->holds_image = 1;
	snprintf(scratch, sizeof(scratch), "%s/run/n%u", a->dir, rank);
	if (mkdir(scratch, 0700) < 0 && errno != EEXIST) {
		snprintf(why, sizeof(why), "%s: %s", scratch, strerror(errno));
		goto fail;
	}
	if (a->fab && fabric_node_config(a->fab, (int)rank, why, sizeof(why)) < 0)
		goto fail;
	if (a->fab)
		fabric_flush(a->fab);
	snprintf(facid, sizeof(facid), "%08x", a->facid);
	struct node_spec spec = {.name = m->u.boot.name,
				 .facility = facid,
				 .rank = (int)rank,
				 .cpu_milli = (int)m->u.boot.cpu_milli,
				 .mem = m->u.boot.mem,
				 .pids = (int)m->u.boot.pids,
				 .lower = lower,
				 .scratch = scratch,
				 .netns_fd = a->fab ? fabric_node_netns(a->fab, (int)rank) : -1,
				 .device = NULL,
				 .env = m->u.boot.env[0] ? m->u.boot.env : NULL};
	if (node_ct.boot(&a->host, &spec, &n->h, why, sizeof(why)) < 0)
		goto fail;
	n->running = 1;
	ev_watch(a->ev, n->h.console, EV_READ, console_event, n);
	if (n->h.pidfd >= 0 && ev_watch(a->ev, n->h.pidfd, EV_READ, exit_event, n) == 0)
		n->watched_pidfd = n->h.pidfd;
	struct linkmsg ok = {.type = L_BOOTED, .rank = rank};
	ok.u.booted.gen = gen;
	ok.u.booted.pid = (uint32_t)n->h.pid;
	linkmsg_put(&a->cur, &ok);
	cur_flush(a);
	return 0;
fail:
	imgcache_put(a->images, n->image);
	n->holds_image = 0;
	if (a->fab)
		fabric_node_down(a->fab, (int)rank);
	send_failed(a, rank, gen, why);
	return 0;
}

/* The bytes of a blob, in order; checked against their hash at the end.
 * -1: out of order, or not the blob being received (a broken front end). */
static int
blob_chunk(struct agent *a, const struct linkmsg *m)
{
	const unsigned char *hash = m->u.blob.hash, *p = m->u.blob.bytes;
	uint64_t total = m->u.blob.total, off = m->u.blob.off;
	size_t n = m->u.blob.len;
	char path[PATH_MAX + 80], tmp[PATH_MAX + 90], hx[65];

	hex(hash, hx);
	snprintf(path, sizeof(path), "%s/blobs/%s", a->dir, hx);
	snprintf(tmp, sizeof(tmp), "%s.part", path);
	if (off == 0) {
		if (a->bfd >= 0)
			close(a->bfd);
		a->bfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		memcpy(a->bhash, hash, 32);
		a->btotal = total;
		a->bgot = 0;
		if (a->bfd < 0)
			log_warn("%s", tmp);
	}
	/* (n <= total - off: linkmsg_parse checked) */
	if (memcmp(hash, a->bhash, 32) != 0 || off != a->bgot || total != a->btotal)
		return -1;
	if (a->bfd >= 0 && pwrite(a->bfd, p, n, (off_t)off) != (ssize_t)n) {
		log_warn("%s", tmp);
		close(a->bfd);
		a->bfd = -1;
	}
	a->bgot += n;
	if (a->bgot < a->btotal)
		return 0;
	/* All there: check it and keep it. */
	int ok = 0;
	if (a->bfd >= 0) {
		unsigned char got[32];
		void *map = total ? mmap(NULL, total, PROT_READ, MAP_PRIVATE, a->bfd, 0) : NULL;
		if (map != MAP_FAILED) {
			crypto_generichash(got, 32, map, total, NULL, 0);
			ok = memcmp(got, hash, 32) == 0;
			if (map)
				munmap(map, total);
		}
		close(a->bfd);
		a->bfd = -1;
	}
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		log_warnx("blob %.16s: %s", hx, ok ? strerror(errno) : "its bytes do not match");
		return 0; /* the boot that needs it fails: "did not reach this host" */
	}
	if (blob_find(a, hash) == NULL && a->nblobs < AG_MAX_BLOBS) {
		a->blobs[a->nblobs++] = (struct ablob){.len = total};
		memcpy(a->blobs[a->nblobs - 1].hash, hash, 32);
	}
	struct linkmsg have = {.type = L_HAVE};
	memcpy(have.u.have.hash, hash, 32);
	linkmsg_put(&a->cur, &have);
	return 0;
}

static int
wire(struct agent *a, const struct linkmsg *m)
{
	uint32_t rank = m->rank, n = m->u.wire.n;
	int netids[LINK_MAX_IFS] = {0};
	char why[256];

	if (!own(a, rank))
		return -1;
	for (uint32_t i = 0; i < n; i++)
		netids[i] = (int)m->u.wire.netid[i];
	if (a->fab == NULL)
		return 0;
	if (fabric_node_wire(a->fab, (int)rank, netids, (int)n, why, sizeof(why)) < 0)
		log_warnx("node %u: wiring: %s", rank, why);
	fabric_flush(a->fab);
	return 0;
}

static int
release(struct agent *a, uint32_t rank)
{
	if (!own(a, rank))
		return -1;
	struct anode *n = a->nodes[rank];
	if (n)
		node_kill(a, n);
	if (a->fab) {
		fabric_node_release(a->fab, (int)rank);
		fabric_flush(a->fab);
		ev_after(a->ev, 1, prep_tick, a);
	}
	return 0;
}

/* Console input for some of this host's nodes: all of them this host's,
 * or none is written to. */
static int
input(struct agent *a, const struct linkmsg *m)
{
	uint32_t len = m->u.input.len;

	for (uint32_t i = 0; i < m->u.input.nranks; i++)
		if (!own(a, linkmsg_input_rank(m, i)))
			return -1;
	for (uint32_t i = 0; i < m->u.input.nranks; i++) {
		struct anode *nd = a->nodes[linkmsg_input_rank(m, i)];
		/* a node that does not read its console loses input, as on khd */
		if (nd && nd->running && nd->h.console >= 0 && len > 0)
			(void)!write(nd->h.console, m->u.input.bytes, len);
	}
	return 0;
}

static void
span(struct agent *a, const struct linkmsg *m)
{
	uint32_t netid = m->u.span.netid, n = m->u.span.n;
	const char *pv[LINK_MAX_PEERS];
	char why[256];

	for (uint32_t i = 0; i < n; i++)
		pv[i] = m->u.span.peer[i];
	if (a->fab == NULL)
		return;
	if (fabric_span(a->fab, (int)netid, pv, (int)n, why, sizeof(why)) < 0)
		log_warnx("domain %u: spanning %u other host%s: %s", netid, n, n == 1 ? "" : "s",
			  why);
}

/* Free nodes get their network namespace in idle time, a few per turn of
 * the loop, as khd's own (machine.c prep_tick), so boots find them made. */
static void
prep_tick(struct ev *ev, void *arg)
{
	struct agent *a = arg;
	char why[256];
	int done = 0;

	for (int r = a->first; a->fab && r < a->first + a->count && done < 16; r++) {
		if (fabric_node_netns(a->fab, r) >= 0)
			continue;
		if (fabric_node_prepare(a->fab, r, why, sizeof(why)) < 0) {
			log_warnx("node %d: network: %s", r, why);
			return;
		}
		done++;
	}
	if (done == 16)
		ev_after(ev, 1, prep_tick, a);
}

/* ---- the facility: made on the first hello ---- */

/* Other hosts' nodes may live on this machine too (examples/cluster.sh):
 * only this host's ranks are its to clear. */
static int
keep_others(void *arg, int rank)
{
	const struct agent *a = arg;
	return rank < a->first || rank >= a->first + a->count;
}

static int
facility_start(struct agent *a, uint32_t facid, uint32_t first, uint32_t count, char *err,
	       size_t errlen)
{
	char fac[16], pin[PATH_MAX + 32];

	if (a->has_fac && (facid != a->facid || (int)first != a->first || (int)count != a->count))
		return seterr(err, errlen, "this host serves facility %08x (nodes %d-%d), not %08x",
			      a->facid, a->first, a->first + a->count - 1, facid);
	if (a->has_fac)
		return 0;
	if (first >= KH_MAX_NODES || count > KH_MAX_NODES - first)
		return seterr(err, errlen, "nodes %u+%u: beyond the facility's %d", first, count,
			      KH_MAX_NODES);
	a->first = (int)first;
	a->count = (int)count;
	snprintf(fac, sizeof(fac), "%08x", facid);
	/* Whatever an earlier agent of this facility left running here is
	 * stopped: the front end boots it again (it is told the node ended). */
	if (a->host_ok)
		cgroup_facility_clear_but(&a->host.cg, fac, keep_others, a);
	snprintf(pin, sizeof(pin), "%s/run/fabric.net", a->dir);
	fabric_unpin(pin);
	a->fab = fabric_new(fac, 1, pin, err, errlen);
	if (a->fab == NULL)
		return -1;
	if (a->host_ok && a->host.uns.on)
		fabric_set_netns_maker(a->fab, userns_fabric_make, userns_fabric_drop, &a->host);
	if (fabric_set_underlay(a->fab, a->ip, 0, err, errlen) < 0) {
		fabric_free(a->fab);
		a->fab = NULL;
		return -1;
	}
	a->facid = facid;
	a->has_fac = 1;
	ev_after(a->ev, 1, prep_tick, a);
	log_info("serving facility %s", fac);
	return 0;
}

_Static_assert(AG_MAX_BLOBS <= LINK_MAX_HAVE, "the blobs held fit an L_WELCOME");

static void
welcome(struct agent *a)
{
	struct linkmsg m = {.type = L_WELCOME};
	struct sbuf nodes, blobs;

	sbuf_init(&nodes);
	sbuf_init(&blobs);
	snprintf(m.u.welcome.name, sizeof(m.u.welcome.name), "%s", a->name);
	for (int r = 0; r < KH_MAX_NODES; r++)
		if (a->nodes[r] && a->nodes[r]->running) {
			struct linkmsg_node nd = {.rank = (uint32_t)r, .gen = a->nodes[r]->gen};
			unsigned char w[LINK_NODE_WIRE];
			memcpy(nd.image, a->nodes[r]->image, 32);
			linkmsg_node_wire(w, &nd);
			sbuf_add(&nodes, w, sizeof(w));
			m.u.welcome.nnodes++;
		}
	for (int i = 0; i < a->nblobs; i++)
		sbuf_add(&blobs, a->blobs[i].hash, 32);
	m.u.welcome.nblobs = (uint32_t)a->nblobs;
	m.u.welcome.nodes = (const unsigned char *)nodes.s;
	m.u.welcome.blobs = (const unsigned char *)blobs.s;
	linkmsg_put(&a->cur, &m);
	sbuf_free(&nodes);
	sbuf_free(&blobs);
}

/* ---- the front end's frames ---- */

/* One frame from the proven front end.  -1: refused (the link ends). */
static int
handle(void *arg, int type, uint32_t rank, const unsigned char *p, size_t len)
{
	struct agent *a = arg;
	struct linkmsg m;
	char why[256];

	a->refused[0] = '\0';
	if (!a->has_fac && type != L_HELLO && type != L_PING) {
		snprintf(a->refused, sizeof(a->refused), "a %s before hello",
			 linkmsg_type_name(type));
		return -1;
	}
	if (linkmsg_parse(LINKMSG_TO_AGENT, type, rank, p, len, &m, a->refused,
			  sizeof(a->refused)) < 0)
		return -1;
	switch (type) {
	case L_HELLO:
		if (facility_start(a, m.u.hello.facid, m.u.hello.first, m.u.hello.count, why,
				   sizeof(why)) < 0) {
			struct linkmsg e = {.type = L_ERROR};
			snprintf(a->refused, sizeof(a->refused), "%s", why);
			snprintf(e.u.error.why, sizeof(e.u.error.why), "%s", why);
			linkmsg_put(&a->cur, &e);
			cur_flush(a);
			return -1;
		}
		welcome(a);
		return 0;
	case L_PING:
		linkmsg_put(&a->cur, &(struct linkmsg){.type = L_PONG});
		return 0;
	case L_PONG:
		return 0;
	case L_BLOB:
		return blob_chunk(a, &m);
	case L_BOOT:
		return boot(a, &m);
	case L_INPUT:
		return input(a, &m);
	case L_KILL:
		if (!own(a, rank))
			return -1;
		if (a->nodes[rank] && a->nodes[rank]->gen == m.u.kill.gen)
			node_kill(a, a->nodes[rank]);
		return 0;
	case L_WIRE:
		return wire(a, &m);
	case L_RELEASE:
		return release(a, rank);
	case L_SPAN:
		span(a, &m);
		return 0;
	case L_ERROR:
		log_warnx("front end: %s", m.u.error.why);
		return -1;
	default: /* L_PROOF: once, before it is the front end */
		return -1;
	}
}

/* What a link_pump of the front end's link ended on: it goes on, or it
 * is closed. */
static void
cur_pumped(struct agent *a, enum link_pump st)
{
	switch (st) {
	case LINK_WAIT:
		cur_flush(a);
		return;
	case LINK_LEFT: /* a send failed: cur_flush closed it */
		return;
	case LINK_BAD:
	case LINK_REFUSED:
		log_warnx("front end: a bad frame (type %d, node %u, %zu bytes%s%s): closed",
			  a->cur.last_type, a->cur.last_rank, a->cur.last_len,
			  st == LINK_BAD  ? ": too long, or of no known type"
			  : a->refused[0] ? ": "
					  : "",
			  st == LINK_REFUSED ? a->refused : "");
		break;
	case LINK_EOF:
	case LINK_ERR:
		log_warnx("front end: went away");
		break;
	}
	ev_unwatch(a->ev, a->cur.fd);
	link_free(&a->cur);
}

static void
cur_event(struct ev *ev, int fd, int events, void *arg)
{
	struct agent *a = arg;
	(void)ev;
	(void)fd;

	if (events & EV_READ)
		cur_pumped(a, link_pump(&a->cur, handle, a));
	else
		cur_flush(a);
}

static void
cand_drop(struct agent *a, const char *why)
{
	if (a->cand.fd < 0)
		return;
	if (why)
		log_warnx("connection refused: %s", why);
	ev_unwatch(a->ev, a->cand.fd);
	link_free(&a->cand);
	a->cand_state = 0;
}

/* The candidate's first frame: its proof of the cluster key.  Proven, its
 * link becomes the front end's (a restarted one replaces the old). */
static int
cand_frame(void *arg, int type, uint32_t rank, const unsigned char *p, size_t len)
{
	struct agent *a = arg;
	struct linkmsg m, proven = {.type = L_PROVEN};
	char why[256];

	if (type != L_PROOF ||
	    linkmsg_parse(LINKMSG_TO_AGENT, type, rank, p, len, &m, why, sizeof(why)) < 0) {
		cand_drop(a, "no proof of the cluster key");
		return -1;
	}
	if (link_check(a->key, "front", a->cand_nonce, m.u.proof.mac) < 0) {
		cand_drop(a, "wrong cluster key");
		return -1;
	}
	link_prove(a->key, "agent", m.u.proof.nonce, proven.u.proven.mac);
	if (a->cur.fd >= 0) {
		log_info("front end: a new connection replaces the old one");
		ev_unwatch(a->ev, a->cur.fd);
		link_free(&a->cur);
	}
	ev_unwatch(a->ev, a->cand.fd);
	a->cur = a->cand;
	a->cand.fd = -1;
	sbuf_init(&a->cand.in);
	sbuf_init(&a->cand.out);
	a->cand_state = 2;
	linkmsg_put(&a->cur, &proven);
	log_info("front end connected");
	return 0;
}

/* A connection proves it holds the cluster key before it is heard. */
static void
cand_event(struct ev *ev, int fd, int events, void *arg)
{
	struct agent *a = arg;
	(void)ev;
	(void)fd;
	(void)events;

	enum link_pump st = link_pump(&a->cand, cand_frame, a);
	if (st == LINK_WAIT)
		return;
	if (st != LINK_LEFT) {
		cand_drop(a, "no proof of the cluster key");
		return;
	}
	/* Proven: the frames that came with the proof.  (Refused: dropped.) */
	if (a->cand_state == 2) {
		a->cand_state = 0;
		cur_pumped(a, link_dispatch(&a->cur, handle, a));
	}
}

static void
accept_event(struct ev *ev, int fd, int events, void *arg)
{
	struct agent *a = arg;
	(void)events;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	cand_drop(a, a->cand.fd >= 0 ? "another connection came first" : NULL);
	int one = 1;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	link_init(&a->cand, c);
	randombytes_buf(a->cand_nonce, LINK_NONCE);
	struct linkmsg m = {.type = L_CHALLENGE};
	memcpy(m.u.challenge.nonce, a->cand_nonce, LINK_NONCE);
	linkmsg_put(&a->cand, &m);
	link_flush(&a->cand);
	a->cand_state = 1;
	ev_watch(ev, c, EV_READ, cand_event, a);
}

static void
sig_event(struct ev *ev, int fd, int events, void *arg)
{
	struct agent *a = arg;
	struct signalfd_siginfo si;
	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			a->stop = 1;
			ev_stop(ev);
		}
}

static void
usage(void)
{
	fprintf(stderr, "usage: khagent -d DIR --listen IP[:PORT] --key FILE [--name NAME] [-v]\n");
}

static int
parse_args(struct agent *a, int argc, char **argv, int *verbose, char *keyfile, size_t klen)
{
	const char *listen = NULL;
	keyfile[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(o, "-v") == 0) {
			(*verbose)++;
			continue;
		}
		if (v == NULL)
			goto bad;
		if (strcmp(o, "-d") == 0)
			snprintf(a->dir, sizeof(a->dir), "%s", v);
		else if (strcmp(o, "--listen") == 0)
			listen = v;
		else if (strcmp(o, "--key") == 0)
			snprintf(keyfile, klen, "%s", v);
		else if (strcmp(o, "--name") == 0)
			snprintf(a->name, sizeof(a->name), "%s", v);
		else
			goto bad;
		i++;
	}
	if (!a->dir[0] || !listen || !keyfile[0])
		goto bad;
	const char *colon = strrchr(listen, ':');
	size_t iplen = colon ? (size_t)(colon - listen) : strlen(listen);
	struct in_addr ia;
	uint64_t port = LINK_PORT;
	if (iplen >= sizeof(a->ip) || (colon && parse_uint(colon + 1, 1, 65535, &port) < 0)) {
		fprintf(stderr, "khagent: --listen takes IP[:PORT] (IPv4, port 1..65535)\n");
		return -1;
	}
	memcpy(a->ip, listen, iplen);
	a->ip[iplen] = '\0';
	if (inet_pton(AF_INET, a->ip, &ia) != 1) {
		fprintf(stderr, "khagent: --listen takes IP[:PORT] (IPv4, port 1..65535)\n");
		return -1;
	}
	a->port = (int)port;
	if (!a->name[0] && gethostname(a->name, sizeof(a->name) - 1) < 0)
		snprintf(a->name, sizeof(a->name), "host");
	if (!valid_name(a->name)) {
		fprintf(stderr, "khagent: --name: letters, digits, '.', '-' and '_' only\n");
		return -1;
	}
	return 0;
bad:
	usage();
	return -1;
}

static int
listen_on(struct agent *a, char *err, size_t errlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
	int one = 1;
	inet_pton(AF_INET, a->ip, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return seterr(err, errlen, "%s:%d: %s", a->ip, a->port, strerror(e));
	}
	a->lfd = fd;
	return 0;
}

static void
load_blobs(struct agent *a)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/blobs", a->dir);
	mkdir(path, 0700);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL && a->nblobs < AG_MAX_BLOBS) {
		unsigned char h[32];
		size_t got = 0;
		struct stat st;
		char full[PATH_MAX + 300];
		if (strlen(e->d_name) != 64 ||
		    sodium_hex2bin(h, 32, e->d_name, 64, NULL, &got, NULL) != 0 || got != 32)
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
		if (stat(full, &st) < 0)
			continue;
		a->blobs[a->nblobs] = (struct ablob){.len = (size_t)st.st_size};
		memcpy(a->blobs[a->nblobs++].hash, h, 32);
	}
	if (d)
		closedir(d);
}

int
agent_main(int argc, char **argv)
{
	static struct agent ag;
	struct agent *a = &ag;
	char keyfile[PATH_MAX], err[512], path[PATH_MAX + 32];
	int verbose = 0;

	a->lfd = a->sigfd = a->bfd = -1;
	a->cur.fd = a->cand.fd = -1;
	if (parse_args(a, argc, argv, &verbose, keyfile, sizeof(keyfile)) < 0)
		return 2;
	if (link_key_load(keyfile, a->key, err, sizeof(err)) < 0) {
		fprintf(stderr, "khagent: %s\n", err);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "khagent: libsodium does not start\n");
		return 1;
	}
	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "khagent: %s: %s\n", a->dir, strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/khagent.log", a->dir);
	log_init("khagent", path, verbose);
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	a->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	/* The spawner first, while this process is small. */
	if (node_host_init(&a->host, 0, NULL, err, sizeof(err)) < 0)
		log_warnx("container nodes cannot boot on this host: %s", err);
	else
		a->host_ok = 1;
	snprintf(path, sizeof(path), "%s/run", a->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/images", a->dir);
	if (dir_tmpfs(path, "kh-images", err, sizeof(err)) < 0 ||
	    (a->images = imgcache_new(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "khagent: %s\n", err);
		return 1;
	}
	load_blobs(a);
	if (listen_on(a, err, sizeof(err)) < 0) {
		fprintf(stderr, "khagent: %s\n", err);
		return 1;
	}
	a->ev = ev_new();
	ev_watch(a->ev, a->lfd, EV_READ, accept_event, a);
	ev_watch(a->ev, a->sigfd, EV_READ, sig_event, a);
	ev_after(a->ev, AG_STATS_MS, stats_tick, a);
	fprintf(stderr, "khagent: %s listening on %s:%d\n", a->name, a->ip, a->port);
	log_info("%s listening on %s:%d", a->name, a->ip, a->port);
	ev_run(a->ev);

	/* Stopping: the nodes stop with the agent. */
	log_info("stopping");
	for (int r = 0; r < KH_MAX_NODES; r++)
		if (a->nodes[r]) {
			if (a->nodes[r]->running)
				node_ct.kill(&a->host, &a->nodes[r]->h, 1000);
			if (a->nodes[r]->h.console >= 0)
				close(a->nodes[r]->h.console);
			free(a->nodes[r]);
		}
	if (a->fab)
		fabric_free(a->fab);
	if (a->host_ok) {
		char fac[16];
		snprintf(fac, sizeof(fac), "%08x", a->facid);
		if (a->has_fac)
			cgroup_facility_clear_but(&a->host.cg, fac, keep_others, a);
		node_host_close(&a->host);
	}
	imgcache_gc(a->images, err, sizeof(err));
	imgcache_free(a->images);
	for (int i = 0; i < a->nblobs; i++)
		if (a->blobs[i].map)
			munmap(a->blobs[i].map, a->blobs[i].len);
	snprintf(path, sizeof(path), "%s/images", a->dir);
	umount2(path, MNT_DETACH);
	if (a->cur.fd >= 0)
		link_free(&a->cur);
	if (a->cand.fd >= 0)
		link_free(&a->cand);
	close(a->lfd);
	ev_free(a->ev);
	log_close();
	return 0;
}
