/* ebbbench: libebb's micro-benchmarks for bench/ebb.sh (docs/ebb.md).
 *   ebbbench hit N      ns per EBB call on a hit (ebb_rep + the counter's
 *                       add) against a plain call of a function that adds
 *   ebbbench count N    increments per second on 2 cores: the counter EBB,
 *                       one shared atomic counter, one counter under a mutex */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebb/counter.h"
#include "ebb/ebb.h"

static uint64_t
ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int64_t plain_v;
__attribute__((noinline)) static void
plain_add(int64_t *v, int64_t d)
{
	__atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}

static long N;
static ebb_id ID;
static int64_t shared;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t locked;
struct job {
	int kind;
	struct ebb_future *done;
	int *left;
};

static void
work(void *arg)
{
	struct job *j = arg;
	for (long i = 0; i < N; i++) {
		if (j->kind == 0) {
			counter_inc(ID);
		} else if (j->kind == 1) {
			__atomic_add_fetch(&shared, 1, __ATOMIC_RELAXED);
		} else {
			pthread_mutex_lock(&mu);
			locked++;
			pthread_mutex_unlock(&mu);
		}
	}
	if (__atomic_sub_fetch(j->left, 1, __ATOMIC_SEQ_CST) == 0)
		ebb_future_set(j->done, 0, NULL, 0);
}

int
main(int argc, char **argv)
{
	char err[200];
	if (argc != 3)
		return 2;
	N = atol(argv[2]);
	struct ebb_conf c = {.cores = 2};
	if (ebb_init(&c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	ID = counter_new();
	if (strcmp(argv[1], "hit") == 0) {
		counter_inc(ID); /* the miss */
		uint64_t t0 = ns();
		for (long i = 0; i < N; i++)
			counter_inc(ID);
		uint64_t t1 = ns();
		for (long i = 0; i < N; i++)
			plain_add(&plain_v, 1);
		uint64_t t2 = ns();
		printf("hit %.2f call %.2f\n", (double)(t1 - t0) / N, (double)(t2 - t1) / N);
	} else {
		static const char *names[] = {"ebb", "atomic", "mutex"};
		for (int k = 0; k < 3; k++) {
			int left = 2;
			struct job j = {.kind = k, .done = ebb_future_new(), .left = &left};
			uint64_t t0 = ns();
			ebb_spawn(0, work, &j);
			ebb_spawn(1, work, &j);
			ebb_future_wait(j.done, -1);
			uint64_t t1 = ns();
			ebb_future_free(j.done);
			printf("%s %.1f\n", names[k], 2.0 * N / ((double)(t1 - t0) / 1e9) / 1e6);
		}
		int64_t v;
		counter_val(ID, &v);
		if (v != 2 * N || shared != 2 * N || locked != 2 * N) {
			fprintf(stderr, "ebbbench: wrong counts\n");
			return 1;
		}
	}
	ebb_fini();
	return 0;
}
