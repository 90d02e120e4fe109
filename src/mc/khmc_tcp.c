/* khmc_tcp: libkhmc's TCP transport: memcached's text protocol over one
 * connection per server, opened when first needed and dropped on any error
 * (the next request opens a new one).  Sockets are non-blocking and every
 * wait is a poll with the handle's timeout. */
#include "mc/khmc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define RBUF_INIT  16384u
#define MGET_CHUNK 100 /* keys per get line */

void
khmc_tcp_close(struct khmc_server *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->rlen = s->rpos = 0;
}

static int
fail(struct khmc *c, struct khmc_server *s, int rc, int err)
{
	c->err = err;
	khmc_tcp_close(s);
	return rc;
}

static int
wait_fd(struct khmc *c, int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int n;

	do
		n = poll(&p, 1, c->timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	return n > 0 ? 0 : -1;
}

static int
tcp_connect(struct khmc *c, struct khmc_server *s)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res, *ai;
	char port[8];
	int err = ECONNREFUSED;

	if (s->fd >= 0)
		return KHMC_OK;
	snprintf(port, sizeof(port), "%u", s->port);
	if (getaddrinfo(s->host, port, &hints, &res) != 0)
		return fail(c, s, KHMC_CONNECT, EHOSTUNREACH);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			err = errno;
			close(fd);
			continue;
		}
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (wait_fd(c, fd, POLLOUT) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
			err = soerr ? soerr : errno;
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->fd = fd;
		break;
	}
	freeaddrinfo(res);
	if (s->fd < 0)
		return fail(c, s, KHMC_CONNECT, err);
	if (s->rbuf == NULL) {
		s->rbuf = malloc(RBUF_INIT);
		if (s->rbuf == NULL)
			return fail(c, s, KHMC_NOMEM, ENOMEM);
		s->rcap = RBUF_INIT;
	}
	s->rlen = s->rpos = 0;
	return KHMC_OK;
}

static int
send_iov(struct khmc *c, struct khmc_server *s, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t k = writev(s->fd, iov, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
			    wait_fd(c, s->fd, POLLOUT) == 0)
				continue;
			return fail(c, s, KHMC_IO, errno);
		}
		size_t left = (size_t)k;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return KHMC_OK;
}

/* At least want unparsed bytes in rbuf. */
static int
fill(struct khmc *c, struct khmc_server *s, size_t want)
{
	if (s->rpos > 0 && s->rlen - s->rpos < want) {
		memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
		s->rlen -= s->rpos;
		s->rpos = 0;
	}
	if (want > s->rcap) {
		size_t cap = s->rcap;
		while (cap < want)
			cap *= 2;
		char *b = realloc(s->rbuf, cap);
		if (b == NULL)
			return fail(c, s, KHMC_NOMEM, ENOMEM);
		s->rbuf = b;
		s->rcap = cap;
	}
	while (s->rlen - s->rpos < want) {
		ssize_t k = read(s->fd, s->rbuf + s->rlen, s->rcap - s->rlen);
		if (k > 0) {
			s->rlen += (size_t)k;
		} else if (k == 0) {
			return fail(c, s, KHMC_IO, ECONNRESET);
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wait_fd(c, s->fd, POLLIN) < 0)
				return fail(c, s, KHMC_IO, errno);
		} else {
			return fail(c, s, KHMC_IO, errno);
		}
	}
	return KHMC_OK;
}

/* The next reply line, without "\r\n", NUL-terminated in place. */
static int
read_line(struct khmc *c, struct khmc_server *s, char **line)
{
	size_t scanned = 0;

	for (;;) {
		char *p = s->rbuf + s->rpos;
		size_t avail = s->rlen - s->rpos;
		char *nl = avail > scanned ? memchr(p + scanned, '\n', avail - scanned) : NULL;
		if (nl != NULL) {
			char *end = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
			*end = '\0';
			*line = p;
			s->rpos += (size_t)(nl - p) + 1;
			return KHMC_OK;
		}
		scanned = avail;
		if (avail > (1u << 20))
			return fail(c, s, KHMC_PROTOCOL, EPROTO);
		int rc = fill(c, s, avail + 1);
		if (rc != KHMC_OK)
			return rc;
	}
}

/* The error class of a reply line that is not the expected one. */
static int
reply_error(struct khmc *c, struct khmc_server *s, const char *line)
{
	if (strncmp(line, "SERVER_ERROR", 12) == 0)
		return KHMC_SERVER_ERROR;
	if (strncmp(line, "CLIENT_ERROR", 12) == 0)
		return KHMC_CLIENT_ERROR;
	/* ERROR or anything else: we and the server disagree; start afresh */
	return fail(c, s, KHMC_PROTOCOL, EPROTO);
}

static int
ensure_wbuf(struct khmc *c, size_t n)
{
	if (n <= c->wcap)
		return 0;
	size_t cap = c->wcap ? c->wcap : 4096;
	while (cap < n)
		cap *= 2;
	char *b = realloc(c->wbuf, cap);
	if (b == NULL)
		return -1;
	c->wbuf = b;
	c->wcap = cap;
	return 0;
}

