/* link-*: the frames between the front end and the agents (src/agent/link.h):
 * what goes in comes out whole and in order, however the socket splits
 * it; what does not parse is refused; the cluster key and its proofs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/link.h"
#include "agent/linkmsg.h"

/* link-*: see also link-2 (linkmsg: the payloads) and link-3 (link_pump). */

/* link-1.1: a 3 MB blob in chunks between small frames, through a socket
 * with a small buffer (many partial sends and reads): every frame arrives
 * whole, in order, with its bytes. */
static void
link_1_1(void **state)
{
	int sv[2], sz = 4096;
	struct link w, r;
	size_t total = 3u << 20;
	unsigned char *blob = malloc(total), *got = calloc(1, total);
	(void)state;
	assert_non_null(blob);
	for (size_t i = 0; i < total; i++)
		blob[i] = (unsigned char)(i * 7 + (i >> 11));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	link_init(&w, sv[0]);
	link_init(&r, sv[1]);
	int nframes = 0;
	for (size_t off = 0; off < total; off += LINK_CHUNK) {
		size_t n = total - off < LINK_CHUNK ? total - off : LINK_CHUNK;
		size_t at = link_begin(&w, L_PING, 7);
		link_end(&w, at);
		at = link_begin(&w, L_BLOB, 0);
		put_u64(&w, total);
		put_u64(&w, off);
		put_bytes(&w, blob + off, n);
		link_end(&w, at);
		nframes += 2;
	}
	size_t at = link_begin(&w, L_FAILED, 4000);
	put_u32(&w, 42);
	put_str(&w, "why not");
	link_end(&w, at);
	nframes++;

	int seen = 0, fails = 0;
	size_t have = 0;
	while (seen < nframes) {
		int rc = link_flush(&w);
		assert_true(rc >= 0);
		ssize_t n = link_read(&r);
		assert_true(n != -1 && n != 0);
		const unsigned char *p;
		size_t len;
		uint32_t rank;
		int type;
		while ((rc = link_next(&r, &type, &rank, &p, &len)) == 1) {
			struct lget g;
			lget_init(&g, p, len);
			if (type == L_PING) {
				assert_int_equal(rank, 7);
				assert_int_equal(len, 0);
			} else if (type == L_BLOB) {
				uint64_t t, off;
				assert_int_equal(get_u64(&g, &t), 0);
				assert_int_equal(get_u64(&g, &off), 0);
				assert_int_equal(t, total);
				assert_int_equal(off, have);
				size_t k;
				const unsigned char *b = get_rest(&g, &k);
				memcpy(got + off, b, k);
				have += k;
			} else {
				uint32_t v;
				char s[16];
				assert_int_equal(type, L_FAILED);
				assert_int_equal(rank, 4000);
				assert_int_equal(get_u32(&g, &v), 0);
				assert_int_equal(v, 42);
				assert_int_equal(get_str(&g, s, sizeof(s)), 0);
				assert_string_equal(s, "why not");
				fails++;
			}
			seen++;
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(have, total);
	assert_int_equal(fails, 1);
	assert_memory_equal(got, blob, total);
	link_free(&w);
	link_free(&r);
	free(blob);
	free(got);
}

static int
feed(const unsigned char *bytes, size_t n)
{
	int sv[2];
	struct link r;
	const unsigned char *p;
	size_t len;
	uint32_t rank;
	int type, rc;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(write(sv[0], bytes, n), (ssize_t)n);
	link_init(&r, sv[1]);
	link_read(&r);
	rc = link_next(&r, &type, &rank, &p, &len);
	link_free(&r);
	close(sv[0]);
	return rc;
}

/* link-1.2: hostile headers and payloads. */
static void
link_1_2(void **state)
{
	(void)state;
	/* too long, type 0, a type beyond the last, half a header */
	unsigned char big[12] = {0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0};
	unsigned char t0[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	unsigned char tx[12] = {0, 0, 0, 0, L_TYPES, 0, 0, 0, 0, 0, 0, 0};
	unsigned char ok[12] = {0, 0, 0, 0, L_PING, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(feed(big, sizeof(big)), -1);
	assert_int_equal(feed(t0, sizeof(t0)), -1);
	assert_int_equal(feed(tx, sizeof(tx)), -1);
	assert_int_equal(feed(ok, 7), 0);
	assert_int_equal(feed(ok, sizeof(ok)), 1);

	/* reads past the end, a string longer than its room or than the
	 * payload, a NUL inside a string: refused, and everything after */
	unsigned char pl[] = {3, 0, 0, 0, 'a', 'b', 'c', 9, 0, 0, 0, 'x'};
	unsigned char nul[] = {3, 0, 0, 0, 'a', 0, 'c'};
	struct lget g;
	char s[8];
	uint32_t v;
	uint64_t q;
	lget_init(&g, pl, sizeof(pl));
	assert_int_equal(get_str(&g, s, sizeof(s)), 0);
	assert_string_equal(s, "abc");
	assert_int_equal(get_str(&g, s, sizeof(s)), -1); /* 9 bytes claimed, 1 there */
	assert_int_equal(get_u32(&g, &v), -1);		 /* and nothing after */
	lget_init(&g, pl, sizeof(pl));
	assert_int_equal(get_str(&g, s, 3), -1); /* "abc" needs 4 */
	lget_init(&g, nul, sizeof(nul));
	assert_int_equal(get_str(&g, s, sizeof(s)), -1);
	lget_init(&g, pl, 4);
	assert_int_equal(get_u64(&g, &q), -1);
}

/* link-1.3: the cluster key file, and proofs that hold only with it. */
static void
link_1_3(void **state)
{
	char path[] = "/tmp/kh-test-link-XXXXXX", err[256];
	unsigned char key[LINK_KEYLEN], other[LINK_KEYLEN], nonce[LINK_NONCE], mac[32];
	(void)state;
	assert_true(sodium_init() >= 0);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *good = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
	assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
	close(fd);
	assert_int_equal(link_key_load(path, key, err, sizeof(err)), 0);
	assert_int_equal(key[31], 0x1f);
	const char *bad[] = {"00",
			     "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
			     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\nx"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_int_equal(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		close(fd);
		err[0] = '\0';
		assert_int_equal(link_key_load(path, other, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "64 hex digits"));
	}
	unlink(path);
	assert_int_equal(link_key_load(path, other, err, sizeof(err)), -1);

	randombytes_buf(nonce, sizeof(nonce));
	randombytes_buf(other, sizeof(other));
	link_prove(key, "front", nonce, mac);
	assert_int_equal(link_check(key, "front", nonce, mac), 0);
	assert_int_equal(link_check(key, "agent", nonce, mac), -1); /* not a reflection */
	assert_int_equal(link_check(other, "front", nonce, mac), -1);
	nonce[0] ^= 1;
	assert_int_equal(link_check(key, "front", nonce, mac), -1);
}

/* link-1.4 (fuzz/link, UBSan): link_next before anything was read took an
 * offset of the NULL input buffer; it says "no frame yet". */
static void
link_1_4(void **state)
{
	struct link l;
	const unsigned char *p;
	size_t len;
	uint32_t rank;
	int type;
	(void)state;
	link_init(&l, -1);
	assert_int_equal(link_next(&l, &type, &rank, &p, &len), 0);
	link_free(&l);
}

/* ---- link-2: payloads (linkmsg) ---- */

/* The payload linkmsg_put builds for m, in b (the frame without its header). */
static struct link pb;

static const unsigned char *
build(const struct linkmsg *m, size_t *len)
{
	link_free(&pb);
	link_init(&pb, -1);
	linkmsg_put(&pb, m);
	*len = pb.out.len - LINK_HDR;
	return (const unsigned char *)pb.out.s + LINK_HDR;
}

static int
parse(enum linkmsg_to to, int type, uint32_t rank, const void *p, size_t len, struct linkmsg *m)
{
	char err[256] = "";
	int rc = linkmsg_parse(to, type, rank, p, len, m, err, sizeof(err));
	if (rc < 0) {
		assert_true(err[0] != '\0');
		assert_null(strchr(err, '\n'));
	} else {
		assert_string_equal(err, "");
	}
	return rc;
}

/* Valid messages of every type, and who reads them. */
static unsigned char nodes_wire[2 * LINK_NODE_WIRE], blobs_wire[3 * 32], ranks_wire[3 * 4];

static int
samples(struct linkmsg *out, enum linkmsg_to *to)
{
	int n = 0;
	struct linkmsg m;
#define ADD(side)                                                                                  \
	do {                                                                                       \
		out[n] = m;                                                                        \
		to[n++] = side;                                                                    \
	} while (0)
	m = (struct linkmsg){.type = L_CHALLENGE};
	memset(m.u.challenge.nonce, 7, LINK_NONCE);
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_PROOF};
	memset(m.u.proof.mac, 1, 32);
	memset(m.u.proof.nonce, 2, LINK_NONCE);
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_PROVEN};
	memset(m.u.proven.mac, 3, 32);
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_HELLO, .u.hello = {0xabcd, 4, 4}};
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_WELCOME};
	snprintf(m.u.welcome.name, sizeof(m.u.welcome.name), "h2");
	struct linkmsg_node nd = {.rank = 4095, .gen = 9};
	linkmsg_node_wire(nodes_wire, &nd);
	nd.rank = 5;
	linkmsg_node_wire(nodes_wire + LINK_NODE_WIRE, &nd);
	m.u.welcome.nnodes = 2;
	m.u.welcome.nodes = nodes_wire;
	m.u.welcome.nblobs = 3;
	m.u.welcome.blobs = blobs_wire;
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_PING};
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_BLOB, .u.blob = {.total = 10, .off = 4, .len = 6}};
	m.u.blob.bytes = (const unsigned char *)"abcdef";
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_HAVE};
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_BOOT, .rank = 3};
	m.u.boot.gen = 2;
	m.u.boot.cpu_milli = 1000000;
	m.u.boot.mem = 1ull << 33;
	m.u.boot.pids = 100;
	snprintf(m.u.boot.name, sizeof(m.u.boot.name), "n3");
	snprintf(m.u.boot.env, sizeof(m.u.boot.env), "A=b c");
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_BOOTED, .rank = 3, .u.booted = {2, 1234}};
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_FAILED, .rank = 3, .u.failed = {.gen = 2}};
	snprintf(m.u.failed.why, sizeof(m.u.failed.why), "no memory");
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_INPUT};
	m.u.input.bytes = (const unsigned char *)"ls\n";
	m.u.input.len = 3;
	link_set32(ranks_wire, 0);
	link_set32(ranks_wire + 4, 4095);
	link_set32(ranks_wire + 8, 0);
	m.u.input.ranks = ranks_wire;
	m.u.input.nranks = 3;
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_OUT, .rank = 4095, .u.out = {.gen = 1, .len = 2}};
	m.u.out.bytes = (const unsigned char *)"$ ";
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_EXIT, .rank = 1, .u.exit = {.gen = 1, .status = -1}};
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_KILL, .rank = 1, .u.kill = {.gen = 7}};
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_WIRE, .rank = 1, .u.wire = {.n = LINK_MAX_IFS}};
	for (int i = 0; i < LINK_MAX_IFS; i++)
		m.u.wire.netid[i] = i == 3 ? 0xffff : (uint32_t)i;
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_RELEASE, .rank = 1};
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_SPAN, .u.span = {.netid = 3, .n = 2}};
	snprintf(m.u.span.peer[0], LINK_ADDR_LEN, "10.0.0.1");
	snprintf(m.u.span.peer[1], LINK_ADDR_LEN, "192.168.255.254");
	ADD(LINKMSG_TO_AGENT);
	m = (struct linkmsg){.type = L_STATS, .rank = 2, .u.stats = {.gen = 1, .nifs = 2}};
	m.u.stats.cpu_ns = UINT64_MAX;
	m.u.stats.ifs[0] = (struct linkmsg_if){.slot = 0, .netid = 3, .rx_bytes = 10};
	m.u.stats.ifs[1] = (struct linkmsg_if){.slot = 15, .netid = 0, .tx_packets = 1};
	ADD(LINKMSG_TO_FRONT);
	m = (struct linkmsg){.type = L_ERROR};
	snprintf(m.u.error.why, sizeof(m.u.error.why), "this host serves another facility");
	ADD(LINKMSG_TO_AGENT);
