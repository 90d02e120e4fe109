/* server: khd's Unix socket.  Connections are non-blocking; each buffers
 * its input up to one request line and its replies until the peer reads
 * them.  A client that vanishes mid-request costs only its buffers, and one
 * that stalls (slowloris) costs a slot for a bounded time: a request line
 * must be complete REQ_DEADLINE_MS after its first byte, and when every
 * slot is taken the connection idle the longest makes room for the
 * newcomer.  An idle connection is otherwise kept: clients such as khfs
 * hold one for as long as they run. */
#include "khd/khd.h"
#include "admission/admission.h"
#include "console/console.h"
#include "exec/exec.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/sbuf.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONN_MAX_CAP	65536	   /* at most, whatever the descriptor limit */
#define FD_RESERVE	512	   /* descriptors kept for nodes, state, logs */
#define OUT_HIGHWATER	(8u << 20) /* a client not reading its replies is dropped */
#define REQ_DEADLINE_MS 10000	   /* a request line, from its first byte */
#define SWEEP_MS	1000

struct conn {
	struct khd *k;
	int fd;
	struct sbuf in, out;
	int closing;	/* close once out is flushed */
	int discarding; /* skipping the rest of an over-long line */
	uint64_t timer; /* held request: timer id, else 0 */
	struct conn *next, *prev;
	struct reader *reader; /* attached to a channel: a byte stream now */
	struct exec *exec;     /* an exec stream (exec/): framed now */
	int paused;	       /* exec input held: the client is not read */
	struct proto_req req;
	int ssh; /* came through the ssh socket (sshd.c): peer_uid says who */
	uid_t peer_uid;
	char *svckey;	     /* a service interface session: the key sshd verified */
	uint64_t active_ms;  /* monotonic: accepted, or last request answered */
	uint64_t partial_ms; /* monotonic: first byte of an incomplete line, or 0 */
	int adm_held;	     /* held for the admission worker's answer */
	int hq_turn;	     /* taken from the heavy queue: its request runs now */
	struct conn *hq_next;
};

static uint64_t
mono_ms(void)
{
	return now_ns() / 1000000;
}

static void conn_event(struct ev *ev, int fd, int events, void *arg);
static void hq_unlink(struct khd *k, struct conn *c);

/* A held connection waiting in the heavy queue, not on a timer. */
#define HQ_MARK UINT64_MAX

static void
conn_free(struct conn *c)
{
	struct khd *k = c->k;
	if (c->reader)
		console_detach(k, c->reader);
	if (c->exec)
		exec_free(c->exec);
	if (c->timer == HQ_MARK)
		hq_unlink(k, c);
	else if (c->timer)
		ev_cancel(k->ev, c->timer);
	ev_unwatch(k->ev, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		k->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	k->nconns--;
	sbuf_free(&c->in);
	sbuf_free(&c->out);
	free(c->svckey);
	free(c);
}

static void
conn_rewatch(struct conn *c)
{
	int mask = 0;
	if (!c->closing && c->timer == 0 && !c->paused)
		mask |= EV_READ;
	/* closing with nothing left to send: the write event frees it */
	if (c->out.len > 0 || c->closing)
		mask |= EV_WRITE;
	ev_watch(c->k->ev, c->fd, mask, conn_event, c);
}

/* Write what we can; returns -1 when the connection is gone. */
static int
conn_flush(struct conn *c)
{
	while (c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.s, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -1;
		}
		sbuf_consume(&c->out, (size_t)n);
	}
	if (c->out.len == 0 && c->closing)
		return -1;
	if (c->out.len > OUT_HIGHWATER) {
		log_warnx("client not reading its replies: dropped");
		return -1;
	}
	return 0;
}

static void process(struct conn *c);
static void hq_run(struct ev *ev, void *arg);

#define SLOW_REQUEST_NS 100000000ull /* logged: what kept everyone waiting */
#define HEAVY_WINDOW_NS 20000000ull  /* 20 ms */
#define HEAVY_BUDGET_NS 16000000ull  /* of which heavy requests may take 16 */

