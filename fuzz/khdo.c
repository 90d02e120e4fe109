/* fuzz/khdo: what khdo reads (src/tools/khdo.c): the control block on its
 * standard input, and the nodes' rank-prefixed lines on the channel, which
 * any software on a node can forge.  The input is a control block, a line
 * "====", then channel lines (without the separator, the whole input is
 * both).  Checks: the tracker's counts stay consistent through its phases
 * and its report; a value substituted for a %placeholder% reads back, once
 * unquoted as sh would, as the same bytes. */
#include "fuzz.h"
#include "tools/khdo.h"

/* sh's reading of one word made of plain bytes and '...' quotes. */
static int
unquote(const char *s, size_t len, struct sbuf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\'') {
			sbuf_add(out, s + i, 1);
			continue;
		}
		const char *end = memchr(s + i + 1, '\'', len - i - 1);
		if (end == NULL)
			return -1;
		sbuf_add(out, s + i + 1, (size_t)(end - s - i - 1));
		i = (size_t)(end - s);
		if (i + 2 < len && s[i + 1] == '\\' && s[i + 2] == '\'') {
			sbuf_add(out, "'", 1);
			i += 2;
		}
	}
	return 0;
}

static void
check_subst(const char *v)
{
	static const char *const keys[] = {"v"};
	struct sbuf q, back;
	sbuf_init(&q);
	sbuf_init(&back);
	khdo_subst("%v%", keys, &v, 1, &q);
	FUZZ_CHECK(unquote(q.s, q.len, &back) == 0);
	FUZZ_CHECK(back.len == strlen(v) && memcmp(back.s ? back.s : "", v, back.len) == 0);
	sbuf_free(&q);
	sbuf_free(&back);
}

static void
feed(struct khdo_track *t, const char *s, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(s, '\n', len);
		size_t n = nl ? (size_t)(nl - s) : len;
		khdo_track_line(t, s, n);
		FUZZ_CHECK(t->waiting >= 0 && t->failed >= 0 && t->waiting + t->failed <= t->n);
		s += n + (nl != NULL);
		len -= n + (nl != NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *chan = s;
	size_t blen = size, clen = size;
	struct khdo_block b;
	struct khdo_track t;
	char err[256] = "";

	for (size_t i = 0; i + 5 <= size; i++)
		if ((i == 0 || s[i - 1] == '\n') && memcmp(s + i, "====\n", 5) == 0) {
			blen = i;
			chan = s + i + 5;
			clen = size - i - 5;
			break;
		}
	if (khdo_block_parse(s, blen, &b, err, sizeof(err)) < 0) {
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(b.nranks > 0);
	check_subst(b.host);
	check_subst(b.con);
	for (int i = 0; i < b.ninfo; i++) {
		check_subst(b.info[i].uni);
		check_subst(b.info[i].ip);
	}
	struct sbuf out;
	sbuf_init(&out);
	khdo_ranks_fmt(b.ranks, b.nranks, &out);
	if (khdo_track_init(&t, b.ranks, b.nranks, "abc") == 0) {
		FUZZ_CHECK(t.n == b.nranks && t.waiting == t.n);
		khdo_track_phase(&t, KHDO_PRE, "$ramfsaddr");
		feed(&t, chan, clen);
		khdo_track_room(&t, 16 << 20);
		khdo_track_phase(&t, KHDO_LOAD, NULL);
		feed(&t, chan, clen);
		khdo_track_phase(&t, KHDO_UNTIL, "appliance up");
		feed(&t, chan, clen);
		khdo_track_expire(&t, "timed out");
		FUZZ_CHECK(t.waiting == 0);
		FUZZ_CHECK(khdo_track_report(&t, "khdo", &out) == t.failed);
		khdo_track_free(&t);
	}
	sbuf_free(&out);
	khdo_block_free(&b);
	return 0;
}
