/* ebb-*: libebb (docs/ebb.md): frames, misses and per-core
 * representatives, the loops (spawn, timers), futures, the messenger
 * against a hostile peer, and a miss that crosses nodes (two processes on
 * loopback). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/counter.h"
#include "ebb/nodealloc.h"
#include "ebb/ebb.h"

static int
up(void **state)
{
	char err[200];
	struct ebb_conf c = {.cores = 2, .node = 0, .listen = "127.0.0.1:0", .pin = 1};
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

/* ebb-1.1: a frame written by ebb_frame_header parses back; each shorter
 * prefix asks for more. */
static void
ebb_1_1(void **state)
{
	uint8_t buf[EBB_FRAME_HDR + 5];
	struct ebb_frame f = {.kind = EBB_K_CALL,
			      .ebb = EBB_ID(3, 7),
			      .from = 2,
			      .status = 9,
			      .seq = 0x1122334455ull,
			      .data = (const uint8_t *)"hello",
			      .len = 5};
	ebb_frame_header(buf, &f);
	memcpy(buf + EBB_FRAME_HDR, "hello", 5);
	struct ebb_frame g;
	assert_int_equal(ebb_frame_parse(buf, sizeof(buf), &g), sizeof(buf));
	assert_int_equal(g.kind, EBB_K_CALL);
	assert_int_equal(g.ebb, EBB_ID(3, 7));
	assert_int_equal(g.from, 2);
	assert_int_equal(g.status, 9);
	assert_true(g.seq == 0x1122334455ull);
	assert_int_equal(g.len, 5);
	assert_memory_equal(g.data, "hello", 5);
	for (size_t n = 0; n < sizeof(buf); n++)
		assert_int_equal(ebb_frame_parse(buf, n, &g), 0);
}

/* ebb-1.2: bytes that are not a frame are refused as soon as they show
 * it: a length below the header or above the maximum, an unknown kind,
 * non-zero padding. */
static void
ebb_1_2(void **state)
{
	uint8_t buf[EBB_FRAME_HDR];
	struct ebb_frame f = {.kind = EBB_K_SEND}, g;
	ebb_frame_header(buf, &f);
	assert_int_equal(ebb_frame_parse(buf, sizeof(buf), &g), EBB_FRAME_HDR);
	uint8_t b[EBB_FRAME_HDR];
	memcpy(b, buf, sizeof(b));
	b[0] = 19; /* below the header's 20 */
	assert_int_equal(ebb_frame_parse(b, 4, &g), -1);
	memcpy(b, buf, sizeof(b));
	b[3] = 0x08; /* 128 MiB */
	assert_int_equal(ebb_frame_parse(b, 4, &g), -1);
	memcpy(b, buf, sizeof(b));
	b[4] = 0;
	assert_int_equal(ebb_frame_parse(b, 5, &g), -1);
	b[4] = EBB_K_KMAX;
	assert_int_equal(ebb_frame_parse(b, 5, &g), -1);
	memcpy(b, buf, sizeof(b));
	b[6] = 1;
	assert_int_equal(ebb_frame_parse(b, sizeof(b), &g), -1);
	/* random bytes never crash the parser, and a "frame" never claims
	 * more than it was given */
	srand(16);
	for (int i = 0; i < 100000; i++) {
		uint8_t r[64];
		size_t n = (size_t)(rand() % 64);
		for (size_t k = 0; k < n; k++)
			r[k] = (uint8_t)rand();
		if (i & 1) {
			r[0] = (uint8_t)(rand() % 60);
			if (n > 3)
				r[1] = r[2] = r[3] = 0;
		}
		long rc = ebb_frame_parse(r, n, &g);
		assert_true(rc >= -1 && rc <= (long)n);
	}
}

/* ---- a type that counts its misses ---- */

