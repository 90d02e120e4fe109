/* price: the plan parser and the invoice calculator.  Everything is integer:
 * rates are rationals (micro-units per num/den base units), quantities are
 * apportioned with floor differences so parts add up exactly, and each line
 * is rounded once. */
#include "meter/price.h"
#include "meter/ledger_int.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef unsigned __int128 u128;

#define MINUTES	  1440
#define MAX_MICRO 1000000000000000ULL /* 10^15: keeps q * rate * den in 128 bits */
#define MAX_COUNT 1000000000000ULL    /* "per <n>" and "up to <n>" */

/* A price: micro currency units for every num/den base units. */
struct rate {
	uint64_t micro;
	u128 num, den;
	char per[32];
};

struct window {
	int from, to; /* minutes of the day; to <= from wraps midnight */
	struct rate r;
	int line;
};

struct tier {
	uint64_t upto; /* cumulative base units */
	char upto_txt[32];
	struct rate r;
	int line;
};

struct rule {
	char res[USAGE_NAME_MAX];
	int is_max;
	int has_fixed, fixed_line;
	struct rate fixed;
	struct window *win;
	size_t nwin;
	struct tier *tiers;
	size_t ntier;
	uint8_t bucket[MINUTES];  /* 0: fixed price, 1 + i: window i */
	uint16_t change[MINUTES]; /* minutes until bucket changes; 0 never */
};

struct price_plan {
	char currency[17];
	int offset; /* minutes east of UTC */
	struct rule *rules;
	size_t n, cap;
};

struct price_invoice {
	const struct price_plan *plan;
	char principal[LEDGER_NAME_MAX];
	uint64_t from, to;
	u128 *q;      /* per rule, 1 + nwin buckets */
	size_t *base; /* index of each rule's first bucket in q */
	struct price_line *lines;
	size_t nlines;
	uint64_t total;
	int finished;
};

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (p == NULL)
		fatal("price");
	return p;
}

static void *
xreallocarray(void *p, size_t n, size_t size)
{
	p = reallocarray(p, n ? n : 1, size);
	if (p == NULL)
		fatal("price");
	return p;
}

static u128
gcd(u128 a, u128 b)
{
	while (b) {
		u128 t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* a * b, or -1 when it does not fit 128 bits. */
static int
mul(u128 a, u128 b, u128 *out)
{
	if (a && b > ~(u128)0 / a)
		return -1;
	*out = a * b;
	return 0;
}

/* Units. */

struct unit {
	const char *name;
	uint64_t v;
};

/* Time in microseconds, bytes in bytes. */
static const struct unit time_units[] = {
    {"ms", 1000}, {"s", 1000000}, {"min", 60000000}, {"h", 3600000000ULL}, {"day", 86400000000ULL},
};
static const struct unit byte_units[] = {
    {"B", 1},
    {"KB", 1000},
    {"MB", 1000000},
    {"GB", 1000000000ULL},
    {"TB", 1000000000000ULL},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
};

static const struct unit *
lookup(const struct unit *u, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(u[i].name) == len && memcmp(u[i].name, s, len) == 0)
			return &u[i];
	return NULL;
}

#define LOOKUP(tab, s, len) lookup(tab, sizeof(tab) / sizeof(tab[0]), s, len)

/* How many base units of res one unit is, as num/den; -1 with a reason
 * naming the units res accepts. */
static int
unit_conv(const char *res, const char *unit, u128 *num, u128 *den, char *why, size_t whylen)
{
	const char *base = usage_base_unit(res);
	const struct unit *a, *b;

	if (strcmp(base, "ms") == 0 || strcmp(base, "us") == 0) {
		if ((a = LOOKUP(time_units, unit, strlen(unit))) == NULL)
			return seterr(why, whylen,
				      "unknown unit '%s' for %s (use ms, s, min, h, day)", unit,
				      res);
		*num = a->v;
		*den = strcmp(base, "ms") == 0 ? 1000 : 1;
	} else if (strcmp(base, "KiB*s") == 0) {
		const char *star = strchr(unit, '*');
		if (star == NULL || (a = LOOKUP(byte_units, unit, (size_t)(star - unit))) == NULL ||
		    (b = LOOKUP(time_units, star + 1, strlen(star + 1))) == NULL)
			return seterr(why, whylen,
				      "unknown unit '%s' for %s (use <bytes>*<time>, e.g. GiB*h)",
				      unit, res);
		/* bytes * us over 1024 * 10^6 (a KiB*s in B*us). */
		*num = (u128)a->v * b->v;
		*den = (u128)1024 * 1000000;
	} else if (strcmp(base, "B") == 0) {
		if ((a = LOOKUP(byte_units, unit, strlen(unit))) == NULL)
			return seterr(
			    why, whylen,
			    "unknown unit '%s' for %s (use B, KB, MB, GB, TB, KiB, MiB, GiB, "
			    "TiB)",
			    unit, res);
		*num = a->v;
		*den = 1;
	} else if (strcmp(base, "pkt") == 0 || strcmp(base, "op") == 0) {
		if (strcmp(unit, base) != 0)
			return seterr(why, whylen, "unknown unit '%s' for %s (use %s)", unit, res,
				      base);
		*num = *den = 1;
	} else {
		if (strcmp(unit, "unit") != 0)
			return seterr(why, whylen, "unknown unit '%s' for %s (use unit)", unit,
				      res);
		*num = *den = 1;
	}
	u128 g = gcd(*num, *den);
	*num /= g;
	*den /= g;
	return 0;
}

/* Plan parser. */

struct parser {
	const char *name;
	int line;
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 3, 4)))
perr(struct parser *ps, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		return seterr(ps->err, ps->errlen, "%s:%d: %s", ps->name, line, msg);
	return seterr(ps->err, ps->errlen, "%s: %s", ps->name, msg);
}

