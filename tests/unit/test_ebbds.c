/* ebbds-*: the example EBBs (docs/ebb.md): the distributed counter under
 * concurrent increments on several cores of several nodes, and the hash
 * table in each placement, switched while nodes write and read it.  The
 * other nodes are this program run again ("test_ebbds node N PORT ROLE
 * ID"), talking to this one over loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/counter.h"
#include "ebb/ebb.h"
#include "ebb/ht.h"

#define INCS   200000
#define DECS   50000
#define KEYS   150
#define ROUNDS 25

static int
up(void **state)
{
	char err[200];
	struct ebb_conf c = {.cores = 2, .node = 0, .listen = "127.0.0.1:0"};
	if (ebb_init(&c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
down(void **state)
{
	ebb_fini();
	return 0;
}

/* ---- work the cores do ---- */

struct work {
	ebb_id id;
	int left;
	int node;
	int stop;    /* ht_work: go on past ROUNDS until this is set */
	int last[2]; /* ht_work: each core's last round */
	long fails, ops;
	struct ebb_future *done;
};

static void
finish(struct work *w)
{
	if (__atomic_sub_fetch(&w->left, 1, __ATOMIC_SEQ_CST) == 0)
		ebb_future_set(w->done, 0, NULL, 0);
}

static void
count_work(void *arg)
{
	struct work *w = arg;
	for (int i = 0; i < INCS; i++) {
		counter_inc(w->id);
		if (i % 4 == 0)
			counter_dec(w->id);
	}
	finish(w);
}

/* Each core writes its own keys, round after round, and reads each back:
 * a read must see the value of the core's last write. */
static void
ht_work(void *arg)
{
	struct work *w = arg;
	int core = ebb_core();
	char k[64], v[64];
	long fails = 0, ops = 0;
	int r;
	for (r = 0; r < ROUNDS || !__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST); r++)
		for (int i = 0; i < KEYS; i++) {
			snprintf(k, sizeof(k), "n%dc%dk%d", w->node, core, i);
			int vl = snprintf(v, sizeof(v), "v%d-%d", r, i);
			if (ht_set(w->id, k, strlen(k), v, (size_t)vl) != 0) {
				fprintf(stderr, "# set %s failed\n", k);
				fails++;
			}
			void *got = NULL;
			size_t gl = 0;
			int rc = ht_get(w->id, k, strlen(k), &got, &gl);
			if (rc != 0 || gl != (size_t)vl || memcmp(got, v, gl) != 0) {
				fprintf(stderr, "# get %s: %d %.*s, want %s (epoch %u)\n", k, rc,
					rc == 0 ? (int)gl : 0, rc == 0 ? (char *)got : "", v,
					ht_epoch(w->id));
				fails++;
			}
			free(got);
			/* some keys come and go */
			if (i % 10 == 0) {
				snprintf(k, sizeof(k), "tmp-n%dc%dk%d", w->node, core, i);
				if (ht_set(w->id, k, strlen(k), "x", 1) != 0 ||
				    ht_del(w->id, k, strlen(k)) != 0) {
					fprintf(stderr, "# set/del %s failed\n", k);
					fails++;
				}
				ops += 2;
			}
			ops += 2;
		}
	w->last[core] = r - 1;
	__atomic_add_fetch(&w->fails, fails, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&w->ops, ops, __ATOMIC_SEQ_CST);
	finish(w);
}

/* Another node: "node N PORT ROLE ID".  It prints "port P", starts its
 * work on both cores when told "go", stops it (ht: after at least ROUNDS)
 * when told "end", prints "done FAILS OPS RETRIES LAST0 LAST1", and serves
 * until its standard input ends. */
static int
node_main(int node, const char *port, const char *role, const char *id)
{
	char err[200], addr[64];
	struct ebb_conf c = {.cores = 2, .node = (uint16_t)node, .listen = "127.0.0.1:0"};
	if (ebb_init(&c, err, sizeof(err)) < 0 || counter_register() < 0 || ht_register() < 0)
		return 10;
	snprintf(addr, sizeof(addr), "127.0.0.1:%s", port);
	if (ebb_node_addr(0, addr) < 0)
		return 11;
	printf("port %d\n", ebb_port());
	fflush(stdout);
	char go[8];
	if (read(0, go, 3) != 3)
		return 12;
	struct work w = {.id = (ebb_id)strtoul(id, NULL, 10), .left = 2, .node = node};
	w.done = ebb_future_new();
	ebb_fn fn = strcmp(role, "count") == 0 ? count_work : ht_work;
	ebb_spawn(0, fn, &w);
	ebb_spawn(1, fn, &w);
	if (read(0, go, 4) != 4)
		return 14;
	__atomic_store_n(&w.stop, 1, __ATOMIC_SEQ_CST);
	if (ebb_future_wait(w.done, 300000) != 0)
		return 13;
	ebb_future_free(w.done);
	printf("done %ld %ld %llu %d %d\n", w.fails, w.ops,
	       strcmp(role, "ht") == 0 ? (unsigned long long)ht_retries(w.id) : 0ull, w.last[0],
	       w.last[1]);
	fflush(stdout);
	char b[16];
	while (read(0, b, sizeof(b)) > 0)
		;
	ebb_fini();
	return 0;
}

