/* fuzz/link: the many-hosts link between khd's front end and khagent
 * (src/agent/link.h, linkmsg.h).  Each side reads the other's frames:
 * link_next cuts the stream, link_pump reads a socket and hands whole
 * frames to a reader, linkmsg_parse reads a payload.  The input: three
 * bytes (where the stream is split, at which frame the reader refuses),
 * then the stream as it comes over the connection.  Checked besides "no
 * crash":
 *  - a frame is a known type, at most LINK_PAYLOAD_MAX long, lies inside
 *    the stream, and the frames follow each other with nothing between;
 *  - the stream written to a pipe in three pieces and read by link_pump
 *    gives the same frames, and ends the same way (end of file, a bad
 *    header, a refused frame: nothing is handed over after that);
 *  - a payload parsed by either side keeps its promises: every length,
 *    count and pointer inside the payload and within its bound, ranks
 *    below LINK_MAX_RANKS, strings NUL-terminated in their room, names
 *    valid, netids in range; refused, one line of why;
 *  - linkmsg_put of what was parsed builds exactly the bytes parsed (the
 *    payload, or its start when bytes follow the last field), and that
 *    parses and builds again to the same bytes. */
#include "agent/link.h"
#include "agent/linkmsg.h"
#include "common/util.h"
#include "fuzz.h"

#include <fcntl.h>
#include <unistd.h>

static int
inside(const unsigned char *q, size_t n, const unsigned char *p, size_t len)
{
	return n == 0 || (q >= p && q <= p + len && n <= (size_t)(p + len - q));
}

static int
terminated(const char *s, size_t room)
{
	return memchr(s, '\0', room) != NULL;
}

/* What the parse of (type, rank, p, len) by `to` promises. */
static void
check_msg(enum linkmsg_to to, const struct linkmsg *m, int type, uint32_t rank,
	  const unsigned char *p, size_t len)
{
	FUZZ_CHECK(m->type == type && m->rank == rank);
	switch (type) {
	case L_WELCOME:
		FUZZ_CHECK(to == LINKMSG_TO_FRONT);
		FUZZ_CHECK(terminated(m->u.welcome.name, sizeof(m->u.welcome.name)));
		FUZZ_CHECK(valid_name(m->u.welcome.name));
		FUZZ_CHECK(m->u.welcome.nnodes <= LINK_MAX_RANKS);
		FUZZ_CHECK(m->u.welcome.nblobs <= LINK_MAX_HAVE);
		FUZZ_CHECK(inside(m->u.welcome.nodes, (size_t)m->u.welcome.nnodes * LINK_NODE_WIRE,
				  p, len));
		FUZZ_CHECK(inside(m->u.welcome.blobs, (size_t)m->u.welcome.nblobs * 32, p, len));
		for (uint32_t i = 0; i < m->u.welcome.nnodes; i++) {
			struct linkmsg_node nd;
			linkmsg_welcome_node(m, i, &nd);
			FUZZ_CHECK(nd.rank < LINK_MAX_RANKS);
		}
		break;
	case L_BLOB:
		FUZZ_CHECK(to == LINKMSG_TO_AGENT);
		FUZZ_CHECK(m->u.blob.total <= LINK_MAX_BLOB && m->u.blob.off <= m->u.blob.total &&
			   m->u.blob.len <= m->u.blob.total - m->u.blob.off);
		FUZZ_CHECK(inside(m->u.blob.bytes, m->u.blob.len, p, len));
		break;
	case L_BOOT:
		FUZZ_CHECK(to == LINKMSG_TO_AGENT);
		FUZZ_CHECK(terminated(m->u.boot.name, sizeof(m->u.boot.name)));
		FUZZ_CHECK(terminated(m->u.boot.env, sizeof(m->u.boot.env)));
		FUZZ_CHECK(valid_name(m->u.boot.name) && m->u.boot.cpu_milli <= 1000000);
		break;
	case L_FAILED:
		FUZZ_CHECK(terminated(m->u.failed.why, sizeof(m->u.failed.why)));
		break;
	case L_ERROR:
		FUZZ_CHECK(terminated(m->u.error.why, sizeof(m->u.error.why)));
		break;
	case L_INPUT:
		FUZZ_CHECK(to == LINKMSG_TO_AGENT);
		FUZZ_CHECK(inside(m->u.input.bytes, m->u.input.len, p, len));
		FUZZ_CHECK(m->u.input.nranks <= LINK_MAX_RANKS);
		FUZZ_CHECK(inside(m->u.input.ranks, (size_t)m->u.input.nranks * 4, p, len));
		for (uint32_t i = 0; i < m->u.input.nranks; i++)
			FUZZ_CHECK(linkmsg_input_rank(m, i) < LINK_MAX_RANKS);
		break;
	case L_OUT:
		FUZZ_CHECK(to == LINKMSG_TO_FRONT);
		FUZZ_CHECK(inside(m->u.out.bytes, m->u.out.len, p, len));
		break;
	case L_WIRE:
		FUZZ_CHECK(m->u.wire.n <= LINK_MAX_IFS);
		for (uint32_t i = 0; i < m->u.wire.n; i++)
			FUZZ_CHECK(m->u.wire.netid[i] <= 0xffff);
		break;
	case L_SPAN:
		FUZZ_CHECK(m->u.span.netid >= 1 && m->u.span.netid <= 0xffff);
		FUZZ_CHECK(m->u.span.n <= LINK_MAX_PEERS);
		for (uint32_t i = 0; i < m->u.span.n; i++)
			FUZZ_CHECK(terminated(m->u.span.peer[i], sizeof(m->u.span.peer[i])));
		break;
	case L_STATS:
		FUZZ_CHECK(m->u.stats.nifs <= LINK_MAX_IFS);
		for (uint32_t i = 0; i < m->u.stats.nifs; i++)
			FUZZ_CHECK(m->u.stats.ifs[i].slot < LINK_MAX_IFS);
		break;
	case L_CHALLENGE:
		FUZZ_CHECK(len == LINK_NONCE && memcmp(m->u.challenge.nonce, p, len) == 0);
		break;
	case L_PROOF:
		FUZZ_CHECK(len == 32 + LINK_NONCE);
		break;
	case L_PROVEN:
		FUZZ_CHECK(len == 32);
		break;
	}
	switch (type) {
	case L_BOOT:
	case L_BOOTED:
	case L_FAILED:
	case L_OUT:
	case L_EXIT:
	case L_KILL:
	case L_WIRE:
	case L_RELEASE:
	case L_STATS:
		FUZZ_CHECK(rank < LINK_MAX_RANKS);
	}
}

