/* rdmatest: the RDMA device's end-to-end test helper, run inside nodes
 * (tests/e2e/rdma.sh).
 *
 *   rdmatest stream IFACE PEER KEY LEN BYTE SECONDS
 *	reads LEN bytes at offset 0 over and over, each checked to be BYTE,
 *	until 200 operations in a row failed or SECONDS passed; prints
 *	"stream ok=N err=M last_ok_post=NS first_err_post=NS status=S"
 *	(times: CLOCK_REALTIME when the operation was posted).
 *   rdmatest storm IFACE PEER KEY SECONDS
 *	a hostile node: raw protocol, random and crafted descriptors, rings
 *	scribbled over, malformed messages and descriptors on the device
 *	socket, many connections.  KEY is the one region it was granted
 *	(read-only, filled with 'P'); every byte any read of it brought in is
 *	checked: an 'S' (another region's secret) is a breach.  Prints
 *	"storm ops=N ok=M granted_ok=G breach=B contexts_ended=E refused=R". */
#include "rdma/khrdma.h"
#include "rdma/ring.h"
#include "rdma/scm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint64_t
rt_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "rdmatest: %s: %s\n", what, khrdma_last_error());
	exit(1);
}

static int
stream(char **argv)
{
	khrdma_dev *d = khrdma_open(argv[0], NULL);
	struct khrdma_peer p;
	if (d == NULL)
		die("open");
	if (khrdma_peer(d, argv[1], &p) < 0)
		die("peer");
	uint64_t key = strtoull(argv[2], NULL, 0);
	uint32_t len = (uint32_t)strtoul(argv[3], NULL, 0);
	int byte = (int)strtol(argv[4], NULL, 0);
	uint64_t end = rt_ns() + strtoull(argv[5], NULL, 0) * 1000000000ULL;
	uint8_t *buf = khrdma_alloc(d, len);
	struct khrdma_mr *mr = buf ? khrdma_reg_mr(d, buf, len, 0) : NULL;
	if (mr == NULL)
		die("buffer");
	uint64_t ok = 0, err = 0, last_ok = 0, first_err = 0;
	int run = 0, status = 0;
	printf("stream started\n");
	fflush(stdout);
	while (run < 200 && rt_ns() < end) {
		memset(buf, 0, len);
		uint64_t t = rt_ns();
		int rc = khrdma_read(d, p, key, 0, mr, 0, len);
		if (rc == 0) {
			for (uint32_t i = 0; i < len; i++)
				if (buf[i] != byte) {
					printf("stream CORRUPT at %u: %d\n", i, buf[i]);
					return 3;
				}
			ok++;
			last_ok = t;
			run = 0;
		} else {
			if (first_err == 0 || (err && run == 0))
				first_err = t;
			err++;
			run++;
			status = -rc;
		}
	}
	printf("stream ok=%llu err=%llu last_ok_post=%llu first_err_post=%llu status=%d\n",
	       (unsigned long long)ok, (unsigned long long)err, (unsigned long long)last_ok,
	       (unsigned long long)first_err, status);
	return 0;
}

/* ---- the hostile node ---- */