static int roots_made, reps_made;
struct trep {
	int core;
	int hits;
};
static void *
t_root(ebb_id id, const void *g, size_t len)
{
	__atomic_add_fetch(&roots_made, 1, __ATOMIC_SEQ_CST);
	return calloc(1, 8);
}
static void *
t_rep(void *root, unsigned core)
{
	__atomic_add_fetch(&reps_made, 1, __ATOMIC_SEQ_CST);
	struct trep *r = calloc(1, sizeof(*r));
	r->core = (int)core;
	return r;
}
static void
t_msg(ebb_id id, void *root, struct ebb_msg *m)
{
	/* echo, with the node it came from first */
	char b[300];
	int n = snprintf(b, sizeof(b), "%u:", m->from);
	memcpy(b + n, m->data, m->len < 200 ? m->len : 200);
	ebb_msg_reply(m, 0, b, (size_t)n + (m->len < 200 ? m->len : 200));
}
static const struct ebb_type ttype = {
    .name = "test",
    .root_new = t_root,
    .rep_new = t_rep,
    .msg = t_msg,
    .rep_free = free,
    .root_free = free,
};

/* ebb-2.1: the first access misses (root and representative made once),
 * later ones hit the same representative without the handler. */
static void
ebb_2_1(void **state)
{
	roots_made = reps_made = 0;
	ebb_id id = ebb_id_new();
	assert_true(id != 0 && EBB_HOME(id) == 0);
	uint64_t m0 = ebb_misses();
	struct trep *a = ebb_rep(id, &ttype);
	assert_non_null(a);
	assert_int_equal(roots_made, 1);
	assert_int_equal(reps_made, 1);
	assert_int_equal(ebb_misses(), m0 + 2); /* the node's, then the core's */
	for (int i = 0; i < 1000; i++)
		assert_ptr_equal(ebb_rep(id, &ttype), a);
	assert_int_equal(roots_made, 1);
	assert_int_equal(reps_made, 1);
	assert_int_equal(ebb_misses(), m0 + 2);
	assert_int_equal(a->core, ebb_core());
	/* an id that evicts it from the cache brings back the same rep */
	ebb_id other = id + EBB_SLOTS;
	assert_non_null(ebb_rep(other, &ttype));
	assert_ptr_equal(ebb_rep(id, &ttype), a);
	assert_int_equal(roots_made, 2);
	assert_int_equal(reps_made, 2);
}

struct percore {
	ebb_id id;
	struct trep *rep[4], *again[4];
	int core[4];
	struct ebb_future *done;
	int left;
};

static void
touch(void *arg)
{
	struct percore *p = arg;
	int c = ebb_core();
	struct trep *r = ebb_rep(p->id, &ttype);
	int slot = c < 2 ? c : 3;
	if (p->rep[slot] == NULL)
		p->rep[slot] = r;
	else
		p->again[slot] = r;
	p->core[slot] = c;
	if (__atomic_sub_fetch(&p->left, 1, __ATOMIC_SEQ_CST) == 0)
		ebb_future_set(p->done, 0, NULL, 0);
}

/* ebb-2.2: each core gets its own representative, made on that core; a
 * second access on each finds the same one. */
static void
ebb_2_2(void **state)
{
	roots_made = reps_made = 0;
	struct percore p = {.id = ebb_id_new(), .left = 2};
	p.done = ebb_future_new();
	assert_int_equal(ebb_spawn(0, touch, &p), 0);
	assert_int_equal(ebb_spawn(1, touch, &p), 0);
	assert_int_equal(ebb_future_wait(p.done, 5000), 0);
	ebb_future_free(p.done);
	assert_int_equal(p.core[0], 0);
	assert_int_equal(p.core[1], 1);
	assert_non_null(p.rep[0]);
	assert_non_null(p.rep[1]);
	assert_ptr_not_equal(p.rep[0], p.rep[1]);
	assert_int_equal(p.rep[0]->core, 0);
	assert_int_equal(p.rep[1]->core, 1);
	assert_int_equal(roots_made, 1);
	assert_int_equal(reps_made, 2);
	p.left = 2;
	p.done = ebb_future_new();
	ebb_spawn(1, touch, &p);
	ebb_spawn(0, touch, &p);
	assert_int_equal(ebb_future_wait(p.done, 5000), 0);
	ebb_future_free(p.done);
	assert_ptr_equal(p.again[0], p.rep[0]);
	assert_ptr_equal(p.again[1], p.rep[1]);
	assert_int_equal(reps_made, 2);
	/* this thread is a core of its own */
	struct trep *mine = ebb_rep(p.id, &ttype);
	assert_true(mine != p.rep[0] && mine != p.rep[1]);
	assert_true(ebb_core() > 2);
	assert_int_equal(reps_made, 3);
}

