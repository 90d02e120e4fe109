/* console: control channels.
 *
 * Each attached client is a reader.  Its input is cut into lines once, and
 * each line runs on every target monitor; a booted target gets the raw
 * bytes on its console instead.  When a line leaves monitors waiting for
 * mrw data, the reader switches to bulk mode: the next COUNT bytes are
 * collected once into one buffer, become one content-addressed blob, and
 * are mapped into every waiting node's memory (one extent each).  A load
 * to 1000 nodes therefore costs one copy, not 1000.
 *
 * A client that sends an mrw line and disconnects before any of the bytes
 * (the original khdo sends the line and the bytes over two ssh sessions)
 * leaves an orphan: the nodes keep waiting, the next client writing to
 * them supplies the bytes, and the load timeout still runs.
 *
 * Output from nodes goes to every reader of the channel, raw or as
 * "[rank] line" lines.  Each reader's buffer is bounded: a reader that does
 * not keep up loses bytes (counted and reported to it), never slows the
 * nodes or other readers. */
#include "console/console.h"
#include "allocator/alloc.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "firmware/fw.h"
#include "khd/khd.h"
#include "khd/machine.h"
#include "khd/meter.h"
#include "memory/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTLINE_MAX 4096 /* a longer output line is cut for prefixed readers */

struct reader {
	struct reader *next, *prev;
	struct khd *k;
	struct conn *conn;
	int chan, mode, ro;
	int orphan;	    /* conn gone: kept only for a load waiting for its bytes */
	int *ranks, nranks; /* write targets; NULL: every node of the channel */
	struct sbuf line;
	int overlong; /* dropping the rest of a line past FW_LINE_MAX */
	/* bulk mrw */
	int bulk;
	uint64_t need, got;
	char *buf;
	int *pend, npend;
	uint64_t timer;
	uint64_t dropped;
};

static void
send_bytes(struct reader *r, const char *p, size_t n)
{
	if (r->conn == NULL)
		return;
	size_t room = conn_room(r->conn);
	if (r->dropped && room > n + 64) {
		char note[64];
		int l = snprintf(note, sizeof(note), "\r\n[khd: %llu bytes dropped]\r\n",
				 (unsigned long long)r->dropped);
		conn_send(r->conn, note, (size_t)l);
		r->dropped = 0;
		room = conn_room(r->conn);
	}
	if (room >= n)
		conn_send(r->conn, p, n);
	else
		r->dropped += n;
}

static int
targets(struct reader *r, const struct node *n)
{
	if (n->chan != r->chan)
		return 0;
	if (r->ranks == NULL)
		return 1;
	for (int i = 0; i < r->nranks; i++)
		if (r->ranks[i] == n->rank)
			return 1;
	return 0;
}

struct reader *
console_attach(struct khd *k, struct conn *conn, int chan, int mode, int readonly, const int *ranks,
	       int n)
{
	struct reader *r = calloc(1, sizeof(*r));
	if (r == NULL)
		fatal("console");
	r->k = k;
	r->conn = conn;
	r->chan = chan;
	r->mode = mode;
	r->ro = readonly;
	if (ranks) {
		r->ranks = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
		if (r->ranks == NULL)
			fatal("console");
		memcpy(r->ranks, ranks, sizeof(int) * (size_t)n);
		r->nranks = n;
	}
	sbuf_init(&r->line);
	r->next = k->readers;
	if (k->readers)
		k->readers->prev = r;
	k->readers = r;
	return r;
}

static void bulk_finish(struct reader *r, int ok, const char *why);
static void bulk_timeout(struct ev *ev, void *arg);

static void
reader_free(struct khd *k, struct reader *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		k->readers = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->timer)
		ev_cancel(k->ev, r->timer);
	sbuf_free(&r->line);
	free(r->buf);
	free(r->pend);
	free(r->ranks);
	free(r);
}

void
console_detach(struct khd *k, struct reader *r)
{
	r->conn = NULL;
	if (r->bulk && r->got == 0 && r->npend > 0) {
		/* Not one byte yet: the nodes wait for another client. */
		r->orphan = 1;
		return;
	}
	if (r->bulk)
		bulk_finish(r, 0, "channel closed");
	reader_free(k, r);
}

