/* sbuf: a growable byte buffer, always NUL-terminated. */
#ifndef KH_SBUF_H
#define KH_SBUF_H

#include <stddef.h>

struct sbuf {
	char *s;
	size_t len;
	size_t cap;
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_reset(struct sbuf *b);
void sbuf_add(struct sbuf *b, const void *p, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_consume(struct sbuf *b, size_t n);
/* Append s as a JSON string literal (quotes included). */
void sbuf_json_str(struct sbuf *b, const char *s);

#endif
