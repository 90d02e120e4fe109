/* khfs query paths: the terms of query/KEY=VALUE/... and the node lines
 * they match.  One listing from khd answers a whole query. */
#include "khfs/query.h"
#include "common/sbuf.h"
#include "common/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const keys[] = {[KQ_TYPE] = "type",	   [KQ_USER] = "user", [KQ_STATE] = "state",
				   [KQ_DOMAIN] = "domain", [KQ_CON] = "con",   [KQ_HOST] = "host"};

int
kq_term_parse(const char *word, struct kq_term *t)
{
	const char *eq = strchr(word, '=');
	uint64_t v;

	memset(t, 0, sizeof(*t));
	t->key = -1;
	if (eq == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i]) == (size_t)(eq - word) &&
		    strncmp(keys[i], word, (size_t)(eq - word)) == 0)
			t->key = (int)i;
	const char *val = eq + 1;
	if (t->key < 0 || *val == '\0' || strlen(val) >= sizeof(t->val))
		return -1;
	snprintf(t->val, sizeof(t->val), "%s", val);
	switch (t->key) {
	case KQ_STATE:
		return strcmp(val, "free") == 0 || strcmp(val, "monitor") == 0 ||
			       strcmp(val, "running") == 0 || strcmp(val, "lost") == 0
			   ? 0
			   : -1;
	case KQ_DOMAIN:
		if (parse_uint(val, 0, INT32_MAX, &v) < 0)
			return -1;
		t->num = (long)v;
		return 0;
	case KQ_CON:
		if (strncmp(val, "con", 3) == 0)
			val += 3;
		if (parse_uint(val, 1, INT32_MAX, &v) < 0)
			return -1;
		t->num = (long)v;
		return 0;
	case KQ_USER:
		return strcmp(val, "-") == 0 || valid_name(val) ? 0 : -1;
	case KQ_TYPE:
	case KQ_HOST:
		for (const char *p = val; *p; p++)
			if (*p <= ' ' || *p == '/' || *p > '~')
				return -1;
		return 0;
	}
	return -1;
}

int
kq_add(struct kq *q, const struct kq_term *t)
{
	if (q->n == KQ_MAXTERMS)
		return -1;
	q->t[q->n++] = *t;
	return 0;
}

static int
term_match(const struct kq_term *t, const struct kq_node *n, const char *host)
{
	switch (t->key) {
	case KQ_TYPE:
		return strcmp(t->val, n->type) == 0;
	case KQ_USER:
		return strcmp(t->val, n->owner) == 0;
	case KQ_STATE:
		return strcmp(t->val, n->state) == 0;
	case KQ_CON:
		return n->chan == t->num;
	case KQ_DOMAIN:
		for (int i = 0; i < n->nnet; i++)
			if (n->netids[i] == t->num)
				return 1;
		return 0;
	case KQ_HOST:
		/* The node's own host (the listing's last column); a khd that
		 * does not list it is one host, the facility's. */
		if (n->host[0])
			return strcmp(t->val, n->host) == 0;
		return host && strcmp(t->val, host) == 0;
	}
	return 0;
}

int
kq_match(const struct kq *q, const struct kq_node *n, const char *host)
{
	for (int i = 0; i < q->n; i++)
		if (!term_match(&q->t[i], n, host))
			return 0;
	return 1;
}

/* One line (without its newline) into n; -1 when it is not a node line. */
static int
parse_line(const char *l, size_t len, struct kq_node *n)
{
	char buf[512], chan[24], nets[160];
	uint64_t v;

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, l, len);
	buf[len] = '\0';
	memset(n, 0, sizeof(*n));
	int got = sscanf(buf, "%d %11s %39s %23s %159s %31s %32s", &n->rank, n->state, n->owner,
			 chan, nets, n->type, n->host);
	if (got < 6 || n->rank < 0)
		return -1;
	if (got < 7)
		n->host[0] = '\0';
	if (strncmp(chan, "con", 3) == 0 && parse_uint(chan + 3, 1, INT32_MAX, &v) == 0)
		n->chan = (int)v;
	if (strcmp(nets, "-") != 0)
		for (char *save = NULL, *tok = strtok_r(nets, ",", &save);
		     tok && n->nnet < KQ_MAXNET; tok = strtok_r(NULL, ",", &save))
			if (parse_uint(tok, 0, INT32_MAX, &v) == 0)
				n->netids[n->nnet++] = (int)v;
	return 0;
}

int
kq_parse_nodes(const char *body, size_t len, struct kq_list *l)
{
	int cap = 0;

	l->v = NULL;
	l->n = 0;
	for (const char *p = body, *end = body + len; body && p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (l->n == cap) {
			cap = cap ? cap * 2 : 256;
			struct kq_node *v = realloc(l->v, sizeof(*v) * (size_t)cap);
			if (v == NULL)
				return -1;
			l->v = v;
		}
		if (parse_line(p, ll, &l->v[l->n]) == 0) {
			l->v[l->n].line = p;
			l->v[l->n].len = ll + (nl != NULL);
			l->n++;
		}
		p += ll + (nl != NULL);
	}
	return 0;
}

void
kq_list_free(struct kq_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
kq_targets(const int *ranks, int n, struct sbuf *out)
{
	for (int i = 0; i < n;) {
		int j = i;
		while (j + 1 < n && ranks[j + 1] == ranks[j] + 1)
			j++;
		sbuf_printf(out, "%s%d", out->len ? "," : "", ranks[i]);
		if (j > i)
			sbuf_printf(out, "-%d", ranks[j]);
		i = j + 1;
	}
}

/* Split a ctl line into words in place: blanks separate, '...' and "..."
 * quote (no expansion), as a user types it to a shell.  Returns the count,
 * or -1 for an unterminated quote or too many words. */
int
kq_split_words(char *s, char **w, int max)
{
	int n = 0;
	char *o = s;

	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (n == max)
			return -1;
		w[n++] = o;
		while (*s && *s != ' ' && *s != '\t') {
			if (*s == '\'' || *s == '"') {
				char q = *s++;
				while (*s && *s != q)
					*o++ = *s++;
				if (*s != q)
					return -1;
				s++;
				continue;
			}
			*o++ = *s++;
		}
		if (*s)
			s++;
		*o++ = '\0';
	}
	return n;
}
