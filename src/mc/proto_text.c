/* proto_text: memcached's text protocol (protocol.txt): the input state
 * machine (command lines, values, swallowed values) and the classic
 * commands.  Replies, errors and their wording follow memcached 1.6.18
 * byte for byte, down to its tokenizer (at most 24 tokens, spaces only) and
 * its number parsing (strtol/strtoul, truncated to 32 bits); the end-to-end
 * test compares transcripts with Debian's memcached.  Meta commands are in
 * proto_meta.c, stats in stats.c. */
#include "mc/conn.h"
#include "mc/mcrdma.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_FORMAT "CLIENT_ERROR bad command line format"

size_t
mc_tokenize(char *command, struct mc_token *tokens, size_t max)
{
	char *s = command, *e = command;
	size_t ntokens = 0, len = strlen(command);

	for (size_t i = 0; i < len; i++) {
		if (*e == ' ') {
			if (s != e) {
				tokens[ntokens].value = s;
				tokens[ntokens].length = (size_t)(e - s);
				ntokens++;
				*e = '\0';
				if (ntokens == max - 1) {
					e++;
					s = e; /* the rest is for the caller */
					break;
				}
			}
			s = e + 1;
		}
		e++;
	}
	if (s != e) {
		tokens[ntokens].value = s;
		tokens[ntokens].length = (size_t)(e - s);
		ntokens++;
	}
	/* The terminal token: NULL when the line is done, else the rest. */
	tokens[ntokens].value = *e == '\0' ? NULL : e;
	tokens[ntokens].length = 0;
	return ntokens + 1;
}

static int
blank(char ch)
{
	return isspace((unsigned char)ch);
}

int
mc_strtoul32(const char *s, uint32_t *out)
{
	char *end;

	errno = 0;
	unsigned long l = strtoul(s, &end, 10);
	if (errno == ERANGE || end == s)
		return -1;
	if (blank(*end) || *end == '\0') {
		if ((long)l < 0 && strchr(s, '-') != NULL)
			return -1;
		*out = (uint32_t)l;
		return 0;
	}
	return -1;
}

int
mc_strtol32(const char *s, int32_t *out)
{
	char *end;

	errno = 0;
	long l = strtol(s, &end, 10);
	if (errno == ERANGE || end == s)
		return -1;
	if (blank(*end) || *end == '\0') {
		*out = (int32_t)(uint32_t)(unsigned long)l; /* as memcached: truncated */
		return 0;
	}
	return -1;
}

int
mc_strtoull_tok(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE || end == s)
		return -1;
	if (blank(*end) || *end == '\0') {
		if ((long long)v < 0 && strchr(s, '-') != NULL)
			return -1;
		*out = v;
		return 0;
	}
	return -1;
}

/* A trailing "noreply" token. */
static int
noreply_maybe(struct mc_conn *c, struct mc_token *t, size_t ntok)
{
	const char *v = t[ntok - 2].value;

	if (v != NULL && strcmp(v, "noreply") == 0)
		c->noreply = 1;
	return c->noreply;
}

