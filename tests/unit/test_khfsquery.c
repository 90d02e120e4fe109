/* khfsquery-*: khfs's query paths: the terms a path may hold, the node
 * lines of khd's listing they match, and the targets list a query's ctl
 * sends khd; a listing of several hosts (khfsquery-6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/sbuf.h"
#include "khfs/query.h"

static const char listing[] = "0 running alice con3 3,2 ct1\n"
			      "1 monitor alice con3 3 ct1\n"
			      "2 free - - - ct1\n"
			      "3 running bob con4 - big\n"
			      "not a node line\n"
			      "4 monitor alice con5 1 big"; /* no newline at the end */

/* khfsquery-1: every key, and values each key refuses. */
static void
khfsquery_1(void **state)
{
	struct kq_term t;
	static const char *const good[] = {
	    "type=ct1", "user=alice", "user=-", "state=free", "state=monitor",	    "state=running",
	    "domain=0", "domain=17",  "con=3",	"con=con3",   "host=kh.example.org"};
	static const char *const bad[] = {"colour=red", "type",
					  "type=",	"state=sleeping",
					  "domain=x",	"domain=-1",
					  "con=0",	"con=conx",
					  "user=a b",	"user=%",
					  "=x",		"host=a\tb",
					  "TYPE=ct1",	"con=99999999999999999999"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(kq_term_parse(good[i], &t), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (kq_term_parse(bad[i], &t) == 0)
			fail_msg("accepted '%s'", bad[i]);
	}
	assert_int_equal(kq_term_parse("con=con7", &t), 0);
	assert_int_equal(t.key, KQ_CON);
	assert_int_equal(t.num, 7);
}

static int
count(const char *path, const char *host, char *ranks, size_t len)
{
	struct kq q = {.n = 0};
	struct kq_term t;
	struct kq_list l;
	char buf[256];
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *w = strtok_r(buf, "/", &save); w; w = strtok_r(NULL, "/", &save)) {
		assert_int_equal(kq_term_parse(w, &t), 0);
		assert_int_equal(kq_add(&q, &t), 0);
	}
	assert_int_equal(kq_parse_nodes(listing, strlen(listing), &l), 0);
	ranks[0] = '\0';
	for (int i = 0; i < l.n; i++)
		if (kq_match(&q, &l.v[i], host)) {
			snprintf(ranks + strlen(ranks), len - strlen(ranks), "%d ", l.v[i].rank);
			n++;
		}
	kq_list_free(&l);
	return n;
}

/* khfsquery-2: matching the lines of a listing; terms combine. */
static void
khfsquery_2(void **state)
{
	char r[64];

	count("", NULL, r, sizeof(r));
	assert_string_equal(r, "0 1 2 3 4 ");
	count("user=alice", NULL, r, sizeof(r));
	assert_string_equal(r, "0 1 4 ");
	count("user=alice/state=running", NULL, r, sizeof(r));
	assert_string_equal(r, "0 ");
	count("user=-", NULL, r, sizeof(r));
	assert_string_equal(r, "2 ");
	count("domain=3", NULL, r, sizeof(r));
	assert_string_equal(r, "0 1 ");
	count("domain=2", NULL, r, sizeof(r));
	assert_string_equal(r, "0 ");
	count("con=con3/type=ct1", NULL, r, sizeof(r));
	assert_string_equal(r, "0 1 ");
	count("type=big/con=5", NULL, r, sizeof(r));
	assert_string_equal(r, "4 ");
	count("host=here/state=free", "here", r, sizeof(r));
	assert_string_equal(r, "2 ");
	count("host=there", "here", r, sizeof(r));
	assert_string_equal(r, "");
	count("user=alice/user=bob", NULL, r, sizeof(r));
	assert_string_equal(r, "");
}

