/* khmc_ketama: which server a key goes to, the way libmemcached 1.x
 * (Debian's libmemcached11) decides it, so that khmc and programs linked
 * with libmemcached agree (tests/unit/test_mcketama.c compares them):
 *
 *  - a server is named "host-N" on the ring when its port is 11211, else
 *    "host:port-N" (N = 0, 1, ...);
 *  - KHMC_DIST_KETAMA (MEMCACHED_BEHAVIOR_KETAMA): 100 points per server,
 *    each the one-at-a-time hash of a name; keys hashed the same way;
 *  - KHMC_DIST_KETAMA_MD5 (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, equal
 *    weights): floor(1/n * 160/4 * n) * 4 points per server (computed in
 *    float, as there), four from each name's MD5 digest; keys by MD5;
 *  - a key goes to the first point at or after its hash, wrapping around;
 *  - KHMC_DIST_MODULA: one-at-a-time hash modulo the number of servers. */
#include "mc/khmc_int.h"

#include <stdio.h>
#include <stdlib.h>

uint32_t
khmc_one_at_a_time(const char *p, size_t n)
{
	uint32_t v = 0;

	/* libhashkit adds each byte as a (signed) char */
	for (size_t i = 0; i < n; i++) {
		v += (uint32_t)(int32_t)(signed char)p[i];
		v += v << 10;
		v ^= v >> 6;
	}
	v += v << 3;
	v ^= v >> 11;
	v += v << 15;
	return v;
}

static uint32_t
md5_point(const unsigned char *d, int k)
{
	return (uint32_t)d[3 + 4 * k] << 24 | (uint32_t)d[2 + 4 * k] << 16 |
	       (uint32_t)d[1 + 4 * k] << 8 | d[4 * k];
}

static uint32_t
key_hash(const struct khmc *c, const char *key, size_t klen)
{
	unsigned char d[16];

	if (c->dist != KHMC_DIST_KETAMA_MD5)
		return khmc_one_at_a_time(key, klen);
	khmc_md5(key, klen, d);
	return md5_point(d, 0);
}

static int
cmp_point(const void *a, const void *b)
{
	const struct khmc_point *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

int
khmc_ring_build(struct khmc *c)
{
	size_t n = c->nservers;

	free(c->points);
	c->points = NULL;
	c->npoints = 0;
	if (n == 0 || c->dist == KHMC_DIST_MODULA)
		return KHMC_OK;
	uint32_t per = 100, perhash = 1;
	if (c->dist == KHMC_DIST_KETAMA_MD5) {
		/* libmemcached's arithmetic, float for float; the value is
		 * positive, so truncation is its floor(). */
		float pct = 1.0f / (float)n;
		float f = pct * 160 / 4 * (float)n + 0.0000000001F;
		per = (uint32_t)f * 4;
		perhash = 4;
	}
	c->points = calloc(n * per, sizeof(*c->points));
	if (c->points == NULL)
		return KHMC_NOMEM;
	for (size_t s = 0; s < n; s++) {
		for (uint32_t i = 0; i < per / perhash; i++) {
			char name[KHMC_NAME_MAX + 16];
			int len = snprintf(name, sizeof(name), "%s-%u", c->servers[s].ring, i);
			if (perhash == 1) {
				c->points[c->npoints].index = (uint32_t)s;
				c->points[c->npoints++].value =
				    khmc_one_at_a_time(name, (size_t)len);
				continue;
			}
			unsigned char d[16];
			khmc_md5(name, (size_t)len, d);
			for (int k = 0; k < 4; k++) {
				c->points[c->npoints].index = (uint32_t)s;
				c->points[c->npoints++].value = md5_point(d, k);
			}
		}
	}
	qsort(c->points, c->npoints, sizeof(*c->points), cmp_point);
	return KHMC_OK;
}

size_t
khmc_server_for(const struct khmc *c, const char *key, size_t klen)
{
	if (c->nservers <= 1)
		return 0;
	uint32_t h = key_hash(c, key, klen);
	if (c->dist == KHMC_DIST_MODULA)
		return h % c->nservers;
	size_t lo = 0, hi = c->npoints;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->points[mid].value < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return c->points[lo == c->npoints ? 0 : lo].index;
}
