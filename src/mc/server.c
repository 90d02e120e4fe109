/* server: khmcd's threads (after memcached's thread.c).  The thread that
 * calls mc_server_run accepts connections and hands them round-robin to the
 * workers (-t); each worker runs its own epoll loop over its connections:
 * it reads what is there, lets the protocol answer every complete command
 * (a pipeline in one go), then writes all the answers with one sendmsg.  A
 * value being stored is read straight into its item.  A connection whose
 * unwritten answers pass MC_OUT_HIGH is not read again until they drain, so
 * a client that sends without reading costs a bounded amount of memory and
 * nobody else's time. */
#include "mc/conn.h"
#include "mc/mcrdma.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN 8
#define EVENTS	   256
#define IOVS	   256
#define ROUNDS	   8 /* reads per readiness event before others get a turn */

struct mc_worker {
	struct mc_server *srv;
	pthread_t tid;
	int epfd;
	int pipe[2]; /* the acceptor writes new fds, -1 to stop */
	struct mc_conn *conns;
	struct mc_tstats st __attribute__((aligned(64)));
};

struct mc_server {
	struct mc_settings settings;
	struct mc_cache cache;
	struct mc_ctx ctx;
	int lfd[MAX_LISTEN];
	int nlfd;
	int stopfd;
	int stop_on; /* the caller's fd that also stops us, -1 none */
	uint16_t port;
	struct mc_worker *workers;
	int started;		/* workers running */
	uint32_t accept_warned; /* when accept's last failure was logged */
};

void
mc_settings_default(struct mc_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->port = 11211;
	s->maxbytes = UINT64_C(64) << 20;
	s->threads = 4;
	s->maxconns = 1024;
	s->factor = 1.25;
	s->buckets = 4096;
	s->rdma = "auto";
}

static uint32_t
clock_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint32_t)ts.tv_sec;
}

