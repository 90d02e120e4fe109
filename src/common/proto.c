/* proto: parse and build request lines.  The parser is the first thing an
 * untrusted byte meets in khd, so it is strict and bounded: fixed-size
 * request, no allocation, every malformed form rejected with a reason. */
#include "common/proto.h"

#include <stdio.h>
#include <string.h>

static int
safe_byte(unsigned char c)
{
	/* (strchr finds the terminator too: a NUL is not a safe byte) */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("._,:/@+-", c) != NULL);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -1;
}

int
proto_parse(const char *line, size_t len, struct proto_req *req, char *err, size_t errlen)
{
	size_t i = 0, out = 0;

	req->verb[0] = '\0';
	req->nargs = 0;
	if (len >= PROTO_MAX_LINE)
		return fail(err, errlen, "request line too long");
	if (len > 0 && line[len - 1] == '\r')
		len--;
	/* verb */
	while (i < len && line[i] != ' ') {
		char c = line[i];
		if (!(c >= 'a' && c <= 'z') && c != '_')
			return fail(err, errlen, "malformed verb");
		if (i + 1 >= PROTO_MAX_VERB)
			return fail(err, errlen, "verb too long");
		req->verb[i] = c;
		i++;
	}
	req->verb[i] = '\0';
	if (i == 0)
		return fail(err, errlen, "empty request");
	while (i < len) {
		if (line[i] != ' ')
			return fail(err, errlen, "malformed request");
		i++;
		if (req->nargs == PROTO_MAX_ARGS)
			return fail(err, errlen, "too many arguments");
		char *key = req->args[req->nargs].key;
		size_t k = 0;
		while (i < len && line[i] != '=') {
			char c = line[i];
			if (!((c >= 'a' && c <= 'z') || c == '_' ||
			      (k > 0 && c >= '0' && c <= '9')))
				return fail(err, errlen, "malformed argument name");
			if (k + 1 >= PROTO_MAX_KEY)
				return fail(err, errlen, "argument name too long");
			key[k++] = c;
			i++;
		}
		key[k] = '\0';
		if (k == 0 || i >= len)
			return fail(err, errlen, "malformed argument");
		i++; /* '=' */
		for (int a = 0; a < req->nargs; a++)
			if (strcmp(req->args[a].key, key) == 0)
				return fail(err, errlen, "duplicate argument");
		req->args[req->nargs].val = req->buf + out;
		while (i < len && line[i] != ' ') {
			unsigned char c = (unsigned char)line[i];
			if (c == '%') {
				int h, l;
				if (i + 2 >= len || (h = hexval(line[i + 1])) < 0 ||
				    (l = hexval(line[i + 2])) < 0)
					return fail(err, errlen, "malformed escape");
				c = (unsigned char)(h * 16 + l);
				if (c == '\0')
					return fail(err, errlen, "NUL in argument");
				i += 3;
			} else if (safe_byte(c)) {
				i++;
			} else {
				return fail(err, errlen, "unescaped byte in argument");
			}
			req->buf[out++] = (char)c;
		}
		req->buf[out++] = '\0';
		req->nargs++;
	}
	return 0;
}

const char *
proto_get(const struct proto_req *req, const char *key)
{
	for (int i = 0; i < req->nargs; i++)
		if (strcmp(req->args[i].key, key) == 0)
			return req->args[i].val;
	return NULL;
}

void
proto_begin(struct sbuf *b, const char *verb)
{
	sbuf_reset(b);
	sbuf_adds(b, verb);
}

void
proto_arg(struct sbuf *b, const char *key, const char *val)
{
	sbuf_printf(b, " %s=", key);
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (safe_byte(*p))
			sbuf_add(b, p, 1);
		else
			sbuf_printf(b, "%%%02X", *p);
	}
}

void
proto_end(struct sbuf *b)
{
	sbuf_add(b, "\n", 1);
}