static int
tcp_mget(struct khmc *c, struct khmc_server *s, const char *const *keys, const size_t *klens,
	 const size_t *idx, size_t n, void (*fn)(void *arg, size_t i, const struct khmc_hit *h),
	 void *arg)
{
	int rc = tcp_connect(c, s);
	if (rc != KHMC_OK)
		return rc;
	/* Every request first, then every reply: one round trip. */
	size_t need = 0, nreq = 0;
	for (size_t i = 0; i < n; i++)
		need += klens[idx[i]] + 1;
	need += (n / MGET_CHUNK + 1) * 8;
	if (ensure_wbuf(c, need) < 0)
		return KHMC_NOMEM;
	c->wlen = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % MGET_CHUNK == 0) {
			if (i > 0) {
				memcpy(c->wbuf + c->wlen, "\r\n", 2);
				c->wlen += 2;
			}
			memcpy(c->wbuf + c->wlen, "gets", 4);
			c->wlen += 4;
			nreq++;
		}
		c->wbuf[c->wlen++] = ' ';
		memcpy(c->wbuf + c->wlen, keys[idx[i]], klens[idx[i]]);
		c->wlen += klens[idx[i]];
	}
	memcpy(c->wbuf + c->wlen, "\r\n", 2);
	c->wlen += 2;
	struct iovec iov = {c->wbuf, c->wlen};
	if ((rc = send_iov(c, s, &iov, 1)) != KHMC_OK)
		return rc;

	size_t j = 0;
	while (nreq > 0) {
		char *line;
		if ((rc = read_line(c, s, &line)) != KHMC_OK)
			return rc;
		if (strcmp(line, "END") == 0) {
			nreq--;
			continue;
		}
		char key[256];
		unsigned long long flags, bytes, cas = 0;
		int used = 0;
		if (strncmp(line, "VALUE ", 6) != 0 || sscanf(line + 6, "%255s %llu %llu %llu%n",
							      key, &flags, &bytes, &cas, &used) < 3)
			return reply_error(c, s, line);
		if ((rc = fill(c, s, (size_t)bytes + 2)) != KHMC_OK)
			return rc;
		const char *v = s->rbuf + s->rpos;
		if (v[bytes] != '\r' || v[bytes + 1] != '\n')
			return fail(c, s, KHMC_PROTOCOL, EPROTO);
		s->rpos += (size_t)bytes + 2;
		size_t kl = strlen(key);
		while (j < n && (klens[idx[j]] != kl || memcmp(keys[idx[j]], key, kl) != 0))
			j++;
		if (j == n)
			return fail(c, s, KHMC_PROTOCOL, EPROTO);
		struct khmc_hit h = {v, (size_t)bytes, (uint32_t)flags, cas};
		fn(arg, idx[j], &h);
		j++;
	}
	return KHMC_OK;
}

int
khmc_tcp_store(struct khmc *c, struct khmc_server *s, const char *verb, const char *key,
	       size_t klen, const void *value, size_t vlen, uint32_t exptime, uint32_t flags,
	       uint64_t cas)
{
	char head[400], *line;
	int rc = tcp_connect(c, s);

	if (rc != KHMC_OK)
		return rc;
	int n = snprintf(head, sizeof(head), "%s %.*s %u %u %zu", verb, (int)klen, key, flags,
			 exptime, vlen);
	if (strcmp(verb, "cas") == 0)
		n += snprintf(head + n, sizeof(head) - (size_t)n, " %llu", (unsigned long long)cas);
	n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	struct iovec iov[3] = {{head, (size_t)n}, {(void *)value, vlen}, {"\r\n", 2}};
	if ((rc = send_iov(c, s, iov, 3)) != KHMC_OK || (rc = read_line(c, s, &line)) != KHMC_OK)
		return rc;
	if (strcmp(line, "STORED") == 0)
		return KHMC_OK;
	if (strcmp(line, "NOT_STORED") == 0)
		return KHMC_NOTSTORED;
	if (strcmp(line, "EXISTS") == 0)
		return KHMC_EXISTS;
	if (strcmp(line, "NOT_FOUND") == 0)
		return KHMC_NOTFOUND;
	return reply_error(c, s, line);
}

int
khmc_tcp_simple(struct khmc *c, struct khmc_server *s, const char *req, char *reply, size_t cap)
{
	char *line;
	int rc = tcp_connect(c, s);

	if (rc != KHMC_OK)
		return rc;
	struct iovec iov = {(void *)req, strlen(req)};
	if ((rc = send_iov(c, s, &iov, 1)) != KHMC_OK || (rc = read_line(c, s, &line)) != KHMC_OK)
		return rc;
	snprintf(reply, cap, "%s", line);
	return KHMC_OK;
}

int
khmc_tcp_stats(struct khmc *c, struct khmc_server *s, khmc_stat_fn *fn, void *arg)
{
	char *line;
	int rc = tcp_connect(c, s);

	if (rc != KHMC_OK)
		return rc;
	struct iovec iov = {"stats\r\n", 7};
	if ((rc = send_iov(c, s, &iov, 1)) != KHMC_OK)
		return rc;
	for (;;) {
		if ((rc = read_line(c, s, &line)) != KHMC_OK)
			return rc;
		if (strcmp(line, "END") == 0)
			return KHMC_OK;
		if (strncmp(line, "STAT ", 5) != 0)
			return reply_error(c, s, line);
		char *name = line + 5, *sp = strchr(name, ' ');
		if (sp == NULL)
			return fail(c, s, KHMC_PROTOCOL, EPROTO);
		*sp = '\0';
		fn(arg, name, sp + 1);
	}
}

const struct khmc_transport khmc_tcp = {
    .name = "tcp",
    .mget = tcp_mget,
    .close = khmc_tcp_close,
};
