/* metrics: GET /metrics over HTTP/1.x.  Each client sends one request and
 * gets one reply, then the connection closes (Connection: close), which is
 * all a scraper needs.  Nothing here blocks: a client that sends nothing
 * for 5 s, or more than 8 KiB of head, is dropped. */
#include "khd/metrics.h"
#include "rdma/rdma.h"
#include "allocator/facility.h"
#include "common/log.h"
#include "common/util.h"
#include "khd/khd.h"
#include "khd/meter.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MC_MAX	   64
#define MC_IDLE_MS 5000

struct mconn {
	struct metrics *mx;
	int fd;
	char in[METRICS_HEAD_MAX];
	size_t inlen;
	struct sbuf out;
	size_t off;
	uint64_t timer;
	struct mconn *next, *prev;
};

struct metrics {
	struct khd *k;
	int fd;
	struct mconn *conns;
	int nconns;
	uint64_t scrapes;
};

/* How a resource class is exposed. */
static const struct {
	const char *cls, *unit, *qual;
	unsigned long long mul, div;
} expose[] = {
    {"node-time", "seconds", "type", 1, 1000}, {"cpu", "seconds", NULL, 1, 1000000},
    {"mem", "byte_seconds", NULL, 1024, 1},    {"net-rx", "bytes", "netid", 1, 1},
    {"net-tx", "bytes", "netid", 1, 1},	       {"net-rxpk", "packets", "netid", 1, 1},
    {"net-txpk", "packets", "netid", 1, 1},    {"console-in", "bytes", NULL, 1, 1},
    {"console-out", "bytes", NULL, 1, 1},      {"rdma-rd", "bytes", "netid", 1, 1},
    {"rdma-wr", "bytes", "netid", 1, 1},       {"rdma-ops", "operations", "netid", 1, 1},
};

static void
usage_samples(struct sbuf *out, const char *principal, const struct usage *u, int peaks)
{
	char cls[USAGE_NAME_MAX];
	for (size_t i = 0; i < u->n; i++) {
		const char *res = u->items[i].res, *colon = strchr(res, ':');
		size_t n = colon ? (size_t)(colon - res) : strlen(res);
		memcpy(cls, res, n);
		cls[n] = '\0';
		if (peaks) {
			if (strcmp(cls, "mem-peak") != 0)
				continue;
			sbuf_adds(out, "kh_usage_mem_peak_bytes{principal=");
			metrics_label(out, principal);
			sbuf_printf(out, "} %llu\n", (unsigned long long)u->items[i].qty);
			continue;
		}
		for (size_t e = 0; e < sizeof(expose) / sizeof(expose[0]); e++) {
			if (strcmp(expose[e].cls, cls) != 0 ||
			    (colon != NULL) != (expose[e].qual != NULL))
				continue;
			sbuf_adds(out, "kh_usage_total{principal=");
			metrics_label(out, principal);
			sbuf_adds(out, ",resource=");
			metrics_label(out, cls);
			if (colon) {
				sbuf_printf(out, ",%s=", expose[e].qual);
				metrics_label(out, colon + 1);
			}
			sbuf_printf(out, ",unit=\"%s\"} ", expose[e].unit);
			metrics_value(out, u->items[i].qty, expose[e].mul, expose[e].div);
			sbuf_adds(out, "\n");
		}
	}
}

