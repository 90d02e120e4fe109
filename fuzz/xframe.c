/* fuzz/xframe: the framing of exec streams (src/exec/frame.h), which khd
 * reads from every exec client and khctl and khfs read from khd.  The
 * input is a stream as it comes over the socket: header lines, each
 * followed by the bytes it announces.  The first byte picks the side that
 * reads.  Besides "no crash", a parsed frame keeps the promises its
 * readers rely on: a known kind for that side, a rank in range, a length
 * within XF_MAXDATA, a signal 1..64. */
#include "exec/frame.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	int from_khd = data[0] & 1;
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	char err[128];

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct xframe f;
		if (n + 1 > XF_MAXLINE)
			break; /* the readers refuse a longer header before parsing */
		err[0] = '\0';
		if (xframe_parse(p, n, from_khd, &f, err, sizeof(err)) < 0) {
			FUZZ_CHECK(err[0] != '\0' && memchr(err, '\n', strlen(err)) == NULL);
			break;
		}
		FUZZ_CHECK(strchr(from_khd ? "oexd" : "ick", f.kind) != NULL);
		if (strchr("oexic", f.kind))
			FUZZ_CHECK(f.rank >= 0 ||
				   ((f.kind == 'i' || f.kind == 'c') && f.rank == XF_ALL));
		if (strchr("oei", f.kind))
			FUZZ_CHECK(f.len <= XF_MAXDATA);
		if (f.kind == 'k')
			FUZZ_CHECK(f.sig >= 1 && f.sig <= 64 && (f.rank >= 0 || f.rank == XF_ALL));
		p += n + (nl != NULL);
		if (strchr("oei", f.kind)) {
			if ((size_t)(end - p) < f.len)
				break;
			p += f.len;
		}
	}
	return 0;
}
