/* exec: an exec stream.  Each process has three pipes and a pidfd in khd's
 * loop.  Output is read only while the client has room (a slow client
 * slows its processes, never khd); input is held per process up to a bound,
 * past which the client is no longer read.  A process's "x" frame comes
 * once it has ended and its pipes are drained: output its background
 * children write after that is not collected. */
#include "exec/exec.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/util.h"
#include "exec/frame.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_CHUNK   65536
#define EXEC_INLIMIT (4u << 20) /* input held for all processes before the client waits */

struct xproc {
	struct exec *x;
	int rank;
	pid_t pid;
	int pidfd, in, out, err;
	int exited, reported, in_closing;
	int status;
	struct rusage ru;
	uint64_t start_ns, end_ns;
	struct sbuf inbuf;
};

struct exec {
	struct ev *ev;
	struct exec_io io;
	struct xproc **p;
	int n, cap, left;
	int stalled, paused, failed;
	size_t inheld;
	struct sbuf hdr; /* a frame header being read */
	size_t need;	 /* data bytes of the current i frame still to come */
	int target;	 /* its rank, or XF_ALL */
};

static void pipe_event(struct ev *ev, int fd, int events, void *arg);
static void in_event(struct ev *ev, int fd, int events, void *arg);
static void exit_event(struct ev *ev, int fd, int events, void *arg);

struct exec *
exec_new(struct ev *ev, const struct exec_io *io)
{
	struct exec *x = calloc(1, sizeof(*x));

	if (x == NULL)
		fatal("exec");
	x->ev = ev;
	x->io = *io;
	sbuf_init(&x->hdr);
	return x;
}

void
exec_add(struct exec *x, int rank, const struct node_proc *np)
{
	struct xproc *p = calloc(1, sizeof(*p));

	if (p == NULL)
		fatal("exec");
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 8;
		if ((x->p = realloc(x->p, sizeof(*x->p) * (size_t)x->cap)) == NULL)
			fatal("exec");
	}
	x->p[x->n++] = p;
	x->left++;
	p->x = x;
	p->rank = rank;
	p->pid = np->pid;
	p->pidfd = np->pidfd;
	p->in = np->in;
	p->out = np->out;
	p->err = np->err;
	p->start_ns = now_ns();
	sbuf_init(&p->inbuf);
	if (!x->stalled) {
		ev_watch(x->ev, p->out, EV_READ, pipe_event, p);
		ev_watch(x->ev, p->err, EV_READ, pipe_event, p);
	}
	if (p->pidfd >= 0)
		ev_watch(x->ev, p->pidfd, EV_READ, exit_event, p);
}

static void
send_line(struct exec *x, const char *s)
{
	x->io.send(x->io.ctx, s, strlen(s));
}

static void
close_in(struct xproc *p)
{
	if (p->in >= 0) {
		ev_unwatch(p->x->ev, p->in);
		close(p->in);
		p->in = -1;
	}
	p->x->inheld -= p->inbuf.len;
	sbuf_reset(&p->inbuf);
}

/* Ended and drained: say so; the last one ends the stream. */
static void
maybe_report(struct xproc *p)
{
	struct exec *x = p->x;
	char line[160];
	int st;

	if (!p->exited || p->reported || p->out >= 0 || p->err >= 0)
		return;
	p->reported = 1;
	close_in(p);
	st = WIFSIGNALED(p->status) ? 128 + WTERMSIG(p->status) : WEXITSTATUS(p->status);
	snprintf(line, sizeof(line), "x %d %d %llu %llu %llu\n", p->rank, st,
		 (unsigned long long)(p->ru.ru_utime.tv_sec * 1000 + p->ru.ru_utime.tv_usec / 1000),
		 (unsigned long long)(p->ru.ru_stime.tv_sec * 1000 + p->ru.ru_stime.tv_usec / 1000),
		 (unsigned long long)((p->end_ns - p->start_ns) / 1000000));
	send_line(x, line);
	if (--x->left == 0)
		send_line(x, "d\n");
	if (x->paused && x->inheld < EXEC_INLIMIT / 2) {
		x->paused = 0;
		x->io.pause(x->io.ctx, 0);
	}
}