/* A client writes to nodes an orphan left waiting: it takes the load over. */
static void
adopt(struct khd *k, struct reader *r)
{
	for (struct reader *o = k->readers; o; o = o->next) {
		if (!o->orphan || o->chan != r->chan)
			continue;
		int mine = 1;
		for (int i = 0; i < o->npend && mine; i++) {
			struct node *n = o->pend[i] < 0 ? NULL : fac_node(&k->fac, o->pend[i]);
			mine = n == NULL || targets(r, n);
		}
		if (!mine)
			continue;
		r->bulk = 1;
		r->need = o->need;
		r->got = 0;
		r->buf = o->buf;
		r->pend = o->pend;
		r->npend = o->npend;
		o->buf = NULL;
		o->pend = NULL;
		o->npend = 0;
		o->bulk = 0;
		reader_free(k, o);
		r->timer = ev_after(k->ev, k->load_timeout_ms, bulk_timeout, r);
		return;
	}
}

static void
bulk_timeout(struct ev *ev, void *arg)
{
	struct reader *r = arg;
	(void)ev;
	r->timer = 0;
	bulk_finish(r, 0, "timed out");
	if (r->orphan && !r->bulk)
		reader_free(r->k, r);
}

/* After a line or a load: do target monitors wait for data?  Then collect
 * it once for all of them. */
static void
bulk_start(struct reader *r)
{
	struct khd *k = r->k;
	uint64_t addr, count, need = 0;
	int n = 0;

	for (int i = 0; i < k->fac.nnodes; i++) {
		struct machine *m = machine_of(k, k->fac.nodes[i].rank);
		if (m && targets(r, &k->fac.nodes[i]) && fw_mrw_pending(m->fw, &addr, &count)) {
			if (n == 0)
				need = count;
			n++;
		}
	}
	if (n == 0)
		return;
	r->pend = malloc(sizeof(int) * (size_t)n);
	if (r->pend == NULL)
		fatal("console");
	r->npend = 0;
	for (int i = 0; i < k->fac.nnodes; i++) {
		struct machine *m = machine_of(k, k->fac.nodes[i].rank);
		if (m && targets(r, &k->fac.nodes[i]) && fw_mrw_pending(m->fw, NULL, NULL))
			r->pend[r->npend++] = m->rank;
	}
	r->bulk = 1;
	r->need = need;
	r->got = 0;
	/* need is bounded by the monitor: never beyond the node's memory */
	r->buf = need ? malloc(need) : NULL;
	if (need && r->buf == NULL) {
		bulk_finish(r, 0, "out of memory");
		return;
	}
	if (need == 0) {
		bulk_finish(r, 1, NULL);
		return;
	}
	r->timer = ev_after(k->ev, k->load_timeout_ms, bulk_timeout, r);
}

static void
bulk_finish(struct reader *r, int ok, const char *why)
{
	struct khd *k = r->k;
	struct blob *b = NULL;
	uint64_t addr, count;

	if (r->timer)
		ev_cancel(k->ev, r->timer);
	r->timer = 0;
	if (ok && r->need > 0) {
		b = blob_take(k->blobs, r->buf, r->need);
		r->buf = NULL;
		if (b == NULL) {
			ok = 0;
			why = "out of memory";
		}
	}
	free(r->buf);
	r->buf = NULL;
	r->bulk = 0;
	int *pend = r->pend, npend = r->npend;
	r->pend = NULL;
	r->npend = 0;
	for (int i = 0; i < npend; i++) {
		struct machine *m = machine_of(k, pend[i]);
		if (m == NULL || !fw_mrw_pending(m->fw, &addr, &count))
			continue;
		meter_console(k, pend[i], r->got, 0); /* the bytes it was sent, stored once */
		if (ok && count == r->need && (b == NULL || mem_map_blob(m->mem, addr, b) == 0))
			fw_mrw_done(m->fw, 1, count, NULL);
		else
			fw_mrw_done(m->fw, 0, ok ? 0 : r->got,
				    ok ? (count != r->need ? "the channel carried a different count"
							   : "write to memory failed")
				       : why);
	}
	if (b)
		blob_unref(b);
	free(pend);
	/* The rest of a line may have started another load. */
	if (npend > 0 && (r->conn != NULL || r->orphan))
		bulk_start(r);
}

static void
run_line(struct reader *r)
{
	struct khd *k = r->k;
	size_t len = r->line.len;

	while (len > 0 && (r->line.s[len - 1] == '\n' || r->line.s[len - 1] == '\r'))
		len--;
	for (int i = 0; i < k->fac.nnodes; i++) {
		struct node *n = &k->fac.nodes[i];
		struct machine *m;
		if (!targets(r, n) || (m = machine_of(k, n->rank)) == NULL || m->running)
			continue;
		meter_console(k, n->rank, r->line.len, 0);
		fw_input_line(m->fw, r->line.s ? r->line.s : "", len);
	}
	sbuf_reset(&r->line);
	bulk_start(r);
}

