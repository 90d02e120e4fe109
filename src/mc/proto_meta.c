/* proto_meta: memcached 1.6's meta commands: mg, ms, md, ma, mn, me.
 * Flags as memcached 1.6.18 parses them: mg v k f t c s h l O q u T N R b,
 * ms F T C I q O k c b and the mode switch M (E A P R S), md q C I T O k b,
 * ma D J N T M q O k t c v b.  Unknown flags are an error, as there. */
#include "mc/conn.h"

#include <limits.h>
#include <string.h>

#define ERR_FORMAT     "CLIENT_ERROR bad command line format"
#define MFLAG_MAX_OPT  20 /* tokens */
#define MFLAG_MAX_OPAQ 32 /* bytes of an O token */

struct mflags {
	int has_error, no_update, vivify, value, set_stale, no_reply, has_cas, new_ttl;
	int key_binary, la;
	char mode;
	uint32_t exptime, autoviv_exptime, recache_time, client_flags;
	uint64_t req_cas, delta, initial;
};

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decode base64 (with padding) in place; the new length, or 0. */
static size_t
b64_decode(char *s, size_t n)
{
	size_t out = 0;
	uint32_t acc = 0;
	int bits = 0, pad = 0;

	if (n == 0 || n % 4 != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *q = s[i] ? strchr(b64, s[i]) : NULL;
		if (s[i] == '=' && i >= n - 2) {
			pad++;
			continue;
		}
		if (q == NULL || pad > 0)
			return 0;
		acc = acc << 6 | (uint32_t)(q - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s[out++] = (char)(acc >> bits & 0xff);
		}
	}
	return out;
}

static char *
b64_encode(const unsigned char *p, size_t n, char *o)
{
	size_t i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = b64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = b64[v >> 18];
		*o++ = b64[v >> 12 & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = '=';
	}
	return o;
}

/* " k<key>", and " b" when the key travels in base64. */
static char *
put_key(char *p, const char *key, size_t klen, int bin)
{
	*p++ = ' ';
	*p++ = 'k';
	if (!bin) {
		memcpy(p, key, klen);
		return p + klen;
	}
	p = b64_encode((const unsigned char *)key, klen, p);
	*p++ = ' ';
	*p++ = 'b';
	return p;
}

static char *
put_flag(char *p, char f)
{
	*p++ = ' ';
	*p++ = f;
	return p;
}

static char *
put_ttl(char *p, uint32_t exptime, uint32_t now)
{
	if (exptime == 0) {
		memcpy(p, "-1", 2);
		return p + 2;
	}
	return mc_utoa((uint32_t)(exptime - now), p);
}

static int
preparse(struct mc_conn *c, struct mc_token *tok, size_t start, struct mflags *of,
	 const char **errstr)
{
	struct mc_cache *cache = c->ctx->cache;
	unsigned char seen[127] = {0};
	int32_t t;

	for (size_t i = start; tok[i].length != 0; i++) {
		unsigned char o = (unsigned char)tok[i].value[0];
		if (o >= 127 || seen[o]) {
			*errstr = "CLIENT_ERROR duplicate flag";
			return -1;
		}
		seen[o] = 1;
		switch (o) {
		case 'b': {
			size_t n = b64_decode(tok[1].value, tok[1].length);
			if (n == 0) {
				*errstr = "CLIENT_ERROR error decoding key";
				of->has_error = 1;
			}
			tok[1].length = n;
			of->key_binary = 1;
			break;
		}
		case 'N':
		case 'T':
		case 'R':
			if (mc_strtol32(tok[i].value + 1, &t) < 0) {
				*errstr = "CLIENT_ERROR bad token in command line format";
				of->has_error = 1;
			} else if (o == 'N') {
				of->vivify = 1;
				of->autoviv_exptime = mc_exptime(cache, t, c->now);
			} else if (o == 'T') {
				of->exptime = mc_exptime(cache, t, c->now);
				of->new_ttl = 1;
			} else {
				of->recache_time = mc_exptime(cache, t, c->now);
			}
			break;
		case 'l':
			of->la = 1;
			break;
		case 'O':
		case 'P':
		case 'L':
		case 'k':
		case 's':
		case 't':
		case 'c':
		case 'f':
		case 'h':
			break;
		case 'v':
			of->value = 1;
			break;
		case 'u':
			of->no_update = 1;
			break;
		case 'q':
			of->no_reply = 1;
			break;
		case 'F':
			if (mc_strtoul32(tok[i].value + 1, &of->client_flags) < 0)
				of->has_error = 1;
			break;
		case 'C':
			if (mc_strtoull_tok(tok[i].value + 1, &of->req_cas) < 0) {
				*errstr = "CLIENT_ERROR bad token in command line format";
				of->has_error = 1;
			} else {
				of->has_cas = 1;
			}
			break;
		case 'M':
			if (tok[i].length != 2) {
				*errstr = "CLIENT_ERROR incorrect length for M token";
				of->has_error = 1;
			} else {
				of->mode = tok[i].value[1];
			}
			break;
		case 'J':
			if (mc_strtoull_tok(tok[i].value + 1, &of->initial) < 0) {
				*errstr = "CLIENT_ERROR invalid numeric initial value";
				of->has_error = 1;
			}
			break;
		case 'D':
			if (mc_strtoull_tok(tok[i].value + 1, &of->delta) < 0) {
				*errstr = "CLIENT_ERROR invalid numeric delta value";
				of->has_error = 1;
			}
			break;
		case 'I':
			of->set_stale = 1;
			break;
		default:
			*errstr = "CLIENT_ERROR invalid flag";
			return -1;
		}
	}
	return of->has_error ? -1 : 0;
}

