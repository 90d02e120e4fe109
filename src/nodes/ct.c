/* ct: the container node.  A node is a process tree in its own mount, PID,
 * UTS, IPC, network and cgroup namespaces and its own cgroup, whose root is
 * an overlay of a shared read-only tree under a tmpfs as big as its memory. */
#include "common/util.h"
#include "nodes/node.h"

#include "common/log.h"
#include "nodes/ct_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 2U
#endif
#define CT_MFD_EXEC 0x0010U
#ifndef F_ADD_SEALS
#define F_ADD_SEALS   1033
#define F_SEAL_SEAL   0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW   0x0004
#define F_SEAL_WRITE  0x0008
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* kh-ctnode's bytes (ctnode_blob.S). */
extern const char kh_ctnode_start[], kh_ctnode_end[];

/* kh-ctnode in a sealed memfd, for the spawner to execute: -1 when it
 * cannot be made (free nodes then do not wait ready). */
static int
ctnode_memfd(void)
{
	size_t len = (size_t)(kh_ctnode_end - kh_ctnode_start), off = 0;
	/* MFD_EXEC: executable where vm.memfd_noexec would make it not;
	 * kernels before 6.3 know no such flag (and need none). */
	int fd = memfd_create("kh-ctnode", MFD_CLOEXEC | MFD_ALLOW_SEALING | CT_MFD_EXEC);

	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("kh-ctnode", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, kh_ctnode_start + off, len - off);
		if (n <= 0 && errno != EINTR) {
			close(fd);
			return -1;
		}
		off += n > 0 ? (size_t)n : 0;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
node_host_init(struct node_host *host, int cgroup_version, const char *cgroup_parent, char *err,
	       size_t errlen)
{
	char why[256];

	host->spawner = host->spawner2 = 0;
	host->spawner_sock = host->spawner2_sock = -1;
	for (int r = 0; r < NODE_PREP_RANKS; r++) {
		host->warm[r].pid = 0;
		host->warm[r].sock = host->warm[r].console = -1;
	}
	if ((host->ctnode_fd = ctnode_memfd()) < 0)
		log_warn("ct: kh-ctnode: no memfd (free nodes do not wait ready)");
	if (cgroup_host_init(&host->cg, cgroup_version, cgroup_parent, err, errlen) < 0 ||
	    userns_init(&host->uns, err, errlen) < 0)
		return -1;
	/* Now, while khd is small: the spawner is a fresh image anyway,
	 * but the fork that starts it copies khd's page tables. */
	if (ct_spawner_start(&host->spawner, &host->spawner_sock, err, errlen) < 0)
		return -1;
	if (ct_spawner_start(&host->spawner2, &host->spawner2_sock, why, sizeof(why)) < 0) {
		log_warnx("%s (one spawner does)", why);
		host->spawner2 = 0;
		host->spawner2_sock = -1;
	}
	return 0;
}

/* Stop the first spawner (a second one goes on). */
static void
spawner_close(struct node_host *host)
{
	ct_spawner_stop(host->spawner, host->spawner_sock);
	host->spawner = 0;
	host->spawner_sock = -1;
}

void
node_host_close(struct node_host *host)
{
	node_ct_unwarm_all(host);
	if (host->ctnode_fd >= 0)
		close(host->ctnode_fd);
	host->ctnode_fd = -1;
	cgroup_rename_forget();
	spawner_close(host);
	ct_spawner_stop(host->spawner2, host->spawner2_sock);
	host->spawner2 = 0;
	host->spawner2_sock = -1;
}

static int
valid_hostname(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 63 || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
			return 0;
	return 1;
}

static int
valid_facility(const char *s)
{
	if (s == NULL || strlen(s) != 8)
		return 0;
	for (int i = 0; i < 8; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

static int
valid_dir(const char *s)
{
	return s != NULL && s[0] == '/' && strlen(s) < PATH_MAX - 16;
}

static int
check_spec(const struct node_spec *s, char *err, size_t errlen)
{
	size_t sl;

	if (!valid_hostname(s->name)) {
		seterr(err, errlen, "ct: bad node name %s", s->name ? s->name : "(null)");
		return -1;
	}
	if (!valid_facility(s->facility) || s->rank < 0) {
		seterr(err, errlen, "ct: bad facility %s or rank %d",
		       s->facility ? s->facility : "(null)", s->rank);
		return -1;
	}
	if (s->cpu_milli < 0 || s->pids < 0) {
		seterr(err, errlen, "ct: negative limit");
		return -1;
	}
	if (!valid_dir(s->lower) || !valid_dir(s->scratch)) {
		seterr(err, errlen, "ct: root %s and scratch %s must be absolute paths",
		       s->lower ? s->lower : "(null)", s->scratch ? s->scratch : "(null)");
		return -1;
	}
	if (s->device && !valid_dir(s->device)) {
		seterr(err, errlen, "ct: device %s must be an absolute path", s->device);
		return -1;
	}
	/* The tmpfs mounted on scratch would hide a root below it. */
	sl = strlen(s->scratch);
	if (strncmp(s->lower, s->scratch, sl) == 0 &&
	    (s->lower[sl] == '/' || s->lower[sl] == '\0')) {
		seterr(err, errlen, "ct: root %s is inside scratch %s", s->lower, s->scratch);
		return -1;
	}
	return 0;
}

/* A console: master for khd, slave for the node, 80x24. */
int
ct_open_console(int *master, int *slave, char *name, size_t namelen)
{
	struct winsize ws = {24, 80, 0, 0};
	int unlock = 0;

	*slave = -1;
	if ((*master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK)) < 0)
		return -1;
	if (ioctl(*master, TIOCSPTLCK, &unlock) < 0 || ptsname_r(*master, name, namelen) != 0)
		goto fail;
	/* TIOCGPTPEER opens the very peer, whatever is mounted at /dev/pts. */
	*slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*slave < 0 && (*slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		goto fail;
	ioctl(*master, TIOCSWINSZ, &ws);
	return 0;
fail:
	close(*master);
	*master = -1;
	return -1;
}

/* Hand the request to the spawner; returns the pid it made, or -1 with
 * errno (EPIPE: no spawner; ETIMEDOUT: a wedged one).  rep gets the whole
 * answer and rfds (room for CT_REQ_MAXFDS, or NULL) the descriptors that
 * came with it (*nr). */
#define CT_SPAWN_REPLY_MS 1000

static pid_t
ask_spawner_fds(int sock, const struct ct_req *rq, const int *fds, int nfds, struct ct_rep *rep,
		int *rfds, int *nr)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(CT_REQ_MAXFDS * sizeof(int))];
	} cm;
	struct iovec iov = {(void *)rq, sizeof(*rq)};
	struct msghdr mh = {0};
	struct cmsghdr *c;
	ssize_t n;

	if (nr != NULL)
		*nr = 0;
	memset(&cm, 0, sizeof(cm));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	while ((n = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -1;
	/* The spawner answers as soon as clone returns (exec: once the
	 * program is exec'd): well under a ms.  One that says nothing for
	 * CT_SPAWN_REPLY_MS is wedged (stopped, or starved): khd must not wait
	 * on it with every other client. */
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	int pr;
	while ((pr = poll(&pfd, 1, CT_SPAWN_REPLY_MS)) < 0 && errno == EINTR)
		;
	if (pr == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	memset(&cm, 0, sizeof(cm));
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = rep;
	iov.iov_len = sizeof(*rep);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	for (c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof(int));
			if (rfds != NULL && nr != NULL && *nr < CT_REQ_MAXFDS)
				rfds[(*nr)++] = fd;
			else
				close(fd);
		}
	}
	if (n != (ssize_t)sizeof(*rep)) {
		errno = n == 0 ? EPIPE : errno;
		return -1;
	}
	if (rep->pid <= 0 || rep->err != 0) {
		errno = rep->err ? rep->err : EIO;
		return -1;
	}
	return rep->pid;
}

/* After ask_spawner_fds failed with errno: a spawner that is gone or
 * wedged is replaced.  Returns 1 when it was (or could not be: errno
 * EPIPE), 0 when the failure was the request's own. */
static int
spawner_replace(struct node_host *host)
{
	char err[256];

	if (errno != EPIPE && errno != ECONNRESET && errno != ETIMEDOUT)
		return 0;
	if (errno == ETIMEDOUT) {
		/* Its answer to this request must never be read as the answer
		 * to the next one: it goes, with its socket. */
		log_warnx("ct: the spawner did not answer within %d ms (stopped?); replacing it",
			  CT_SPAWN_REPLY_MS);
		if (host->spawner > 0)
			kill(host->spawner, SIGKILL);
	} else {
		log_warnx("ct: the spawner is gone; starting another");
	}
	spawner_close(host);
	if (ct_spawner_start(&host->spawner, &host->spawner_sock, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		errno = EPIPE;
		return 1;
	}
	errno = EAGAIN;
	return 1;
}

/* Ask, and when the spawner has died start a new one and ask again. */
pid_t
ct_ask(struct node_host *host, const struct ct_req *rq, const int *fds, int nfds,
       struct ct_rep *rep, int *rfds, int *nr)
{
	pid_t pid = ask_spawner_fds(host->spawner_sock, rq, fds, nfds, rep, rfds, nr);

	if (pid >= 0 || !spawner_replace(host))
		return pid;
	if (errno == EPIPE)
		return -1;
	return ask_spawner_fds(host->spawner_sock, rq, fds, nfds, rep, rfds, nr);
}

static pid_t
spawn_node(struct node_host *host, const struct ct_req *rq, const int *fds, int nfds)
{
	struct ct_rep rep;

	/* ct nodes go to the two spawners in turn.  A second one that is gone
	 * or wedged is not replaced: the first does all. */
	if (rq->kind == CT_REQ_NODE && host->spawner2_sock >= 0 && (host->turn ^= 1)) {
		pid_t pid = ask_spawner_fds(host->spawner2_sock, rq, fds, nfds, &rep, NULL, NULL);
		if (pid >= 0 || (errno != EPIPE && errno != ECONNRESET && errno != ETIMEDOUT))
			return pid;
		log_warnx("ct: the second spawner is %s; the first one does its work",
			  errno == ETIMEDOUT ? "wedged" : "gone");
		if (errno == ETIMEDOUT && host->spawner2 > 0)
			kill(host->spawner2, SIGKILL);
		ct_spawner_stop(host->spawner2, host->spawner2_sock);
		host->spawner2 = 0;
		host->spawner2_sock = -1;
	}
	return ct_ask(host, rq, fds, nfds, &rep, NULL, NULL);
}

static void
close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

pid_t
ct_spawn_in(struct node_host *host, struct ct_req *rq, int *fds, int nfixed, const char *cg,
	    char *err, size_t errlen)
{
	int nfds = nfixed, nprocs;
	pid_t pid = -1;

	/* v2: clone3 puts the child in its cgroup; v1 (or a kernel without
	 * CLONE_INTO_CGROUP): the child writes itself into each cgroup.procs
	 * first thing. */
	rq->has_cgfd = 0;
	rq->nprocs = 0;
	if (host->cg.version == 2 && (fds[nfds] = cgroup_node_dirfd(&host->cg, cg)) >= 0) {
		rq->has_cgfd = 1;
		nfds++;
		pid = spawn_node(host, rq, fds, nfds);
		close_fds(fds + nfixed, nfds - nfixed);
		nfds = nfixed;
		rq->has_cgfd = 0;
		if (pid < 0 && errno != EINVAL && errno != E2BIG && errno != ENOSYS)
			goto fail_clone;
	}
	if (pid < 0) {
		if ((nprocs = cgroup_node_procs(&host->cg, cg, fds + nfds)) < 0) {
			seterr(err, errlen, "%s: open cgroup.procs of %s: %s",
			       rq->kind == CT_REQ_EXEC ? "vm" : "ct", cg, strerror(errno));
			return -1;
		}
		rq->nprocs = nprocs;
		nfds += nprocs;
		pid = spawn_node(host, rq, fds, nfds);
		close_fds(fds + nfixed, nfds - nfixed);
		if (pid < 0)
			goto fail_clone;
	}
	return pid;
fail_clone:
	seterr(err, errlen, "%s: clone: %s%s", rq->kind == CT_REQ_EXEC ? "vm" : "ct",
	       strerror(errno), errno == EPIPE ? " (the spawner is gone)" : "");
	return -1;
}

static int take_prepared(struct node_host *host, const char *facility, int rank, const char *rel);
static int warm_boot(struct node_host *host, const struct node_spec *s, struct node_handle *h);

static int
ct_boot(struct node_host *host, const struct node_spec *s, struct node_handle *h, char *err,
	size_t errlen)
{
	struct cgroup_limits lim;
	struct ct_req *rq;
	int fds[CT_REQ_MAXFDS], nfds = 0, master = -1, slave = -1, netns = s->netns_fd, own = -1;
	pid_t pid;

	memset(h, 0, sizeof(*h));
	h->pidfd = h->console = -1;
	if (check_spec(s, err, errlen) < 0)
		return -1;
	if (warm_boot(host, s, h) == 0)
		return 0;
	if ((rq = calloc(1, sizeof(*rq))) == NULL) {
		seterr(err, errlen, "ct: out of memory");
		return -1;
	}
	rq->kind = CT_REQ_NODE;
	rq->clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
	if (s->netns_fd < 0)
		rq->clone_flags |= CLONE_NEWNET;
	rq->mem = s->mem;
	snprintf(rq->name, sizeof(rq->name), "%s", s->name);
	if (s->env != NULL && strlen(s->env) < sizeof(rq->env))
		snprintf(rq->env, sizeof(rq->env), "%s", s->env);
	snprintf(rq->lower, sizeof(rq->lower), "%s", s->lower);
	snprintf(rq->scratch, sizeof(rq->scratch), "%s", s->scratch);
	snprintf(rq->device, sizeof(rq->device), "%s", s->device ? s->device : "");

	snprintf(h->cg, sizeof(h->cg), "kh-%s/n%d", s->facility, s->rank);
	lim.cpu_milli = s->cpu_milli;
	lim.mem = s->mem;
	lim.pids = s->pids;
	/* Made ahead (and empty since), or now. */
	if (!take_prepared(host, s->facility, s->rank, h->cg) &&
	    cgroup_node_create(&host->cg, h->cg, &lim, err, errlen) < 0)
		goto fail_rq;
	if (ct_open_console(&master, &slave, rq->console, sizeof(rq->console)) < 0) {
		seterr(err, errlen, "ct: console pty: %s", strerror(errno));
		goto fail_cg;
	}
	fds[nfds++] = slave;
	if (userns_node(host, s, rq, &netns, &own, err, errlen) < 0)
		goto fail_pty;
	if (netns >= 0) {
		rq->has_netns = 1;
		rq->clone_flags &= ~(uint64_t)CLONE_NEWNET;
		fds[nfds++] = netns;
	}
	pid = ct_spawn_in(host, rq, fds, nfds, h->cg, err, errlen);
	if (own >= 0)
		close(own);
	if (pid < 0)
		goto fail_pty;
	close(slave);
	free(rq);
	h->pid = pid;
	/* Our child (CLONE_PARENT) and not yet reaped: the pid cannot have
	 * been reused. */
	h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	h->console = master;
	return 0;

fail_pty:
	close(slave);
	close(master);
fail_cg:
	cgroup_node_remove(&host->cg, h->cg, NULL, 0);
fail_rq:
	free(rq);
	h->cg[0] = '\0';
	return -1;
}

/* A cgroup made ahead is named p<rank> until a boot takes it: n<rank>
 * names a node's cgroup only while the node runs.  v1 only (v2 cannot
 * rename a cgroup; there clone3 puts a node straight into its own). */
static void
prep_rel(char *rel, size_t len, const char *facility, int rank)
{
	snprintf(rel, len, "kh-%s/p%d", facility, rank);
}

int
node_ct_prepare(struct node_host *host, const char *facility, int rank,
		const struct cgroup_limits *lim, char *err, size_t errlen)
{
	char rel[CG_RELMAX];

	if (rank < 0 || rank >= NODE_PREP_RANKS || !valid_facility(facility)) {
		seterr(err, errlen, "ct: bad facility or rank %d", rank);
		return -1;
	}
	if (host->cg.version != 1) {
		seterr(err, errlen, "ct: cgroups are made ahead on cgroup v1 only");
		return -1;
	}
	if (host->cg_ready[rank])
		return 0;
	prep_rel(rel, sizeof(rel), facility, rank);
	if (cgroup_node_create(&host->cg, rel, lim, err, errlen) < 0)
		return -1;
	host->cg_ready[rank] = 1;
	return 0;
}

/* The boot of rank takes its cgroup made ahead, renamed to rel.  Returns
 * 1 when it did, 0 when there is none (or it could not be renamed: it is
 * removed). */
static int
take_prepared(struct node_host *host, const char *facility, int rank, const char *rel)
{
	char from[CG_RELMAX], err[256];

	if (!node_ct_prepared(host, rank))
		return 0;
	host->cg_ready[rank] = 0;
	prep_rel(from, sizeof(from), facility, rank);
	if (cgroup_node_rename(&host->cg, from, rel) == 0)
		return 1;
	/* EEXIST: a stale n<rank> of a khd that died; the usual way
	 * replaces it. */
	if (cgroup_node_remove(&host->cg, from, err, sizeof(err)) < 0)
		log_warnx("ct: %s", err);
	return 0;
}

int
node_ct_prepared(const struct node_host *host, int rank)
{
	return rank >= 0 && rank < NODE_PREP_RANKS && host->cg_ready[rank];
}

void
node_ct_unprepare(struct node_host *host, const char *facility, int rank)
{
	char rel[CG_RELMAX], err[256];

	node_ct_unwarm(host, rank);
	if (!node_ct_prepared(host, rank))
		return;
	host->cg_ready[rank] = 0;
	prep_rel(rel, sizeof(rel), facility, rank);
	if (cgroup_node_remove(&host->cg, rel, err, sizeof(err)) < 0)
		log_warnx("ct: %s", err);
}

/* ---- free nodes that wait ready (kh-ctnode, ctnode_main.c) ---- */

/* A network namespace's identity; 0 for none. */
static uint64_t
netns_id(int netns)
{
	struct stat st;

	if (netns < 0 || fstat(netns, &st) < 0)
		return 0;
	return ((uint64_t)st.st_dev << 32) ^ (uint64_t)st.st_ino;
}

/* What else a waiting process was made for: its memory and scratch. */
static uint64_t
fnv(uint64_t h, const char *s)
{
	for (const char *c = s ? s : ""; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL;
}

static uint64_t
warm_key(const struct node_spec *s)
{
	return fnv(fnv(fnv(1469598103934665603ULL ^ s->mem, s->scratch), s->images), s->devices);
}

/* Is path dir/NAME (one component, depth limits how many)? */
static int
path_in(const char *path, const char *dir, int any_depth)
{
	size_t n = dir ? strlen(dir) : 0;

	return n > 1 && strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] &&
	       (any_depth || strchr(path + n + 1, '/') == NULL);
}

/* A waiting process that is gone (reaped): its record empty again. */
static void
warm_forget(struct node_warm *w)
{
	close(w->sock);
	close(w->console);
	w->pid = 0;
	w->sock = w->console = -1;
}

void
node_ct_unwarm(struct node_host *host, int rank)
{
	struct node_warm *w;

	if (rank < 0 || rank >= NODE_PREP_RANKS || (w = &host->warm[rank])->pid <= 0)
		return;
	/* The first process of its PID namespace: SIGKILL ends it at once. */
	kill(w->pid, SIGKILL);
	while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
		;
	warm_forget(w);
}

void
node_ct_unwarm_all(struct node_host *host)
{
	/* All killed first, then reaped: each one's namespaces take the
	 * kernel a while to tear down, and they do it together. */
	for (int r = 0; r < NODE_PREP_RANKS; r++)
		if (host->warm[r].pid > 0)
			kill(host->warm[r].pid, SIGKILL);
	for (int r = 0; r < NODE_PREP_RANKS; r++)
		node_ct_unwarm(host, r);
}

int
node_ct_warmed(struct node_host *host, int rank, int netns)
{
	struct node_warm *w;
	pid_t r;

	if (rank < 0 || rank >= NODE_PREP_RANKS || (w = &host->warm[rank])->pid <= 0)
		return 0;
	while ((r = waitpid(w->pid, NULL, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r != 0) {
		/* It ended (it should not: it waits until khd closes its
		 * socket); the next one is made in its place. */
		char why[300];
		ssize_t n = recv(w->sock, why, sizeof(why) - 1, MSG_DONTWAIT);
		if (n > 1 && why[0] == 'F') {
			why[n] = '\0';
			log_warnx("ct: node %d's waiting process could not set up: %s", rank,
				  why + 1);
		} else {
			log_warnx("ct: node %d's waiting process ended", rank);
		}
		warm_forget(w);
		return 0;
	}
	if (netns >= 0 ? w->netns != netns_id(netns) : w->netns != 0) {
		node_ct_unwarm(host, rank);
		return 0;
	}
	return 1;
}

int
node_ct_warm(struct node_host *host, const struct node_spec *s, char *err, size_t errlen)
{
	struct ct_req *rq;
	struct ct_rep rep;
	char rel[CG_RELMAX];
	int sv[2] = {-1, -1}, fds[CT_REQ_MAXFDS], nfds = 0, netns = s->netns_fd, own = -1, np;
	int r = -1, master = -1, slave = -1;
	pid_t pid;

	if (s->rank < 0 || s->rank >= NODE_PREP_RANKS || !valid_facility(s->facility) ||
	    s->scratch == NULL || !valid_dir(s->scratch) || s->images == NULL ||
	    !valid_dir(s->images) || (s->devices != NULL && !valid_dir(s->devices)))
		return seterr(err, errlen, "ct: bad node for a waiting process");
	if (host->ctnode_fd < 0)
		return seterr(err, errlen, "ct: no kh-ctnode to run");
	if (!node_ct_prepared(host, s->rank))
		return seterr(err, errlen, "ct: node %d has no cgroup made ahead", s->rank);
	if (node_ct_warmed(host, s->rank, s->netns_fd))
		return 0;
	if ((rq = calloc(1, sizeof(*rq))) == NULL)
		return seterr(err, errlen, "ct: out of memory");
	rq->kind = CT_REQ_WARM;
	rq->clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
	rq->mem = s->mem;
	snprintf(rq->scratch, sizeof(rq->scratch), "%s", s->scratch);
	/* CT_REQ_WARM: lower and device name the directories of the image
	 * trees and of the RDMA devices */
	snprintf(rq->lower, sizeof(rq->lower), "%s", s->images);
	snprintf(rq->device, sizeof(rq->device), "%s", s->devices ? s->devices : "");
	if (userns_node(host, s, rq, &netns, &own, err, errlen) < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		seterr(err, errlen, "ct: socketpair: %s", strerror(errno));
		goto out;
	}
	if (ct_open_console(&master, &slave, rq->console, sizeof(rq->console)) < 0) {
		seterr(err, errlen, "ct: console pty: %s", strerror(errno));
		goto out;
	}
	fds[nfds++] = sv[1];
	fds[nfds++] = host->ctnode_fd;
	fds[nfds++] = slave;
	if (netns >= 0) {
		rq->has_netns = 1;
		fds[nfds++] = netns;
	}
	prep_rel(rel, sizeof(rel), s->facility, s->rank);
	if ((np = cgroup_node_procs(&host->cg, rel, fds + nfds)) < 0) {
		seterr(err, errlen, "ct: open cgroup.procs of %s: %s", rel, strerror(errno));
		goto out;
	}
	rq->nprocs = np;
	memset(&rep, 0, sizeof(rep));
	/* Asked once: after a spawner that timed out, a clone it made may
	 * run kh-ctnode on this very socket; it goes with the socket (EOF).
	 * A spawner gone or wedged is replaced for the next request. */
	pid = ask_spawner_fds(host->spawner_sock, rq, fds, nfds + np, &rep, NULL, NULL);
	if (pid < 0 && rep.pid <= 0) {
		int e = errno;
		spawner_replace(host);
		errno = e;
	}
	close_fds(fds + nfds, np);
	if (pid < 0) {
		/* A clone that did not get to exec kh-ctnode is ours to reap. */
		if (rep.pid > 0)
			while (waitpid(rep.pid, NULL, 0) < 0 && errno == EINTR)
				;
		seterr(err, errlen, "ct: waiting process: %s%s%s", rep.what,
		       rep.what[0] ? ": " : "", strerror(errno));
		goto out;
	}
	host->warm[s->rank].pid = pid;
	host->warm[s->rank].ready = 0;
	host->warm[s->rank].sock = sv[0];
	host->warm[s->rank].console = master;
	master = -1;
	host->warm[s->rank].netns = own >= 0 ? 0 : netns_id(netns);
	host->warm[s->rank].key = warm_key(s);
	host->warm[s->rank].start = node_pid_start(pid);
	sv[0] = -1;
	r = 0;
out:
	if (own >= 0)
		close(own);
	if (master >= 0)
		close(master);
	if (slave >= 0)
		close(slave);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(rq);
	return r;
}

/* How long a boot waits for a waiting process made a moment ago. */
#define CT_WARM_READY_MS 200

/* Boot a node through its waiting process: 0 when it took the boot, 1
 * when there is none fit for it (the usual way goes on; one that does not
 * fit is ended). */
static int
warm_boot(struct node_host *host, const struct node_spec *s, struct node_handle *h)
{
	struct node_warm *w;
	struct ct_warm_boot b;
	char from[CG_RELMAX], to[CG_RELMAX];
	ssize_t n;

	if (s->rank < 0 || s->rank >= NODE_PREP_RANKS || host->warm[s->rank].pid <= 0)
		return 1;
	w = &host->warm[s->rank];
	/* One made a moment ago may still be setting up: a few ms. */
	for (int waited = 0; !w->ready && waited < CT_WARM_READY_MS; waited += 2) {
		char c;
		struct pollfd pfd = {w->sock, POLLIN, 0};
		if (poll(&pfd, 1, waited ? 2 : 0) == 1) {
			w->ready = recv(w->sock, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 1 && c == 'R';
			if (w->ready)
				(void)recv(w->sock, &c, 1, MSG_DONTWAIT);
			break;
		}
	}
	if (!node_ct_warmed(host, s->rank, s->netns_fd))
		return 1;
	if (!w->ready) {
		node_ct_unwarm(host, s->rank);
		return 1;
	}
	if (w->key != warm_key(s) || !node_ct_prepared(host, s->rank) ||
	    !path_in(s->lower, s->images, 1) || strlen(s->lower) >= sizeof(b.lower) ||
	    (s->device &&
	     (!path_in(s->device, s->devices, 0) || strlen(s->device) >= sizeof(b.device)))) {
		node_ct_unwarm(host, s->rank);
		return 1;
	}
	memset(&b, 0, sizeof(b));
	b.magic = CT_WARM_MAGIC;
	snprintf(b.name, sizeof(b.name), "%s", s->name);
	if (s->env != NULL && strlen(s->env) < sizeof(b.env))
		snprintf(b.env, sizeof(b.env), "%s", s->env);
	snprintf(b.lower, sizeof(b.lower), "%s", s->lower);
	snprintf(b.device, sizeof(b.device), "%s", s->device ? s->device : "");
	/* Its cgroup becomes the running node's (it is in it already). */
	prep_rel(from, sizeof(from), s->facility, s->rank);
	snprintf(to, sizeof(to), "kh-%s/n%d", s->facility, s->rank);
	if (cgroup_node_rename(&host->cg, from, to) < 0) {
		node_ct_unwarm(host, s->rank);
		return 1;
	}
	host->cg_ready[s->rank] = 0;
	while ((n = send(w->sock, &b, sizeof(b), MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 &&
	       errno == EINTR)
		;
	if (n != (ssize_t)sizeof(b)) {
		/* It is gone after all: so is its cgroup, and the usual way
		 * makes the node's own. */
		char why[256];
		log_warn("ct: node %d's waiting process", s->rank);
		node_ct_unwarm(host, s->rank);
		if (cgroup_node_remove(&host->cg, to, why, sizeof(why)) < 0)
			log_warnx("ct: %s", why);
		return 1;
	}
	close(w->sock);
	h->pid = w->pid;
	h->start = w->start;
	h->console = w->console;
	w->pid = 0;
	w->sock = w->console = -1;
	/* Our child and not yet reaped: the pid cannot have been reused. */
	h->pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
	snprintf(h->cg, sizeof(h->cg), "%s", to);
	return 0;
}

uint64_t
node_pid_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long t;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (pid <= 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold anything: fields start after its ')'.
	 * starttime is field 22, the 20th after it. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	p++;
	for (int i = 0; i < 19; i++) {
		p += strspn(p, " ");
		p += strcspn(p, " ");
	}
	return sscanf(p, " %llu", &t) == 1 ? (uint64_t)t : 0;
}

/* Is pid in the cgroup whose path ends in /rel (in some hierarchy)? */
static int
in_cgroup(pid_t pid, const char *rel)
{
	char path[64], line[PATH_MAX + 64];
	size_t rl = strlen(rel);
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		size_t l = strcspn(line, "\n");
		line[l] = '\0';
		found = l > rl && line[l - rl - 1] == '/' && strcmp(line + l - rl, rel) == 0;
	}
	fclose(f);
	return found;
}

int
node_adopt(struct node_host *host, const char *facility, int rank, const char *dir, pid_t pid,
	   uint64_t start, struct node_handle *h, char *err, size_t errlen)
{
	(void)host;
	memset(h, 0, sizeof(*h));
	h->pidfd = h->console = -1;
	snprintf(h->cg, sizeof(h->cg), "kh-%s/n%d", facility, rank);
	if (pid <= 0 || start == 0)
		return seterr(err, errlen, "nothing was running");
	/* The pidfd first: the checks after it are about the very process
	 * it refers to, not one that took its number since. */
	h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (h->pidfd < 0 && errno != ENOSYS)
		return seterr(err, errlen, "process %d is gone", (int)pid);
	uint64_t now = node_pid_start(pid);
	if (now != start || !in_cgroup(pid, h->cg)) {
		if (h->pidfd >= 0)
			close(h->pidfd);
		h->pidfd = -1;
		return seterr(err, errlen, "process %d %s", (int)pid,
			      now == 0	     ? "is gone"
			      : now != start ? "is another process now (its number was reused)"
					     : "is not in the node's cgroup (it ended)");
	}
	if (dir != NULL && (h->dir = strdup(dir)) == NULL) {
		if (h->pidfd >= 0)
			close(h->pidfd);
		h->pidfd = -1;
		return seterr(err, errlen, "out of memory");
	}
	h->pid = pid;
	h->adopted = 1;
	return 0;
}

/* An adopted node's first process is someone else's child: its end is
 * seen on its pidfd (or by its number, without pidfds), its status is not
 * ours to collect.  Returns 1 when it has ended. */
static int
adopted_ended(const struct node_handle *h)
{
	if (h->pidfd >= 0) {
		struct pollfd p = {h->pidfd, POLLIN, 0};
		return poll(&p, 1, 0) == 1;
	}
	return kill(h->pid, 0) < 0 && errno == ESRCH;
}

int
ct_reap(struct node_host *host, struct node_handle *h, int *status)
{
	char err[256];
	int st = 0;
	pid_t r;

	if (h->pid <= 0) {
		if (status != NULL)
			*status = h->status;
		return 1;
	}
	if (h->adopted)
		r = adopted_ended(h) ? h->pid : 0;
	else
		while ((r = waitpid(h->pid, &st, WNOHANG)) < 0 && errno == EINTR)
			;
	if (r == 0)
		return 0;
	if (r < 0) {
		/* Reaped behind our back (a stray waitpid(-1)): it has ended. */
		log_warn("ct: waitpid %d", (int)h->pid);
		st = 0;
	}
	h->pid = 0;
	h->status = st;
	if (status != NULL)
		*status = st;
	if (h->pidfd >= 0)
		close(h->pidfd);
	h->pidfd = -1;
	/* The PID namespace died with its init, so the cgroup is empty; the
	 * mounts went with the mount namespace. */
	if (h->cg[0] != '\0' && cgroup_node_remove(&host->cg, h->cg, err, sizeof(err)) < 0)
		log_warnx("ct: %s", err);
	h->cg[0] = '\0';
	return 1;
}

int
ct_kill(struct node_host *host, struct node_handle *h, int wait_ms)
{
	uint64_t deadline = now_ns() / 1000000 + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
	int r;

	if (h->pid <= 0)
		return 1;
	/* SIGKILL to a PID namespace's init kills the whole namespace.  The
	 * pidfd cannot hit a recycled pid. */
	if (h->pidfd < 0 || syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL, 0) < 0)
		kill(h->pid, SIGKILL);
	cgroup_node_kill(&host->cg, h->cg);
	while ((r = ct_reap(host, h, NULL)) == 0) {
		uint64_t now = now_ns() / 1000000;
		if (now >= deadline)
			return 0;
		if (h->pidfd >= 0) {
			struct pollfd pfd = {h->pidfd, POLLIN, 0};
			poll(&pfd, 1, (int)(deadline - now));
		} else {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
	}
	return r;
}

int
ct_stats(struct node_host *host, const struct node_handle *h, struct node_stats *st)
{
	struct cgroup_stats cs;

	if (h->cg[0] == '\0' || cgroup_node_stats(&host->cg, h->cg, &cs) < 0)
		return -1;
	st->cpu_ns = cs.cpu_ns;
	st->mem = cs.mem;
	st->mem_peak = cs.mem_peak;
	st->oom_kills = cs.oom_kills;
	return 0;
}

/* Pack argv and envp for the spawner.  Returns 0, or -1 when they do not
 * fit. */
static int
pack_strings(struct ct_req *rq, char *const argv[], char *const envp[])
{
	uint32_t off = 0;

	rq->argc = rq->envc = 0;
	for (int pass = 0; pass < 2; pass++) {
		char *const *v = pass == 0 ? argv : envp;
		for (int i = 0; v != NULL && v[i] != NULL; i++) {
			size_t l = strlen(v[i]) + 1;
			if (l > CT_EXEC_ARGMAX - off)
				return -1;
			memcpy(rq->argv + off, v[i], l);
			off += (uint32_t)l;
			if (pass == 0)
				rq->argc++;
			else
				rq->envc++;
		}
	}
	rq->slen = off;
	return rq->argc > 0 ? 0 : -1;
}

/* How long an exec waits for a node that was just booted to be set up. */
#define CT_INIT_WAIT_MS 2000

/* Has the node's first process exec'd its /init?  Until then it is still
 * the spawner's clone setting the node up: its mount namespace shows the
 * host's files until pivot_root, and it enters the node's user namespace
 * after that, so a process that joined it then would run as host root
 * among the host's files.  The clone runs the spawner's program, which is
 * khd's (the spawner is khd's /proc/self/exe); /init never is.  Returns 1
 * (set up), 0 (not yet) or -1 (gone). */
static int
ct_init_started(const struct node_host *host, pid_t pid)
{
	char path[64];
	struct stat node, self;

	char exe[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &node) < 0)
		return -1;
	/* A node booted through its waiting process runs kh-ctnode until
	 * its /init: the same window (whichever khd's copy it runs: a node
	 * adopted after a restart of khd may be in it too). */
	if (host->ctnode_fd >= 0 && fstat(host->ctnode_fd, &self) == 0 &&
	    node.st_dev == self.st_dev && node.st_ino == self.st_ino)
		return 0;
	if ((n = readlink(path, exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		if (strncmp(exe, "/memfd:kh-ctnode", 16) == 0)
			return 0;
	}
	if (stat("/proc/self/exe", &self) < 0)
		return 1; /* cannot tell what the clone runs: /init started long ago */
	return node.st_dev != self.st_dev || node.st_ino != self.st_ino;
}

static int
ct_exec(struct node_host *host, const struct node_handle *h, char *const argv[], char *const envp[],
	struct node_proc *p, char *err, size_t errlen)
{
	struct ct_req *rq;
	struct ct_rep rep;
	int fds[CT_REQ_MAXFDS], rfds[CT_REQ_MAXFDS], nfds = 1, nr = 0, np;
	pid_t pid;

	memset(p, 0, sizeof(*p));
	p->pidfd = p->in = p->out = p->err = -1;
	if (h->pid <= 0 || h->pidfd < 0 || h->cg[0] == '\0') {
		seterr(err, errlen, "the node is not running");
		return -1;
	}
	/* A node booted a moment ago may still be setting itself up: wait
	 * (a few ms as a rule) for its /init, never enter it before. */
	for (int waited = 0;; waited += 2) {
		int r = ct_init_started(host, h->pid);
		if (r == 1)
			break;
		if (r < 0 || waited >= CT_INIT_WAIT_MS) {
			seterr(err, errlen, "%s",
			       r < 0 ? "the node is not running"
				     : "the node is still starting (its /init has not run yet)");
			errno = r < 0 ? ESRCH : EAGAIN;
			return -1;
		}
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	if ((rq = calloc(1, sizeof(*rq))) == NULL) {
		seterr(err, errlen, "ct: out of memory");
		return -1;
	}
	rq->kind = CT_REQ_ENTER;
	/* The node has a user namespace of its own: joining it must work */
	rq->idbase = host->uns.on ? 1 : 0;
	if (pack_strings(rq, argv, envp) < 0) {
		seterr(err, errlen, "arguments and environment too long (max %d bytes)",
		       CT_EXEC_ARGMAX);
		free(rq);
		return -1;
	}
	fds[0] = h->pidfd;
	if ((np = cgroup_node_procs(&host->cg, h->cg, fds + 1)) < 0 || np > CT_REQ_MAXFDS - 1) {
		seterr(err, errlen, "ct: open cgroup.procs of %s: %s", h->cg, strerror(errno));
		free(rq);
		return -1;
	}
	rq->nprocs = np;
	nfds += np;
	memset(&rep, 0, sizeof(rep));
	pid = ask_spawner_fds(host->spawner_sock, rq, fds, nfds, &rep, rfds, &nr);
	if (pid < 0 && errno == ETIMEDOUT) {
		/* A late answer must not be read as the next request's. */
		char why[256];
		log_warnx("ct: the spawner did not answer within %d ms (stopped?); replacing it",
			  CT_SPAWN_REPLY_MS);
		if (host->spawner > 0)
			kill(host->spawner, SIGKILL);
		spawner_close(host);
		if (ct_spawner_start(&host->spawner, &host->spawner_sock, why, sizeof(why)) < 0)
			log_warnx("%s", why);
		errno = ETIMEDOUT;
	} else if (pid < 0 && rep.pid <= 0 && (errno == EPIPE || errno == ECONNRESET)) {
		char why[256];
		log_warnx("ct: the spawner is gone; starting another");
		spawner_close(host);
		if (ct_spawner_start(&host->spawner, &host->spawner_sock, why, sizeof(why)) < 0)
			log_warnx("%s", why);
		else
			pid = ask_spawner_fds(host->spawner_sock, rq, fds, nfds, &rep, rfds, &nr);
	}
	close_fds(fds + 1, np);
	free(rq);
	if (pid < 0 || nr != 3) {
		int e = errno;
		close_fds(rfds, nr);
		/* It is our child even when its exec failed: reap it now (it
		 * has told its failure and is exiting). */
		if (rep.pid > 0)
			while (waitpid(rep.pid, NULL, 0) < 0 && errno == EINTR)
				;
		rep.what[sizeof(rep.what) - 1] = '\0';
		if (rep.what[0])
			seterr(err, errlen, "%s: %s", rep.what, strerror(e));
		else
			seterr(err, errlen, "%s: %s", argv[0], strerror(e));
		errno = e;
		return -1;
	}
	for (int i = 0; i < 3; i++)
		fcntl(rfds[i], F_SETFL, fcntl(rfds[i], F_GETFL) | O_NONBLOCK);
	p->pid = pid;
	/* Our child, not yet reaped: the pid cannot have been reused. */
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	p->in = rfds[0];
	p->out = rfds[1];
	p->err = rfds[2];
	return 0;
}

const struct node_backend node_ct = {
    .name = "ct",
    .boot = ct_boot,
    .kill = ct_kill,
    .reap = ct_reap,
    .stats = ct_stats,
    .exec = ct_exec,
};
