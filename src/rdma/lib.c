/* libkhrdma: the node's side of the device (khrdma.h).  Posting writes a
 * descriptor into the shared ring and moves the tail; the doorbell (an
 * eventfd write, a system call and a cross-core wake-up) is rung only when
 * the engine said it sleeps.  Waiting spins on the completion queue for a
 * while, then says so and sleeps on the completion eventfd. */
#include "rdma/khrdma.h"
#include "rdma/ring.h"
#include "rdma/scm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SPIN_US 50
#define SPIN_YIELD_US	20 /* a spinning wait yields its core this often */

/* Shared memory the device can use: memfds made here, kept open so that
 * parts of them can be registered. */
struct block {
	uint8_t *p;
	size_t len;
	int fd;
	int moved; /* made by khrdma_reg_mr in place of the caller's memory */
};

struct khrdma_dev {
	int sock, ringfd, dbfd, cqfd;
	uint8_t *ring;
	struct khr_ring_hdr *hdr;
	struct khr_sqe *sq;
	struct khr_cqe *cq;
	uint32_t sq_tail, cq_head;
	int outstanding;
	unsigned spin_us;
	int dead;
	struct khrdma_info info;
	uint32_t net4, prefix;
	struct block *blocks;
	int nblocks, capblocks;
	struct khrdma_mr **mrs;
	int nmrs, capmrs;
	struct khrdma_wc stash[KHR_CQ_DEPTH]; /* completions the sync calls set aside */
	int nstash;
};

static __thread char last_err[192];

static int __attribute__((format(printf, 2, 3))) seterr_st(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_err, sizeof(last_err), fmt, ap);
	va_end(ap);
	return -status;
}

const char *
khrdma_last_error(void)
{
	return last_err;
}

const char *
khrdma_strerror(int status)
{
	static const char *const s[] = {
	    [KHRDMA_OK] = "success",
	    [KHRDMA_E_KEY] = "remote access error: unknown or revoked key",
	    [KHRDMA_E_RANGE] = "remote access error: out of the region's range",
	    [KHRDMA_E_PERM] = "remote access error: not permitted by the region",
	    [KHRDMA_E_NOT_MEMBER] = "the peer is not a member of this domain",
	    [KHRDMA_E_REVOKED] = "this node is no longer a member of the device's domain",
	    [KHRDMA_E_LOCAL] = "bad local buffer (key or range)",
	    [KHRDMA_E_BADDESC] = "malformed operation",
	    [KHRDMA_E_UNREACHABLE] = "the target host is unreachable",
	    [KHRDMA_E_NODEV] = "no such device",
	    [KHRDMA_E_FULL] = "the queue is full",
	    [KHRDMA_E_LIMIT] = "over the device's limits",
	    [KHRDMA_E_SYS] = "system error",
	    [KHRDMA_E_TIMEOUT] = "timed out",
	    [KHRDMA_E_DEAD] = "the facility closed the device",
	};
	if (status < 0)
		status = -status;
	if (status >= (int)(sizeof(s) / sizeof(s[0])) || s[status] == NULL)
		return "unknown status";
	return s[status];
}

/* One request, one answer (and up to maxfds descriptors, the missing
 * ones -1). */