/* ---- events ---- */

struct order {
	pthread_mutex_t mu;
	char log[64];
	int n;
	struct ebb_future *done;
};

static void
note(struct order *o, char c)
{
	pthread_mutex_lock(&o->mu);
	o->log[o->n++] = c;
	pthread_mutex_unlock(&o->mu);
}

static struct order O = {.mu = PTHREAD_MUTEX_INITIALIZER};
static void
ev_b(void *arg)
{
	note(&O, (char)('0' + ebb_core()));
	note(&O, 'b');
	ebb_future_set(O.done, 0, NULL, 0);
}
static void
ev_a(void *arg)
{
	/* spawned here: runs after this event, on this core */
	ebb_spawn(EBB_HERE, ev_b, NULL);
	note(&O, (char)('0' + ebb_core()));
	note(&O, 'a');
}

/* ebb-3.1: spawn on another core runs there; spawn here runs after the
 * current event ends, on the same core (non-preemptive). */
static void
ebb_3_1(void **state)
{
	O.n = 0;
	memset(O.log, 0, sizeof(O.log));
	O.done = ebb_future_new();
	assert_int_equal(ebb_spawn(1, ev_a, NULL), 0);
	assert_int_equal(ebb_future_wait(O.done, 5000), 0);
	ebb_future_free(O.done);
	assert_string_equal(O.log, "1a1b");
	assert_int_equal(ebb_spawn(7, ev_a, NULL), -1);
	assert_int_equal(ebb_spawn(EBB_HERE, ev_a, NULL), -1); /* not a loop's thread */
}

static uint64_t fired_at[3];
static void
tick(void *arg)
{
	fired_at[(intptr_t)arg] = now_ns();
	if ((intptr_t)arg == 2)
		ebb_future_set(O.done, 0, NULL, 0);
}

/* ebb-3.2: timers fire once, not before their time, in deadline order;
 * a cancelled one never fires. */
static void
ebb_3_2(void **state)
{
	memset(fired_at, 0, sizeof(fired_at));
	O.done = ebb_future_new();
	uint64_t t0 = now_ns();
	int64_t a = ebb_timer(0, 120, tick, (void *)2);
	int64_t b = ebb_timer(0, 40, tick, (void *)0);
	int64_t c = ebb_timer(0, 80, tick, (void *)1);
	assert_true(a > 0 && b > 0 && c > 0);
	assert_int_equal(ebb_timer_cancel(0, c), 0);
	assert_int_equal(ebb_timer_cancel(0, c), -1);
	assert_int_equal(ebb_future_wait(O.done, 5000), 0);
	ebb_future_free(O.done);
	assert_true(fired_at[0] >= t0 + 40000000);
	assert_true(fired_at[2] >= t0 + 120000000);
	assert_true(fired_at[0] < fired_at[2]);
	assert_true(fired_at[1] == 0);
	assert_int_equal(ebb_timer_cancel(0, a), -1); /* fired */
}

static cpu_set_t on_core[2];
static int cores_seen;
static void
where(void *arg)
{
	intptr_t i = (intptr_t)arg;
	sched_getaffinity(0, sizeof(on_core[i]), &on_core[i]);
	if (__atomic_add_fetch(&cores_seen, 1, __ATOMIC_SEQ_CST) == 2)
		ebb_future_set(O.done, 0, NULL, 0);
}

