/* server: khd's Unix socket.  Connections are non-blocking; each buffers
 * its input up to one request line and its replies until the peer reads
 * them.  A client that vanishes mid-request costs only its buffers. */
#include "khd/khd.h"
#include "console/console.h"
#include "exec/exec.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONN_MAX      1024
#define OUT_HIGHWATER (8u << 20) /* a client not reading its replies is dropped */

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
};

static void conn_event(struct ev *ev, int fd, int events, void *arg);

static void
conn_free(struct conn *c)
{
	struct khd *k = c->k;
	if (c->reader)
		console_detach(k, c->reader);
	if (c->exec)
		exec_free(c->exec);
	if (c->timer)
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
		uint64_t wait = verbs_dispatch(c->k, c, &c->req, &c->out);
		if (wait > 0) {
			c->timer = ev_after(c->k->ev, (wait + 999999) / 1000000, held_done, c);
			break;
		}
		sbuf_consume(&c->in, len + 1);
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
	if (conn_flush(c) < 0) {
		conn_free(c);
		return;
	}
	conn_rewatch(c);
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
		if (k->nconns >= CONN_MAX) {
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

int
server_listen(struct khd *k, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

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
	if (rc < 0 || listen(k->lfd, 512) < 0) {
		snprintf(err, errlen, "%s: %s", k->sock, strerror(errno));
		close(k->lfd);
		return -1;
	}
	return ev_watch(k->ev, k->lfd, EV_READ, accept_event, k);
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
