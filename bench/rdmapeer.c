/* rdmapeer: the RDMA device's peers for bench/rdma.sh, measured like
 * `khrdma bench` measures the device and printed in its format:
 *
 *   rdmapeer memcpy              memcpy in one process (the physical limit)
 *   rdmapeer pvr                 process_vm_readv from another process
 *   rdmapeer tcpserve PORT       answer "give me N bytes" requests
 *   rdmapeer tcpclient ADDR PORT request/response of the same sizes over TCP
 *
 * Each prints "read 200 B median X us p99 Y us", "read 1 KB ...", and
 * "read 64 KB bandwidth Z GB/s", "read 1024 KB bandwidth ...".  --quick
 * makes every measurement short. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int quick;

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "rdmapeer: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* fn(arg, len) does one transfer of len bytes. */
typedef void xfer_fn(void *arg, size_t len);

static void
latency(const char *label, xfer_fn *fn, void *arg, size_t len, int iters)
{
	uint64_t *t = malloc((size_t)iters * sizeof(*t));
	if (t == NULL)
		die("malloc");
	for (int i = -iters / 10; i < iters; i++) {
		uint64_t t0 = now_ns();
		fn(arg, len);
		uint64_t t1 = now_ns();
		if (i >= 0)
			t[i] = t1 - t0;
	}
	qsort(t, (size_t)iters, sizeof(*t), cmp_u64);
	char sz[32];
	if (len >= 1024)
		snprintf(sz, sizeof(sz), "%zu KB", len / 1024);
	else
		snprintf(sz, sizeof(sz), "%zu B", len);
	printf("%s %s median %.2f us p99 %.2f us\n", label, sz, t[iters / 2] / 1000.0,
	       t[(size_t)iters * 99 / 100] / 1000.0);
	fflush(stdout);
	free(t);
}

static void
bandwidth(const char *label, xfer_fn *fn, void *arg, size_t len, int ms)
{
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)ms * 1000000ULL, bytes = 0, now;
	do {
		fn(arg, len);
		bytes += len;
	} while ((now = now_ns()) < end);
	printf("%s %zu KB bandwidth %.2f GB/s\n", label, len / 1024,
	       bytes / ((now - t0) / 1e9) / 1e9);
	fflush(stdout);
}

static void
run_all(const char *label, xfer_fn *fn, void *arg)
{
	int iters = quick ? 2000 : 50000;
	latency(label, fn, arg, 200, iters);
	latency(label, fn, arg, 1024, iters);
	bandwidth(label, fn, arg, 65536, quick ? 100 : 1000);
	bandwidth(label, fn, arg, 1u << 20, quick ? 100 : 1000);
}

/* ---- memcpy ---- */

struct bufs {
	uint8_t *src, *dst;
	pid_t pid; /* pvr: the other process */
	int fd;	   /* tcp: the connection */
};

static void
do_memcpy(void *arg, size_t len)
{
	struct bufs *b = arg;
	memcpy(b->dst, b->src, len);
	__asm__ __volatile__("" ::"r"(b->dst) : "memory"); /* the copy is not optimized away */
}

/* ---- process_vm_readv ---- */

static void
do_pvr(void *arg, size_t len)
{
	struct bufs *b = arg;
	struct iovec l = {b->dst, len}, r = {b->src, len};
	if (process_vm_readv(b->pid, &l, 1, &r, 1, 0) != (ssize_t)len)
		die("process_vm_readv");
}

/* ---- TCP request/response ---- */

static int
read_all(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int
write_all(int fd, const void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = write(fd, (const char *)p + done, n - done);
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static void
serve(int port)
{
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	static uint8_t data[1 << 20];
	memset(data, 'T', sizeof(data));
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 8) < 0)
		die("listen");
	printf("serving\n");
	fflush(stdout);
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		uint32_t want;
		while (read_all(c, &want, sizeof(want)) == 0 && want <= sizeof(data))
			if (write_all(c, data, want) < 0)
				break;
		close(c);
	}
}

static void
do_tcp(void *arg, size_t len)
{
	struct bufs *b = arg;
	uint32_t want = (uint32_t)len;
	if (write_all(b->fd, &want, sizeof(want)) < 0 || read_all(b->fd, b->dst, len) < 0)
		die("tcp");
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[argc - 1], "--quick") == 0) {
		quick = 1;
		argc--;
	}
	struct bufs b = {.src = malloc(2u << 20), .dst = malloc(2u << 20)};
	if (b.src == NULL || b.dst == NULL)
		die("malloc");
	memset(b.src, 'A', 2u << 20);
	memset(b.dst, 0, 2u << 20);
	if (argc == 2 && strcmp(argv[1], "memcpy") == 0) {
		run_all("read", do_memcpy, &b);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "pvr") == 0) {
		int p[2];
		if (pipe(p) < 0)
			die("pipe");
		if ((b.pid = fork()) == 0) {
			/* The other process: its buffer (the same address, a copy
			 * of it after fork), idle until the parent is done. */
			char c;
			close(p[1]);
			if (read(p[0], &c, 1) < 0)
				_exit(1);
			_exit(0);
		}
		close(p[0]);
		run_all("read", do_pvr, &b);
		close(p[1]);
		waitpid(b.pid, NULL, 0);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "tcpserve") == 0) {
		serve(atoi(argv[2]));
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "tcpclient") == 0) {
		int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)atoi(argv[3]))};
		if (s < 0 || inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1 ||
		    connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect");
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		b.fd = s;
		run_all("read", do_tcp, &b);
		close(s);
		return 0;
	}
	fprintf(stderr,
		"usage: rdmapeer memcpy | pvr | tcpserve PORT | tcpclient ADDR PORT [--quick]\n");
	return 2;
}