/* ebb-3.4: with pin, core i's loop may run on one CPU only, the i-th the
 * process may use (round robin); the program's own threads are left
 * alone. */
static void
ebb_3_4(void **state)
{
	cpu_set_t mine;
	int cpus[CPU_SETSIZE], n = 0;
	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &mine))
			cpus[n++] = c;
	O.done = ebb_future_new();
	assert_int_equal(ebb_spawn(0, where, (void *)0), 0);
	assert_int_equal(ebb_spawn(1, where, (void *)1), 0);
	assert_int_equal(ebb_future_wait(O.done, 5000), 0);
	ebb_future_free(O.done);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(CPU_COUNT(&on_core[i]), 1);
		assert_true(CPU_ISSET(cpus[i % n], &on_core[i]));
	}
	cpu_set_t now;
	sched_getaffinity(0, sizeof(now), &now);
	assert_true(CPU_EQUAL(&now, &mine));
}

static void *
setter(void *arg)
{
	usleep(30000);
	ebb_future_set(arg, 0, "abc", 3);
	return NULL;
}
static int then_core = -2;
static void
then_fn(struct ebb_future *f, void *arg)
{
	then_core = ebb_core();
	ebb_future_set(arg, 0, NULL, 0);
}

/* ebb-3.3: a future set by another thread wakes its waiter with the value;
 * a wait times out; a second set is refused; a continuation runs on the
 * core it was given. */
static void
ebb_3_3(void **state)
{
	struct ebb_future *f = ebb_future_new();
	assert_int_equal(ebb_future_wait(f, 20), -ETIMEDOUT);
	pthread_t th;
	pthread_create(&th, NULL, setter, f);
	struct ebb_future *done = ebb_future_new();
	assert_int_equal(ebb_future_then(f, 1, then_fn, done), 0);
	assert_int_equal(ebb_future_wait(f, 5000), 0);
	pthread_join(th, NULL);
	size_t len;
	const char *d = ebb_future_data(f, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(d, "abc", 3);
	assert_int_equal(ebb_future_set(f, 1, NULL, 0), -1);
	assert_int_equal(ebb_future_wait(done, 5000), 0);
	assert_int_equal(then_core, 1);
	ebb_future_free(f);
	ebb_future_free(done);
}

/* ---- the messenger ---- */

static int
dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void
put_frame(int fd, uint8_t kind, ebb_id id, uint16_t from, uint64_t seq, const char *data)
{
	uint8_t b[EBB_FRAME_HDR + 256];
	size_t len = data ? strlen(data) : 0;
	struct ebb_frame f = {.kind = kind, .ebb = id, .from = from, .seq = seq, .len = len};
	ebb_frame_header(b, &f);
	memcpy(b + EBB_FRAME_HDR, data ? data : "", len);
	assert_int_equal(write_all(fd, b, EBB_FRAME_HDR + len), 0);
}

/* Read one frame (or -1 when the peer closed). */
static int
get_frame(int fd, struct ebb_frame *f, uint8_t *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) != 1)
			return -2;
		ssize_t r = read(fd, buf + n, cap - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		long k = ebb_frame_parse(buf, n, f);
		if (k != 0)
			return k > 0 ? 0 : -3;
	}
}

/* ebb-4.1: a peer that sends junk, a frame before its hello, or a second
 * hello is cut off; the runtime goes on serving. */
static void
ebb_4_1(void **state)
{
	uint8_t buf[4096];
	struct ebb_frame f;
	int port = ebb_port();
	assert_true(port > 0);
	int fd = dial(port);
	assert_int_equal(write_all(fd, "GET / HTTP/1.0\r\n\r\n", 18), 0);
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), -1);
	close(fd);
	fd = dial(port);
	put_frame(fd, EBB_K_CALL, EBB_ID(0, 1), 5, 1, "x");
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), -1);
	close(fd);
	fd = dial(port);
	put_frame(fd, EBB_K_HELLO, 0, 5, 0, NULL);
	put_frame(fd, EBB_K_HELLO, 0, 5, 0, NULL);
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), -1);
	close(fd);
	/* a hello that claims to be this node itself */
	fd = dial(port);
	put_frame(fd, EBB_K_HELLO, 0, 0, 0, NULL);
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), -1);
	close(fd);
	/* a length past the maximum */
	fd = dial(port);
	put_frame(fd, EBB_K_HELLO, 0, 5, 0, NULL);
	assert_int_equal(write_all(fd, "\xff\xff\xff\x7f", 4), 0);
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), -1);
	close(fd);
}

