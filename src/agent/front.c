/* front: the front end's links to its hosts' agents (front.h). */
#include "agent/front.h"
#include "agent/link.h"
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

enum { H_IDLE, H_CONNECTING, H_CHALLENGED, H_PROVING, H_HELLO, H_UP };

#define FH_MAX_HAVE 256

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
welcome(struct fhost *h, struct lget *g)
{
	uint32_t n, m;
	struct front_running *run = NULL;
	unsigned char hash[32];

	if (get_str(g, h->name, sizeof(h->name)) < 0 || !valid_name(h->name) ||
	    get_u32(g, &n) < 0 || n > LINK_MAX_RANKS)
		return -1;
	run = calloc(n ? n : 1, sizeof(*run));
	if (run == NULL)
		fatal("front");
	for (uint32_t i = 0; i < n; i++) {
		uint32_t r;
		if (get_u32(g, &r) < 0 || r >= LINK_MAX_RANKS || get_u32(g, &run[i].gen) < 0 ||
		    get_bytes(g, run[i].image, 32) < 0) {
			free(run);
			return -1;
		}
		run[i].rank = (int)r;
	}
	if (get_u32(g, &m) < 0 || m > FH_MAX_HAVE) {
		free(run);
		return -1;
	}
	for (uint32_t i = 0; i < m; i++) {
		if (get_bytes(g, hash, 32) < 0) {
			free(run);
			return -1;
		}
		learn(h, hash);
	}
	h->st = H_UP;
	log_info("host %s (%s): up, %u node%s running", h->name, h->addr, n, n == 1 ? "" : "s");
	h->f->ops->up(h->f->arg, h->idx, h->name, run, (int)n);
	free(run);
	return 0;
}

static int
stats(struct fhost *h, uint32_t rank, struct lget *g)
{
	struct front_stats s;
	uint32_t gen, n;
	memset(&s, 0, sizeof(s));
	if (get_u32(g, &gen) < 0 || get_u64(g, &s.st.cpu_ns) < 0 || get_u64(g, &s.st.mem) < 0 ||
	    get_u64(g, &s.st.mem_peak) < 0 || get_u64(g, &s.st.oom_kills) < 0 ||
	    get_u32(g, &n) < 0 || n > FRONT_MAX_IFS)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t slot;
		struct fabric_ifstats *x = &s.ifs[i];
		if (get_u32(g, &slot) < 0 || slot >= FRONT_MAX_IFS || get_u32(g, &x->netid) < 0 ||
		    get_u64(g, &x->rx_bytes) < 0 || get_u64(g, &x->tx_bytes) < 0 ||
		    get_u64(g, &x->rx_packets) < 0 || get_u64(g, &x->tx_packets) < 0)
			return -1;
		x->slot = (int)slot;
	}
	s.nifs = (int)n;
	h->f->ops->stats(h->f->arg, h->idx, (int)rank, gen, &s);
	return 0;
}

/* One frame from an agent that proved itself.  -1: it makes no sense. */
static int
frame(struct fhost *h, int type, uint32_t rank, const unsigned char *p, size_t len)
{
	struct front *f = h->f;
	struct lget g;
	uint32_t gen, v;
	char why[512];
	unsigned char hash[32];

	lget_init(&g, p, len);
	if (type != L_WELCOME && type != L_PONG && type != L_PING && type != L_ERROR &&
	    h->st != H_UP)
		return -1;
	if (rank >= LINK_MAX_RANKS)
		return -1;
	switch (type) {
	case L_WELCOME:
		return h->st == H_HELLO ? welcome(h, &g) : -1;
	case L_PING:
		h->in_open = 0;
		link_end(&h->lk, link_begin(&h->lk, L_PONG, 0));
		return 0;
	case L_PONG:
		return 0;
	case L_HAVE:
		if (get_bytes(&g, hash, 32) < 0)
			return -1;
		learn(h, hash);
		return 0;
	case L_BOOTED:
		if (get_u32(&g, &gen) < 0 || get_u32(&g, &v) < 0)
			return -1;
		f->ops->booted(f->arg, h->idx, (int)rank, gen);
		return 0;
	case L_FAILED:
		if (get_u32(&g, &gen) < 0 || get_str(&g, why, sizeof(why)) < 0)
			return -1;
		f->ops->failed(f->arg, h->idx, (int)rank, gen, why);
		return 0;
	case L_OUT: {
		size_t n;
		if (get_u32(&g, &gen) < 0)
			return -1;
		const unsigned char *b = get_rest(&g, &n);
		f->ops->output(f->arg, h->idx, (int)rank, gen, b, n);
		return 0;
	}
	case L_EXIT:
		if (get_u32(&g, &gen) < 0 || get_u32(&g, &v) < 0)
			return -1;
		f->ops->exited(f->arg, h->idx, (int)rank, gen, (int)v);
		return 0;
	case L_STATS:
		return stats(h, rank, &g);
	case L_ERROR:
		if (get_str(&g, why, sizeof(why)) == 0)
			log_warnx("host %s: the agent says: %s", h->addr, why);
		return -1;
	default:
		return -1;
	}
}