struct child {
	pid_t pid;
	int in;
	FILE *out;
	int port;
	int node;
	int last[2];
};

static void
spawn(struct child *c, int node, const char *role, ebb_id id)
{
	int tochild[2], fromchild[2];
	assert_int_equal(pipe2(tochild, O_CLOEXEC), 0);
	assert_int_equal(pipe2(fromchild, O_CLOEXEC), 0);
	char ns[8], port[16], ids[16];
	snprintf(ns, sizeof(ns), "%d", node);
	snprintf(port, sizeof(port), "%d", ebb_port());
	snprintf(ids, sizeof(ids), "%u", id);
	c->node = node;
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(tochild[0], 0);
		dup2(fromchild[1], 1);
		close(tochild[1]);
		close(fromchild[0]);
		execl("/proc/self/exe", "test_ebbds", "node", ns, port, role, ids, (char *)NULL);
		_exit(127);
	}
	close(tochild[0]);
	close(fromchild[1]);
	c->in = tochild[1];
	c->out = fdopen(fromchild[0], "r");
	char line[64];
	assert_non_null(fgets(line, sizeof(line), c->out));
	assert_int_equal(sscanf(line, "port %d", &c->port), 1);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", c->port);
	assert_int_equal(ebb_node_addr((uint16_t)node, addr), 0);
}

static void
go(struct child *c)
{
	assert_int_equal(write(c->in, "go\n", 3), 3);
}

static void
result(struct child *c, long *fails, long *ops)
{
	char line[128];
	assert_int_equal(write(c->in, "end\n", 4), 4);
	assert_non_null(fgets(line, sizeof(line), c->out));
	unsigned long long retries;
	assert_int_equal(
	    sscanf(line, "done %ld %ld %llu %d %d", fails, ops, &retries, &c->last[0], &c->last[1]),
	    5);
	if (retries > 0)
		printf("# node %d: %llu operations retried while the table switched\n", c->node,
		       retries);
}

