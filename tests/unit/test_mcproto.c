/* mcproto-*: khmcd's text protocol driven byte by byte, without a socket:
 * the tokenizer and number parsing as memcached's (mcproto-1), commands,
 * pipelines and values split anywhere (mcproto-2), bad input (mcproto-3),
 * a client that never reads (mcproto-4), meta commands (mcproto-5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc/conn.h"

#define NOW 1800000000u

struct fix {
	struct mc_cache cache;
	struct mc_ctx ctx;
	struct mc_tstats st, *stp;
	struct mc_conn c;
	char *out;
	size_t outlen;
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct mc_cache_config cfg = {.item_bytes = 8u << 20, .initial_buckets = 16};
	char err[128];

	assert_int_equal(mc_cache_init(&f->cache, &cfg, err, sizeof(err)), 0);
	f->ctx.cache = &f->cache;
	mc_settings_default(&f->ctx.settings);
	f->ctx.nthreads = 1;
	f->stp = &f->st;
	f->ctx.tstats = &f->stp;
	f->ctx.started = NOW;
	assert_int_equal(mc_conn_init(&f->c, -1, &f->ctx, &f->st), 0);
	f->c.now = NOW;
	f->out = malloc(4 << 20);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	mc_conn_release(&f->c);
	mc_cache_destroy(&f->cache);
	free(f->out);
	free(f);
	return 0;
}

/* Give the connection n bytes as a socket read would. */
static int
feed(struct fix *f, const char *p, size_t n)
{
	int rc = MC_PROC_MORE;

	while (n > 0) {
		size_t room;
		char *space = mc_conn_rspace(&f->c, &room);
		size_t k;
		if (f->c.state == MC_CONN_NREAD && f->c.rstart == f->c.rend && f->c.rleft > 0) {
			/* as the server does: straight into the item */
			k = n < f->c.rleft ? n : f->c.rleft;
			memcpy(f->c.ritem, p, k);
			f->c.ritem += k;
			f->c.rleft -= k;
		} else {
			assert_true(room > 0);
			k = n < room ? n : room;
			memcpy(space, p, k);
			f->c.rend += k;
		}
		p += k;
		n -= k;
		rc = mc_proto_process(&f->c);
		if (rc != MC_PROC_MORE)
			break;
	}
	return rc;
}

static int
feeds(struct fix *f, const char *s)
{
	return feed(f, s, strlen(s));
}

/* Everything the connection has to say, as a string. */
static const char *
drain(struct fix *f)
{
	struct iovec iov[64];
	int n;

	f->outlen = 0;
	while ((n = mc_conn_iov(&f->c, iov, 64)) > 0) {
		size_t total = 0;
		for (int i = 0; i < n; i++) {
			memcpy(f->out + f->outlen, iov[i].iov_base, iov[i].iov_len);
			f->outlen += iov[i].iov_len;
			total += iov[i].iov_len;
		}
		mc_conn_sent(&f->c, total);
	}
	f->out[f->outlen] = '\0';
	return f->out;
}

static void
expect(struct fix *f, const char *in, const char *want)
{
	feeds(f, in);
	assert_string_equal(drain(f), want);
}

/* mcproto-1.1: memcached's tokenizer: spaces only, empty tokens skipped,
 * at most 24 with the rest left for the caller. */
static void
mcproto_1_1(void **state)
{
	struct mc_token t[MC_MAX_TOKENS];
	char line[512];

	strcpy(line, "  get  a\tb   c ");
	assert_int_equal(mc_tokenize(line, t, MC_MAX_TOKENS), 4);
	assert_string_equal(t[0].value, "get");
	assert_string_equal(t[1].value, "a\tb");
	assert_int_equal(t[1].length, 3);
	assert_string_equal(t[2].value, "c");
	assert_null(t[3].value);
	strcpy(line, "");
	assert_int_equal(mc_tokenize(line, t, MC_MAX_TOKENS), 1);
	char *p = line;
	for (int i = 0; i < 30; i++)
		p += sprintf(p, "t%d ", i);
	assert_int_equal(mc_tokenize(line, t, MC_MAX_TOKENS), MC_MAX_TOKENS);
	assert_string_equal(t[22].value, "t22");
	assert_non_null(t[23].value);
	assert_int_equal(strncmp(t[23].value, "t23 ", 4), 0);
}

