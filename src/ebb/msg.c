/* msg: the messenger between nodes.  Framed messages over TCP (one
 * connection per pair of nodes suffices; either end may open it), an I/O
 * thread that reads frames, answers misses and completes calls, and hands
 * every other message to the EBB's handler on the messenger's loop.  What
 * arrives is hostile: a frame is checked before anything is made of it,
 * and a connection that sends a bad one is dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/ebb_int.h"

#define OUT_MAX	   (256u << 20) /* a peer that reads nothing is dropped past this */
#define CONNECT_MS 3000

/* ---- frames ---- */

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

long
ebb_frame_parse(const uint8_t *buf, size_t n, struct ebb_frame *f)
{
	if (n < 4)
		return 0;
	uint32_t len = rd32(buf);
	if (len < EBB_FRAME_HDR - 4 || len > EBB_FRAME_MAX)
		return -1;
	if (n >= 5 && (buf[4] == 0 || buf[4] >= EBB_K_KMAX))
		return -1;
	if (n < EBB_FRAME_HDR)
		return 0;
	if (buf[5] != 0 || buf[6] != 0 || buf[7] != 0)
		return -1;
	if (n < 4 + (size_t)len)
		return 0;
	f->kind = buf[4];
	f->ebb = rd32(buf + 8);
	f->from = (uint16_t)(buf[12] | buf[13] << 8);
	f->status = (uint16_t)(buf[14] | buf[15] << 8);
	f->seq = (uint64_t)rd32(buf + 16) | (uint64_t)rd32(buf + 20) << 32;
	f->data = buf + EBB_FRAME_HDR;
	f->len = len - (EBB_FRAME_HDR - 4);
	return 4 + (long)len;
}

void
ebb_frame_header(uint8_t h[EBB_FRAME_HDR], const struct ebb_frame *f)
{
	wr32(h, (uint32_t)(f->len + EBB_FRAME_HDR - 4));
	h[4] = f->kind;
	h[5] = h[6] = h[7] = 0;
	wr32(h + 8, f->ebb);
	h[12] = (uint8_t)f->from;
	h[13] = (uint8_t)(f->from >> 8);
	h[14] = (uint8_t)f->status;
	h[15] = (uint8_t)(f->status >> 8);
	wr32(h + 16, (uint32_t)f->seq);
	wr32(h + 20, (uint32_t)(f->seq >> 32));
}

/* ---- connections and peers ---- */

struct conn {
	int fd;
	int node; /* -1 until its HELLO */
	int refs; /* under M.mu */
	int dead;
	uint8_t *in;
	size_t inlen, incap;
	pthread_mutex_t wmu;
	uint8_t *out;
	size_t outlen, outoff, outcap;
	int wantout;
	struct conn *next; /* M.conns */
};

struct peer {
	uint16_t node;
	char addr[64];
	struct conn *c;
};

struct pending {
	struct pending *next;
	uint64_t seq;
	struct conn *c; /* NULL: a call to this node itself */
	struct ebb_future *f;
};

/* A message being handled: the ebb_msg the handler sees, and where its
 * reply goes. */
struct imsg {
	struct ebb_msg m;
	struct conn *c;		 /* a peer's call */
	struct ebb_future *self; /* a call to this node */
	int refs;
	uint8_t data[];
};

static void conn_put(struct conn *c);

static struct msgr {
	int up;
	int lfd, epfd, evfd, port;
	pthread_t th;
	pthread_mutex_t mu; /* peers, conns, pending, refs */
	struct peer *peers;
	size_t npeers, cappeers;
	struct conn *conns;
	struct pending *pend;
	uint64_t seq;
	int stop;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER, .lfd = -1, .epfd = -1, .evfd = -1};

int
msg_core(void)
{
	return (int)ebb_cores();
}

int
msg_port(void)
{
	return M.port;
}

static struct peer *
peer_find(uint16_t n)
{
	for (size_t i = 0; i < M.npeers; i++)
		if (M.peers[i].node == n)
			return &M.peers[i];
	return NULL;
}

static struct peer *
peer_add(uint16_t n)
{
	struct peer *p = peer_find(n);
	if (p != NULL)
		return p;
	if (M.npeers == M.cappeers) {
		size_t cap = M.cappeers ? M.cappeers * 2 : 16;
		struct peer *np = realloc(M.peers, cap * sizeof(*np));
		if (np == NULL)
			return NULL;
		M.peers = np;
		M.cappeers = cap;
	}
	p = &M.peers[M.npeers++];
	memset(p, 0, sizeof(*p));
	p->node = n;
	return p;
}

