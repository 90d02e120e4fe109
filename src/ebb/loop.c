/* loop: one non-preemptive event loop per core (an epoll set, an eventfd
 * that other threads ring when they spawn work here, and a timer heap
 * whose earliest deadline bounds the wait), and futures. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/ebb_int.h"

struct event {
	struct event *next;
	ebb_fn fn;
	void *arg;
};

struct timer {
	uint64_t due; /* ns, monotonic */
	int64_t id;
	ebb_fn fn;
	void *arg;
};

struct watch {
	struct watch *next;
	int fd;
	void (*fn)(void *arg, uint32_t events);
	void *arg;
};

struct loop {
	int core;
	int epfd, evfd;
	pthread_t th;
	int started;
	pthread_mutex_t mu; /* guards the queue, the timers and stop */
	struct event *head, **tail;
	struct timer *timers; /* a min-heap on due */
	size_t ntimers, captimers;
	int64_t nexttimer;
	struct watch *watches; /* touched by the loop's own thread and under mu */
	int stop;
};

static __thread struct loop *self;

struct loop *
loop_self(void)
{
	return self;
}

struct loop *
loop_new(int core, char *err, size_t errlen)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return seterr(err, errlen, "out of memory"), NULL;
	l->core = core;
	l->tail = &l->head;
	pthread_mutex_init(&l->mu, NULL);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->evfd < 0) {
		seterr(err, errlen, "event loop: %s", strerror(errno));
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0) {
		seterr(err, errlen, "event loop: %s", strerror(errno));
		goto fail;
	}
	return l;
fail:
	loop_free(l);
	return NULL;
}

static void
wake(struct loop *l)
{
	uint64_t one = 1;
	if (write(l->evfd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the loop is woken anyway */
	}
}

/* ---- the timer heap ---- */

static void
heap_swap(struct timer *a, struct timer *b)
{
	struct timer t = *a;
	*a = *b;
	*b = t;
}

static void
heap_up(struct loop *l, size_t i)
{
	while (i > 0 && l->timers[(i - 1) / 2].due > l->timers[i].due) {
		heap_swap(&l->timers[(i - 1) / 2], &l->timers[i]);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
		if (a < l->ntimers && l->timers[a].due < l->timers[m].due)
			m = a;
		if (b < l->ntimers && l->timers[b].due < l->timers[m].due)
			m = b;
		if (m == i)
			return;
		heap_swap(&l->timers[m], &l->timers[i]);
		i = m;
	}
}

static void
heap_remove(struct loop *l, size_t i)
{
	l->timers[i] = l->timers[--l->ntimers];
	if (i < l->ntimers) {
		heap_down(l, i);
		heap_up(l, i);
	}
}

/* ---- the loop ---- */

static void *
loop_main(void *arg)
{
	struct loop *l = arg;
	self = l;
	rt_thread_core(l->core);
	struct epoll_event evs[32];
	for (;;) {
		int timeout = -1;
		pthread_mutex_lock(&l->mu);
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		/* events spawned so far run first, in order */
		struct event *q = l->head;
		l->head = NULL;
		l->tail = &l->head;
		uint64_t now = now_ns();
		if (q == NULL && l->ntimers > 0 && l->timers[0].due > now) {
			uint64_t d = (l->timers[0].due - now + 999999) / 1000000;
			timeout = d > 60000 ? 60000 : (int)d;
		} else if (q != NULL || l->ntimers > 0) {
			timeout = 0;
		}
		pthread_mutex_unlock(&l->mu);
		while (q != NULL) {
			struct event *e = q;
			q = q->next;
			e->fn(e->arg);
			free(e);
		}
		int n = epoll_wait(l->epfd, evs, 32, timeout);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t v;
				if (read(l->evfd, &v, sizeof(v)) < 0) {
					/* EAGAIN: another wake-up took it */
				}
				continue;
			}
			struct watch *w = evs[i].data.ptr;
			if (w->fn != NULL)
				w->fn(w->arg, evs[i].events);
		}
		/* timers that are due, one at a time: a timer may add or cancel */
		for (;;) {
			pthread_mutex_lock(&l->mu);
			if (l->ntimers == 0 || l->timers[0].due > now_ns()) {
				pthread_mutex_unlock(&l->mu);
				break;
			}
			struct timer t = l->timers[0];
			heap_remove(l, 0);
			pthread_mutex_unlock(&l->mu);
			t.fn(t.arg);
		}
	}
	return NULL;
}