/* Is there room in this window for a heavy request? */
static int
heavy_room(struct khd *k)
{
	uint64_t now = now_ns();
	if (now - k->heavy_window >= HEAVY_WINDOW_NS) {
		k->heavy_window = now;
		k->heavy_used = 0;
	}
	return k->heavy_used < HEAVY_BUDGET_NS;
}

static void
hq_arm(struct khd *k)
{
	if (k->hq_timer || k->hq_head == NULL)
		return;
	uint64_t now = now_ns(), end = k->heavy_window + HEAVY_WINDOW_NS;
	k->hq_timer = ev_after(k->ev, end > now ? (end - now) / 1000000 + 1 : 1, hq_run, k);
}

static void
hq_push(struct khd *k, struct conn *c)
{
	c->timer = HQ_MARK;
	c->hq_next = NULL;
	if (k->hq_tail)
		k->hq_tail->hq_next = c;
	else
		k->hq_head = c;
	k->hq_tail = c;
	k->heavy_deferred++;
	hq_arm(k);
}

static void
hq_unlink(struct khd *k, struct conn *c)
{
	struct conn **pp = &k->hq_head, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->hq_next;
	}
	if (*pp == NULL)
		return;
	*pp = c->hq_next;
	if (k->hq_tail == c)
		k->hq_tail = prev;
	c->hq_next = NULL;
}

/* A new window: the queue's head goes first, while there is room. */
static void
hq_run(struct ev *ev, void *arg)
{
	struct khd *k = arg;
	(void)ev;
	k->hq_timer = 0;
	/* One window's room at most: the window does not roll over while
	 * this runs, however long one request takes. */
	if (!heavy_room(k)) {
		hq_arm(k);
		return;
	}
	while (k->hq_head && k->heavy_used < HEAVY_BUDGET_NS) {
		struct conn *c = k->hq_head;
		k->hq_head = c->hq_next;
		if (k->hq_head == NULL)
			k->hq_tail = NULL;
		c->hq_next = NULL;
		c->timer = 0;
		c->hq_turn = 1;
		process(c);
	}
	hq_arm(k);
}

static int
heavy_verb(const char *verb)
{
	static const char *const heavy[] = {"get",    "release", "reset",
					    "addnet", "rmnet",	 "transfer"};
	for (size_t i = 0; i < sizeof(heavy) / sizeof(heavy[0]); i++)
		if (strcmp(verb, heavy[i]) == 0)
			return 1;
	return 0;
}

static void
held_done(struct ev *ev, void *arg)
{
	struct conn *c = arg;
	(void)ev;
	c->timer = 0;
	process(c);
}