static int
count(const char *s, uint64_t max, uint64_t *v)
{
	return ledger_strict_u64(s, v) == 0 && *v <= max ? 0 : -1;
}

/* "HH:MM" into minutes; 24:00 only when end is set. */
static int
clock_min(const char *s, size_t len, int end)
{
	if (len != 5 || s[2] != ':')
		return -1;
	for (int i = 0; i < 5; i++)
		if (i != 2 && (s[i] < '0' || s[i] > '9'))
			return -1;
	int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end)))
		return -1;
	return h * 60 + m;
}

static struct rule *
rule_get(struct price_plan *p, const char *res)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->rules[i].res, res) == 0)
			return &p->rules[i];
	/* rules are large (a table per minute): grow by doubling */
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 8;
		p->rules = xreallocarray(p->rules, p->cap, sizeof(*p->rules));
	}
	struct rule *r = &p->rules[p->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->res, sizeof(r->res), "%s", res);
	r->is_max = strncmp(res, "mem-peak", 8) == 0 && (res[8] == '\0' || res[8] == ':');
	return r;
}

static int
parse_rate(struct parser *ps, char **f, int nf, int *i, const char *res, struct rate *r)
{
	char why[200];
	uint64_t n = 1;
	const char *unit;

	/* f[*i] is the price, then "per [n] unit". */
	if (*i >= nf || count(f[*i], MAX_MICRO, &r->micro) < 0)
		return perr(ps, ps->line,
			    "bad price '%s' (an integer of micro-units, at most 10^15)",
			    *i < nf ? f[*i] : "");
	(*i)++;
	if (*i >= nf || strcmp(f[*i], "per") != 0)
		return perr(ps, ps->line, "expected 'per' after the price");
	(*i)++;
	if (*i < nf && f[*i][0] >= '0' && f[*i][0] <= '9') {
		if (count(f[*i], MAX_COUNT, &n) < 0 || n == 0)
			return perr(ps, ps->line, "bad count '%s' (1 to 10^12)", f[*i]);
		(*i)++;
	}
	if (*i >= nf)
		return perr(ps, ps->line, "missing unit after 'per'");
	unit = f[(*i)++];
	if (unit_conv(res, unit, &r->num, &r->den, why, sizeof(why)) < 0)
		return perr(ps, ps->line, "%s", why);
	r->num *= n;
	u128 g = gcd(r->num, r->den);
	r->num /= g;
	r->den /= g;
	if (n == 1)
		snprintf(r->per, sizeof(r->per), "%s", unit);
	else
		snprintf(r->per, sizeof(r->per), "%" PRIu64 " %s", n, unit);
	return 0;
}

