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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(link_1_1),
	    cmocka_unit_test(link_1_2),
	    cmocka_unit_test(link_1_3),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
