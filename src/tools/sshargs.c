/* sshargs: split SSH_ORIGINAL_COMMAND the way a shell would (quotes and
 * backslashes, no expansion), then read khcon's options from the words. */
#include "tools/sshargs.h"
#include "common/util.h"

#include <string.h>

/* Split s into NUL-separated words in buf; returns the number of words or
 * -1 (unterminated quote, too long). */
static int
split(const char *s, char *buf, size_t len, const char **words, int cap, char *err, size_t errlen)
{
	size_t o = 0;
	int n = 0;

	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (*s == '\0')
			break;
		if (n == cap)
			return seterr(err, errlen, "too many words");
		words[n++] = buf + o;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
			char q = 0;
			if (*s == '\'' || *s == '"')
				q = *s++;
			while (*s && (q ? *s != q
					: (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\'' &&
					   *s != '"'))) {
				if (*s == '\\' && q != '\'' && s[1] != '\0')
					s++;
				if (o + 2 >= len)
					return seterr(err, errlen, "the words are too long");
				buf[o++] = *s++;
			}
			if (q) {
				if (*s != q)
					return seterr(err, errlen, "unterminated %c quote", q);
				s++;
			}
		}
		buf[o++] = '\0';
	}
	return n;
}

/* "--name", "-name" or "name". */
static int
is(const char *w, const char *name)
{
	if (w[0] == '-')
		w += w[1] == '-' ? 2 : 1;
	return strcmp(w, name) == 0;
}

int
sshargs_parse(const char *command, const char *term, struct sshargs *a, char *err, size_t errlen)
{
	const char *w[64];
	uint64_t v;
	int n;

	memset(a, 0, sizeof(*a));
	a->count = 1;
	a->idle_ms = 500;
	a->ro = term != NULL && strcmp(term, "KHREAD") == 0;
	if (command == NULL)
		return 0;
	if ((n = split(command, a->buf, sizeof(a->buf), w, 64, err, errlen)) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const char *val = i + 1 < n ? w[i + 1] : NULL;
		if (is(w[i], "prefix")) {
			a->prefix = 1;
			continue;
		}
		if (is(w[i], "ro")) {
			a->ro = 1;
			continue;
		}
		if (!is(w[i], "n") && !is(w[i], "until") && !is(w[i], "count") &&
		    !is(w[i], "timeout") && !is(w[i], "idle"))
			return seterr(err, errlen,
				      "unknown word '%.40s' (expected: [prefix] [ro] [n RANKS] "
				      "[until TEXT [count N]] [timeout S] [idle MS])",
				      w[i]);
		if (val == NULL)
			return seterr(err, errlen, "'%.40s' needs a value", w[i]);
		i++;
		if (is(w[i - 1], "n")) {
			if (*val == '\0' || strspn(val, "0123456789,-") != strlen(val))
				return seterr(err, errlen,
					      "bad ranks '%.40s': expected RANK,A-B,...", val);
			a->ranks = val;
		} else if (is(w[i - 1], "until")) {
			if (*val == '\0')
				return seterr(err, errlen, "until needs a text");
			a->until = val;
		} else if (is(w[i - 1], "count")) {
			if (parse_uint(val, 1, 1000000, &v) < 0)
				return seterr(err, errlen, "count takes 1..1000000, not '%.40s'",
					      val);
			a->count = v;
		} else if (is(w[i - 1], "timeout")) {
			if (parse_uint(val, 1, 86400, &v) < 0)
				return seterr(err, errlen,
					      "timeout takes 1..86400 seconds, not '%.40s'", val);
			a->timeout_s = v;
		} else {
			if (parse_uint(val, 1, 3600000, &v) < 0)
				return seterr(err, errlen, "idle takes 1..3600000 ms, not '%.40s'",
					      val);
			a->idle_ms = v;
		}
	}
	return 0;
}