/* linkmsg_put(m): the frame's header, and a payload that is the start of
 * p (all of it when nothing follows the last field).  Returns the
 * payload's length; *out holds the frame. */
static size_t
rebuild(const struct linkmsg *m, const unsigned char *p, size_t len, struct link *out)
{
	sbuf_reset(&out->out);
	size_t at = linkmsg_put(out, m);
	const unsigned char *f = (const unsigned char *)out->out.s;
	FUZZ_CHECK(at == 0 && out->out.len >= LINK_HDR);
	size_t n = out->out.len - LINK_HDR;
	FUZZ_CHECK(link_get32(f) == n && link_get32(f + 4) == (uint32_t)m->type &&
		   link_get32(f + 8) == m->rank);
	FUZZ_CHECK(n <= len && memcmp(f + LINK_HDR, p, n) == 0);
	return n;
}

static void
payload(int type, uint32_t rank, const unsigned char *p, size_t len)
{
	static const enum linkmsg_to sides[] = {LINKMSG_TO_AGENT, LINKMSG_TO_FRONT};
	static struct linkmsg m, again;
	struct link a, b;
	char err[256];

	link_init(&a, -1);
	link_init(&b, -1);
	for (int s = 0; s < 2; s++) {
		err[0] = '\0';
		if (linkmsg_parse(sides[s], type, rank, p, len, &m, err, sizeof(err)) < 0) {
			FUZZ_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
			continue;
		}
		check_msg(sides[s], &m, type, rank, p, len);
		size_t n = rebuild(&m, p, len, &a);
		/* the rest is theirs, or their length is exact; other frames
		 * ignore bytes after their last field */
		if (type == L_BLOB || type == L_INPUT || type == L_OUT || type == L_CHALLENGE ||
		    type == L_PROOF || type == L_PROVEN)
			FUZZ_CHECK(n == len);
		/* what was built parses again, to the same bytes */
		const unsigned char *q = (const unsigned char *)a.out.s + LINK_HDR;
		FUZZ_CHECK(linkmsg_parse(sides[s], type, rank, q, n, &again, err, sizeof(err)) ==
			   0);
		FUZZ_CHECK(rebuild(&again, q, n, &b) == n);
	}
	link_free(&a);
	link_free(&b);
}

