/* conhold: the holder process and khd's end of its socket.  The holder is
 * a fresh image of khd's own program (/proc/self/exe), turned into the
 * holder before main() (as the ct spawner is), detached from khd (its own
 * session, not khd's child), so that it lives on when khd dies.  It owns
 * nothing but the pty masters khd gave it: it never writes to a console
 * and never touches a node. */
#include "conhold/conhold.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define CH_ENV	   "KH_CONHOLD"
#define CH_FD	   3 /* the listening socket, in the holder */
#define CH_SOCK	   "conhold.sock"
#define CH_WAIT_MS 10000 /* most khd waits for the holder's answer */

enum { CH_HOLD = 1, CH_DROP, CH_HELD, CH_END };

struct ch_msg {
	uint32_t type;
	int32_t rank;
	uint64_t lost;
};

struct conhold {
	int sock;
};

/* One message, with fd (>= 0) riding along. */
static int
ch_send(int sock, const struct ch_msg *m, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = {(void *)m, sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while ((n = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == (ssize_t)sizeof(*m) ? 0 : -1;
}

/* One message; *fd gets a descriptor that came with it, or -1.  Returns 1,
 * 0 at the end of the stream, -1 on error (a malformed message too). */
static int
ch_recv(int sock, struct ch_msg *m, int *fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = {m, sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	*fd = -1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int x;
			memcpy(&x, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof(int));
			if (*fd < 0)
				*fd = x;
			else
				close(x);
		}
	}
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*m) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -1;
	}
	return 1;
}

/* ---- the holder ---- */

struct held {
	int rank, fd;
	uint64_t lost;
	int hung; /* no process holds the console's other end: not polled for a while */
};

static void __attribute__((noreturn)) holder_main(int lfd)
{
	struct held *h = NULL;
	int nh = 0, cap = 0, conn = -1;
	struct pollfd *pfd = NULL;
	char buf[65536];

	prctl(PR_SET_NAME, "kh-conhold", 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (chdir("/") < 0)
		_exit(1);
	for (;;) {
		int np = 0, hung = 0;
		if ((pfd = realloc(pfd, sizeof(*pfd) * ((size_t)nh + 2))) == NULL)
			_exit(1);
		pfd[np++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		if (conn >= 0)
			pfd[np++] = (struct pollfd){.fd = conn, .events = POLLIN};
		/* Without khd, the holder drains the consoles. */
		for (int i = 0; conn < 0 && i < nh; i++) {
			if (h[i].hung) {
				hung = 1;
				continue;
			}
			pfd[np++] = (struct pollfd){.fd = h[i].fd, .events = POLLIN};
		}
		int r = poll(pfd, (nfds_t)np, hung ? 1000 : -1);
		if (r < 0 && errno != EINTR)
			_exit(1);
		if (r == 0)
			for (int i = 0; i < nh; i++)
				h[i].hung = 0; /* a node may have reopened its console */
		if (r <= 0)
			continue;
		/* What the client said before it went comes first: a new
		 * connection replaces it. */
		if (conn >= 0 && pfd[1].revents) {
			struct ch_msg m;
			int fd;
			int rc = ch_recv(conn, &m, &fd);
			if (rc <= 0) {
				close(conn);
				conn = -1;
				if (nh == 0)
					_exit(0); /* khd went, and nothing is left to hold */
				continue;
			}
			int at = -1;
			for (int i = 0; i < nh; i++)
				if (h[i].rank == m.rank)
					at = i;
			if (m.type == CH_HOLD && fd >= 0) {
				if (at < 0) {
					if (nh == cap) {
						cap = cap ? cap * 2 : 16;
						if ((h = realloc(h, sizeof(*h) * (size_t)cap)) ==
						    NULL)
							_exit(1);
					}
					at = nh++;
				} else {
					close(h[at].fd);
				}
				h[at] = (struct held){.rank = m.rank, .fd = fd};
				continue;
			}
			if (fd >= 0)
				close(fd);
			if (m.type == CH_DROP && at >= 0) {
				close(h[at].fd);
				h[at] = h[--nh];
			}
			continue;
		}
		if (pfd[0].revents & POLLIN) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			struct ucred cr;
			socklen_t cl = sizeof(cr);
			if (c >= 0 && (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
				       cr.uid != getuid())) {
				close(c);
				c = -1;
			}
			if (c >= 0) {
				/* Only one khd runs per facility (its lock): a new
				 * one means the last is gone. */
				if (conn >= 0)
					close(conn);
				conn = c;
				struct timeval tv = {CH_WAIT_MS / 1000, 0};
				setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
				int ok = 1;
				for (int i = 0; i < nh && ok; i++) {
					struct ch_msg m = {
					    .type = CH_HELD, .rank = h[i].rank, .lost = h[i].lost};
					ok = ch_send(conn, &m, h[i].fd) == 0;
					if (ok)
						h[i].lost = 0;
				}
				struct ch_msg end = {.type = CH_END};
				if (!ok || ch_send(conn, &end, -1) < 0) {
					close(conn);
					conn = -1;
					if (nh == 0)
						_exit(
						    0); /* nothing to hold, nobody to hold it for */
				}
			}
			continue; /* the poll set changed */
		}
		for (int p = 1; p < np; p++) {
			if (pfd[p].revents == 0)
				continue;
			for (int i = 0; i < nh; i++) {
				if (h[i].fd != pfd[p].fd)
					continue;
				ssize_t n = read(h[i].fd, buf, sizeof(buf));
				if (n > 0)
					h[i].lost += (uint64_t)n;
				else if (n == 0 || (errno != EAGAIN && errno != EINTR))
					h[i].hung = 1; /* EIO: nothing holds the node's end */
			}
		}
	}
}

/* Become the holder when started as one, before main() runs. */
static void __attribute__((constructor)) holder_ctor(void)
{
	int type = 0;
	socklen_t tl = sizeof(type);

	if (getenv(CH_ENV) == NULL)
		return;
	if (getsockopt(CH_FD, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET)
		_exit(1);
	unsetenv(CH_ENV);
	holder_main(CH_FD);
}

/* ---- khd's end ---- */

static int
sock_path(const char *rundir, struct sockaddr_un *sa, char *err, size_t errlen)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", rundir, CH_SOCK) >=
	    sizeof(sa->sun_path)) {
		snprintf(err, errlen, "console holder: %s is too long a path for a socket", rundir);
		return -1;
	}
	return 0;
}