static int
parse_window(struct parser *ps, struct rule *r, const char *s, const struct rate *rate)
{
	const char *dash = strchr(s, '-');
	int from, to;

	if (dash == NULL || (from = clock_min(s, (size_t)(dash - s), 0)) < 0 ||
	    (to = clock_min(dash + 1, strlen(dash + 1), 1)) < 0)
		return perr(ps, ps->line, "bad window '%s' (HH:MM-HH:MM)", s);
	if (from == to)
		return perr(ps, ps->line, "empty window '%s'", s);
	if (r->nwin >= 254)
		return perr(ps, ps->line, "too many windows for %s", r->res);
	int m = from;
	do {
		if (r->bucket[m]) {
			const struct window *o = &r->win[r->bucket[m] - 1];
			return perr(ps, ps->line, "window %s overlaps the one on line %d", s,
				    o->line);
		}
		r->bucket[m] = (uint8_t)(r->nwin + 1);
		m = (m + 1) % MINUTES;
	} while (m != to % MINUTES);
	r->win = xreallocarray(r->win, r->nwin + 1, sizeof(*r->win));
	r->win[r->nwin++] = (struct window){from, to, *rate, ps->line};
	return 0;
}

static int
parse_price(struct parser *ps, struct price_plan *p, char **f, int nf)
{
	struct rate rate;
	struct rule *r;
	int i = 2;

	if (nf < 2 || !usage_valid_name(f[1]))
		return perr(ps, ps->line, "bad resource name '%s'", nf < 2 ? "" : f[1]);
	if (parse_rate(ps, f, nf, &i, f[1], &rate) < 0)
		return -1;
	r = rule_get(p, f[1]);
	if (i == nf) {
		if (r->has_fixed)
			return perr(ps, ps->line, "%s already has its price on line %d", r->res,
				    r->fixed_line);
		r->has_fixed = 1;
		r->fixed_line = ps->line;
		r->fixed = rate;
		return 0;
	}
	if (strcmp(f[i], "at") == 0) {
		if (i + 2 != nf)
			return perr(ps, ps->line, "expected 'at HH:MM-HH:MM' and nothing after it");
		if (r->is_max)
			return perr(ps, ps->line,
				    "%s is a maximum, not a sum: it cannot have "
				    "time-of-day prices",
				    r->res);
		if (r->ntier)
			return perr(ps, ps->line,
				    "%s has volume tiers (line %d): tiers and "
				    "time-of-day prices do not mix",
				    r->res, r->tiers[0].line);
		return parse_window(ps, r, f[i + 1], &rate);
	}
	if (strcmp(f[i], "up") == 0 && i + 1 < nf && strcmp(f[i + 1], "to") == 0) {
		uint64_t n;
		u128 num, den, b;
		char why[200];
		if (i + 4 != nf)
			return perr(ps, ps->line,
				    "expected 'up to <n> <unit>' and nothing after it");
		if (r->nwin)
			return perr(ps, ps->line,
				    "%s has time-of-day prices (line %d): tiers and "
				    "time-of-day prices do not mix",
				    r->res, r->win[0].line);
		if (r->has_fixed)
			return perr(ps, ps->line,
				    "tier after the price for the rest of %s (line %d); "
				    "list 'up to' lines first",
				    r->res, r->fixed_line);
		if (count(f[i + 2], MAX_COUNT, &n) < 0 || n == 0)
			return perr(ps, ps->line, "bad tier size '%s' (1 to 10^12)", f[i + 2]);
		if (unit_conv(r->res, f[i + 3], &num, &den, why, sizeof(why)) < 0)
			return perr(ps, ps->line, "%s", why);
		b = (u128)n * num / den;
		if (b > UINT64_MAX || b == 0)
			return perr(ps, ps->line, "tier size %s %s is out of range", f[i + 2],
				    f[i + 3]);
		if (r->ntier && b <= r->tiers[r->ntier - 1].upto)
			return perr(ps, ps->line,
				    "tier up to %s %s is not above the one on line %d", f[i + 2],
				    f[i + 3], r->tiers[r->ntier - 1].line);
		r->tiers = xreallocarray(r->tiers, r->ntier + 1, sizeof(*r->tiers));
		struct tier *t = &r->tiers[r->ntier++];
		t->upto = (uint64_t)b;
		snprintf(t->upto_txt, sizeof(t->upto_txt), "%s %s", f[i + 2], f[i + 3]);
		t->r = rate;
		t->line = ps->line;
		return 0;
	}
	return perr(ps, ps->line, "unexpected '%s' (expected 'at' or 'up to')", f[i]);
}