void
metrics_render(struct khd *k, struct sbuf *out)
{
	static const char *const states[] = {"free", "monitor", "running"};
	struct facility *f = &k->fac;

	sbuf_adds(out,
		  "# TYPE kh_nodes gauge\n"
		  "# HELP kh_nodes Nodes by type and state (allocated: monitor or running).\n");
	for (int t = 0; t < f->ntypes; t++) {
		int count[3] = {0, 0, 0};
		for (int i = 0; i < f->nnodes; i++)
			if (f->nodes[i].type == t && f->nodes[i].state >= 0 &&
			    f->nodes[i].state < 3)
				count[f->nodes[i].state]++;
		for (int s = 0; s < 3; s++) {
			sbuf_adds(out, "kh_nodes{type=");
			metrics_label(out, f->types[t].name);
			sbuf_printf(out, ",state=\"%s\"} %d\n", states[s], count[s]);
		}
	}
	sbuf_printf(out,
		    "# TYPE kh_clients gauge\n"
		    "# HELP kh_clients Connections to khd.sock (and its ssh socket).\n"
		    "kh_clients %d\n"
		    "# TYPE kh_clients_max gauge\n"
		    "# HELP kh_clients_max Connections khd takes before reclaiming idle ones.\n"
		    "kh_clients_max %d\n"
		    "# TYPE kh_clients_reaped counter\n"
		    "# HELP kh_clients_reaped Stalled or idle connections closed by khd.\n"
		    "kh_clients_reaped_total %llu\n",
		    k->nconns, k->conn_max, (unsigned long long)k->conns_reaped);
	sbuf_printf(out,
		    "# TYPE kh_nodes_adopted gauge\n"
		    "# HELP kh_nodes_adopted Running nodes this khd took over from an earlier one "
		    "at start.\n"
		    "kh_nodes_adopted %d\n"
		    "# TYPE kh_console_lost_bytes counter\n"
		    "# HELP kh_console_lost_bytes Console output of adopted nodes printed while no "
		    "khd ran (read and dropped by the console holder).\n"
		    "kh_console_lost_bytes_total %llu\n",
		    k->adopted, (unsigned long long)k->console_lost);
	sbuf_printf(out,
		    "# TYPE kh_principals gauge\n"
		    "# HELP kh_principals Principals known to the facility.\n"
		    "kh_principals %d\n",
		    f->nprincipals);
	sbuf_adds(out, "# TYPE kh_usage counter\n"
		       "# HELP kh_usage Usage charged to each principal by committed ledger "
		       "records.\n");
	for (int p = 0; p < f->nprincipals; p++) {
		const struct usage *u = meter_total(k, p);
		if (u)
			usage_samples(out, f->principals[p].name, u, 0);
	}
	sbuf_adds(out, "# TYPE kh_usage_mem_peak_bytes gauge\n"
		       "# HELP kh_usage_mem_peak_bytes Highest memory of one node of each "
		       "principal in any sample.\n");
	for (int p = 0; p < f->nprincipals; p++) {
		const struct usage *u = meter_total(k, p);
		if (u)
			usage_samples(out, f->principals[p].name, u, 1);
	}
	const struct meter_stats *ms = meter_stats(k);
	if (ms) {
		sbuf_printf(out,
			    "# TYPE kh_meter_tick_seconds summary\n"
			    "# HELP kh_meter_tick_seconds Time khd spent in each sample tick.\n"
			    "kh_meter_tick_seconds_count %llu\n"
			    "kh_meter_tick_seconds_sum ",
			    (unsigned long long)ms->ticks);
		metrics_value(out, ms->tick_ns_sum, 1, 1000000000ULL);
		sbuf_adds(out,
			  "\n# TYPE kh_meter_read_seconds counter\n"
			  "# HELP kh_meter_read_seconds Of the ticks' time, reading the nodes' "
			  "counters.\n"
			  "kh_meter_read_seconds_total ");
		metrics_value(out, ms->read_ns_sum, 1, 1000000000ULL);
		sbuf_adds(out, "\n# TYPE kh_meter_tick_last_seconds gauge\n"
			       "# HELP kh_meter_tick_last_seconds The last tick's time.\n"
			       "kh_meter_tick_last_seconds ");
		metrics_value(out, ms->tick_ns_last, 1, 1000000000ULL);
		sbuf_adds(out, "\n# TYPE kh_meter_tick_max_seconds gauge\n"
			       "# HELP kh_meter_tick_max_seconds The longest tick since khd "
			       "started.\n"
			       "kh_meter_tick_max_seconds ");
		metrics_value(out, ms->tick_ns_max, 1, 1000000000ULL);
		sbuf_printf(out,
			    "\n# TYPE kh_meter_nodes gauge\n"
			    "# HELP kh_meter_nodes Nodes sampled by the last tick.\n"
			    "kh_meter_nodes %llu\n"
			    "# TYPE kh_meter_records counter\n"
			    "# HELP kh_meter_records Ledger records written since khd started.\n"
			    "kh_meter_records_total %llu\n"
			    "# TYPE kh_meter_store_errors counter\n"
			    "# HELP kh_meter_store_errors Ticks whose transaction failed.\n"
			    "kh_meter_store_errors_total %llu\n",
			    (unsigned long long)ms->nodes_last, (unsigned long long)ms->records,
			    (unsigned long long)ms->store_errors);
	}
	struct re_stats rs;
	rdma_stats(k->rdma, &rs);
	static const char *const opn[] = {"malformed", "read", "write", "cas", "fadd"};
	sbuf_adds(out, "# TYPE kh_rdma_operations counter\n"
		       "# HELP kh_rdma_operations One-sided operations the RDMA engine "
		       "completed, by opcode.\n");
	for (int i = 0; i < 5; i++)
		sbuf_printf(out, "kh_rdma_operations_total{op=\"%s\"} %llu\n", opn[i],
			    (unsigned long long)rs.ops[i]);
	sbuf_printf(out,
		    "# TYPE kh_rdma_bytes counter\n"
		    "# HELP kh_rdma_bytes Bytes the RDMA engine moved for reads and writes.\n"
		    "kh_rdma_bytes_total{dir=\"read\"} %llu\n"
		    "kh_rdma_bytes_total{dir=\"write\"} %llu\n"
		    "# TYPE kh_rdma_errors counter\n"
		    "# HELP kh_rdma_errors Operations that completed with an error.\n"
		    "kh_rdma_errors_total %llu\n"
		    "# TYPE kh_rdma_wakeups counter\n"
		    "# HELP kh_rdma_wakeups Times the engine left its sleep.\n"
		    "kh_rdma_wakeups_total %llu\n"
		    "# TYPE kh_rdma_contexts gauge\n"
		    "# HELP kh_rdma_contexts Device contexts open in nodes.\n"
		    "kh_rdma_contexts %llu\n"
		    "# TYPE kh_rdma_regions gauge\n"
		    "# HELP kh_rdma_regions Memory regions registered now.\n"
		    "kh_rdma_regions %llu\n"
		    "# TYPE kh_rdma_region_bytes gauge\n"
		    "# HELP kh_rdma_region_bytes Bytes of the registered regions.\n"
		    "kh_rdma_region_bytes %llu\n",
		    (unsigned long long)rs.bytes_rd, (unsigned long long)rs.bytes_wr,
		    (unsigned long long)rs.errors, (unsigned long long)rs.wakeups,
		    (unsigned long long)rs.contexts, (unsigned long long)rs.regions,
		    (unsigned long long)rs.reg_bytes);
	sbuf_adds(out, "# EOF\n");
}