static void
reap(struct child *c)
{
	close(c->in);
	int st;
	assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
	fclose(c->out);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ebbds-1.1: the counter is exact under concurrency: three nodes, two
 * cores each, incrementing and decrementing at once, while node 0 reads
 * val as they go. */
static void
ebbds_1_1(void **state)
{
	ebb_id id = counter_new();
	assert_true(id != 0);
	struct child c[2];
	spawn(&c[0], 1, "count", id);
	spawn(&c[1], 2, "count", id);
	struct work w = {.id = id, .left = 2, .node = 0};
	w.done = ebb_future_new();
	go(&c[0]);
	go(&c[1]);
	ebb_spawn(0, count_work, &w);
	ebb_spawn(1, count_work, &w);
	/* val as the work goes: never more than the final sum */
	const int64_t want = 3 * 2 * (INCS - INCS / 4);
	for (int i = 0; i < 20; i++) {
		int64_t v;
		assert_int_equal(counter_val(id, &v), 0);
		assert_true(v >= 0 && v <= want);
		usleep(2000);
	}
	assert_int_equal(ebb_future_wait(w.done, 120000), 0);
	ebb_future_free(w.done);
	long f, o;
	result(&c[0], &f, &o);
	result(&c[1], &f, &o);
	int64_t v;
	assert_int_equal(counter_val(id, &v), 0);
	assert_int_equal(v, want);
	assert_int_equal(counter_local(id), want / 3);
	/* this node's cores each have a representative (and the val reader) */
	reap(&c[0]);
	reap(&c[1]);
}

/* ebbds-2.1: each placement on one node keeps what it is given: set, get,
 * overwrite, delete, absent keys, bad keys and values; switching between
 * them keeps every entry. */
static void
ebbds_2_1(void **state)
{
	for (int m = HT_CENTRAL; m <= HT_PARTITIONED; m++) {
		ebb_id id = ht_new((enum ht_mode)m);
		assert_true(id != 0);
		assert_int_equal(ht_mode(id), m);
		void *v;
		size_t vl;
		assert_int_equal(ht_get(id, "a", 1, &v, &vl), 1);
		assert_int_equal(ht_set(id, "a", 1, "one", 3), 0);
		assert_int_equal(ht_get(id, "a", 1, &v, &vl), 0);
		assert_int_equal(vl, 3);
		assert_memory_equal(v, "one", 3);
		free(v);
		assert_int_equal(ht_set(id, "a", 1, "", 0), 0);
		assert_int_equal(ht_get(id, "a", 1, &v, &vl), 0);
		assert_int_equal(vl, 0);
		free(v);
		assert_int_equal(ht_del(id, "a", 1), 0);
		assert_int_equal(ht_del(id, "a", 1), 1);
		assert_int_equal(ht_get(id, "a", 1, &v, &vl), 1);
		char big[HT_KEY_MAX + 1];
		memset(big, 'k', sizeof(big));
		assert_int_equal(ht_set(id, big, sizeof(big), "x", 1), -1);
		assert_int_equal(ht_set(id, big, HT_KEY_MAX, "x", 1), 0);
		assert_int_equal(ht_set(id, "", 0, "x", 1), -1);
		assert_int_equal(ht_set(id, "b", 1, big, HT_VAL_MAX + 1), -1);
		for (int i = 0; i < 3000; i++) {
			char k[16];
			snprintf(k, sizeof(k), "key%d", i);
			assert_int_equal(ht_set(id, k, strlen(k), k, strlen(k)), 0);
		}
		uint16_t me = 0;
		for (int to = HT_CENTRAL; to <= HT_PARTITIONED; to++) {
			assert_int_equal(ht_switch(id, (enum ht_mode)to, &me, 1), 0);
			assert_int_equal(ht_mode(id), to);
			assert_int_equal(ht_local_count(id), 3001);
			for (int i = 0; i < 3000; i += 7) {
				char k[16];
				snprintf(k, sizeof(k), "key%d", i);
				assert_int_equal(ht_get(id, k, strlen(k), &v, &vl), 0);
				assert_int_equal(vl, strlen(k));
				assert_memory_equal(v, k, vl);
				free(v);
			}
		}
		/* a switch with a node twice, or no node, is refused */
		uint16_t twice[2] = {0, 0};
		assert_int_equal(ht_switch(id, HT_CENTRAL, twice, 2), -1);
		assert_int_equal(ht_switch(id, HT_CENTRAL, twice, 0), -1);
	}
	enum ht_mode mm;
	assert_int_equal(ht_mode_parse("partitioned", &mm), 0);
	assert_int_equal(mm, HT_PARTITIONED);
	assert_int_equal(ht_mode_parse("sharded", &mm), -1);
}

/* ebbds-2.2: switched while in use.  Nodes 1 and 2 write and read their
 * keys from both cores while node 0 switches the table through every
 * placement and set of members (the data leaving node 0 entirely, coming
 * back, spread by consistent hashing, copied everywhere): no operation
 * fails, every read sees its core's last write, and at the end every
 * key has its last value. */
static void
ebbds_2_2(void **state)
{
	ebb_id id = ht_new(HT_CENTRAL);
	assert_true(id != 0);
	struct child c[2];
	spawn(&c[0], 1, "ht", id);
	spawn(&c[1], 2, "ht", id);
	go(&c[0]);
	go(&c[1]);
	static const struct {
		enum ht_mode m;
		uint16_t n, nodes[3];
	} steps[] = {
	    {HT_PARTITIONED, 3, {0, 1, 2}}, {HT_REPLICATED, 3, {0, 1, 2}},
	    {HT_CENTRAL, 1, {1}},	    {HT_PARTITIONED, 2, {1, 2}},
	    {HT_REPLICATED, 2, {2, 0}},	    {HT_PARTITIONED, 3, {2, 1, 0}},
	    {HT_CENTRAL, 1, {0}},	    {HT_PARTITIONED, 2, {0, 2}},
	};
	uint32_t e0 = ht_epoch(id);
	for (int round = 0; round < 3; round++)
		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			usleep(20000);
			assert_int_equal(ht_switch(id, steps[s].m, steps[s].nodes, steps[s].n), 0);
		}
	assert_int_equal(ht_epoch(id), e0 + 24);
	long f1, o1, f2, o2;
	result(&c[0], &f1, &o1);
	result(&c[1], &f2, &o2);
	assert_int_equal(f1, 0);
	assert_int_equal(f2, 0);
	assert_true(o1 > 2 * 2 * KEYS * ROUNDS);
	assert_true(c[0].last[0] >= ROUNDS - 1 && c[1].last[1] >= ROUNDS - 1);
	/* every key, read from here, has its last value; no temporary key
	 * is left */
	for (int n = 1; n <= 2; n++)
		for (int core = 0; core < 2; core++)
			for (int i = 0; i < KEYS; i++) {
				char k[64], want[64];
				snprintf(k, sizeof(k), "n%dc%dk%d", n, core, i);
				int wl =
				    snprintf(want, sizeof(want), "v%d-%d", c[n - 1].last[core], i);
				void *v;
				size_t vl;
				assert_int_equal(ht_get(id, k, strlen(k), &v, &vl), 0);
				assert_int_equal(vl, (size_t)wl);
				assert_memory_equal(v, want, vl);
				free(v);
				snprintf(k, sizeof(k), "tmp-n%dc%dk%d", n, core, i);
				assert_int_equal(ht_get(id, k, strlen(k), &v, &vl), 1);
			}
	/* the last placement: partitioned over 0 and 2; together they hold
	 * each key once */
	assert_int_equal(ht_mode(id), HT_PARTITIONED);
	assert_true(ht_local_count(id) > 0 && ht_local_count(id) < 2 * 2 * KEYS);
	reap(&c[0]);
	reap(&c[1]);
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "node") == 0)
		return node_main(atoi(argv[2]), argv[3], argv[4], argv[5]);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ebbds_1_1),
	    cmocka_unit_test(ebbds_2_1),
	    cmocka_unit_test(ebbds_2_2),
	};
	return cmocka_run_group_tests(tests, up, down);
}
