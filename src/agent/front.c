/* front: the front end's links to its hosts' agents (front.h). */
#include "agent/front.h"
#include "agent/link.h"
#include "agent/linkmsg.h"
#include "allocator/facility.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(FRONT_MAX_IFS == LINK_MAX_IFS, "an L_STATS's interfaces fit front_stats");
_Static_assert(KH_MAX_HOSTS - 1 <= LINK_MAX_PEERS, "a host's peers fit an L_SPAN");
_Static_assert(KH_MAX_NODES <= LINK_MAX_RANKS, "a facility's ranks fit the link's");

enum { H_IDLE, H_CONNECTING, H_CHALLENGED, H_PROVING, H_HELLO, H_UP };

#define FH_MAX_HAVE LINK_MAX_HAVE

struct fhost {
	struct front *f;
	int idx;
	char addr[128], ip[64];
	int port, first, count;
	int st;
	struct link lk;
	unsigned char nonce[LINK_NONCE];
	uint64_t last_rx, since;	     /* ms */
	unsigned char have[FH_MAX_HAVE][32]; /* blobs it holds or was sent */
	int nhave;
	/* the last frame queued, if an L_INPUT whose ranks may grow */
	size_t in_at, in_bytes_at, in_len;
	int in_open;
	uint64_t sent;
	char name[64];
	char refused[256]; /* why the last frame was refused */
};

struct front {
	struct ev *ev;
	unsigned char key[32];
	uint32_t facid;
	const struct front_ops *ops;
	void *arg;
	struct fhost *h;
	int nh, caph;
	uint64_t timer;
};

static uint64_t
ms_now(void)
{
	return now_ns() / 1000000;
}

static void host_event(struct ev *ev, int fd, int events, void *arg);

static void
host_down(struct fhost *h, const char *why)
{
	int was_up = h->st == H_UP;
	if (h->lk.fd >= 0) {
		ev_unwatch(h->f->ev, h->lk.fd);
		link_free(&h->lk);
	}
	h->lk.fd = -1;
	h->st = H_IDLE;
	h->in_open = 0;
	h->nhave = 0;
	h->since = ms_now();
	if (was_up) {
		log_warnx("host %s (%s): lost: %s", h->name, h->addr, why);
		h->f->ops->lost(h->f->arg, h->idx, why);
	} else {
		log_debug("host %s: %s", h->addr, why);
	}
}

static void
flush(struct fhost *h)
{
	if (h->lk.fd < 0)
		return;
	h->in_open = 0; /* what starts to go can no longer grow */
	size_t before = link_pending(&h->lk);
	int rc = link_flush(&h->lk);
	if (rc < 0) {
		host_down(h, "the link broke");
		return;
	}
	h->sent += before - link_pending(&h->lk);
	ev_watch(h->f->ev, h->lk.fd, rc == 0 ? EV_READ | EV_WRITE : EV_READ, host_event, h);
}

static void
dial(struct fhost *h)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
	int one = 1;
	inet_pton(AF_INET, h->ip, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return;
	}
	link_init(&h->lk, fd);
	h->st = H_CONNECTING;
	h->since = h->last_rx = ms_now();
	ev_watch(h->f->ev, fd, EV_READ | EV_WRITE, host_event, h);
}

static int
knows(struct fhost *h, const unsigned char *hash)
{
	for (int i = 0; i < h->nhave; i++)
		if (memcmp(h->have[i], hash, 32) == 0)
			return 1;
	return 0;
}

static void
learn(struct fhost *h, const unsigned char *hash)
{
	if (knows(h, hash))
		return;
	if (h->nhave == FH_MAX_HAVE) { /* forget the oldest: at worst, sent again */
		memmove(h->have[0], h->have[1], (FH_MAX_HAVE - 1) * 32);
		h->nhave--;
	}
	memcpy(h->have[h->nhave++], hash, 32);
}