#undef ADD
	return n;
}

/* link-2.1: a message of every type reads back to the bytes it was built
 * from, by the side that reads it; the other side refuses it (pings and
 * errors go both ways); every payload cut short is refused. */
static void
link_2_1(void **state)
{
	struct linkmsg ms[32], m;
	enum linkmsg_to to[32];
	int n = samples(ms, to), seen[L_TYPES] = {0};
	(void)state;
	for (int i = 0; i < n; i++) {
		size_t len, len2;
		const unsigned char *p = build(&ms[i], &len);
		unsigned char *copy = malloc(len + 1);
		memcpy(copy, p, len);
		int type = ms[i].type;
		seen[type] = 1;
		assert_int_equal(parse(to[i], type, ms[i].rank, copy, len, &m), 0);
		assert_int_equal(m.type, type);
		assert_int_equal(m.rank, ms[i].rank);
		const unsigned char *q = build(&m, &len2);
		assert_int_equal(len2, len);
		assert_memory_equal(q, copy, len);
		int both = type == L_PING || type == L_ERROR;
		enum linkmsg_to other =
		    to[i] == LINKMSG_TO_AGENT ? LINKMSG_TO_FRONT : LINKMSG_TO_AGENT;
		assert_int_equal(parse(other, type, ms[i].rank, copy, len, &m), both ? 0 : -1);
		/* short: the rest-taking payloads may end after their fixed part */
		for (size_t k = 0; k < len; k++) {
			int rc = parse(to[i], type, ms[i].rank, copy, k, &m);
			if ((type == L_OUT && k >= 4) || (type == L_BLOB && k >= 48))
				continue;
			if (type == L_INPUT && k >= 7 && (k - 7) % 4 == 0)
				continue;
			if (rc == 0)
				fail_msg("type %d cut to %zu of %zu bytes: taken", type, k, len);
		}
		free(copy);
	}
	for (int t = 1; t < L_TYPES; t++)
		if (t != L_PONG && t != L_RELEASE && t != L_PING)
			assert_true(seen[t]);
	assert_int_equal(parse(LINKMSG_TO_AGENT, 0, 0, "", 0, &m), -1);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_TYPES, 0, "", 0, &m), -1);
	/* bytes after the last field: ignored (kill), refused (handshake) */
	unsigned char k8[8] = {7, 0, 0, 0, 1, 2, 3, 4}, nonce[LINK_NONCE + 1] = {0};
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_KILL, 1, k8, 8, &m), 0);
	assert_int_equal(m.u.kill.gen, 7);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_CHALLENGE, 0, nonce, LINK_NONCE + 1, &m), -1);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_CHALLENGE, 0, nonce, LINK_NONCE, &m), 0);
	link_free(&pb);
}