/* Run every complete line in the input buffer, unless a request is held. */
static void
process(struct conn *c)
{
	char err[128];

	while (c->timer == 0 && !c->closing) {
		char *nl = memchr(c->in.s ? c->in.s : "", '\n', c->in.len);
		if (nl == NULL) {
			if (c->in.len >= PROTO_MAX_LINE) {
				/* Answer once, then drop bytes up to the next newline:
				 * the client reads its error, the connection lives. */
				sbuf_adds(&c->out, "err proto request line too long\n");
				sbuf_reset(&c->in);
				c->discarding = 1;
			}
			break;
		}
		size_t len = (size_t)(nl - c->in.s);
		if (proto_parse(c->in.s, len, &c->req, err, sizeof(err)) < 0) {
			sbuf_printf(&c->out, "err proto %s\n", err);
			sbuf_consume(&c->in, len + 1);
			continue;
		}
		/* Requests that make or unmake devices (milliseconds of kernel
		 * work each) share the loop: at most HEAVY_BUDGET_NS of every
		 * HEAVY_WINDOW_NS, in the order they came, so that everything
		 * else (queries, channels, the bill) keeps its latency however
		 * many allocate at once. */
		struct khd *k = c->k;
		int heavy = heavy_verb(c->req.verb);
		if (heavy && !c->hq_turn && (k->hq_head != NULL || !heavy_room(k))) {
			hq_push(k, c);
			break;
		}
		c->hq_turn = 0;
		uint64_t t0 = now_ns();
		c->k->adm_pending = 0;
		uint64_t wait = verbs_dispatch(c->k, c, &c->req, &c->out);
		uint64_t took = now_ns() - t0;
		if (heavy)
			k->heavy_used += took;
		if (took > SLOW_REQUEST_NS)
			log_warnx("slow request: %s took %llu ms", c->req.verb,
				  (unsigned long long)(took / 1000000));
		c->adm_held = wait > 0 && c->k->adm_pending;
		if (wait > 0) {
			c->timer = ev_after(c->k->ev, (wait + 999999) / 1000000, held_done, c);
			break;
		}
		sbuf_consume(&c->in, len + 1);
		c->active_ms = mono_ms();
		c->partial_ms = 0;
		if (c->reader) {
			/* Attached: what followed the request is channel input. */
			if (c->in.len)
				console_input(c->k, c->reader, c->in.s, c->in.len);
			sbuf_reset(&c->in);
			break;
		}
		if (c->exec) {
			/* An exec stream: what followed the request is framed input. */
			struct sbuf rest = c->in;
			sbuf_init(&c->in);
			if (rest.len)
				exec_input(c->exec, rest.s, rest.len);
			sbuf_free(&rest);
			break;
		}
	}
	if (c->in.len > 0 && c->partial_ms == 0)
		c->partial_ms = mono_ms();
	else if (c->in.len == 0)
		c->partial_ms = 0;
	if (conn_flush(c) < 0) {
		conn_free(c);
		return;
	}
	conn_rewatch(c);
}

/* The admission worker has answers: run again the requests held for
 * them (each finds its answer, or stays held for another). */
static void
adm_event(struct ev *ev, int fd, int events, void *arg)
{
	struct khd *k = arg;
	(void)ev;
	(void)fd;
	(void)events;
	adm_drain(&k->adm);
	for (struct conn *c = k->conns, *next; c; c = next) {
		next = c->next;
		if (!c->adm_held || c->timer == 0 || c->timer == HQ_MARK)
			continue;
		ev_cancel(k->ev, c->timer);
		c->timer = 0;
		c->adm_held = 0;
		process(c);
	}
}

/* A connection that only holds a slot: no channel attached, no request
 * held, nothing left to send. */
static int
conn_idle(const struct conn *c)
{
	return c->reader == NULL && c->timer == 0 && c->out.len == 0 && !c->closing;
}

/* Close the connections that stalled: an incomplete request past its
 * deadline (told why). */
