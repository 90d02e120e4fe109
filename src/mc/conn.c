/* conn: a connection's input and output buffers (conn.h).  Output segments
 * keep the order of replies; bytes written in a row by the protocol share
 * one segment, so a pipeline of small replies goes out in one write. */
#include "mc/conn.h"

#include <stdlib.h>
#include <string.h>

#define OBUF_INIT 4096u
#define SEG_INIT  64u

int
mc_conn_init(struct mc_conn *c, int fd, struct mc_ctx *ctx, struct mc_tstats *st)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->ctx = ctx;
	c->st = st;
	c->rsize = MC_RBUF_SIZE;
	c->rbuf = malloc(c->rsize);
	c->osize = OBUF_INIT;
	c->obuf = malloc(c->osize);
	c->segcap = SEG_INIT;
	c->seg = malloc(c->segcap * sizeof(*c->seg));
	if (c->rbuf == NULL || c->obuf == NULL || c->seg == NULL) {
		mc_conn_release(c);
		return -1;
	}
	return 0;
}

void
mc_conn_release(struct mc_conn *c)
{
	if (c->item != NULL && c->ctx != NULL)
		mc_item_discard(c->ctx->cache, c->item);
	c->item = NULL;
	for (size_t i = c->seg_sent; c->seg != NULL && i < c->nseg; i++)
		if (c->seg[i].ch != NULL)
			mc_release(c->ctx->cache, c->seg[i].ch);
	free(c->rbuf);
	free(c->obuf);
	free(c->seg);
	c->rbuf = c->obuf = NULL;
	c->seg = NULL;
	c->nseg = c->seg_sent = 0;
}

static struct mc_seg *
new_seg(struct mc_conn *c)
{
	if (c->nseg == c->segcap) {
		size_t cap = c->segcap * 2;
		struct mc_seg *s = realloc(c->seg, cap * sizeof(*s));
		if (s == NULL)
			return NULL;
		c->seg = s;
		c->segcap = cap;
	}
	return &c->seg[c->nseg++];
}

void
mc_out(struct mc_conn *c, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (c->olen + n > c->osize) {
		size_t sz = c->osize;
		while (sz < c->olen + n)
			sz *= 2;
		char *b = realloc(c->obuf, sz);
		if (b == NULL) {
			c->state = MC_CONN_CLOSE;
			return;
		}
		c->obuf = b;
		c->osize = sz;
	}
	memcpy(c->obuf + c->olen, p, n);
	struct mc_seg *last = c->nseg > c->seg_sent ? &c->seg[c->nseg - 1] : NULL;
	if (last != NULL && last->ch == NULL && last->p == NULL &&
	    last->off + last->len == c->olen) {
		last->len += (uint32_t)n;
	} else {
		struct mc_seg *s = new_seg(c);
		if (s == NULL) {
			c->state = MC_CONN_CLOSE;
			return;
		}
		*s = (struct mc_seg){.off = (uint32_t)c->olen, .len = (uint32_t)n};
	}
	c->olen += n;
	c->opending += n;
}

void
mc_out_str(struct mc_conn *c, const char *s)
{
	if (c->noreply)
		return;
	mc_out_err(c, s);
}

void
mc_out_err(struct mc_conn *c, const char *s)
{
	size_t n = strlen(s);
	mc_out(c, s, n);
	mc_out(c, "\r\n", 2);
}

void
mc_out_value(struct mc_conn *c, struct mc_chunk *ch)
{
	const struct mc_item *it = mc_chunk_item(ch);
	const char *v = mc_item_key(it) + it->key_len;

	if (it->value_len <= MC_COPY_MAX) {
		mc_out(c, v, it->value_len);
		mc_release(c->ctx->cache, ch);
		return;
	}
	struct mc_seg *s = new_seg(c);
	if (s == NULL) {
		mc_release(c->ctx->cache, ch);
		c->state = MC_CONN_CLOSE;
		return;
	}
	*s = (struct mc_seg){.p = v, .ch = ch, .len = it->value_len};
	c->opending += it->value_len;
}

void
mc_out_mark(const struct mc_conn *c, struct mc_outmark *m)
{
	m->nseg = c->nseg;
	m->olen = c->olen;
	m->opending = c->opending;
	m->lastlen = c->nseg > c->seg_sent ? c->seg[c->nseg - 1].len : 0;
}

void
mc_out_rollback(struct mc_conn *c, const struct mc_outmark *m)
{
	for (size_t i = m->nseg; i < c->nseg; i++)
		if (c->seg[i].ch != NULL)
			mc_release(c->ctx->cache, c->seg[i].ch);
	c->nseg = m->nseg;
	if (c->nseg > c->seg_sent)
		c->seg[c->nseg - 1].len = (uint32_t)m->lastlen;
	c->olen = m->olen;
	c->opending = m->opending;
}

char *
mc_utoa(uint64_t v, char *p)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

int
mc_conn_iov(struct mc_conn *c, struct iovec *iov, int n)
{
	int k = 0;

	for (size_t i = c->seg_sent; i < c->nseg && k < n; i++, k++) {
		const struct mc_seg *s = &c->seg[i];
		const char *p = s->p ? s->p : c->obuf + s->off;
		size_t skip = i == c->seg_sent ? c->seg_off : 0;
		iov[k].iov_base = (void *)(p + skip);
		iov[k].iov_len = s->len - skip;
	}
	return k;
}

void
mc_conn_sent(struct mc_conn *c, size_t n)
{
	c->opending -= n;
	while (n > 0 && c->seg_sent < c->nseg) {
		struct mc_seg *s = &c->seg[c->seg_sent];
		size_t left = s->len - c->seg_off;
		if (n < left) {
			c->seg_off += n;
			return;
		}
		n -= left;
		if (s->ch != NULL)
			mc_release(c->ctx->cache, s->ch);
		c->seg_sent++;
		c->seg_off = 0;
	}
	if (c->seg_sent == c->nseg) {
		c->seg_sent = c->nseg = 0;
		c->olen = 0;
		c->seg_off = 0;
	}
}

int
mc_conn_full(const struct mc_conn *c)
{
	return c->opending > MC_OUT_HIGH || c->nseg - c->seg_sent > MC_SEG_HIGH;
}

char *
mc_conn_rspace(struct mc_conn *c, size_t *n)
{
	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (c->rstart > 0 && c->rsize - c->rend < c->rsize / 4) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	if (c->rend == c->rsize && c->rstart == 0 && c->rsize < MC_GETLINE_MAX + MC_RBUF_SIZE) {
		/* A long get line: memcached takes any number of keys. */
		char *b = realloc(c->rbuf, c->rsize * 2);
		if (b != NULL) {
			c->rbuf = b;
			c->rsize *= 2;
		}
	}
	*n = c->rsize - c->rend;
	return c->rbuf + c->rend;
}