static void mconn_event(struct ev *ev, int fd, int events, void *arg);

static void
mconn_free(struct mconn *c)
{
	struct metrics *mx = c->mx;
	if (c->timer)
		ev_cancel(mx->k->ev, c->timer);
	ev_unwatch(mx->k->ev, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		mx->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	mx->nconns--;
	sbuf_free(&c->out);
	free(c);
}

static void
mconn_idle(struct ev *ev, void *arg)
{
	struct mconn *c = arg;
	(void)ev;
	c->timer = 0;
	mconn_free(c);
}

static void
reply(struct mconn *c, const char *status, const char *ctype, const char *body, size_t blen,
      int head_only)
{
	sbuf_printf(&c->out,
		    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n",
		    status, ctype, blen);
	if (!head_only)
		sbuf_add(&c->out, body, blen);
}

static void
answer(struct mconn *c, const char *method, const char *path)
{
	static const char text[] = "text/plain; charset=utf-8";
	int head = strcmp(method, "HEAD") == 0;
	size_t pl = strcspn(path, "?");

	if (strcmp(method, "GET") != 0 && !head) {
		reply(c, "405 Method Not Allowed", text, "only GET\n", 9, 0);
		return;
	}
	if (pl != 8 || strncmp(path, "/metrics", 8) != 0) {
		reply(c, "404 Not Found", text, "try /metrics\n", 13, head);
		return;
	}
	struct sbuf body;
	sbuf_init(&body);
	metrics_render(c->mx->k, &body);
	reply(c, "200 OK", METRICS_CTYPE, body.s, body.len, head);
	sbuf_free(&body);
	c->mx->scrapes++;
}

static int
mconn_flush(struct mconn *c)
{
	while (c->off < c->out.len) {
		ssize_t n = send(c->fd, c->out.s + c->off, c->out.len - c->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->off += (size_t)n;
	}
	return 1; /* all sent */
}

static void
mconn_event(struct ev *ev, int fd, int events, void *arg)
{
	struct mconn *c = arg;
	char method[16], path[256];

	if (c->out.len == 0 && (events & EV_READ)) {
		ssize_t n = recv(fd, c->in + c->inlen, sizeof(c->in) - c->inlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			mconn_free(c);
			return;
		}
		if (n > 0)
			c->inlen += (size_t)n;
		int r = metrics_parse_request(c->in, c->inlen, method, sizeof(method), path,
					      sizeof(path));
		if (r == 0)
			return;
		if (r < 0)
			reply(c, "400 Bad Request", "text/plain; charset=utf-8", "bad request\n",
			      12, 0);
		else
			answer(c, method, path);
	}
	if (c->out.len == 0)
		return;
	int f = mconn_flush(c);
	if (f != 0) {
		if (f > 0)
			shutdown(fd, SHUT_WR);
		mconn_free(c);
		return;
	}
	ev_watch(ev, fd, EV_WRITE, mconn_event, c);
}

static void
accept_event(struct ev *ev, int fd, int events, void *arg)
{
	struct metrics *mx = arg;
	(void)events;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("metrics: accept");
			return;
		}
		if (mx->nconns >= MC_MAX) {
			close(cfd);
			continue;
		}
		struct mconn *c = calloc(1, sizeof(*c));
		if (c == NULL)
			fatal("metrics");
		c->mx = mx;
		c->fd = cfd;
		sbuf_init(&c->out);
		c->next = mx->conns;
		if (mx->conns)
			mx->conns->prev = c;
		mx->conns = c;
		mx->nconns++;
		c->timer = ev_after(ev, MC_IDLE_MS, mconn_idle, c);
		ev_watch(ev, cfd, EV_READ, mconn_event, c);
	}
}

