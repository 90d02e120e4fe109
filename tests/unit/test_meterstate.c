/* meterstate-*: the state store's metering operations (SQLite backend):
 * records come back by seq and by time, the head is the last record,
 * signatures, totals and node baselines round-trip, survive a reopen, and
 * a rolled-back transaction leaves none of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/state.h"

struct fx {
	char dir[64];
	struct state *st;
	char got[2048];
};

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char err[256];
	snprintf(x->dir, sizeof(x->dir), "/tmp/kh-test-mstate-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	x->st = state_sqlite_open(x->dir, 0, err, sizeof(err));
	assert_non_null(x->st);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	char cmd[128];
	state_close(x->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
	assert_int_equal(system(cmd), 0);
	free(x);
	return 0;
}

static int
collect(void *arg, uint64_t seq, const char *line)
{
	struct fx *x = arg;
	size_t n = strlen(x->got);
	snprintf(x->got + n, sizeof(x->got) - n, "%llu:%s;", (unsigned long long)seq, line);
	return 0;
}

static void
put(struct fx *x, const char *p, uint64_t seq, uint64_t t0, uint64_t t1)
{
	char line[64];
	snprintf(line, sizeof(line), "r %s %llu", p, (unsigned long long)seq);
	assert_int_equal(state_put_record(x->st, p, seq, t0, t1, line), 0);
}

/* meterstate-1.1: records by seq range, by time range, per principal. */
static void
meterstate_1_1(void **state)
{
	struct fx *x = *state;
	assert_int_equal(state_begin(x->st), 0);
	for (int i = 1; i <= 5; i++)
		put(x, "alice", (uint64_t)i, 1000ULL * (uint64_t)i, 1000ULL * (uint64_t)i + 1000);
	put(x, "bob", 1, 2000, 3000);
	assert_int_equal(state_commit(x->st), 0);
	x->got[0] = 0;
	assert_int_equal(state_get_records(x->st, "alice", 1, 3, 0, 0, collect, x), 0);
	assert_string_equal(x->got, "2:r alice 2;3:r alice 3;");
	x->got[0] = 0;
	assert_int_equal(state_get_records(x->st, "alice", 0, 0, 3000, 5000, collect, x), 0);
	assert_string_equal(x->got, "3:r alice 3;4:r alice 4;");
	x->got[0] = 0;
	assert_int_equal(state_get_last_record(x->st, "alice", collect, x), 1);
	assert_string_equal(x->got, "5:r alice 5;");
	x->got[0] = 0;
	assert_int_equal(state_get_last_record(x->st, "carol", collect, x), 0);
	assert_string_equal(x->got, "");
	/* A seq is written once: the ledger is append-only. */
	assert_int_equal(state_begin(x->st), 0);
	char line[] = "r alice 5 again";
	assert_int_equal(state_put_record(x->st, "alice", 5, 1, 2, line), -1);
	state_rollback(x->st);
}

static int
sigs_cb(void *arg, uint64_t seq, const char *hex)
{
	return collect(arg, seq, hex);
}

static int
tot_cb(void *arg, const char *p, const char *u)
{
	struct fx *x = arg;
	size_t n = strlen(x->got);
	snprintf(x->got + n, sizeof(x->got) - n, "%s=%s;", p, u);
	return 0;
}

static int
mn_cb(void *arg, const struct state_meter_node *mn)
{
	struct fx *x = arg;
	size_t n = strlen(x->got);
	snprintf(x->got + n, sizeof(x->got) - n, "%d/%s/%llu/%llu/%llu/%llu;", mn->rank,
		 mn->principal, (unsigned long long)mn->since_ms, (unsigned long long)mn->cpu_ns,
		 (unsigned long long)mn->mem, (unsigned long long)mn->peak);
	return 0;
}

/* meterstate-1.2: signatures, totals and baselines round-trip and
 * survive a reopen. */
static void
meterstate_1_2(void **state)
{
	struct fx *x = *state;
	char err[256];
	struct state_meter_node a = {.rank = 7,
				     .principal = "alice",
				     .since_ms = 1700000000123ULL,
				     .cpu_ns = 99,
				     .mem = 4096,
				     .peak = 8192};
	assert_int_equal(state_begin(x->st), 0);
	assert_int_equal(state_put_sig(x->st, "alice", 3, "aa"), 0);
	assert_int_equal(state_put_sig(x->st, "alice", 9, "bb"), 0);
	assert_int_equal(state_put_total(x->st, "alice", "cpu=5"), 0);
	assert_int_equal(state_put_total(x->st, "alice", "cpu=7"), 0);
	assert_int_equal(state_put_meter_node(x->st, &a), 0);
	a.rank = 8;
	assert_int_equal(state_put_meter_node(x->st, &a), 0);
	assert_int_equal(state_del_meter_node(x->st, 7), 0);
	assert_int_equal(state_commit(x->st), 0);
	state_close(x->st);
	x->st = state_sqlite_open(x->dir, 0, err, sizeof(err));
	assert_non_null(x->st);
	x->got[0] = 0;
	assert_int_equal(state_get_sigs(x->st, "alice", 3, 0, sigs_cb, x), 0);
	assert_string_equal(x->got, "9:bb;");
	x->got[0] = 0;
	assert_int_equal(state_get_totals(x->st, tot_cb, x), 0);
	assert_string_equal(x->got, "alice=cpu=7;");
	x->got[0] = 0;
	assert_int_equal(state_get_meter_nodes(x->st, mn_cb, x), 0);
	assert_string_equal(x->got, "8/alice/1700000000123/99/4096/8192;");
}

/* meterstate-1.3: a rolled-back tick leaves no record, total or row. */
static void
meterstate_1_3(void **state)
{
	struct fx *x = *state;
	struct state_meter_node a = {.rank = 1, .principal = "bob"};
	assert_int_equal(state_begin(x->st), 0);
	put(x, "bob", 1, 1, 2);
	assert_int_equal(state_put_total(x->st, "bob", "cpu=1"), 0);
	assert_int_equal(state_put_meter_node(x->st, &a), 0);
	state_rollback(x->st);
	x->got[0] = 0;
	assert_int_equal(state_get_records(x->st, "bob", 0, 0, 0, 0, collect, x), 0);
	assert_int_equal(state_get_totals(x->st, tot_cb, x), 0);
	assert_int_equal(state_get_meter_nodes(x->st, mn_cb, x), 0);
	assert_string_equal(x->got, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(meterstate_1_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(meterstate_1_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(meterstate_1_3, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