int
loop_start(struct loop *l)
{
	if (pthread_create(&l->th, NULL, loop_main, l) != 0)
		return -1;
	l->started = 1;
	return 0;
}

int
loop_pin(struct loop *l, int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return l->started && pthread_setaffinity_np(l->th, sizeof(set), &set) == 0 ? 0 : -1;
}

void
loop_stop(struct loop *l)
{
	if (l == NULL || !l->started)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_mutex_unlock(&l->mu);
	wake(l);
	pthread_join(l->th, NULL);
	l->started = 0;
}

void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	loop_stop(l);
	while (l->head != NULL) {
		struct event *e = l->head;
		l->head = e->next;
		free(e);
	}
	while (l->watches != NULL) {
		struct watch *w = l->watches;
		l->watches = w->next;
		free(w);
	}
	free(l->timers);
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->evfd >= 0)
		close(l->evfd);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static struct loop *
target(int core)
{
	if (core == EBB_HERE)
		return self;
	return rt_loop(core);
}

int
ebb_spawn(int core, ebb_fn fn, void *arg)
{
	struct loop *l = target(core);
	if (l == NULL || fn == NULL)
		return -1;
	struct event *e = malloc(sizeof(*e));
	if (e == NULL)
		return -1;
	e->fn = fn;
	e->arg = arg;
	e->next = NULL;
	pthread_mutex_lock(&l->mu);
	if (l->stop) {
		pthread_mutex_unlock(&l->mu);
		free(e);
		return -1;
	}
	int was_empty = l->head == NULL;
	*l->tail = e;
	l->tail = &e->next;
	pthread_mutex_unlock(&l->mu);
	/* the loop's own thread looks at its queue before it waits again */
	if (was_empty && l != self)
		wake(l);
	return 0;
}

int64_t
ebb_timer(int core, unsigned ms, ebb_fn fn, void *arg)
{
	struct loop *l = target(core);
	if (l == NULL || fn == NULL)
		return -1;
	pthread_mutex_lock(&l->mu);
	if (l->ntimers == l->captimers) {
		size_t cap = l->captimers ? l->captimers * 2 : 16;
		struct timer *t = realloc(l->timers, cap * sizeof(*t));
		if (t == NULL) {
			pthread_mutex_unlock(&l->mu);
			return -1;
		}
		l->timers = t;
		l->captimers = cap;
	}
	int64_t id = ++l->nexttimer;
	l->timers[l->ntimers] = (struct timer){
	    .due = now_ns() + (uint64_t)ms * 1000000u, .id = id, .fn = fn, .arg = arg};
	heap_up(l, l->ntimers++);
	int first = l->timers[0].id == id;
	pthread_mutex_unlock(&l->mu);
	if (first && l != self)
		wake(l);
	return id;
}