static int
call(khrdma_dev *d, int sock, const struct khr_req *rq, int sendfd, struct khr_rep *rep, int *fds,
     int maxfds)
{
	int got = 0;
	ssize_t n;

	while ((n = scm_send(sock, rq, sizeof(*rq), &sendfd, sendfd >= 0, 0)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(*rq))
		goto dead;
	while ((n = scm_recv(sock, rep, sizeof(*rep), fds, maxfds, &got, 0)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(*rep)) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		goto dead;
	}
	for (int i = got; i < maxfds; i++)
		fds[i] = -1;
	rep->msg[sizeof(rep->msg) - 1] = '\0';
	return 0;
dead:
	if (d)
		d->dead = 1;
	return -1;
}

khrdma_dev *
khrdma_open(const char *ifname, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct khr_req rq = {.type = KHR_M_OPEN, .proto = KHR_PROTO};
	struct khr_rep rep;
	int fds[3] = {-1, -1, -1};
	khrdma_dev *d;

	if (ifname == NULL || strlen(ifname) >= KHR_IFNAMSIZ) {
		seterr_st(KHRDMA_E_NODEV, "%s: no such interface", ifname ? ifname : "(null)");
		return NULL;
	}
	if (path == NULL && (path = getenv("KHRDMA_DEVICE")) == NULL)
		path = "/dev/khrdma";
	if (strlen(path) >= sizeof(sa.sun_path)) {
		seterr_st(KHRDMA_E_NODEV, "%s: path too long", path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		seterr_st(KHRDMA_E_SYS, "out of memory");
		return NULL;
	}
	d->ringfd = d->dbfd = d->cqfd = -1;
	d->spin_us = DEFAULT_SPIN_US;
	d->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (d->sock < 0 || connect(d->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		seterr_st(KHRDMA_E_NODEV, "%s: no RDMA device in this node (%s)", path,
			  strerror(errno));
		goto fail;
	}
	memcpy(rq.ifname, ifname, strlen(ifname) + 1);
	if (call(d, d->sock, &rq, -1, &rep, fds, 3) < 0) {
		seterr_st(KHRDMA_E_DEAD, "%s: the facility closed the device", path);
		goto fail;
	}
	if (rep.status) {
		seterr_st(rep.status, "%s: %s", ifname, rep.msg);
		goto fail;
	}
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || rep.ring_size != KHR_RING_SIZE ||
	    rep.sq_depth != KHR_SQ_DEPTH || rep.cq_depth != KHR_CQ_DEPTH) {
		seterr_st(KHRDMA_E_SYS, "%s: the device speaks another version", ifname);
		goto fail;
	}
	d->ringfd = fds[0];
	d->dbfd = fds[1];
	d->cqfd = fds[2];
	fds[0] = fds[1] = fds[2] = -1;
	d->ring = mmap(NULL, KHR_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d->ringfd, 0);
	if (d->ring == MAP_FAILED) {
		d->ring = NULL;
		seterr_st(KHRDMA_E_SYS, "ring: %s", strerror(errno));
		goto fail;
	}
	d->hdr = (struct khr_ring_hdr *)(void *)d->ring;
	d->sq = (struct khr_sqe *)(void *)(d->ring + KHR_SQ_OFF);
	d->cq = (struct khr_cqe *)(void *)(d->ring + KHR_CQ_OFF);
	snprintf(d->info.ifname, sizeof(d->info.ifname), "%s", ifname);
	d->info.rank = rep.rank;
	d->info.netid = rep.netid;
	d->info.host = rep.host;
	snprintf(d->info.addr, sizeof(d->info.addr), "%s", rep.msg);
	d->info.sq_depth = (int)rep.sq_depth;
	d->net4 = rep.net4;
	d->prefix = rep.prefix;
	return d;
fail:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	khrdma_close(d);
	return NULL;
}

void
khrdma_close(khrdma_dev *d)
{
	if (d == NULL)
		return;
	/* Closing the socket ends the context and every region in the
	 * engine; what is left here is memory. */
	if (d->sock >= 0)
		close(d->sock);
	for (int i = 0; i < d->nmrs; i++)
		free(d->mrs[i]);
	free(d->mrs);
	for (int i = 0; i < d->nblocks; i++) {
		if (!d->blocks[i].moved)
			munmap(d->blocks[i].p, d->blocks[i].len);
		close(d->blocks[i].fd);
	}
	free(d->blocks);
	if (d->ring)
		munmap(d->ring, KHR_RING_SIZE);
	if (d->ringfd >= 0)
		close(d->ringfd);
	if (d->dbfd >= 0)
		close(d->dbfd);
	if (d->cqfd >= 0)
		close(d->cqfd);
	free(d);
}

int
khrdma_query(khrdma_dev *d, struct khrdma_info *info)
{
	*info = d->info;
	return 0;
}

void
khrdma_set_spin(khrdma_dev *d, unsigned usec)
{
	d->spin_us = usec;
}

int
khrdma_outstanding(const khrdma_dev *d)
{
	return d->outstanding + d->nstash;
}

/* ---- memory ---- */

static int
block_add(khrdma_dev *d, uint8_t *p, size_t len, int fd, int moved)
{
	if (d->nblocks == d->capblocks) {
		int cap = d->capblocks ? d->capblocks * 2 : 8;
		struct block *b = realloc(d->blocks, (size_t)cap * sizeof(*b));
		if (b == NULL)
			return -1;
		d->blocks = b;
		d->capblocks = cap;
	}
	d->blocks[d->nblocks++] = (struct block){p, len, fd, moved};
	return 0;
}

/* A sealed, fully allocated memfd of len bytes (the engine accepts no
 * less: it must never fault on it nor pay for its pages). */
static int
shared_fd(size_t len)
{
	int fd = memfd_create("khrdma", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)len) < 0 || fallocate(fd, 0, 0, (off_t)len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void *
khrdma_alloc(khrdma_dev *d, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	if (len == 0 || len > SIZE_MAX - (size_t)pg) {
		seterr_st(KHRDMA_E_LOCAL, "khrdma_alloc: bad length %zu", len);
		return NULL;
	}
	len = (len + (size_t)pg - 1) & ~((size_t)pg - 1);
	int fd = shared_fd(len);
	if (fd < 0) {
		seterr_st(KHRDMA_E_SYS, "khrdma_alloc: %s", strerror(errno));
		return NULL;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	/* Touch every page: fallocate charged them to this node, a write
	 * makes them present, which the engine checks (it must never be the
	 * one that makes a page of a node's memory). */
	if (p != MAP_FAILED)
		for (size_t i = 0; i < len; i += (size_t)pg)
			((volatile uint8_t *)p)[i] = 0;
	if (p == MAP_FAILED || block_add(d, p, len, fd, 0) < 0) {
		if (p != MAP_FAILED)
			munmap(p, len);
		close(fd);
		seterr_st(KHRDMA_E_SYS, "khrdma_alloc: %s", strerror(errno));
		return NULL;
	}
	return p;
}

void
khrdma_free(khrdma_dev *d, void *p, size_t len)
{
	(void)len;
	for (int i = 0; i < d->nblocks; i++)
		if (d->blocks[i].p == p && !d->blocks[i].moved) {
			munmap(d->blocks[i].p, d->blocks[i].len);
			close(d->blocks[i].fd);
			d->blocks[i] = d->blocks[--d->nblocks];
			return;
		}
}

static struct block *
block_of(khrdma_dev *d, const uint8_t *p, size_t len)
{
	for (int i = 0; i < d->nblocks; i++) {
		struct block *b = &d->blocks[i];
		if (p >= b->p && (size_t)(p - b->p) <= b->len && len <= b->len - (size_t)(p - b->p))
			return b;
	}
	return NULL;
}

/* Is [a, b) wholly private anonymous read-write memory of this process? */
static int
anonymous_rw(uintptr_t a, uintptr_t b)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	uintptr_t at = a;

	if (f == NULL)
		return 0;
	while (at < b && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off;
		char perm[8], dev[16];
		unsigned long ino;
		int pos = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &lo, &hi, perm, &off, dev, &ino,
			   &pos) < 6)
			break;
		if (hi <= at)
			continue;
		if (lo > at)
			break; /* a gap */
		const char *path = line + pos;
		int anon = ino == 0 &&
			   (path[0] == '\n' || path[0] == '\0' || strncmp(path, "[heap]", 6) == 0);
		if (strncmp(perm, "rw-p", 4) != 0 || !anon)
			break;
		at = hi;
	}
	fclose(f);
	return at >= b;
}

/* Put shared memory under [p, p+len)'s pages, keeping their contents. */
static struct block *
move_in_place(khrdma_dev *d, uint8_t *p, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p & ~((uintptr_t)pg - 1);
	uintptr_t b = ((uintptr_t)p + len + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	size_t n = b - a;

	if (!anonymous_rw(a, b)) {
		seterr_st(KHRDMA_E_LOCAL,
			  "khrdma_reg_mr: not anonymous read-write memory (use khrdma_alloc)");
		return NULL;
	}
	int fd = shared_fd(n);
	if (fd < 0) {
		seterr_st(KHRDMA_E_SYS, "khrdma_reg_mr: %s", strerror(errno));
		return NULL;
	}
	void *tmp = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (tmp == MAP_FAILED) {
		close(fd);
		seterr_st(KHRDMA_E_SYS, "khrdma_reg_mr: %s", strerror(errno));
		return NULL;
	}
	memcpy(tmp, (void *)a, n);
	if (mmap((void *)a, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
	    MAP_FAILED) {
		munmap(tmp, n);
		close(fd);
		seterr_st(KHRDMA_E_SYS, "khrdma_reg_mr: %s", strerror(errno));
		return NULL;
	}
	munmap(tmp, n);
	if (block_add(d, (uint8_t *)a, n, fd, 1) < 0) {
		close(fd); /* the mapping stays, as the caller's memory */
		seterr_st(KHRDMA_E_SYS, "khrdma_reg_mr: out of memory");
		return NULL;
	}
	return &d->blocks[d->nblocks - 1];
}

/* Register [off, off+len) of fd, which the caller has at addr. */
static struct khrdma_mr *
reg_range(khrdma_dev *d, int fd, uint64_t off, size_t len, void *addr, int access)
{
	struct khr_req rq = {.type = KHR_M_REG, .proto = KHR_PROTO};
	struct khr_rep rep;
	int nofd[1];

	rq.off = off;
	rq.len = len;
	rq.access = (uint32_t)access;
	if (call(d, d->sock, &rq, fd, &rep, nofd, 0) < 0) {
		seterr_st(KHRDMA_E_DEAD, "the facility closed the device");
		return NULL;
	}
	if (rep.status) {
		seterr_st(rep.status, "khrdma_reg_mr: %s", rep.msg);
		return NULL;
	}
	struct khrdma_mr *mr = calloc(1, sizeof(*mr));
	if (mr == NULL ||
	    (d->nmrs == d->capmrs &&
	     (d->capmrs = d->capmrs ? d->capmrs * 2 : 16,
	      d->mrs = realloc(d->mrs, (size_t)d->capmrs * sizeof(*d->mrs))) == NULL)) {
		free(mr);
		seterr_st(KHRDMA_E_SYS, "khrdma_reg_mr: out of memory");
		return NULL;
	}
	*mr = (struct khrdma_mr){
	    .dev = d, .addr = addr, .len = len, .key = rep.key, .lkey = rep.lkey, .access = access};
	d->mrs[d->nmrs++] = mr;
	return mr;
}

struct khrdma_mr *
khrdma_reg_mr(khrdma_dev *d, void *addr, size_t len, int access)
{
	uint8_t *p = addr;

	if (d->dead) {
		seterr_st(KHRDMA_E_DEAD, "the facility closed the device");
		return NULL;
	}
	if (len == 0 || p == NULL) {
		seterr_st(KHRDMA_E_LOCAL, "khrdma_reg_mr: empty region");
		return NULL;
	}
	struct block *b = block_of(d, p, len);
	if (b == NULL && (b = move_in_place(d, p, len)) == NULL)
		return NULL;
	return reg_range(d, b->fd, (uint64_t)(p - b->p), len, addr, access);
}

struct khrdma_mr *
khrdma_reg_fd(khrdma_dev *d, int fd, uint64_t off, size_t len, void *addr, int access)
{
	if (d->dead) {
		seterr_st(KHRDMA_E_DEAD, "the facility closed the device");
		return NULL;
	}
	if (len == 0 || addr == NULL || fd < 0) {
		seterr_st(KHRDMA_E_LOCAL, "khrdma_reg_fd: empty region");
		return NULL;
	}
	return reg_range(d, fd, off, len, addr, access);
}

int
khrdma_dereg_mr(struct khrdma_mr *mr)
{
	struct khr_req rq = {.type = KHR_M_DEREG, .proto = KHR_PROTO};
	struct khr_rep rep;
	int nofd[1], rc = 0;
	khrdma_dev *d;

	if (mr == NULL)
		return 0;
	d = mr->dev;
	rq.key = mr->key;
	if (!d->dead && call(d, d->sock, &rq, -1, &rep, nofd, 0) == 0 && rep.status)
		rc = seterr_st(rep.status, "khrdma_dereg_mr: %s", rep.msg);
	for (int i = 0; i < d->nmrs; i++)
		if (d->mrs[i] == mr) {
			d->mrs[i] = d->mrs[--d->nmrs];
			break;
		}
	free(mr);
	return rc;
}

int
khrdma_fence(khrdma_dev *d)
{
	struct khr_req rq = {.type = KHR_M_FENCE, .proto = KHR_PROTO};
	struct khr_rep rep;
	int nofd[1];

	if (d->dead || call(d, d->sock, &rq, -1, &rep, nofd, 0) < 0)
		return seterr_st(KHRDMA_E_DEAD, "the facility closed the device");
	if (rep.status)
		return seterr_st(rep.status, "khrdma_fence: %s", rep.msg);
	return 0;
}

/* ---- peers ---- */

int
khrdma_peer(khrdma_dev *d, const char *name, struct khrdma_peer *out)
{
	struct in_addr a;
	const char *s = name;
	char *end;

	if (name == NULL || *name == '\0')
		return seterr_st(KHRDMA_E_NOT_MEMBER, "no peer given");
	if (*s == '#')
		s++;
	if (*s >= '0' && *s <= '9' && strchr(s, '.') == NULL) {
		errno = 0;
		unsigned long r = strtoul(s, &end, 10);
		if (*end || errno || r >= 4094)
			return seterr_st(KHRDMA_E_NOT_MEMBER, "%s: not a rank", name);
		*out = (struct khrdma_peer){.host = 0, .rank = (uint32_t)r};
		return 0;
	}
	if (inet_pton(AF_INET, name, &a) != 1)
		return seterr_st(KHRDMA_E_NOT_MEMBER, "%s: not an address or a rank", name);
	uint32_t ip = ntohl(a.s_addr);
	uint32_t mask = d->prefix ? ~0u << (32 - d->prefix) : 0;
	uint32_t host = ip & ~mask;
	if ((ip & mask) != d->net4 || host == 0 || host >= 4094)
		return seterr_st(KHRDMA_E_NOT_MEMBER, "%s: not a node's address in %s's domain",
				 name, d->info.ifname);
	*out = (struct khrdma_peer){.host = 0, .rank = host - 1};
	return 0;
}

/* ---- operations ---- */

static int
post(khrdma_dev *d, int op, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
     const struct khrdma_mr *mr, size_t loff, uint32_t len, uint64_t a0, uint64_t a1,
     uint64_t wr_id)
{
	if (d->dead)
		return seterr_st(KHRDMA_E_DEAD, "the facility closed the device");
	if (mr == NULL || mr->dev != d)
		return seterr_st(KHRDMA_E_LOCAL, "the local region is not of this device");
	if (d->outstanding + d->nstash >= KHR_SQ_DEPTH)
		return seterr_st(KHRDMA_E_FULL, "%d operations in flight: poll first",
				 KHR_SQ_DEPTH);
	struct khr_sqe *e = &d->sq[d->sq_tail % KHR_SQ_DEPTH];
	*e = (struct khr_sqe){.op = (uint8_t)op,
			      .host = (uint16_t)p.host,
			      .rank = p.rank,
			      .wr_id = wr_id,
			      .rkey = rkey,
			      .roff = roff,
			      .loff = loff,
			      .lkey = mr->lkey,
			      .len = len,
			      .arg0 = a0,
			      .arg1 = a1};
	d->sq_tail++;
	d->outstanding++;
	__atomic_store_n(&d->hdr->sq_tail, d->sq_tail, __ATOMIC_RELEASE);
	/* Against the engine's "asleep, then look once more": one of the two
	 * sees the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&d->hdr->asleep, __ATOMIC_RELAXED)) {
		uint64_t one = 1;
		if (write(d->dbfd, &one, sizeof(one)) < 0)
			errno = 0;
	}
	return 0;
}

int
khrdma_post_read(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		 const struct khrdma_mr *mr, size_t loff, uint32_t len, uint64_t wr_id)
{
	return post(d, KHRDMA_READ, p, rkey, roff, mr, loff, len, 0, 0, wr_id);
}

int
khrdma_post_write(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		  const struct khrdma_mr *mr, size_t loff, uint32_t len, uint64_t wr_id)
{
	return post(d, KHRDMA_WRITE, p, rkey, roff, mr, loff, len, 0, 0, wr_id);
}

int
khrdma_post_cas(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		const struct khrdma_mr *mr, size_t loff, uint64_t compare, uint64_t swap,
		uint64_t wr_id)
{
	return post(d, KHRDMA_CAS, p, rkey, roff, mr, loff, 8, compare, swap, wr_id);
}

int
khrdma_post_fadd(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
		 const struct khrdma_mr *mr, size_t loff, uint64_t add, uint64_t wr_id)
{
	return post(d, KHRDMA_FADD, p, rkey, roff, mr, loff, 8, add, 0, wr_id);
}

int
khrdma_poll(khrdma_dev *d, struct khrdma_wc *wc, int max)
{
	int n = 0;

	while (n < max && d->nstash > 0) {
		wc[n++] = d->stash[0];
		memmove(d->stash, d->stash + 1, (size_t)--d->nstash * sizeof(d->stash[0]));
	}
	uint32_t tail = __atomic_load_n(&d->hdr->cq_tail, __ATOMIC_ACQUIRE), head0 = d->cq_head;
	if (tail - d->cq_head > KHR_CQ_DEPTH)
		return seterr_st(KHRDMA_E_DEAD, "the completion queue is corrupt");
	while (n < max && d->cq_head != tail) {
		const struct khr_cqe *c = &d->cq[d->cq_head % KHR_CQ_DEPTH];
		wc[n++] = (struct khrdma_wc){.wr_id = c->wr_id,
					     .status = c->status,
					     .opcode = c->op,
					     .len = c->len,
					     .result = c->result};
		d->cq_head++;
		d->outstanding--;
	}
	/* Only when it moved: a store per empty poll would pull the line
	 * away from the engine, which reads it. */
	if (d->cq_head != head0)
		__atomic_store_n(&d->hdr->cq_head, d->cq_head, __ATOMIC_RELEASE);
	return n;
}

static uint64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int
khrdma_wait(khrdma_dev *d, struct khrdma_wc *wc, int max, int timeout_ms)
{
	uint64_t start = mono_us();
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000u;
	int n;

	if (max <= 0)
		return 0;
	for (;;) {
		if ((n = khrdma_poll(d, wc, max)) != 0)
			return n;
		if (d->outstanding == 0)
			return seterr_st(KHRDMA_E_TIMEOUT, "nothing in flight");
		if (d->dead)
			return seterr_st(KHRDMA_E_DEAD, "the facility closed the device");
		/* Spin first: a completion usually comes within microseconds. */
		uint64_t spin_end = mono_us() + d->spin_us;
		uint64_t yield_at = mono_us() + SPIN_YIELD_US;
		for (unsigned i = 0;; i++) {
			if (__atomic_load_n(&d->hdr->cq_tail, __ATOMIC_ACQUIRE) != d->cq_head)
				break;
			cpu_relax();
			if ((i & 63) != 63)
				continue;
			uint64_t t = mono_us();
			if (t >= spin_end)
				break;
			/* Whoever else wants this core (the engine, when they
			 * share one) gets it now and then. */
			if (t >= yield_at) {
				sched_yield();
				yield_at = t + SPIN_YIELD_US;
			}
		}
		if ((n = khrdma_poll(d, wc, max)) != 0)
			return n;
		uint64_t now = mono_us();
		if (now >= deadline)
			return seterr_st(KHRDMA_E_TIMEOUT, "no completion within %d ms",
					 timeout_ms);
		/* Then sleep: say so, look once more, block on the eventfd. */
		__atomic_store_n(&d->hdr->waiting, 1, __ATOMIC_SEQ_CST);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&d->hdr->cq_tail, __ATOMIC_ACQUIRE) == d->cq_head) {
			struct pollfd pf[2] = {{d->cqfd, POLLIN, 0}, {d->sock, POLLIN, 0}};
			uint64_t left = deadline == UINT64_MAX ? 0 : (deadline - now + 999) / 1000;
			int pr = poll(pf, 2, deadline == UINT64_MAX ? -1 : (int)left);
			uint64_t v;
			if (pr > 0 && (pf[0].revents & POLLIN) && read(d->cqfd, &v, sizeof(v)) < 0)
				errno = 0;
			if (pr > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
				char b;
				if (recv(d->sock, &b, 1, MSG_DONTWAIT | MSG_PEEK) == 0 ||
				    (pf[1].revents & (POLLHUP | POLLERR)))
					d->dead = 1;
			}
		}
		__atomic_store_n(&d->hdr->waiting, 0, __ATOMIC_RELAXED);
	}
}

/* Wait for the operation just posted (rc its posting's result).  A queue
 * completes in order, so it is the first completion after those in flight
 * before it; they go to the stash for khrdma_poll. */
static int
sync_op(khrdma_dev *d, int rc, int before, uint64_t *result)
{
	struct khrdma_wc wc;

	if (rc < 0)
		return rc;
	for (;;) {
		/* Straight from the queue: the stash holds older ones only. */
		int n = 0;
		while (n == 0) {
			int nst = d->nstash;
			d->nstash = 0;
			n = khrdma_wait(d, &wc, 1, -1);
			d->nstash = nst;
			if (n < 0)
				return n;
		}
		if (before == 0) {
			if (result)
				*result = wc.result;
			return wc.status ? seterr_st(wc.status, "%s", khrdma_strerror(wc.status))
					 : 0;
		}
		d->stash[d->nstash++] = wc;
		before--;
	}
}

int
khrdma_read(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
	    const struct khrdma_mr *mr, size_t loff, uint32_t len)
{
	int before = d->outstanding;
	return sync_op(d, khrdma_post_read(d, p, rkey, roff, mr, loff, len, 0), before, NULL);
}

int
khrdma_write(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
	     const struct khrdma_mr *mr, size_t loff, uint32_t len)
{
	int before = d->outstanding;
	return sync_op(d, khrdma_post_write(d, p, rkey, roff, mr, loff, len, 0), before, NULL);
}

int
khrdma_cas(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
	   const struct khrdma_mr *mr, size_t loff, uint64_t compare, uint64_t swap, uint64_t *old)
{
	int before = d->outstanding;
	return sync_op(d, khrdma_post_cas(d, p, rkey, roff, mr, loff, compare, swap, 0), before,
		       old);
}

int
khrdma_fadd(khrdma_dev *d, struct khrdma_peer p, uint64_t rkey, uint64_t roff,
	    const struct khrdma_mr *mr, size_t loff, uint64_t add, uint64_t *old)
{
	int before = d->outstanding;
	return sync_op(d, khrdma_post_fadd(d, p, rkey, roff, mr, loff, add, 0), before, old);
}
