/* khrdma: the one-sided memory device from the command line, for scripts
 * and tests inside nodes (docs/rdma.md).  Linked with libkhrdma alone, so
 * an appliance needs nothing more than the C library for it.
 *
 *   khrdma info IFACE
 *   khrdma expose IFACE SIZE [--fill BYTE | --file FILE] [--ro]
 *   khrdma read IFACE PEER KEY OFFSET LEN
 *   khrdma write IFACE PEER KEY OFFSET           (the bytes of stdin)
 *   khrdma cas IFACE PEER KEY OFFSET COMPARE SWAP
 *   khrdma fadd IFACE PEER KEY OFFSET ADD
 *   khrdma bench IFACE PEER KEY [--quick] [--span BYTES]  (the region: 1 MiB, or span) */
#include "rdma/khrdma.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void __attribute__((noreturn, format(printf, 2, 3))) die(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("khrdma: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static const char *const usages[] = {
    "info IFACE",
    "expose IFACE SIZE [--fill BYTE | --file FILE] [--ro]",
    "read IFACE PEER KEY OFFSET LEN",
    "write IFACE PEER KEY OFFSET < data",
    "cas IFACE PEER KEY OFFSET COMPARE SWAP",
    "fadd IFACE PEER KEY OFFSET ADD",
    "bench IFACE PEER KEY [--quick] [--span BYTES]",
};
static const char *cmd_name = "";

/* A bad command line: one line, the command's own usage (every usage
 * when the command itself is unknown). */
static void __attribute__((noreturn)) usage(void)
{
	size_t n = strlen(cmd_name);
	for (size_t i = 0; n && i < sizeof(usages) / sizeof(usages[0]); i++)
		if (strncmp(usages[i], cmd_name, n) == 0 && usages[i][n] == ' ') {
			fprintf(stderr, "usage: khrdma %s\n", usages[i]);
			exit(2);
		}
	fprintf(stderr,
		"usage: khrdma info|expose|read|write|cas|fadd|bench IFACE ... (docs/rdma.md)\n");
	exit(2);
}

/* A number: decimal, or hex with 0x; with sizes, K/M/G suffixes (1024). */
static uint64_t
num(const char *s, const char *what, int size)
{
	char *end;
	errno = 0;
	if (s == NULL || *s == '\0' || *s == '-')
		die(2, "bad %s: %s", what, s ? s : "(none)");
	unsigned long long v = strtoull(s, &end, 0);
	if (errno)
		die(2, "bad %s: %s", what, s);
	if (size && *end) {
		unsigned sh = *end == 'K' || *end == 'k' ? 10
			      : *end == 'M'		 ? 20
			      : *end == 'G'		 ? 30
							 : 0;
		if (sh == 0 || end[1] != '\0' || v > (UINT64_MAX >> sh))
			die(2, "bad %s: %s", what, s);
		v <<= sh;
		end++;
	}
	if (*end)
		die(2, "bad %s: %s", what, s);
	return v;
}

static khrdma_dev *
open_dev(const char *ifname)
{
	khrdma_dev *d = khrdma_open(ifname, NULL);
	if (d == NULL)
		die(1, "%s", khrdma_last_error());
	return d;
}

static struct khrdma_peer
peer(khrdma_dev *d, const char *name)
{
	struct khrdma_peer p;
	if (khrdma_peer(d, name, &p) < 0)
		die(1, "%s", khrdma_last_error());
	return p;
}

static struct khrdma_mr *
buffer(khrdma_dev *d, size_t len, void **p)
{
	*p = khrdma_alloc(d, len ? len : 1);
	struct khrdma_mr *mr = *p ? khrdma_reg_mr(d, *p, len ? len : 1, 0) : NULL;
	if (mr == NULL)
		die(1, "%s", khrdma_last_error());
	return mr;
}

static void
check(int rc)
{
	if (rc < 0)
		die(1, "%s", khrdma_last_error());
}

static volatile sig_atomic_t stop;
static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
cmd_expose(int argc, char **argv)
{
	int ro = 0, fill = -1;
	const char *file = NULL;
	if (argc < 2)
		usage();
	uint64_t size = num(argv[1], "size", 1);
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--ro") == 0)
			ro = 1;
		else if (strcmp(argv[i], "--fill") == 0 && i + 1 < argc)
			fill = (int)num(argv[++i], "fill byte", 0);
		else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			file = argv[++i];
		else
			usage();
	}
	if (size == 0 || size > (1ULL << 40))
		die(2, "bad size: %s", argv[1]);
	if (fill > 255 || (fill >= 0 && file))
		usage();
	khrdma_dev *d = open_dev(argv[0]);
	uint8_t *p = khrdma_alloc(d, size);
	if (p == NULL)
		die(1, "%s", khrdma_last_error());
	if (fill >= 0)
		memset(p, fill, size);
	if (file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die(1, "%s: %s", file, strerror(errno));
		size_t got = 0;
		ssize_t n;
		while (got < size && (n = read(fd, p + got, size - got)) > 0)
			got += (size_t)n;
		close(fd);
	}
	int access = KHRDMA_REMOTE_READ | (ro ? 0 : KHRDMA_REMOTE_WRITE | KHRDMA_REMOTE_ATOMIC);
	struct khrdma_mr *mr = khrdma_reg_mr(d, p, size, access);
	if (mr == NULL)
		die(1, "%s", khrdma_last_error());
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("key 0x%llx size %llu\n", (unsigned long long)mr->key, (unsigned long long)size);
	fflush(stdout);
	/* The device serves it; nothing to do here but stay alive. */
	while (!stop)
		pause();
	khrdma_close(d);
	return 0;
}

