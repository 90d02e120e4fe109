/* frame: exec stream headers.  Strict: single spaces, decimal numbers
 * without signs or leading garbage, nothing after the last field; a client
 * is hostile input and khd's answers are checked as closely. */
#include "exec/frame.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

/* Split line into at most max space-separated words (exactly one space
 * between them).  Returns the count, or -1. */
static int
words(char *s, char **w, int max)
{
	int n = 0;

	if (*s == '\0')
		return 0;
	for (;;) {
		if (n == max || *s == ' ' || *s == '\0')
			return -1;
		w[n++] = s;
		s = strchr(s, ' ');
		if (s == NULL)
			return n;
		*s++ = '\0';
	}
}

static int
num(const char *s, uint64_t max, uint64_t *v)
{
	return parse_uint(s, 0, max, v);
}

static int
rank_of(const char *s, int star, int *rank)
{
	uint64_t v;

	if (star && strcmp(s, "*") == 0) {
		*rank = XF_ALL;
		return 0;
	}
	if (num(s, 1u << 20, &v) < 0)
		return -1;
	*rank = (int)v;
	return 0;
}

int
xframe_parse(const char *line, size_t n, int from_khd, struct xframe *f, char *err, size_t errlen)
{
	char buf[XF_MAXLINE];
	char *w[7];
	uint64_t v[4];
	int nw;

	memset(f, 0, sizeof(*f));
	if (n == 0 || n >= sizeof(buf) || memchr(line, '\0', n) != NULL)
		return seterr(err, errlen, "bad frame header");
	memcpy(buf, line, n);
	buf[n] = '\0';
	if ((nw = words(buf, w, 7)) < 1 || strlen(w[0]) != 1)
		return seterr(err, errlen, "bad frame header '%.40s'", buf);
	f->kind = w[0][0];
	switch (from_khd ? f->kind : f->kind + 256) {
	case 'o':
	case 'e':
		if (nw != 3 || rank_of(w[1], 0, &f->rank) < 0 || num(w[2], XF_MAXDATA, &v[0]) < 0)
			break;
		f->len = (size_t)v[0];
		return 0;
	case 'x':
		if (nw != 6 || rank_of(w[1], 0, &f->rank) < 0 || num(w[2], 255 + 128, &v[0]) < 0 ||
		    num(w[3], UINT64_MAX / 2, &f->user_ms) < 0 ||
		    num(w[4], UINT64_MAX / 2, &f->sys_ms) < 0 ||
		    num(w[5], UINT64_MAX / 2, &f->real_ms) < 0)
			break;
		f->status = (int)v[0];
		return 0;
	case 'd':
		if (nw != 1)
			break;
		return 0;
	case 'i' + 256:
		if (nw != 3 || rank_of(w[1], 1, &f->rank) < 0 || num(w[2], XF_MAXDATA, &v[0]) < 0)
			break;
		f->len = (size_t)v[0];
		return 0;
	case 'c' + 256:
		if (nw != 2 || rank_of(w[1], 1, &f->rank) < 0)
			break;
		return 0;
	case 'k' + 256:
		f->rank = XF_ALL;
		if ((nw != 2 && nw != 3) || parse_uint(w[1], 1, 64, &v[0]) < 0 ||
		    (nw == 3 && rank_of(w[2], 0, &f->rank) < 0))
			break;
		f->sig = (int)v[0];
		return 0;
	default:
		return seterr(err, errlen, "unknown frame '%c'", f->kind);
	}
	return seterr(err, errlen, "bad '%c' frame", f->kind);
}
