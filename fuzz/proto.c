/* fuzz/proto: khd's request line parser (docs/protocol.md), the first code
 * an untrusted byte meets in khd.  The input is what a client sends; as
 * khd's server does, the line ends at the first newline.  Besides "no
 * crash", it checks what the verbs rely on: a parsed value holds exactly the
 * bytes its argument gave (escapes decoded, nothing dropped), and what the
 * builder makes of a parsed request parses back to the same request.  The
 * values also go through the small parsers the verbs apply to them. */
#include "common/proto.h"
#include "common/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The value bytes of the i-th argument in the line: after "key=" up to the
 * next space. */
static size_t
raw_value(const char *line, size_t len, int i, size_t *pcts)
{
	size_t p = 0;
	int arg = -1;

	while (p < len && arg < i) {
		if (line[p++] == ' ')
			arg++;
	}
	while (p < len && line[p] != '=')
		p++;
	p++;
	size_t start = p;
	*pcts = 0;
	while (p < len && line[p] != ' ')
		*pcts += line[p++] == '%';
	return p - start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_req req, again;
	char err[128];
	const char *line = (const char *)data;
	const char *nl = memchr(data, '\n', size);
	size_t len = nl ? (size_t)(nl - line) : size;

	if (proto_parse(line, len, &req, err, sizeof(err)) < 0) {
		if (err[0] == '\0')
			abort(); /* a refusal always says why */
		return 0;
	}
	if (req.verb[0] == '\0' || req.nargs < 0 || req.nargs > PROTO_MAX_ARGS)
		abort();
	if (len > 0 && line[len - 1] == '\r')
		len--;
	for (int i = 0; i < req.nargs; i++) {
		size_t pcts, raw = raw_value(line, len, i, &pcts);
		/* every byte of the argument is in the value: "%XX" gives one */
		if (strlen(req.args[i].val) != raw - 2 * pcts)
			abort();
		if (proto_get(&req, req.args[i].key) != req.args[i].val)
			abort();
		uint64_t v;
		(void)parse_uint(req.args[i].val, 0, UINT64_MAX, &v);
		(void)parse_hex(req.args[i].val, &v);
		(void)parse_size(req.args[i].val, &v);
		(void)valid_name(req.args[i].val);
	}

	/* build it again: the same verb, keys and values */
	struct sbuf b;
	sbuf_init(&b);
	proto_begin(&b, req.verb);
	for (int i = 0; i < req.nargs; i++)
		proto_arg(&b, req.args[i].key, req.args[i].val);
	proto_end(&b);
	if (b.len >= PROTO_MAX_LINE) {
		/* escaping may grow a line past the limit: then it is refused */
		if (proto_parse(b.s, b.len - 1, &again, err, sizeof(err)) == 0)
			abort();
	} else {
		if (proto_parse(b.s, b.len - 1, &again, err, sizeof(err)) < 0)
			abort();
		if (strcmp(again.verb, req.verb) != 0 || again.nargs != req.nargs)
			abort();
		for (int i = 0; i < req.nargs; i++)
			if (strcmp(again.args[i].key, req.args[i].key) != 0 ||
			    strcmp(again.args[i].val, req.args[i].val) != 0)
				abort();
	}
	sbuf_free(&b);
	return 0;
}