int
ebb_timer_cancel(int core, int64_t timer)
{
	struct loop *l = target(core);
	if (l == NULL)
		return -1;
	int rc = -1;
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < l->ntimers; i++) {
		if (l->timers[i].id == timer) {
			heap_remove(l, i);
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

int
ebb_watch(int core, int fd, uint32_t events, void (*fn)(void *arg, uint32_t events), void *arg)
{
	struct loop *l = target(core);
	if (l == NULL || fn == NULL || fd < 0)
		return -1;
	struct watch *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	w->fd = fd;
	w->fn = fn;
	w->arg = arg;
	struct epoll_event ev = {.events = events, .data.ptr = w};
	pthread_mutex_lock(&l->mu);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pthread_mutex_unlock(&l->mu);
		free(w);
		return -1;
	}
	w->next = l->watches;
	l->watches = w;
	pthread_mutex_unlock(&l->mu);
	return 0;
}

/* Only from the loop's own thread (or once the loop stopped): the watch may
 * be in the batch epoll_wait returned, so it is freed only then. */
int
ebb_unwatch(int core, int fd)
{
	struct loop *l = target(core);
	if (l == NULL)
		return -1;
	pthread_mutex_lock(&l->mu);
	for (struct watch **p = &l->watches; *p != NULL; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			struct watch *w = *p;
			*p = w->next;
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
			w->fn = NULL;
			pthread_mutex_unlock(&l->mu);
			/* an event for it may be in this batch: free it after */
			if (ebb_spawn(core, free, w) < 0)
				free(w);
			return 0;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return -1;
}

/* ---- futures ---- */

struct ebb_future {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready, status;
	void *data;
	size_t len;
	void (*then)(struct ebb_future *, void *);
	void *thenarg;
	int thencore;
};

struct ebb_future *
ebb_future_new(void)
{
	struct ebb_future *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cv, &ca);
	pthread_condattr_destroy(&ca);
	return f;
}

struct then_ev {
	struct ebb_future *f;
	void (*fn)(struct ebb_future *, void *);
	void *arg;
};

static void
then_run(void *arg)
{
	struct then_ev *t = arg;
	t->fn(t->f, t->arg);
	free(t);
}

static void
fire(struct ebb_future *f, void (*fn)(struct ebb_future *, void *), void *arg, int core)
{
	if (core == EBB_HERE) {
		fn(f, arg);
		return;
	}
	struct then_ev *t = malloc(sizeof(*t));
	if (t != NULL) {
		*t = (struct then_ev){f, fn, arg};
		if (ebb_spawn(core, then_run, t) == 0)
			return;
		free(t);
	}
	/* the core is gone (the runtime stops): run it here rather than lose it */
	fn(f, arg);
}

int
ebb_future_set(struct ebb_future *f, int status, const void *data, size_t len)
{
	void *copy = NULL;
	if (len > 0) {
		copy = malloc(len);
		if (copy == NULL) {
			status = ENOMEM;
			len = 0;
		} else {
			memcpy(copy, data, len);
		}
	}
	pthread_mutex_lock(&f->mu);
	if (f->ready) {
		pthread_mutex_unlock(&f->mu);
		free(copy);
		return -1;
	}
	f->ready = 1;
	f->status = status;
	f->data = copy;
	f->len = len;
	void (*fn)(struct ebb_future *, void *) = f->then;
	void *arg = f->thenarg;
	int core = f->thencore;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (fn != NULL)
		fire(f, fn, arg, core);
	return 0;
}

int
ebb_future_wait(struct ebb_future *f, int ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (ms >= 0) {
		until.tv_sec += ms / 1000;
		until.tv_nsec += (long)(ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&f->mu);
	while (!f->ready) {
		if (ms < 0) {
			pthread_cond_wait(&f->cv, &f->mu);
		} else if (pthread_cond_timedwait(&f->cv, &f->mu, &until) == ETIMEDOUT) {
			pthread_mutex_unlock(&f->mu);
			return -ETIMEDOUT;
		}
	}
	int s = f->status;
	pthread_mutex_unlock(&f->mu);
	return s;
}

int
ebb_future_then(struct ebb_future *f, int core, void (*fn)(struct ebb_future *, void *), void *arg)
{
	pthread_mutex_lock(&f->mu);
	if (f->then != NULL) {
		pthread_mutex_unlock(&f->mu);
		return -1;
	}
	if (!f->ready) {
		f->then = fn;
		f->thenarg = arg;
		f->thencore = core;
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	pthread_mutex_unlock(&f->mu);
	fire(f, fn, arg, core);
	return 0;
}

int
ebb_future_ready(const struct ebb_future *f)
{
	struct ebb_future *m = (struct ebb_future *)f;
	pthread_mutex_lock(&m->mu);
	int r = m->ready;
	pthread_mutex_unlock(&m->mu);
	return r;
}

const void *
ebb_future_data(const struct ebb_future *f, size_t *len)
{
	if (len != NULL)
		*len = f->len;
	return f->data;
}

void
ebb_future_free(struct ebb_future *f)
{
	if (f == NULL)
		return;
	free(f->data);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}
