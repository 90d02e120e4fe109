/* rdmad: the engine process.  khd starts it as a fresh image of itself
 * (rdma.c); it owns the nodes' device sockets once khd hands them over,
 * the device contexts on them, their rings and regions, and runs the copy
 * engine (engine.c) in one loop: while there is work it polls every ring
 * (a cross-core wake-up costs tens of microseconds here, a poll of a cache
 * line a fraction of one), after a quiet spell it marks every ring asleep
 * and blocks in epoll until a doorbell, a node's request or khd wakes it.
 * A node's messages and rings are hostile input: fixed-size messages,
 * unexpected descriptors closed, a broken ring ends that context only. */
#include "common/log.h"
#include "rdma/ctl.h"
#include "rdma/engine.h"
#include "rdma/khrdma.h"
#include "rdma/ring.h"
#include "rdma/scm.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SPIN_US_DEFAULT 200
#define BUDGET		(256 * 1024) /* bytes per context per round: fairness */
#define MAX_CONNS_NODE	256

enum { K_CTL = 1, K_LISTEN, K_CONN, K_BELL, K_KHD };

struct tag {
	int kind;
	int rank;
	struct conn *c;
};

struct conn {
	struct tag tag, bell;
	int fd;
	int rank;
	struct re_ep *ep;
	void *ring;
	int ringfd, dbfd, cqfd;
	int dead;	   /* closed: freed once the current batch of events is done */
	struct conn *next; /* all connections (then: the closed ones) */
};

struct lst {
	struct tag tag;
	int fd;
};

struct rdmad {
	struct rdma_engine *e;
	struct rc_shared *sh;
	int ctl, epfd;
	int khd_lfd; /* where the next khd attaches (-1: none) */
	struct tag ctltag, khdtag;
	struct lst lst[RE_MAX_NODES];
	struct rc_msg set[RE_MAX_NODES]; /* what khd last said of each node */
	struct conn *conns;
	int nconns[RE_MAX_NODES];
	uint64_t spin_ns;
	struct conn **active; /* contexts with an open device, for the poll loop */
	int nactive, capactive;
	struct conn *closed;   /* to free after the events at hand */
	struct pfence *fences; /* fences waiting for operations in progress */
};

struct pfence {
	struct conn *c;
	uint64_t ticket;
	struct pfence *next;
};

static uint64_t
mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static ssize_t
recv_msg(int fd, void *buf, size_t len, int *fds, int maxfds, int *nfds)
{
	return scm_recv(fd, buf, len, fds, maxfds, nfds, MSG_DONTWAIT);
}

/* A node that does not read its socket only loses its own answer. */
static int
send_msg(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
	return scm_send(fd, buf, len, fds, nfds, MSG_DONTWAIT) == (ssize_t)len ? 0 : -1;
}

/* ---- connections from nodes ---- */

static void
active_add(struct rdmad *d, struct conn *c)
{
	if (d->nactive == d->capactive) {
		int cap = d->capactive ? d->capactive * 2 : 64;
		struct conn **a = realloc(d->active, (size_t)cap * sizeof(*a));
		if (a == NULL)
			fatal("rdma engine");
		d->active = a;
		d->capactive = cap;
	}
	d->active[d->nactive++] = c;
}

static void
active_del(struct rdmad *d, struct conn *c)
{
	for (int i = 0; i < d->nactive; i++)
		if (d->active[i] == c) {
			d->active[i] = d->active[--d->nactive];
			return;
		}
}

static void
conn_close(struct rdmad *d, struct conn *c)
{
	for (struct conn **p = &d->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->ep) {
		active_del(d, c);
		re_ep_close(d->e, c->ep);
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->dbfd, NULL);
		munmap(c->ring, KHR_RING_SIZE);
		close(c->ringfd);
		close(c->dbfd);
		close(c->cqfd);
	}
	for (struct pfence **p = &d->fences; *p;) {
		if ((*p)->c == c) {
			struct pfence *f = *p;
			*p = f->next;
			free(f);
		} else {
			p = &(*p)->next;
		}
	}
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	d->nconns[c->rank]--;
	c->dead = 1;
	c->next = d->closed;
	d->closed = c;
}