static int
parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host) || colon == s)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	uint64_t port;
	if (parse_uint(colon + 1, 0, 65535, &port) < 0)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -1;
	return 0;
}

int
msg_node_addr(uint16_t n, const char *addr)
{
	struct sockaddr_in sa;
	if (addr == NULL || strlen(addr) >= sizeof(((struct peer *)0)->addr) ||
	    parse_addr(addr, &sa) < 0)
		return -1;
	pthread_mutex_lock(&M.mu);
	struct peer *p = peer_add(n);
	if (p != NULL)
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
	pthread_mutex_unlock(&M.mu);
	return p != NULL ? 0 : -1;
}

int
msg_node_addr_get(uint16_t n, char *buf, size_t len)
{
	int rc = -1;
	pthread_mutex_lock(&M.mu);
	struct peer *p = peer_find(n);
	if (p != NULL && p->addr[0] != '\0') {
		snprintf(buf, len, "%s", p->addr);
		rc = 0;
	}
	pthread_mutex_unlock(&M.mu);
	return rc;
}

void
msg_node_forget(uint16_t n)
{
	struct conn *c = NULL;
	pthread_mutex_lock(&M.mu);
	struct peer *p = peer_find(n);
	if (p != NULL) {
		p->addr[0] = '\0';
		c = p->c;
		p->c = NULL;
	}
	pthread_mutex_unlock(&M.mu);
	/* the I/O thread sees the connection end and fails its calls */
	if (c != NULL) {
		shutdown(c->fd, SHUT_RDWR);
		conn_put(c);
	}
}

size_t
msg_nodes(uint16_t *out, size_t max)
{
	size_t k = 0;
	uint16_t me = ebb_node();
	pthread_mutex_lock(&M.mu);
	int haveme = 0;
	for (size_t i = 0; i < M.npeers; i++)
		haveme |= M.peers[i].node == me;
	if (!haveme && k < max)
		out[k++] = me;
	for (size_t i = 0; i < M.npeers && k < max; i++)
		if (M.peers[i].addr[0] != '\0' || M.peers[i].c != NULL || M.peers[i].node == me)
			out[k++] = M.peers[i].node;
	pthread_mutex_unlock(&M.mu);
	/* in order: a small insertion sort */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
			uint16_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return k;
}

