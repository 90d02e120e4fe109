/* kv: ebbkv's door (the memcached text protocol on every core's loop),
 * its elasticity controller, and the other nodes' side. */
#include "ebbkv/kv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/counter.h"
#include "ebb/ebb.h"
#include "ebb/ht.h"

#define KV_TABLE EBB_ID(0, 256) /* the door's first EBB: the table */
#define INMAX	 (2u << 20)
#define TICK_MS	 250

/* A client's connection: what it sent, from start to inlen (a command
 * that is not all there yet stays at start; need is what it needs then),
 * and what it is answered, sent once per read. */
struct kconn {
	int fd, core;
	int oom;
	char *in;
	size_t start, inlen, incap, need;
	char *out;
	size_t outlen, outcap;
};

static struct kv {
	const struct kv_conf *c;
	ebb_id table, reqs, fails;
	int lfd;
	int next_core;
	uint16_t members[1024];
	size_t nmembers;
	uint16_t next_node;
	struct nodealloc *alloc;
	volatile int stop;
} K;

/* Room for n more bytes of answer; NULL (and the connection is closed
 * after this read) when memory ran out. */
static char *
outroom(struct kconn *k, size_t n)
{
	if (k->outlen + n > k->outcap) {
		size_t cap = k->outcap ? k->outcap : 4096;
		while (cap < k->outlen + n)
			cap *= 2;
		char *o = realloc(k->out, cap);
		if (o == NULL) {
			k->oom = 1;
			return NULL;
		}
		k->out = o;
		k->outcap = cap;
	}
	return k->out + k->outlen;
}

static void
outadd(struct kconn *k, const void *p, size_t n)
{
	char *o = outroom(k, n);
	if (o == NULL)
		return;
	memcpy(o, p, n);
	k->outlen += n;
}

static void
outs(struct kconn *k, const char *s)
{
	outadd(k, s, strlen(s));
}

/* v in decimal at o; returns the digits' count. */
static size_t
utoa(char *o, uint64_t v)
{
	char t[20];
	size_t n = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		o[i] = t[n - 1 - i];
	return n;
}

