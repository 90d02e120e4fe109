/* khmc: a command-line memcached client, and a load generator in the
 * manner of memaslap (docs/mc.md).
 *   khmc [-s HOST:PORT,...] [-d ketama|ketama-md5|modula] get KEY...
 *   khmc [-s ...] set KEY [--flags N] [--exptime N]      (the value on stdin)
 *   khmc [-s ...] delete KEY
 *   khmc [-s ...] stats
 *   khmc [-s ...] bench [--keys N] [--value-size BYTES] [--get-ratio R]
 *        [--concurrency C] [--duration SECONDS] [--batch N] [--transport tcp|rdma]
 * -r IFACE|auto: one-sided gets and two-phase sets through this node's RDMA
 * device (the interface of each server's domain with auto), with servers
 * that offer them (docs/mc.md); --transport rdma in bench is -r auto.
 * Servers: -s, else $KHMC_SERVERS, else 127.0.0.1:11211; keys go to them as
 * libmemcached sends them with MEMCACHED_BEHAVIOR_KETAMA (-d ketama, the
 * default), MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (ketama-md5) or no behavior
 * set (modula).  get of one key writes its value as it is; of several,
 * "KEY FLAGS BYTES" then the value, for each found, in the order asked.  A
 * key not found is a line on stderr and exit status 1.  bench prints one
 * line for gets and one for sets: ops, ops/s and latency percentiles. */
#include "common/util.h"
#include "mc/khmc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: khmc [-s HOST:PORT,...] [-d ketama|ketama-md5|modula] [-r IFACE|auto] get KEY...\n"
    "       khmc [-s ...] set KEY [--flags N] [--exptime N]   (value from stdin)\n"
    "       khmc [-s ...] delete KEY\n"
    "       khmc [-s ...] stats\n"
    "       khmc [-s ...] bench [--keys N] [--value-size BYTES] [--get-ratio R]\n"
    "                          [--concurrency C] [--duration SECONDS] [--batch N]\n"
    "                          [--transport tcp|rdma]\n";

static int
bad(const char *msg, const char *arg)
{
	fprintf(stderr, "khmc: %s%s%s (see khmc --help)\n", msg, arg ? " " : "", arg ? arg : "");
	return 2;
}

static int
failed(struct khmc *c, const char *what, int rc)
{
	if (rc == KHMC_CONNECT || rc == KHMC_IO)
		fprintf(stderr, "khmc: %s: %s: %s\n", what, khmc_strerror(rc),
			strerror(khmc_errno(c)));
	else
		fprintf(stderr, "khmc: %s: %s\n", what, khmc_strerror(rc));
	return 1;
}

struct gets {
	char **values; /* a copy of each value found, printed in key order */
	size_t *vlens;
	uint32_t *flags;
	int nomem;
};

static void
keep_hit(void *arg, size_t i, const char *value, size_t vlen, uint32_t flags, uint64_t cas)
{
	struct gets *g = arg;

	if (g->values[i] != NULL)
		return; /* the same key asked twice */
	g->values[i] = malloc(vlen + 1);
	if (g->values[i] == NULL) {
		g->nomem = 1;
		return;
	}
	memcpy(g->values[i], value, vlen);
	g->vlens[i] = vlen;
	g->flags[i] = flags;
}

static int
cmd_get(struct khmc *c, char **keys, int n)
{
	size_t *klens = calloc((size_t)n, sizeof(*klens));
	struct gets g = {calloc((size_t)n, sizeof(char *)), calloc((size_t)n, sizeof(size_t)),
			 calloc((size_t)n, sizeof(uint32_t)), 0};
	int rc = 0;

	if (klens == NULL || g.values == NULL || g.vlens == NULL || g.flags == NULL) {
		rc = failed(c, "get", KHMC_NOMEM);
		goto out;
	}
	for (int i = 0; i < n; i++)
		klens[i] = strlen(keys[i]);
	int r = khmc_mget(c, (const char *const *)keys, klens, (size_t)n, keep_hit, &g);
	if (r == KHMC_OK && g.nomem)
		r = KHMC_NOMEM;
	if (r != KHMC_OK) {
		rc = failed(c, "get", r);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (g.values[i] == NULL) {
			fflush(stdout);
			fprintf(stderr, "khmc: %s: not found\n", keys[i]);
			rc = 1;
			continue;
		}
		if (n > 1)
			printf("%s %u %zu\n", keys[i], g.flags[i], g.vlens[i]);
		fwrite(g.values[i], 1, g.vlens[i], stdout);
		if (n > 1)
			putchar('\n');
	}
	fflush(stdout);
out:
	for (int i = 0; g.values != NULL && i < n; i++)
		free(g.values[i]);
	free(g.values);
	free(g.vlens);
	free(g.flags);
	free(klens);
	return rc;
}