static int
welcome(struct fhost *h, const struct linkmsg *m)
{
	uint32_t n = m->u.welcome.nnodes;
	struct front_running *run = calloc(n ? n : 1, sizeof(*run));

	if (run == NULL)
		fatal("front");
	for (uint32_t i = 0; i < n; i++) {
		struct linkmsg_node nd;
		linkmsg_welcome_node(m, i, &nd);
		run[i].rank = (int)nd.rank;
		run[i].gen = nd.gen;
		memcpy(run[i].image, nd.image, 32);
	}
	for (uint32_t i = 0; i < m->u.welcome.nblobs; i++)
		learn(h, m->u.welcome.blobs + (size_t)i * 32);
	snprintf(h->name, sizeof(h->name), "%s", m->u.welcome.name);
	h->st = H_UP;
	log_info("host %s (%s): up, %u node%s running", h->name, h->addr, n, n == 1 ? "" : "s");
	h->f->ops->up(h->f->arg, h->idx, h->name, run, (int)n);
	free(run);
	return 0;
}

static void
stats(struct fhost *h, const struct linkmsg *m)
{
	struct front_stats s;
	memset(&s, 0, sizeof(s));
	s.st.cpu_ns = m->u.stats.cpu_ns;
	s.st.mem = m->u.stats.mem;
	s.st.mem_peak = m->u.stats.mem_peak;
	s.st.oom_kills = m->u.stats.oom_kills;
	for (uint32_t i = 0; i < m->u.stats.nifs; i++) {
		const struct linkmsg_if *x = &m->u.stats.ifs[i];
		s.ifs[i] = (struct fabric_ifstats){.slot = (int)x->slot,
						   .netid = x->netid,
						   .rx_bytes = x->rx_bytes,
						   .tx_bytes = x->tx_bytes,
						   .rx_packets = x->rx_packets,
						   .tx_packets = x->tx_packets};
	}
	s.nifs = (int)m->u.stats.nifs;
	h->f->ops->stats(h->f->arg, h->idx, (int)m->rank, m->u.stats.gen, &s);
}

/* One frame from an agent that proved itself.  -1: it makes no sense. */
static int
frame(struct fhost *h, int type, uint32_t rank, const unsigned char *p, size_t len)
{
	struct front *f = h->f;
	struct linkmsg m;

	if (type != L_WELCOME && type != L_PONG && type != L_PING && type != L_ERROR &&
	    h->st != H_UP)
		return -1;
	if (rank >= LINK_MAX_RANKS)
		return -1;
	if (linkmsg_parse(LINKMSG_TO_FRONT, type, rank, p, len, &m, h->refused,
			  sizeof(h->refused)) < 0)
		return -1;
	switch (type) {
	case L_WELCOME:
		return h->st == H_HELLO ? welcome(h, &m) : -1;
	case L_PING:
		h->in_open = 0;
		linkmsg_put(&h->lk, &(struct linkmsg){.type = L_PONG});
		return 0;
	case L_PONG:
		return 0;
	case L_HAVE:
		learn(h, m.u.have.hash);
		return 0;
	case L_BOOTED:
		f->ops->booted(f->arg, h->idx, (int)rank, m.u.booted.gen);
		return 0;
	case L_FAILED:
		f->ops->failed(f->arg, h->idx, (int)rank, m.u.failed.gen, m.u.failed.why);
		return 0;
	case L_OUT:
		f->ops->output(f->arg, h->idx, (int)rank, m.u.out.gen, m.u.out.bytes, m.u.out.len);
		return 0;
	case L_EXIT:
		f->ops->exited(f->arg, h->idx, (int)rank, m.u.exit.gen, m.u.exit.status);
		return 0;
	case L_STATS:
		stats(h, &m);
		return 0;
	case L_ERROR:
		log_warnx("host %s: the agent says: %s", h->addr, m.u.error.why);
		return -1;
	default:
		return -1;
	}
}

