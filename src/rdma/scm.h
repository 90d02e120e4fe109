/* scm: one message with descriptors over a Unix socket (SCM_RIGHTS), for
 * everything that talks to the engine: libkhrdma, the engine process, khd
 * and the test helper.  Header-only, so libkhrdma stays one object that
 * needs the C library alone. */
#ifndef KH_RDMA_SCM_H
#define KH_RDMA_SCM_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SCM_MAXFDS 4

/* Send len bytes of buf with nfds (at most SCM_MAXFDS) descriptors.
 * Returns what sendmsg returns. */
static inline ssize_t
scm_send(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(SCM_MAXFDS * sizeof(int))];
	} cm;
	struct iovec iov = {(void *)buf, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
}

/* Receive one message into buf and up to maxfds descriptors (close-on-
 * exec) into fds, *nfds of them; the rest, and all of a truncated
 * message's, are closed (a truncated message fails with EMSGSIZE).
 * Returns what recvmsg returns. */
static inline ssize_t
scm_recv(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * SCM_MAXFDS * sizeof(int))];
	} cm;
	struct iovec iov = {buf, len};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	ssize_t n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);

	*nfds = 0;
	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int tmp[2 * SCM_MAXFDS];
		if (got > 2 * SCM_MAXFDS)
			got = 2 * SCM_MAXFDS;
		memcpy(tmp, CMSG_DATA(c), (size_t)got * sizeof(int));
		for (int i = 0; i < got; i++) {
			if (*nfds < maxfds && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
				fds[(*nfds)++] = tmp[i];
			else
				close(tmp[i]);
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (int i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

/* Spinning politely: let the core's other hardware thread run. */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#endif