static int
parse_offset(struct parser *ps, struct price_plan *p, const char *s)
{
	int m;

	if ((s[0] != '+' && s[0] != '-') || (m = clock_min(s + 1, strlen(s + 1), 0)) < 0 ||
	    m > 14 * 60)
		return perr(ps, ps->line, "bad utc-offset '%s' (+HH:MM or -HH:MM, at most 14:00)",
			    s);
	p->offset = s[0] == '-' ? -m : m;
	return 0;
}

/* Minutes until each minute's bucket changes, going round the day.  One
 * pass backwards from a change (a plan may have many rules: this runs for
 * each, so it must not look at the whole day for every minute). */
static void
rule_finish(struct rule *r)
{
	int s = 0;
	while (s < MINUTES && r->bucket[s] == r->bucket[(s + MINUTES - 1) % MINUTES])
		s++;
	if (s == MINUTES) { /* one bucket all day: it never changes */
		memset(r->change, 0, sizeof(r->change));
		return;
	}
	/* bucket[s - 1] != bucket[s]: walk back from s - 1 once round */
	for (int i = 1; i <= MINUTES; i++) {
		int m = (s - i + MINUTES) % MINUTES, n = (m + 1) % MINUTES;
		r->change[m] = (uint16_t)(r->bucket[n] != r->bucket[m] ? 1 : r->change[n] + 1);
	}
}

void
price_plan_free(struct price_plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->rules[i].win);
		free(p->rules[i].tiers);
	}
	free(p->rules);
	free(p);
}

int
price_plan_parse(const char *text, const char *name, struct price_plan **out, char *err,
		 size_t errlen)
{
	struct parser ps = {name ? name : "plan", 0, err, errlen};
	struct price_plan *p = xcalloc(1, sizeof(*p));
	int currency_line = 0, offset_line = 0;
	const char *s = text;
	char *f[16];

	*out = NULL;
	while (*s) {
		size_t len = strcspn(s, "\n");
		char *line = strndup(s, len);
		if (line == NULL)
			fatal("price");
		s += len + (s[len] == '\n');
		ps.line++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		int nf = 0, bad = 0;
		for (char *t = strtok(line, " \t\r"); t; t = strtok(NULL, " \t\r")) {
			if (nf == 16) {
				bad = 1;
				break;
			}
			f[nf++] = t;
		}
		int rc = 0;
		if (bad)
			rc = perr(&ps, ps.line, "too many fields");
		else if (nf == 0)
			rc = 0;
		else if (strcmp(f[0], "currency") == 0) {
			size_t n = nf == 2 ? strlen(f[1]) : 0;
			int ok = n >= 1 && n <= 16;
			for (size_t i = 0; ok && i < n; i++)
				ok = (f[1][i] >= 'A' && f[1][i] <= 'Z') ||
				     (f[1][i] >= 'a' && f[1][i] <= 'z');
			if (currency_line)
				rc = perr(&ps, ps.line, "second currency line (first on line %d)",
					  currency_line);
			else if (!ok)
				rc = perr(&ps, ps.line, "expected 'currency <1-16 letters>'");
			else {
				snprintf(p->currency, sizeof(p->currency), "%s", f[1]);
				currency_line = ps.line;
			}
		} else if (strcmp(f[0], "utc-offset") == 0) {
			if (offset_line)
				rc = perr(&ps, ps.line, "second utc-offset line (first on line %d)",
					  offset_line);
			else if (nf != 2)
				rc = perr(&ps, ps.line, "expected 'utc-offset +HH:MM'");
			else {
				rc = parse_offset(&ps, p, f[1]);
				offset_line = ps.line;
			}
		} else if (strcmp(f[0], "price") == 0)
			rc = parse_price(&ps, p, f, nf);
		else
			rc = perr(&ps, ps.line,
				  "unknown directive '%s' (currency, utc-offset, price)", f[0]);
		free(line);
		if (rc < 0)
			goto fail;
	}
	if (!currency_line) {
		perr(&ps, 0, "no 'currency' line");
		goto fail;
	}
	for (size_t i = 0; i < p->n; i++) {
		struct rule *r = &p->rules[i];
		if (r->nwin && !r->has_fixed) {
			perr(&ps, r->win[0].line,
			     "%s has time-of-day prices but no price for the other hours", r->res);
			goto fail;
		}
		if (r->ntier && !r->has_fixed) {
			perr(&ps, r->tiers[0].line,
			     "%s has volume tiers but no price for the rest (a line without 'up "
			     "to')",
			     r->res);
			goto fail;
		}
		rule_finish(r);
	}
	*out = p;
	return 0;
fail:
	price_plan_free(p);
	return -1;
}