/* A payload of u32 words. */
static size_t
words(unsigned char *out, const uint32_t *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		link_set32(out + 4 * i, w[i]);
	return 4 * n;
}

/* link-2.2: counts past their bound, lengths past the payload's end, and
 * ranks, slots and netids out of range are refused. */
static void
link_2_2(void **state)
{
	struct linkmsg m;
	static unsigned char b[8 + 4 * (LINK_MAX_RANKS + 1)];
	size_t n;
	(void)state;

	/* welcome: the name "h2", then the nodes and the blobs */
	unsigned char wl[64];
	size_t at = 0;
#define W(v) (link_set32(wl + at, (v)), at += 4)
	W(2);
	memcpy(wl + at, "h2", 2);
	at += 2;
	W(LINK_MAX_RANKS + 1); /* more nodes than ranks */
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	at -= 4;
	W(0x80000000); /* 2^31 nodes */
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	at -= 4;
	W(1); /* one node said, none there */
	W(0);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	at -= 8;
	W(0);
	W(LINK_MAX_HAVE + 1); /* too many blobs */
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	at -= 4;
	W(1); /* a blob said, none there */
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	at -= 4;
	W(0);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), 0);
	/* a node whose rank is beyond the link's */
	at = 0;
	W(2);
	memcpy(wl + at, "h2", 2);
	at += 2;
	W(1);
	W(LINK_MAX_RANKS);
	W(1);
	memset(wl + at, 0, 32);
	at += 32;
	W(0);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	link_set32(wl + 10, LINK_MAX_RANKS - 1);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), 0);
	/* a name that is none, a NUL inside it, a length past the end */
	memcpy(wl + 4, "..", 2);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	memcpy(wl + 4, "h\0", 2);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);
	link_set32(wl, 0xfffffff0);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_WELCOME, 0, wl, at, &m), -1);

	/* input: its bytes past the end; ranks not whole words; a rank beyond */
	uint32_t in1[] = {100, 0};
	n = words(b, in1, 2);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_INPUT, 0, b, n, &m), -1);
	uint32_t in2[] = {0, 1, 2};
	n = words(b, in2, 3);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_INPUT, 0, b, n, &m), 0);
	assert_int_equal(m.u.input.nranks, 2);
	assert_int_equal(linkmsg_input_rank(&m, 1), 2);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_INPUT, 0, b, n - 1, &m), -1);
	link_set32(b + 8, LINK_MAX_RANKS);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_INPUT, 0, b, n, &m), -1);
	memset(b, 0, 4 + 4 * (LINK_MAX_RANKS + 1));
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_INPUT, 0, b, 4 + 4 * LINK_MAX_RANKS, &m), 0);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_INPUT, 0, b, 8 + 4 * LINK_MAX_RANKS, &m), -1);

	/* blob: bytes past the blob's end, an offset past it, too big */
	struct linkmsg bl = {.type = L_BLOB, .u.blob = {.total = 5, .off = 2, .len = 4}};
	bl.u.blob.bytes = (const unsigned char *)"abcd";
	const unsigned char *p = build(&bl, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BLOB, 0, p, n, &m), -1);
	bl.u.blob.total = 6;
	p = build(&bl, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BLOB, 0, p, n, &m), 0);
	bl.u.blob.off = 7;
	bl.u.blob.len = 0;
	p = build(&bl, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BLOB, 0, p, n, &m), -1);
	bl.u.blob.total = LINK_MAX_BLOB + 1;
	bl.u.blob.off = 0;
	p = build(&bl, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BLOB, 0, p, n, &m), -1);

	/* boot: a rank beyond the link's, a hostname that is none, too many cpus */
	struct linkmsg bo = {.type = L_BOOT, .rank = LINK_MAX_RANKS - 1};
	snprintf(bo.u.boot.name, sizeof(bo.u.boot.name), "n1");
	p = build(&bo, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, LINK_MAX_RANKS - 1, p, n, &m), 0);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, LINK_MAX_RANKS, p, n, &m), -1);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, 0xffffffff, p, n, &m), -1);
	snprintf(bo.u.boot.name, sizeof(bo.u.boot.name), "a/b");
	p = build(&bo, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, 0, p, n, &m), -1);
	snprintf(bo.u.boot.name, sizeof(bo.u.boot.name), "n1");
	bo.u.boot.cpu_milli = 1000001;
	p = build(&bo, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, 0, p, n, &m), -1);
	/* a hostname of 64 bytes has no room; of 33, it is too long a name */
	bo.u.boot.cpu_milli = 1;
	p = build(&bo, &n);
	unsigned char big[256];
	memcpy(big, p, 52);
	link_set32(big + 52, 64);
	memset(big + 56, 'a', 64);
	link_set32(big + 120, 0);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, 0, big, 124, &m), -1);
	link_set32(big + 52, 33);
	link_set32(big + 89, 0);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, 0, big, 93, &m), -1);
	link_set32(big + 52, 32);
	link_set32(big + 88, 0);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_BOOT, 0, big, 92, &m), 0);
	assert_int_equal(strlen(m.u.boot.name), 32);

	/* out, exit, stats: ranks beyond the link's */
	uint32_t gen[] = {1, 2};
	n = words(b, gen, 2);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_OUT, LINK_MAX_RANKS, b, n, &m), -1);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_EXIT, LINK_MAX_RANKS, b, n, &m), -1);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_KILL, LINK_MAX_RANKS, b, n, &m), -1);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_RELEASE, LINK_MAX_RANKS, b, 0, &m), -1);

	/* wire: 17 interfaces, a netid beyond 16 bits */
	uint32_t wi[LINK_MAX_IFS + 2] = {LINK_MAX_IFS + 1};
	n = words(b, wi, LINK_MAX_IFS + 2);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_WIRE, 0, b, n, &m), -1);
	wi[0] = 2;
	wi[2] = 0x10000;
	n = words(b, wi, 3);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_WIRE, 0, b, n, &m), -1);
	wi[2] = 0xffff;
	n = words(b, wi, 3);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_WIRE, 0, b, n, &m), 0);
	assert_int_equal(m.u.wire.netid[1], 0xffff);

	/* span: netid 0 or beyond 16 bits, 65 peers, one that is no address */
	struct linkmsg sp = {.type = L_SPAN, .u.span = {.netid = 0, .n = 1}};
	snprintf(sp.u.span.peer[0], LINK_ADDR_LEN, "10.1.2.3");
	p = build(&sp, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_SPAN, 0, p, n, &m), -1);
	sp.u.span.netid = 0x10000;
	p = build(&sp, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_SPAN, 0, p, n, &m), -1);
	sp.u.span.netid = 1;
	snprintf(sp.u.span.peer[0], LINK_ADDR_LEN, "not-an-ip");
	p = build(&sp, &n);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_SPAN, 0, p, n, &m), -1);
	uint32_t sp65[] = {1, LINK_MAX_PEERS + 1};
	n = words(b, sp65, 2);
	assert_int_equal(parse(LINKMSG_TO_AGENT, L_SPAN, 0, b, n, &m), -1);

	/* stats: 17 interfaces, slot 16 */
	struct linkmsg st = {.type = L_STATS, .u.stats = {.nifs = 1}};
	st.u.stats.ifs[0].slot = LINK_MAX_IFS;
	p = build(&st, &n);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_STATS, 0, p, n, &m), -1);
	st.u.stats.ifs[0].slot = LINK_MAX_IFS - 1;
	p = build(&st, &n);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_STATS, 0, p, n, &m), 0);
	memcpy(big, p, 36);
	link_set32(big + 36, LINK_MAX_IFS + 1);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_STATS, 0, big, 40, &m), -1);
	/* (fakeagent.py's: stats for 1000 interfaces) */
	link_set32(big + 36, 1000);
	assert_int_equal(parse(LINKMSG_TO_FRONT, L_STATS, 0, big, 40, &m), -1);
