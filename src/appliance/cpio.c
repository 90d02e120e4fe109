/* cpio: the newc archive writer.  Headers are 110 ASCII bytes of 8-digit hex
 * fields; names and data are padded to 4 bytes. */
#include "appliance/cpio.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const unsigned char zeros[4];

static int
put(struct cpio_out *c, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (c->sink(c->ctx, p, n) < 0)
		return -1;
	c->off += n;
	return 0;
}

static int
pad(struct cpio_out *c)
{
	return put(c, zeros, (4 - c->off % 4) % 4);
}

void
cpio_init(struct cpio_out *c, cpio_sink sink, void *ctx, uint32_t mtime)
{
	memset(c, 0, sizeof(*c));
	c->sink = sink;
	c->ctx = ctx;
	c->mtime = mtime;
}

static int
header(struct cpio_out *c, const char *name, uint32_t ino, uint32_t mode, uint32_t nlink,
       uint32_t size, uint32_t rmaj, uint32_t rmin)
{
	char h[111];
	size_t nlen = strlen(name) + 1;

	snprintf(h, sizeof(h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino,
		 mode, 0u, 0u, nlink, c->mtime, size, 0u, 0u, rmaj, rmin, (uint32_t)nlen, 0u);
	if (put(c, h, 110) < 0 || put(c, name, nlen) < 0 || pad(c) < 0)
		return -1;
	c->left = size;
	return 0;
}

int
cpio_entry(struct cpio_out *c, const char *name, uint32_t mode, uint32_t size, uint32_t rdevmajor,
	   uint32_t rdevminor)
{
	if (c->left != 0 || name[0] == '\0' || name[0] == '/')
		return -1;
	c->nentries++;
	return header(c, name, ++c->ino, mode, S_ISDIR(mode) ? 2 : 1, size, rdevmajor, rdevminor);
}

int
cpio_data(struct cpio_out *c, const void *p, size_t n)
{
	if (n > c->left)
		return -1;
	if (put(c, p, n) < 0)
		return -1;
	c->left -= (uint32_t)n;
	return c->left == 0 ? pad(c) : 0;
}

int
cpio_finish(struct cpio_out *c)
{
	if (c->left != 0)
		return -1;
	if (header(c, "TRAILER!!!", 0, 0, 1, 0, 0, 0) < 0)
		return -1;
	/* Pad to a 512-byte block, as GNU cpio does.  The trailer left off a
	 * multiple of 4, so whole 4-byte steps get there. */
	while (c->off % 512 != 0)
		if (put(c, zeros, 4) < 0)
			return -1;
	return 0;
}
