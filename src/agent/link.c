/* link: frames between the front end and an agent (link.h). */
#include "agent/link.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void
link_init(struct link *l, int fd)
{
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	sbuf_init(&l->in);
	sbuf_init(&l->out);
}

void
link_free(struct link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	sbuf_free(&l->in);
	sbuf_free(&l->out);
	l->in_off = l->out_off = 0;
}

ssize_t
link_read(struct link *l)
{
	char buf[65536];
	ssize_t total = 0;

	/* What was consumed goes before reading more. */
	if (l->in_off > 0) {
		sbuf_consume(&l->in, l->in_off);
		l->in_off = 0;
	}
	for (int i = 0; i < 64; i++) {
		ssize_t n = read(l->fd, buf, sizeof(buf));
		if (n > 0) {
			sbuf_add(&l->in, buf, (size_t)n);
			l->rx += (uint64_t)n;
			total += n;
			continue;
		}
		if (n == 0)
			return total > 0 ? total : 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return total > 0 ? total : -2;
		return -1;
	}
	return total;
}

uint32_t
link_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int
link_next(struct link *l, int *type, uint32_t *rank, const unsigned char **p, size_t *len)
{
	size_t have = l->in.len - l->in_off;

	if (l->bad)
		return -1;
	if (have < LINK_HDR)
		return 0; /* (nothing read yet: in.s may be NULL) */
	const unsigned char *h = (const unsigned char *)l->in.s + l->in_off;
	uint32_t n = link_get32(h);
	uint32_t t = link_get32(h + 4);
	l->last_type = (int)t;
	l->last_rank = link_get32(h + 8);
	l->last_len = n;
	if (n > LINK_PAYLOAD_MAX || t == 0 || t >= L_TYPES) {
		l->bad = 1;
		return -1;
	}
	if (have < LINK_HDR + (size_t)n)
		return 0;
	*type = (int)t;
	*rank = link_get32(h + 8);
	*p = h + LINK_HDR;
	*len = n;
	l->in_off += LINK_HDR + (size_t)n;
	return 1;
}

enum link_pump
link_dispatch(struct link *l, link_frame_fn fn, void *arg)
{
	const unsigned char *p;
	size_t len;
	uint32_t rank;
	int type, rc;

	while ((rc = link_next(l, &type, &rank, &p, &len)) == 1) {
		int took = fn(arg, type, rank, p, len);
		if (l->fd < 0)
			return LINK_LEFT;
		if (took < 0) {
			l->bad = 1;
			return LINK_REFUSED;
		}
	}
	return rc < 0 ? LINK_BAD : LINK_WAIT;
}

enum link_pump
link_pump(struct link *l, link_frame_fn fn, void *arg)
{
	ssize_t r = link_read(l);
	int e = errno;
	enum link_pump st = link_dispatch(l, fn, arg);
	if (st != LINK_WAIT)
		return st;
	if (r == 0)
		return LINK_EOF;
	if (r == -1) {
		errno = e;
		return LINK_ERR;
	}
	return LINK_WAIT;
}