/* An empty item for key (mg N), or NULL when another client made one. */
static struct mc_chunk *
vivify(struct mc_conn *c, const char *key, size_t klen, uint32_t exptime, const char *value,
       size_t vlen)
{
	enum mc_res res;
	struct mc_chunk *ch =
	    mc_item_new(c->ctx->cache, key, klen, 0, exptime, (uint32_t)vlen, c->now, &res);

	if (ch == NULL)
		return NULL;
	memcpy(mc_item_value(ch), value, vlen);
	__atomic_fetch_add(&ch->refs, 1, __ATOMIC_RELAXED); /* ours, past the store */
	__atomic_fetch_or(&ch->flags, MC_CH_WON, __ATOMIC_RELAXED);
	if (mc_store(c->ctx->cache, ch, MC_ADD, 0, 0, c->now, NULL) != MC_STORED) {
		mc_release(c->ctx->cache, ch);
		return NULL;
	}
	return ch;
}

static void
process_mget(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	struct mc_cache *cache = c->ctx->cache;
	struct mflags of = {0};
	const char *errstr = ERR_FORMAT;
	char line[MC_KEY_MAX * 2 + 64 + MFLAG_MAX_OPT * (MFLAG_MAX_OPAQ + 24)], *p = line;

	if (ntok < 3) {
		mc_out_str(c, "ERROR");
		return;
	}
	if (tok[1].length > MC_KEY_MAX) {
		mc_out_err(c, ERR_FORMAT);
		return;
	}
	if (ntok > MFLAG_MAX_OPT) {
		mc_out_err(c, "CLIENT_ERROR options flags are too long");
		return;
	}
	if (preparse(c, tok, 2, &of, &errstr) != 0) {
		mc_out_err(c, errstr);
		return;
	}
	c->noreply = of.no_reply;
	const char *key = tok[1].value;
	size_t klen = tok[1].length;
	int created = 0, won = 0;
	struct mc_chunk *ch = of.new_ttl ? mc_get_touch(cache, key, klen, of.exptime, c->now)
					 : mc_get(cache, key, klen, c->now, 0);
	if (ch == NULL && of.vivify) {
		ch = vivify(c, key, klen, of.autoviv_exptime, "", 0);
		if (ch != NULL)
			created = won = 1;
		else
			ch = mc_get(cache, key, klen, c->now, 0);
	}
	if (of.new_ttl)
		MC_INC(c, cmd_touch);
	else
		MC_INC(c, cmd_get);
	if (ch == NULL) {
		if (of.new_ttl)
			MC_INC(c, touch_misses);
		else
			MC_INC(c, get_misses);
		memcpy(p, "EN", 2);
		p += 2;
		for (size_t i = 2; i < ntok - 1; i++) {
			if (tok[i].value[0] == 'O') {
				if (tok[i].length > MFLAG_MAX_OPAQ) {
					mc_out_err(c, "CLIENT_ERROR opaque token too long");
					return;
				}
				*p++ = ' ';
				memcpy(p, tok[i].value, tok[i].length);
				p += tok[i].length;
			} else if (tok[i].value[0] == 'k') {
				p = put_key(p, key, klen, of.key_binary);
			}
		}
		if (c->noreply)
			return;
		memcpy(p, "\r\n", 2);
		mc_out(c, line, (size_t)(p - line) + 2);
		return;
	}

	const struct mc_item *it = mc_chunk_item(ch);
	uint8_t fl = __atomic_load_n(&ch->flags, __ATOMIC_RELAXED);
	if (created)
		fl &= (uint8_t)~MC_CH_WON; /* vivify took the token for us */
	if (of.value) {
		memcpy(p, "VA ", 3);
		p = mc_utoa(it->value_len, p + 3);
	} else {
		memcpy(p, "HD", 2);
		p += 2;
	}
	for (size_t i = 2; i < ntok - 1; i++) {
		switch (tok[i].value[0]) {
		case 'R':
			if (!(fl & MC_CH_WON) && !created && it->exptime != 0 &&
			    it->exptime < of.recache_time)
				won = 1;
			break;
		case 's':
			p = mc_utoa(it->value_len, put_flag(p, 's'));
			break;
		case 't':
			p = put_ttl(put_flag(p, 't'), it->exptime, c->now);
			break;
		case 'c':
			p = mc_utoa(it->version, put_flag(p, 'c'));
			break;
		case 'f':
			p = mc_utoa(it->flags, put_flag(p, 'f'));
			break;
		case 'l':
			p = mc_utoa(c->now - __atomic_load_n(&ch->time, __ATOMIC_RELAXED),
				    put_flag(p, 'l'));
			break;
		case 'h':
			p = put_flag(p, 'h');
			*p++ = fl & MC_CH_FETCHED ? '1' : '0';
			break;
		case 'O':
			if (tok[i].length > MFLAG_MAX_OPAQ) {
				mc_release(cache, ch);
				mc_out_err(c, "CLIENT_ERROR opaque token too long");
				return;
			}
			*p++ = ' ';
			memcpy(p, tok[i].value, tok[i].length);
			p += tok[i].length;
			break;
		case 'k':
			p = put_key(p, mc_item_key(it), it->key_len, of.key_binary);
			break;
		}
	}
	if (fl & MC_CH_WON)
		p = put_flag(p, 'Z');
	if (fl & MC_CH_STALE) {
		p = put_flag(p, 'X');
		if (!(fl & MC_CH_WON))
			won = 1;
	}
	if (won) {
		p = put_flag(p, 'W');
		__atomic_fetch_or(&ch->flags, MC_CH_WON, __ATOMIC_RELAXED);
	}
	memcpy(p, "\r\n", 2);
	mc_out(c, line, (size_t)(p - line) + 2);
	if (!of.no_update)
		mc_bump(ch, c->now);
	if (of.new_ttl)
		MC_INC(c, touch_hits);
	else
		MC_INC(c, get_hits);
	if (of.value) {
		mc_out_value(c, ch);
		mc_out(c, "\r\n", 2);
	} else {
		mc_release(cache, ch);
	}
}