static void
sweep(struct ev *ev, void *arg)
{
	struct khd *k = arg;
	uint64_t now = mono_ms();

	for (struct conn *c = k->conns, *next; c; c = next) {
		next = c->next;
		if (!conn_idle(c))
			continue;
		if (c->partial_ms && now - c->partial_ms > REQ_DEADLINE_MS) {
			static const char late[] = "err proto request not completed within 10 s\n";
			(void)!send(c->fd, late, sizeof(late) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			k->conns_reaped++;
			conn_free(c);
		}
	}
	ev_after(ev, SWEEP_MS, sweep, k);
}

/* Every slot is taken: free the one idle the longest (stalled requests
 * first), so that a flood of silent clients cannot lock everyone out.
 * Returns -1 when every connection is busy (attached or working). */
static int
reclaim_slot(struct khd *k)
{
	struct conn *victim = NULL;
	uint64_t best = UINT64_MAX;

	for (struct conn *c = k->conns; c; c = c->next) {
		if (!conn_idle(c))
			continue;
		uint64_t t = c->partial_ms ? c->partial_ms : c->active_ms;
		if (t < best) {
			best = t;
			victim = c;
		}
	}
	if (victim == NULL)
		return -1;
	static const char busy[] = "err busy connection reclaimed for a new client\n";
	(void)!send(victim->fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	k->conns_reaped++;
	conn_free(victim);
	return 0;
}

static void
conn_event(struct ev *ev, int fd, int events, void *arg)
{
	struct conn *c = arg;
	(void)ev;

	if (events & EV_READ) {
		char buf[16384];
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 && c->exec) {
			/* An exec client that only shut its sending side has
			 * ended its input; one that is gone takes its processes. */
			struct pollfd pfd = {fd, POLLOUT, 0};
			if (poll(&pfd, 1, 0) == 1 && !(pfd.revents & (POLLHUP | POLLERR))) {
				exec_input_end(c->exec);
				c->paused = 1;
				conn_rewatch(c);
				return;
			}
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			/* Peer gone: a partial request is dropped, nothing applied. */
			conn_free(c);
			return;
		}
		char *p = buf;
		if (n > 0 && c->reader) {
			console_input(c->k, c->reader, buf, (size_t)n);
			return;
		}
		if (n > 0 && c->exec) {
			exec_input(c->exec, buf, (size_t)n);
			return;
		}
		if (n > 0 && c->discarding) {
			char *nl = memchr(buf, '\n', (size_t)n);
			if (nl == NULL)
				n = 0;
			else {
				c->discarding = 0;
				n -= nl + 1 - buf;
				p = nl + 1;
			}
		}
		if (n > 0)
			sbuf_add(&c->in, p, (size_t)n);
		process(c);
		return;
	}
	if (conn_flush(c) < 0) {
		conn_free(c);
		return;
	}
	if (c->exec && c->out.len < CONN_STREAM_BUF / 2)
		exec_writable(c->exec);
	conn_rewatch(c);
}

void
conn_set_reader(struct conn *c, struct reader *r)
{
	c->reader = r;
}

size_t
conn_room(const struct conn *c)
{
	return c->out.len >= CONN_STREAM_BUF ? 0 : CONN_STREAM_BUF - c->out.len;
}

/* Queue stream bytes for an attached client; the caller checked the room. */
void
conn_send(struct conn *c, const void *p, size_t n)
{
	sbuf_add(&c->out, p, n);
	if (conn_flush(c) < 0) {
		/* the peer is gone; its read event will free it */
		c->closing = 1;
		shutdown(c->fd, SHUT_RDWR);
		return;
	}
	conn_rewatch(c);
}

static size_t
x_room(void *ctx)
{
	return conn_room(ctx);
}

static void
x_send(void *ctx, const void *p, size_t n)
{
	struct conn *c = ctx;
	if (!c->closing)
		conn_send(c, p, n);
}

static void
x_pause(void *ctx, int paused)
{
	struct conn *c = ctx;
	c->paused = paused;
	conn_rewatch(c);
}

static void
x_fail(void *ctx)
{
	struct conn *c = ctx;
	c->closing = 1;
	conn_rewatch(c);
}

struct exec *
conn_exec(struct conn *c)
{
	struct exec_io io = {c, x_room, x_send, x_pause, x_fail};
	if (c->exec == NULL)
		c->exec = exec_new(c->k->ev, &io);
	return c->exec;
}

static void
accept_conns(struct ev *ev, struct khd *k, int fd, int ssh)
{
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("accept");
			return;
		}
		if (k->nconns >= k->conn_max && reclaim_slot(k) < 0) {
			static const char busy[] = "err busy too many clients\n";
			(void)!send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(cfd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (c == NULL)
			fatal("conn");
		c->k = k;
		c->fd = cfd;
		c->ssh = ssh;
		c->active_ms = mono_ms();
		{
			struct ucred uc;
			socklen_t ul = sizeof(uc);
			/* Nobody is "nobody": a peer we cannot identify gets nothing. */
			c->peer_uid = getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0
					  ? uc.uid
					  : (uid_t)-1;
		}
		sbuf_init(&c->in);
		sbuf_init(&c->out);
		c->next = k->conns;
		if (k->conns)
			k->conns->prev = c;
		k->conns = c;
		k->nconns++;
		ev_watch(ev, cfd, EV_READ, conn_event, c);
		/* A client writes its request right after connecting: read it
		 * now rather than a round of the loop later (under load, a
		 * round is every other client's request). */
		conn_event(ev, cfd, EV_READ, c);
	}
}

static void
accept_event(struct ev *ev, int fd, int events, void *arg)
{
	(void)events;
	accept_conns(ev, arg, fd, 0);
}

static void
accept_ssh_event(struct ev *ev, int fd, int events, void *arg)
{
	(void)events;
	accept_conns(ev, arg, fd, 1);
}

/* The socket khd's sshd sessions reach (sshd.c): anyone who can open it may
 * connect, and the peer's uid decides what it may do (verbs_ssh). */
int
server_listen_ssh(struct khd *k, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long (max %zu bytes): %s",
			 sizeof(sun.sun_path) - 1, path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(path);
	mode_t old = umask(0);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 128) < 0 ||
	    ev_watch(k->ev, fd, EV_READ, accept_ssh_event, k) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

const char *
conn_svc_key(const struct conn *c)
{
	return c->svckey;
}

int
conn_set_svc_key(struct conn *c, const char *key)
{
	char *k = strdup(key);
	if (k == NULL)
		return -1;
	free(c->svckey);
	c->svckey = k;
	return 0;
}

uid_t
conn_peer_uid(const struct conn *c)
{
	return c->peer_uid;
}

int
conn_ssh_peer(const struct conn *c, uid_t *uid)
{
	if (!c->ssh)
		return 0;
	*uid = c->peer_uid;
	return 1;
}

/* Clients are bounded by descriptors: take the hard limit, keep a reserve
 * for everything else khd opens. */
static void
conn_limit(struct khd *k)
{
	struct rlimit rl;
	rlim_t want = CONN_MAX_CAP + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		k->conn_max = 1024 - FD_RESERVE;
		return;
	}
	if (rl.rlim_cur < want) {
		rl.rlim_cur =
		    rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	k->conn_max = rl.rlim_cur > 2 * FD_RESERVE ? (int)(rl.rlim_cur - FD_RESERVE) : FD_RESERVE;
	if (k->conn_max > CONN_MAX_CAP)
		k->conn_max = CONN_MAX_CAP;
}

int
server_listen(struct khd *k, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	conn_limit(k);

	if (strlen(k->sock) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long (max %zu bytes): %s",
			 sizeof(sun.sun_path) - 1, k->sock);
		return -1;
	}
	memcpy(sun.sun_path, k->sock, strlen(k->sock) + 1);
	k->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->lfd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* We hold the directory's lock, so a socket file left here is stale. */
	unlink(k->sock);
	mode_t old = umask(0117);
	int rc = bind(k->lfd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(k->lfd, 4096) < 0) {
		snprintf(err, errlen, "%s: %s", k->sock, strerror(errno));
		close(k->lfd);
		return -1;
	}
	if (ev_watch(k->ev, k->lfd, EV_READ, accept_event, k) < 0) {
		snprintf(err, errlen, "%s: %s", k->sock, strerror(errno));
		return -1;
	}
	if (adm_fd(&k->adm) >= 0 && ev_watch(k->ev, adm_fd(&k->adm), EV_READ, adm_event, k) < 0) {
		snprintf(err, errlen, "admission worker: %s", strerror(errno));
		return -1;
	}
	ev_after(k->ev, SWEEP_MS, sweep, k);
	return 0;
}

void
server_close(struct khd *k)
{
	while (k->conns)
		conn_free(k->conns);
	if (k->lfd >= 0) {
		ev_unwatch(k->ev, k->lfd);
		close(k->lfd);
		unlink(k->sock);
	}
}