/* The agent's challenge, answered; then its proof, checked. */
static int
handshake(struct fhost *h, int type, const unsigned char *p, size_t len)
{
	unsigned char mac[32];

	if (h->st == H_CHALLENGED && type == L_CHALLENGE && len == LINK_NONCE) {
		link_prove(h->f->key, "front", p, mac);
		randombytes_buf(h->nonce, LINK_NONCE);
		size_t at = link_begin(&h->lk, L_PROOF, 0);
		put_bytes(&h->lk, mac, 32);
		put_bytes(&h->lk, h->nonce, LINK_NONCE);
		link_end(&h->lk, at);
		h->st = H_PROVING;
		return 0;
	}
	if (h->st == H_PROVING && type == L_PROVEN && len == 32) {
		if (link_check(h->f->key, "agent", h->nonce, p) < 0) {
			log_warnx("host %s: its agent does not hold the cluster key", h->addr);
			return -1;
		}
		size_t at = link_begin(&h->lk, L_HELLO, 0);
		put_u32(&h->lk, h->f->facid);
		put_u32(&h->lk, (uint32_t)h->first);
		put_u32(&h->lk, (uint32_t)h->count);
		link_end(&h->lk, at);
		h->st = H_HELLO;
		return 0;
	}
	if (type == L_ERROR) {
		struct lget g;
		char why[256];
		lget_init(&g, p, len);
		if (get_str(&g, why, sizeof(why)) == 0)
			log_warnx("host %s: the agent says: %s", h->addr, why);
	}
	return -1;
}

static void
host_event(struct ev *ev, int fd, int events, void *arg)
{
	struct fhost *h = arg;
	const unsigned char *p;
	size_t len;
	uint32_t rank;
	int type, rc;
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
		ssize_t r = link_read(&h->lk);
		if (r > 0)
			h->last_rx = ms_now();
		while ((rc = link_next(&h->lk, &type, &rank, &p, &len)) == 1) {
			int bad = h->st < H_HELLO ? handshake(h, type, p, len)
						  : frame(h, type, rank, p, len);
			if (h->lk.fd < 0)
				return; /* an op dropped it */
			if (bad < 0) {
				host_down(h, "the agent sent what makes no sense, or was refused");
				return;
			}
		}
		if (rc < 0) {
			host_down(h, "a frame too long or of no known type");
			return;
		}
		if (r == 0 || r == -1) {
			host_down(h, r == 0 ? "the agent closed the link" : strerror(errno));
			return;
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
			link_end(&h->lk, link_begin(&h->lk, L_PING, 0));
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
		for (size_t off = 0; off < len || off == 0; off += LINK_CHUNK) {
			size_t n = len - off < LINK_CHUNK ? len - off : LINK_CHUNK;
			size_t at = link_begin(&h->lk, L_BLOB, 0);
			put_bytes(&h->lk, hash, 32);
			put_u64(&h->lk, len);
			put_u64(&h->lk, off);
			put_bytes(&h->lk, (const unsigned char *)data + off, n);
			link_end(&h->lk, at);
			if (len == 0)
				break;
		}
		learn(h, hash);
	}
	size_t at = link_begin(&h->lk, L_BOOT, (uint32_t)b->rank);
	put_u32(&h->lk, b->gen);
	put_u32(&h->lk, (uint32_t)b->cpu_milli);
	put_u64(&h->lk, b->mem);
	put_u32(&h->lk, (uint32_t)b->pids);
	put_bytes(&h->lk, hash, 32);
	put_str(&h->lk, b->name);
	put_str(&h->lk, b->env ? b->env : "");
	link_end(&h->lk, at);
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
	size_t at = link_begin(&h->lk, L_INPUT, 0);
	put_u32(&h->lk, (uint32_t)n);
	h->in_bytes_at = h->lk.out.len;
	put_bytes(&h->lk, p, n);
	put_u32(&h->lk, (uint32_t)rank);
	link_end(&h->lk, at);
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
	size_t at = link_begin(&h->lk, L_KILL, (uint32_t)rank);
	put_u32(&h->lk, gen);
	link_end(&h->lk, at);
	flush(h);
}

void
front_wire(struct front *f, int host, int rank, const int *netids, int n)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	size_t at = link_begin(&h->lk, L_WIRE, (uint32_t)rank);
	put_u32(&h->lk, (uint32_t)n);
	for (int i = 0; i < n; i++)
		put_u32(&h->lk, (uint32_t)netids[i]);
	link_end(&h->lk, at);
	flush(h);
}

void
front_release(struct front *f, int host, int rank)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	link_end(&h->lk, link_begin(&h->lk, L_RELEASE, (uint32_t)rank));
	flush(h);
}

void
front_span(struct front *f, int host, int netid, const int *peers, int n)
{
	struct fhost *h = up(f, host);
	if (h == NULL)
		return;
	size_t at = link_begin(&h->lk, L_SPAN, 0);
	put_u32(&h->lk, (uint32_t)netid);
	put_u32(&h->lk, (uint32_t)n);
	for (int i = 0; i < n; i++)
		put_str(&h->lk, front_host_ip(f, peers[i]));
	link_end(&h->lk, at);
	flush(h);
}