static void
process_mset(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	struct mc_cache *cache = c->ctx->cache;
	struct mflags of = {0};
	const char *errstr = ERR_FORMAT;
	int32_t vlen = 0;
	enum mc_op op = MC_SET;
	enum mc_res res;

	if (ntok < 3) {
		mc_out_str(c, "ERROR");
		return;
	}
	if (tok[1].length > MC_KEY_MAX || ntok == 3) {
		mc_out_err(c, ERR_FORMAT);
		return;
	}
	if (ntok > MFLAG_MAX_OPT) {
		mc_out_err(c, "CLIENT_ERROR options flags too long");
		return;
	}
	if (mc_strtol32(tok[2].value, &vlen) < 0 || vlen < 0 || vlen > INT_MAX - 2) {
		mc_out_err(c, ERR_FORMAT);
		return;
	}
	if (preparse(c, tok, 3, &of, &errstr) != 0)
		goto fail;
	c->noreply = of.no_reply;
	c->meta_retlen = 0;
	for (size_t i = 3; i < ntok - 1; i++) {
		char f = tok[i].value[0];
		if (f == 'O') {
			if (tok[i].length > MFLAG_MAX_OPAQ) {
				errstr = "CLIENT_ERROR opaque token too long";
				of.has_error = 1;
				break;
			}
			memcpy(c->meta_ret + c->meta_retlen, tok[i].value, tok[i].length);
			c->meta_retlen += tok[i].length;
			c->meta_ret[c->meta_retlen++] = ' ';
		} else if (f == 'k' || f == 'c') {
			c->meta_ret[c->meta_retlen++] = f;
			c->meta_ret[c->meta_retlen++] = ' ';
		}
	}
	switch (of.mode) {
	case 0:
	case 'S':
		break;
	case 'E':
		op = MC_ADD;
		break;
	case 'A':
		op = MC_APPEND;
		break;
	case 'P':
		op = MC_PREPEND;
		break;
	case 'R':
		op = MC_REPLACE;
		break;
	default:
		errstr = "CLIENT_ERROR invalid mode for ms M token";
		goto fail;
	}
	if (of.has_cas && (op == MC_SET || op == MC_REPLACE))
		op = MC_CAS;
	if (of.has_error)
		goto fail;
	struct mc_chunk *ch = mc_item_new(cache, tok[1].value, tok[1].length, of.client_flags,
					  of.exptime, (uint32_t)vlen, c->now, &res);
	if (ch == NULL) {
		if (res == MC_TOO_LARGE) {
			errstr = "SERVER_ERROR object too large for cache";
			MC_INC(c, store_too_large);
		} else {
			errstr = "SERVER_ERROR out of memory storing object";
			MC_INC(c, store_no_memory);
		}
		if (tok[1].length > 0)
			mc_delete(cache, tok[1].value, tok[1].length, 0, 0, 0, c->now);
		goto fail;
	}
	memcpy(c->meta_key, tok[1].value, tok[1].length);
	c->meta_klen = tok[1].length;
	c->meta_bin = of.key_binary;
	c->item = ch;
	c->ritem = mc_item_value(ch);
	c->rleft = (size_t)vlen;
	c->crlf_got = 0;
	c->nread_op = op;
	c->nread_cas = of.has_cas ? of.req_cas : 0;
	c->nread_meta = 1;
	c->nread_stale = of.set_stale && op == MC_CAS;
	c->state = MC_CONN_NREAD;
	return;
fail:
	c->state = MC_CONN_SWALLOW;
	c->swallow = (size_t)vlen + 2;
	mc_out_err(c, errstr);
}