/* ebb-4.2: a well-behaved peer's call reaches the EBB's handler (made on
 * this node by the message) and is answered; calls for an EBB nobody
 * made, stray replies and a call with seq 0 do not crash anything. */
static void
ebb_4_2(void **state)
{
	uint8_t buf[4096];
	struct ebb_frame f;
	ebb_id id = ebb_id_new();
	assert_int_equal(ebb_create(id, &ttype, NULL, 0), 0);
	assert_int_equal(ebb_create(id, &ttype, NULL, 0), -1);
	int fd = dial(ebb_port());
	put_frame(fd, EBB_K_HELLO, 0, 5, 0, NULL);
	put_frame(fd, EBB_K_REPLY, id, 5, 999, "stray");
	put_frame(fd, EBB_K_CALL, id, 5, 42, "ping");
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), 0);
	assert_int_equal(f.kind, EBB_K_REPLY);
	assert_true(f.seq == 42);
	assert_int_equal(f.status, 0);
	assert_int_equal(f.len, 6);
	assert_memory_equal(f.data, "5:ping", 6);
	put_frame(fd, EBB_K_CALL, EBB_ID(0, 60000), 5, 43, "x");
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), 0);
	assert_true(f.seq == 43);
	assert_int_equal(f.status, EBB_ENOEBB);
	/* an EBB whose home is a node nobody knows */
	put_frame(fd, EBB_K_CALL, EBB_ID(9, 300), 5, 44, "x");
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), 0);
	assert_int_equal(f.status, EBB_ENOEBB);
	/* the home's record answers a miss: type name, NUL, data */
	put_frame(fd, EBB_K_MISS, id, 5, 45, NULL);
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), 0);
	assert_int_equal(f.status, 0);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.data, "test", 5);
	put_frame(fd, EBB_K_CALL, id, 5, 0, "x");
	assert_int_equal(get_frame(fd, &f, buf, sizeof(buf)), -1);
	close(fd);
	/* and calls to this node itself go through the same handler */
	struct ebb_future *fu = ebb_call(0, id, "me", 2);
	assert_int_equal(ebb_future_wait(fu, 5000), 0);
	size_t len;
	const char *d = ebb_future_data(fu, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(d, "0:me", 4);
	ebb_future_free(fu);
	/* a node with no address cannot be called */
	fu = ebb_call(12, id, "x", 1);
	assert_int_equal(ebb_future_wait(fu, 5000), EBB_EUNREACH);
	ebb_future_free(fu);
}

/* The other node of ebb-5.1, run as "test_ebb node1 PORT ID": it
 * increments counter ID from both its cores, says "ready MISSES" and keeps
 * serving until its standard input ends. */
struct incs {
	ebb_id id;
	int left;
	struct ebb_future *done;
};
static void
inc_many(void *arg)
{
	struct incs *a = arg;
	for (int i = 0; i < 1000; i++)
		counter_inc(a->id);
	if (__atomic_sub_fetch(&a->left, 1, __ATOMIC_SEQ_CST) == 0)
		ebb_future_set(a->done, 0, NULL, 0);
}