static void
stall(struct exec *x)
{
	x->stalled = 1;
	for (int i = 0; i < x->n; i++) {
		if (x->p[i]->out >= 0)
			ev_unwatch(x->ev, x->p[i]->out);
		if (x->p[i]->err >= 0)
			ev_unwatch(x->ev, x->p[i]->err);
	}
}

/* Move what one pipe has to the client while it has room.  An ended
 * process's pipe counts as finished once it is empty. */
static void
pump(struct xproc *p, int *fdp, char kind)
{
	struct exec *x = p->x;
	char buf[EXEC_CHUNK], hdr[48];

	while (*fdp >= 0) {
		if (x->io.room(x->io.ctx) < sizeof(buf) + sizeof(hdr)) {
			stall(x);
			return;
		}
		ssize_t n = read(*fdp, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !p->exited)
			return;
		if (n <= 0) {
			ev_unwatch(x->ev, *fdp);
			close(*fdp);
			*fdp = -1;
			break;
		}
		snprintf(hdr, sizeof(hdr), "%c %d %zd\n", kind, p->rank, n);
		send_line(x, hdr);
		x->io.send(x->io.ctx, buf, (size_t)n);
	}
	maybe_report(p);
}

static void
pipe_event(struct ev *ev, int fd, int events, void *arg)
{
	struct xproc *p = arg;
	(void)ev;
	(void)events;
	if (fd == p->out)
		pump(p, &p->out, 'o');
	else if (fd == p->err)
		pump(p, &p->err, 'e');
}