static int
cmd_read(int argc, char **argv)
{
	if (argc != 5)
		usage();
	uint64_t key = num(argv[2], "key", 0), off = num(argv[3], "offset", 1),
		 len = num(argv[4], "length", 1);
	khrdma_dev *d = open_dev(argv[0]);
	struct khrdma_peer p = peer(d, argv[1]);
	size_t chunk = len < (64u << 20) ? (size_t)len : (64u << 20);
	void *buf;
	struct khrdma_mr *mr = buffer(d, chunk, &buf);
	for (uint64_t done = 0; done < len;) {
		uint32_t n = (uint32_t)(len - done < chunk ? len - done : chunk);
		if (off + done < off)
			die(1, "offset overflows");
		check(khrdma_read(d, p, key, off + done, mr, 0, n));
		if (fwrite(buf, 1, n, stdout) != n)
			die(1, "stdout: %s", strerror(errno));
		done += n;
	}
	if (fflush(stdout) != 0)
		die(1, "stdout: %s", strerror(errno));
	khrdma_close(d);
	return 0;
}

static int
cmd_write(int argc, char **argv)
{
	if (argc != 4)
		usage();
	uint64_t key = num(argv[2], "key", 0), off = num(argv[3], "offset", 1);
	size_t len = 0, cap = 1 << 16;
	uint8_t *data = malloc(cap);
	ssize_t n;
	while (data && (n = read(0, data + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap) {
			uint8_t *g = cap > (1u << 30) ? NULL : realloc(data, cap * 2);
			if (g == NULL)
				die(1, "stdin: more than 1 GiB");
			data = g;
			cap *= 2;
		}
	}
	if (data == NULL)
		die(1, "out of memory");
	khrdma_dev *d = open_dev(argv[0]);
	struct khrdma_peer p = peer(d, argv[1]);
	void *buf;
	struct khrdma_mr *mr = buffer(d, len, &buf);
	memcpy(buf, data, len);
	free(data);
	check(khrdma_write(d, p, key, off, mr, 0, (uint32_t)len));
	khrdma_close(d);
	return 0;
}

static int
cmd_atomic(int argc, char **argv, int cas)
{
	if (argc != (cas ? 6 : 5))
		usage();
	uint64_t key = num(argv[2], "key", 0), off = num(argv[3], "offset", 1), old = 0;
	khrdma_dev *d = open_dev(argv[0]);
	struct khrdma_peer p = peer(d, argv[1]);
	void *buf;
	struct khrdma_mr *mr = buffer(d, 8, &buf);
	if (cas)
		check(khrdma_cas(d, p, key, off, mr, 0, num(argv[4], "compare", 0),
				 num(argv[5], "swap", 0), &old));
	else
		check(khrdma_fadd(d, p, key, off, mr, 0, num(argv[4], "addend", 0), &old));
	printf("%llu\n", (unsigned long long)old);
	khrdma_close(d);
	return 0;
}

static int
cmd_info(int argc, char **argv)
{
	struct khrdma_info in;
	if (argc != 1)
		usage();
	khrdma_dev *d = open_dev(argv[0]);
	khrdma_query(d, &in);
	printf("%s rank %u netid %u address %s host %u queue %d\n", in.ifname, in.rank, in.netid,
	       in.addr, in.host, in.sq_depth);
	khrdma_close(d);
	return 0;
}

/* ---- bench ---- */

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void
latency(khrdma_dev *d, struct khrdma_peer p, uint64_t key, struct khrdma_mr *mr, int op,
	uint32_t len, int iters)
{
	uint64_t *t = malloc((size_t)iters * sizeof(*t));
	static const char *const names[] = {"", "read", "write", "cas", "fadd"};
	uint64_t old;
	if (t == NULL)
		die(1, "out of memory");
	for (int i = -iters / 10; i < iters; i++) {
		uint64_t t0 = now_ns();
		int rc = op == 1   ? khrdma_read(d, p, key, 0, mr, 0, len)
			 : op == 2 ? khrdma_write(d, p, key, 0, mr, 0, len)
			 : op == 3 ? khrdma_cas(d, p, key, 0, mr, 0, 0, 0, &old)
				   : khrdma_fadd(d, p, key, 0, mr, 0, 1, &old);
		uint64_t t1 = now_ns();
		check(rc);
		if (i >= 0)
			t[i] = t1 - t0;
	}
	qsort(t, (size_t)iters, sizeof(*t), cmp_u64);
	char sz[32];
	if (len >= 1024 && len % 1024 == 0)
		snprintf(sz, sizeof(sz), "%u KB", len / 1024);
	else
		snprintf(sz, sizeof(sz), "%u B", len);
	printf("%s %s median %.2f us p99 %.2f us\n", names[op], sz, t[iters / 2] / 1000.0,
	       t[(size_t)iters * 99 / 100] / 1000.0);
	fflush(stdout);
	free(t);
}

/* Keep depth operations of len bytes in flight for about ms.  span 0:
 * always the same bytes on both sides (ib_read_bw's way: the caches' speed);
 * else the remote side walks through span bytes and the local side through
 * 16 slots (a working set larger than the caches: memory's speed). */
static void
bandwidth(khrdma_dev *d, struct khrdma_peer p, uint64_t key, struct khrdma_mr *mr, int op,
	  uint32_t len, int ms, uint64_t span)
{
	struct khrdma_wc wc[32];
	const int depth = 16;
	uint64_t bytes = 0, t0 = now_ns(), end = t0 + (uint64_t)ms * 1000000ULL, n = 0;
	uint64_t slots = span ? span / len : 1, lslots = span ? mr->len / len : 1;
	int inflight = 0;
	if (slots == 0 || lslots == 0)
		die(1, "--span is smaller than %u bytes", len);
	if (lslots > 16)
		lslots = 16;
	for (;;) {
		uint64_t now = now_ns();
		while (now < end && inflight < depth) {
			uint64_t roff = (n % slots) * len;
			size_t loff = (size_t)((n % lslots) * len);
			n++;
			int rc = op == 1 ? khrdma_post_read(d, p, key, roff, mr, loff, len, 0)
					 : khrdma_post_write(d, p, key, roff, mr, loff, len, 0);
			check(rc);
			inflight++;
		}
		if (inflight == 0)
			break;
		int got = khrdma_wait(d, wc, 32, 5000);
		check(got);
		for (int i = 0; i < got; i++) {
			if (wc[i].status)
				die(1, "%s", khrdma_strerror(wc[i].status));
			bytes += wc[i].len;
		}
		inflight -= got;
	}
	double s = (now_ns() - t0) / 1e9;
	if (span)
		printf("%s %u KB bandwidth %.2f GB/s span %llu KB\n", op == 1 ? "read" : "write",
		       len / 1024, bytes / s / 1e9, (unsigned long long)span / 1024);
	else
		printf("%s %u KB bandwidth %.2f GB/s\n", op == 1 ? "read" : "write", len / 1024,
		       bytes / s / 1e9);
	fflush(stdout);
}

static int
cmd_bench(int argc, char **argv)
{
	int quick = 0;
	uint64_t span = 0;
	if (argc < 3)
		usage();
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--span") == 0 && i + 1 < argc)
			span = num(argv[++i], "span", 1);
		else
			usage();
	}
	uint64_t key = num(argv[2], "key", 0);
	khrdma_dev *d = open_dev(argv[0]);
	struct khrdma_peer p = peer(d, argv[1]);
	void *buf;
	struct khrdma_mr *mr = buffer(d, 2u << 20, &buf);
	memset(buf, 1, 2u << 20);
	static const uint32_t sizes[] = {8, 200, 1024, 65536};
	int iters = quick ? 2000 : 50000;
	for (int op = 1; op <= 2; op++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			latency(d, p, key, mr, op, sizes[i],
				sizes[i] >= 65536 ? iters / 10 : iters);
	latency(d, p, key, mr, 3, 8, iters);
	latency(d, p, key, mr, 4, 8, iters);
	for (int op = 1; op <= 2; op++) {
		bandwidth(d, p, key, mr, op, 65536, quick ? 100 : 1000, 0);
		bandwidth(d, p, key, mr, op, 1u << 20, quick ? 100 : 1000, 0);
	}
	if (span) /* the same over a working set of span bytes */
		for (int op = 1; op <= 2; op++) {
			bandwidth(d, p, key, mr, op, 65536, quick ? 100 : 1000, span);
			bandwidth(d, p, key, mr, op, 1u << 20, quick ? 100 : 1000, span);
		}
	khrdma_close(d);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2)
		cmd_name = argv[1];
	if (argc < 3)
		usage();
	const char *cmd = argv[1];
	cmd_name = cmd;
	argc -= 2;
	argv += 2;
	if (strcmp(cmd, "expose") == 0)
		return cmd_expose(argc, argv);
	if (strcmp(cmd, "read") == 0)
		return cmd_read(argc, argv);
	if (strcmp(cmd, "write") == 0)
		return cmd_write(argc, argv);
	if (strcmp(cmd, "cas") == 0)
		return cmd_atomic(argc, argv, 1);
	if (strcmp(cmd, "fadd") == 0)
		return cmd_atomic(argc, argv, 0);
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(argc, argv);
	if (strcmp(cmd, "info") == 0)
		return cmd_info(argc, argv);
	usage();
}