int
price_plan_load(const char *path, struct price_plan **out, char *err, size_t errlen)
{
	struct sbuf b;
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "re");

	*out = NULL;
	if (f == NULL)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	sbuf_init(&b);
	sbuf_adds(&b, "");
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(&b, buf, n);
	int bad = ferror(f);
	fclose(f);
	if (bad || strlen(b.s) != b.len) {
		sbuf_free(&b);
		return seterr(err, errlen, "%s: %s", path, bad ? "read error" : "NUL byte in file");
	}
	const char *base = strrchr(path, '/');
	int rc = price_plan_parse(b.s, base ? base + 1 : path, out, err, errlen);
	sbuf_free(&b);
	return rc;
}

const char *
price_plan_currency(const struct price_plan *p)
{
	return p->currency;
}

/* Invoices. */

struct price_invoice *
price_invoice_new(const struct price_plan *p, const char *principal, uint64_t from, uint64_t to)
{
	struct price_invoice *inv = xcalloc(1, sizeof(*inv));
	size_t nb = 0;

	inv->plan = p;
	snprintf(inv->principal, sizeof(inv->principal), "%s", principal);
	inv->from = from;
	inv->to = to;
	inv->base = xcalloc(p->n, sizeof(*inv->base));
	for (size_t i = 0; i < p->n; i++) {
		inv->base[i] = nb;
		nb += 1 + p->rules[i].nwin;
	}
	inv->q = xcalloc(nb, sizeof(*inv->q));
	return inv;
}

void
price_invoice_free(struct price_invoice *inv)
{
	if (inv == NULL)
		return;
	free(inv->q);
	free(inv->base);
	free(inv->lines);
	free(inv);
}

/* The rule for res: its own, else its class's, else -1. */
static long
rule_for(const struct price_plan *p, const char *res)
{
	size_t cl = strcspn(res, ":");
	long cls = -1;

	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->rules[i].res, res) == 0)
			return (long)i;
		if (strlen(p->rules[i].res) == cl && memcmp(p->rules[i].res, res, cl) == 0)
			cls = (long)i;
	}
	return cls;
}

/* The share of qty that falls in [t0, x) of a record over [t0, t1). */
static u128
upto(uint64_t qty, uint64_t t0, uint64_t t1, uint64_t x)
{
	return (u128)qty * (x - t0) / (t1 - t0);
}

static int
bucket_at(const struct price_plan *p, const struct rule *r, uint64_t t, uint64_t *next)
{
	const int64_t day = 86400000;
	int64_t local = (int64_t)(t % (uint64_t)day) + (int64_t)p->offset * 60000;
	int64_t msd = ((local % day) + day) % day;
	int m = (int)(msd / 60000);

	if (r->change[m] == 0)
		*next = UINT64_MAX;
	else
		*next = t + (uint64_t)r->change[m] * 60000 - (uint64_t)(msd % 60000);
	return r->bucket[m];
}

