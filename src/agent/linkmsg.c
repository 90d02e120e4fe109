/* linkmsg: the link's payloads, parsed and built (linkmsg.h). */
#include "agent/linkmsg.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const char *const names[L_TYPES] = {
    [L_CHALLENGE] = "challenge", [L_PROOF] = "proof",	  [L_PROVEN] = "proven",
    [L_HELLO] = "hello",	 [L_WELCOME] = "welcome", [L_PING] = "ping",
    [L_PONG] = "pong",		 [L_BLOB] = "blob",	  [L_HAVE] = "have",
    [L_BOOT] = "boot",		 [L_BOOTED] = "booted",	  [L_FAILED] = "failed",
    [L_INPUT] = "input",	 [L_OUT] = "out",	  [L_EXIT] = "exit",
    [L_KILL] = "kill",		 [L_WIRE] = "wire",	  [L_RELEASE] = "release",
    [L_SPAN] = "span",		 [L_STATS] = "stats",	  [L_ERROR] = "error",
};

const char *
linkmsg_type_name(int type)
{
	return type > 0 && type < L_TYPES && names[type] ? names[type] : "?";
}

/* The types each side reads: the agent what the front end sends, and the
 * other way round (pings and errors go both ways). */
static int
reads(enum linkmsg_to to, int type)
{
	switch (type) {
	case L_PING:
	case L_PONG:
	case L_ERROR:
		return 1;
	case L_PROOF:
	case L_HELLO:
	case L_BLOB:
	case L_BOOT:
	case L_INPUT:
	case L_KILL:
	case L_WIRE:
	case L_RELEASE:
	case L_SPAN:
		return to == LINKMSG_TO_AGENT;
	case L_CHALLENGE:
	case L_PROVEN:
	case L_WELCOME:
	case L_HAVE:
	case L_BOOTED:
	case L_FAILED:
	case L_OUT:
	case L_EXIT:
	case L_STATS:
		return to == LINKMSG_TO_FRONT;
	default:
		return 0;
	}
}

/* The frames whose rank names a node. */
static int
has_rank(int type)
{
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
		return 1;
	default:
		return 0;
	}
}

/* Exactly n bytes, copied. */
static int
exact(const unsigned char *p, size_t len, void *out, size_t n)
{
	if (len != n)
		return -1;
	memcpy(out, p, n);
	return 0;
}

static int
welcome(struct lget *g, struct linkmsg *m, char *err, size_t errlen)
{
	const char *t = "welcome";
	if (get_str(g, m->u.welcome.name, sizeof(m->u.welcome.name)) < 0)
		return seterr(err, errlen, "%s: no host name", t);
	if (!valid_name(m->u.welcome.name))
		return seterr(err, errlen, "%s: the host name is not a name", t);
	if (get_u32(g, &m->u.welcome.nnodes) < 0 || m->u.welcome.nnodes > LINK_MAX_RANKS)
		return seterr(err, errlen, "%s: no count of nodes, or more than %u", t,
			      LINK_MAX_RANKS);
	if ((size_t)m->u.welcome.nnodes * LINK_NODE_WIRE > g->len - g->off)
		return seterr(err, errlen, "%s: %u nodes past the payload's end", t,
			      m->u.welcome.nnodes);
	m->u.welcome.nodes = g->p + g->off;
	g->off += (size_t)m->u.welcome.nnodes * LINK_NODE_WIRE;
	for (uint32_t i = 0; i < m->u.welcome.nnodes; i++)
		if (link_get32(m->u.welcome.nodes + (size_t)i * LINK_NODE_WIRE) >= LINK_MAX_RANKS)
			return seterr(err, errlen, "%s: node %u's rank is %u or more", t, i,
				      LINK_MAX_RANKS);
	if (get_u32(g, &m->u.welcome.nblobs) < 0 || m->u.welcome.nblobs > LINK_MAX_HAVE)
		return seterr(err, errlen, "%s: no count of blobs, or more than %d", t,
			      LINK_MAX_HAVE);
	if ((size_t)m->u.welcome.nblobs * 32 > g->len - g->off)
		return seterr(err, errlen, "%s: %u blobs past the payload's end", t,
			      m->u.welcome.nblobs);
	m->u.welcome.blobs = g->p + g->off;
	g->off += (size_t)m->u.welcome.nblobs * 32;
	return 0;
}

static int
blob(struct lget *g, struct linkmsg *m, char *err, size_t errlen)
{
	if (get_bytes(g, m->u.blob.hash, 32) < 0 || get_u64(g, &m->u.blob.total) < 0 ||
	    get_u64(g, &m->u.blob.off) < 0)
		return seterr(err, errlen, "blob: the payload ends early");
	if (m->u.blob.total > LINK_MAX_BLOB)
		return seterr(err, errlen, "blob: %llu bytes, more than a blob may have",
			      (unsigned long long)m->u.blob.total);
	m->u.blob.bytes = get_rest(g, &m->u.blob.len);
	if (m->u.blob.off > m->u.blob.total || m->u.blob.len > m->u.blob.total - m->u.blob.off)
		return seterr(err, errlen, "blob: bytes past the blob's end");
	return 0;
}

