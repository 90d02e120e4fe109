/* fuzz/khfs: what khfs parses from its users and from khd (docs/khfs.md):
 * a ctl line split into words (quotes, blanks), a query path's KEY=VALUE
 * terms, and khd's nodes listing that queries match against.  The input:
 * a ctl line, then a query path, then the listing (split at the first two
 * newlines).  Besides "no crash": at most max words, each a piece of the
 * line; terms of a query path parse or are refused; every parsed node has
 * a rank and at most KQ_MAXNET domains; the targets list of the matching
 * ranks names exactly those ranks. */
#include "common/sbuf.h"
#include "fuzz.h"
#include "khfs/query.h"

static void
check_targets(const int *ranks, int n)
{
	struct sbuf t;
	int k = 0;

	sbuf_init(&t);
	kq_targets(ranks, n, &t);
	/* expand "A-B C ..." back */
	for (const char *p = t.s ? t.s : ""; *p;) {
		char *e;
		long a = strtol(p, &e, 10), b = a;
		FUZZ_CHECK(e != p);
		if (*e == '-') {
			p = e + 1;
			b = strtol(p, &e, 10);
			FUZZ_CHECK(e != p && b >= a);
		}
		for (long r = a; r <= b; r++) {
			FUZZ_CHECK(k < n && ranks[k] == r);
			k++;
		}
		p = e;
		while (*p == ' ' || *p == ',')
			p++;
	}
	FUZZ_CHECK(k == n);
	sbuf_free(&t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size), *w[64];
	char *nl1 = strchr(s, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
	size_t linelen;

	if (nl1)
		*nl1 = '\0';
	if (nl2)
		*nl2 = '\0';
	linelen = strlen(s);
	int nw = kq_split_words(s, w, 63);
	FUZZ_CHECK(nw <= 63);
	for (int i = 0; i < nw; i++)
		FUZZ_CHECK(w[i] >= s && w[i] + strlen(w[i]) <= s + linelen);

	struct kq q = {.n = 0};
	if (nl1) {
		char *save = NULL;
		for (char *t = strtok_r(nl1 + 1, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
			struct kq_term term;
			if (kq_term_parse(t, &term) == 0) {
				FUZZ_CHECK(term.key >= KQ_TYPE && term.key <= KQ_HOST);
				if (kq_add(&q, &term) < 0)
					FUZZ_CHECK(q.n == KQ_MAXTERMS);
			}
		}
	}
	if (nl2) {
		const char *body = nl2 + 1;
		struct kq_list l = {0};
		if (kq_parse_nodes(body, strlen(body), &l) == 0) {
			int *ranks = calloc((size_t)l.n + 1, sizeof(int)), m = 0;
			if (ranks == NULL)
				abort();
			for (int i = 0; i < l.n; i++) {
				FUZZ_CHECK(l.v[i].rank >= 0);
				FUZZ_CHECK(l.v[i].nnet >= 0 && l.v[i].nnet <= KQ_MAXNET);
				FUZZ_CHECK(l.v[i].line >= body &&
					   l.v[i].line + l.v[i].len <= body + strlen(body));
				if (kq_match(&q, &l.v[i], "kh.test") &&
				    (m == 0 || l.v[i].rank > ranks[m - 1]))
					ranks[m++] = l.v[i].rank;
			}
			check_targets(ranks, m);
			free(ranks);
			kq_list_free(&l);
		}
	}
	free(s);
	return 0;
}