static void
process_get(struct mc_conn *c, struct mc_token *tok, int with_cas, int touch)
{
	struct mc_cache *cache = c->ctx->cache;
	struct mc_token *kt = &tok[1];
	uint32_t exptime = 0;
	struct mc_outmark mark;

	if (touch) {
		int32_t e;
		if (mc_strtol32(tok[1].value, &e) < 0) {
			mc_out_str(c, "CLIENT_ERROR invalid exptime argument");
			return;
		}
		exptime = mc_exptime(cache, e, c->now);
		kt++;
	}
	mc_out_mark(c, &mark);
	for (;;) {
		for (; kt->length != 0; kt++) {
			if (kt->length > MC_KEY_MAX) {
				mc_out_rollback(c, &mark);
				mc_out_str(c, ERR_FORMAT);
				return;
			}
			struct mc_chunk *ch =
			    touch ? mc_get_touch(cache, kt->value, kt->length, exptime, c->now)
				  : mc_get(cache, kt->value, kt->length, c->now, 1);
			if (touch)
				MC_INC(c, cmd_touch);
			else
				MC_INC(c, cmd_get);
			if (ch == NULL) {
				if (touch)
					MC_INC(c, touch_misses);
				else
					MC_INC(c, get_misses);
				continue;
			}
			if (touch)
				MC_INC(c, touch_hits);
			else
				MC_INC(c, get_hits);
			const struct mc_item *it = mc_chunk_item(ch);
			char hdr[MC_KEY_MAX + 80], *p = hdr;
			memcpy(p, "VALUE ", 6);
			p += 6;
			memcpy(p, mc_item_key(it), it->key_len);
			p += it->key_len;
			*p++ = ' ';
			p = mc_utoa(it->flags, p);
			*p++ = ' ';
			p = mc_utoa(it->value_len, p);
			if (with_cas) {
				*p++ = ' ';
				p = mc_utoa(it->version, p);
			}
			*p++ = '\r';
			*p++ = '\n';
			mc_out(c, hdr, (size_t)(p - hdr));
			mc_out_value(c, ch);
			mc_out(c, "\r\n", 2);
		}
		if (kt->value == NULL)
			break;
		/* More keys than one tokenizer pass holds. */
		mc_tokenize(kt->value, tok, MC_MAX_TOKENS);
		kt = tok;
	}
	mc_out(c, "END\r\n", 5);
}

static void
process_update(struct mc_conn *c, struct mc_token *tok, size_t ntok, enum mc_op op)
{
	struct mc_cache *cache = c->ctx->cache;
	uint32_t flags;
	int32_t exptime, vlen;
	uint64_t cas = 0;
	enum mc_res res;

	noreply_maybe(c, tok, ntok);
	if (tok[1].length > MC_KEY_MAX) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (mc_strtoul32(tok[2].value, &flags) < 0 || mc_strtol32(tok[3].value, &exptime) < 0 ||
	    mc_strtol32(tok[4].value, &vlen) < 0) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (op == MC_CAS && mc_strtoull_tok(tok[5].value, &cas) < 0) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (vlen < 0 || vlen > INT_MAX - 2) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	struct mc_chunk *ch =
	    mc_item_new(cache, tok[1].value, tok[1].length, flags,
			mc_exptime(cache, exptime, c->now), (uint32_t)vlen, c->now, &res);
	if (ch == NULL) {
		if (res == MC_TOO_LARGE) {
			mc_out_str(c, "SERVER_ERROR object too large for cache");
			MC_INC(c, store_too_large);
		} else {
			mc_out_str(c, "SERVER_ERROR out of memory storing object");
			MC_INC(c, store_no_memory);
		}
		c->state = MC_CONN_SWALLOW;
		c->swallow = (size_t)vlen + 2;
		/* A failed set must not leave the old value readable. */
		if (op == MC_SET)
			mc_delete(cache, tok[1].value, tok[1].length, 0, 0, 0, c->now);
		return;
	}
	c->item = ch;
	c->ritem = mc_item_value(ch);
	c->rleft = (size_t)vlen;
	c->crlf_got = 0;
	c->nread_op = op;
	c->nread_cas = cas;
	c->nread_meta = 0;
	c->nread_stale = 0;
	c->state = MC_CONN_NREAD;
}