static int
reap(struct xproc *p, int options)
{
	int st = 0;
	pid_t r;

	while ((r = wait4(p->pid, &st, options, &p->ru)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return 0;
	if (r < 0)
		log_warn("exec: wait4 %d", (int)p->pid);
	p->exited = 1;
	p->status = st;
	p->end_ns = now_ns();
	if (p->pidfd >= 0) {
		ev_unwatch(p->x->ev, p->pidfd);
		close(p->pidfd);
		p->pidfd = -1;
	}
	return 1;
}

static void
exit_event(struct ev *ev, int fd, int events, void *arg)
{
	struct xproc *p = arg;
	(void)ev;
	(void)fd;
	(void)events;
	if (reap(p, WNOHANG) == 0)
		return;
	if (!p->x->stalled) {
		pump(p, &p->out, 'o');
		pump(p, &p->err, 'e');
	}
	maybe_report(p);
}

void
exec_writable(struct exec *x)
{
	if (!x->stalled)
		return;
	x->stalled = 0;
	for (int i = 0; i < x->n && !x->stalled; i++) {
		struct xproc *p = x->p[i];
		if (p->out >= 0)
			ev_watch(x->ev, p->out, EV_READ, pipe_event, p);
		if (p->err >= 0)
			ev_watch(x->ev, p->err, EV_READ, pipe_event, p);
		if (p->exited) {
			pump(p, &p->out, 'o');
			pump(p, &p->err, 'e');
		}
	}
}

/* Write what is held for p's stdin; close it when asked and all is out. */
static void
flush_in(struct xproc *p)
{
	struct exec *x = p->x;

	while (p->in >= 0 && p->inbuf.len > 0) {
		ssize_t n = write(p->in, p->inbuf.s, p->inbuf.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ev_watch(x->ev, p->in, EV_WRITE, in_event, p);
			return;
		}
		if (n < 0) { /* EPIPE: it does not read its input any more */
			close_in(p);
			return;
		}
		sbuf_consume(&p->inbuf, (size_t)n);
		x->inheld -= (size_t)n;
	}
	if (p->in >= 0)
		ev_unwatch(x->ev, p->in);
	if (p->in >= 0 && p->in_closing)
		close_in(p);
	if (x->paused && x->inheld < EXEC_INLIMIT / 2) {
		x->paused = 0;
		x->io.pause(x->io.ctx, 0);
	}
}

static void
in_event(struct ev *ev, int fd, int events, void *arg)
{
	(void)ev;
	(void)fd;
	(void)events;
	flush_in(arg);
}

static void
bad_input(struct exec *x, const char *why)
{
	char line[160];

	if (x->failed)
		return;
	x->failed = 1;
	snprintf(line, sizeof(line), "err proto %s\n", why);
	send_line(x, line);
	x->io.fail(x->io.ctx);
}

static struct xproc *
proc_of(struct exec *x, int rank)
{
	for (int i = 0; i < x->n; i++)
		if (x->p[i]->rank == rank)
			return x->p[i];
	return NULL;
}

static void
data_to(struct exec *x, const char *s, size_t n)
{
	for (int i = 0; i < x->n; i++) {
		struct xproc *p = x->p[i];
		if ((x->target != XF_ALL && p->rank != x->target) || p->in < 0 || p->in_closing)
			continue;
		sbuf_add(&p->inbuf, s, n);
		x->inheld += n;
		flush_in(p);
	}
	if (!x->paused && x->inheld >= EXEC_INLIMIT) {
		x->paused = 1;
		x->io.pause(x->io.ctx, 1);
	}
}

static void
frame(struct exec *x, const struct xframe *f)
{
	char why[96];

	if ((f->kind == 'i' || f->kind == 'c' || f->kind == 'k') && f->rank != XF_ALL &&
	    !proc_of(x, f->rank)) {
		snprintf(why, sizeof(why), "no process of node %d in this stream", f->rank);
		bad_input(x, why);
		return;
	}
	switch (f->kind) {
	case 'i':
		x->need = f->len;
		x->target = f->rank;
		break;
	case 'c':
		for (int i = 0; i < x->n; i++)
			if (f->rank == XF_ALL || x->p[i]->rank == f->rank) {
				x->p[i]->in_closing = 1;
				flush_in(x->p[i]);
			}
		break;
	case 'k':
		/* Each process leads its own session: signal the group.  Its
		 * leader is not reaped yet, so the id is still its own.  With a
		 * rank, that node's process alone. */
		for (int i = 0; i < x->n; i++)
			if (!x->p[i]->exited && (f->rank == XF_ALL || x->p[i]->rank == f->rank))
				kill(-x->p[i]->pid, f->sig);
		break;
	}
}

void
exec_input(struct exec *x, const char *s, size_t n)
{
	char why[96];

	while (n > 0 && !x->failed) {
		if (x->need > 0) {
			size_t k = n < x->need ? n : x->need;
			data_to(x, s, k);
			x->need -= k;
			s += k;
			n -= k;
			continue;
		}
		const char *nl = memchr(s, '\n', n);
		size_t k = nl ? (size_t)(nl - s) : n;
		if (x->hdr.len + k >= XF_MAXLINE) {
			bad_input(x, "frame header too long");
			return;
		}
		sbuf_add(&x->hdr, s, k);
		s += k;
		n -= k;
		if (nl == NULL)
			return;
		s++;
		n--;
		struct xframe f;
		if (xframe_parse(x->hdr.s, x->hdr.len, 0, &f, why, sizeof(why)) < 0) {
			bad_input(x, why);
			return;
		}
		sbuf_reset(&x->hdr);
		frame(x, &f);
	}
}

void
exec_input_end(struct exec *x)
{
	struct xframe f = {.kind = 'c', .rank = XF_ALL};

	if (x->need > 0 || x->hdr.len > 0) {
		bad_input(x, "the input ended inside a frame");
		return;
	}
	frame(x, &f);
}

void
exec_free(struct exec *x)
{
	uint64_t deadline = now_ns() + 1000000000ULL;

	if (x == NULL)
		return;
	for (int i = 0; i < x->n; i++)
		if (!x->p[i]->exited)
			kill(-x->p[i]->pid, SIGKILL);
	for (int i = 0; i < x->n; i++) {
		struct xproc *p = x->p[i];
		while (!p->exited && reap(p, WNOHANG) == 0) {
			uint64_t now = now_ns();
			if (now >= deadline) {
				log_warnx("exec: process %d did not end within 1 s of SIGKILL",
					  (int)p->pid);
				break;
			}
			struct pollfd pfd = {p->pidfd, POLLIN, 0};
			if (p->pidfd < 0 ||
			    poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) < 0)
				usleep(1000);
		}
		if (p->pidfd >= 0) {
			ev_unwatch(x->ev, p->pidfd);
			close(p->pidfd);
		}
		close_in(p);
		if (p->out >= 0) {
			ev_unwatch(x->ev, p->out);
			close(p->out);
		}
		if (p->err >= 0) {
			ev_unwatch(x->ev, p->err);
			close(p->err);
		}
		sbuf_free(&p->inbuf);
		free(p);
	}
	free(x->p);
	sbuf_free(&x->hdr);
	free(x);
}
