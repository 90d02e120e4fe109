/* fuzz/metrics: what khd reads on its metrics port (khd --metrics-port),
 * from anyone who can reach it: the HTTP request head
 * (metrics_parse_request, src/khd/metrics_text.c), and the text it writes
 * from values it does not choose: label values (principals' names, node
 * types) and counters.  The input is the request head; its last 17 bytes
 * also make a counter (base, and a byte picking mul and div as the
 * exposition uses them).  Checks: a parsed method and path are what the
 * request line held; an escaped label is one quoted string; a counter
 * prints exactly base*mul/div. */
#include "fuzz.h"
#include "khd/metrics.h"

typedef unsigned __int128 u128;

static void
check_label(const char *v)
{
	struct sbuf out;
	sbuf_init(&out);
	metrics_label(&out, v);
	FUZZ_CHECK(out.len >= 2 && out.s[0] == '"' && out.s[out.len - 1] == '"');
	for (size_t i = 1; i + 1 < out.len; i++) {
		FUZZ_CHECK(out.s[i] != '"' && out.s[i] != '\n');
		if (out.s[i] == '\\') {
			i++;
			FUZZ_CHECK(i + 1 < out.len &&
				   (out.s[i] == '\\' || out.s[i] == '"' || out.s[i] == 'n'));
		}
	}
	sbuf_free(&out);
}

static void
check_value(unsigned long long base, unsigned long long mul, unsigned long long div, int dec)
{
	struct sbuf out;
	u128 got = 0, want = (u128)base * mul;
	int seen_dot = 0, frac = 0;

	sbuf_init(&out);
	metrics_value(&out, base, mul, div);
	for (size_t i = 0; i < out.len; i++) {
		if (out.s[i] == '.' && !seen_dot) {
			seen_dot = 1;
			continue;
		}
		FUZZ_CHECK(out.s[i] >= '0' && out.s[i] <= '9');
		got = got * 10 + (u128)(out.s[i] - '0');
		frac += seen_dot;
	}
	FUZZ_CHECK(frac == dec);
	FUZZ_CHECK(got == want); /* base*mul/div with dec decimals, exactly */
	sbuf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char method[16], path[256];
	int r = metrics_parse_request((const char *)data, size, method, sizeof(method), path,
				      sizeof(path));
	FUZZ_CHECK(r >= -1 && r <= 1);
	if (r == 1) {
		size_t ml = strlen(method), pl = strlen(path);
		FUZZ_CHECK(ml > 0 && ml < sizeof(method) && pl < sizeof(path));
		FUZZ_CHECK(memcmp(data, method, ml) == 0 && data[ml] == ' ');
		FUZZ_CHECK(memchr(data + ml + 1, '\n', pl) == NULL);
		check_label(path);
	}
	char *s = fuzz_str(data, size);
	check_label(s);
	free(s);
	if (size >= 9) {
		static const unsigned long long divs[] = {1, 1000, 1000000};
		unsigned long long base;
		uint8_t pick = data[size - 9];
		memcpy(&base, data + size - 8, 8);
		int d = pick % 3;
		check_value(base, (pick & 4) ? 1024 : 1, divs[d], d * 3);
	}
	return 0;
}