static int
boot(struct lget *g, struct linkmsg *m, char *err, size_t errlen)
{
	if (get_u32(g, &m->u.boot.gen) < 0 || get_u32(g, &m->u.boot.cpu_milli) < 0 ||
	    get_u64(g, &m->u.boot.mem) < 0 || get_u32(g, &m->u.boot.pids) < 0 ||
	    get_bytes(g, m->u.boot.hash, 32) < 0 ||
	    get_str(g, m->u.boot.name, sizeof(m->u.boot.name)) < 0 ||
	    get_str(g, m->u.boot.env, sizeof(m->u.boot.env)) < 0)
		return seterr(err, errlen, "boot: the payload ends early or a string is too long");
	if (!valid_name(m->u.boot.name))
		return seterr(err, errlen, "boot: the hostname is not a name");
	if (m->u.boot.cpu_milli > 1000000)
		return seterr(err, errlen, "boot: more than 1000 cpus");
	return 0;
}

static int
input(struct lget *g, struct linkmsg *m, char *err, size_t errlen)
{
	size_t rest;
	if (get_u32(g, &m->u.input.len) < 0 || m->u.input.len > g->len - g->off)
		return seterr(err, errlen, "input: its bytes past the payload's end");
	m->u.input.bytes = g->p + g->off;
	g->off += m->u.input.len;
	m->u.input.ranks = get_rest(g, &rest);
	if (rest % 4 != 0 || rest / 4 > LINK_MAX_RANKS)
		return seterr(err, errlen, "input: the ranks are not whole words, or too many");
	m->u.input.nranks = (uint32_t)(rest / 4);
	for (uint32_t i = 0; i < m->u.input.nranks; i++)
		if (linkmsg_input_rank(m, i) >= LINK_MAX_RANKS)
			return seterr(err, errlen, "input: a rank is %u or more", LINK_MAX_RANKS);
	return 0;
}

static int
wire(struct lget *g, struct linkmsg *m, char *err, size_t errlen)
{
	if (get_u32(g, &m->u.wire.n) < 0 || m->u.wire.n > LINK_MAX_IFS)
		return seterr(err, errlen, "wire: no count of interfaces, or more than %d",
			      LINK_MAX_IFS);
	for (uint32_t i = 0; i < m->u.wire.n; i++)
		if (get_u32(g, &m->u.wire.netid[i]) < 0 || m->u.wire.netid[i] > 0xffff)
			return seterr(err, errlen, "wire: interface %u: no netid", i);
	return 0;
}

static int
span(struct lget *g, struct linkmsg *m, char *err, size_t errlen)
{
	if (get_u32(g, &m->u.span.netid) < 0 || get_u32(g, &m->u.span.n) < 0)
		return seterr(err, errlen, "span: the payload ends early");
	if (m->u.span.netid == 0 || m->u.span.netid > 0xffff)
		return seterr(err, errlen, "span: netid %u is not 1..65535", m->u.span.netid);
	if (m->u.span.n > LINK_MAX_PEERS)
		return seterr(err, errlen, "span: more than %d other hosts", LINK_MAX_PEERS);
	for (uint32_t i = 0; i < m->u.span.n; i++) {
		struct in_addr ia;
		if (get_str(g, m->u.span.peer[i], sizeof(m->u.span.peer[i])) < 0 ||
		    inet_pton(AF_INET, m->u.span.peer[i], &ia) != 1)
			return seterr(err, errlen, "span: peer %u is not an IPv4 address", i);
	}
	return 0;
}

static int
stats(struct lget *g, struct linkmsg *m, char *err, size_t errlen)
{
	if (get_u32(g, &m->u.stats.gen) < 0 || get_u64(g, &m->u.stats.cpu_ns) < 0 ||
	    get_u64(g, &m->u.stats.mem) < 0 || get_u64(g, &m->u.stats.mem_peak) < 0 ||
	    get_u64(g, &m->u.stats.oom_kills) < 0 || get_u32(g, &m->u.stats.nifs) < 0)
		return seterr(err, errlen, "stats: the payload ends early");
	if (m->u.stats.nifs > LINK_MAX_IFS)
		return seterr(err, errlen, "stats: more than %d interfaces", LINK_MAX_IFS);
	for (uint32_t i = 0; i < m->u.stats.nifs; i++) {
		struct linkmsg_if *x = &m->u.stats.ifs[i];
		if (get_u32(g, &x->slot) < 0 || get_u32(g, &x->netid) < 0 ||
		    get_u64(g, &x->rx_bytes) < 0 || get_u64(g, &x->tx_bytes) < 0 ||
		    get_u64(g, &x->rx_packets) < 0 || get_u64(g, &x->tx_packets) < 0)
			return seterr(err, errlen, "stats: the payload ends early");
		if (x->slot >= LINK_MAX_IFS)
			return seterr(err, errlen, "stats: slot %u is %d or more", x->slot,
				      LINK_MAX_IFS);
	}
	return 0;
}