static void
conn_accept(struct rdmad *d, int rank)
{
	int fd = accept4(d->lst[rank].fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL || d->nconns[rank] >= MAX_CONNS_NODE) {
		free(c);
		close(fd); /* the node opened too many: it sees its connect end */
		return;
	}
	c->fd = fd;
	c->rank = rank;
	c->ringfd = c->dbfd = c->cqfd = -1;
	c->tag = (struct tag){K_CONN, rank, c};
	c->bell = (struct tag){K_BELL, rank, c};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->tag};
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->next = d->conns;
	d->conns = c;
	d->nconns[rank]++;
}

static void
do_open(struct rdmad *d, struct conn *c, const struct khr_req *rq, struct khr_rep *rep)
{
	char ifname[KHR_IFNAMSIZ];
	int fds[3];

	memcpy(ifname, rq->ifname, sizeof(ifname));
	ifname[sizeof(ifname) - 1] = '\0';
	if (c->ep) {
		rep->status = KHRDMA_E_BADDESC;
		snprintf(rep->msg, sizeof(rep->msg), "this connection has a device open already");
		send_msg(c->fd, rep, sizeof(*rep), NULL, 0);
		return;
	}
	int rfd = memfd_create("khrdma-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *ring = MAP_FAILED;
	int db = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	    cq = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rfd < 0 || db < 0 || cq < 0 || ftruncate(rfd, KHR_RING_SIZE) < 0 ||
	    fcntl(rfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
	    (ring = mmap(NULL, KHR_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0)) ==
		MAP_FAILED) {
		rep->status = KHRDMA_E_SYS;
		snprintf(rep->msg, sizeof(rep->msg), "ring: %s", strerror(errno));
		goto fail;
	}
	struct re_ep *ep = re_ep_open(d->e, c->rank, ifname, ring, rep);
	if (ep == NULL)
		goto fail;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->bell};
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, db, &ev) < 0) {
		re_ep_close(d->e, ep);
		rep->status = KHRDMA_E_SYS;
		snprintf(rep->msg, sizeof(rep->msg), "doorbell: %s", strerror(errno));
		goto fail;
	}
	c->ep = ep;
	c->ring = ring;
	c->ringfd = rfd;
	c->dbfd = db;
	c->cqfd = cq;
	active_add(d, c);
	fds[0] = rfd;
	fds[1] = db;
	fds[2] = cq;
	send_msg(c->fd, rep, sizeof(*rep), fds, 3);
	return;
fail:
	if (ring != MAP_FAILED)
		munmap(ring, KHR_RING_SIZE);
	int all[3] = {rfd, db, cq};
	close_fds(all, 3);
	send_msg(c->fd, rep, sizeof(*rep), NULL, 0);
}

