/* rdma: khd's side of the device (rdma.h).  It starts the engine process
 * (rdmad.c) as a fresh image of khd, makes each booted node's device
 * socket and hands it over, and keeps what it told the engine, so that a
 * replacement engine (the old one died or hung) is told again. */
#include "rdma/rdma.h"
#include "common/util.h"
#include "common/log.h"
#include "rdma/ctl.h"
#include "rdma/scm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define SYNC_MS 2000 /* an engine that does not answer this long is replaced */

struct rnode {
	int booted;
	int orphan; /* kept by an engine whose khd died: not yet adopted */
	int lfd;    /* the node's device socket (the engine has a copy) */
	struct rc_msg set;
};

struct rdma {
	char dir[PATH_MAX];
	char log[PATH_MAX];
	int dirfd;
	pid_t pid;
	int ctl;
	int attached; /* the engine was an earlier khd's (not our child) */
	int shmfd;
	struct rc_shared *sh;
	int pending; /* acks to read */
	uint32_t take_count;
	uint64_t taken_ops; /* the engine's operation count at the last take */
	struct rnode *nodes;
};

static void
engine_kill(struct rdma *r)
{
	if (r->ctl >= 0)
		close(r->ctl);
	r->ctl = -1;
	r->pending = 0;
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		while (!r->attached && waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	r->pid = 0;
	r->attached = 0;
}

/* A listening socket at DIR/run/rdma/name (one left there is replaced),
 * reached through the directory's descriptor: DIR may be longer than a
 * socket address can hold.  -1 with errno, and nothing left there. */
static int
listen_at(struct rdma *r, const char *name, mode_t mode, int backlog)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e;

	unlinkat(r->dirfd, name, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", r->dirfd, name);
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) >= 0 &&
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    fchmodat(r->dirfd, name, mode, 0) == 0 && listen(fd, backlog) == 0)
		return fd;
	e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(r->dirfd, name, 0);
	errno = e;
	return -1;
}

/* The socket where an engine whose khd died waits for the next one,
 * bound for a new engine (-1 with err). */
static int
khd_listen(struct rdma *r, char *err, size_t errlen)
{
	int fd = listen_at(r, RC_SOCK, 0600, 4);
	if (fd < 0)
		snprintf(err, errlen, "rdma: %s/run/rdma/%s: %s", r->dir, RC_SOCK, strerror(errno));
	return fd;
}

static int send_ctl(struct rdma *r, const struct rc_msg *m, int fd);
static int drain(struct rdma *r);

/* A fresh engine, told about every running node.  Returns 0 or -1. */
static int
engine_spawn(struct rdma *r, char *err, size_t errlen)
{
	int sv[2];
	pid_t self = getpid(), p;
	struct pollfd pfd;
	struct rc_ack hello;

	/* What an engine that died had open is gone with it. */
	r->sh->stats.contexts = r->sh->stats.regions = r->sh->stats.reg_bytes = 0;
	int kl = khd_listen(r, err, errlen);
	if (kl < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "rdma: socketpair: %s", strerror(errno));
		close(kl);
		return -1;
	}
	if ((p = fork()) < 0) {
		snprintf(err, errlen, "rdma: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		close(kl);
		return -1;
	}
	if (p == 0) {
		char env[64], logenv[PATH_MAX + 16], spin[64];
		char *const argv[] = {"kh-rdma-engine", NULL};
		char *envp[5] = {env, logenv, NULL, NULL, NULL};
		const char *sp = getenv(RC_SPIN_ENV);
		/* No death signal: it outlives khd while nodes have
		 * devices, for the next khd (rdmad.c, khd_gone). */
		if (getppid() != self)
			_exit(1);
		setsid(); /* not in khd's process group, nor its terminal's */
		if (dup2(sv[1], RC_FD) < 0 || dup2(r->shmfd, RC_SHM_FD) < 0 ||
		    dup2(kl, RC_KHD_FD) < 0)
			_exit(1);
		if (syscall(SYS_close_range, RC_KHD_FD + 1U, ~0U, 0U) < 0)
			for (int fd = RC_KHD_FD + 1; fd < 65536; fd++)
				close(fd);
		/* Not the standard streams of whoever started khd (it outlives
		 * khd): its warnings go to the log. */
		if (stdio_to_null() < 0)
			_exit(1);
		snprintf(env, sizeof(env), "%s=%d", RC_ENV, (int)self);
		snprintf(logenv, sizeof(logenv), "%s=%s", RC_LOG_ENV, r->log);
		if (sp) {
			snprintf(spin, sizeof(spin), "%s=%s", RC_SPIN_ENV, sp);
			envp[2] = spin;
		}
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	close(sv[1]);
	close(kl);
	pfd.fd = sv[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 10000) != 1 || recv(sv[0], &hello, sizeof(hello), 0) != sizeof(hello) ||
	    hello.type != RC_HELLO) {
		snprintf(err, errlen, "rdma: the engine did not start");
		r->ctl = sv[0];
		r->pid = p;
		engine_kill(r);
		return -1;
	}
	r->pid = p;
	r->ctl = sv[0];
	r->pending = 0;
	for (int i = 0; i < RE_MAX_NODES; i++)
		if (r->nodes[i].booted) {
			struct rc_msg m = r->nodes[i].set;
			m.type = RC_LISTEN;
			send_ctl(r, &m, r->nodes[i].lfd);
		}
	return 0;
}