void
mc_meta_nread_done(struct mc_conn *c, enum mc_res r, uint64_t cas)
{
	char line[MC_KEY_MAX * 2 + 256], *p = line;
	const char *code;

	switch (r) {
	case MC_STORED:
		if (c->noreply)
			return;
		code = "HD";
		break;
	case MC_EXISTS:
		code = "EX";
		break;
	case MC_NOT_FOUND:
		code = "NF";
		break;
	case MC_NOT_STORED:
		code = "NS";
		break;
	default:
		mc_out_err(c, "SERVER_ERROR out of memory storing object");
		return;
	}
	memcpy(p, code, 2);
	p += 2;
	for (size_t i = 0; i < c->meta_retlen; i++) {
		char f = c->meta_ret[i];
		if (f == 'O') {
			*p++ = ' ';
			while (i < c->meta_retlen && c->meta_ret[i] != ' ')
				*p++ = c->meta_ret[i++];
		} else if (f == 'k') {
			p = put_key(p, c->meta_key, c->meta_klen, c->meta_bin);
		} else if (f == 'c') {
			p = mc_utoa(cas, put_flag(p, 'c'));
		}
	}
	memcpy(p, "\r\n", 2);
	mc_out(c, line, (size_t)(p - line) + 2);
}

/* O and k flags of an answer that has no item to speak of. */
static char *
put_ok_flags(char *p, struct mc_token *tok, size_t ntok, const char *key, size_t klen, int bin)
{
	for (size_t i = 2; i < ntok - 1; i++) {
		if (tok[i].value[0] == 'O') {
			*p++ = ' ';
			memcpy(p, tok[i].value, tok[i].length);
			p += tok[i].length;
		} else if (tok[i].value[0] == 'k') {
			p = put_key(p, key, klen, bin);
		}
	}
	return p;
}

static int
opaque_too_long(struct mc_token *tok, size_t ntok)
{
	for (size_t i = 2; i < ntok - 1; i++)
		if (tok[i].value[0] == 'O' && tok[i].length > MFLAG_MAX_OPAQ)
			return 1;
	return 0;
}