void
console_input(struct khd *k, struct reader *r, const char *p, size_t n)
{
	if (r->ro)
		return;
	if (!r->bulk && r->line.len == 0 && n > 0)
		adopt(k, r);
	while (n > 0) {
		if (r->bulk) {
			uint64_t want = r->need - r->got;
			size_t take = (uint64_t)n < want ? n : (size_t)want;
			memcpy(r->buf + r->got, p, take);
			r->got += take;
			p += take;
			n -= take;
			ev_cancel(k->ev, r->timer);
			r->timer = ev_after(k->ev, k->load_timeout_ms, bulk_timeout, r);
			if (r->got == r->need)
				bulk_finish(r, 1, NULL);
			continue;
		}
		const char *nl = memchr(p, '\n', n);
		size_t chunk = nl ? (size_t)(nl - p) + 1 : n;
		for (int i = 0; i < k->fac.nnodes; i++) {
			struct machine *m;
			if (targets(r, &k->fac.nodes[i]) &&
			    (m = machine_of(k, k->fac.nodes[i].rank)) != NULL && m->running)
				machine_console_write(m, p, chunk);
		}
		/* Keep one byte more than a monitor accepts, so it says "too long". */
		if (r->line.len + chunk <= FW_LINE_MAX + 2)
			sbuf_add(&r->line, p, chunk);
		else if (r->line.len < FW_LINE_MAX + 2)
			sbuf_add(&r->line, p, FW_LINE_MAX + 2 - r->line.len);
		if (nl)
			run_line(r);
		p += chunk;
		n -= chunk;
	}
}

void
console_output(struct khd *k, int rank, const char *p, size_t n)
{
	struct node *nd = fac_node(&k->fac, rank);
	struct machine *m = machine_of(k, rank);
	int prefixed = 0;

	if (nd == NULL || nd->chan == 0)
		return;
	meter_console(k, rank, 0, n);
	for (struct reader *r = k->readers; r; r = r->next)
		if (r->chan == nd->chan && r->conn != NULL) {
			if (r->mode == CON_RAW)
				send_bytes(r, p, n);
			else
				prefixed = 1;
		}
	if (m == NULL)
		return;
	if (!prefixed) {
		/* No one reads lines now, but the next line must start clean:
		 * not with what a node printed before its reset. */
		const char *nl = memrchr(p, '\n', n);
		if (nl != NULL) {
			sbuf_reset(&m->outline);
			n -= (size_t)(nl + 1 - p);
			p = nl + 1;
		}
		for (size_t i = 0; i < n; i++) {
			if (m->outline.len >= OUTLINE_MAX)
				sbuf_reset(&m->outline);
			if (p[i] != '\r')
				sbuf_add(&m->outline, p + i, 1);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n' && m->outline.len < OUTLINE_MAX) {
			/* The run up to the next newline, \r or the line's limit,
			 * in one append (output can be megabytes a command). */
			size_t j = i, room = OUTLINE_MAX - m->outline.len;
			while (j < n && j - i < room && p[j] != '\n' && p[j] != '\r')
				j++;
			if (j > i) {
				sbuf_add(&m->outline, p + i, j - i);
				i = j - 1;
			}
			continue;
		}
		/* The line is made once, then sent to every prefixed reader. */
		struct sbuf l;
		sbuf_init(&l);
		sbuf_printf(&l, "[%d] ", rank);
		sbuf_add(&l, m->outline.s ? m->outline.s : "", m->outline.len);
		sbuf_add(&l, "\n", 1);
		for (struct reader *r = k->readers; r; r = r->next)
			if (r->chan == nd->chan && r->mode == CON_PREFIX)
				send_bytes(r, l.s, l.len);
		sbuf_free(&l);
		sbuf_reset(&m->outline);
		if (p[i] != '\n') /* cut an over-long line, keep the byte */
			sbuf_add(&m->outline, p + i, 1);
	}
}

void
console_forget(struct khd *k, int rank)
{
	struct reader *next;

	for (struct reader *r = k->readers; r; r = next) {
		int left = 0;
		next = r->next;
		for (int i = 0; i < r->npend; i++) {
			if (r->pend[i] == rank)
				r->pend[i] = -1;
			left += r->pend[i] >= 0;
		}
		/* khd stopping, or the nodes released: nobody waits any more. */
		if (r->orphan && left == 0)
			reader_free(k, r);
	}
}