/* The agent's challenge, answered; then its proof, checked. */
static int
handshake(struct fhost *h, int type, const unsigned char *p, size_t len)
{
	struct linkmsg m, out;

	if (linkmsg_parse(LINKMSG_TO_FRONT, type, 0, p, len, &m, h->refused, sizeof(h->refused)) <
	    0)
		return -1;
	if (h->st == H_CHALLENGED && type == L_CHALLENGE) {
		out = (struct linkmsg){.type = L_PROOF};
		link_prove(h->f->key, "front", m.u.challenge.nonce, out.u.proof.mac);
		randombytes_buf(h->nonce, LINK_NONCE);
		memcpy(out.u.proof.nonce, h->nonce, LINK_NONCE);
		linkmsg_put(&h->lk, &out);
		h->st = H_PROVING;
		return 0;
	}
	if (h->st == H_PROVING && type == L_PROVEN) {
		if (link_check(h->f->key, "agent", h->nonce, m.u.proven.mac) < 0) {
			log_warnx("host %s: its agent does not hold the cluster key", h->addr);
			return -1;
		}
		out = (struct linkmsg){.type = L_HELLO};
		out.u.hello.facid = h->f->facid;
		out.u.hello.first = (uint32_t)h->first;
		out.u.hello.count = (uint32_t)h->count;
		linkmsg_put(&h->lk, &out);
		h->st = H_HELLO;
		return 0;
	}
	if (type == L_ERROR)
		log_warnx("host %s: the agent says: %s", h->addr, m.u.error.why);
	return -1;
}

static int
host_frame(void *arg, int type, uint32_t rank, const unsigned char *p, size_t len)
{
	struct fhost *h = arg;
	h->refused[0] = '\0';
	return h->st < H_HELLO ? handshake(h, type, p, len) : frame(h, type, rank, p, len);
}

static void
host_event(struct ev *ev, int fd, int events, void *arg)
{
	struct fhost *h = arg;
	(void)ev;

	if (h->st == H_CONNECTING) {
		int e = 0;
		socklen_t sl = sizeof(e);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0 || e != 0) {
			host_down(h, e ? strerror(e) : "connect failed");
			return;
		}
		h->st = H_CHALLENGED;
	}
	if (events & EV_READ) {
		uint64_t rx = h->lk.rx;
		enum link_pump st = link_pump(&h->lk, host_frame, h);
		if (st == LINK_LEFT)
			return; /* an op dropped it */
		if (h->lk.rx != rx)
			h->last_rx = ms_now();
		switch (st) {
		case LINK_REFUSED: {
			char why[320];
			snprintf(why, sizeof(why), "the agent sent what makes no sense%s%s%s",
				 h->refused[0] ? " (" : ", or was refused", h->refused,
				 h->refused[0] ? ")" : "");
			host_down(h, why);
			return;
		}
		case LINK_BAD:
			host_down(h, "a frame too long or of no known type");
			return;
		case LINK_EOF:
			host_down(h, "the agent closed the link");
			return;
		case LINK_ERR:
			host_down(h, strerror(errno));
			return;
		default:
			break;
		}
	}
	flush(h);
}

static void
tick(struct ev *ev, void *arg)
{
	struct front *f = arg;
	uint64_t now = ms_now();
	for (int i = 0; i < f->nh; i++) {
		struct fhost *h = &f->h[i];
		if (h->st == H_IDLE) {
			if (now - h->since >= FRONT_REDIAL_MS)
				dial(h);
			continue;
		}
		if (now - h->last_rx >= FRONT_LEASE_MS) {
			host_down(h, h->st == H_UP ? "its lease expired (no answer to pings)"
						   : "no answer while connecting");
			continue;
		}
		if (h->st == H_UP) {
			linkmsg_put(&h->lk, &(struct linkmsg){.type = L_PING});
			h->in_open = 0;
			flush(h);
		}
	}
	f->timer = ev_after(ev, FRONT_PING_MS, tick, f);
}