int
linkmsg_parse(enum linkmsg_to to, int type, uint32_t rank, const unsigned char *p, size_t len,
	      struct linkmsg *m, char *err, size_t errlen)
{
	struct lget g;
	const char *t = linkmsg_type_name(type);
	uint32_t v;

	memset(m, 0, sizeof(*m));
	m->type = type;
	m->rank = rank;
	if (!reads(to, type))
		return seterr(err, errlen, "a frame of type %d is not one %s reads", type,
			      to == LINKMSG_TO_AGENT ? "an agent" : "a front end");
	if (has_rank(type) && rank >= LINK_MAX_RANKS)
		return seterr(err, errlen, "%s: rank %u is %u or more", t, rank, LINK_MAX_RANKS);
	lget_init(&g, p, len);
	switch (type) {
	case L_CHALLENGE:
		if (exact(p, len, m->u.challenge.nonce, LINK_NONCE) < 0)
			return seterr(err, errlen, "challenge: not a %d-byte nonce", LINK_NONCE);
		return 0;
	case L_PROOF:
		if (len != 32 + LINK_NONCE)
			return seterr(err, errlen, "proof: not a mac and a nonce");
		memcpy(m->u.proof.mac, p, 32);
		memcpy(m->u.proof.nonce, p + 32, LINK_NONCE);
		return 0;
	case L_PROVEN:
		if (exact(p, len, m->u.proven.mac, 32) < 0)
			return seterr(err, errlen, "proven: not a mac");
		return 0;
	case L_HELLO:
		if (get_u32(&g, &m->u.hello.facid) < 0 || get_u32(&g, &m->u.hello.first) < 0 ||
		    get_u32(&g, &m->u.hello.count) < 0)
			return seterr(err, errlen, "hello: the payload ends early");
		return 0;
	case L_WELCOME:
		return welcome(&g, m, err, errlen);
	case L_PING:
	case L_PONG:
	case L_RELEASE:
		return 0;
	case L_BLOB:
		return blob(&g, m, err, errlen);
	case L_HAVE:
		if (get_bytes(&g, m->u.have.hash, 32) < 0)
			return seterr(err, errlen, "have: no hash");
		return 0;
	case L_BOOT:
		return boot(&g, m, err, errlen);
	case L_BOOTED:
		if (get_u32(&g, &m->u.booted.gen) < 0 || get_u32(&g, &m->u.booted.pid) < 0)
			return seterr(err, errlen, "booted: the payload ends early");
		return 0;
	case L_FAILED:
		if (get_u32(&g, &m->u.failed.gen) < 0 ||
		    get_str(&g, m->u.failed.why, sizeof(m->u.failed.why)) < 0)
			return seterr(err, errlen, "failed: no reason, or one too long");
		return 0;
	case L_INPUT:
		return input(&g, m, err, errlen);
	case L_OUT:
		if (get_u32(&g, &m->u.out.gen) < 0)
			return seterr(err, errlen, "out: the payload ends early");
		m->u.out.bytes = get_rest(&g, &m->u.out.len);
		return 0;
	case L_EXIT:
		if (get_u32(&g, &m->u.exit.gen) < 0 || get_u32(&g, &v) < 0)
			return seterr(err, errlen, "exit: the payload ends early");
		m->u.exit.status = (int32_t)v;
		return 0;
	case L_KILL:
		if (get_u32(&g, &m->u.kill.gen) < 0)
			return seterr(err, errlen, "kill: the payload ends early");
		return 0;
	case L_WIRE:
		return wire(&g, m, err, errlen);
	case L_SPAN:
		return span(&g, m, err, errlen);
	case L_STATS:
		return stats(&g, m, err, errlen);
	case L_ERROR:
		if (get_str(&g, m->u.error.why, sizeof(m->u.error.why)) < 0)
			return seterr(err, errlen, "error: no reason, or one too long");
		return 0;
	}
	return seterr(err, errlen, "a frame of type %d is not one anybody reads", type);
}

