/* usage: sorted (resource, quantity) vectors, their text form and their
 * display units.  All display arithmetic is integer so that khbill prints the
 * same digits on every machine. */
#include "meter/usage.h"
#include "meter/ledger_int.h"
#include "common/log.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum merge { M_SUM, M_MAX };

/* How a class is stored, shown and merged.  dec: decimals shown when the
 * display unit is a multiple (div) of the base unit; sci: mem's scientific
 * form. */
struct uclass {
	const char *name;
	const char *base, *unit;
	uint64_t div;
	int dec;
	int sci;
	enum merge merge;
};

static const struct uclass classes[] = {
    {"node-time", "ms", "s", 1000, 1, 0, M_SUM}, {"cpu", "us", "s", 1000000, 2, 0, M_SUM},
    {"mem", "KiB*s", "B*s", 0, 0, 1, M_SUM},	 {"mem-peak", "B", "B", 1, 0, 0, M_MAX},
    {"net-rx", "B", "B", 1, 0, 0, M_SUM},	 {"net-tx", "B", "B", 1, 0, 0, M_SUM},
    {"net-rxpk", "pkt", "pkt", 1, 0, 0, M_SUM},	 {"net-txpk", "pkt", "pkt", 1, 0, 0, M_SUM},
    {"console-in", "B", "B", 1, 0, 0, M_SUM},	 {"console-out", "B", "B", 1, 0, 0, M_SUM},
    {"rdma-rd", "B", "B", 1, 0, 0, M_SUM},	 {"rdma-wr", "B", "B", 1, 0, 0, M_SUM},
    {"rdma-ops", "op", "op", 1, 0, 0, M_SUM},
};
static const struct uclass unknown = {"", "", "", 1, 0, 0, M_SUM};

static const struct uclass *
class_of(const char *res)
{
	size_t n = strcspn(res, ":");
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strlen(classes[i].name) == n && memcmp(classes[i].name, res, n) == 0)
			return &classes[i];
	return &unknown;
}

void
usage_init(struct usage *u)
{
	u->items = NULL;
	u->n = u->cap = 0;
}

void
usage_free(struct usage *u)
{
	free(u->items);
	usage_init(u);
}

void
usage_reset(struct usage *u)
{
	u->n = 0;
}

static void
reserve(struct usage *u, size_t n)
{
	if (n <= u->cap)
		return;
	size_t cap = u->cap ? u->cap : 8;
	while (cap < n)
		cap *= 2;
	struct usage_item *p = realloc(u->items, cap * sizeof(*p));
	if (p == NULL)
		fatal("usage");
	u->items = p;
	u->cap = cap;
}

void
usage_copy(struct usage *dst, const struct usage *src)
{
	if (dst == src)
		return;
	reserve(dst, src->n);
	if (src->n)
		memcpy(dst->items, src->items, src->n * sizeof(*src->items));
	dst->n = src->n;
}