struct front *
front_new(struct ev *ev, const unsigned char key[32], uint32_t facid, const struct front_ops *ops,
	  void *arg)
{
	struct front *f = calloc(1, sizeof(*f));
	if (f == NULL)
		fatal("front");
	f->ev = ev;
	memcpy(f->key, key, 32);
	f->facid = facid;
	f->ops = ops;
	f->arg = arg;
	return f;
}

void
front_free(struct front *f)
{
	if (f == NULL)
		return;
	if (f->timer)
		ev_cancel(f->ev, f->timer);
	for (int i = 0; i < f->nh; i++)
		if (f->h[i].lk.fd >= 0) {
			ev_unwatch(f->ev, f->h[i].lk.fd);
			link_free(&f->h[i].lk);
		}
	free(f->h);
	sodium_memzero(f->key, sizeof(f->key));
	free(f);
}

int
front_host_add(struct front *f, const char *addr, int first, int count, char *err, size_t errlen)
{
	const char *colon = strrchr(addr, ':');
	struct in_addr ia;
	uint64_t port;
	char ip[64];

	if (colon == NULL || (size_t)(colon - addr) >= sizeof(ip) ||
	    parse_uint(colon + 1, 1, 65535, &port) < 0)
		return seterr(err, errlen, "%s: a host's address is IP:PORT", addr);
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	if (inet_pton(AF_INET, ip, &ia) != 1)
		return seterr(err, errlen, "%s: a host's address is IP:PORT (IPv4)", addr);
	if (f->nh == f->caph) {
		f->caph = f->caph ? 2 * f->caph : 8;
		f->h = realloc(f->h, (size_t)f->caph * sizeof(*f->h));
		if (f->h == NULL)
			fatal("front");
	}
	struct fhost *h = &f->h[f->nh];
	memset(h, 0, sizeof(*h));
	h->f = f;
	h->idx = f->nh;
	h->lk.fd = -1;
	snprintf(h->addr, sizeof(h->addr), "%s", addr);
	snprintf(h->ip, sizeof(h->ip), "%s", ip);
	snprintf(h->name, sizeof(h->name), "%s", addr);
	h->port = (int)port;
	h->first = first;
	h->count = count;
	return f->nh++;
}

void
front_start(struct front *f)
{
	/* The ev callbacks hold pointers into f->h: no more hosts from here. */
	for (int i = 0; i < f->nh; i++)
		dial(&f->h[i]);
	f->timer = ev_after(f->ev, FRONT_PING_MS, tick, f);
}

int
front_host_up(const struct front *f, int host)
{
	return host >= 0 && host < f->nh && f->h[host].st == H_UP;
}

const char *
front_host_ip(const struct front *f, int host)
{
	return host >= 0 && host < f->nh ? f->h[host].ip : "";
}

uint64_t
front_sent(const struct front *f, int host)
{
	return host >= 0 && host < f->nh ? f->h[host].sent + link_pending(&f->h[host].lk) : 0;
}

static struct fhost *
up(struct front *f, int host)
{
	if (host < 0 || host >= f->nh || f->h[host].st != H_UP)
		return NULL;
	f->h[host].in_open = 0; /* any frame but input closes the input frame */
	return &f->h[host];
}