static int
node1(const char *port, const char *id)
{
	char err[200], addr[64];
	struct ebb_conf c = {.cores = 2, .node = 1, .listen = "127.0.0.1:0"};
	if (ebb_init(&c, err, sizeof(err)) < 0 || counter_register() < 0)
		return 10;
	snprintf(addr, sizeof(addr), "127.0.0.1:%s", port);
	if (ebb_node_addr(0, addr) < 0)
		return 11;
	struct incs a = {.id = (ebb_id)strtoul(id, NULL, 10), .left = 2};
	a.done = ebb_future_new();
	ebb_spawn(0, inc_many, &a);
	ebb_spawn(1, inc_many, &a);
	if (ebb_future_wait(a.done, 10000) != 0)
		return 12;
	ebb_future_free(a.done);
	printf("ready %llu %lld\n", (unsigned long long)ebb_misses(),
	       (long long)counter_local(a.id));
	fflush(stdout);
	char b[16];
	while (read(0, b, sizeof(b)) > 0)
		;
	ebb_fini();
	return 0;
}

/* ebb-5.1: a miss that crosses nodes.  Node 0 (this process) makes a
 * counter; node 1 (another process on loopback) has never seen it: its
 * first inc misses, the miss asks node 0 for the EBB's type, node 1 makes
 * its own root and a representative per core.  Node 0's val then sums
 * both nodes; a known node that does not answer makes val fail. */
static void
ebb_5_1(void **state)
{
	ebb_id id = counter_new();
	assert_true(id != 0);
	counter_add(id, 5);
	int tochild[2], fromchild[2];
	assert_int_equal(pipe2(tochild, O_CLOEXEC), 0);
	assert_int_equal(pipe2(fromchild, O_CLOEXEC), 0);
	char port[16], ids[16];
	snprintf(port, sizeof(port), "%d", ebb_port());
	snprintf(ids, sizeof(ids), "%u", id);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(tochild[0], 0);
		dup2(fromchild[1], 1);
		close(tochild[1]);
		close(fromchild[0]);
		execl("/proc/self/exe", "test_ebb", "node1", port, ids, (char *)NULL);
		_exit(127);
	}
	close(tochild[0]);
	close(fromchild[1]);
	char line[128] = {0};
	FILE *in = fdopen(fromchild[0], "r");
	assert_non_null(fgets(line, sizeof(line), in));
	unsigned long long misses;
	long long local;
	assert_int_equal(sscanf(line, "ready %llu %lld", &misses, &local), 2);
	assert_int_equal(misses, 3); /* the node's root, then each core's rep */
	assert_int_equal(local, 2000);
	int64_t v = 0;
	assert_int_equal(counter_val(id, &v), 0);
	assert_int_equal(v, 2005);
	uint16_t nodes[8];
	assert_int_equal(ebb_nodes(nodes, 8), 2);
	assert_int_equal(nodes[1], 1);
	close(tochild[1]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	fclose(in);
	/* node 1 is gone (it had no address, only its connection): this node
	 * forgets it, and its counts went with it */
	usleep(100000);
	assert_int_equal(ebb_nodes(nodes, 8), 1);
	assert_int_equal(counter_val(id, &v), 0);
	assert_int_equal(v, 5);
	/* a node known by address that does not answer makes val fail */
	assert_int_equal(ebb_node_addr(7, "127.0.0.1:1"), 0);
	assert_int_equal(counter_val(id, &v), -1);
	assert_int_equal(v, 5);
}

/* Node 2 of ebb-5.2: connects to node 0 as soon as it runs, then waits
 * for its stdin to end. */
static int
node2(const char *port)
{
	char err[200], addr[64];
	struct ebb_conf c = {.cores = 1, .node = 2, .listen = "127.0.0.1:0"};
	if (ebb_init(&c, err, sizeof(err)) < 0)
		return 10;
	snprintf(addr, sizeof(addr), "127.0.0.1:%s", port);
	if (ebb_node_addr(0, addr) < 0 || ebb_node_connect(0) < 0)
		return 11;
	char b[16];
	while (read(0, b, sizeof(b)) > 0)
		;
	ebb_fini();
	return 0;
}

/* ebb-5.2: a node that starts says so by connecting (its hello names
 * it): node 0, which has no address for node 2 and never dialled it,
 * sees it connected, and not connected once it is gone.  Connecting to
 * a node nobody answers for fails, and to this node itself too. */