#undef W
	link_free(&pb);
}

/* ---- link-3: link_pump ---- */

struct pumped {
	int n, refuse_at, close_at;
	int types[16];
	struct link *l;
};

static int
reader(void *arg, int type, uint32_t rank, const unsigned char *p, size_t len)
{
	struct pumped *g = arg;
	(void)rank;
	(void)p;
	(void)len;
	g->types[g->n] = type;
	if (g->n == g->close_at)
		link_free(g->l);
	return g->n++ == g->refuse_at ? -1 : 0;
}

/* Three pings, one boot, three pings, written to a socket. */
static int
seven(struct link *r, int sv[2])
{
	struct link w;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	link_init(&w, sv[0]);
	for (int i = 0; i < 7; i++)
		link_end(&w, link_begin(&w, i == 3 ? L_BOOT : L_PING, 0));
	assert_int_equal(link_flush(&w), 1);
	sbuf_free(&w.in);
	sbuf_free(&w.out);
	link_init(r, sv[1]);
	return sv[0];
}

/* link-3.1: link_pump hands over every whole frame, stops at the first
 * one refused (none after it, and the link stays bad), and touches the
 * link no more once the reader closed it; it tells the end of file. */
static void
link_3_1(void **state)
{
	struct link r;
	int sv[2];
	(void)state;

	/* nothing there yet: wait */
	int w = seven(&r, sv);
	struct pumped g = {.refuse_at = -1, .close_at = -1, .l = &r};
	assert_int_equal(link_pump(&r, reader, &g), LINK_WAIT);
	assert_int_equal(g.n, 7);
	assert_int_equal(g.types[3], L_BOOT);
	assert_int_equal(link_pump(&r, reader, &g), LINK_WAIT);
	close(w);
	assert_int_equal(link_pump(&r, reader, &g), LINK_EOF);
	assert_int_equal(g.n, 7);
	link_free(&r);

	w = seven(&r, sv);
	g = (struct pumped){.refuse_at = 3, .close_at = -1, .l = &r};
	assert_int_equal(link_pump(&r, reader, &g), LINK_REFUSED);
	assert_int_equal(g.n, 4);
	assert_int_equal(link_pump(&r, reader, &g), LINK_BAD);
	assert_int_equal(link_dispatch(&r, reader, &g), LINK_BAD);
	assert_int_equal(g.n, 4);
	assert_int_equal(r.last_type, L_BOOT);
	link_free(&r);
	close(w);

	w = seven(&r, sv);
	g = (struct pumped){.refuse_at = -1, .close_at = 1, .l = &r};
	assert_int_equal(link_pump(&r, reader, &g), LINK_LEFT);
	assert_int_equal(g.n, 2);
	assert_int_equal(r.fd, -1);
	close(w);

	/* a header too long: the frames before it, then bad */
	unsigned char two[2 * LINK_HDR] = {0, 0, 0, 0,	  L_PING, 0,	0,    0,    0,
					   0, 0, 0, 0xff, 0xff,	  0xff, 0x7f, L_OUT};
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(write(sv[0], two, sizeof(two)), (ssize_t)sizeof(two));
	link_init(&r, sv[1]);
	g = (struct pumped){.refuse_at = -1, .close_at = -1, .l = &r};
	assert_int_equal(link_pump(&r, reader, &g), LINK_BAD);
	assert_int_equal(g.n, 1);
	assert_int_equal(r.last_type, L_OUT);
	assert_int_equal(r.last_len, 0x7fffffff);
	link_free(&r);
	close(sv[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(link_1_1), cmocka_unit_test(link_1_2), cmocka_unit_test(link_1_3),
	    cmocka_unit_test(link_1_4), cmocka_unit_test(link_2_1), cmocka_unit_test(link_2_2),
	    cmocka_unit_test(link_3_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