void
conhold_forget(const char *rundir)
{
	struct sockaddr_un sa;
	char why[128];
	if (sock_path(rundir, &sa, why, sizeof(why)) == 0)
		unlink(sa.sun_path);
}

/* Listen at the holder's path and start it there: a grandchild of ours in
 * a session of its own, so that it is neither killed with khd's process
 * group nor left as khd's zombie. */
static int
start_holder(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	pid_t pid;

	if (lfd < 0) {
		snprintf(err, errlen, "console holder: socket: %s", strerror(errno));
		return -1;
	}
	unlink(sa->sun_path); /* a dead holder's */
	if (bind(lfd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(lfd, 4) < 0) {
		snprintf(err, errlen, "console holder: %s: %s", sa->sun_path, strerror(errno));
		close(lfd);
		return -1;
	}
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "console holder: fork: %s", strerror(errno));
		close(lfd);
		unlink(sa->sun_path);
		return -1;
	}
	if (pid == 0) {
		char env[] = CH_ENV "=1";
		char *const argv[] = {"kh-conhold", NULL};
		char *const envp[] = {env, NULL};
		sigset_t none;
		setsid();
		if (fork() != 0)
			_exit(0);
		/* dup2 onto itself would keep close-on-exec */
		if (lfd == CH_FD ? fcntl(lfd, F_SETFD, 0) < 0 : dup2(lfd, CH_FD) < 0)
			_exit(1);
		if (syscall(SYS_close_range, CH_FD + 1U, ~0U, 0U) < 0)
			for (int fd = CH_FD + 1; fd < 65536; fd++)
				close(fd);
		stdio_to_null(); /* (none is fine: nothing is written there) */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(lfd); /* the holder has it */
	return 0;
}

struct conhold *
conhold_open(const char *rundir, struct conhold_held **held, int *nheld, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct conhold_held *v = NULL;
	int n = 0, cap = 0, sock = -1;

	*held = NULL;
	*nheld = 0;
	if (sock_path(rundir, &sa, err, errlen) < 0)
		return NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (sock < 0) {
			snprintf(err, errlen, "console holder: socket: %s", strerror(errno));
			return NULL;
		}
		if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		int e = errno;
		close(sock);
		sock = -1;
		if (attempt == 1 || (e != ENOENT && e != ECONNREFUSED)) {
			snprintf(err, errlen, "console holder: %s: %s", sa.sun_path, strerror(e));
			return NULL;
		}
		if (start_holder(&sa, err, errlen) < 0)
			return NULL;
	}
	struct timeval tv = {CH_WAIT_MS / 1000, 0};
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (;;) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		struct ch_msg m;
		int fd, rc;
		if (poll(&p, 1, CH_WAIT_MS) != 1 || (rc = ch_recv(sock, &m, &fd)) <= 0) {
			snprintf(err, errlen, "console holder: no answer on %s", sa.sun_path);
			goto fail;
		}
		if (m.type == CH_END)
			break;
		if (m.type != CH_HELD || fd < 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct conhold_held *nv = realloc(v, sizeof(*v) * (size_t)cap);
			if (nv == NULL) {
				close(fd);
				snprintf(err, errlen, "console holder: out of memory");
				goto fail;
			}
			v = nv;
		}
		v[n++] = (struct conhold_held){.rank = m.rank, .fd = fd, .lost = m.lost};
	}
	struct conhold *ch = malloc(sizeof(*ch));
	if (ch == NULL) {
		snprintf(err, errlen, "console holder: out of memory");
		goto fail;
	}
	ch->sock = sock;
	*held = v;
	*nheld = n;
	return ch;
fail:
	for (int i = 0; i < n; i++)
		close(v[i].fd);
	free(v);
	close(sock);
	return NULL;
}

int
conhold_hold(struct conhold *ch, int rank, int fd)
{
	struct ch_msg m = {.type = CH_HOLD, .rank = rank};
	if (ch == NULL || ch->sock < 0)
		return -1;
	return ch_send(ch->sock, &m, fd);
}

void
conhold_drop(struct conhold *ch, int rank)
{
	struct ch_msg m = {.type = CH_DROP, .rank = rank};
	if (ch != NULL && ch->sock >= 0)
		(void)ch_send(ch->sock, &m, -1);
}

int
conhold_fd(const struct conhold *ch)
{
	return ch ? ch->sock : -1;
}

void
conhold_close(struct conhold *ch)
{
	if (ch == NULL)
		return;
	if (ch->sock >= 0)
		close(ch->sock);
	free(ch);
}