/* Flush what is queued; a client that does not read for 5 s is dropped. */
static int
flush(struct kconn *k)
{
	size_t off = 0;
	while (off < k->outlen) {
		ssize_t w = send(k->fd, k->out + off, k->outlen - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		struct pollfd p = {.fd = k->fd, .events = POLLOUT};
		if (w < 0 && errno == EAGAIN && poll(&p, 1, 5000) == 1)
			continue;
		return -1;
	}
	k->outlen = 0;
	return 0;
}

static void
kconn_close(struct kconn *k)
{
	ebb_unwatch(EBB_HERE, k->fd);
	close(k->fd);
	free(k->in);
	free(k->out);
	free(k);
}

/* A token of a command line, in place (the line is not changed: a set
 * whose data is not all there yet is parsed again later). */
struct tok {
	const char *p;
	size_t n;
};

static int
tokens(const char *line, size_t len, struct tok *tok, int max)
{
	int n = 0;
	size_t i = 0;
	while (i < len && n < max) {
		while (i < len && line[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t b = i;
		while (i < len && line[i] != ' ')
			i++;
		tok[n++] = (struct tok){line + b, i - b};
	}
	return n;
}

static int
tok_is(const struct tok *t, const char *s)
{
	size_t n = strlen(s);
	return t->n == n && memcmp(t->p, s, n) == 0;
}

/* A decimal number of at most 20 digits, at most max. */
static int
tok_uint(const struct tok *t, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (t->n == 0 || t->n > 20)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		unsigned d = (unsigned)(t->p[i] - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* A get's value, straight from the table into the answer (under the
 * table's lock: it only copies): "VALUE key flags bytes [cas]\r\n", the
 * bytes, "\r\n".  The stored value is the flags (4 bytes) then the data. */
struct getans {
	struct kconn *k;
	const struct tok *key;
	int cas;
};

static void
get_sink(void *arg, const void *v, size_t vl)
{
	struct getans *g = arg;
	if (vl < 4)
		return;
	uint32_t flags;
	memcpy(&flags, v, 4);
	char *o = outroom(g->k, g->key->n + vl + 64);
	if (o == NULL)
		return;
	char *p = o;
	memcpy(p, "VALUE ", 6);
	p += 6;
	memcpy(p, g->key->p, g->key->n);
	p += g->key->n;
	*p++ = ' ';
	p += utoa(p, flags);
	*p++ = ' ';
	p += utoa(p, vl - 4);
	if (g->cas) {
		memcpy(p, " 0", 2);
		p += 2;
	}
	memcpy(p, "\r\n", 2);
	p += 2;
	memcpy(p, (const char *)v + 4, vl - 4);
	p += vl - 4;
	memcpy(p, "\r\n", 2);
	p += 2;
	g->k->outlen += (size_t)(p - o);
}

static void
found_sink(void *arg, const void *v, size_t vl)
{
}

/* One command at k->in + k->start.  Returns the bytes it used, 0 when
 * more are needed (k->need: how many, from start), -1 to close. */
static long
command(struct kconn *k)
{
	const char *in = k->in + k->start;
	size_t avail = k->inlen - k->start;
	const char *nl = memchr(in, '\n', avail);
	if (nl == NULL)
		return avail > 2048 ? -1 : 0;
	size_t ll = (size_t)(nl - in) + 1;
	size_t cl = ll - 1;
	if (cl > 0 && in[cl - 1] == '\r')
		cl--;
	if (cl >= 2048) {
		outs(k, "CLIENT_ERROR line too long\r\n");
		return (long)ll;
	}
	struct tok tok[32];
	int nt = tokens(in, cl, tok, 32);
	if (nt == 0) {
		outs(k, "ERROR\r\n");
		return (long)ll;
	}
	counter_inc(K.reqs);
	const struct tok *cmd = &tok[0];
	int gets = tok_is(cmd, "gets");
	if (gets || tok_is(cmd, "get")) {
		for (int i = 1; i < nt; i++) {
			if (tok[i].n > HT_KEY_MAX) {
				outs(k, "CLIENT_ERROR bad command line format\r\n");
				return (long)ll;
			}
			struct getans g = {k, &tok[i], gets};
			if (ht_get_to(K.table, tok[i].p, tok[i].n, get_sink, &g) < 0) {
				counter_inc(K.fails);
				outs(k, "SERVER_ERROR the store did not answer\r\n");
				return (long)ll;
			}
		}
		outs(k, "END\r\n");
		return (long)ll;
	}
	int set = tok_is(cmd, "set"), add = tok_is(cmd, "add");
	if (set || add || tok_is(cmd, "replace")) {
		uint64_t flags, exptime, bytes;
		int noreply = nt == 6 && tok_is(&tok[5], "noreply");
		if ((nt != 5 && !noreply) || tok[1].n > HT_KEY_MAX ||
		    tok_uint(&tok[2], UINT32_MAX, &flags) < 0 ||
		    tok_uint(&tok[3], UINT32_MAX, &exptime) < 0 ||
		    tok_uint(&tok[4], INMAX, &bytes) < 0) {
			outs(k, "CLIENT_ERROR bad command line format\r\n");
			return (long)ll;
		}
		if (avail < ll + bytes + 2) {
			k->need = ll + bytes + 2;
			return avail > INMAX + 4096 ? -1 : 0;
		}
		const char *data = in + ll;
		if (data[bytes] != '\r' || data[bytes + 1] != '\n') {
			outs(k, "CLIENT_ERROR bad data chunk\r\n");
			return (long)(ll + bytes + 2);
		}
		if (bytes + 4 > HT_VAL_MAX) {
			outs(k, "SERVER_ERROR object too large for cache\r\n");
			return (long)(ll + bytes + 2);
		}
		int store = 1;
		if (!set) {
			/* add and replace look first; two clients racing on one
			 * key may both store (no compare-and-swap in the table) */
			int rc = ht_get_to(K.table, tok[1].p, tok[1].n, found_sink, NULL);
			store = rc >= 0 && (add == (rc == 1));
		}
		int rc = 0;
		if (store) {
			uint32_t f = (uint32_t)flags;
			rc = ht_set2(K.table, tok[1].p, tok[1].n, &f, 4, data, bytes);
		}
		if (rc < 0)
			counter_inc(K.fails);
		if (!noreply)
			outs(k, rc < 0	? "SERVER_ERROR the store did not answer\r\n"
				: store ? "STORED\r\n"
					: "NOT_STORED\r\n");
		return (long)(ll + bytes + 2);
	}
	if (tok_is(cmd, "delete") && (nt == 2 || nt == 3)) {
		int rc = ht_del(K.table, tok[1].p, tok[1].n);
		if (rc < 0)
			counter_inc(K.fails);
		if (nt == 2)
			outs(k, rc < 0	  ? "SERVER_ERROR the store did not answer\r\n"
				: rc == 0 ? "DELETED\r\n"
					  : "NOT_FOUND\r\n");
		return (long)ll;
	}
	if (tok_is(cmd, "version")) {
		outs(k, "VERSION 1.6.0-ebbkv\r\n");
		return (long)ll;
	}
	if (tok_is(cmd, "stats")) {
		char b[256];
		snprintf(b, sizeof(b),
			 "STAT nodes %zu\r\nSTAT requests %lld\r\nSTAT failed %lld\r\nEND\r\n",
			 K.nmembers, (long long)counter_local(K.reqs),
			 (long long)counter_local(K.fails));
		outs(k, b);
		return (long)ll;
	}
	if (tok_is(cmd, "quit"))
		return -1;
	outs(k, "ERROR\r\n");
	return (long)ll;
}

/* Readable: read once, answer every whole command, send the answers in
 * one write.  A read that filled the buffer is followed by another; one
 * that did not has emptied the socket, so the loop waits again (epoll is
 * level-triggered) instead of paying a read that finds nothing. */
static void
kconn_event(void *arg, uint32_t events)
{
	struct kconn *k = arg;
	for (;;) {
		if (k->start > 0) {
			memmove(k->in, k->in + k->start, k->inlen - k->start);
			k->inlen -= k->start;
			k->start = 0;
		}
		size_t want = k->inlen + 4096 > k->need ? k->inlen + 4096 : k->need;
		if (want > k->incap) {
			size_t cap = k->incap ? k->incap : 16384;
			while (cap < want)
				cap *= 2;
			char *in = realloc(k->in, cap);
			if (in == NULL) {
				kconn_close(k);
				return;
			}
			k->in = in;
			k->incap = cap;
		}
		size_t room = k->incap - k->inlen;
		ssize_t r = recv(k->fd, k->in + k->inlen, room, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			kconn_close(k);
			return;
		}
		if (r < 0)
			return;
		k->inlen += (size_t)r;
		k->need = 0;
		long n = 0;
		while (k->start < k->inlen && (n = command(k)) > 0)
			k->start += (size_t)n;
		if (k->start == k->inlen)
			k->start = k->inlen = 0;
		if (n < 0 || k->oom) {
			flush(k);
			kconn_close(k);
			return;
		}
		if (flush(k) < 0) {
			kconn_close(k);
			return;
		}
		if ((size_t)r < room)
			return;
	}
}

static void
accept_event(void *arg, uint32_t events)
{
	int fd;
	while ((fd = accept4(K.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct kconn *k = calloc(1, sizeof(*k));
		if (k == NULL) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		k->fd = fd;
		k->core = K.next_core++ % (int)ebb_cores();
		if (ebb_watch(k->core, fd, EPOLLIN, kconn_event, k) < 0) {
			close(fd);
			free(k);
		}
	}
}

/* ---- elasticity ---- */

static uint64_t
ms_since(uint64_t t)
{
	return (now_ns() - t) / 1000000;
}

static void
grow(void)
{
	int k = K.c->grow_step > 0 ? K.c->grow_step : 1;
	if (k > K.c->max_nodes - (int)K.nmembers)
		k = K.c->max_nodes - (int)K.nmembers;
	if (k < 1)
		return;
	uint16_t first = (uint16_t)(K.next_node + 1);
	char(*addrs)[64] = calloc((size_t)k, sizeof(*addrs));
	char err[256];
	uint64_t t0 = now_ns();
	if (addrs == NULL)
		return;
	K.next_node = (uint16_t)(K.next_node + k);
	if (k == 1)
		fprintf(stderr, "ebbkv: grow: need more, asking for node %u\n", first);
	else
		fprintf(stderr, "ebbkv: grow: need more, asking for nodes %u-%u\n", first,
			first + k - 1);
	if (nodealloc_grow_many(K.alloc, first, k, addrs, err, sizeof(err)) < 0) {
		fprintf(stderr, "ebbkv: grow: %s\n", err);
		free(addrs);
		return;
	}
	uint64_t t1 = now_ns();
	for (int i = 0; i < k; i++) {
		ebb_node_addr((uint16_t)(first + i), addrs[i]);
		K.members[K.nmembers + (size_t)i] = (uint16_t)(first + i);
	}
	if (ht_switch(K.table, HT_PARTITIONED, K.members, K.nmembers + (size_t)k) < 0) {
		fprintf(stderr, "ebbkv: grow: moving keys to nodes %u-%u failed\n", first,
			first + k - 1);
		for (int i = 0; i < k; i++) {
			nodealloc_shrink(K.alloc, (uint16_t)(first + i));
			ebb_node_forget((uint16_t)(first + i));
		}
		free(addrs);
		return;
	}
	K.nmembers += (size_t)k;
	if (k == 1)
		fprintf(stderr, "ebbkv: grow: node %u at %s serves a share of the keys: ", first,
			addrs[0]);
	else
		fprintf(stderr,
			"ebbkv: grow: nodes %u-%u at %s... serve a share of the keys: ", first,
			first + k - 1, addrs[0]);
	fprintf(stderr,
		"%llu ms (node up %llu ms, keys moved %llu ms); %zu nodes, %zu keys here%s%s%s\n",
		(unsigned long long)ms_since(t0), (unsigned long long)((t1 - t0) / 1000000),
		(unsigned long long)ms_since(t1), K.nmembers, ht_local_count(K.table),
		*nodealloc_steps(K.alloc) ? " (" : "", nodealloc_steps(K.alloc),
		*nodealloc_steps(K.alloc) ? ")" : "");
	free(addrs);
}

static void
shrink(void)
{
	if (K.nmembers <= 1)
		return;
	uint16_t n = K.members[K.nmembers - 1];
	uint64_t t0 = now_ns();
	if (ht_switch(K.table, HT_PARTITIONED, K.members, K.nmembers - 1) < 0) {
		fprintf(stderr, "ebbkv: shrink: moving node %u's keys failed\n", n);
		return;
	}
	K.nmembers--;
	nodealloc_shrink(K.alloc, n);
	ebb_node_forget(n);
	fprintf(stderr, "ebbkv: shrink: node %u given back in %llu ms; %zu nodes, %zu keys here\n",
		n, (unsigned long long)ms_since(t0), K.nmembers, ht_local_count(K.table));
}

static void *
controller(void *arg)
{
	int64_t last = counter_local(K.reqs);
	int hot = 0, cold = 0;
	while (!K.stop) {
		usleep(TICK_MS * 1000);
		int64_t now = counter_local(K.reqs);
		double rps = (double)(now - last) * 1000.0 / TICK_MS / (double)K.nmembers;
		last = now;
		hot = rps > K.c->grow_rps ? hot + 1 : 0;
		cold = rps < K.c->shrink_rps ? cold + 1 : 0;
		if (K.c->grow_rps > 0 && hot >= 2 && (int)K.nmembers < K.c->max_nodes) {
			grow();
			hot = 0;
			last = counter_local(K.reqs);
		} else if (K.c->grow_rps > 0 && cold >= 8 && K.nmembers > 1) {
			shrink();
			cold = 0;
			last = counter_local(K.reqs);
		}
	}
	return NULL;
}

static int
wait_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int sig;
	sigwait(&set, &sig);
	return sig;
}

int
kv_run(const struct kv_conf *c, char *err, size_t errlen)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the runtime's threads inherit it */
	signal(SIGPIPE, SIG_IGN);
	memset(&K, 0, sizeof(K));
	K.c = c;
	K.lfd = -1;
	struct ebb_conf ec = {.cores = c->cores, .node = c->node, .listen = c->msg, .pin = c->pin};
	if (ebb_init(&ec, err, errlen) < 0)
		return -1;
	if (ht_register() < 0 || counter_register() < 0) {
		ebb_fini();
		return seterr(err, errlen, "cannot register the EBB types");
	}
	if (c->node != 0) {
		/* a node that holds entries: the door installs its share */
		if (c->home == NULL || ebb_node_addr(0, c->home) < 0) {
			ebb_fini();
			return seterr(err, errlen,
				      "node %u: --home IP:PORT of the door's messenger", c->node);
		}
		fprintf(stderr, "ebbkv: node %u serving the door's table on %s\n", c->node, c->msg);
		/* The door learns that this node is up from its hello (the
		 * door dialling nodes still booting took ~1 s more for 64). */
		for (int t = 0; ebb_node_connect(0) < 0; t++) {
			if (t == 500) { /* 10 s: as long as the door waits */
				fprintf(stderr, "ebbkv: node %u: the door at %s does not answer\n",
					c->node, c->home);
				break;
			}
			usleep(20000);
		}
		/* Its root of the door's table is made now (a miss to the
		 * door), not by the install the door sends it while it holds
		 * the table still: one round trip less then. */
		(void)ht_epoch(KV_TABLE);
		wait_signal();
		ebb_fini();
		return 0;
	}
	K.table = ht_new(HT_PARTITIONED);
	K.reqs = counter_new();
	K.fails = counter_new();
	if (K.table != KV_TABLE || K.reqs == 0 || K.fails == 0) {
		ebb_fini();
		return seterr(err, errlen, "cannot make the table");
	}
	K.members[0] = 0;
	K.nmembers = 1;
	if (c->grow_rps > 0 && (K.alloc = nodealloc_new(&c->alloc, err, errlen)) == NULL) {
		ebb_fini();
		return -1;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
	if (inet_pton(AF_INET, c->listen ? c->listen : "0.0.0.0", &sa.sin_addr) != 1) {
		seterr(err, errlen, "bad listen address %s", c->listen);
		goto fail;
	}
	K.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (K.lfd < 0 || setsockopt(K.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(K.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(K.lfd, 1024) < 0) {
		seterr(err, errlen, "port %d: %s", c->port, strerror(errno));
		goto fail;
	}
	if (ebb_watch(0, K.lfd, EPOLLIN, accept_event, NULL) < 0) {
		seterr(err, errlen, "cannot watch the door");
		goto fail;
	}
	pthread_t th;
	pthread_create(&th, NULL, controller, NULL);
	fprintf(stderr, "ebbkv: door on port %d, messenger on %s, %u cores\n", c->port, c->msg,
		ebb_cores());
	wait_signal();
	K.stop = 1;
	pthread_join(th, NULL);
	/* the other nodes go first; their keys with them (the service stops) */
	while (K.nmembers > 1) {
		nodealloc_shrink(K.alloc, K.members[--K.nmembers]);
	}
	nodealloc_free(K.alloc);
	ebb_fini();
	close(K.lfd);
	return 0;
fail:
	if (K.lfd >= 0)
		close(K.lfd);
	nodealloc_free(K.alloc);
	ebb_fini();
	return -1;
}