static void
conn_request(struct rdmad *d, struct conn *c)
{
	struct khr_req rq;
	struct khr_rep rep;
	int fds[1], nfds;
	ssize_t n = recv_msg(c->fd, &rq, sizeof(rq), fds, 1, &nfds);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR && errno != EMSGSIZE)) {
		conn_close(d, c);
		return;
	}
	if (n < 0 && errno != EMSGSIZE)
		return;
	memset(&rep, 0, sizeof(rep));
	rep.type = n == (ssize_t)sizeof(rq) ? rq.type : 0;
	if (n != (ssize_t)sizeof(rq) || rq.proto != KHR_PROTO) {
		close_fds(fds, nfds);
		rep.status = KHRDMA_E_BADDESC;
		snprintf(rep.msg, sizeof(rep.msg), "malformed request (library version?)");
		send_msg(c->fd, &rep, sizeof(rep), NULL, 0);
		return;
	}
	if (rq.type == KHR_M_OPEN) {
		close_fds(fds, nfds);
		do_open(d, c, &rq, &rep);
		return;
	}
	if (c->ep == NULL) {
		close_fds(fds, nfds);
		rep.status = KHRDMA_E_BADDESC;
		snprintf(rep.msg, sizeof(rep.msg), "no device open on this connection");
	} else if (rq.type == KHR_M_REG) {
		if (nfds != 1) {
			rep.status = KHRDMA_E_LOCAL;
			snprintf(rep.msg, sizeof(rep.msg), "no memory given to register");
		} else {
			re_reg(d->e, c->ep, fds[0], rq.off, rq.len, rq.access, &rep);
		}
		close_fds(fds, nfds); /* the mapping keeps the memory */
	} else if (rq.type == KHR_M_FENCE) {
		close_fds(fds, nfds);
		uint64_t t = re_fence_ticket(d->e);
		struct pfence *f;
		if (!re_fence_done(d->e, t) && (f = calloc(1, sizeof(*f))) != NULL) {
			*f = (struct pfence){.c = c, .ticket = t, .next = d->fences};
			d->fences = f;
			return; /* answered when the operations in progress are done */
		}
	} else if (rq.type == KHR_M_DEREG) {
		close_fds(fds, nfds);
		rep.status = re_dereg(d->e, c->ep, rq.key);
		if (rep.status)
			snprintf(rep.msg, sizeof(rep.msg), "no such region");
	} else {
		close_fds(fds, nfds);
		rep.status = KHRDMA_E_BADDESC;
		snprintf(rep.msg, sizeof(rep.msg), "unknown request %u", rq.type);
	}
	send_msg(c->fd, &rep, sizeof(rep), NULL, 0);
}

/* ---- khd's messages ---- */

static void
drop_node(struct rdmad *d, int rank)
{
	re_node_drop(d->e, rank);
	if (d->lst[rank].fd >= 0) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->lst[rank].fd, NULL);
		close(d->lst[rank].fd);
		d->lst[rank].fd = -1;
	}
	for (struct conn *c = d->conns, *nx; c; c = nx) {
		nx = c->next;
		if (c->rank == rank)
			conn_close(d, c);
	}
}

/* khd is gone.  Nodes it left running keep their devices, contexts and
 * regions, and the usage not yet taken, for the next khd (it attaches at
 * RC_KHD_FD); with no device left there is nothing to keep. */
static void
khd_gone(struct rdmad *d)
{
	int kept = 0;

	epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->ctl, NULL);
	close(d->ctl);
	d->ctl = -1;
	for (int r = 0; r < RE_MAX_NODES; r++)
		kept += d->lst[r].fd >= 0;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->khdtag};
	if (kept == 0 || d->khd_lfd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->khd_lfd, &ev) < 0)
		_exit(0);
	log_info("rdma engine: khd is gone; the devices of %d nodes stay for the next khd", kept);
}

/* The next khd attaches: it gets the shared page and every device kept.
 * Only root (khd) may; a khd that does not read is let go after 2 s. */
static void
khd_attach(struct rdmad *d)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	struct timeval tv = {2, 0};
	int c = accept4(d->khd_lfd, NULL, NULL, SOCK_CLOEXEC), shm = RC_SHM_FD, ok = 1;

	if (c < 0)
		return;
	if (d->ctl >= 0 || getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
	    cr.uid != geteuid() || setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		close(c);
		return;
	}
	struct rc_ack hello = {.type = RC_HELLO, .rank = (int32_t)getpid()};
	for (int r = 0; r < RE_MAX_NODES; r++)
		hello.count += d->lst[r].fd >= 0;
	ok = scm_send(c, &hello, sizeof(hello), &shm, 1, 0) == (ssize_t)sizeof(hello);
	for (int r = 0; ok && r < RE_MAX_NODES; r++) {
		if (d->lst[r].fd < 0)
			continue;
		struct rc_msg m = d->set[r];
		m.type = RC_HAVE;
		m.rank = r;
		ok = scm_send(c, &m, sizeof(m), &d->lst[r].fd, 1, 0) == (ssize_t)sizeof(m);
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->ctltag};
	if (!ok || epoll_ctl(d->epfd, EPOLL_CTL_ADD, c, &ev) < 0) {
		log_warnx("rdma engine: a khd that attached did not take the devices");
		close(c);
		return;
	}
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->khd_lfd, NULL);
	d->ctl = c;
	log_info("rdma engine: khd (pid %d) attached; it takes %u devices", (int)cr.pid,
		 hello.count);
}