static int
listen_on(struct mc_server *srv, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res, *ai;
	char port[8];
	int rc, saved = 0;

	snprintf(port, sizeof(port), "%u", srv->settings.port);
	rc = getaddrinfo(srv->settings.listen, port, &hints, &res);
	if (rc != 0)
		return seterr(err, errlen, "%s: %s",
			      srv->settings.listen ? srv->settings.listen : "*", gai_strerror(rc));
	for (ai = res; ai != NULL && srv->nlfd < MAX_LISTEN; ai = ai->ai_next) {
		int one = 1;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (srv->port != 0) {
			/* port 0: every address takes the port the first got */
			if (ai->ai_family == AF_INET)
				((struct sockaddr_in *)ai->ai_addr)->sin_port = htons(srv->port);
			else if (ai->ai_family == AF_INET6)
				((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons(srv->port);
		}
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
			saved = errno;
			close(fd);
			continue;
		}
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (srv->port == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			srv->port = ntohs(ss.ss_family == AF_INET
					      ? ((struct sockaddr_in *)&ss)->sin_port
					      : ((struct sockaddr_in6 *)&ss)->sin6_port);
		srv->lfd[srv->nlfd++] = fd;
	}
	freeaddrinfo(res);
	if (srv->nlfd == 0)
		return seterr(err, errlen, "listen on %s port %u: %s",
			      srv->settings.listen ? srv->settings.listen : "*", srv->settings.port,
			      strerror(saved));
	return 0;
}

struct mc_server *
mc_server_new(const struct mc_settings *s, char *err, size_t errlen)
{
	struct mc_server *srv = calloc(1, sizeof(*srv));
	struct mc_cache_config cc = {
	    .item_bytes = s->maxbytes, .initial_buckets = s->buckets, .factor = s->factor};

	if (srv == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	srv->settings = *s;
	srv->port = s->port;
	srv->stopfd = -1;
	srv->stop_on = -1;
	if (mc_cache_init(&srv->cache, &cc, err, errlen) < 0) {
		free(srv);
		return NULL;
	}
	if (s->rdma && strcmp(s->rdma, "off") != 0) {
		char why[256], doms[512];
		int autom = strcmp(s->rdma, "auto") == 0;
		srv->ctx.rdma =
		    mc_rdma_open(&srv->cache, autom ? NULL : s->rdma, s->threads, why, sizeof(why));
		if (srv->ctx.rdma) {
			mc_rdma_domains(srv->ctx.rdma, doms, sizeof(doms));
			log_info("one-sided gets through %s", doms);
		} else if (!autom) {
			seterr(err, errlen, "--rdma %s: %s", s->rdma, why);
			goto fail;
		} else {
			log_info("gets over TCP only: %s", why);
		}
	}
	srv->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->stopfd < 0) {
		seterr(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (listen_on(srv, err, errlen) < 0)
		goto fail;
	srv->settings.port = srv->port;
	srv->ctx.cache = &srv->cache;
	srv->ctx.settings = srv->settings;
	srv->ctx.started = srv->cache.started;
	srv->ctx.nthreads = s->threads;
	srv->ctx.verbosity = s->verbose;
	return srv;
fail:
	mc_server_free(srv);
	return NULL;
}

uint16_t
mc_server_port(const struct mc_server *srv)
{
	return srv->port;
}

int
mc_arena_fd(const struct mc_server *srv)
{
	return srv->cache.arena.fd;
}

void *
mc_arena_base(const struct mc_server *srv)
{
	return srv->cache.arena.base;
}

size_t
mc_arena_size(const struct mc_server *srv)
{
	return srv->cache.arena.size;
}

void
mc_server_stop_on(struct mc_server *srv, int fd)
{
	srv->stop_on = fd;
}

void
mc_server_stop(struct mc_server *srv)
{
	uint64_t one = 1;
	ssize_t n = write(srv->stopfd, &one, sizeof(one));
	(void)n;
}

static void
conn_close(struct mc_worker *w, struct mc_conn *c)
{
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	for (struct mc_conn **pp = &w->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	mc_conn_release(c);
	free(c);
	__atomic_fetch_sub(&w->srv->ctx.curr_conns, 1, __ATOMIC_RELAXED);
}

/* Write what is pending.  0: all written, 1: the socket is full, -1: the
 * connection is gone. */
static int
conn_flush(struct mc_worker *w, struct mc_conn *c)
{
	struct iovec iov[IOVS];

	while (c->opending > 0) {
		struct msghdr mh = {.msg_iov = iov,
				    .msg_iovlen = (size_t)mc_conn_iov(c, iov, IOVS)};
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			mc_conn_sent(c, (size_t)n);
			mc_stat_inc(&w->st.bytes_written, (uint64_t)n);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return 1;
		} else {
			return -1;
		}
	}
	return 0;
}

/* Read what the socket has: straight into the item for a value being
 * stored, else into the read buffer.  >0 bytes (*drained when fewer than
 * there was room for: the socket has no more for now), 0 end of stream, -1
 * would block, -2 error. */
static ssize_t
conn_read(struct mc_conn *c, int *drained)
{
	struct iovec iov[3];
	int n = 0;
	size_t room;
	char *space = mc_conn_rspace(c, &room);

	if (c->state == MC_CONN_NREAD && c->rstart == c->rend) {
		if (c->rleft > 0)
			iov[n++] = (struct iovec){c->ritem, c->rleft};
		iov[n++] = (struct iovec){c->crlf + c->crlf_got, 2 - c->crlf_got};
	}
	if (room > 0)
		iov[n++] = (struct iovec){space, room};
	if (n == 0)
		return -2;
	ssize_t r;
	do
		r = readv(c->fd, iov, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
	size_t want = 0;
	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	*drained = (size_t)r < want;
	size_t left = (size_t)r;
	if (c->state == MC_CONN_NREAD && iov[0].iov_base != space) {
		for (int i = 0; i < n && left > 0; i++) {
			size_t k = left < iov[i].iov_len ? left : iov[i].iov_len;
			if (iov[i].iov_base == c->ritem) {
				c->ritem += k;
				c->rleft -= k;
			} else if (iov[i].iov_base == c->crlf + c->crlf_got) {
				c->crlf_got += k;
			} else {
				c->rend += k;
			}
			left -= k;
		}
	} else {
		c->rend += left;
	}
	return r;
}

static void
set_events(struct mc_worker *w, struct mc_conn *c, int events)
{
	if (c->events == events)
		return;
	struct epoll_event ev = {.events = (uint32_t)events, .data.ptr = c};
	epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = events;
}

/* Serve one connection that epoll said is ready. */
static void
conn_drive(struct mc_worker *w, struct mc_conn *c, uint32_t events, uint32_t now)
{
	int readable = !c->eof && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
	int rc = MC_PROC_MORE;

	c->now = now;
	if ((events & EPOLLOUT) && conn_flush(w, c) < 0) {
		conn_close(w, c);
		return;
	}
	for (int round = 0;; round++) {
		rc = mc_proto_process(c);
		if (rc == MC_PROC_CLOSE)
			break;
		if (rc == MC_PROC_FULL) {
			int f = conn_flush(w, c);
			if (f < 0) {
				conn_close(w, c);
				return;
			}
			if (f > 0)
				break; /* stop reading until the client reads */
			continue;
		}
		if (!readable)
			break;
		if (round == ROUNDS) {
			/* Others' turn; level-triggered epoll brings us back. */
			mc_stat_inc(&w->st.conn_yields, 1);
			break;
		}
		int drained = 0;
		ssize_t n = conn_read(c, &drained);
		if (n == -2) {
			conn_close(w, c);
			return;
		}
		if (n == 0) {
			/* The client is done sending: answer all it sent, then
			 * close.  A value it left half sent goes with the
			 * connection. */
			c->eof = 1;
			readable = 0;
			continue;
		}
		if (n < 0)
			break;
		mc_stat_inc(&w->st.bytes_read, (uint64_t)n);
		if (drained)
			readable = 0; /* process it, then back to epoll: no EAGAIN read */
	}
	if (c->eof && rc == MC_PROC_MORE) {
		c->state = MC_CONN_CLOSE;
		rc = MC_PROC_CLOSE;
	}
	int f = conn_flush(w, c);
	if (f < 0 || (rc == MC_PROC_CLOSE && f == 0)) {
		conn_close(w, c);
		return;
	}
	if (f > 0)
		set_events(w, c,
			   rc == MC_PROC_FULL || rc == MC_PROC_CLOSE || c->eof
			       ? EPOLLOUT
			       : EPOLLIN | EPOLLOUT);
	else
		set_events(w, c, c->eof ? EPOLLOUT : EPOLLIN);
}

static void
conn_add(struct mc_worker *w, int fd)
{
	struct mc_conn *c = malloc(sizeof(*c));
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c == NULL || mc_conn_init(c, fd, &w->srv->ctx, &w->st) < 0) {
		free(c);
		close(fd);
		__atomic_fetch_sub(&w->srv->ctx.curr_conns, 1, __ATOMIC_RELAXED);
		return;
	}
	c->thread = (int)(w - w->srv->workers);
	c->events = EPOLLIN;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		mc_conn_release(c);
		free(c);
		close(fd);
		__atomic_fetch_sub(&w->srv->ctx.curr_conns, 1, __ATOMIC_RELAXED);
		return;
	}
	c->next = w->conns;
	w->conns = c;
}

static void *
worker_main(void *arg)
{
	struct mc_worker *w = arg;
	struct epoll_event evs[EVENTS];

	for (;;) {
		int n = epoll_wait(w->epfd, evs, EVENTS, 1000);
		uint32_t now = clock_now();
		mc_cache_tick(&w->srv->cache, now);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr != NULL) {
				conn_drive(w, evs[i].data.ptr, evs[i].events, now);
				continue;
			}
			int fds[64];
			ssize_t k = read(w->pipe[0], fds, sizeof(fds));
			for (ssize_t j = 0; j < k / (ssize_t)sizeof(int); j++) {
				if (fds[j] < 0)
					goto out;
				conn_add(w, fds[j]);
			}
		}
	}
out:
	while (w->conns != NULL)
		conn_close(w, w->conns);
	return NULL;
}

static void
accept_ready(struct mc_server *srv, int lfd, unsigned *rr)
{
	struct mc_ctx *ctx = &srv->ctx;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of descriptors or memory: say so once a second,
			 * and give the workers time to close some. */
			uint32_t now = clock_now();
			if (now != srv->accept_warned) {
				log_warn("accept");
				srv->accept_warned = now;
			}
			usleep(10000);
			return;
		}
		if (__atomic_load_n(&ctx->curr_conns, __ATOMIC_RELAXED) >=
		    (uint64_t)srv->settings.maxconns) {
			static const char msg[] = "ERROR Too many open connections\r\n";
			ssize_t k = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)k;
			close(fd);
			__atomic_fetch_add(&ctx->rejected_conns, 1, __ATOMIC_RELAXED);
			continue;
		}
		__atomic_fetch_add(&ctx->curr_conns, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&ctx->total_conns, 1, __ATOMIC_RELAXED);
		struct mc_worker *w = &srv->workers[(*rr)++ % (unsigned)srv->settings.threads];
		if (write(w->pipe[1], &fd, sizeof(fd)) != (ssize_t)sizeof(fd)) {
			close(fd);
			__atomic_fetch_sub(&ctx->curr_conns, 1, __ATOMIC_RELAXED);
		}
	}
}