static int
charge(struct price_invoice *inv, size_t ri, uint64_t t0, uint64_t t1, uint64_t qty)
{
	const struct rule *r = &inv->plan->rules[ri];
	u128 *q = &inv->q[inv->base[ri]];
	uint64_t a = t0 > inv->from ? t0 : inv->from;
	uint64_t b = inv->to && t1 > inv->to ? inv->to : t1;
	uint64_t next;

	if (t1 == t0) {
		/* An instant: all of it or nothing. */
		if (t0 < inv->from || (inv->to && t0 >= inv->to))
			return 0;
		int k = bucket_at(inv->plan, r, t0, &next);
		if (r->is_max)
			q[0] = q[0] > qty ? q[0] : qty;
		else
			q[k] += qty;
		return 0;
	}
	if (a >= b)
		return 0;
	if (r->is_max) {
		q[0] = q[0] > qty ? q[0] : qty;
		return 0;
	}
	for (uint64_t s = a; s < b;) {
		int k = r->nwin ? bucket_at(inv->plan, r, s, &next) : 0;
		uint64_t e = r->nwin && next < b ? next : b;
		q[k] += upto(qty, t0, t1, e) - upto(qty, t0, t1, s);
		s = e;
	}
	return 0;
}

int
price_invoice_add(struct price_invoice *inv, uint64_t t0, uint64_t t1, const struct usage *u,
		  char *err, size_t errlen)
{
	if (inv->finished)
		return seterr(err, errlen, "invoice already finished");
	if (t1 < t0)
		return seterr(err, errlen, "interval ends before it starts");
	for (size_t i = 0; i < u->n; i++) {
		long ri = rule_for(inv->plan, u->items[i].res);
		if (ri >= 0)
			charge(inv, (size_t)ri, t0, t1, u->items[i].qty);
	}
	return 0;
}

int
price_invoice_add_rec(struct price_invoice *inv, const struct ledger_rec *r, char *err,
		      size_t errlen)
{
	return price_invoice_add(inv, r->t0, r->t1, &r->use, err, errlen);
}

/* qty at rate, rounded half up to a micro-unit. */
static int
amount(uint64_t qty, const struct rate *r, uint64_t *out)
{
	u128 n, a, rem;

	if (mul((u128)qty, r->micro, &n) < 0 || mul(n, r->den, &n) < 0)
		return -1;
	a = n / r->num;
	rem = n % r->num;
	if (rem && rem >= r->num - rem)
		a++;
	if (a > UINT64_MAX)
		return -1;
	*out = (uint64_t)a;
	return 0;
}

static int
add_line(struct price_invoice *inv, const char *res, const char *label, uint64_t qty,
	 const struct rate *r, char *err, size_t errlen)
{
	struct price_line *l;
	uint64_t amt;

	if (qty == 0)
		return 0;
	if (amount(qty, r, &amt) < 0)
		return seterr(err, errlen, "amount for %s overflows", res);
	if (inv->total > UINT64_MAX - amt)
		return seterr(err, errlen, "invoice total overflows");
	inv->lines = xreallocarray(inv->lines, inv->nlines + 1, sizeof(*inv->lines));
	l = &inv->lines[inv->nlines++];
	memset(l, 0, sizeof(*l));
	if (label)
		snprintf(l->item, sizeof(l->item), "%s %s", res, label);
	else
		snprintf(l->item, sizeof(l->item), "%s", res);
	snprintf(l->res, sizeof(l->res), "%s", res);
	l->qty = qty;
	l->rate = r->micro;
	snprintf(l->per, sizeof(l->per), "%s", r->per);
	l->amount = amt;
	inv->total += amt;
	return 0;
}