/* The value of a set-like command is in: store it and answer. */
static void
nread_done(struct mc_conn *c)
{
	struct mc_chunk *ch = c->item;
	uint64_t cas = 0;

	c->item = NULL;
	c->state = MC_CONN_CMD;
	MC_INC(c, cmd_set);
	if (memcmp(c->crlf, "\r\n", 2) != 0) {
		mc_item_discard(c->ctx->cache, ch);
		if (c->nread_meta)
			c->noreply = 0;
		mc_out_str(c, "CLIENT_ERROR bad data chunk");
		return;
	}
	enum mc_res r = mc_store(c->ctx->cache, ch, (enum mc_op)c->nread_op, c->nread_cas,
				 c->nread_stale, c->now, &cas);
	if (c->nread_meta) {
		mc_meta_nread_done(c, r, r == MC_STORED ? cas : 0);
		return;
	}
	if (c->nread_op == MC_CAS) {
		if (r == MC_STORED)
			MC_INC(c, cas_hits);
		else if (r == MC_EXISTS)
			MC_INC(c, cas_badval);
		else if (r == MC_NOT_FOUND)
			MC_INC(c, cas_misses);
	}
	switch (r) {
	case MC_STORED:
		mc_out_str(c, "STORED");
		break;
	case MC_EXISTS:
		mc_out_str(c, "EXISTS");
		break;
	case MC_NOT_FOUND:
		mc_out_str(c, "NOT_FOUND");
		break;
	case MC_NOT_STORED:
		mc_out_str(c, "NOT_STORED");
		break;
	default:
		mc_out_str(c, "SERVER_ERROR out of memory storing object");
		break;
	}
}

/* rdma: where this connection's domain can read the arena one-sided. */
static void
process_rdma(struct mc_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint32_t local4 = 0;
	char line[160];

	if (c->ctx->rdma == NULL) {
		mc_out_str(c, "SERVER_ERROR no rdma device");
		return;
	}
	if (c->fd >= 0 && getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			local4 = ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr);
		} else if (ss.ss_family == AF_INET6) {
			const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
			static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
							   0, 0, 0, 0, 0xff, 0xff};
			if (memcmp(a, mapped, 12) == 0)
				local4 = (uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 |
					 (uint32_t)a[14] << 8 | a[15];
		}
	}
	if (mc_rdma_describe(c->ctx->rdma, local4, line, sizeof(line)) < 0) {
		mc_out_str(c, "SERVER_ERROR no rdma device in this connection's domain");
		return;
	}
	mc_out_str(c, line);
}

/* rset, radd, rreplace KEY FLAGS EXPTIME BYTES NETID RANK RKEY ROFF
 * [noreply]: the two-phase store.  The value is not on the connection: it
 * is in the client's exposed memory, and the server reads it from there
 * with one-sided reads straight into the new item. */
static void
process_rstore(struct mc_conn *c, struct mc_token *tok, size_t ntok, enum mc_op op)
{
	struct mc_cache *cache = c->ctx->cache;
	uint32_t flags, netid, rank;
	int32_t exptime, vlen;
	uint64_t rkey, roff;
	enum mc_res res;
	char why[200], msg[260];

	noreply_maybe(c, tok, ntok);
	if (tok[1].length > MC_KEY_MAX || mc_strtoul32(tok[2].value, &flags) < 0 ||
	    mc_strtol32(tok[3].value, &exptime) < 0 || mc_strtol32(tok[4].value, &vlen) < 0 ||
	    vlen < 0 || mc_strtoul32(tok[5].value, &netid) < 0 ||
	    mc_strtoul32(tok[6].value, &rank) < 0 || mc_strtoull_tok(tok[7].value, &rkey) < 0 ||
	    mc_strtoull_tok(tok[8].value, &roff) < 0) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (c->ctx->rdma == NULL) {
		mc_out_str(c, "SERVER_ERROR no rdma device");
		return;
	}
	struct mc_chunk *ch =
	    mc_item_new(cache, tok[1].value, tok[1].length, flags,
			mc_exptime(cache, exptime, c->now), (uint32_t)vlen, c->now, &res);
	if (ch == NULL) {
		if (res == MC_TOO_LARGE) {
			mc_out_str(c, "SERVER_ERROR object too large for cache");
			MC_INC(c, store_too_large);
		} else {
			mc_out_str(c, "SERVER_ERROR out of memory storing object");
			MC_INC(c, store_no_memory);
		}
		if (op == MC_SET)
			mc_delete(cache, tok[1].value, tok[1].length, 0, 0, 0, c->now);
		return;
	}
	if (vlen > 0 && mc_rdma_fetch(c->ctx->rdma, c->thread, netid, rank, rkey, roff,
				      mc_item_value(ch), (uint32_t)vlen, why, sizeof(why)) < 0) {
		mc_item_discard(cache, ch);
		snprintf(msg, sizeof(msg), "CLIENT_ERROR cannot read the value: %s", why);
		mc_out_str(c, msg);
		return;
	}
	c->item = ch;
	memcpy(c->crlf, "\r\n", 2);
	c->nread_op = op;
	c->nread_cas = 0;
	c->nread_meta = 0;
	c->nread_stale = 0;
	nread_done(c);
}