int
link_flush(struct link *l)
{
	while (l->out_off < l->out.len) {
		ssize_t n = send(l->fd, l->out.s + l->out_off, l->out.len - l->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			l->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	if (l->out_off == l->out.len) {
		sbuf_reset(&l->out);
		l->out_off = 0;
		return 1;
	}
	/* Keep the queue from growing from the front forever. */
	if (l->out_off > (1u << 20)) {
		sbuf_consume(&l->out, l->out_off);
		l->out_off = 0;
	}
	return 0;
}

size_t
link_pending(const struct link *l)
{
	return l->out.len - l->out_off;
}

void
link_set32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

size_t
link_begin(struct link *l, int type, uint32_t rank)
{
	unsigned char h[LINK_HDR];
	size_t at = l->out.len;
	link_set32(h, 0);
	link_set32(h + 4, (uint32_t)type);
	link_set32(h + 8, rank);
	sbuf_add(&l->out, h, sizeof(h));
	return at;
}

void
link_end(struct link *l, size_t at)
{
	link_set32((unsigned char *)l->out.s + at, (uint32_t)(l->out.len - at - LINK_HDR));
}

void
put_u32(struct link *l, uint32_t v)
{
	unsigned char b[4];
	link_set32(b, v);
	sbuf_add(&l->out, b, 4);
}

void
put_u64(struct link *l, uint64_t v)
{
	put_u32(l, (uint32_t)v);
	put_u32(l, (uint32_t)(v >> 32));
}

void
put_bytes(struct link *l, const void *p, size_t n)
{
	if (n > 0)
		sbuf_add(&l->out, p, n);
}

void
put_str(struct link *l, const char *s)
{
	size_t n = strlen(s);
	put_u32(l, (uint32_t)n);
	sbuf_add(&l->out, s, n);
}

void
lget_init(struct lget *g, const unsigned char *p, size_t len)
{
	g->p = p;
	g->len = len;
	g->off = 0;
	g->bad = 0;
}

int
get_bytes(struct lget *g, void *out, size_t n)
{
	if (g->bad || n > g->len - g->off) {
		g->bad = 1;
		return -1;
	}
	memcpy(out, g->p + g->off, n);
	g->off += n;
	return 0;
}

int
get_u32(struct lget *g, uint32_t *v)
{
	unsigned char b[4];
	if (get_bytes(g, b, 4) < 0)
		return -1;
	*v = link_get32(b);
	return 0;
}

int
get_u64(struct lget *g, uint64_t *v)
{
	uint32_t lo, hi;
	if (get_u32(g, &lo) < 0 || get_u32(g, &hi) < 0)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

int
get_str(struct lget *g, char *out, size_t max)
{
	uint32_t n;
	if (get_u32(g, &n) < 0)
		return -1;
	if (max == 0 || n >= max || n > g->len - g->off || memchr(g->p + g->off, '\0', n) != NULL) {
		g->bad = 1;
		return -1;
	}
	memcpy(out, g->p + g->off, n);
	out[n] = '\0';
	g->off += n;
	return 0;
}

const unsigned char *
get_rest(struct lget *g, size_t *n)
{
	*n = g->bad ? 0 : g->len - g->off;
	const unsigned char *p = g->p + g->off;
	g->off = g->len;
	return p;
}

int
link_key_load(const char *path, unsigned char key[LINK_KEYLEN], char *err, size_t errlen)
{
	char buf[160];
	size_t got = 0, n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	buf[r] = '\0';
	n = strcspn(buf, "\n");
	if (n != 2 * LINK_KEYLEN || (buf[n] == '\n' && buf[n + 1] != '\0') ||
	    sodium_hex2bin(key, LINK_KEYLEN, buf, n, NULL, &got, NULL) != 0 || got != LINK_KEYLEN)
		return seterr(
		    err, errlen,
		    "%s: a cluster key is 64 hex digits (head -c 32 /dev/urandom | od -An "
		    "-tx1 | tr -d ' \\n')",
		    path);
	return 0;
}

static void
mac_of(const unsigned char key[LINK_KEYLEN], const char *who, const unsigned char nonce[LINK_NONCE],
       unsigned char mac[32])
{
	unsigned char msg[16 + LINK_NONCE];
	size_t w = strlen(who);
	memset(msg, 0, sizeof(msg));
	memcpy(msg, who, w < 16 ? w : 16);
	memcpy(msg + 16, nonce, LINK_NONCE);
	crypto_auth(mac, msg, sizeof(msg), key);
}

void
link_prove(const unsigned char key[LINK_KEYLEN], const char *who,
	   const unsigned char nonce[LINK_NONCE], unsigned char mac[32])
{
	mac_of(key, who, nonce, mac);
}

int
link_check(const unsigned char key[LINK_KEYLEN], const char *who,
	   const unsigned char nonce[LINK_NONCE], const unsigned char mac[32])
{
	unsigned char want[32];
	mac_of(key, who, nonce, want);
	return sodium_memcmp(want, mac, 32) == 0 ? 0 : -1;
}