int
price_invoice_finish(struct price_invoice *inv, char *err, size_t errlen)
{
	const struct price_plan *p = inv->plan;
	char label[96];

	if (inv->finished)
		return 0;
	inv->finished = 1;
	for (size_t i = 0; i < p->n; i++) {
		const struct rule *r = &p->rules[i];
		const u128 *q = &inv->q[inv->base[i]];
		for (size_t k = 0; k <= r->nwin; k++)
			if (q[k] > UINT64_MAX)
				return seterr(err, errlen, "quantity of %s overflows", r->res);
		if (r->ntier) {
			uint64_t total = (uint64_t)q[0], lo = 0;
			for (size_t k = 0; k <= r->ntier; k++) {
				uint64_t hi = k < r->ntier ? r->tiers[k].upto : UINT64_MAX;
				uint64_t part = total <= lo ? 0 : (total < hi ? total : hi) - lo;
				if (k == 0)
					snprintf(label, sizeof(label), "up to %s",
						 r->tiers[0].upto_txt);
				else if (k < r->ntier)
					snprintf(label, sizeof(label), "%s to %s",
						 r->tiers[k - 1].upto_txt, r->tiers[k].upto_txt);
				else
					snprintf(label, sizeof(label), "over %s",
						 r->tiers[k - 1].upto_txt);
				const struct rate *rt = k < r->ntier ? &r->tiers[k].r : &r->fixed;
				if (add_line(inv, r->res, label, part, rt, err, errlen) < 0)
					return -1;
				lo = hi;
			}
			continue;
		}
		if (add_line(inv, r->res, NULL, (uint64_t)q[0], &r->fixed, err, errlen) < 0)
			return -1;
		for (size_t k = 0; k < r->nwin; k++) {
			const struct window *w = &r->win[k];
			snprintf(label, sizeof(label), "%02d:%02d-%02d:%02d", w->from / 60,
				 w->from % 60, w->to / 60, w->to % 60);
			if (add_line(inv, r->res, label, (uint64_t)q[k + 1], &w->r, err, errlen) <
			    0)
				return -1;
		}
	}
	return 0;
}

const struct price_line *
price_invoice_lines(const struct price_invoice *inv, size_t *n)
{
	*n = inv->nlines;
	return inv->lines;
}

uint64_t
price_invoice_total(const struct price_invoice *inv)
{
	return inv->total;
}

/* Output. */

static void
money(struct sbuf *out, uint64_t micro)
{
	sbuf_printf(out, "%" PRIu64 ".%06" PRIu64, micro / 1000000, micro % 1000000);
}

static void
when(struct sbuf *out, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[64];

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(buf, sizeof(buf), "@%" PRIu64, ms / 1000);
	sbuf_printf(out, "%s.%03uZ", buf, (unsigned)(ms % 1000));
}

static void
fmt_line(const struct price_line *l, struct sbuf *qty, struct sbuf *rate, struct sbuf *amt)
{
	sbuf_reset(qty);
	sbuf_reset(rate);
	sbuf_reset(amt);
	usage_format_qty(l->res, l->qty, qty);
	money(rate, l->rate);
	sbuf_printf(rate, "/%s", l->per);
	money(amt, l->amount);
}

static size_t
maxz(size_t a, size_t b)
{
	return a > b ? a : b;
}

void
price_invoice_text(const struct price_invoice *inv, struct sbuf *out)
{
	struct sbuf q, r, a;
	size_t wi = 4, wq = 8, wu = 4, wr = 4, wa = 6;

	sbuf_init(&q);
	sbuf_init(&r);
	sbuf_init(&a);
	sbuf_printf(out, "Invoice for %s, ", inv->principal);
	if (inv->from && inv->to) {
		when(out, inv->from);
		sbuf_adds(out, " to ");
		when(out, inv->to);
	} else if (inv->from) {
		sbuf_adds(out, "usage from ");
		when(out, inv->from);
	} else if (inv->to) {
		sbuf_adds(out, "usage before ");
		when(out, inv->to);
	} else
		sbuf_adds(out, "all recorded usage");
	sbuf_printf(out, ", in %s\n", inv->plan->currency);
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct price_line *l = &inv->lines[i];
		fmt_line(l, &q, &r, &a);
		wi = maxz(wi, strlen(l->item));
		wq = maxz(wq, q.len);
		wu = maxz(wu, strlen(usage_unit(l->res)));
		wr = maxz(wr, r.len);
		wa = maxz(wa, a.len);
	}
	sbuf_reset(&a);
	money(&a, inv->total);
	wa = maxz(wa, a.len);
	sbuf_printf(out, "%-*s  %*s  %-*s  %*s  %*s\n", (int)wi, "item", (int)wq, "quantity",
		    (int)wu, "unit", (int)wr, "rate", (int)wa, "amount");
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct price_line *l = &inv->lines[i];
		fmt_line(l, &q, &r, &a);
		sbuf_printf(out, "%-*s  %*s  %-*s  %*s  %*s\n", (int)wi, l->item, (int)wq, q.s,
			    (int)wu, usage_unit(l->res), (int)wr, r.s, (int)wa, a.s);
	}
	sbuf_reset(&a);
	money(&a, inv->total);
	sbuf_printf(out, "%-*s  %*s  %-*s  %*s  %*s %s\n", (int)wi, "total", (int)wq, "", (int)wu,
		    "", (int)wr, "", (int)wa, a.s, inv->plan->currency);
	sbuf_free(&q);
	sbuf_free(&r);
	sbuf_free(&a);
}

