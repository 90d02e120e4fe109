/* userns: container nodes in user namespaces of their own (see userns.h).
 * A node's user namespace owns its network namespace, so that its root
 * configures its interfaces and /proc/sys/net; its other namespaces are
 * made by host root (the spawner's child) before it joins, and so are
 * beyond its reach, as they were when root in a node was host root. */
#include "nodes/userns.h"

#include "common/util.h"
#include "nodes/ct_int.h"
#include "nodes/node.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef NS_GET_USERNS
#define NS_GET_USERNS _IO(0xb7, 0x1)
#endif

/* Host ranges of name:start:count lines in path that meet [lo, hi). */
static int
overlaps(const char *path, uint64_t lo, uint64_t hi, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char line[512];
	int bad = 0;

	if (f == NULL)
		return 0; /* no such file: nothing handed out */
	while (!bad && fgets(line, sizeof(line), f) != NULL) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		unsigned long long start, count;
		if (c2 == NULL || sscanf(c1 + 1, "%llu", &start) != 1 ||
		    sscanf(c2 + 1, "%llu", &count) != 1)
			continue;
		if (start < hi && start + count > lo) {
			line[strcspn(line, "\n")] = '\0';
			seterr(err, errlen, "userns: node uids %llu-%llu overlap %s (%s)",
			       (unsigned long long)lo, (unsigned long long)hi - 1, path, line);
			bad = 1;
		}
	}
	fclose(f);
	return bad ? -1 : 0;
}

int
userns_init(struct userns_pool *u, char *err, size_t errlen)
{
	const char *v = getenv("KH_USERNS"), *b = getenv("KH_USERNS_BASE");
	uint64_t lo, hi;

	memset(u, 0, sizeof(*u));
	u->base = USERNS_BASE_DEFAULT;
	if (v != NULL && (strcmp(v, "off") == 0 || strcmp(v, "0") == 0))
		return 0;
	if (b != NULL) {
		char *end;
		unsigned long long x = strtoull(b, &end, 10);
		hi = x + (uint64_t)(USERNS_RANKS + USERNS_SLOTS) * USERNS_IDS;
		if (*b == '\0' || *end != '\0' || x == 0 || hi > 0xffffffffULL)
			return seterr(err, errlen,
				      "userns: KH_USERNS_BASE %s: not a uid with %u ranges of %u "
				      "above it",
				      b, USERNS_RANKS + USERNS_SLOTS, USERNS_IDS);
		u->base = (uint32_t)x;
	}
	lo = u->base;
	hi = lo + (uint64_t)(USERNS_RANKS + USERNS_SLOTS) * USERNS_IDS;
	if (overlaps("/etc/subuid", lo, hi, err, errlen) < 0 ||
	    overlaps("/etc/subgid", lo, hi, err, errlen) < 0)
		return -1;
	u->on = 1;
	return 0;
}

static uint32_t
range_base(const struct userns_pool *u, uint32_t range)
{
	return u->base + range * USERNS_IDS;
}

/* The inode of the user namespace owning netns, or 0. */
static uint32_t
owner_ino(int netns)
{
	struct stat st;
	int us = ioctl(netns, NS_GET_USERNS);

	if (us < 0)
		return 0;
	if (fstat(us, &st) < 0)
		st.st_ino = 0;
	close(us);
	return (uint32_t)st.st_ino;
}

/* Ask the spawner for a network namespace owned by a user namespace of
 * range's ids. */
static int
make(struct node_host *host, uint32_t range, char *err, size_t errlen)
{
	struct ct_req *rq = calloc(1, sizeof(*rq));
	struct ct_rep rep;
	int rfds[CT_REQ_MAXFDS], nr = 0, none[1] = {-1};
	pid_t pid;

	if (rq == NULL)
		return seterr(err, errlen, "userns: out of memory");
	rq->kind = CT_REQ_USERNS;
	rq->idbase = range_base(&host->uns, range);
	pid = ct_ask(host, rq, none, 0, &rep, rfds, &nr);
	free(rq);
	if (pid < 0 || nr != 1) {
		int e = pid < 0 ? errno : EPROTO;
		for (int i = 0; i < nr; i++)
			close(rfds[i]);
		return seterr(err, errlen, "userns: user and network namespaces: %s", strerror(e));
	}
	return rfds[0];
}