static void
process_touch(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	int32_t e;

	noreply_maybe(c, tok, ntok);
	if (tok[1].length > MC_KEY_MAX) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (mc_strtol32(tok[2].value, &e) < 0) {
		mc_out_str(c, "CLIENT_ERROR invalid exptime argument");
		return;
	}
	enum mc_res r = mc_touch(c->ctx->cache, tok[1].value, tok[1].length,
				 mc_exptime(c->ctx->cache, e, c->now), c->now);
	MC_INC(c, cmd_touch);
	if (r == MC_TOUCHED) {
		MC_INC(c, touch_hits);
		mc_out_str(c, "TOUCHED");
	} else if (r == MC_NOT_FOUND) {
		MC_INC(c, touch_misses);
		mc_out_str(c, "NOT_FOUND");
	} else {
		mc_out_str(c, "SERVER_ERROR out of memory");
	}
}

static void
process_arith(struct mc_conn *c, struct mc_token *tok, size_t ntok, int incr)
{
	uint64_t delta, value, cas;

	noreply_maybe(c, tok, ntok);
	if (tok[1].length > MC_KEY_MAX) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (mc_strtoull_tok(tok[2].value, &delta) < 0) {
		mc_out_str(c, "CLIENT_ERROR invalid numeric delta argument");
		return;
	}
	switch (mc_arith(c->ctx->cache, tok[1].value, tok[1].length, incr, delta, 0, c->now, &value,
			 &cas, NULL)) {
	case MC_OK: {
		char num[24];
		*mc_utoa(value, num) = '\0';
		if (incr)
			MC_INC(c, incr_hits);
		else
			MC_INC(c, decr_hits);
		mc_out_str(c, num);
		break;
	}
	case MC_NON_NUMERIC:
		mc_out_str(c, "CLIENT_ERROR cannot increment or decrement non-numeric value");
		break;
	case MC_NOT_FOUND:
		if (incr)
			MC_INC(c, incr_misses);
		else
			MC_INC(c, decr_misses);
		mc_out_str(c, "NOT_FOUND");
		break;
	default:
		mc_out_str(c, "SERVER_ERROR out of memory");
		break;
	}
}

static void
process_delete(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	if (ntok > 3) {
		int hold_is_zero = strcmp(tok[2].value, "0") == 0;
		int sets_noreply = noreply_maybe(c, tok, ntok);
		int valid = (ntok == 4 && (hold_is_zero || sets_noreply)) ||
			    (ntok == 5 && hold_is_zero && sets_noreply);
		if (!valid) {
			mc_out_str(c, "CLIENT_ERROR bad command line format.  "
				      "Usage: delete <key> [noreply]");
			return;
		}
	}
	if (tok[1].length > MC_KEY_MAX) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (mc_delete(c->ctx->cache, tok[1].value, tok[1].length, 0, 0, 0, c->now) == MC_DELETED) {
		MC_INC(c, delete_hits);
		mc_out_str(c, "DELETED");
	} else {
		MC_INC(c, delete_misses);
		mc_out_str(c, "NOT_FOUND");
	}
}

static void
process_verbosity(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	uint32_t level;

	noreply_maybe(c, tok, ntok);
	if (mc_strtoul32(tok[1].value, &level) < 0) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	__atomic_store_n(&c->ctx->verbosity, level > 2 ? 2 : (int)level, __ATOMIC_RELAXED);
	mc_out_str(c, "OK");
}

