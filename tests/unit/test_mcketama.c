/* mcketama-*: libkhmc sends every key to the server Debian's libmemcached
 * would, for 10000 keys over 1..8 servers, with MEMCACHED_BEHAVIOR_KETAMA
 * (KHMC_DIST_KETAMA), MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (KHMC_DIST_
 * KETAMA_MD5) and libmemcached's default (KHMC_DIST_MODULA); and its MD5
 * and one-at-a-time hashes are libhashkit's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <string.h>

#include "mc/khmc.h"
#include "mc/khmc_int.h"

#define NKEYS 10000

/* Server i of a list: the default port (left out of libmemcached's ring
 * names) and others, addresses and host names. */
static void
server(int i, char *host, size_t n, uint16_t *port)
{
	if (i % 3 == 2)
		snprintf(host, n, "cache%d.example.org", i);
	else
		snprintf(host, n, "10.1.%d.%d", i, 7 * i + 1);
	*port = i % 2 == 0 ? 11211 : (uint16_t)(20000 + i);
}

static void
compare(enum khmc_dist dist, memcached_behavior_t behavior)
{
	for (int n = 1; n <= 8; n++) {
		memcached_st *m = memcached_create(NULL);
		struct khmc *k = khmc_new();
		assert_non_null(m);
		assert_non_null(k);
		if (behavior != MEMCACHED_BEHAVIOR_MAX)
			assert_int_equal(memcached_behavior_set(m, behavior, 1), MEMCACHED_SUCCESS);
		assert_int_equal(khmc_set_distribution(k, dist), KHMC_OK);
		for (int i = 0; i < n; i++) {
			char host[64];
			uint16_t port;
			server(i, host, sizeof(host), &port);
			assert_int_equal(memcached_server_add(m, host, port), MEMCACHED_SUCCESS);
			assert_int_equal(khmc_add_server(k, host, port), KHMC_OK);
		}
		int moved = 0;
		for (int i = 0; i < NKEYS; i++) {
			char key[64];
			int len = snprintf(key, sizeof(key), "%s:%d", i % 2 ? "user" : "k", i * 31);
			uint32_t want = memcached_generate_hash(m, key, (size_t)len);
			size_t got = khmc_server_for(k, key, (size_t)len);
			if (got != want) {
				print_error("%d servers, key %s: khmc %zu, libmemcached %u\n", n,
					    key, got, want);
				moved++;
			}
		}
		assert_int_equal(moved, 0);
		memcached_free(m);
		khmc_free(k);
	}
}

/* mcketama-1.1: MEMCACHED_BEHAVIOR_KETAMA, khmc's default. */
static void
mcketama_1_1(void **state)
{
	compare(KHMC_DIST_KETAMA, MEMCACHED_BEHAVIOR_KETAMA);
}

/* mcketama-1.2: MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (MD5, 160 points). */
static void
mcketama_1_2(void **state)
{
	compare(KHMC_DIST_KETAMA_MD5, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED);
}

/* mcketama-1.3: no behavior set: modula. */
static void
mcketama_1_3(void **state)
{
	compare(KHMC_DIST_MODULA, MEMCACHED_BEHAVIOR_MAX);
}

/* mcketama-1.4: the default distribution is KETAMA. */
static void
mcketama_1_4(void **state)
{
	struct khmc *k = khmc_new(), *d = khmc_new();
	assert_int_equal(khmc_add_servers(k, "a:1,b:2,c"), KHMC_OK);
	assert_int_equal(khmc_add_servers(d, "a:1,b:2,c"), KHMC_OK);
	assert_int_equal(khmc_set_distribution(d, KHMC_DIST_KETAMA), KHMC_OK);
	for (int i = 0; i < 1000; i++) {
		char key[32];
		int len = snprintf(key, sizeof(key), "x%d", i);
		assert_int_equal(khmc_server_for(k, key, (size_t)len),
				 khmc_server_for(d, key, (size_t)len));
	}
	assert_string_equal(khmc_server_name(k, 2), "c:11211");
	khmc_free(k);
	khmc_free(d);
}

/* mcketama-2.1: MD5 against RFC 1321's examples and libhashkit. */
static void
mcketama_2_1(void **state)
{
	static const struct {
		const char *in, *hex;
	} v[] = {
	    {"", "d41d8cd98f00b204e9800998ecf8427e"},
	    {"a", "0cc175b9c0f1b6a831c399e269772661"},
	    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
	    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
	    {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
	    {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	     "57edf4a22be3c955ac49da2e2107b67a"},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		unsigned char d[16];
		char hex[33];
		khmc_md5(v[i].in, strlen(v[i].in), d);
		for (int j = 0; j < 16; j++)
			sprintf(hex + 2 * j, "%02x", d[j]);
		assert_string_equal(hex, v[i].hex);
	}
	char buf[300];
	for (size_t n = 0; n < sizeof(buf); n++) {
		unsigned char d[16];
		buf[n] = (char)(n * 37 + 200); /* high bytes too */
		khmc_md5(buf, n, d);
		uint32_t mine =
		    (uint32_t)d[3] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[1] << 8 | d[0];
		assert_int_equal(mine, memcached_generate_hash_value(buf, n, MEMCACHED_HASH_MD5));
		assert_int_equal(khmc_one_at_a_time(buf, n),
				 memcached_generate_hash_value(buf, n, MEMCACHED_HASH_DEFAULT));
	}
}

/* mcketama-3.1: server lists. */
static void
mcketama_3_1(void **state)
{
	struct khmc *k = khmc_new();
	assert_int_equal(khmc_add_servers(k, "127.0.0.1:1234,[::1]:5,host"), KHMC_OK);
	assert_int_equal(khmc_server_count(k), 3);
	assert_string_equal(khmc_server_name(k, 0), "127.0.0.1:1234");
	assert_string_equal(khmc_server_name(k, 1), "::1:5");
	assert_string_equal(khmc_server_name(k, 2), "host:11211");
	static const char *bad[] = {"", ",", "h:", ":1", "h:0", "h:70000", "h:1x", "[::1", "a,,b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct khmc *b = khmc_new();
		assert_int_not_equal(khmc_add_servers(b, bad[i]), KHMC_OK);
		khmc_free(b);
	}
	khmc_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mcketama_1_1), cmocka_unit_test(mcketama_1_2),
	    cmocka_unit_test(mcketama_1_3), cmocka_unit_test(mcketama_1_4),
	    cmocka_unit_test(mcketama_2_1), cmocka_unit_test(mcketama_3_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