static void
ctl_request(struct rdmad *d)
{
	struct rc_msg m;
	struct rc_ack a;
	int fds[1], nfds;
	ssize_t n = recv_msg(d->ctl, &m, sizeof(m), fds, 1, &nfds);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		khd_gone(d);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.type = m.type;
	a.rank = m.rank;
	if (n != (ssize_t)sizeof(m) || m.rank < 0 || m.rank >= RE_MAX_NODES || m.n > RE_MAX_IFS) {
		log_warnx("rdma engine: malformed control message");
		close_fds(fds, nfds);
		send_msg(d->ctl, &a, sizeof(a), NULL, 0);
		return;
	}
	switch (m.type) {
	case RC_LISTEN:
		re_node_set(d->e, m.rank, m.netids, (int)m.n, m.reg_limit);
		d->set[m.rank] = m;
		if (nfds == 1) {
			struct lst *l = &d->lst[m.rank];
			if (l->fd >= 0) {
				epoll_ctl(d->epfd, EPOLL_CTL_DEL, l->fd, NULL);
				close(l->fd);
			}
			l->fd = fds[0];
			l->tag = (struct tag){K_LISTEN, m.rank, NULL};
			fcntl(l->fd, F_SETFL, O_NONBLOCK);
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->tag};
			if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0)
				log_warn("rdma engine: node %d's device", m.rank);
			nfds = 0;
		}
		break;
	case RC_NODE:
		re_node_set(d->e, m.rank, m.netids, (int)m.n, m.reg_limit);
		d->set[m.rank].n = m.n;
		memcpy(d->set[m.rank].netids, m.netids, sizeof(m.netids));
		break;
	case RC_DROP:
		drop_node(d, m.rank);
		break;
	case RC_DISCARD:
		re_node_discard(d->e, m.rank);
		break;
	case RC_TAKE:
		a.count = (uint32_t)re_take(d->e, d->sh->mailbox, RC_MAILBOX);
		break;
	default:
		log_warnx("rdma engine: unknown control message %u", m.type);
	}
	close_fds(fds, nfds);
	/* khd waits for this: a blocking send (it reads acks promptly). */
	struct iovec iov = {&a, sizeof(a)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	while (sendmsg(d->ctl, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* ---- the loop ---- */

/* Returns how many doorbells rang. */
static int
handle(struct rdmad *d, struct epoll_event *ev, int n)
{
	int bells = 0;
	for (int i = 0; i < n; i++) {
		struct tag *t = ev[i].data.ptr;
		uint64_t v;
		if (t->c && t->c->dead)
			continue;
		switch (t->kind) {
		case K_CTL:
			if (d->ctl >= 0)
				ctl_request(d);
			break;
		case K_KHD:
			khd_attach(d);
			break;
		case K_LISTEN:
			if (d->lst[t->rank].fd >= 0)
				conn_accept(d, t->rank);
			break;
		case K_CONN:
			conn_request(d, t->c);
			break;
		case K_BELL:
			if (read(t->c->dbfd, &v, sizeof(v)) < 0)
				errno = 0;
			bells++;
			break;
		}
	}
	while (d->closed) {
		struct conn *c = d->closed;
		d->closed = c->next;
		free(c);
	}
	return bells;
}

/* One round over every open context.  Returns how many descriptors ran. */
static int
service_all(struct rdmad *d)
{
	int work = 0;
	for (int i = 0; i < d->nactive; i++) {
		struct conn *c = d->active[i];
		int sig = 0;
		int r = re_service(d->e, c->ep, BUDGET, &sig);
		if (r < 0) {
			log_warnx(
			    "rdma engine: node %d wrote nonsense into its ring: context ended",
			    c->rank);
			continue;
		}
		work += r;
		if (sig) {
			uint64_t one = 1;
			if (write(c->cqfd, &one, sizeof(one)) < 0)
				errno = 0;
		}
	}
	return work;
}

/* Answer the fences whose operations have all completed. */
static void
fences_check(struct rdmad *d)
{
	for (struct pfence **p = &d->fences; *p;) {
		struct pfence *f = *p;
		if (!re_fence_done(d->e, f->ticket)) {
			p = &f->next;
			continue;
		}
		struct khr_rep rep = {.type = KHR_M_FENCE};
		send_msg(f->c->fd, &rep, sizeof(rep), NULL, 0);
		*p = f->next;
		free(f);
	}
}

static void
set_asleep(struct rdmad *d, int asleep)
{
	for (int i = 0; i < d->nactive; i++)
		re_ep_set_asleep(d->active[i]->ep, asleep);
}

static int
any_pending(struct rdmad *d)
{
	for (int i = 0; i < d->nactive; i++)
		if (re_pending(d->active[i]->ep))
			return 1;
	return 0;
}

static void __attribute__((noreturn)) engine_main(void)
{
	struct rdmad *d = calloc(1, sizeof(*d));
	struct epoll_event ev[64];
	const char *v;

	prctl(PR_SET_NAME, "kh-rdma-engine", 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (d == NULL)
		_exit(1);
	log_init("kh-rdma-engine", getenv(RC_LOG_ENV), 0);
	d->spin_ns = SPIN_US_DEFAULT * 1000ULL;
	if ((v = getenv(RC_SPIN_ENV)) != NULL)
		d->spin_ns = strtoull(v, NULL, 10) * 1000ULL;
	d->sh =
	    mmap(NULL, sizeof(struct rc_shared), PROT_READ | PROT_WRITE, MAP_SHARED, RC_SHM_FD, 0);
	if (d->sh == MAP_FAILED)
		_exit(1);
	d->ctl = RC_FD;
	d->e = re_new(0, &d->sh->stats);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->e == NULL || d->epfd < 0)
		_exit(1);
	for (int r = 0; r < RE_MAX_NODES; r++)
		d->lst[r].fd = -1;
	d->ctltag.kind = K_CTL;
	d->khdtag.kind = K_KHD;
	int ty = 0;
	socklen_t tl = sizeof(ty);
	d->khd_lfd = getsockopt(RC_KHD_FD, SOL_SOCKET, SO_TYPE, &ty, &tl) == 0 ? RC_KHD_FD : -1;
	if (d->khd_lfd >= 0)
		fcntl(d->khd_lfd, F_SETFL, O_NONBLOCK);
	struct epoll_event cev = {.events = EPOLLIN, .data.ptr = &d->ctltag};
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->ctl, &cev) < 0)
		_exit(1);
	struct rc_ack hello = {.type = RC_HELLO};
	if (send(d->ctl, &hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello))
		_exit(1);

	uint64_t last = mono_ns();
	unsigned iter = 0;
	for (;;) {
		int work = service_all(d);
		if (d->fences)
			fences_check(d);
		if ((++iter & 63) == 0) {
			/* Requests and doorbells, without waiting. */
			int n = epoll_wait(d->epfd, ev, 64, 0);
			if (n > 0)
				handle(d, ev, n);
		}
		if (work) {
			last = 0;
			continue;
		}
		uint64_t now = mono_ns();
		if (last == 0)
			last = now;
		if (now - last < d->spin_ns) {
			cpu_relax();
			/* A process spinning on this core for a completion
			 * (one sharing the engine's core) must get it. */
			if ((iter & 255) == 0)
				sched_yield();
			continue;
		}
		/* Quiet: sleep, after telling every ring to ring the doorbell.
		 * Woken by khd or a node's request alone, with no ring to
		 * serve, it sleeps again at once: only doorbells mean work. */
		set_asleep(d, 1);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		int bells = 0;
		while (!bells && !any_pending(d)) {
			int n = epoll_wait(d->epfd, ev, 64, -1);
			d->sh->stats.wakeups++;
			if (n > 0)
				bells = handle(d, ev, n);
			set_asleep(d, 1); /* contexts opened meanwhile */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
		}
		set_asleep(d, 0);
		last = mono_ns();
	}
}

/* rdma.c's constructor found the marker: this process is the engine. */
void
rdmad_main(void)
{
	engine_main();
}
