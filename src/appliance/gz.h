/* gz: a gzip stream into a file descriptor with a fixed header (no name,
 * mtime 0), so the same input always gives the same bytes. */
#ifndef KH_GZ_H
#define KH_GZ_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

struct gz_out {
	z_stream zs;
	int fd;
	int live;
	uint32_t crc;	  /* zlib CRC-32 of the bytes written to fd */
	uint64_t written; /* bytes written to fd */
	uint64_t in;	  /* bytes given to gz_write */
	char *err;
	size_t errlen;
	unsigned char buf[65536];
};

/* Start a stream at compression level (1-9).  Returns 0, or -1 with err. */
int gz_open(struct gz_out *g, int fd, int level, char *err, size_t errlen);
/* A cpio_sink: compress n bytes.  Returns 0, or -1 with the reason in the
 * err given to gz_open. */
int gz_write(void *g, const void *p, size_t n);
/* Finish the stream (trailer) and free it.  Returns 0 or -1. */
int gz_close(struct gz_out *g);
/* Free the stream without finishing it. */
void gz_abort(struct gz_out *g);

#endif