int
metrics_start(struct khd *k, const struct metrics_conf *conf, char *err, size_t errlen)
{
	const char *addr = conf->listen ? conf->listen : "127.0.0.1";
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				 .ai_socktype = SOCK_STREAM},
			*ai;
	char port[8];
	int fd = -1, one = 1, rc;

	if (conf->port <= 0)
		return 0;
	snprintf(port, sizeof(port), "%d", conf->port);
	if ((rc = getaddrinfo(addr, port, &hints, &ai)) != 0)
		return seterr(err, errlen, "--metrics-listen: '%.64s' is not a numeric address",
			      addr);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return seterr(err, errlen, "metrics: cannot listen on %s port %d: %s", addr,
			      conf->port, strerror(e));
	}
	freeaddrinfo(ai);
	struct metrics *mx = calloc(1, sizeof(*mx));
	if (mx == NULL)
		fatal("metrics");
	mx->k = k;
	mx->fd = fd;
	if (ev_watch(k->ev, fd, EV_READ, accept_event, mx) < 0) {
		close(fd);
		free(mx);
		return seterr(err, errlen, "metrics: cannot watch the socket");
	}
	k->metrics = mx;
	log_info("metrics: OpenMetrics on http://%s%s%s:%d/metrics", strchr(addr, ':') ? "[" : "",
		 addr, strchr(addr, ':') ? "]" : "", conf->port);
	return 0;
}

void
metrics_stop(struct khd *k)
{
	struct metrics *mx = k->metrics;
	if (mx == NULL)
		return;
	while (mx->conns)
		mconn_free(mx->conns);
	ev_unwatch(k->ev, mx->fd);
	close(mx->fd);
	free(mx);
	k->metrics = NULL;
}