static void
process_mdelete(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	struct mflags of = {0};
	const char *errstr = ERR_FORMAT;
	char line[MC_KEY_MAX * 2 + 64 + MFLAG_MAX_OPT * (MFLAG_MAX_OPAQ + 4)], *p = line;

	if (ntok < 3) {
		mc_out_str(c, "ERROR");
		return;
	}
	if (tok[1].length > MC_KEY_MAX) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (ntok > MFLAG_MAX_OPT) {
		mc_out_str(c, "CLIENT_ERROR options flags too long");
		return;
	}
	if (preparse(c, tok, 2, &of, &errstr) != 0) {
		mc_out_err(c, "CLIENT_ERROR invalid or duplicate flag");
		return;
	}
	c->noreply = of.no_reply;
	if (opaque_too_long(tok, ntok)) {
		mc_out_err(c, "CLIENT_ERROR opaque token too long");
		return;
	}
	enum mc_res r =
	    mc_delete(c->ctx->cache, tok[1].value, tok[1].length, of.has_cas ? of.req_cas : 0,
		      of.set_stale, of.new_ttl ? of.exptime : UINT32_MAX, c->now);
	if (r == MC_DELETED) {
		MC_INC(c, delete_hits);
		if (c->noreply)
			return;
		memcpy(p, "HD", 2);
	} else if (r == MC_EXISTS) {
		MC_INC(c, delete_misses);
		memcpy(p, "EX", 2);
	} else {
		MC_INC(c, delete_misses);
		memcpy(p, "NF", 2);
	}
	p = put_ok_flags(p + 2, tok, ntok, tok[1].value, tok[1].length, of.key_binary);
	memcpy(p, "\r\n", 2);
	mc_out(c, line, (size_t)(p - line) + 2);
}

static void
process_marith(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	struct mc_cache *cache = c->ctx->cache;
	struct mflags of = {.delta = 1};
	const char *errstr = ERR_FORMAT;
	char line[MC_KEY_MAX * 2 + 96 + MFLAG_MAX_OPT * (MFLAG_MAX_OPAQ + 24)], *p = line;
	int incr = 1;
	uint64_t value = 0, cas = 0;
	struct mc_chunk *ch = NULL;

	if (ntok < 3) {
		mc_out_str(c, "ERROR");
		return;
	}
	if (tok[1].length > MC_KEY_MAX) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	if (ntok > MFLAG_MAX_OPT) {
		mc_out_str(c, "CLIENT_ERROR options flags too long");
		return;
	}
	if (preparse(c, tok, 2, &of, &errstr) != 0) {
		mc_out_err(c, "CLIENT_ERROR invalid or duplicate flag");
		return;
	}
	c->noreply = of.no_reply;
	switch (of.mode) {
	case 0:
	case 'I':
	case '+':
		break;
	case 'D':
	case '-':
		incr = 0;
		break;
	default:
		mc_out_err(c, "CLIENT_ERROR invalid mode for ma M token");
		return;
	}
	if (opaque_too_long(tok, ntok)) {
		mc_out_err(c, "CLIENT_ERROR opaque token too long");
		return;
	}
	const char *key = tok[1].value;
	size_t klen = tok[1].length;
	enum mc_res r = mc_arith(cache, key, klen, incr, of.delta, of.has_cas ? of.req_cas : 0,
				 c->now, &value, &cas, &ch);
	switch (r) {
	case MC_OK:
		if (incr)
			MC_INC(c, incr_hits);
		else
			MC_INC(c, decr_hits);
		break;
	case MC_NON_NUMERIC:
		mc_out_err(c, "CLIENT_ERROR cannot increment or decrement non-numeric value");
		return;
	case MC_NOT_FOUND:
		if (of.vivify) {
			char num[24];
			size_t n = (size_t)(mc_utoa(of.initial, num) - num);
			ch = vivify(c, key, klen, of.autoviv_exptime, num, n);
			if (ch == NULL) {
				memcpy(p, "NS", 2);
				p += 2;
				break;
			}
			__atomic_fetch_and(&ch->flags, (uint8_t)~MC_CH_WON, __ATOMIC_RELAXED);
			value = of.initial;
			cas = mc_chunk_item(ch)->version;
			break;
		}
		if (incr)
			MC_INC(c, incr_misses);
		else
			MC_INC(c, decr_misses);
		memcpy(p, "NF", 2);
		p += 2;
		break;
	case MC_EXISTS:
		memcpy(p, "EX", 2);
		p += 2;
		break;
	default:
		mc_out_err(c, "SERVER_ERROR out of memory");
		return;
	}
	if (ch == NULL) {
		p = put_ok_flags(p, tok, ntok, key, klen, of.key_binary);
		memcpy(p, "\r\n", 2);
		mc_out(c, line, (size_t)(p - line) + 2);
		return;
	}
	uint32_t exptime = mc_chunk_item(ch)->exptime;
	mc_release(cache, ch);
	if (of.new_ttl && mc_touch(cache, key, klen, of.exptime, c->now) == MC_TOUCHED)
		exptime = of.exptime;
	if (c->noreply)
		return;
	char num[24];
	size_t n = (size_t)(mc_utoa(value, num) - num);
	if (of.value) {
		memcpy(p, "VA ", 3);
		p = mc_utoa(n, p + 3);
	} else {
		memcpy(p, "HD", 2);
		p += 2;
	}
	for (size_t i = 2; i < ntok - 1; i++) {
		switch (tok[i].value[0]) {
		case 'c':
			p = mc_utoa(cas, put_flag(p, 'c'));
			break;
		case 't':
			p = put_ttl(put_flag(p, 't'), exptime, c->now);
			break;
		case 'O':
			*p++ = ' ';
			memcpy(p, tok[i].value, tok[i].length);
			p += tok[i].length;
			break;
		case 'k':
			p = put_key(p, key, klen, of.key_binary);
			break;
		}
	}
	if (of.value) {
		memcpy(p, "\r\n", 2);
		p += 2;
		memcpy(p, num, n);
		p += n;
	}
	memcpy(p, "\r\n", 2);
	mc_out(c, line, (size_t)(p - line) + 2);
}

