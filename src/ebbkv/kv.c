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

struct kconn {
	int fd, core;
	char *in;
	size_t inlen, incap;
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

static void
outadd(struct kconn *k, const void *p, size_t n)
{
	if (k->outlen + n > k->outcap) {
		size_t cap = k->outcap ? k->outcap : 4096;
		while (cap < k->outlen + n)
			cap *= 2;
		char *o = realloc(k->out, cap);
		if (o == NULL)
			return;
		k->out = o;
		k->outcap = cap;
	}
	memcpy(k->out + k->outlen, p, n);
	k->outlen += n;
}

static void
outs(struct kconn *k, const char *s)
{
	outadd(k, s, strlen(s));
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

static int
tokens(char *line, char **tok, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *s = strtok_r(line, " ", &save); s && n < max; s = strtok_r(NULL, " ", &save))
		tok[n++] = s;
	return n;
}

/* One command at the start of k->in.  Returns the bytes it used, 0 when
 * more are needed, -1 to close. */
static long
command(struct kconn *k)
{
	char *nl = memchr(k->in, '\n', k->inlen);
	if (nl == NULL)
		return k->inlen > 2048 ? -1 : 0;
	size_t ll = (size_t)(nl - k->in) + 1;
	char line[2048];
	size_t cl = ll - 1;
	if (cl > 0 && k->in[cl - 1] == '\r')
		cl--;
	if (cl >= sizeof(line)) {
		outs(k, "CLIENT_ERROR line too long\r\n");
		return (long)ll;
	}
	memcpy(line, k->in, cl);
	line[cl] = '\0';
	char *tok[32];
	int nt = tokens(line, tok, 32);
	if (nt == 0) {
		outs(k, "ERROR\r\n");
		return (long)ll;
	}
	counter_inc(K.reqs);
	const char *cmd = tok[0];
	if (strcmp(cmd, "get") == 0 || strcmp(cmd, "gets") == 0) {
		for (int i = 1; i < nt; i++) {
			size_t kl = strlen(tok[i]);
			if (kl > HT_KEY_MAX) {
				outs(k, "CLIENT_ERROR bad command line format\r\n");
				return (long)ll;
			}
			void *v = NULL;
			size_t vl = 0;
			int rc = ht_get(K.table, tok[i], kl, &v, &vl);
			if (rc < 0) {
				counter_inc(K.fails);
				outs(k, "SERVER_ERROR the store did not answer\r\n");
				return (long)ll;
			}
			if (rc == 0 && vl >= 4) {
				uint32_t flags;
				memcpy(&flags, v, 4);
				char h[400];
				int hl = cmd[3] == 's'
					     ? snprintf(h, sizeof(h), "VALUE %s %u %zu 0\r\n",
							tok[i], flags, vl - 4)
					     : snprintf(h, sizeof(h), "VALUE %s %u %zu\r\n", tok[i],
							flags, vl - 4);
				outadd(k, h, (size_t)hl);
				outadd(k, (char *)v + 4, vl - 4);
				outs(k, "\r\n");
			}
			free(v);
		}
		outs(k, "END\r\n");
		return (long)ll;
	}
	if (strcmp(cmd, "set") == 0 || strcmp(cmd, "add") == 0 || strcmp(cmd, "replace") == 0) {
		uint64_t flags, exptime, bytes;
		int noreply = nt == 6 && strcmp(tok[5], "noreply") == 0;
		if ((nt != 5 && !noreply) || strlen(tok[1]) > HT_KEY_MAX ||
		    parse_uint(tok[2], 0, UINT32_MAX, &flags) < 0 ||
		    parse_uint(tok[3], 0, UINT32_MAX, &exptime) < 0 ||
		    parse_uint(tok[4], 0, INMAX, &bytes) < 0) {
			outs(k, "CLIENT_ERROR bad command line format\r\n");
			return (long)ll;
		}
		if (k->inlen < ll + bytes + 2)
			return k->inlen > INMAX + 4096 ? -1 : 0;
		const char *data = k->in + ll;
		if (data[bytes] != '\r' || data[bytes + 1] != '\n') {
			outs(k, "CLIENT_ERROR bad data chunk\r\n");
			return (long)(ll + bytes + 2);
		}
		if (bytes + 4 > HT_VAL_MAX) {
			outs(k, "SERVER_ERROR object too large for cache\r\n");
			return (long)(ll + bytes + 2);
		}
		int store = 1;
		if (cmd[0] != 's') {
			/* add and replace look first; two clients racing on one
			 * key may both store (no compare-and-swap in the table) */
			void *v = NULL;
			size_t vl;
			int rc = ht_get(K.table, tok[1], strlen(tok[1]), &v, &vl);
			free(v);
			store = rc >= 0 && ((cmd[0] == 'a') == (rc == 1));
		}
		int rc = 0;
		if (store) {
			char *b = malloc(bytes + 4);
			uint32_t f = (uint32_t)flags;
			if (b == NULL) {
				rc = -1;
			} else {
				memcpy(b, &f, 4);
				memcpy(b + 4, data, bytes);
				rc = ht_set(K.table, tok[1], strlen(tok[1]), b, bytes + 4);
				free(b);
			}
		}
		if (rc < 0)
			counter_inc(K.fails);
		if (!noreply)
			outs(k, rc < 0	? "SERVER_ERROR the store did not answer\r\n"
				: store ? "STORED\r\n"
					: "NOT_STORED\r\n");
		return (long)(ll + bytes + 2);
	}
	if (strcmp(cmd, "delete") == 0 && (nt == 2 || nt == 3)) {
		int rc = ht_del(K.table, tok[1], strlen(tok[1]));
		if (rc < 0)
			counter_inc(K.fails);
		if (nt == 2)
			outs(k, rc < 0	  ? "SERVER_ERROR the store did not answer\r\n"
				: rc == 0 ? "DELETED\r\n"
					  : "NOT_FOUND\r\n");
		return (long)ll;
	}
	if (strcmp(cmd, "version") == 0) {
		outs(k, "VERSION 1.6.0-ebbkv\r\n");
		return (long)ll;
	}
	if (strcmp(cmd, "stats") == 0) {
		char b[256];
		snprintf(b, sizeof(b),
			 "STAT nodes %zu\r\nSTAT requests %lld\r\nSTAT failed %lld\r\nEND\r\n",
			 K.nmembers, (long long)counter_local(K.reqs),
			 (long long)counter_local(K.fails));
		outs(k, b);
		return (long)ll;
	}
	if (strcmp(cmd, "quit") == 0)
		return -1;
	outs(k, "ERROR\r\n");
	return (long)ll;
}

static void
kconn_event(void *arg, uint32_t events)
{
	struct kconn *k = arg;
	for (;;) {
		if (k->incap - k->inlen < 65536) {
			size_t cap = k->incap ? k->incap * 2 : 131072;
			char *in = realloc(k->in, cap);
			if (in == NULL) {
				kconn_close(k);
				return;
			}
			k->in = in;
			k->incap = cap;
		}
		ssize_t r = recv(k->fd, k->in + k->inlen, k->incap - k->inlen, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			kconn_close(k);
			return;
		}
		if (r < 0)
			break;
		k->inlen += (size_t)r;
		size_t off = 0;
		for (;;) {
			/* command() looks at k->in from its start */
			if (off > 0) {
				memmove(k->in, k->in + off, k->inlen - off);
				k->inlen -= off;
				off = 0;
			}
			long n = command(k);
			if (n < 0) {
				flush(k);
				kconn_close(k);
				return;
			}
			if (n == 0)
				break;
			off = (size_t)n;
		}
		if (flush(k) < 0) {
			kconn_close(k);
			return;
		}
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
	struct ebb_conf ec = {.cores = c->cores, .node = c->node, .listen = c->msg};
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