static void
process_flush_all(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	int32_t e = 0;

	noreply_maybe(c, tok, ntok);
	MC_INC(c, cmd_flush);
	if (ntok != (size_t)(c->noreply ? 3 : 2) && mc_strtol32(tok[1].value, &e) < 0) {
		mc_out_str(c, "CLIENT_ERROR invalid exptime argument");
		return;
	}
	/* memcached flushes what is older than one second before the time
	 * given: "flush_all 1" is now. */
	uint32_t at = e > 0 ? mc_exptime(c->ctx->cache, e, c->now) - 1 : 0;
	mc_flush(c->ctx->cache, at, c->now);
	mc_out_str(c, "OK");
}

/* One command line, NUL-terminated, "\r\n" taken off. */
static void
process_command(struct mc_conn *c, char *command)
{
	struct mc_token tok[MC_MAX_TOKENS];
	size_t ntok = mc_tokenize(command, tok, MC_MAX_TOKENS);

	if (ntok < 2 || tok[0].length < 2) {
		mc_out_str(c, "ERROR");
		return;
	}
	const char *cmd = tok[0].value;
	char first = cmd[0];
	if (first == 'm' && tok[0].length == 2) {
		mc_meta_command(c, tok, ntok);
	} else if (first == 'g') {
		if (ntok < 3)
			mc_out_str(c, "ERROR");
		else if (strcmp(cmd, "get") == 0)
			process_get(c, tok, 0, 0);
		else if (strcmp(cmd, "gets") == 0)
			process_get(c, tok, 1, 0);
		else if (strcmp(cmd, "gat") == 0)
			process_get(c, tok, 0, 1);
		else if (strcmp(cmd, "gats") == 0)
			process_get(c, tok, 1, 1);
		else
			mc_out_str(c, "ERROR");
	} else if (first == 's') {
		if (strcmp(cmd, "set") == 0) {
			if (ntok != 6 && ntok != 7)
				mc_out_str(c, "ERROR");
			else
				process_update(c, tok, ntok, MC_SET);
		} else if (strcmp(cmd, "stats") == 0) {
			mc_stats_command(c, tok, ntok);
		} else if (strcmp(cmd, "shutdown") == 0) {
			mc_out_str(c, "ERROR: shutdown not enabled");
		} else {
			mc_out_str(c, "ERROR");
		}
	} else if (first == 'a') {
		int add = strcmp(cmd, "add") == 0;
		if (!add && strcmp(cmd, "append") != 0)
			mc_out_str(c, "ERROR");
		else if (ntok != 6 && ntok != 7)
			mc_out_str(c, "ERROR");
		else
			process_update(c, tok, ntok, add ? MC_ADD : MC_APPEND);
	} else if (first == 'c') {
		if (strcmp(cmd, "cas") != 0 || (ntok != 7 && ntok != 8))
			mc_out_str(c, "ERROR");
		else
			process_update(c, tok, ntok, MC_CAS);
	} else if (first == 'i') {
		if (strcmp(cmd, "incr") != 0 || (ntok != 4 && ntok != 5))
			mc_out_str(c, "ERROR");
		else
			process_arith(c, tok, ntok, 1);
	} else if (first == 'd') {
		if (strcmp(cmd, "delete") == 0) {
			if (ntok < 3 || ntok > 5)
				mc_out_str(c, "ERROR");
			else
				process_delete(c, tok, ntok);
		} else if (strcmp(cmd, "decr") == 0 && (ntok == 4 || ntok == 5)) {
			process_arith(c, tok, ntok, 0);
		} else {
			mc_out_str(c, "ERROR");
		}
	} else if (first == 't') {
		if (strcmp(cmd, "touch") != 0 || (ntok != 4 && ntok != 5))
			mc_out_str(c, "ERROR");
		else
			process_touch(c, tok, ntok);
	} else if (strcmp(cmd, "rdma") == 0) {
		if (ntok != 2)
			mc_out_str(c, "ERROR");
		else
			process_rdma(c);
	} else if (strcmp(cmd, "rset") == 0 || strcmp(cmd, "radd") == 0 ||
		   strcmp(cmd, "rreplace") == 0) {
		if (ntok != 10 && ntok != 11)
			mc_out_str(c, "ERROR");
		else
			process_rstore(c, tok, ntok,
				       cmd[1] == 's'   ? MC_SET
				       : cmd[1] == 'a' ? MC_ADD
						       : MC_REPLACE);
	} else if (strcmp(cmd, "replace") == 0 || strcmp(cmd, "prepend") == 0) {
		if (ntok != 6 && ntok != 7)
			mc_out_str(c, "ERROR");
		else
			process_update(c, tok, ntok, cmd[0] == 'r' ? MC_REPLACE : MC_PREPEND);
	} else if (strcmp(cmd, "bget") == 0) {
		if (ntok < 3)
			mc_out_str(c, "ERROR");
		else
			process_get(c, tok, 0, 0);
	} else if (strcmp(cmd, "flush_all") == 0) {
		if (ntok > 4)
			mc_out_str(c, "ERROR");
		else
			process_flush_all(c, tok, ntok);
	} else if (strcmp(cmd, "version") == 0) {
		mc_out_str(c, "VERSION " MC_VERSION);
	} else if (strcmp(cmd, "quit") == 0) {
		c->state = MC_CONN_CLOSE;
	} else if (strcmp(cmd, "verbosity") == 0) {
		if (ntok != 3 && ntok != 4)
			mc_out_str(c, "ERROR");
		else
			process_verbosity(c, tok, ntok);
	} else if (strncmp(tok[ntok - 2].value, "HTTP/", 5) == 0) {
		c->state = MC_CONN_CLOSE; /* a web browser: memcached hangs up */
	} else {
		mc_out_str(c, "ERROR");
	}
}

