/* srviface: a byte relay from the public domain to khd's sshd.  Each
 * direction has a buffer; a full buffer stops reading its source until
 * the other end took it, so a slow peer holds only its own connection.
 * The relay never looks at the bytes (they are OpenSSH's). */
#include "srviface/srviface.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "khd/ev.h"

#define BUF  65536
#define MAXC 256 /* relayed connections at once */

struct half {
	char buf[BUF];
	size_t len, off;
	int eof; /* the source ended: shut the destination's write side once drained */
};

struct pair {
	struct srviface *s;
	int fd[2];	  /* 0: the node, 1: sshd */
	struct half h[2]; /* h[i]: bytes read from fd[i], to write to fd[1-i] */
	int connecting;	  /* fd[1] not connected yet */
	int wclosed[2];
	struct pair *next;
};

struct srviface {
	struct ev *ev;
	int lfd;
	struct sockaddr_in to;
	struct pair *pairs;
	int n;
	unsigned long total;
};

static void pair_event(struct ev *ev, int fd, int events, void *arg);

static void
pair_free(struct pair *p)
{
	struct srviface *s = p->s;
	for (int i = 0; i < 2; i++) {
		ev_unwatch(s->ev, p->fd[i]);
		close(p->fd[i]);
	}
	for (struct pair **q = &s->pairs; *q; q = &(*q)->next)
		if (*q == p) {
			*q = p->next;
			break;
		}
	s->n--;
	free(p);
}

/* What each end should be watched for now. */
static void
pair_rewatch(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		int ev = 0;
		if (p->connecting && i == 1) {
			ev = EV_WRITE;
		} else {
			/* read from i while its buffer has room and it has not ended */
			if (!p->h[i].eof && p->h[i].len < BUF && !(p->connecting && i == 0))
				ev |= EV_READ;
			/* write to i what the other side read */
			if (p->h[1 - i].len > p->h[1 - i].off)
				ev |= EV_WRITE;
		}
		ev_watch(p->s->ev, p->fd[i], ev, pair_event, p);
	}
}

static int
pair_step(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		struct half *h = &p->h[i];
		int dst = p->fd[1 - i];
		while (h->len > h->off) {
			ssize_t w = send(dst, h->buf + h->off, h->len - h->off, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				return -1;
			}
			h->off += (size_t)w;
		}
		if (h->off == h->len)
			h->off = h->len = 0;
		if (h->eof && h->len == 0 && !p->wclosed[1 - i]) {
			shutdown(dst, SHUT_WR);
			p->wclosed[1 - i] = 1;
		}
	}
	return p->wclosed[0] && p->wclosed[1] ? -1 : 0;
}

static void
pair_event(struct ev *ev, int fd, int events, void *arg)
{
	struct pair *p = arg;
	if (p->connecting && fd == p->fd[1]) {
		int e = 0;
		socklen_t el = sizeof(e);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e != 0) {
			log_warnx("srviface: sshd: %s", strerror(e));
			pair_free(p);
			return;
		}
		p->connecting = 0;
	} else if (events & EV_READ) {
		int i = fd == p->fd[0] ? 0 : 1;
		struct half *h = &p->h[i];
		ssize_t r = recv(fd, h->buf + h->len, BUF - h->len, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			h->eof = 1;
		} else if (r > 0) {
			h->len += (size_t)r;
		}
	}
	if (pair_step(p) < 0) {
		pair_free(p);
		return;
	}
	pair_rewatch(p);
}

static void
accept_event(struct ev *ev, int fd, int events, void *arg)
{
	struct srviface *s = arg;
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	int a;
	while ((a = accept4(fd, (struct sockaddr *)&from, &fl, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
	       0) {
		char ip[INET_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET, &from.sin_addr, ip, sizeof(ip));
		if (s->n >= MAXC) {
			log_warnx("srviface: %s refused: %d connections already", ip, MAXC);
			close(a);
			continue;
		}
		int b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pair *p = b >= 0 ? calloc(1, sizeof(*p)) : NULL;
		if (p == NULL || (connect(b, (struct sockaddr *)&s->to, sizeof(s->to)) < 0 &&
				  errno != EINPROGRESS)) {
			log_warn("srviface: relay for %s", ip);
			free(p);
			if (b >= 0)
				close(b);
			close(a);
			continue;
		}
		p->s = s;
		p->fd[0] = a;
		p->fd[1] = b;
		p->connecting = 1;
		p->next = s->pairs;
		s->pairs = p;
		s->n++;
		s->total++;
		log_info("srviface: connection from %s:%d relayed to sshd", ip,
			 ntohs(from.sin_port));
		pair_rewatch(p);
		fl = sizeof(from);
	}
}

struct srviface *
srviface_new(struct ev *ev, int lfd, const char *addr, int port, char *err, size_t errlen)
{
	struct srviface *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return seterr(err, errlen, "out of memory"), NULL;
	s->ev = ev;
	s->lfd = lfd;
	s->to.sin_family = AF_INET;
	s->to.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &s->to.sin_addr) != 1) {
		free(s);
		seterr(err, errlen, "service interface: bad sshd address %s", addr);
		return NULL;
	}
	if (ev_watch(ev, lfd, EV_READ, accept_event, s) < 0) {
		free(s);
		seterr(err, errlen, "service interface: cannot watch its socket");
		return NULL;
	}
	return s;
}

void
srviface_free(struct srviface *s)
{
	if (s == NULL)
		return;
	while (s->pairs)
		pair_free(s->pairs);
	ev_unwatch(s->ev, s->lfd);
	close(s->lfd);
	free(s);
}

void
srviface_counts(const struct srviface *s, int *now, unsigned long *total)
{
	*now = s ? s->n : 0;
	*total = s ? s->total : 0;
}