size_t
linkmsg_put(struct link *l, const struct linkmsg *m)
{
	size_t at = link_begin(l, m->type, m->rank);

	switch (m->type) {
	case L_CHALLENGE:
		put_bytes(l, m->u.challenge.nonce, LINK_NONCE);
		break;
	case L_PROOF:
		put_bytes(l, m->u.proof.mac, 32);
		put_bytes(l, m->u.proof.nonce, LINK_NONCE);
		break;
	case L_PROVEN:
		put_bytes(l, m->u.proven.mac, 32);
		break;
	case L_HELLO:
		put_u32(l, m->u.hello.facid);
		put_u32(l, m->u.hello.first);
		put_u32(l, m->u.hello.count);
		break;
	case L_WELCOME:
		put_str(l, m->u.welcome.name);
		put_u32(l, m->u.welcome.nnodes);
		put_bytes(l, m->u.welcome.nodes, (size_t)m->u.welcome.nnodes * LINK_NODE_WIRE);
		put_u32(l, m->u.welcome.nblobs);
		put_bytes(l, m->u.welcome.blobs, (size_t)m->u.welcome.nblobs * 32);
		break;
	case L_BLOB:
		put_bytes(l, m->u.blob.hash, 32);
		put_u64(l, m->u.blob.total);
		put_u64(l, m->u.blob.off);
		put_bytes(l, m->u.blob.bytes, m->u.blob.len);
		break;
	case L_HAVE:
		put_bytes(l, m->u.have.hash, 32);
		break;
	case L_BOOT:
		put_u32(l, m->u.boot.gen);
		put_u32(l, m->u.boot.cpu_milli);
		put_u64(l, m->u.boot.mem);
		put_u32(l, m->u.boot.pids);
		put_bytes(l, m->u.boot.hash, 32);
		put_str(l, m->u.boot.name);
		put_str(l, m->u.boot.env);
		break;
	case L_BOOTED:
		put_u32(l, m->u.booted.gen);
		put_u32(l, m->u.booted.pid);
		break;
	case L_FAILED:
		put_u32(l, m->u.failed.gen);
		put_str(l, m->u.failed.why);
		break;
	case L_INPUT:
		put_u32(l, m->u.input.len);
		put_bytes(l, m->u.input.bytes, m->u.input.len);
		put_bytes(l, m->u.input.ranks, (size_t)m->u.input.nranks * 4);
		break;
	case L_OUT:
		put_u32(l, m->u.out.gen);
		put_bytes(l, m->u.out.bytes, m->u.out.len);
		break;
	case L_EXIT:
		put_u32(l, m->u.exit.gen);
		put_u32(l, (uint32_t)m->u.exit.status);
		break;
	case L_KILL:
		put_u32(l, m->u.kill.gen);
		break;
	case L_WIRE:
		put_u32(l, m->u.wire.n);
		for (uint32_t i = 0; i < m->u.wire.n; i++)
			put_u32(l, m->u.wire.netid[i]);
		break;
	case L_SPAN:
		put_u32(l, m->u.span.netid);
		put_u32(l, m->u.span.n);
		for (uint32_t i = 0; i < m->u.span.n; i++)
			put_str(l, m->u.span.peer[i]);
		break;
	case L_STATS:
		put_u32(l, m->u.stats.gen);
		put_u64(l, m->u.stats.cpu_ns);
		put_u64(l, m->u.stats.mem);
		put_u64(l, m->u.stats.mem_peak);
		put_u64(l, m->u.stats.oom_kills);
		put_u32(l, m->u.stats.nifs);
		for (uint32_t i = 0; i < m->u.stats.nifs; i++) {
			const struct linkmsg_if *x = &m->u.stats.ifs[i];
			put_u32(l, x->slot);
			put_u32(l, x->netid);
			put_u64(l, x->rx_bytes);
			put_u64(l, x->tx_bytes);
			put_u64(l, x->rx_packets);
			put_u64(l, x->tx_packets);
		}
		break;
	case L_ERROR:
		put_str(l, m->u.error.why);
		break;
	default: /* L_PING, L_PONG, L_RELEASE: nothing but the header */
		break;
	}
	link_end(l, at);
	return at;
}

void
linkmsg_welcome_node(const struct linkmsg *m, uint32_t i, struct linkmsg_node *out)
{
	const unsigned char *w = m->u.welcome.nodes + (size_t)i * LINK_NODE_WIRE;
	out->rank = link_get32(w);
	out->gen = link_get32(w + 4);
	memcpy(out->image, w + 8, 32);
}

void
linkmsg_node_wire(unsigned char out[LINK_NODE_WIRE], const struct linkmsg_node *n)
{
	link_set32(out, n->rank);
	link_set32(out + 4, n->gen);
	memcpy(out + 8, n->image, 32);
}

uint32_t
linkmsg_input_rank(const struct linkmsg *m, uint32_t i)
{
	return link_get32(m->u.input.ranks + (size_t)i * 4);
}