/* me: memcached's debug line about an item. */
static void
process_mdebug(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	char line[MC_KEY_MAX * 2 + 160], *p = line;

	if (ntok < 3 || tok[1].length > MC_KEY_MAX) {
		mc_out_str(c, ERR_FORMAT);
		return;
	}
	size_t klen = tok[1].length;
	if (ntok >= 4 && tok[2].length == 1 && tok[2].value[0] == 'b') {
		klen = b64_decode(tok[1].value, klen);
		if (klen == 0) {
			mc_out_str(c, ERR_FORMAT);
			return;
		}
	}
	MC_INC(c, cmd_meta);
	struct mc_chunk *ch = mc_get(c->ctx->cache, tok[1].value, klen, c->now, 0);
	if (ch == NULL) {
		mc_out_str(c, "EN");
		return;
	}
	const struct mc_item *it = mc_chunk_item(ch);
	uint8_t fl = __atomic_load_n(&ch->flags, __ATOMIC_RELAXED);
	memcpy(p, "ME ", 3);
	p += 3;
	if (klen != tok[1].length)
		p = b64_encode((const unsigned char *)mc_item_key(it), it->key_len, p);
	else
		p = (char *)memcpy(p, mc_item_key(it), it->key_len) + it->key_len;
	memcpy(p, " exp=", 5);
	p += 5;
	if (it->exptime == 0) {
		memcpy(p, "-1", 2);
		p += 2;
	} else {
		int64_t d = (int64_t)c->now - (int64_t)it->exptime;
		if (d < 0) {
			*p++ = '-';
			d = -d;
		}
		p = mc_utoa((uint64_t)d, p);
	}
	memcpy(p, " la=", 4);
	p = mc_utoa(c->now - __atomic_load_n(&ch->time, __ATOMIC_RELAXED), p + 4);
	memcpy(p, " cas=", 5);
	p = mc_utoa(it->version, p + 5);
	memcpy(p, fl & MC_CH_FETCHED ? " fetch=yes" : " fetch=no", fl & MC_CH_FETCHED ? 10 : 9);
	p += fl & MC_CH_FETCHED ? 10 : 9;
	memcpy(p, " cls=", 5);
	p = mc_utoa(ch->cls, p + 5);
	memcpy(p, " size=", 6);
	p = mc_utoa(ch->nbytes, p + 6);
	memcpy(p, "\r\n", 2);
	mc_out(c, line, (size_t)(p - line) + 2);
	mc_release(c->ctx->cache, ch);
}

void
mc_meta_command(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	switch (tok[0].value[1]) {
	case 'g':
		process_mget(c, tok, ntok);
		break;
	case 's':
		process_mset(c, tok, ntok);
		break;
	case 'd':
		process_mdelete(c, tok, ntok);
		break;
	case 'a':
		process_marith(c, tok, ntok);
		break;
	case 'e':
		process_mdebug(c, tok, ntok);
		break;
	case 'n':
		mc_out_str(c, "MN");
		break;
	default:
		mc_out_str(c, "ERROR");
		break;
	}
}