void
front_boot(struct front *f, int host, const struct front_boot *b, const unsigned char hash[32],
	   const void *data, size_t len)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	if (!knows(h, hash)) {
		struct linkmsg m = {.type = L_BLOB};
		memcpy(m.u.blob.hash, hash, 32);
		m.u.blob.total = len;
		for (size_t off = 0; off < len || off == 0; off += LINK_CHUNK) {
			m.u.blob.off = off;
			m.u.blob.bytes = (const unsigned char *)data + off;
			m.u.blob.len = len - off < LINK_CHUNK ? len - off : LINK_CHUNK;
			linkmsg_put(&h->lk, &m);
			if (len == 0)
				break;
		}
		learn(h, hash);
	}
	struct linkmsg m = {.type = L_BOOT, .rank = (uint32_t)b->rank};
	m.u.boot.gen = b->gen;
	m.u.boot.cpu_milli = (uint32_t)b->cpu_milli;
	m.u.boot.mem = b->mem;
	m.u.boot.pids = (uint32_t)b->pids;
	memcpy(m.u.boot.hash, hash, 32);
	snprintf(m.u.boot.name, sizeof(m.u.boot.name), "%s", b->name);
	snprintf(m.u.boot.env, sizeof(m.u.boot.env), "%s", b->env ? b->env : "");
	linkmsg_put(&h->lk, &m);
	flush(h);
}

void
front_input(struct front *f, int host, int rank, const void *p, size_t n)
{
	if (host < 0 || host >= f->nh || f->h[host].st != H_UP || n == 0)
		return;
	struct fhost *h = &f->h[host];
	/* The same bytes for another node of this host: one more rank on the
	 * frame queued last, if nothing was queued after it. */
	if (h->in_open && h->in_len == n && memcmp(h->lk.out.s + h->in_bytes_at, p, n) == 0 &&
	    (h->lk.out.len - h->in_bytes_at - n) / 4 < LINK_MAX_RANKS &&
	    h->lk.out.len - h->in_at + 4 <= LINK_HDR + LINK_PAYLOAD_MAX) {
		put_u32(&h->lk, (uint32_t)rank);
		link_end(&h->lk, h->in_at);
		return; /* sent when the loop comes round (flush below ran already) */
	}
	struct linkmsg m = {.type = L_INPUT};
	unsigned char r[4];
	link_set32(r, (uint32_t)rank);
	m.u.input.bytes = p;
	m.u.input.len = (uint32_t)n;
	m.u.input.ranks = r;
	m.u.input.nranks = 1;
	size_t at = linkmsg_put(&h->lk, &m);
	h->in_bytes_at = at + LINK_HDR + 4; /* the frame's ranks follow its bytes */
	h->in_at = at;
	h->in_len = n;
	h->in_open = 1;
	/* Not flushed at once: the other nodes of this broadcast join the
	 * frame; the write waits for the loop (EV_WRITE). */
	ev_watch(f->ev, h->lk.fd, EV_READ | EV_WRITE, host_event, h);
}

void
front_kill(struct front *f, int host, int rank, uint32_t gen)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	struct linkmsg m = {.type = L_KILL, .rank = (uint32_t)rank};
	m.u.kill.gen = gen;
	linkmsg_put(&h->lk, &m);
	flush(h);
}

void
front_wire(struct front *f, int host, int rank, const int *netids, int n)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	struct linkmsg m = {.type = L_WIRE, .rank = (uint32_t)rank};
	m.u.wire.n = (uint32_t)(n < LINK_MAX_IFS ? n : LINK_MAX_IFS);
	for (uint32_t i = 0; i < m.u.wire.n; i++)
		m.u.wire.netid[i] = (uint32_t)netids[i];
	linkmsg_put(&h->lk, &m);
	flush(h);
}

void
front_release(struct front *f, int host, int rank)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	linkmsg_put(&h->lk, &(struct linkmsg){.type = L_RELEASE, .rank = (uint32_t)rank});
	flush(h);
}

void
front_span(struct front *f, int host, int netid, const int *peers, int n)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	struct linkmsg m = {.type = L_SPAN};
	m.u.span.netid = (uint32_t)netid;
	m.u.span.n = (uint32_t)(n < LINK_MAX_PEERS ? n : LINK_MAX_PEERS);
	for (uint32_t i = 0; i < m.u.span.n; i++)
		snprintf(m.u.span.peer[i], sizeof(m.u.span.peer[i]), "%s",
			 front_host_ip(f, peers[i]));
	linkmsg_put(&h->lk, &m);
	flush(h);
}
