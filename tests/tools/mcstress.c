/* mcstress: correctness of gets under concurrent change, as memcached
 * clients see it (tests/e2e/mcrdma.sh).  Setter threads store values that
 * carry their own key, a sequence number and a checksum (sizes from a few
 * bytes to 200 KB, so the server evicts and its table grows), and delete
 * some keys; getter threads get random keys (one-sided with -r) and check
 * every value: it must be one that was set for that key, whole.
 *
 *   mcstress [-r IFACE|auto] SERVERS KEYS SECONDS GETTERS SETTERS
 *   mcstress [-r IFACE|auto] SERVERS fresh ROUNDS
 *
 * fresh: one client stores (set, delete, flush_all) and another gets right
 * after each store returned: it must see that store, never an older value,
 * though its copy of the server's table was made before.  Prints "fresh
 * rounds=N stale=S onesided=O"; exit status 1 when anything was stale.
 *
 * Prints "gets=N hits=H bad=B sets=S deletes=D onesided=O retries=R
 * fallbacks=F"; exit status 1 when a get returned anything wrong. */
#include "mc/khmc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *servers, *rdma;
static uint64_t nkeys;
static volatile int stop;
static uint64_t gets, hits, bad, sets, deletes;
static struct khmc_rdma_stats rs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint32_t
sum(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static struct khmc *
client(void)
{
	struct khmc *c = khmc_new();
	if (c == NULL || khmc_add_servers(c, servers) != KHMC_OK ||
	    (rdma && khmc_use_rdma(c, strcmp(rdma, "auto") ? rdma : NULL) != KHMC_OK)) {
		fprintf(stderr, "mcstress: cannot make a client\n");
		exit(2);
	}
	return c;
}

/* A value: "KEY SEQ LEN SUM|" then LEN payload bytes. */
static size_t
make_value(char *buf, const char *key, uint64_t seq, size_t len)
{
	char *p = buf + 128;
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('A' + (seq * 31 + i * 7) % 26);
	int h =
	    snprintf(buf, 128, "%s %llu %zu %08x|", key, (unsigned long long)seq, len, sum(p, len));
	memmove(buf + h, p, len);
	return (size_t)h + len;
}

struct got {
	const char *key;
	int found, bad;
	char why[160];
};

static void
check(void *arg, size_t i, const char *v, size_t vlen, uint32_t flags, uint64_t cas)
{
	struct got *g = arg;
	char key[64];
	unsigned long long seq;
	size_t len;
	unsigned s;
	int off = 0;
	(void)i;
	(void)flags;
	(void)cas;
	g->found = 1;
	char head[128];
	size_t hl = vlen < sizeof(head) - 1 ? vlen : sizeof(head) - 1;
	memcpy(head, v, hl);
	head[hl] = '\0';
	if (sscanf(head, "%63s %llu %zu %x|%n", key, &seq, &len, &s, &off) != 4 || off == 0 ||
	    strcmp(key, g->key) != 0 || (size_t)off + len != vlen || sum(v + off, len) != s) {
		g->bad = 1;
		snprintf(g->why, sizeof(g->why), "key %s got %zu bytes: %.60s", g->key, vlen, head);
	}
}

static void *
getter(void *arg)
{
	uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 7, n = 0, h = 0, b = 0;
	struct khmc *c = client();
	char key[64];
	while (!stop) {
		int kl = snprintf(key, sizeof(key), "stress:%llu",
				  (unsigned long long)(rnd(&s) % nkeys));
		const char *kp = key;
		size_t klen = (size_t)kl;
		struct got g = {key, 0, 0, ""};
		if (khmc_mget(c, &kp, &klen, 1, check, &g) != KHMC_OK)
			continue;
		n++;
		h += (uint64_t)g.found;
		if (g.bad) {
			b++;
			if (b < 5)
				fprintf(stderr, "mcstress: BAD %s\n", g.why);
		}
	}
	struct khmc_rdma_stats st;
	khmc_rdma_stats(c, &st);
	pthread_mutex_lock(&lock);
	gets += n;
	hits += h;
	bad += b;
	rs.hits += st.hits;
	rs.retries += st.retries;
	rs.fallbacks += st.fallbacks;
	pthread_mutex_unlock(&lock);
	khmc_free(c);
	return NULL;
}

static void *
setter(void *arg)
{
	uint64_t s = (uint64_t)(uintptr_t)arg * 0x2545f4914f6cdd1dull + 3, n = 0, d = 0, seq = 0;
	struct khmc *c = client();
	char key[64], *buf = malloc(300000);
	while (!stop && buf) {
		int kl = snprintf(key, sizeof(key), "stress:%llu",
				  (unsigned long long)(rnd(&s) % nkeys));
		uint64_t r = rnd(&s) % 100;
		if (r < 10) {
			khmc_delete(c, key, (size_t)kl);
			d++;
			continue;
		}
		size_t len = r < 95 ? rnd(&s) % 3000 : 50000 + rnd(&s) % 150000;
		size_t vlen = make_value(buf, key, ++seq, len);
		if (khmc_set(c, key, (size_t)kl, buf, vlen, 0, 0) == KHMC_OK)
			n++;
	}
	pthread_mutex_lock(&lock);
	sets += n;
	deletes += d;
	pthread_mutex_unlock(&lock);
	free(buf);
	khmc_free(c);
	return NULL;
}

struct fresh {
	const char *want; /* NULL: a miss */
	int ok;
};

static void
fresh_cb(void *arg, size_t i, const char *v, size_t vlen, uint32_t flags, uint64_t cas)
{
	struct fresh *f = arg;
	(void)i;
	(void)flags;
	(void)cas;
	f->ok = f->want && strlen(f->want) == vlen && memcmp(f->want, v, vlen) == 0 ? 1 : -1;
}

static int
fresh(int rounds)
{
	struct khmc *w = client(), *r = client();
	char key[32], val[64];
	int stale = 0;
	uint64_t s = 12345;
	for (int n = 0; n < rounds; n++) {
		int kl =
		    snprintf(key, sizeof(key), "fresh:%llu", (unsigned long long)(rnd(&s) % 16));
		uint64_t op = rnd(&s) % 100;
		const char *want = val;
		if (op < 80) {
			snprintf(val, sizeof(val), "value %d of %s", n, key);
			if (khmc_set(w, key, (size_t)kl, val, strlen(val), 0, 0) != KHMC_OK)
				return 2;
		} else if (op < 98) {
			khmc_delete(w, key, (size_t)kl);
			want = NULL;
		} else {
			/* flush_all: everything before it is gone for every reader */
			if (khmc_set(w, key, (size_t)kl, "x", 1, 0, 0) != KHMC_OK)
				return 2;
			struct khmc *t = client();
			khmc_flush(t);
			khmc_free(t);
			want = NULL;
		}
		const char *kp = key;
		size_t klen = (size_t)kl;
		struct fresh f = {want, 0};
		if (khmc_mget(r, &kp, &klen, 1, fresh_cb, &f) != KHMC_OK)
			return 2;
		if (f.ok < 0 || (f.ok == 0 && want != NULL)) {
			if (stale++ < 5)
				fprintf(stderr, "mcstress: round %d: %s: got %s, want %s\n", n, key,
					f.ok ? "another value" : "a miss", want ? want : "a miss");
		}
	}
	struct khmc_rdma_stats st;
	khmc_rdma_stats(r, &st);
	printf("fresh rounds=%d stale=%d onesided=%llu retries=%llu\n", rounds, stale,
	       (unsigned long long)(st.hits + st.misses), (unsigned long long)st.retries);
	khmc_free(w);
	khmc_free(r);
	return stale ? 1 : 0;
}

int
main(int argc, char **argv)
{
	int i = 1;
	if (argc > 2 && strcmp(argv[1], "-r") == 0) {
		rdma = argv[2];
		i = 3;
	}
	if (argc - i == 3 && strcmp(argv[i + 1], "fresh") == 0) {
		servers = argv[i];
		return fresh(atoi(argv[i + 2]));
	}
	if (argc - i != 5) {
		fprintf(stderr,
			"usage: mcstress [-r IFACE|auto] SERVERS KEYS SECONDS GETTERS SETTERS\n");
		return 2;
	}
	servers = argv[i];
	nkeys = strtoull(argv[i + 1], NULL, 10);
	int secs = atoi(argv[i + 2]), ng = atoi(argv[i + 3]), ns = atoi(argv[i + 4]);
	if (nkeys == 0 || secs <= 0 || ng < 0 || ns < 0 || ng + ns > 64)
		return 2;
	pthread_t t[64];
	for (int k = 0; k < ns; k++)
		pthread_create(&t[k], NULL, setter, (void *)(uintptr_t)(k + 1));
	for (int k = 0; k < ng; k++)
		pthread_create(&t[ns + k], NULL, getter, (void *)(uintptr_t)(k + 100));
	struct timespec ts = {secs, 0};
	nanosleep(&ts, NULL);
	stop = 1;
	for (int k = 0; k < ns + ng; k++)
		pthread_join(t[k], NULL);
	printf("gets=%llu hits=%llu bad=%llu sets=%llu deletes=%llu onesided=%llu retries=%llu "
	       "fallbacks=%llu\n",
	       (unsigned long long)gets, (unsigned long long)hits, (unsigned long long)bad,
	       (unsigned long long)sets, (unsigned long long)deletes, (unsigned long long)rs.hits,
	       (unsigned long long)rs.retries, (unsigned long long)rs.fallbacks);
	return bad ? 1 : 0;
}