static void
stop_workers(struct mc_server *srv)
{
	for (int i = 0; i < srv->started; i++) {
		int stop = -1;
		ssize_t k = write(srv->workers[i].pipe[1], &stop, sizeof(stop));
		(void)k;
	}
	for (int i = 0; i < srv->started; i++)
		pthread_join(srv->workers[i].tid, NULL);
	srv->started = 0;
}

int
mc_server_run(struct mc_server *srv)
{
	int nt = srv->settings.threads, rc = 0;
	unsigned rr = 0;

	srv->workers = calloc((size_t)nt, sizeof(*srv->workers));
	srv->ctx.tstats = calloc((size_t)nt, sizeof(*srv->ctx.tstats));
	if (srv->workers == NULL || srv->ctx.tstats == NULL) {
		log_warnx("out of memory");
		return -1;
	}
	for (int i = 0; i < nt; i++) {
		srv->workers[i].epfd = -1;
		srv->workers[i].pipe[0] = srv->workers[i].pipe[1] = -1;
	}
	for (int i = 0; i < nt; i++) {
		struct mc_worker *w = &srv->workers[i];
		w->srv = srv;
		srv->ctx.tstats[i] = &w->st;
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (w->epfd < 0 || pipe2(w->pipe, O_CLOEXEC) < 0) {
			log_warn("worker %d", i);
			rc = -1;
			goto out;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->pipe[0], &ev);
		if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
			log_warnx("worker %d: cannot start a thread", i);
			rc = -1;
			goto out;
		}
		srv->started++;
	}

	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		log_warn("epoll");
		rc = -1;
		goto out;
	}
	for (int i = 0; i < srv->nlfd; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = srv->lfd[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, srv->lfd[i], &ev);
	}
	struct epoll_event sev = {.events = EPOLLIN, .data.fd = srv->stopfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, srv->stopfd, &sev);
	if (srv->stop_on >= 0) {
		sev.data.fd = srv->stop_on;
		epoll_ctl(ep, EPOLL_CTL_ADD, srv->stop_on, &sev);
	}
	for (int done = 0; !done;) {
		struct epoll_event evs[MAX_LISTEN + 1];
		int n = epoll_wait(ep, evs, MAX_LISTEN + 1, -1);
		if (n < 0 && errno != EINTR) {
			log_warn("epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == srv->stopfd || evs[i].data.fd == srv->stop_on)
				done = 1;
			else
				accept_ready(srv, evs[i].data.fd, &rr);
		}
	}
	close(ep);
out:
	stop_workers(srv);
	return rc;
}

void
mc_server_free(struct mc_server *srv)
{
	if (srv == NULL)
		return;
	stop_workers(srv);
	for (int i = 0; srv->workers != NULL && i < srv->settings.threads; i++) {
		if (srv->workers[i].epfd >= 0)
			close(srv->workers[i].epfd);
		if (srv->workers[i].pipe[0] >= 0) {
			close(srv->workers[i].pipe[0]);
			close(srv->workers[i].pipe[1]);
		}
	}
	for (int i = 0; i < srv->nlfd; i++)
		close(srv->lfd[i]);
	if (srv->stopfd >= 0)
		close(srv->stopfd);
	free(srv->workers);
	free(srv->ctx.tstats);
	mc_rdma_close(srv->ctx.rdma);
	mc_cache_destroy(&srv->cache);
	free(srv);
}