/* mcproto-1.2: numbers as memcached reads them. */
static void
mcproto_1_2(void **state)
{
	uint32_t u;
	int32_t i;
	uint64_t v;

	assert_int_equal(mc_strtoul32("4294967295", &u), 0);
	assert_int_equal(u, UINT32_MAX);
	assert_int_equal(mc_strtoul32("4294967296", &u), 0);
	assert_int_equal(u, 0); /* truncated, as memcached */
	assert_int_equal(mc_strtoul32("+5", &u), 0);
	assert_int_equal(u, 5);
	assert_int_equal(mc_strtoul32("-1", &u), -1);
	assert_int_equal(mc_strtoul32("5x", &u), -1);
	assert_int_equal(mc_strtoul32("", &u), -1);
	assert_int_equal(mc_strtol32("-1", &i), 0);
	assert_int_equal(i, -1);
	assert_int_equal(mc_strtol32("4294967297", &i), 0);
	assert_int_equal(i, 1);
	assert_int_equal(mc_strtol32("99999999999999999999", &i), -1);
	assert_int_equal(mc_strtoull_tok("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(mc_strtoull_tok("18446744073709551616", &v), -1);
	assert_int_equal(mc_strtoull_tok("-1", &v), -1);
	assert_int_equal(mc_strtoull_tok("1\r", &v), 0);
}

/* mcproto-2.1: the classic commands. */
static void
mcproto_2_1(void **state)
{
	struct fix *f = *state;

	expect(f, "set a 5 0 3\r\nabc\r\n", "STORED\r\n");
	expect(f, "get a\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n");
	expect(f, "gets a\r\n", "VALUE a 5 3 1\r\nabc\r\nEND\r\n");
	expect(f, "append a 0 0 2\r\nde\r\n", "STORED\r\n");
	expect(f, "prepend a 0 0 1\r\n-\r\n", "STORED\r\n");
	expect(f, "get a b a\r\n", "VALUE a 5 6\r\n-abcde\r\nVALUE a 5 6\r\n-abcde\r\nEND\r\n");
	expect(f, "add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
	expect(f, "replace b 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
	expect(f, "cas a 0 0 1 3\r\nx\r\n", "STORED\r\n");
	expect(f, "cas a 0 0 1 3\r\nx\r\n", "EXISTS\r\n");
	expect(f, "set n 0 0 1\r\n9\r\n", "STORED\r\n");
	expect(f, "incr n 1\r\n", "10\r\n");
	expect(f, "decr n 11\r\n", "0\r\n");
	expect(f, "get n\r\n", "VALUE n 0 2\r\n0 \r\nEND\r\n");
	expect(f, "touch n 100\r\n", "TOUCHED\r\n");
	expect(f, "gat 0 n\r\n", "VALUE n 0 2\r\n0 \r\nEND\r\n");
	expect(f, "delete n\r\n", "DELETED\r\n");
	expect(f, "delete n\r\n", "NOT_FOUND\r\n");
	expect(f, "version\r\n", "VERSION " MC_VERSION "\r\n");
	expect(f, "verbosity 1\r\n", "OK\r\n");
	expect(f, "flush_all\r\n", "OK\r\n");
	expect(f, "get a\r\n", "END\r\n");
	expect(f, "set q 0 0 1 noreply\r\nq\r\nget q\r\n", "VALUE q 0 1\r\nq\r\nEND\r\n");
	expect(f, "bogus\r\n", "ERROR\r\n");
	feeds(f, "quit\r\n");
	assert_int_equal(f->c.state, MC_CONN_CLOSE);
}

/* mcproto-2.2: a pipeline in one read, answered in order. */
static void
mcproto_2_2(void **state)
{
	struct fix *f = *state;
	char in[8192], want[8192], *p = in, *w = want;

	for (int i = 0; i < 40; i++) {
		p += sprintf(p, "set k%d 0 0 %d\r\n%0*d\r\nget k%d\r\n", i, i + 1, i + 1, i, i);
		w += sprintf(w, "STORED\r\nVALUE k%d 0 %d\r\n%0*d\r\nEND\r\n", i, i + 1, i + 1, i);
	}
	expect(f, in, want);
}

/* mcproto-2.3: the same pipeline split at every byte gives the same
 * answers: values and lines may end anywhere in a read. */
static void
mcproto_2_3(void **state)
{
	struct fix *f = *state;
	const char *in = "set a 0 0 10\r\n0123456789\r\nget a\r\nincr x 1\r\n"
			 "set b 1 0 0\r\n\r\ngets b\r\n";
	const char *want = "STORED\r\nVALUE a 0 10\r\n0123456789\r\nEND\r\nNOT_FOUND\r\n"
			   "STORED\r\nVALUE b 1 0 2\r\n\r\nEND\r\n";
	size_t n = strlen(in);

	for (size_t cut = 1; cut < n; cut++) {
		feeds(f, "flush_all noreply\r\n");
		feed(f, in, cut);
		feed(f, in + cut, n - cut);
		drain(f);
		/* CAS values grow with every round; compare the rest */
		char *cas = strstr(f->out, "VALUE b 1 0 ");
		assert_non_null(cas);
		char got[256];
		snprintf(got, sizeof(got), "%.*sVALUE b 1 0 2\r\n%s", (int)(cas - f->out), f->out,
			 strchr(cas + 12, '\n') + 1);
		assert_string_equal(got, want);
	}
	for (size_t i = 0; i < n; i++)
		feed(f, in + i, 1);
	assert_non_null(strstr(drain(f), "0123456789"));
}

/* mcproto-3.1: malformed lines get memcached's errors; what follows a bad
 * storage line is read as a command, as memcached does. */
static void
mcproto_3_1(void **state)
{
	struct fix *f = *state;
	char line[400];

	expect(f, "\r\n", "ERROR\r\n");
	expect(f, "get\r\n", "ERROR\r\n");
	expect(f, "set a 0 0\r\n", "ERROR\r\n");
	expect(f, "set a x 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	expect(f, "set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n");
	expect(f, "set a 0 0 2\r\nxyz\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
	expect(f, "incr a x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
	expect(f, "delete a 1\r\n",
	       "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
	expect(f, "touch a x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
	strcpy(line, "get a ");
	memset(line + 6, 'k', 251);
	strcpy(line + 6 + 251, "\r\n");
	expect(f, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
	expect(f, line, "CLIENT_ERROR bad command line format\r\n"); /* no VALUE for a */
}

/* mcproto-3.2: a value over the limit: refused and swallowed whole, the
 * old value gone; the next command is read as one. */
static void
mcproto_3_2(void **state)
{
	struct fix *f = *state;
	size_t n = (1u << 20) + 1;
	char *big = malloc(n + 64);

	expect(f, "set big 0 0 1\r\nx\r\n", "STORED\r\n");
	int h = sprintf(big, "set big 0 0 %zu\r\n", n);
	memset(big + h, 'v', n);
	memcpy(big + h + n, "\r\nget big\r\n", 11);
	feed(f, big, (size_t)h + n + 11);
	assert_string_equal(drain(f), "SERVER_ERROR object too large for cache\r\nEND\r\n");
	free(big);
}

/* mcproto-3.3: a line of more than 2048 bytes closes the connection with
 * an error, unless it is a get with many keys. */
static void
mcproto_3_3(void **state)
{
	struct fix *f = *state;
	char *line = malloc(70000), *p = line;

	memset(line, 'x', 3000);
	assert_int_equal(feed(f, line, 3000), MC_PROC_CLOSE);
	assert_string_equal(drain(f), "CLIENT_ERROR line too long\r\n");
	assert_int_equal(f->c.state, MC_CONN_CLOSE);

	mc_conn_release(&f->c);
	assert_int_equal(mc_conn_init(&f->c, -1, &f->ctx, &f->st), 0);
	f->c.now = NOW;
	p += sprintf(p, "get");
	for (int i = 0; i < 6000; i++)
		p += sprintf(p, " key%d", i);
	strcpy(p, "\r\n");
	assert_int_equal(feeds(f, line), MC_PROC_MORE);
	assert_string_equal(drain(f), "END\r\n");
	free(line);
}

/* mcproto-3.4: an item half read when the client goes away is dropped
 * with the connection: its memory comes back. */
static void
mcproto_3_4(void **state)
{
	struct fix *f = *state;
	struct mc_slabs *s = &f->cache.slabs;

	feeds(f, "set a 0 0 100\r\n0123456789");
	assert_int_equal(f->c.state, MC_CONN_NREAD);
	int cls = f->c.item->cls;
	assert_int_equal(s->cls[cls].used, 1);
	mc_conn_release(&f->c);
	assert_int_equal(s->cls[cls].used, 0);
	assert_int_equal(mc_conn_init(&f->c, -1, &f->ctx, &f->st), 0);
}

/* mcproto-4.1: a client that sends gets and never reads: commands stop
 * being taken once the answers waiting pass the mark, the rest waits in
 * the read buffer, memory stays bounded; reading lets it go on. */
static void
mcproto_4_1(void **state)
{
	struct fix *f = *state;
	size_t n = 100000;
	char *big = malloc(n + 64);
	int h = sprintf(big, "set big 0 0 %zu\r\n", n);

	memset(big + h, 'b', n);
	memcpy(big + h + n, "\r\n", 2);
	feed(f, big, (size_t)h + n + 2);
	drain(f);
	int rc = MC_PROC_MORE, sent = 0;
	while (rc == MC_PROC_MORE && sent < 1000) {
		rc = feeds(f, "get big\r\n");
		sent++;
	}
	assert_int_equal(rc, MC_PROC_FULL);
	assert_true(f->c.opending <= MC_OUT_HIGH + n + 100);
	assert_true(sent < 20);
	/* Input keeps arriving: none of it is taken. */
	size_t before = f->c.rend - f->c.rstart;
	assert_int_equal(feeds(f, "get big\r\n"), MC_PROC_FULL);
	assert_true(f->c.rend - f->c.rstart > before);
	drain(f);
	assert_int_equal(mc_proto_process(&f->c), MC_PROC_MORE);
	assert_true(f->outlen > 0);
	free(big);
}

/* mcproto-5.1: meta commands. */
static void
mcproto_5_1(void **state)
{
	struct fix *f = *state;

	expect(f, "mn\r\n", "MN\r\n");
	expect(f, "mg a v\r\n", "EN\r\n");
	expect(f, "mg a v q k\r\nmn\r\n", "MN\r\n");
	expect(f, "ms a 3 F7 c\r\nabc\r\n", "HD c1\r\n");
	expect(f, "mg a v f c s k t Oxy\r\n", "VA 3 f7 c1 s3 ka t-1 Oxy\r\nabc\r\n");
	expect(f, "mg a\r\n", "HD\r\n");
	expect(f, "ms a 1 C9\r\nx\r\n", "EX\r\n");
	expect(f, "ms a 1 MA\r\nd\r\n", "HD\r\n");
	expect(f, "mg a v\r\n", "VA 4\r\nabcd\r\n");
	expect(f, "ms a 1 q\r\nz\r\nmn\r\n", "MN\r\n");
	expect(f, "md a q\r\nmg a\r\n", "EN\r\n");
	expect(f, "md a\r\n", "NF\r\n");
	expect(f, "ma c N0 J5 v\r\n", "VA 1\r\n5\r\n");
	expect(f, "ma c D10 v\r\n", "VA 2\r\n15\r\n");
	expect(f, "mg a zz\r\n", "CLIENT_ERROR invalid flag\r\n");
	expect(f, "mg a v v\r\n", "CLIENT_ERROR duplicate flag\r\n");
	expect(f, "ms a 2 MZ\r\nxx\r\nmn\r\n",
	       "CLIENT_ERROR invalid mode for ms M token\r\nMN\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mcproto_1_1),
	    cmocka_unit_test(mcproto_1_2),
	    cmocka_unit_test_setup_teardown(mcproto_2_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_2_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_2_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_3_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_3_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_3_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_3_4, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_4_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(mcproto_5_1, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