static uint64_t rnd_state;
static uint64_t
rnd(void)
{
	/* xorshift: cheap, seeded from the kernel */
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

struct raw {
	int sock;
	uint8_t *ring;
	struct khr_ring_hdr *h;
	struct khr_sqe *sq;
	struct khr_cqe *cq;
	int fds[3];
	uint32_t tail, head;
	uint8_t *buf; /* its local region: 64 KiB, 'H' */
	int buffd;
	uint32_t lkey;
};

static int
xfer(int sock, const struct khr_req *rq, size_t rqlen, int sendfd, struct khr_rep *rep, int *fds)
{
	int got = 0, tmp[3];
	if (scm_send(sock, rq, rqlen, &sendfd, sendfd >= 0, 0) < 0 ||
	    scm_recv(sock, rep, sizeof(*rep), tmp, 3, &got, 0) != (ssize_t)sizeof(*rep))
		return -1;
	for (int i = 0; i < got; i++) {
		if (fds)
			fds[i] = tmp[i];
		else
			close(tmp[i]);
	}
	return 0;
}

static int
sealed_memfd(size_t len, int fill)
{
	int fd = memfd_create("h", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		return -1;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -1;
	memset(p, fill, len);
	munmap(p, len);
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	return fd;
}

static int
raw_open(struct raw *r, const char *ifname)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct khr_req rq = {.type = KHR_M_OPEN, .proto = KHR_PROTO};
	struct khr_rep rep;
	memset(r, 0, sizeof(*r));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
		 getenv("KHRDMA_DEVICE") ? getenv("KHRDMA_DEVICE") : "/dev/khrdma");
	r->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (r->sock < 0 || connect(r->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	snprintf(rq.ifname, sizeof(rq.ifname), "%s", ifname);
	r->fds[0] = r->fds[1] = r->fds[2] = -1;
	if (xfer(r->sock, &rq, sizeof(rq), -1, &rep, r->fds) < 0 || rep.status || r->fds[0] < 0)
		return -1;
	r->ring = mmap(NULL, KHR_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->fds[0], 0);
	if (r->ring == MAP_FAILED)
		return -1;
	r->h = (struct khr_ring_hdr *)(void *)r->ring;
	r->sq = (struct khr_sqe *)(void *)(r->ring + KHR_SQ_OFF);
	r->cq = (struct khr_cqe *)(void *)(r->ring + KHR_CQ_OFF);
	r->buffd = sealed_memfd(65536, 'H');
	r->buf = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, r->buffd, 0);
	struct khr_req rg = {.type = KHR_M_REG, .proto = KHR_PROTO, .off = 0, .len = 65536};
	if (r->buf == MAP_FAILED || xfer(r->sock, &rg, sizeof(rg), r->buffd, &rep, NULL) < 0 ||
	    rep.status)
		return -1;
	r->lkey = rep.lkey;
	return 0;
}

static void
raw_close(struct raw *r)
{
	munmap(r->ring, KHR_RING_SIZE);
	munmap(r->buf, 65536);
	close(r->buffd);
	for (int i = 0; i < 3; i++)
		close(r->fds[i]);
	close(r->sock);
}

static void
ring_bell(struct raw *r)
{
	uint64_t one = 1;
	if (write(r->fds[1], &one, 8) < 0)
		errno = 0;
}

/* Malformed and unwelcome messages on the device socket. */
static int
bad_messages(const char *ifname)
{
	struct raw r;
	struct khr_rep rep;
	int refused = 0;
	if (raw_open(&r, ifname) < 0)
		return 0;
	char junk[300];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)rnd();
	struct khr_req rq;
	memcpy(&rq, junk, sizeof(rq));
	rq.proto = KHR_PROTO;
	/* short, long, unknown type, wrong version */
	if (xfer(r.sock, (struct khr_req *)junk, 5, -1, &rep, NULL) == 0 && rep.status)
		refused++;
	if (xfer(r.sock, (struct khr_req *)junk, sizeof(junk), -1, &rep, NULL) == 0 && rep.status)
		refused++;
	rq.type = 77;
	if (xfer(r.sock, &rq, sizeof(rq), -1, &rep, NULL) == 0 && rep.status)
		refused++;
	rq.type = KHR_M_OPEN;
	if (xfer(r.sock, &rq, sizeof(rq), -1, &rep, NULL) == 0 && rep.status)
		refused++; /* a second open */
	/* registrations the engine must refuse: no fd, a pipe, unsealed
	 * memory, holes, a range past the end, nonsense permissions */
	struct khr_req rg = {.type = KHR_M_REG, .proto = KHR_PROTO, .off = 0, .len = 4096};
	int p[2];
	if (pipe(p) == 0) {
		if (xfer(r.sock, &rg, sizeof(rg), p[0], &rep, NULL) == 0 && rep.status)
			refused++;
		close(p[0]);
		close(p[1]);
	}
	if (xfer(r.sock, &rg, sizeof(rg), -1, &rep, NULL) == 0 && rep.status)
		refused++;
	int un = memfd_create("u", MFD_CLOEXEC);
	if (un >= 0 && ftruncate(un, 4096) == 0 &&
	    xfer(r.sock, &rg, sizeof(rg), un, &rep, NULL) == 0 && rep.status)
		refused++;
	int holes = memfd_create("x", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (holes >= 0 && ftruncate(holes, 1 << 30) == 0 &&
	    fcntl(holes, F_ADD_SEALS, F_SEAL_SHRINK) == 0) {
		rg.len = 1 << 30;
		if (xfer(r.sock, &rg, sizeof(rg), holes, &rep, NULL) == 0 && rep.status)
			refused++;
	}
	rg.len = 1;
	rg.off = UINT64_MAX;
	if (xfer(r.sock, &rg, sizeof(rg), r.buffd, &rep, NULL) == 0 && rep.status)
		refused++;
	rg.off = 0;
	rg.access = 0xffff;
	if (xfer(r.sock, &rg, sizeof(rg), r.buffd, &rep, NULL) == 0 && rep.status)
		refused++;
	struct khr_req dr = {.type = KHR_M_DEREG, .proto = KHR_PROTO, .key = rnd()};
	if (xfer(r.sock, &dr, sizeof(dr), -1, &rep, NULL) == 0 && rep.status)
		refused++;
	if (un >= 0)
		close(un);
	if (holes >= 0)
		close(holes);
	raw_close(&r);
	return refused;
}

static int
storm(char **argv)
{
	const char *ifname = argv[0];
	uint64_t granted = strtoull(argv[2], NULL, 0);
	uint64_t end = rt_ns() + strtoull(argv[3], NULL, 0) * 1000000000ULL;
	uint32_t peer;
	khrdma_dev *d = khrdma_open(ifname, NULL);
	struct khrdma_peer pp;
	if (d == NULL || khrdma_peer(d, argv[1], &pp) < 0)
		die("peer");
	peer = pp.rank;
	khrdma_close(d);
	if (getrandom(&rnd_state, sizeof(rnd_state), 0) != sizeof(rnd_state) || rnd_state == 0)
		rnd_state = 88172645463325252ULL;

	uint64_t ops = 0, ok = 0, granted_ok = 0, breach = 0, ended = 0;
	int refused = bad_messages(ifname);
	/* many connections: the engine refuses beyond its limit, keeps going */
	int conns[300], nconn = 0;
	for (int i = 0; i < 300; i++) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/dev/khrdma");
		int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			conns[nconn++] = s;
		else if (s >= 0)
			close(s);
	}
	for (int i = 0; i < nconn; i++)
		close(conns[i]);

	struct raw r;
	if (raw_open(&r, ifname) < 0)
		die("raw open");
	while (rt_ns() < end) {
		/* a burst of descriptors, mostly crafted, some pure noise */
		int burst = 1 + (int)(rnd() % 32);
		for (int i = 0; i < burst; i++) {
			struct khr_sqe e;
			uint64_t *w = (uint64_t *)(void *)&e;
			for (int j = 0; j < 8; j++)
				w[j] = rnd();
			switch (rnd() % 4) {
			case 0: /* noise */
				break;
			case 1: /* the granted key, wild ranges */
				e.op = (uint8_t)(1 + rnd() % 4);
				e.flags = 0;
				e.host = 0;
				e.rank = peer;
				e.rkey = granted;
				e.lkey = r.lkey;
				e.loff = rnd() % 70000;
				e.roff = rnd() % 2 ? rnd() % 80000 : rnd();
				e.len = (uint32_t)(rnd() % 3 ? rnd() % 70000 : rnd());
				break;
			default: /* guessed keys near the granted one: other slots,
				    other generations */
				e.op = (uint8_t)(1 + rnd() % 2);
				e.flags = 0;
				e.host = 0;
				e.rank = rnd() % 4 ? peer : (uint32_t)(rnd() % 8);
				e.rkey = rnd() % 2 ? (granted & ~0xffffffULL) | (rnd() % 64)
						   : (rnd() << 24) | (granted & 0xffffff);
				e.lkey = r.lkey;
				e.loff = 0;
				e.roff = rnd() % 4096;
				e.len = 1 + (uint32_t)(rnd() % 4096);
				break;
			}
			r.sq[r.tail % KHR_SQ_DEPTH] = e;
			r.tail++;
		}
		__atomic_store_n(&r.h->sq_tail, r.tail, __ATOMIC_RELEASE);
		ring_bell(&r);
		/* sometimes scribble over the indexes and the header */
		int scribble = rnd() % 50 == 0;
		if (scribble) {
			if (rnd() % 2)
				r.h->sq_tail = (uint32_t)rnd();
			else
				r.h->cq_head = (uint32_t)rnd();
			r.h->sq_head = (uint32_t)rnd();
			r.h->cq_tail = (uint32_t)rnd();
			ring_bell(&r);
		}
		/* collect; a context that stops answering was ended by the engine */
		uint64_t until = rt_ns() + 20000000ULL;
		while (!scribble && r.head != r.tail && rt_ns() < until) {
			uint32_t ct = __atomic_load_n(&r.h->cq_tail, __ATOMIC_ACQUIRE);
			while (r.head != ct) {
				struct khr_cqe c = r.cq[r.head % KHR_CQ_DEPTH];
				r.head++;
				ops++;
				if (c.status == 0) {
					ok++;
					if (c.op == KHRDMA_READ)
						granted_ok++;
				}
			}
			__atomic_store_n(&r.h->cq_head, r.head, __ATOMIC_RELEASE);
		}
		for (size_t i = 0; i < 65536; i++)
			if (r.buf[i] == 'S') {
				breach++;
				break;
			}
		memset(r.buf, 'H', 65536);
		if (scribble || r.head != r.tail) {
			ended++;
			raw_close(&r);
			if (raw_open(&r, ifname) < 0)
				die("raw reopen");
		}
	}
	raw_close(&r);
	printf("storm ops=%llu ok=%llu granted_ok=%llu breach=%llu contexts_ended=%llu "
	       "refused=%d\n",
	       (unsigned long long)ops, (unsigned long long)ok, (unsigned long long)granted_ok,
	       (unsigned long long)breach, (unsigned long long)ended, refused);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "stream") == 0)
		return stream(argv + 2);
	if (argc == 6 && strcmp(argv[1], "storm") == 0)
		return storm(argv + 2);
	fprintf(stderr, "usage: rdmatest stream IFACE PEER KEY LEN BYTE SECONDS\n"
			"       rdmatest storm IFACE PEER KEY SECONDS\n");
	return 2;
}