int
userns_fabric_make(void *arg, char *err, size_t errlen)
{
	struct node_host *host = arg;
	struct userns_pool *u = &host->uns;
	uint32_t s;
	int fd;

	/* In turn, not the lowest free: a range comes back only after every
	 * other has been handed out, long after its node's last process. */
	for (s = 0; s < USERNS_SLOTS && u->ino[(u->next + s) % USERNS_SLOTS]; s++)
		;
	if (s == USERNS_SLOTS)
		return seterr(err, errlen, "userns: all %d uid ranges in use", USERNS_SLOTS);
	s = (u->next + s) % USERNS_SLOTS;
	if ((fd = make(host, USERNS_RANKS + s, err, errlen)) < 0)
		return -1;
	if ((u->ino[s] = owner_ino(fd)) == 0) {
		close(fd);
		return seterr(err, errlen, "userns: its user namespace: %s", strerror(errno));
	}
	u->next = (s + 1) % USERNS_SLOTS;
	return fd;
}

void
userns_fabric_drop(void *arg, int netns)
{
	struct node_host *host = arg;
	uint32_t ino = owner_ino(netns);

	for (int s = 0; ino && s < USERNS_SLOTS; s++)
		if (host->uns.ino[s] == ino) {
			host->uns.ino[s] = 0;
			return;
		}
}

int
userns_adopt(struct node_host *host, int netns, int pid)
{
	struct userns_pool *u = &host->uns;
	char path[64], line[256];
	unsigned long inside = 0, outside = 0, count = 0;
	uint32_t ino, base = 0;
	FILE *f;

	if (!u->on || (ino = owner_ino(netns)) == 0)
		return -1;
	/* A ct node's process maps 0 to its base; a vm node's QEMU runs in
	 * the host's user namespace as its range's first uid. */
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "%lu %lu %lu", &inside, &outside, &count) != 3)
		count = 0;
	fclose(f);
	if (inside == 0 && count == USERNS_IDS) {
		base = (uint32_t)outside;
	} else {
		snprintf(path, sizeof(path), "/proc/%d/status", pid);
		if ((f = fopen(path, "re")) == NULL)
			return -1;
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "Uid: %lu", &outside) == 1) {
				base = (uint32_t)outside;
				break;
			}
		fclose(f);
	}
	if (base < u->base || (base - u->base) % USERNS_IDS != 0)
		return -1;
	uint32_t range = (base - u->base) / USERNS_IDS;
	if (range < USERNS_RANKS || range >= USERNS_RANKS + USERNS_SLOTS)
		return -1;
	u->ino[range - USERNS_RANKS] = ino;
	return 0;
}

uint32_t
userns_base_of(struct node_host *host, int rank, int netns)
{
	struct userns_pool *u = &host->uns;
	uint32_t ino;

	if (!u->on)
		return 0;
	if (netns < 0)
		return rank >= 0 && rank < USERNS_RANKS ? range_base(u, (uint32_t)rank) : 0;
	if ((ino = owner_ino(netns)) != 0)
		for (int i = 0; i < USERNS_SLOTS; i++)
			if (u->ino[i] == ino)
				return range_base(u, USERNS_RANKS + (uint32_t)i);
	return 0;
}

int
userns_node(struct node_host *host, const struct node_spec *s, struct ct_req *rq, int *netns,
	    int *own, char *err, size_t errlen)
{
	*own = -1;
	rq->idbase = 0;
	if (!host->uns.on)
		return 0;
	if (*netns < 0) {
		if (s->rank >= USERNS_RANKS)
			return seterr(err, errlen, "userns: no uid range for rank %d", s->rank);
		if ((*own = make(host, (uint32_t)s->rank, err, errlen)) < 0)
			return -1;
		*netns = *own;
	}
	if ((rq->idbase = userns_base_of(host, s->rank, *own >= 0 ? -1 : *netns)) == 0) {
		if (*own >= 0)
			close(*own);
		*own = *netns = -1;
		/* Host root's namespace: node root could not configure it. */
		return seterr(err, errlen,
			      "userns: the node's network namespace has no user namespace of "
			      "its own");
	}
	return 0;
}

/* ---- in the spawner and the node's first process ---- */

int
userns_make(uint32_t idbase, int *netns)
{
	char path[64], map[64];
	int pp[2], fd, e = 0, n;
	pid_t pid;

	*netns = -1;
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -1;
	pid = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD),
			     NULL, NULL, NULL, NULL);
	if (pid == 0) {
		char c;
		/* Hold the namespaces until the spawner has them. */
		close(pp[1]);
		while (read(pp[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(pp[0]);
	if (pid < 0) {
		e = errno;
		close(pp[1]);
		errno = e;
		return -1;
	}
	n = snprintf(map, sizeof(map), "0 %u %u\n", idbase, USERNS_IDS);
	for (int i = 0; i < 2 && e == 0; i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, i ? "gid_map" : "uid_map");
		if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0 || write(fd, map, (size_t)n) != n)
			e = errno ? errno : EIO;
		if (fd >= 0)
			close(fd);
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (e == 0 && (*netns = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		e = errno;
	close(pp[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (e != 0) {
		errno = e;
		return -1;
	}
	return pid;
}