static void
ebb_5_2(void **state)
{
	assert_false(ebb_node_connected(2));
	int tochild[2];
	assert_int_equal(pipe2(tochild, O_CLOEXEC), 0);
	char port[16];
	snprintf(port, sizeof(port), "%d", ebb_port());
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(tochild[0], 0);
		close(tochild[1]);
		execl("/proc/self/exe", "test_ebb", "node2", port, (char *)NULL);
		_exit(127);
	}
	close(tochild[0]);
	int t;
	for (t = 0; t < 500 && !ebb_node_connected(2); t++)
		usleep(10000);
	assert_true(ebb_node_connected(2));
	char addr[64];
	assert_int_equal(ebb_node_addr_get(2, addr, sizeof(addr)), -1);
	close(tochild[1]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (t = 0; t < 500 && ebb_node_connected(2); t++)
		usleep(10000);
	assert_false(ebb_node_connected(2));
	assert_int_equal(ebb_node_addr(8, "127.0.0.1:1"), 0);
	assert_int_equal(ebb_node_connect(8), -1);
	assert_false(ebb_node_connected(8));
	assert_int_equal(ebb_node_connect(0), -1);
	ebb_node_forget(8);
}

/* ebb-6.1: a kh node finds its number by its rank in the runs its door
 * typed; anything else in the list or the hostname gives none. */
static void
ebb_6_1(void **state)
{
	assert_int_equal(nodealloc_rank_node("1-64=1", "kh0000abcd-n1"), 1);
	assert_int_equal(nodealloc_rank_node("1-64=1", "kh0000abcd-n64"), 64);
	assert_int_equal(nodealloc_rank_node("5-6=9,20-29=11", "kh1-n5"), 9);
	assert_int_equal(nodealloc_rank_node("5-6=9,20-29=11", "kh1-n6"), 10);
	assert_int_equal(nodealloc_rank_node("5-6=9,20-29=11", "kh1-n27"), 18);
	assert_int_equal(nodealloc_rank_node("7-7=3", "kh-a-n7"), 3);
	static const char *const badruns[] = {"",	 "1-64",	"1-64=",       "64-1=1",
					      "1-64=1,", "1-64=1;",	"a-b=c",       "1-64=65535",
					      "1--64=1", "1-64=999999", "0-99999999=1"};
	for (size_t i = 0; i < sizeof(badruns) / sizeof(badruns[0]); i++)
		assert_int_equal(nodealloc_rank_node(badruns[i], "kh1-n70"), -1);
	static const char *const badhosts[] = {"",	 "kh1",	    "kh1-n",	  "kh1-n7x",
					       "kh1-x7", "kh1-n-7", "kh1-n999999"};
	for (size_t i = 0; i < sizeof(badhosts) / sizeof(badhosts[0]); i++)
		assert_int_equal(nodealloc_rank_node("1-99=1", badhosts[i]), -1);
	assert_int_equal(nodealloc_rank_node("1-64=1", "kh1-n65"), -1);
	assert_int_equal(nodealloc_rank_node(NULL, "kh1-n5"), -1);
	assert_int_equal(nodealloc_rank_node("1-9=1", NULL), -1);
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "node1") == 0)
		return node1(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "node2") == 0)
		return node2(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ebb_1_1), cmocka_unit_test(ebb_1_2), cmocka_unit_test(ebb_2_1),
	    cmocka_unit_test(ebb_2_2), cmocka_unit_test(ebb_3_1), cmocka_unit_test(ebb_3_2),
	    cmocka_unit_test(ebb_3_3), cmocka_unit_test(ebb_3_4), cmocka_unit_test(ebb_4_1),
	    cmocka_unit_test(ebb_4_2), cmocka_unit_test(ebb_5_1), cmocka_unit_test(ebb_5_2),
	    cmocka_unit_test(ebb_6_1),
	};
	return cmocka_run_group_tests(tests, up, down);
}