static int
classch(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static int
qualch(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

int
usage_valid_name(const char *s)
{
	const char *p = s;

	if (!(*p >= 'a' && *p <= 'z'))
		return 0;
	while (classch(*p))
		p++;
	if (*p == ':') {
		p++;
		if (!qualch(*p))
			return 0;
		while (qualch(*p))
			p++;
	}
	return *p == '\0' && (size_t)(p - s) < USAGE_NAME_MAX;
}

/* Index of res in u, or where it would go (with *found 0). */
static size_t
find(const struct usage *u, const char *res, int *found)
{
	size_t lo = 0, hi = u->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(u->items[mid].res, res);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static uint64_t
combine(const char *res, uint64_t a, uint64_t b)
{
	if (class_of(res)->merge == M_MAX)
		return a > b ? a : b;
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int
usage_add(struct usage *u, const char *res, uint64_t qty)
{
	int found;

	if (!usage_valid_name(res))
		return -1;
	size_t i = find(u, res, &found);
	if (found) {
		u->items[i].qty = combine(res, u->items[i].qty, qty);
		return 0;
	}
	reserve(u, u->n + 1);
	memmove(&u->items[i + 1], &u->items[i], (u->n - i) * sizeof(*u->items));
	snprintf(u->items[i].res, sizeof(u->items[i].res), "%s", res);
	u->items[i].qty = qty;
	u->n++;
	return 0;
}

void
usage_merge(struct usage *dst, const struct usage *src)
{
	for (size_t i = 0; i < src->n; i++)
		usage_add(dst, src->items[i].res, src->items[i].qty);
}

uint64_t
usage_get(const struct usage *u, const char *res)
{
	int found;
	size_t i = find(u, res, &found);
	return found ? u->items[i].qty : 0;
}

void
usage_rollup(const struct usage *u, struct usage *out)
{
	char cls[USAGE_NAME_MAX];

	usage_copy(out, u);
	for (size_t i = 0; i < u->n; i++) {
		size_t n = strcspn(u->items[i].res, ":");
		if (u->items[i].res[n] != ':')
			continue;
		memcpy(cls, u->items[i].res, n);
		cls[n] = '\0';
		usage_add(out, cls, u->items[i].qty);
	}
}

void
usage_encode(const struct usage *u, struct sbuf *out)
{
	for (size_t i = 0; i < u->n; i++)
		sbuf_printf(out, "%s%s=%" PRIu64, i ? " " : "", u->items[i].res, u->items[i].qty);
	if (out->s == NULL)
		sbuf_adds(out, "");
}

/* A decimal without sign or leading zeros that fits 64 bits; n bytes. */
int
ledger_strict_u64n(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

int
usage_decode(const char *s, struct usage *u, char *err, size_t errlen)
{
	char name[USAGE_NAME_MAX];
	const char *p = s;

	usage_reset(u);
	if (*p == '\0')
		return 0;
	for (;;) {
		size_t tl = strcspn(p, " ");
		const char *eq = memchr(p, '=', tl);
		uint64_t q;
		if (eq == NULL)
			return seterr(err, errlen, "'%.*s' is not resource=quantity", (int)tl, p);
		size_t nl = (size_t)(eq - p);
		if (nl >= sizeof(name))
			return seterr(err, errlen, "resource name '%.*s' too long", (int)nl, p);
		memcpy(name, p, nl);
		name[nl] = '\0';
		if (!usage_valid_name(name))
			return seterr(err, errlen, "bad resource name '%s'", name);
		if (ledger_strict_u64n(eq + 1, tl - nl - 1, &q) < 0)
			return seterr(err, errlen, "bad quantity '%.*s' of %s", (int)(tl - nl - 1),
				      eq + 1, name);
		if (u->n && strcmp(u->items[u->n - 1].res, name) >= 0)
			return seterr(err, errlen, "%s is out of order or repeated", name);
		usage_add(u, name, q);
		p += tl;
		if (*p == '\0')
			return 0;
		p++;
		if (*p == '\0' || *p == ' ')
			return seterr(err, errlen, "extra space in usage list");
	}
}

const char *
usage_unit(const char *res)
{
	return class_of(res)->unit;
}

const char *
usage_base_unit(const char *res)
{
	return class_of(res)->base;
}

/* v in decimal; unsigned __int128 has no printf conversion. */
static void
put_u128(struct sbuf *out, unsigned __int128 v)
{
	char buf[48], *p = buf + sizeof(buf);

	*--p = '\0';
	do {
		*--p = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v);
	sbuf_adds(out, p);
}

/* Three significant digits, half up, at least one decimal: 1.2e9, 1.25e9.
 * Below a million the exact integer reads better. */
static void
put_sci(struct sbuf *out, unsigned __int128 v)
{
	if (v < 1000000) {
		put_u128(out, v);
		return;
	}
	int e = 0;
	unsigned __int128 t = v, p10 = 1;
	while (t >= 1000) {
		t /= 10;
		p10 *= 10;
		e++;
	}
	/* t now has 3 digits; round on what was cut off. */
	unsigned __int128 rest = v - t * p10;
	if (rest * 2 >= p10)
		t++;
	if (t == 1000) {
		t = 100;
		e++;
	}
	unsigned m = (unsigned)t;
	e += 2;
	if (m % 10)
		sbuf_printf(out, "%u.%02ue%d", m / 100, m % 100, e);
	else
		sbuf_printf(out, "%u.%ue%d", m / 100, (m / 10) % 10, e);
}

void
usage_format_qty(const char *res, uint64_t qty, struct sbuf *out)
{
	const struct uclass *c = class_of(res);

	if (c->sci) {
		put_sci(out, (unsigned __int128)qty * 1024);
		return;
	}
	if (c->dec == 0) {
		sbuf_printf(out, "%" PRIu64, qty);
		return;
	}
	uint64_t step = c->div;
	for (int i = 0; i < c->dec; i++)
		step /= 10;
	/* Round half up to the last shown decimal, without overflowing. */
	uint64_t units = qty / step + (qty % step >= step - qty % step ? 1 : 0);
	uint64_t scale = c->div / step;
	sbuf_printf(out, "%" PRIu64 ".%0*" PRIu64, units / scale, c->dec, units % scale);
}

void
usage_format_line(const char *res, uint64_t qty, struct sbuf *out)
{
	const char *unit = usage_unit(res);

	sbuf_printf(out, "%s ", res);
	usage_format_qty(res, qty, out);
	if (*unit)
		sbuf_printf(out, " %s", unit);
}

void
usage_format_text(const struct usage *u, struct sbuf *out)
{
	for (size_t i = 0; i < u->n; i++) {
		usage_format_line(u->items[i].res, u->items[i].qty, out);
		sbuf_adds(out, "\n");
	}
	if (out->s == NULL)
		sbuf_adds(out, "");
}

void
usage_format_json(const struct usage *u, struct sbuf *out)
{
	sbuf_adds(out, "[");
	for (size_t i = 0; i < u->n; i++) {
		const char *res = u->items[i].res;
		sbuf_adds(out, i ? ",{\"resource\":" : "{\"resource\":");
		sbuf_json_str(out, res);
		sbuf_adds(out, ",\"quantity\":\"");
		usage_format_qty(res, u->items[i].qty, out);
		sbuf_adds(out, "\",\"unit\":");
		sbuf_json_str(out, usage_unit(res));
		sbuf_printf(out, ",\"base\":%" PRIu64 ",\"base_unit\":", u->items[i].qty);
		sbuf_json_str(out, usage_base_unit(res));
		sbuf_adds(out, "}");
	}
	sbuf_adds(out, "]");
}