static int
cmd_set(struct khmc *c, const char *key, uint32_t flags, uint32_t exptime)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	ssize_t k;

	if (buf == NULL)
		return failed(c, "set", KHMC_NOMEM);
	while ((k = read(0, buf + len, cap - len)) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			fprintf(stderr, "khmc: set: standard input: %s\n", strerror(errno));
			return 1;
		}
		len += (size_t)k;
		if (len == cap) {
			char *b = cap >= (8u << 20) ? NULL : realloc(buf, cap * 2);
			if (b == NULL) {
				free(buf);
				fprintf(stderr, "khmc: set: the value is larger than 8 MiB\n");
				return 1;
			}
			buf = b;
			cap *= 2;
		}
	}
	int rc = khmc_set(c, key, strlen(key), buf, len, exptime, flags);
	free(buf);
	if (rc != KHMC_OK) {
		char what[300];
		snprintf(what, sizeof(what), "set %s", key);
		return failed(c, what, rc);
	}
	return 0;
}

static void
print_stat(void *arg, const char *name, const char *value)
{
	printf("%s %s\n", name, value);
}

/* ---- bench ---- */

/* Latencies in a log-linear histogram: 32 steps per power of two. */
#define SUB   32
#define HBINS (64 * SUB)

struct hist {
	uint64_t n, bins[HBINS];
};

static void
hist_add(struct hist *h, uint64_t ns)
{
	int msb = 63 - __builtin_clzll(ns | 1);
	int idx = msb < 5 ? (int)ns : msb * SUB + (int)((ns >> (msb - 5)) & (SUB - 1));

	h->bins[idx]++;
	h->n++;
}

/* The lower bound of a bin, in ns. */
static double
bin_value(int idx)
{
	if (idx < 5 * SUB)
		return idx;
	int msb = idx / SUB, sub = idx % SUB;
	return (double)((UINT64_C(1) << msb) + ((uint64_t)sub << (msb - 5)));
}

static double
hist_pct(const struct hist *h, double p)
{
	uint64_t want = (uint64_t)(p * (double)h->n), seen = 0;

	for (int i = 0; i < HBINS; i++) {
		seen += h->bins[i];
		if (seen > want)
			return bin_value(i);
	}
	return 0;
}

struct bench {
	const char *servers;
	enum khmc_dist dist;
	const char *rdma; /* NULL: TCP; else the interface, or "auto" */
	uint64_t keys, value_size, duration, concurrency, batch;
	double get_ratio;
	volatile int stop;
	pthread_barrier_t start;
};

struct bthread {
	struct bench *b;
	pthread_t tid;
	uint64_t seed;
	struct hist get, set;
	uint64_t hits, misses, errors, short_values, keys_got;
	struct khmc_rdma_stats rs;
	int rc;
};

/* "khmc:bench:K" into buf (64 bytes); its length.  Not snprintf: the
 * load generator's own cost stays out of what it measures. */
static int
key_name(char *buf, uint64_t k)
{
	static const char pre[] = "khmc:bench:";
	char d[24];
	int n = 0;
	memcpy(buf, pre, sizeof(pre) - 1);
	do {
		d[n++] = (char)('0' + k % 10);
		k /= 10;
	} while (k);
	for (int i = 0; i < n; i++)
		buf[sizeof(pre) - 1 + i] = d[n - 1 - i];
	buf[sizeof(pre) - 1 + n] = '\0';
	return (int)sizeof(pre) - 1 + n;
}

struct bhit {
	struct bthread *t;
	int found;
};

#define BATCH_MAX 64

