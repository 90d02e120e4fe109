/* meterstate-*: the state store's metering operations, on SQLite and on
 * PostgreSQL (statefx.h): records come back by seq and by time, the head
 * is the last record, signatures, totals and node baselines (with their
 * interfaces' counters) round-trip, survive a reopen, and a rolled-back
 * transaction leaves none of them; a state.db made before interface
 * baselines existed opens (SQLite). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/state.h"
#include "statefx.h"

struct fx {
	char dir[64];
	struct state *st;
	char got[2048];
};

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	snprintf(x->dir, sizeof(x->dir), "/tmp/kh-test-mstate-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	statefx_new(x->dir);
	x->st = statefx_open();
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
	/* (the write or, as PostgreSQL's pipelined writes do, the commit
	 * fails; either way the transaction does not commit) */
	assert_int_equal(state_begin(x->st), 0);
	char line[] = "r alice 5 again";
	int rc = state_put_record(x->st, "alice", 5, 1, 2, line);
	if (rc == 0)
		rc = state_commit(x->st);
	else
		state_rollback(x->st);
	assert_int_equal(rc, -1);
	x->got[0] = 0;
	assert_int_equal(state_get_last_record(x->st, "alice", collect, x), 1);
	assert_string_equal(x->got, "5:r alice 5;");
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
	x->st = statefx_open();
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

static int
ports_cb(void *arg, const struct state_meter_node *mn)
{
	struct fx *x = arg;
	size_t n = strlen(x->got);
	n += (size_t)snprintf(x->got + n, sizeof(x->got) - n, "%d/%llu:", mn->rank,
			      (unsigned long long)mn->cpu_ns);
	for (int i = 0; i < KH_MAX_IFS && n < sizeof(x->got); i++) {
		const struct state_meter_port *p = &mn->port[i];
		if (p->netid || p->rx_bytes || p->tx_bytes || p->rx_packets || p->tx_packets)
			n += (size_t)snprintf(
			    x->got + n, sizeof(x->got) - n, " eth%d=%u/%llu/%llu/%llu/%llu", i,
			    p->netid, (unsigned long long)p->rx_bytes,
			    (unsigned long long)p->tx_bytes, (unsigned long long)p->rx_packets,
			    (unsigned long long)p->tx_packets);
	}
	if (n < sizeof(x->got))
		snprintf(x->got + n, sizeof(x->got) - n, ";");
	return 0;
}

/* meterstate-1.4: a node's interface baselines round-trip by slot, the
 * largest counters included, and a rewrite replaces them (a slot without
 * an interface comes back empty). */
static void
meterstate_1_4(void **state)
{
	struct fx *x = *state;
	struct state_meter_node a = {.rank = 3, .principal = "alice", .cpu_ns = 5};
	a.port[0] = (struct state_meter_port){2, 31457280, 1200, 20000, 900};
	a.port[15] = (struct state_meter_port){4294967295u, UINT64_MAX, 1, 2, UINT64_MAX};
	assert_int_equal(state_begin(x->st), 0);
	assert_int_equal(state_put_meter_node(x->st, &a), 0);
	assert_int_equal(state_commit(x->st), 0);
	state_close(x->st);
	x->st = statefx_open();
	assert_non_null(x->st);
	x->got[0] = 0;
	assert_int_equal(state_get_meter_nodes(x->st, ports_cb, x), 0);
	assert_string_equal(x->got,
			    "3/5: eth0=2/31457280/1200/20000/900"
			    " eth15=4294967295/18446744073709551615/1/2/18446744073709551615;");
	a.port[0] = (struct state_meter_port){0};
	a.port[15].rx_bytes = 7;
	assert_int_equal(state_begin(x->st), 0);
	assert_int_equal(state_put_meter_node(x->st, &a), 0);
	assert_int_equal(state_commit(x->st), 0);
	x->got[0] = 0;
	assert_int_equal(state_get_meter_nodes(x->st, ports_cb, x), 0);
	assert_string_equal(x->got, "3/5: eth15=4294967295/7/1/2/18446744073709551615;");
}

/* meterstate-1.5: a state.db of a khd from before interface baselines
 * opens: its rows read back with none, and new rows store them. */
static void
meterstate_1_5(void **state)
{
	struct fx *x = *state;
	char path[128], err[256];
	sqlite3 *db;

	state_close(x->st);
	snprintf(path, sizeof(path), "%s/state.db", x->dir);
	unlink(path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(
		db,
		"CREATE TABLE meter_nodes(rank INTEGER PRIMARY KEY, principal TEXT NOT NULL,"
		" since INTEGER NOT NULL, cpu INTEGER NOT NULL, mem INTEGER NOT NULL,"
		" peak INTEGER NOT NULL);"
		"INSERT INTO meter_nodes VALUES(4,'bob',1000,77,0,0);",
		NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	x->st = state_sqlite_open(x->dir, 0, err, sizeof(err));
	assert_non_null(x->st);
	x->got[0] = 0;
	assert_int_equal(state_get_meter_nodes(x->st, ports_cb, x), 0);
	assert_string_equal(x->got, "4/77:;");
	struct state_meter_node b = {.rank = 5, .principal = "bob", .cpu_ns = 1};
	b.port[1] = (struct state_meter_port){3, 10, 20, 1, 2};
	assert_int_equal(state_begin(x->st), 0);
	assert_int_equal(state_put_meter_node(x->st, &b), 0);
	assert_int_equal(state_commit(x->st), 0);
	state_close(x->st);
	/* and opens again (the column is not added twice) */
	x->st = state_sqlite_open(x->dir, 0, err, sizeof(err));
	assert_non_null(x->st);
	x->got[0] = 0;
	assert_int_equal(state_get_meter_nodes(x->st, ports_cb, x), 0);
	assert_string_equal(x->got, "4/77:;5/1: eth1=3/10/20/1/2;");
}

/* meterstate-1.6: damaged interface baselines: the damaged entry is left
 * out (that slot counts from zero later), the others are kept. */
static void
meterstate_1_6(void **state)
{
	struct fx *x = *state;
	char err[256];

	assert_int_equal(
	    statefx_sql("INSERT INTO meter_nodes VALUES(6,'bob',1,2,0,0,"
			"'0:2:1:2:3:4 1:0:1:1:1:1 16:2:1:1:1:1 x 2:5:9:9:9:9z 3:2:5:6:7:8');",
			err, sizeof(err)),
	    0);
	state_close(x->st);
	x->st = statefx_open();
	assert_non_null(x->st);
	x->got[0] = 0;
	assert_int_equal(state_get_meter_nodes(x->st, ports_cb, x), 0);
	assert_string_equal(x->got, "6/2: eth0=2/1/2/3/4 eth3=2/5/6/7/8;");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(meterstate_1_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(meterstate_1_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(meterstate_1_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(meterstate_1_4, setup, teardown),
	    cmocka_unit_test_setup_teardown(meterstate_1_6, setup, teardown),
	};
	const struct CMUnitTest sqlite_only[] = {
	    cmocka_unit_test_setup_teardown(meterstate_1_5, setup, teardown),
	};
	int rc = cmocka_run_group_tests_name("meterstate (sqlite)", tests, NULL, NULL);
	rc |= cmocka_run_group_tests_name("meterstate (sqlite: an older state.db)", sqlite_only,
					  NULL, NULL);
	if (statefx_pg_start() < 0)
		return 1;
	rc |= cmocka_run_group_tests_name("meterstate (postgresql)", tests, NULL, NULL);
	statefx_pg_stop();
	return rc;
}