/* link_pump's reader: keeps the frames, refuses the one numbered refuse. */
struct got {
	struct sbuf frames;
	int n, refuse;
};

static int
collect(void *arg, int type, uint32_t rank, const unsigned char *p, size_t len)
{
	struct got *g = arg;
	unsigned char h[LINK_HDR];
	link_set32(h, (uint32_t)len);
	link_set32(h + 4, (uint32_t)type);
	link_set32(h + 8, rank);
	sbuf_add(&g->frames, h, sizeof(h));
	sbuf_add(&g->frames, p, len);
	return g->n++ == g->refuse ? -1 : 0;
}

static void
put_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		FUZZ_CHECK(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3 || size > 60000) /* (a pipe's buffer holds the stream) */
		return 0;
	const uint8_t *s = data + 3;
	size_t n = size - 3;
	size_t cut1 = n * data[0] / 255, cut2 = cut1 + (n - cut1) * data[1] / 255;
	int refuse = data[2] < 32 ? data[2] : -1;

	/* The whole stream at once: the frames, where they lie, how it ends. */
	struct link r;
	const unsigned char *p;
	size_t len, off = 0, refused_end = 0;
	uint32_t rank;
	int type, rc, k = 0;
	link_init(&r, -1);
	sbuf_add(&r.in, s, n);
	while ((rc = link_next(&r, &type, &rank, &p, &len)) == 1) {
		const unsigned char *in = (const unsigned char *)r.in.s;
		FUZZ_CHECK(type > 0 && type < L_TYPES && len <= LINK_PAYLOAD_MAX);
		FUZZ_CHECK(p == in + off + LINK_HDR && len <= n - off - LINK_HDR);
		FUZZ_CHECK(link_get32(s + off) == len &&
			   link_get32(s + off + 4) == (uint32_t)type &&
			   link_get32(s + off + 8) == rank);
		payload(type, rank, p, len);
		off += LINK_HDR + len;
		if (k++ == refuse)
			refused_end = off;
	}
	FUZZ_CHECK(rc == 0 || (rc == -1 && r.bad && n - off >= LINK_HDR));
	FUZZ_CHECK(rc == -1 || n - off < LINK_HDR || n - off < LINK_HDR + link_get32(s + off));
	int ended_bad = rc == -1;
	link_free(&r);

	/* The same stream through a pipe, in three pieces, to link_pump. */
	int fds[2];
	struct got g = {.refuse = refuse};
	enum link_pump st = LINK_WAIT;
	FUZZ_CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
	sbuf_init(&g.frames);
	link_init(&r, fds[0]);
	size_t cuts[] = {0, cut1, cut2, n};
	for (int i = 0; i < 3; i++) {
		put_all(fds[1], s + cuts[i], cuts[i + 1] - cuts[i]);
		enum link_pump now = link_pump(&r, collect, &g);
		FUZZ_CHECK(now == LINK_WAIT || now == LINK_BAD || now == LINK_REFUSED);
		FUZZ_CHECK(st == LINK_WAIT || now == LINK_BAD); /* once bad, bad */
		st = now;
	}
	close(fds[1]);
	enum link_pump last = link_pump(&r, collect, &g);
	link_free(&r);
	if (refused_end) {
		/* the refused frame was the last handed over */
		FUZZ_CHECK(g.frames.len == refused_end && g.n == refuse + 1);
		FUZZ_CHECK(last == LINK_BAD);
	} else {
		FUZZ_CHECK(g.frames.len == off);
		FUZZ_CHECK(last == (ended_bad ? LINK_BAD : LINK_EOF));
	}
	if (g.frames.len > 0)
		FUZZ_CHECK(memcmp(g.frames.s, s, g.frames.len) == 0);
	sbuf_free(&g.frames);
	return 0;
}