static void
bench_hit(void *arg, size_t i, const char *value, size_t vlen, uint32_t flags, uint64_t cas)
{
	struct bhit *h = arg;
	(void)i;
	(void)value;
	(void)flags;
	(void)cas;
	h->found++;
	if (vlen != h->t->b->value_size)
		h->t->short_values++;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *
bench_thread(void *arg)
{
	struct bthread *t = arg;
	struct bench *b = t->b;
	struct khmc *c = khmc_new();
	char *value = malloc(b->value_size + 1), key[64];

	if (c == NULL || value == NULL || khmc_add_servers(c, b->servers) != KHMC_OK ||
	    khmc_set_distribution(c, b->dist) != KHMC_OK ||
	    (b->rdma && khmc_use_rdma(c, strcmp(b->rdma, "auto") ? b->rdma : NULL) != KHMC_OK)) {
		t->rc = KHMC_NOMEM;
		pthread_barrier_wait(&b->start);
		goto out;
	}
	for (uint64_t i = 0; i < b->value_size; i++)
		value[i] = (char)('a' + (i * 7 + t->seed) % 26);
	/* Load this thread's share of the keys so that gets can hit. */
	for (uint64_t k = t->seed; k < b->keys; k += b->concurrency) {
		int n = key_name(key, k);
		int rc = khmc_set(c, key, (size_t)n, value, b->value_size, 0, 0);
		if (rc != KHMC_OK) {
			t->rc = rc;
			break;
		}
	}
	pthread_barrier_wait(&b->start);
	uint64_t s = t->seed * 0x9e3779b97f4a7c15ull + 1;
	while (!b->stop && t->rc == KHMC_OK) {
		uint64_t k = rnd(&s) % b->keys;
		int n = key_name(key, k);
		int is_get = (double)(rnd(&s) % 1000000) < b->get_ratio * 1000000.0;
		uint64_t t0 = now_ns();
		int rc;
		if (is_get) {
			/* The value is looked at where it arrived (as memaslap
			 * does), not copied out: the same for both transports.
			 * --batch N: one multi-get of N keys (latency per call,
			 * throughput per key). */
			char kb[BATCH_MAX][64];
			const char *kp[BATCH_MAX];
			size_t kl[BATCH_MAX];
			kp[0] = key;
			kl[0] = (size_t)n;
			for (uint64_t j = 1; j < b->batch; j++) {
				uint64_t kk = rnd(&s) % b->keys;
				kl[j] = (size_t)key_name(kb[j], kk);
				kp[j] = kb[j];
			}
			struct bhit h = {t, 0};
			rc = khmc_mget(c, kp, kl, b->batch, bench_hit, &h);
			if (rc == KHMC_OK) {
				t->hits += (uint64_t)h.found;
				t->misses += b->batch - (uint64_t)h.found;
				t->keys_got += b->batch;
			}
			hist_add(&t->get, now_ns() - t0);
		} else {
			rc = khmc_set(c, key, (size_t)n, value, b->value_size, 0, 0);
			hist_add(&t->set, now_ns() - t0);
		}
		if (rc != KHMC_OK) {
			t->errors++;
			if (rc == KHMC_CONNECT)
				t->rc = rc;
		}
	}
out:
	if (c)
		khmc_rdma_stats(c, &t->rs);
	khmc_free(c);
	free(value);
	return NULL;
}

static void
bench_line(const char *op, const struct hist *h, double secs, const char *extra)
{
	printf("%s ops=%llu ops_per_sec=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f%s\n",
	       op, (unsigned long long)h->n, (double)h->n / secs, hist_pct(h, 0.5) / 1000,
	       hist_pct(h, 0.9) / 1000, hist_pct(h, 0.99) / 1000, hist_pct(h, 0.999) / 1000, extra);
}

static int
cmd_bench(const char *servers, enum khmc_dist dist, const char *rdma, int argc, char **argv)
{
	struct bench b = {.servers = servers,
			  .dist = dist,
			  .rdma = rdma,
			  .keys = 10000,
			  .value_size = 100,
			  .duration = 10,
			  .concurrency = 4,
			  .batch = 1,
			  .get_ratio = 0.9};

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (next == NULL)
			return bad("option needs a value:", a);
		i++;
		if (strcmp(a, "--keys") == 0) {
			if (parse_uint(next, 1, 100000000, &b.keys) < 0)
				return bad("--keys takes a count, not", next);
		} else if (strcmp(a, "--value-size") == 0) {
			if (parse_uint(next, 0, 1000000, &b.value_size) < 0)
				return bad("--value-size takes bytes (up to 1000000), not", next);
		} else if (strcmp(a, "--concurrency") == 0) {
			if (parse_uint(next, 1, 1024, &b.concurrency) < 0)
				return bad("--concurrency takes 1..1024, not", next);
		} else if (strcmp(a, "--duration") == 0) {
			if (parse_uint(next, 1, 86400, &b.duration) < 0)
				return bad("--duration takes seconds, not", next);
		} else if (strcmp(a, "--batch") == 0) {
			if (parse_uint(next, 1, BATCH_MAX, &b.batch) < 0)
				return bad("--batch takes 1..64 keys, not", next);
		} else if (strcmp(a, "--get-ratio") == 0) {
			char *e;
			b.get_ratio = strtod(next, &e);
			if (*e != '\0' || !(b.get_ratio >= 0 && b.get_ratio <= 1))
				return bad("--get-ratio takes 0..1, not", next);
		} else if (strcmp(a, "--transport") == 0) {
			if (strcmp(next, "tcp") == 0)
				b.rdma = NULL;
			else if (strcmp(next, "rdma") == 0)
				b.rdma = b.rdma ? b.rdma : "auto";
			else
				return bad("--transport takes tcp or rdma, not", next);
		} else {
			return bad("unknown bench option", a);
		}
	}

	struct bthread *t = calloc(b.concurrency, sizeof(*t));
	if (t == NULL)
		return bad("out of memory", NULL);
	pthread_barrier_init(&b.start, NULL, (unsigned)b.concurrency + 1);
	for (uint64_t i = 0; i < b.concurrency; i++) {
		t[i].b = &b;
		t[i].seed = i;
		if (pthread_create(&t[i].tid, NULL, bench_thread, &t[i]) != 0) {
			fprintf(stderr, "khmc: bench: cannot start thread %llu\n",
				(unsigned long long)i);
			exit(1);
		}
	}
	pthread_barrier_wait(&b.start);
	uint64_t t0 = now_ns();
	while (now_ns() - t0 < b.duration * 1000000000ull)
		usleep(20000);
	b.stop = 1;
	double secs = (double)(now_ns() - t0) / 1e9;
	struct hist *get = calloc(1, sizeof(*get)), *set = calloc(1, sizeof(*set));
	uint64_t hits = 0, misses = 0, errors = 0, shortv = 0, keys_got = 0;
	struct khmc_rdma_stats rs = {0};
	int rc = KHMC_OK;
	for (uint64_t i = 0; i < b.concurrency; i++) {
		pthread_join(t[i].tid, NULL);
		for (int k = 0; k < HBINS; k++) {
			get->bins[k] += t[i].get.bins[k];
			set->bins[k] += t[i].set.bins[k];
		}
		get->n += t[i].get.n;
		set->n += t[i].set.n;
		hits += t[i].hits;
		misses += t[i].misses;
		errors += t[i].errors;
		shortv += t[i].short_values;
		keys_got += t[i].keys_got;
		rs.hits += t[i].rs.hits;
		rs.misses += t[i].rs.misses;
		rs.retries += t[i].rs.retries;
		rs.fallbacks += t[i].rs.fallbacks;
		if (t[i].rc != KHMC_OK)
			rc = t[i].rc;
	}
	pthread_barrier_destroy(&b.start);
	if (rc != KHMC_OK) {
		fprintf(stderr, "khmc: bench: %s\n", khmc_strerror(rc));
		free(t);
		free(get);
		free(set);
		return 1;
	}
	char extra[320];
	int xn =
	    snprintf(extra, sizeof(extra), " hits=%llu misses=%llu errors=%llu wrong_size=%llu",
		     (unsigned long long)hits, (unsigned long long)misses,
		     (unsigned long long)errors, (unsigned long long)shortv);
	if (b.batch > 1)
		xn += snprintf(extra + xn, sizeof(extra) - (size_t)xn,
			       " batch=%llu keys_per_sec=%.0f", (unsigned long long)b.batch,
			       (double)keys_got / secs);
	if (b.rdma)
		snprintf(extra + xn, sizeof(extra) - (size_t)xn,
			 " onesided_hits=%llu onesided_misses=%llu retries=%llu tcp_fallbacks=%llu",
			 (unsigned long long)rs.hits, (unsigned long long)rs.misses,
			 (unsigned long long)rs.retries, (unsigned long long)rs.fallbacks);
	bench_line("get", get, secs, extra);
	snprintf(extra, sizeof(extra), " errors=%llu", (unsigned long long)errors);
	bench_line("set", set, secs, extra);
	free(t);
	free(get);
	free(set);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *servers = getenv("KHMC_SERVERS"), *rdma = NULL;
	enum khmc_dist dist = KHMC_DIST_KETAMA;
	int i = 1;
	uint64_t v;

	if (servers == NULL || *servers == '\0')
		servers = "127.0.0.1:11211";
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			servers = argv[++i];
		} else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
			rdma = argv[++i];
		} else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
			const char *d = argv[++i];
			if (strcmp(d, "ketama") == 0)
				dist = KHMC_DIST_KETAMA;
			else if (strcmp(d, "ketama-md5") == 0)
				dist = KHMC_DIST_KETAMA_MD5;
			else if (strcmp(d, "modula") == 0)
				dist = KHMC_DIST_MODULA;
			else
				return bad("-d takes ketama, ketama-md5 or modula, not", d);
		} else {
			return bad("unknown option", argv[i]);
		}
	}
	if (i == argc)
		return bad("what to do? get, set, delete, stats or bench", NULL);
	const char *cmd = argv[i++];
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(servers, dist, rdma, argc - i, argv + i);

	struct khmc *c = khmc_new();
	if (c == NULL)
		return bad("out of memory", NULL);
	int rc = khmc_add_servers(c, servers);
	if (rc == KHMC_OK)
		khmc_set_distribution(c, dist);
	if (rc == KHMC_OK && rdma)
		rc = khmc_use_rdma(c, strcmp(rdma, "auto") ? rdma : NULL);
	if (rc != KHMC_OK) {
		khmc_free(c);
		return bad("-s takes HOST:PORT,..., not", servers);
	}
	if (strcmp(cmd, "get") == 0) {
		if (i == argc)
			rc = bad("get needs a key", NULL);
		else
			rc = cmd_get(c, argv + i, argc - i);
	} else if (strcmp(cmd, "set") == 0) {
		const char *key = i < argc ? argv[i++] : NULL;
		uint32_t flags = 0, exptime = 0;
		rc = 0;
		for (; rc == 0 && i < argc; i++) {
			const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
			if ((strcmp(a, "--flags") == 0 || strcmp(a, "--exptime") == 0) &&
			    next != NULL && parse_uint(next, 0, UINT32_MAX, &v) == 0) {
				if (a[2] == 'f')
					flags = (uint32_t)v;
				else
					exptime = (uint32_t)v;
				i++;
			} else {
				rc = bad("set takes --flags N and --exptime N, not", a);
			}
		}
		if (rc == 0)
			rc = key == NULL ? bad("set needs a key", NULL)
					 : cmd_set(c, key, flags, exptime);
	} else if (strcmp(cmd, "delete") == 0) {
		if (argc - i != 1) {
			rc = bad("delete takes one key", NULL);
		} else if ((rc = khmc_delete(c, argv[i], strlen(argv[i]))) == KHMC_NOTFOUND) {
			fprintf(stderr, "khmc: %s: not found\n", argv[i]);
			rc = 1;
		} else if (rc != KHMC_OK) {
			rc = failed(c, "delete", rc);
		}
	} else if (strcmp(cmd, "stats") == 0) {
		rc = 0;
		for (size_t s = 0; s < khmc_server_count(c) && rc == 0; s++) {
			if (khmc_server_count(c) > 1)
				printf("%s%s\n", s ? "\n" : "", khmc_server_name(c, s));
			int r = khmc_stats(c, s, print_stat, NULL);
			if (r != KHMC_OK)
				rc = failed(c, khmc_server_name(c, s), r);
		}
	} else {
		rc = bad("unknown command", cmd);
	}
	khmc_free(c);
	return rc;
}