/* Attach to the engine an earlier khd left running (its nodes have
 * devices): take its shared page and the devices it kept, as orphans
 * until adopted.  Returns 0, or -1 when there is none (or it would not
 * answer), with nothing changed. */
static int
engine_attach(struct rdma *r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	struct rc_ack hello;
	struct timeval tv = {2, 0};
	int fd, shm = -1, nfds = 0, got = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", r->dirfd, RC_SOCK);
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.uid != geteuid() ||
	    scm_recv(fd, &hello, sizeof(hello), &shm, 1, &nfds, 0) != (ssize_t)sizeof(hello) ||
	    hello.type != RC_HELLO || nfds != 1 || hello.count > RE_MAX_NODES || hello.rank <= 1)
		goto fail;
	r->sh = mmap(NULL, sizeof(struct rc_shared), PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0);
	if (r->sh == MAP_FAILED) {
		r->sh = NULL;
		goto fail;
	}
	for (uint32_t i = 0; i < hello.count; i++) {
		struct rc_msg m;
		int lfd = -1, nl = 0;
		if (scm_recv(fd, &m, sizeof(m), &lfd, 1, &nl, 0) != (ssize_t)sizeof(m) ||
		    m.type != RC_HAVE || nl != 1 || m.rank < 0 || m.rank >= RE_MAX_NODES ||
		    m.n > RE_MAX_IFS || r->nodes[m.rank].booted) {
			if (nl == 1)
				close(lfd);
			goto fail;
		}
		struct rnode *nd = &r->nodes[m.rank];
		nd->set = m;
		nd->set.type = RC_LISTEN;
		nd->lfd = lfd;
		nd->booted = nd->orphan = 1;
		got++;
	}
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	r->shmfd = shm;
	r->ctl = fd;
	/* (the credentials are the listener's: the khd that made it) */
	r->pid = hello.rank;
	r->attached = 1;
	log_info("rdma: took over the engine an earlier khd left running (pid %d), with the "
		 "devices of %d nodes",
		 (int)hello.rank, got);
	return 0;
fail:
	for (int i = 0; i < RE_MAX_NODES; i++)
		if (r->nodes[i].booted) {
			close(r->nodes[i].lfd);
			memset(&r->nodes[i], 0, sizeof(r->nodes[i]));
		}
	if (r->sh)
		munmap(r->sh, sizeof(struct rc_shared));
	r->sh = NULL;
	if (shm >= 0)
		close(shm);
	close(fd);
	return -1;
}