/* A line of more than MC_LINE_MAX bytes is refused unless it is a get
 * or gets with many keys (memcached's rule, which takes any length). */
static int
long_line_ok(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] == ' ')
		i++;
	if (i > 100 || n > MC_GETLINE_MAX)
		return 0;
	return (n - i >= 4 && memcmp(p + i, "get ", 4) == 0) ||
	       (n - i >= 5 && memcmp(p + i, "gets ", 5) == 0);
}

int
mc_proto_process(struct mc_conn *c)
{
	for (;;) {
		char *p = c->rbuf + c->rstart;
		size_t avail = c->rend - c->rstart, k;

		switch (c->state) {
		case MC_CONN_CLOSE:
			return MC_PROC_CLOSE;
		case MC_CONN_NREAD:
			k = avail < c->rleft ? avail : c->rleft;
			memcpy(c->ritem, p, k);
			c->ritem += k;
			c->rleft -= k;
			c->rstart += k;
			avail -= k;
			p += k;
			if (c->rleft > 0)
				return MC_PROC_MORE;
			k = avail < 2 - c->crlf_got ? avail : 2 - c->crlf_got;
			memcpy(c->crlf + c->crlf_got, p, k);
			c->crlf_got += k;
			c->rstart += k;
			if (c->crlf_got < 2)
				return MC_PROC_MORE;
			nread_done(c);
			continue;
		case MC_CONN_SWALLOW:
			k = avail < c->swallow ? avail : c->swallow;
			c->rstart += k;
			c->swallow -= k;
			if (c->swallow > 0)
				return MC_PROC_MORE;
			c->state = MC_CONN_CMD;
			continue;
		case MC_CONN_CMD:
			break;
		}
		if (mc_conn_full(c))
			return MC_PROC_FULL;
		if (avail == 0)
			return MC_PROC_MORE;
		char *el = memchr(p, '\n', avail);
		size_t linelen = el != NULL ? (size_t)(el - p) : avail;
		if (linelen > MC_LINE_MAX && !long_line_ok(p, linelen)) {
			c->noreply = 0;
			mc_out_err(c, "CLIENT_ERROR line too long");
			c->state = MC_CONN_CLOSE;
			return MC_PROC_CLOSE;
		}
		if (el == NULL)
			return MC_PROC_MORE;
		char *end = el;
		if (el - p > 1 && el[-1] == '\r')
			end--;
		*end = '\0';
		c->rstart += linelen + 1;
		c->noreply = 0;
		process_command(c, p);
	}
}