/* khfsquery-3: the listing's lines are kept whole for status files. */
static void
khfsquery_3(void **state)
{
	struct kq_list l;

	assert_int_equal(kq_parse_nodes(listing, strlen(listing), &l), 0);
	assert_int_equal(l.n, 5);
	assert_int_equal((int)l.v[0].len, (int)strlen("0 running alice con3 3,2 ct1\n"));
	assert_memory_equal(l.v[0].line, "0 running alice con3 3,2 ct1\n", l.v[0].len);
	assert_int_equal(l.v[2].chan, 0);
	assert_int_equal(l.v[2].nnet, 0);
	assert_int_equal(l.v[0].nnet, 2);
	assert_int_equal((int)l.v[4].len, (int)strlen("4 monitor alice con5 1 big"));
	kq_list_free(&l);
	assert_int_equal(kq_parse_nodes("", 0, &l), 0);
	assert_int_equal(l.n, 0);
	kq_list_free(&l);
}

/* khfsquery-4: ranks become khd's targets, runs as ranges. */
static void
khfsquery_4(void **state)
{
	int a[] = {0, 1, 2, 3, 7, 9, 10, 12};
	struct sbuf b;

	sbuf_init(&b);
	kq_targets(a, 8, &b);
	assert_string_equal(b.s, "0-3,7,9-10,12");
	sbuf_reset(&b);
	kq_targets(a + 4, 1, &b);
	assert_string_equal(b.s, "7");
	sbuf_reset(&b);
	kq_targets(a, 0, &b);
	assert_int_equal((int)b.len, 0);
	sbuf_free(&b);
}

/* khfsquery-5: a query holds at most KQ_MAXTERMS terms. */
static void
khfsquery_5(void **state)
{
	struct kq q = {.n = 0};
	struct kq_term t;

	assert_int_equal(kq_term_parse("type=ct1", &t), 0);
	for (int i = 0; i < KQ_MAXTERMS; i++)
		assert_int_equal(kq_add(&q, &t), 0);
	assert_int_equal(kq_add(&q, &t), -1);
}

/* khfsquery-6: a listing of several hosts names each node's host last:
 * host=H matches the node's own host, not the facility's; state=lost
 * names the nodes of a lost host. */
static void
khfsquery_6(void **state)
{
	static const char hosts[] = "0 running alice con3 3 ct1 a\n"
				    "1 free - - - ct1 a\n"
				    "2 lost bob con4 4 ct1 b\n"
				    "3 free - - - ct1 c\n";
	struct kq_list l;
	struct kq q;
	struct kq_term t;
	const char *paths[][2] = {{"host=a", "0 1 "},
				  {"host=b/state=lost", "2 "},
				  {"host=front", ""},
				  {"state=lost", "2 "},
				  {"state=free/host=c", "3 "}};
	assert_int_equal(kq_parse_nodes(hosts, strlen(hosts), &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[2].host, "b");
	assert_string_equal(l.v[2].type, "ct1");
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char got[64] = "";
		q.n = 0;
		char buf[64];
		snprintf(buf, sizeof(buf), "%s", paths[i][0]);
		for (char *save = NULL, *w = strtok_r(buf, "/", &save); w;
		     w = strtok_r(NULL, "/", &save)) {
			assert_int_equal(kq_term_parse(w, &t), 0);
			assert_int_equal(kq_add(&q, &t), 0);
		}
		for (int k = 0; k < l.n; k++)
			if (kq_match(&q, &l.v[k], "front"))
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%d ",
					 l.v[k].rank);
		if (strcmp(got, paths[i][1]) != 0)
			fail_msg("%s: got '%s', want '%s'", paths[i][0], got, paths[i][1]);
	}
	kq_list_free(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(khfsquery_1), cmocka_unit_test(khfsquery_2),
	    cmocka_unit_test(khfsquery_3), cmocka_unit_test(khfsquery_4),
	    cmocka_unit_test(khfsquery_5), cmocka_unit_test(khfsquery_6),
	};
	return cmocka_run_group_tests_name("khfsquery", tests, NULL, NULL);
}
