/* gz: deflate into a file descriptor.  zlib's own gzip wrapper writes mtime
 * 0, no name and the OS byte of the build, which is what reproducible
 * output needs; the CRC of the written bytes serves the uImage header. */
#include "appliance/gz.h"
#include "common/util.h"

#include <errno.h>
#include <string.h>

int
gz_open(struct gz_out *g, int fd, int level, char *err, size_t errlen)
{
	memset(&g->zs, 0, sizeof(g->zs));
	g->fd = fd;
	g->crc = (uint32_t)crc32(0, Z_NULL, 0);
	g->written = g->in = 0;
	g->err = err;
	g->errlen = errlen;
	g->live = 0;
	if (deflateInit2(&g->zs, level, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return seterr(err, errlen, "cannot start deflate");
	g->live = 1;
	return 0;
}

static int
drain(struct gz_out *g, int flush)
{
	int zr;

	do {
		g->zs.next_out = g->buf;
		g->zs.avail_out = sizeof(g->buf);
		zr = deflate(&g->zs, flush);
		if (zr == Z_STREAM_ERROR)
			return seterr(g->err, g->errlen, "deflate failed");
		size_t n = sizeof(g->buf) - g->zs.avail_out;
		if (n > 0) {
			if (write_all(g->fd, g->buf, n) < 0)
				return seterr(g->err, g->errlen, "write: %s", strerror(errno));
			g->crc = (uint32_t)crc32(g->crc, g->buf, (uInt)n);
			g->written += n;
		}
	} while (g->zs.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
	return 0;
}

int
gz_write(void *ctx, const void *p, size_t n)
{
	struct gz_out *g = ctx;
	const unsigned char *b = p;

	while (n > 0) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		g->zs.next_in = (unsigned char *)b;
		g->zs.avail_in = chunk;
		if (drain(g, Z_NO_FLUSH) < 0)
			return -1;
		b += chunk;
		n -= chunk;
		g->in += chunk;
	}
	return 0;
}

int
gz_close(struct gz_out *g)
{
	int rc = 0;

	g->zs.next_in = NULL;
	g->zs.avail_in = 0;
	if (drain(g, Z_FINISH) < 0)
		rc = -1;
	gz_abort(g);
	return rc;
}

void
gz_abort(struct gz_out *g)
{
	if (g->live)
		deflateEnd(&g->zs);
	g->live = 0;
}
