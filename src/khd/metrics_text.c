/* metrics_text: the pure parts of the metrics endpoint: reading a
 * scraper's request head (the first bytes khd takes from the network on the
 * metrics port) and writing label values and counters as OpenMetrics text. */
#include "khd/metrics.h"

#include <stdio.h>
#include <string.h>

int
metrics_parse_request(const char *buf, size_t len, char *method, size_t mlen, char *path,
		      size_t plen)
{
	const char *end = NULL;
	for (size_t i = 0; i + 1 < len && end == NULL; i++) {
		if (buf[i] == '\n' && buf[i + 1] == '\n')
			end = buf + i;
		else if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
			end = buf + i;
	}
	/* The request line must be sane as soon as it is whole. */
	const char *nl = memchr(buf, '\n', len);
	if (nl == NULL)
		return len >= METRICS_HEAD_MAX ? -1 : 0;
	/* A NUL would cut the method or path short: "GET\0junk" is not GET. */
	if (memchr(buf, '\0', (size_t)(nl - buf)) != NULL)
		return -1;
	const char *sp1 = memchr(buf, ' ', (size_t)(nl - buf));
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1)) : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == buf || sp2 == sp1 + 1)
		return -1;
	size_t vl = (size_t)(nl - sp2 - 1);
	if (vl > 0 && sp2[vl] == '\r')
		vl--;
	if (vl != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
		return -1;
	if ((size_t)(sp1 - buf) >= mlen || (size_t)(sp2 - sp1 - 1) >= plen)
		return -1;
	if (end == NULL)
		return len >= METRICS_HEAD_MAX ? -1 : 0;
	memcpy(method, buf, (size_t)(sp1 - buf));
	method[sp1 - buf] = '\0';
	memcpy(path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	path[sp2 - sp1 - 1] = '\0';
	return 1;
}

void
metrics_label(struct sbuf *out, const char *v)
{
	sbuf_adds(out, "\"");
	for (; *v; v++) {
		if (*v == '\\')
			sbuf_adds(out, "\\\\");
		else if (*v == '"')
			sbuf_adds(out, "\\\"");
		else if (*v == '\n')
			sbuf_adds(out, "\\n");
		else
			sbuf_add(out, v, 1);
	}
	sbuf_adds(out, "\"");
}

void
metrics_value(struct sbuf *out, unsigned long long base, unsigned long long mul,
	      unsigned long long div)
{
	int dec = 0;
	for (unsigned long long d = div; d > 1; d /= 10)
		dec++;
	/* base*mul may pass 64 bits (the byte-seconds of a principal with
	 * many large nodes, after months), and so may the whole part. */
	unsigned __int128 v = (unsigned __int128)base * mul, iq = v / div;
	unsigned long long ir = (unsigned long long)(v % div);
	char digits[40];
	int n = 0;
	do {
		digits[n++] = (char)('0' + (int)(iq % 10));
		iq /= 10;
	} while (iq > 0);
	while (n > 0)
		sbuf_add(out, &digits[--n], 1);
	if (dec > 0)
		sbuf_printf(out, ".%0*llu", dec, ir);
}
