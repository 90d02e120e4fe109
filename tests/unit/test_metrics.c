/* metrics-*: the OpenMetrics endpoint's pure parts: HTTP request heads,
 * label escaping, exact decimals, and the exposition's shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "khd/khd.h"
#include "khd/metrics.h"

static int
req(const char *s, char *m, char *p)
{
	return metrics_parse_request(s, strlen(s), m, 16, p, 64);
}

/* metrics-1.1: whole heads are recognised, with CRLF or bare LF. */
static void
metrics_1_1(void **state)
{
	char m[16], p[64];
	(void)state;
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", m, p), 1);
	assert_string_equal(m, "GET");
	assert_string_equal(p, "/metrics");
	assert_int_equal(req("HEAD /metrics?x=1 HTTP/1.0\n\n", m, p), 1);
	assert_string_equal(m, "HEAD");
	assert_string_equal(p, "/metrics?x=1");
}

/* metrics-1.2: a head not yet whole waits; what is not HTTP is refused
 * as soon as its first line is whole. */
static void
metrics_1_2(void **state)
{
	char m[16], p[64];
	(void)state;
	assert_int_equal(req("GET /metr", m, p), 0);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nHost: x\r\n", m, p), 0);
	assert_int_equal(req("hello\r\n", m, p), -1);
	assert_int_equal(req("GET /metrics SMTP/1.1\r\n\r\n", m, p), -1);
	assert_int_equal(req("GET  HTTP/1.1\r\n\r\n", m, p), -1);
	assert_int_equal(req("VERYLONGMETHODNAME / HTTP/1.1\r\n\r\n", m, p), -1);
	char big[9000];
	memset(big, 'a', sizeof(big));
	assert_int_equal(metrics_parse_request(big, sizeof(big), m, 16, p, 64), -1);
	/* a NUL in the request line is refused, not a cut (found by
	 * fuzz/metrics: "GET\0xy /z" was method GET) */
	static const char nul[] = "GET\0xy /metrics HTTP/1.1\r\n\r\n";
	static const char nulpath[] = "GET /metrics\0x HTTP/1.1\r\n\r\n";
	assert_int_equal(metrics_parse_request(nul, sizeof(nul) - 1, m, 16, p, 64), -1);
	assert_int_equal(metrics_parse_request(nulpath, sizeof(nulpath) - 1, m, 16, p, 64), -1);
}

/* metrics-2.1: label values are escaped as OpenMetrics says. */
static void
metrics_2_1(void **state)
{
	struct sbuf b;
	(void)state;
	sbuf_init(&b);
	metrics_label(&b, "a\"b\\c\nd");
	assert_string_equal(b.s, "\"a\\\"b\\\\c\\nd\"");
	sbuf_free(&b);
}

/* metrics-2.2: counters are exact decimals of their display unit. */
static void
metrics_2_2(void **state)
{
	struct sbuf b;
	(void)state;
	sbuf_init(&b);
	metrics_value(&b, 3020000, 1, 1000000);
	sbuf_adds(&b, " ");
	metrics_value(&b, 12, 1, 1000);
	sbuf_adds(&b, " ");
	metrics_value(&b, 5, 1024, 1);
	sbuf_adds(&b, " ");
	metrics_value(&b, 18446744073709551615ULL, 1, 1000);
	/* past 64 bits once multiplied (KiB*s of 4000 1 GiB nodes for two
	 * months): printed exactly, not wrapped (found by fuzz/metrics) */
	sbuf_adds(&b, " ");
	metrics_value(&b, 1ULL << 60, 1024, 1);
	sbuf_adds(&b, " ");
	metrics_value(&b, 18446744073709551615ULL, 1024, 1000);
	assert_string_equal(b.s, "3.020000 0.012 5120 18446744073709551.615 "
				 "1180591620717411303424 18889465931478580853.760");
	sbuf_free(&b);
}

/* metrics-3.1: node counts by type and state, ending in "# EOF". */
static void
metrics_3_1(void **state)
{
	struct khd *k = calloc(1, sizeof(*k));
	struct node nodes[3] = {{.rank = 0, .state = NODE_FREE, .owner = -1},
				{.rank = 1, .state = NODE_MONITOR},
				{.rank = 2, .state = NODE_RUNNING, .type = 1}};
	struct sbuf b;
	(void)state;
	k->fac.ntypes = 2;
	strcpy(k->fac.types[0].name, "ct1");
	strcpy(k->fac.types[1].name, "big\"one");
	k->fac.nodes = nodes;
	k->fac.nnodes = 3;
	sbuf_init(&b);
	metrics_render(k, &b);
	assert_non_null(strstr(b.s, "kh_nodes{type=\"ct1\",state=\"free\"} 1\n"));
	assert_non_null(strstr(b.s, "kh_nodes{type=\"ct1\",state=\"monitor\"} 1\n"));
	assert_non_null(strstr(b.s, "kh_nodes{type=\"big\\\"one\",state=\"running\"} 1\n"));
	assert_non_null(strstr(b.s, "kh_principals 0\n"));
	size_t n = strlen(b.s);
	assert_true(n > 6 && strcmp(b.s + n - 6, "# EOF\n") == 0);
	sbuf_free(&b);
	free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(metrics_1_1), cmocka_unit_test(metrics_1_2),
	    cmocka_unit_test(metrics_2_1), cmocka_unit_test(metrics_2_2),
	    cmocka_unit_test(metrics_3_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
