/* ev: epoll plus a small array of timers (khd has few: throttled requests,
 * time-outs), scanned for the earliest.  Handlers are indexed by fd. */
#include "khd/ev.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct handler {
	ev_fd_fn *fn;
	void *arg;
	int mask;
};

struct timer {
	uint64_t id, when;
	ev_timer_fn *fn;
	void *arg;
};

struct ev {
	int epfd;
	int stop;
	struct handler *h;
	int nh;
	struct timer *t;
	int nt, capt;
	uint64_t next_id;
};

struct ev *
ev_new(void)
{
	struct ev *ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		fatal("ev");
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0)
		fatal("epoll_create1");
	ev->next_id = 1;
	return ev;
}

void
ev_free(struct ev *ev)
{
	close(ev->epfd);
	free(ev->h);
	free(ev->t);
	free(ev);
}

int
ev_watch(struct ev *ev, int fd, int events, ev_fd_fn *fn, void *arg)
{
	struct epoll_event e = {0};

	if (fd >= ev->nh) {
		int n = ev->nh ? ev->nh : 64;
		while (n <= fd)
			n *= 2;
		struct handler *h = realloc(ev->h, (size_t)n * sizeof(*h));
		if (h == NULL)
			fatal("ev");
		memset(h + ev->nh, 0, (size_t)(n - ev->nh) * sizeof(*h));
		ev->h = h;
		ev->nh = n;
	}
	e.events = ((events & EV_READ) ? EPOLLIN : 0) | ((events & EV_WRITE) ? EPOLLOUT : 0);
	e.data.fd = fd;
	int op = ev->h[fd].fn ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(ev->epfd, op, fd, &e) < 0) {
		log_warn("epoll_ctl %d", fd);
		return -1;
	}
	ev->h[fd] = (struct handler){fn, arg, events};
	return 0;
}

void
ev_unwatch(struct ev *ev, int fd)
{
	if (fd < 0 || fd >= ev->nh || ev->h[fd].fn == NULL)
		return;
	epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
	ev->h[fd] = (struct handler){0};
}

uint64_t
ev_after(struct ev *ev, uint64_t ms, ev_timer_fn *fn, void *arg)
{
	if (ev->nt == ev->capt) {
		ev->capt = ev->capt ? ev->capt * 2 : 16;
		ev->t = realloc(ev->t, (size_t)ev->capt * sizeof(*ev->t));
		if (ev->t == NULL)
			fatal("ev");
	}
	ev->t[ev->nt++] = (struct timer){ev->next_id, now_ns() + ms * 1000000ULL, fn, arg};
	return ev->next_id++;
}

void
ev_cancel(struct ev *ev, uint64_t id)
{
	for (int i = 0; i < ev->nt; i++)
		if (ev->t[i].id == id) {
			ev->t[i] = ev->t[--ev->nt];
			return;
		}
}

static int
next_timeout(struct ev *ev)
{
	uint64_t now = now_ns(), best = UINT64_MAX;
	for (int i = 0; i < ev->nt; i++)
		if (ev->t[i].when < best)
			best = ev->t[i].when;
	if (best == UINT64_MAX)
		return -1;
	if (best <= now)
		return 0;
	uint64_t ms = (best - now + 999999) / 1000000;
	return ms > 60000 ? 60000 : (int)ms;
}

static void
run_timers(struct ev *ev)
{
	uint64_t now = now_ns();
	for (int i = 0; i < ev->nt;) {
		if (ev->t[i].when <= now) {
			struct timer t = ev->t[i];
			ev->t[i] = ev->t[--ev->nt];
			t.fn(ev, t.arg);
			i = 0; /* the callback may have changed the array */
			now = now_ns();
		} else {
			i++;
		}
	}
}

void
ev_run(struct ev *ev)
{
	struct epoll_event evs[64];

	while (!ev->stop) {
		int n = epoll_wait(ev->epfd, evs, 64, next_timeout(ev));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd >= ev->nh || ev->h[fd].fn == NULL)
				continue;
			int what = 0;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				what |= EV_READ;
			if (evs[i].events & (EPOLLOUT | EPOLLERR))
				what |= EV_WRITE;
			struct handler h = ev->h[fd];
			h.fn(ev, fd, what & (h.mask | EV_READ), h.arg);
		}
		run_timers(ev);
	}
}

void
ev_stop(struct ev *ev)
{
	ev->stop = 1;
}
