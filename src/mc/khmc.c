/* khmc: libkhmc's handle: the server list, key checks, the spread of keys
 * over servers (khmc_ketama.c) and the operations, which go to the chosen
 * server's transport (khmc_tcp.c). */
#include "mc/khmc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT 11211

struct khmc *
khmc_new(void)
{
	struct khmc *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->dist = KHMC_DIST_KETAMA;
	c->timeout_ms = 5000;
	return c;
}

void
khmc_free(struct khmc *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nservers; i++) {
		c->servers[i].get->close(&c->servers[i]);
		khmc_tcp_close(&c->servers[i]);
		free(c->servers[i].rbuf);
	}
	free(c->servers);
	free(c->points);
	free(c->wbuf);
	khmc_rdma_free(c);
	free(c);
}

int
khmc_add_server(struct khmc *c, const char *host, uint16_t port)
{
	if (host == NULL || host[0] == '\0' || strlen(host) >= sizeof(c->servers->host))
		return KHMC_INVALID;
	if (port == 0)
		port = DEFAULT_PORT;
	if (c->nservers == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4;
		struct khmc_server *s = realloc(c->servers, cap * sizeof(*s));
		if (s == NULL)
			return KHMC_NOMEM;
		c->servers = s;
		c->cap = cap;
	}
	struct khmc_server *s = &c->servers[c->nservers];
	memset(s, 0, sizeof(*s));
	snprintf(s->host, sizeof(s->host), "%s", host);
	s->port = port;
	s->fd = -1;
	s->get = &khmc_tcp;
	snprintf(s->name, sizeof(s->name), "%s:%u", host, port);
	/* libmemcached leaves the default port out of a server's ring name */
	if (port == DEFAULT_PORT)
		snprintf(s->ring, sizeof(s->ring), "%s", host);
	else
		snprintf(s->ring, sizeof(s->ring), "%s:%u", host, port);
	c->nservers++;
	int rc = khmc_ring_build(c);
	if (rc != KHMC_OK)
		c->nservers--;
	return rc;
}

int
khmc_add_servers(struct khmc *c, const char *list)
{
	const char *p = list;

	if (list == NULL || *list == '\0')
		return KHMC_INVALID;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char host[256];
		unsigned long port = 0;
		const char *colon = NULL;
		if (n == 0 || n >= sizeof(host))
			return KHMC_INVALID;
		if (p[0] == '[') { /* [v6 address]:port */
			const char *rb = memchr(p, ']', n);
			if (rb == NULL || rb == p + 1)
				return KHMC_INVALID;
			memcpy(host, p + 1, (size_t)(rb - p - 1));
			host[rb - p - 1] = '\0';
			if (rb + 1 < p + n && rb[1] == ':')
				colon = rb + 1;
			else if (rb + 1 != p + n)
				return KHMC_INVALID;
		} else {
			colon = memchr(p, ':', n);
			size_t hl = colon ? (size_t)(colon - p) : n;
			if (hl == 0)
				return KHMC_INVALID;
			memcpy(host, p, hl);
			host[hl] = '\0';
		}
		if (colon != NULL) {
			char num[8];
			size_t pl = (size_t)(p + n - colon - 1);
			char *e;
			if (pl == 0 || pl >= sizeof(num))
				return KHMC_INVALID;
			memcpy(num, colon + 1, pl);
			num[pl] = '\0';
			port = strtoul(num, &e, 10);
			if (*e != '\0' || port == 0 || port > 65535)
				return KHMC_INVALID;
		}
		int rc = khmc_add_server(c, host, (uint16_t)port);
		if (rc != KHMC_OK)
			return rc;
		p += n;
		if (*p == ',')
			p++;
	}
	return KHMC_OK;
}

int
khmc_set_distribution(struct khmc *c, enum khmc_dist d)
{
	if (d != KHMC_DIST_KETAMA && d != KHMC_DIST_KETAMA_MD5 && d != KHMC_DIST_MODULA)
		return KHMC_INVALID;
	c->dist = d;
	return khmc_ring_build(c);
}

void
khmc_set_timeout(struct khmc *c, int ms)
{
	c->timeout_ms = ms > 0 ? ms : 5000;
}

size_t
khmc_server_count(const struct khmc *c)
{
	return c->nservers;
}

const char *
khmc_server_name(const struct khmc *c, size_t i)
{
	return i < c->nservers ? c->servers[i].name : NULL;
}

int
khmc_errno(const struct khmc *c)
{
	return c->err;
}

/* memcached's keys: 1..250 bytes, none of them blank or a control byte. */
static int
key_ok(const char *key, size_t klen)
{
	if (key == NULL || klen == 0 || klen > 250)
		return 0;
	for (size_t i = 0; i < klen; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (ch <= ' ' || ch == 0x7f)
			return 0;
	}
	return 1;
}