/* RFC 4180: quote a field that needs it. */
static void
csv_field(struct sbuf *out, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		sbuf_adds(out, s);
		return;
	}
	sbuf_adds(out, "\"");
	for (; *s; s++) {
		if (*s == '"')
			sbuf_adds(out, "\"");
		sbuf_add(out, s, 1);
	}
	sbuf_adds(out, "\"");
}

void
price_invoice_csv(const struct price_invoice *inv, struct sbuf *out)
{
	struct sbuf q, r, a;

	sbuf_init(&q);
	sbuf_init(&r);
	sbuf_init(&a);
	sbuf_adds(
	    out,
	    "item,resource,quantity,unit,base_quantity,base_unit,rate,per,amount,currency\r\n");
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct price_line *l = &inv->lines[i];
		sbuf_reset(&q);
		sbuf_reset(&r);
		sbuf_reset(&a);
		usage_format_qty(l->res, l->qty, &q);
		money(&r, l->rate);
		money(&a, l->amount);
		csv_field(out, l->item);
		sbuf_adds(out, ",");
		csv_field(out, l->res);
		sbuf_adds(out, ",");
		csv_field(out, q.s);
		sbuf_adds(out, ",");
		csv_field(out, usage_unit(l->res));
		sbuf_printf(out, ",%" PRIu64 ",", l->qty);
		csv_field(out, usage_base_unit(l->res));
		sbuf_printf(out, ",%s,", r.s);
		csv_field(out, l->per);
		sbuf_printf(out, ",%s,%s\r\n", a.s, inv->plan->currency);
	}
	sbuf_reset(&a);
	money(&a, inv->total);
	sbuf_printf(out, "total,,,,,,,,%s,%s\r\n", a.s, inv->plan->currency);
	sbuf_free(&q);
	sbuf_free(&r);
	sbuf_free(&a);
}

void
price_invoice_json(const struct price_invoice *inv, struct sbuf *out)
{
	sbuf_adds(out, "{\"principal\":");
	sbuf_json_str(out, inv->principal);
	sbuf_printf(out, ",\"from\":%" PRIu64 ",\"to\":", inv->from);
	if (inv->to)
		sbuf_printf(out, "%" PRIu64, inv->to);
	else
		sbuf_adds(out, "null");
	sbuf_adds(out, ",\"currency\":");
	sbuf_json_str(out, inv->plan->currency);
	sbuf_adds(out, ",\"lines\":[");
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct price_line *l = &inv->lines[i];
		sbuf_adds(out, i ? ",{\"item\":" : "{\"item\":");
		sbuf_json_str(out, l->item);
		sbuf_adds(out, ",\"resource\":");
		sbuf_json_str(out, l->res);
		sbuf_adds(out, ",\"quantity\":\"");
		usage_format_qty(l->res, l->qty, out);
		sbuf_adds(out, "\",\"unit\":");
		sbuf_json_str(out, usage_unit(l->res));
		sbuf_printf(out, ",\"base\":%" PRIu64 ",\"base_unit\":", l->qty);
		sbuf_json_str(out, usage_base_unit(l->res));
		sbuf_printf(out, ",\"rate_micro\":%" PRIu64 ",\"per\":", l->rate);
		sbuf_json_str(out, l->per);
		sbuf_printf(out, ",\"amount_micro\":%" PRIu64 ",\"amount\":\"", l->amount);
		money(out, l->amount);
		sbuf_adds(out, "\"}");
	}
	sbuf_printf(out, "],\"total_micro\":%" PRIu64 ",\"total\":\"", inv->total);
	money(out, inv->total);
	sbuf_adds(out, "\"}\n");
}