struct rdma *
rdma_start(const char *dir, const char *log, char *err, size_t errlen)
{
	struct rdma *r = calloc(1, sizeof(*r));
	char path[PATH_MAX + 16];

	if (r == NULL || (r->nodes = calloc(RE_MAX_NODES, sizeof(*r->nodes))) == NULL) {
		free(r);
		snprintf(err, errlen, "rdma: out of memory");
		return NULL;
	}
	r->ctl = r->shmfd = r->dirfd = -1;
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	snprintf(r->log, sizeof(r->log), "%s", log ? log : "/dev/null");
	snprintf(path, sizeof(path), "%s/run/rdma", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if ((r->dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (engine_attach(r) == 0)
		return r;
	/* Sockets of a khd that died: nothing listens on them any more. */
	for (int i = 0; i < RE_MAX_NODES; i++) {
		char n[32];
		snprintf(n, sizeof(n), "n%d.sock", i);
		unlinkat(r->dirfd, n, 0);
	}
	r->shmfd = memfd_create("kh-rdma-shared", MFD_CLOEXEC);
	if (r->shmfd < 0 || ftruncate(r->shmfd, sizeof(struct rc_shared)) < 0 ||
	    (r->sh = mmap(NULL, sizeof(struct rc_shared), PROT_READ | PROT_WRITE, MAP_SHARED,
			  r->shmfd, 0)) == MAP_FAILED) {
		r->sh = NULL;
		snprintf(err, errlen, "rdma: shared memory: %s", strerror(errno));
		goto fail;
	}
	if (engine_spawn(r, err, errlen) < 0)
		goto fail;
	return r;
fail:
	rdma_stop(r);
	return NULL;
}

static void
rdma_free(struct rdma *r)
{
	if (r->sh)
		munmap(r->sh, sizeof(struct rc_shared));
	if (r->shmfd >= 0)
		close(r->shmfd);
	if (r->dirfd >= 0)
		close(r->dirfd);
	free(r->nodes);
	free(r);
}

void
rdma_stop(struct rdma *r)
{
	if (r == NULL)
		return;
	engine_kill(r);
	for (int i = 0; i < RE_MAX_NODES && r->nodes; i++)
		if (r->nodes[i].booted)
			rdma_node_end(r, i);
	unlinkat(r->dirfd, RC_SOCK, 0);
	rdma_free(r);
}

void
rdma_leave(struct rdma *r)
{
	if (r == NULL)
		return;
	/* What was sent must be applied before we go: a node that ended
	 * must not keep a device. */
	drain(r);
	if (r->ctl >= 0)
		close(r->ctl);
	r->ctl = -1;
	for (int i = 0; i < RE_MAX_NODES && r->nodes; i++)
		if (r->nodes[i].booted)
			close(r->nodes[i].lfd);
	rdma_free(r);
}

int
rdma_node_adopt(struct rdma *r, int rank, const int *netids, int n)
{
	if (r == NULL || rank < 0 || rank >= RE_MAX_NODES || !r->nodes[rank].orphan)
		return -1;
	r->nodes[rank].orphan = 0;
	rdma_node_set(r, rank, netids, n);
	return 0;
}

int
rdma_adopt_done(struct rdma *r)
{
	int dropped = 0;
	for (int i = 0; r && i < RE_MAX_NODES; i++)
		if (r->nodes[i].orphan) {
			r->nodes[i].orphan = 0;
			rdma_node_end(r, i);
			dropped++;
		}
	if (r)
		rdma_sync(r);
	return dropped;
}

/* Queue one message (blocking: the engine reads promptly).  A dead engine
 * is noticed by rdma_sync. */
static int
send_ctl(struct rdma *r, const struct rc_msg *m, int fd)
{
	if (r->ctl < 0)
		return -1;
	for (;;) {
		ssize_t n = scm_send(r->ctl, m, sizeof(*m), &fd, fd >= 0, MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(*m)) {
			r->pending++;
			return 0;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* Its queue is full: take its answers, which frees it. */
			if (drain(r) < 0)
				return -1;
			continue;
		}
		return -1;
	}
}

/* Read the engine's answers until none is owed.  Returns 0, -1 when it is
 * gone, -2 when it was silent for SYNC_MS. */
static int
drain(struct rdma *r)
{
	if (r->ctl >= 0 && r->pending == 0) {
		/* Nothing owed: readable means gone (EOF). */
		struct pollfd pfd = {r->ctl, POLLIN, 0};
		if (poll(&pfd, 1, 0) == 1)
			return -1;
	}
	while (r->ctl >= 0 && r->pending > 0) {
		struct pollfd pfd = {r->ctl, POLLIN, 0};
		struct rc_ack a;
		int pr = poll(&pfd, 1, SYNC_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return -2;
		if (pr != 1 || recv(r->ctl, &a, sizeof(a), 0) != (ssize_t)sizeof(a))
			return -1;
		r->pending--;
		if (a.type == RC_TAKE)
			r->take_count = a.count;
	}
	return r->ctl >= 0 ? 0 : -1;
}

int
rdma_sync(struct rdma *r)
{
	char why[256];

	if (r == NULL)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		int rc = drain(r);
		if (rc == 0)
			return 0;
		/* Dead or stuck: whatever it held is gone with it, which
		 * revokes everything; a new engine starts with the nodes
		 * that run now. */
		log_warnx("rdma: the engine %s; starting a new one (every device context closes)",
			  rc == -2 ? "does not answer" : "is gone");
		engine_kill(r);
		if (engine_spawn(r, why, sizeof(why)) < 0) {
			log_warnx("%s", why);
			return -1;
		}
	}
	engine_kill(r);
	return -1;
}

static void
set_msg(struct rc_msg *m, int type, int rank, const int *netids, int n, uint64_t limit)
{
	memset(m, 0, sizeof(*m));
	m->type = (uint32_t)type;
	m->rank = rank;
	m->n = (uint32_t)(n < RE_MAX_IFS ? n : RE_MAX_IFS);
	m->reg_limit = limit;
	for (uint32_t i = 0; i < m->n; i++)
		m->netids[i] = netids[i] > 0 ? (uint32_t)netids[i] : 0;
}

int
rdma_node_boot(struct rdma *r, int rank, const int *netids, int n, uint64_t reg_limit, char *path,
	       size_t pathlen, char *err, size_t errlen)
{
	char name[32];
	int fd;

	if (r == NULL || rank < 0 || rank >= RE_MAX_NODES) {
		snprintf(err, errlen, "rdma: no device for node %d", rank);
		return -1;
	}
	if (r->nodes[rank].booted)
		rdma_node_end(r, rank);
	snprintf(name, sizeof(name), "n%d.sock", rank);
	if ((fd = listen_at(r, name, 0666, 64)) < 0) {
		snprintf(err, errlen, "rdma: node %d's device: %s", rank, strerror(errno));
		return -1;
	}
	struct rnode *nd = &r->nodes[rank];
	set_msg(&nd->set, RC_LISTEN, rank, netids, n, reg_limit);
	nd->lfd = fd;
	nd->booted = 1;
	if (send_ctl(r, &nd->set, fd) < 0)
		rdma_sync(r); /* replaces the engine, which then learns of this node */
	snprintf(path, pathlen, "%s/run/rdma/%s", r->dir, name);
	return 0;
}

void
rdma_node_set(struct rdma *r, int rank, const int *netids, int n)
{
	if (r == NULL || rank < 0 || rank >= RE_MAX_NODES || !r->nodes[rank].booted)
		return;
	struct rnode *nd = &r->nodes[rank];
	set_msg(&nd->set, RC_NODE, rank, netids, n, nd->set.reg_limit);
	if (send_ctl(r, &nd->set, -1) < 0)
		rdma_sync(r);
}

void
rdma_node_end(struct rdma *r, int rank)
{
	char name[32];
	struct rc_msg m;

	if (r == NULL || rank < 0 || rank >= RE_MAX_NODES || !r->nodes[rank].booted)
		return;
	struct rnode *nd = &r->nodes[rank];
	nd->booted = 0;
	close(nd->lfd);
	nd->lfd = -1;
	snprintf(name, sizeof(name), "n%d.sock", rank);
	unlinkat(r->dirfd, name, 0);
	set_msg(&m, RC_DROP, rank, NULL, 0, 0);
	if (send_ctl(r, &m, -1) < 0)
		rdma_sync(r); /* a new engine knows nothing of this node */
}

void
rdma_node_discard(struct rdma *r, int rank)
{
	struct rc_msg m;
	if (r == NULL || rank < 0 || rank >= RE_MAX_NODES)
		return;
	set_msg(&m, RC_DISCARD, rank, NULL, 0, 0);
	if (send_ctl(r, &m, -1) < 0)
		rdma_sync(r);
}

int
rdma_take(struct rdma *r, void (*fn)(void *arg, const struct re_usage *u), void *arg)
{
	struct rc_msg m;
	struct re_stats st;
	if (r == NULL)
		return 0;
	/* No operation completed since the last take: nothing to take, and
	 * the sleeping engine is not woken every second for nothing.  (It
	 * counts an operation's usage before the operation itself.) */
	rdma_stats(r, &st);
	uint64_t ops = st.ops[0] + st.ops[1] + st.ops[2] + st.ops[3] + st.ops[4];
	if (ops == r->taken_ops && r->ctl >= 0)
		return 0;
	set_msg(&m, RC_TAKE, 0, NULL, 0, 0);
	do {
		r->take_count = 0;
		if (send_ctl(r, &m, -1) < 0 || rdma_sync(r) < 0)
			return -1;
		for (uint32_t i = 0; i < r->take_count && i < RC_MAILBOX; i++) {
			struct re_usage u = r->sh->mailbox[i];
			if (u.rank < RE_MAX_NODES)
				fn(arg, &u);
		}
	} while (r->take_count == RC_MAILBOX);
	r->taken_ops = ops;
	return 0;
}

void
rdma_stats(const struct rdma *r, struct re_stats *out)
{
	if (r == NULL || r->sh == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	const uint64_t *s = (const uint64_t *)(const void *)&r->sh->stats;
	uint64_t *d = (uint64_t *)(void *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

pid_t
rdma_engine_pid(const struct rdma *r)
{
	return r ? r->pid : 0;
}

int
rdma_fd(const struct rdma *r)
{
	return r ? r->ctl : -1;
}

/* Become the engine when started as one, before main() runs: a fresh,
 * small image of khd, whatever khd's size. */
static void __attribute__((constructor)) engine_ctor(void)
{
	const char *v = getenv(RC_ENV);
	int type = 0;
	socklen_t tl = sizeof(type);

	if (v == NULL)
		return;
	if (getsockopt(RC_FD, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET ||
	    atoi(v) != (int)getppid())
		_exit(1);
	unsetenv(RC_ENV);
	rdmad_main();
}