static int
pick(struct khmc *c, const char *key, size_t klen, struct khmc_server **s)
{
	if (!key_ok(key, klen))
		return KHMC_BAD_KEY;
	if (c->nservers == 0)
		return KHMC_NO_SERVERS;
	*s = &c->servers[khmc_server_for(c, key, klen)];
	if (c->rdma && (*s)->rdma_state == 0)
		khmc_rdma_attach(c, *s);
	return KHMC_OK;
}

struct get_one {
	char *value;
	size_t vlen;
	uint32_t flags;
	uint64_t cas;
	int found, nomem;
};

static void
get_one_cb(void *arg, size_t i, const struct khmc_hit *h)
{
	struct get_one *g = arg;

	g->value = malloc(h->vlen + 1);
	if (g->value == NULL) {
		g->nomem = 1;
		return;
	}
	memcpy(g->value, h->value, h->vlen);
	g->value[h->vlen] = '\0';
	g->vlen = h->vlen;
	g->flags = h->flags;
	g->cas = h->cas;
	g->found = 1;
}

int
khmc_get(struct khmc *c, const char *key, size_t klen, char **value, size_t *vlen, uint32_t *flags,
	 uint64_t *cas)
{
	struct khmc_server *s;
	struct get_one g = {0};
	size_t idx = 0;
	int rc = pick(c, key, klen, &s);

	if (rc != KHMC_OK)
		return rc;
	rc = s->get->mget(c, s, &key, &klen, &idx, 1, get_one_cb, &g);
	if (rc != KHMC_OK) {
		free(g.value);
		return rc;
	}
	if (g.nomem)
		return KHMC_NOMEM;
	if (!g.found)
		return KHMC_NOTFOUND;
	*value = g.value;
	if (vlen != NULL)
		*vlen = g.vlen;
	if (flags != NULL)
		*flags = g.flags;
	if (cas != NULL)
		*cas = g.cas;
	return KHMC_OK;
}

struct mget_ctx {
	khmc_result_fn *fn;
	void *arg;
};

static void
mget_cb(void *arg, size_t i, const struct khmc_hit *h)
{
	struct mget_ctx *m = arg;
	m->fn(m->arg, i, h->value, h->vlen, h->flags, h->cas);
}

int
khmc_mget(struct khmc *c, const char *const *keys, const size_t *klens, size_t n,
	  khmc_result_fn *fn, void *arg)
{
	struct mget_ctx m = {fn, arg};
	int rc = KHMC_OK;

	if (c->nservers == 0)
		return KHMC_NO_SERVERS;
	for (size_t i = 0; i < n; i++)
		if (!key_ok(keys[i], klens[i]))
			return KHMC_BAD_KEY;
	if (n == 0)
		return KHMC_OK;
	size_t *srv = malloc(n * sizeof(*srv)), *idx = malloc(n * sizeof(*idx));
	if (srv == NULL || idx == NULL) {
		free(srv);
		free(idx);
		return KHMC_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		srv[i] = khmc_server_for(c, keys[i], klens[i]);
	for (size_t s = 0; s < c->nservers && rc == KHMC_OK; s++) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (srv[i] == s)
				idx[k++] = i;
		if (k > 0 && c->rdma && c->servers[s].rdma_state == 0)
			khmc_rdma_attach(c, &c->servers[s]);
		if (k > 0)
			rc = c->servers[s].get->mget(c, &c->servers[s], keys, klens, idx, k,
						     mget_cb, &m);
	}
	free(srv);
	free(idx);
	return rc;
}

static int
store(struct khmc *c, const char *verb, const char *key, size_t klen, const void *value,
      size_t vlen, uint32_t exptime, uint32_t flags, uint64_t cas)
{
	struct khmc_server *s;
	int rc = pick(c, key, klen, &s);

	if (rc != KHMC_OK)
		return rc;
	if (s->rdma_state == 1) {
		rc = khmc_rdma_store(c, s, verb, key, klen, value, vlen, exptime, flags);
		if (rc != -1)
			return rc;
		khmc_rdma_forget(s, key, klen);
	}
	return khmc_tcp_store(c, s, verb, key, klen, value, vlen, exptime, flags, cas);
}

int
khmc_set(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
	 uint32_t exptime, uint32_t flags)
{
	return store(c, "set", key, klen, value, vlen, exptime, flags, 0);
}

int
khmc_add(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
	 uint32_t exptime, uint32_t flags)
{
	return store(c, "add", key, klen, value, vlen, exptime, flags, 0);
}