static void
conn_put_locked(struct conn *c)
{
	if (--c->refs > 0)
		return;
	for (struct conn **p = &M.conns; *p != NULL; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	pthread_mutex_destroy(&c->wmu);
	free(c);
}

static void
conn_put(struct conn *c)
{
	pthread_mutex_lock(&M.mu);
	conn_put_locked(c);
	pthread_mutex_unlock(&M.mu);
}

/* A connection on fd, watched by the I/O thread from now on.  node: the
 * peer's node when we dialled it (-1: accepted, it says in its hello);
 * refs: the I/O thread's and the caller's, taken before the I/O thread
 * can see it. */
static struct conn *
conn_new(int fd, int node, int refs)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->node = node;
	c->refs = refs;
	pthread_mutex_init(&c->wmu, NULL);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	pthread_mutex_lock(&M.mu);
	c->next = M.conns;
	M.conns = c;
	pthread_mutex_unlock(&M.mu);
	if (epoll_ctl(M.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		c->fd = -1;
		pthread_mutex_lock(&M.mu);
		c->refs = 1;
		conn_put_locked(c);
		pthread_mutex_unlock(&M.mu);
		return NULL;
	}
	return c;
}

/* The connection is over: the peer forgets it, its calls fail.  Runs on
 * the I/O thread, which drops its reference. */
static void
conn_kill(struct conn *c)
{
	struct pending *gone = NULL;
	pthread_mutex_lock(&M.mu);
	if (c->dead) {
		pthread_mutex_unlock(&M.mu);
		return;
	}
	c->dead = 1;
	epoll_ctl(M.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	shutdown(c->fd, SHUT_RDWR);
	for (size_t i = 0; i < M.npeers; i++)
		if (M.peers[i].c == c) {
			M.peers[i].c = NULL;
			conn_put_locked(c);
		}
	for (struct pending **p = &M.pend; *p != NULL;) {
		if ((*p)->c == c) {
			struct pending *x = *p;
			*p = x->next;
			x->next = gone;
			gone = x;
		} else {
			p = &(*p)->next;
		}
	}
	conn_put_locked(c);
	pthread_mutex_unlock(&M.mu);
	while (gone != NULL) {
		struct pending *x = gone;
		gone = x->next;
		ebb_future_set(x->f, EBB_EGONE, NULL, 0);
		free(x);
	}
}

/* Queue a frame on c (any thread).  Returns 0, or -1 (c is dead or its
 * peer reads nothing). */
static int
conn_send(struct conn *c, const struct ebb_frame *f)
{
	uint8_t h[EBB_FRAME_HDR];
	ebb_frame_header(h, f);
	pthread_mutex_lock(&c->wmu);
	if (c->dead || c->outlen - c->outoff + sizeof(h) + f->len > OUT_MAX) {
		pthread_mutex_unlock(&c->wmu);
		return -1;
	}
	size_t done = 0, total = sizeof(h) + f->len;
	if (c->outlen == c->outoff) {
		struct iovec iov[2] = {{h, sizeof(h)}, {(void *)f->data, f->len}};
		ssize_t w = writev(c->fd, iov, f->len > 0 ? 2 : 1);
		if (w > 0)
			done = (size_t)w;
	}
	if (done < total) {
		size_t need = c->outlen - c->outoff + total - done;
		if (c->outoff > 0) {
			memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (need > c->outcap) {
			size_t cap = c->outcap ? c->outcap : 4096;
			while (cap < need)
				cap *= 2;
			uint8_t *o = realloc(c->out, cap);
			if (o == NULL) {
				pthread_mutex_unlock(&c->wmu);
				return -1;
			}
			c->out = o;
			c->outcap = cap;
		}
		for (size_t i = done; i < total; i++)
			c->out[c->outlen++] = i < sizeof(h) ? h[i] : f->data[i - sizeof(h)];
		if (!c->wantout) {
			c->wantout = 1;
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
			epoll_ctl(M.epfd, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}
	pthread_mutex_unlock(&c->wmu);
	return 0;
}

static void
conn_flush(struct conn *c)
{
	pthread_mutex_lock(&c->wmu);
	while (c->outoff < c->outlen) {
		ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (w <= 0)
			break;
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		c->wantout = 0;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(M.epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
	pthread_mutex_unlock(&c->wmu);
}

/* A connection to node n with a reference for the caller: the one we
 * have, else a new one to its address (made here, in the caller's
 * thread).  NULL when n cannot be reached. */
static struct conn *
conn_to(uint16_t n)
{
	char addr[64];
	pthread_mutex_lock(&M.mu);
	struct peer *p = peer_find(n);
	if (p != NULL && p->c != NULL && !p->c->dead) {
		p->c->refs++;
		struct conn *c = p->c;
		pthread_mutex_unlock(&M.mu);
		return c;
	}
	if (p == NULL || p->addr[0] == '\0' || !M.up) {
		pthread_mutex_unlock(&M.mu);
		return NULL;
	}
	snprintf(addr, sizeof(addr), "%s", p->addr);
	pthread_mutex_unlock(&M.mu);

	struct sockaddr_in sa;
	if (parse_addr(addr, &sa) < 0)
		return NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return NULL;
	}
	struct pollfd pf = {.fd = fd, .events = POLLOUT};
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (poll(&pf, 1, CONNECT_MS) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
		close(fd);
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* the hello goes first: nobody else has the connection yet */
	uint8_t hello[EBB_FRAME_HDR];
	ebb_frame_header(hello, &(struct ebb_frame){.kind = EBB_K_HELLO, .from = ebb_node()});
	if (write(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello)) {
		close(fd);
		return NULL;
	}
	struct conn *c = conn_new(fd, n, 2);
	if (c == NULL) {
		close(fd);
		return NULL;
	}
	pthread_mutex_lock(&M.mu);
	p = peer_find(n);
	if (p != NULL && (p->c == NULL || p->c->dead) && !c->dead) {
		if (p->c != NULL)
			conn_put_locked(p->c);
		p->c = c;
		c->refs++;
	}
	pthread_mutex_unlock(&M.mu);
	return c;
}

int
msg_node_connect(uint16_t n)
{
	if (n == ebb_node())
		return -1;
	struct conn *c = conn_to(n);
	if (c == NULL)
		return -1;
	conn_put(c);
	return 0;
}

int
msg_node_connected(uint16_t n)
{
	pthread_mutex_lock(&M.mu);
	struct peer *p = peer_find(n);
	int rc = p != NULL && p->c != NULL && !p->c->dead;
	pthread_mutex_unlock(&M.mu);
	return rc;
}

/* ---- handling ---- */

/* A message is held by its dispatcher until the handler returns and, if
 * the handler kept it, until its reply: whichever lets go last frees it. */
static void
imsg_unref(struct imsg *im)
{
	if (__atomic_sub_fetch(&im->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (im->c != NULL)
		conn_put(im->c);
	free(im);
}

static void
dispatch_ev(void *arg)
{
	struct imsg *im = arg;
	rt_dispatch(&im->m);
	if (!im->m.kept && !im->m.replied && im->m.seq != 0)
		ebb_msg_reply(&im->m, EBB_ENOEBB, NULL, 0);
	imsg_unref(im);
}

struct ebb_msg *
ebb_msg_keep(struct ebb_msg *m)
{
	struct imsg *im = (struct imsg *)m;
	if (!m->kept) {
		m->kept = 1;
		__atomic_add_fetch(&im->refs, 1, __ATOMIC_ACQ_REL);
	}
	return m;
}

int
ebb_msg_reply(struct ebb_msg *m, int status, const void *data, size_t len)
{
	struct imsg *im = (struct imsg *)m;
	int rc = 0;
	if (__atomic_exchange_n(&m->replied, 1, __ATOMIC_ACQ_REL))
		return -1;
	if (im->self != NULL) {
		ebb_future_set(im->self, status, data, len);
	} else if (m->seq != 0 && im->c != NULL) {
		struct ebb_frame f = {.kind = EBB_K_REPLY,
				      .ebb = m->ebb,
				      .from = ebb_node(),
				      .status = (uint16_t)status,
				      .seq = m->seq,
				      .data = data,
				      .len = len};
		rc = conn_send(im->c, &f);
	}
	if (m->kept)
		imsg_unref(im);
	return rc;
}

static struct imsg *
imsg_new(uint16_t from, ebb_id id, uint64_t seq, const void *data, size_t len)
{
	struct imsg *im = calloc(1, sizeof(*im) + len + 1);
	if (im == NULL)
		return NULL;
	if (len > 0)
		memcpy(im->data, data, len);
	im->m = (struct ebb_msg){.from = from, .ebb = id, .data = im->data, .len = len, .seq = seq};
	im->refs = 1;
	return im;
}

/* One frame from c, on the I/O thread.  Returns 0, or -1 to drop c. */
static int
on_frame(struct conn *c, const struct ebb_frame *f)
{
	if (c->node < 0) {
		if (f->kind != EBB_K_HELLO || f->len != 0 || f->from == ebb_node())
			return -1;
		pthread_mutex_lock(&M.mu);
		c->node = f->from;
		struct peer *p = peer_add(f->from);
		if (p != NULL && (p->c == NULL || p->c->dead)) {
			if (p->c != NULL)
				conn_put_locked(p->c);
			p->c = c;
			c->refs++;
		}
		pthread_mutex_unlock(&M.mu);
		return 0;
	}
	switch (f->kind) {
	case EBB_K_HELLO:
		return -1;
	case EBB_K_CALL:
	case EBB_K_SEND: {
		if (f->kind == EBB_K_CALL && f->seq == 0)
			return -1;
		struct imsg *im = imsg_new((uint16_t)c->node, f->ebb,
					   f->kind == EBB_K_CALL ? f->seq : 0, f->data, f->len);
		if (im == NULL)
			return -1;
		pthread_mutex_lock(&M.mu);
		c->refs++;
		pthread_mutex_unlock(&M.mu);
		im->c = c;
		if (ebb_spawn(msg_core(), dispatch_ev, im) < 0) {
			conn_put(c);
			free(im);
		}
		return 0;
	}
	case EBB_K_REPLY: {
		struct pending *x = NULL;
		pthread_mutex_lock(&M.mu);
		for (struct pending **p = &M.pend; *p != NULL; p = &(*p)->next)
			if ((*p)->seq == f->seq && (*p)->c == c) {
				x = *p;
				*p = x->next;
				break;
			}
		pthread_mutex_unlock(&M.mu);
		/* a reply nobody waits for is dropped, not an error */
		if (x != NULL) {
			ebb_future_set(x->f, f->status, f->data, f->len);
			free(x);
		}
		return 0;
	}
	case EBB_K_MISS: {
		if (f->seq == 0)
			return -1;
		void *g = NULL;
		size_t gl = 0;
		struct ebb_frame r = {
		    .kind = EBB_K_REPLY, .ebb = f->ebb, .from = ebb_node(), .seq = f->seq};
		if (EBB_HOME(f->ebb) == ebb_node() && rt_global_get(f->ebb, &g, &gl) == 0) {
			r.data = g;
			r.len = gl;
		} else {
			r.status = EBB_ENOEBB;
		}
		conn_send(c, &r);
		free(g);
		return 0;
	}
	}
	return -1;
}

static void
on_readable(struct conn *c)
{
	for (;;) {
		if (c->incap - c->inlen < 65536) {
			size_t cap = c->incap ? c->incap * 2 : 131072;
			uint8_t *in = realloc(c->in, cap);
			if (in == NULL) {
				conn_kill(c);
				return;
			}
			c->in = in;
			c->incap = cap;
		}
		ssize_t r = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_kill(c);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		c->inlen += (size_t)r;
		size_t off = 0;
		for (;;) {
			struct ebb_frame f;
			long n = ebb_frame_parse(c->in + off, c->inlen - off, &f);
			if (n < 0 || (n > 0 && on_frame(c, &f) < 0)) {
				conn_kill(c);
				return;
			}
			if (n == 0)
				break;
			off += (size_t)n;
		}
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
		/* an idle connection does not keep a large buffer */
		if (c->inlen == 0 && c->incap > (1u << 20)) {
			free(c->in);
			c->in = NULL;
			c->incap = 0;
		}
	}
}

static void *
io_main(void *arg)
{
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(M.epfd, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &M.evfd) {
				pthread_mutex_lock(&M.mu);
				int stop = M.stop;
				pthread_mutex_unlock(&M.mu);
				if (stop)
					return NULL;
				uint64_t v;
				if (read(M.evfd, &v, sizeof(v)) < 0) {
				}
				continue;
			}
			if (p == &M.lfd) {
				int fd;
				while ((fd = accept4(M.lfd, NULL, NULL,
						     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					if (conn_new(fd, -1, 1) == NULL)
						close(fd);
				}
				continue;
			}
			struct conn *c = p;
			if (c->dead)
				continue;
			if (evs[i].events & EPOLLOUT)
				conn_flush(c);
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(c);
		}
	}
	return NULL;
}

int
msg_start(const char *laddr, char *err, size_t errlen)
{
	M.port = 0;
	M.stop = 0;
	M.seq = 0;
	M.epfd = epoll_create1(EPOLL_CLOEXEC);
	M.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (M.epfd < 0 || M.evfd < 0) {
		seterr(err, errlen, "messenger: %s", strerror(errno));
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &M.evfd};
	epoll_ctl(M.epfd, EPOLL_CTL_ADD, M.evfd, &ev);
	if (laddr != NULL) {
		struct sockaddr_in sa;
		if (parse_addr(laddr, &sa) < 0) {
			seterr(err, errlen, "listen address %s: want IPV4:PORT", laddr);
			goto fail;
		}
		M.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int one = 1;
		if (M.lfd < 0 ||
		    setsockopt(M.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(M.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(M.lfd, 128) < 0) {
			seterr(err, errlen, "listen on %s: %s", laddr, strerror(errno));
			goto fail;
		}
		socklen_t sl = sizeof(sa);
		getsockname(M.lfd, (struct sockaddr *)&sa, &sl);
		M.port = ntohs(sa.sin_port);
		struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &M.lfd};
		epoll_ctl(M.epfd, EPOLL_CTL_ADD, M.lfd, &lev);
	}
	if (pthread_create(&M.th, NULL, io_main, NULL) != 0) {
		seterr(err, errlen, "messenger thread: %s", strerror(errno));
		goto fail;
	}
	M.up = 1;
	return 0;
fail:
	if (M.lfd >= 0)
		close(M.lfd);
	if (M.epfd >= 0)
		close(M.epfd);
	if (M.evfd >= 0)
		close(M.evfd);
	M.lfd = M.epfd = M.evfd = -1;
	return -1;
}

void
msg_stop(void)
{
	if (!M.up)
		return;
	pthread_mutex_lock(&M.mu);
	M.stop = 1;
	M.up = 0;
	pthread_mutex_unlock(&M.mu);
	uint64_t one = 1;
	if (write(M.evfd, &one, sizeof(one)) < 0) {
	}
	pthread_join(M.th, NULL);
	/* every connection goes, every call still waiting fails */
	for (;;) {
		pthread_mutex_lock(&M.mu);
		struct conn *c = M.conns;
		while (c != NULL && c->dead)
			c = c->next;
		pthread_mutex_unlock(&M.mu);
		if (c == NULL)
			break;
		conn_kill(c);
	}
	pthread_mutex_lock(&M.mu);
	struct pending *p = M.pend;
	M.pend = NULL;
	pthread_mutex_unlock(&M.mu);
	while (p != NULL) {
		struct pending *x = p;
		p = p->next;
		ebb_future_set(x->f, EBB_EGONE, NULL, 0);
		free(x);
	}
	/* connections still referenced by handlers waiting on a loop are
	 * freed when those let go; the rest now */
	if (M.lfd >= 0)
		close(M.lfd);
	close(M.epfd);
	close(M.evfd);
	M.lfd = M.epfd = M.evfd = -1;
	free(M.peers);
	M.peers = NULL;
	M.npeers = M.cappeers = 0;
}

/* ---- calls ---- */

static struct ebb_future *
call(uint16_t n, ebb_id id, const void *data, size_t len, uint8_t kind)
{
	struct ebb_future *f = ebb_future_new();
	if (f == NULL)
		return NULL;
	if (len > EBB_FRAME_MAX - (EBB_FRAME_HDR - 4)) {
		ebb_future_set(f, EBB_EUNREACH, NULL, 0);
		return f;
	}
	if (n == ebb_node() && kind == EBB_K_CALL) {
		struct imsg *im = imsg_new(n, id, 1, data, len);
		if (im == NULL) {
			ebb_future_set(f, ENOMEM, NULL, 0);
			return f;
		}
		im->self = f;
		if (ebb_spawn(msg_core(), dispatch_ev, im) < 0) {
			free(im);
			ebb_future_set(f, EBB_EGONE, NULL, 0);
		}
		return f;
	}
	struct conn *c = n == ebb_node() ? NULL : conn_to(n);
	if (c == NULL) {
		ebb_future_set(f, EBB_EUNREACH, NULL, 0);
		return f;
	}
	struct pending *x = malloc(sizeof(*x));
	if (x == NULL) {
		conn_put(c);
		ebb_future_set(f, ENOMEM, NULL, 0);
		return f;
	}
	pthread_mutex_lock(&M.mu);
	x->seq = ++M.seq;
	x->c = c;
	x->f = f;
	x->next = M.pend;
	M.pend = x;
	pthread_mutex_unlock(&M.mu);
	struct ebb_frame fr = {
	    .kind = kind, .ebb = id, .from = ebb_node(), .seq = x->seq, .data = data, .len = len};
	if (conn_send(c, &fr) < 0) {
		int mine = 0;
		pthread_mutex_lock(&M.mu);
		for (struct pending **p = &M.pend; *p != NULL; p = &(*p)->next)
			if (*p == x) {
				*p = x->next;
				mine = 1;
				break;
			}
		pthread_mutex_unlock(&M.mu);
		if (mine) {
			free(x);
			ebb_future_set(f, EBB_EUNREACH, NULL, 0);
		}
	}
	conn_put(c);
	return f;
}

struct ebb_future *
ebb_call(uint16_t n, ebb_id id, const void *data, size_t len)
{
	return call(n, id, data, len, EBB_K_CALL);
}

struct ebb_future *
msg_miss(uint16_t n, ebb_id id)
{
	return call(n, id, NULL, 0, EBB_K_MISS);
}

int
ebb_send(uint16_t n, ebb_id id, const void *data, size_t len)
{
	if (len > EBB_FRAME_MAX - (EBB_FRAME_HDR - 4))
		return -1;
	if (n == ebb_node()) {
		struct imsg *im = imsg_new(n, id, 0, data, len);
		if (im == NULL)
			return -1;
		if (ebb_spawn(msg_core(), dispatch_ev, im) < 0) {
			free(im);
			return -1;
		}
		return 0;
	}
	struct conn *c = conn_to(n);
	if (c == NULL)
		return -1;
	struct ebb_frame fr = {
	    .kind = EBB_K_SEND, .ebb = id, .from = ebb_node(), .data = data, .len = len};
	int rc = conn_send(c, &fr);
	conn_put(c);
	return rc;
}