int
khmc_replace(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
	     uint32_t exptime, uint32_t flags)
{
	return store(c, "replace", key, klen, value, vlen, exptime, flags, 0);
}

int
khmc_cas(struct khmc *c, const char *key, size_t klen, const void *value, size_t vlen,
	 uint32_t exptime, uint32_t flags, uint64_t cas)
{
	return store(c, "cas", key, klen, value, vlen, exptime, flags, cas);
}

int
khmc_delete(struct khmc *c, const char *key, size_t klen)
{
	struct khmc_server *s;
	char req[300], reply[128];
	int rc = pick(c, key, klen, &s);

	if (rc != KHMC_OK)
		return rc;
	snprintf(req, sizeof(req), "delete %.*s\r\n", (int)klen, key);
	khmc_rdma_forget(s, key, klen);
	if ((rc = khmc_tcp_simple(c, s, req, reply, sizeof(reply))) != KHMC_OK)
		return rc;
	if (strcmp(reply, "DELETED") == 0)
		return KHMC_OK;
	if (strcmp(reply, "NOT_FOUND") == 0)
		return KHMC_NOTFOUND;
	return strncmp(reply, "SERVER_ERROR", 12) == 0 ? KHMC_SERVER_ERROR : KHMC_PROTOCOL;
}

static int
arith(struct khmc *c, const char *verb, const char *key, size_t klen, uint64_t delta,
      uint64_t *value)
{
	struct khmc_server *s;
	char req[320], reply[128];
	int rc = pick(c, key, klen, &s);

	if (rc != KHMC_OK)
		return rc;
	snprintf(req, sizeof(req), "%s %.*s %llu\r\n", verb, (int)klen, key,
		 (unsigned long long)delta);
	khmc_rdma_forget(s, key, klen);
	if ((rc = khmc_tcp_simple(c, s, req, reply, sizeof(reply))) != KHMC_OK)
		return rc;
	if (strcmp(reply, "NOT_FOUND") == 0)
		return KHMC_NOTFOUND;
	if (strncmp(reply, "CLIENT_ERROR", 12) == 0)
		return KHMC_CLIENT_ERROR;
	if (strncmp(reply, "SERVER_ERROR", 12) == 0)
		return KHMC_SERVER_ERROR;
	char *e;
	errno = 0;
	unsigned long long v = strtoull(reply, &e, 10);
	if (e == reply || *e != '\0' || errno != 0)
		return KHMC_PROTOCOL;
	if (value != NULL)
		*value = v;
	return KHMC_OK;
}

int
khmc_incr(struct khmc *c, const char *key, size_t klen, uint64_t delta, uint64_t *value)
{
	return arith(c, "incr", key, klen, delta, value);
}

int
khmc_decr(struct khmc *c, const char *key, size_t klen, uint64_t delta, uint64_t *value)
{
	return arith(c, "decr", key, klen, delta, value);
}

int
khmc_flush(struct khmc *c)
{
	char reply[128];
	if (c->nservers == 0)
		return KHMC_NO_SERVERS;
	for (size_t i = 0; i < c->nservers; i++) {
		int rc = khmc_tcp_simple(c, &c->servers[i], "flush_all\r\n", reply, sizeof(reply));
		if (rc != KHMC_OK)
			return rc;
		if (strcmp(reply, "OK") != 0)
			return KHMC_PROTOCOL;
		khmc_rdma_forget_all(&c->servers[i]);
	}
	return KHMC_OK;
}

int
khmc_stats(struct khmc *c, size_t i, khmc_stat_fn *fn, void *arg)
{
	if (i >= c->nservers)
		return KHMC_INVALID;
	return khmc_tcp_stats(c, &c->servers[i], fn, arg);
}

const char *
khmc_strerror(int rc)
{
	switch (rc) {
	case KHMC_OK:
		return "success";
	case KHMC_NOTFOUND:
		return "not found";
	case KHMC_NOTSTORED:
		return "not stored";
	case KHMC_EXISTS:
		return "the item changed (cas)";
	case KHMC_BAD_KEY:
		return "bad key (1-250 bytes, no blanks or control characters)";
	case KHMC_NO_SERVERS:
		return "no servers";
	case KHMC_CONNECT:
		return "cannot connect";
	case KHMC_IO:
		return "connection failed";
	case KHMC_PROTOCOL:
		return "unexpected reply";
	case KHMC_SERVER_ERROR:
		return "server error";
	case KHMC_CLIENT_ERROR:
		return "refused by the server";
	case KHMC_NOMEM:
		return "out of memory";
	case KHMC_INVALID:
		return "invalid argument";
	}
	return "unknown error";
}
