/* price-*: price plans parse or say which line is wrong, and invoices come
 * out exact: fixed prices, time-of-day windows a record straddles, volume
 * tiers a total crosses, and the same figures in text, CSV and JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meter/price.h"

#define DAY0 1699920000000ULL /* 2023-11-14T00:00:00Z */
#define H    3600000ULL	      /* ms */
#define MIN  60000ULL
#define GiB  (1ULL << 30)

static struct price_plan *
plan(const char *text)
{
	struct price_plan *p;
	char err[300];
	if (price_plan_parse(text, "plan", &p, err, sizeof(err)) < 0)
		fail_msg("plan rejected: %s", err);
	return p;
}

/* Charge one record of a single resource. */
static void
add1(struct price_invoice *inv, uint64_t t0, uint64_t t1, const char *res, uint64_t q)
{
	struct usage u;
	char err[200];
	usage_init(&u);
	assert_int_equal(usage_add(&u, res, q), 0);
	assert_int_equal(price_invoice_add(inv, t0, t1, &u, err, sizeof(err)), 0);
	usage_free(&u);
}

static void
finish(struct price_invoice *inv)
{
	char err[200];
	if (price_invoice_finish(inv, err, sizeof(err)) < 0)
		fail_msg("finish: %s", err);
}

/* The line whose item is item, or fail. */
static const struct price_line *
find(const struct price_invoice *inv, const char *item)
{
	size_t n;
	const struct price_line *l = price_invoice_lines(inv, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].item, item) == 0)
			return &l[i];
	fail_msg("no line '%s'", item);
	return NULL;
}

static size_t
nlines(const struct price_invoice *inv)
{
	size_t n;
	price_invoice_lines(inv, &n);
	return n;
}

static const char fixed_plan[] = "# a plan\n"
				 "currency EUR\n"
				 "\n"
				 "price cpu 5000 per h        # 0.005 EUR per CPU hour\n"
				 "price\tnode-time:ct 10000 per h\n"
				 "price net-tx 20 per MiB\n";

static struct price_invoice *
fixed_invoice(struct price_plan *p)
{
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);
	struct usage u;
	char err[200];

	usage_init(&u);
	for (uint64_t i = 0; i < 3; i++) {
		usage_reset(&u);
		usage_add(&u, "cpu", 1200000000); /* 20 CPU minutes */
		usage_add(&u, "node-time:ct", 1000);
		usage_add(&u, "net-tx:1", 1048576 * (i == 0));
		usage_add(&u, "net-tx:2", 1048576 * (i == 1) * 2);
		usage_add(&u, "mem", 12345); /* no price: free */
		assert_int_equal(price_invoice_add(inv, DAY0 + i * 1000, DAY0 + (i + 1) * 1000, &u,
						   err, sizeof(err)),
				 0);
	}
	usage_free(&u);
	finish(inv);
	return inv;
}

/* price-1.*: fixed prices */
static void
price_1_fixed(void **state)
{
	struct price_plan *p = plan(fixed_plan);
	struct price_invoice *inv = fixed_invoice(p);

	assert_string_equal(price_plan_currency(p), "EUR");
	assert_int_equal(nlines(inv), 3);
	const struct price_line *l = find(inv, "cpu");
	assert_int_equal(l->qty, 3600000000ULL);
	assert_int_equal(l->amount, 5000);
	l = find(inv, "node-time:ct");
	assert_int_equal(l->qty, 3000);
	assert_int_equal(l->amount, 8); /* 8.33 rounds down */
	l = find(inv, "net-tx");	/* both domains under the class's price */
	assert_int_equal(l->qty, 3 * 1048576);
	assert_int_equal(l->amount, 60);
	assert_int_equal(price_invoice_total(inv), 5068);
	price_invoice_free(inv);
	price_plan_free(p);
}

static uint64_t
one(const char *text, const char *res, uint64_t q)
{
	struct price_plan *p = plan(text);
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0, DAY0 + 1000, res, q);
	finish(inv);
	uint64_t t = price_invoice_total(inv);
	price_invoice_free(inv);
	price_plan_free(p);
	return t;
}

static void
price_1_rounding(void **state)
{
	/* 1 micro-unit per 2 ms of CPU: half a micro-unit rounds up, less
	 * does not. */
	const char *t = "currency EUR\nprice cpu 1 per 2 ms\n";
	assert_int_equal(one(t, "cpu", 1000), 1);
	assert_int_equal(one(t, "cpu", 999), 0);
	assert_int_equal(one(t, "cpu", 2999), 1);
	assert_int_equal(one(t, "cpu", 3000), 2);
	/* Memory by GiB-hour, stored in KiB*s. */
	assert_int_equal(one("currency EUR\nprice mem 1000 per GiB*h\n", "mem", 1048576ULL * 3600),
			 1000);
	assert_int_equal(one("currency EUR\nprice mem 1 per B*s\n", "mem", 3), 3072);
	/* Packets in bulk; other classes by "unit". */
	assert_int_equal(
	    one("currency EUR\nprice net-txpk 7 per 1000000 pkt\n", "net-txpk:1", 3000000), 21);
	assert_int_equal(one("currency EUR\nprice gpu 3 per unit\n", "gpu:a100", 5), 15);
	/* The largest figures do not overflow silently. */
	struct price_plan *p = plan("currency EUR\nprice cpu 1000000000000000 per ms\n");
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);
	char err[200];
	add1(inv, DAY0, DAY0 + 1000, "cpu", UINT64_MAX);
	assert_int_equal(price_invoice_finish(inv, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "overflows"));
	price_invoice_free(inv);
	price_plan_free(p);
	/* No usage, no lines. */
	p = plan(fixed_plan);
	inv = price_invoice_new(p, "alice", 0, 0);
	finish(inv);
	assert_int_equal(nlines(inv), 0);
	assert_int_equal(price_invoice_total(inv), 0);
	price_invoice_free(inv);
	price_plan_free(p);
}

/* price-2.*: time of day */
static const char tod_plan[] = "currency EUR\n"
			       "price cpu 3600 per h\n"
			       "price cpu 7200 per h at 09:00-17:00\n";

static void
price_2_window_split(void **state)
{
	struct price_plan *p = plan(tod_plan);
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);

	/* One minute from 08:59:30: half of it before the window opens. */
	add1(inv, DAY0 + 9 * H - 30000, DAY0 + 9 * H + 30000, "cpu", 60000000);
	finish(inv);
	assert_int_equal(nlines(inv), 2);
	const struct price_line *l = find(inv, "cpu");
	assert_int_equal(l->qty, 30000000);
	assert_int_equal(l->amount, 30);
	l = find(inv, "cpu 09:00-17:00");
	assert_int_equal(l->qty, 30000000);
	assert_int_equal(l->rate, 7200);
	assert_int_equal(l->amount, 60);
	assert_int_equal(price_invoice_total(inv), 90);
	price_invoice_free(inv);

	/* price-2.2: an odd quantity still adds up exactly, and the closing
	 * edge works too (16:59:59.5 to 17:00:00.5). */
	inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0 + 9 * H - 1000, DAY0 + 9 * H + 1000, "cpu", 7);
	add1(inv, DAY0 + 17 * H - 500, DAY0 + 17 * H + 500, "cpu", 1001);
	finish(inv);
	assert_int_equal(find(inv, "cpu")->qty, 3 + 501);
	assert_int_equal(find(inv, "cpu 09:00-17:00")->qty, 4 + 500);
	price_invoice_free(inv);

	/* price-2.3: a record over two whole days: 16 h in windows. */
	inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0, DAY0 + 48 * H, "cpu", 48 * 3600000000ULL);
	finish(inv);
	assert_int_equal(find(inv, "cpu")->qty, 32 * 3600000000ULL);
	assert_int_equal(find(inv, "cpu 09:00-17:00")->qty, 16 * 3600000000ULL);
	assert_int_equal(price_invoice_total(inv), 32 * 3600 + 16 * 7200);
	price_invoice_free(inv);

	/* price-2.4: an instant record goes where it falls. */
	inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0 + 9 * H, DAY0 + 9 * H, "cpu", 5);
	add1(inv, DAY0 + 9 * H - 1, DAY0 + 9 * H - 1, "cpu", 6);
	finish(inv);
	assert_int_equal(find(inv, "cpu 09:00-17:00")->qty, 5);
	assert_int_equal(find(inv, "cpu")->qty, 6);
	price_invoice_free(inv);
	price_plan_free(p);
}

static void
price_2_offset_wrap(void **state)
{
	/* Windows in UTC+01:00; the night window wraps midnight. */
	struct price_plan *p = plan("currency EUR\n"
				    "utc-offset +01:00\n"
				    "price cpu 3000 per h\n"
				    "price cpu 1000 per h at 22:00-06:00\n");
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);

	/* 04:30-05:30 UTC is 05:30-06:30 local: half at night. */
	add1(inv, DAY0 + 4 * H + 30 * MIN, DAY0 + 5 * H + 30 * MIN, "cpu", 3600000000ULL);
	/* 21:30-22:30 UTC is 22:30-23:30 local: all at night. */
	add1(inv, DAY0 + 21 * H + 30 * MIN, DAY0 + 22 * H + 30 * MIN, "cpu", 3600000000ULL);
	finish(inv);
	assert_int_equal(find(inv, "cpu")->qty, 1800000000ULL);
	assert_int_equal(find(inv, "cpu 22:00-06:00")->qty, 5400000000ULL);
	assert_int_equal(price_invoice_total(inv), 1500 + 1500);
	price_invoice_free(inv);
	price_plan_free(p);

	/* A negative offset and a whole-day window. */
	p = plan("currency EUR\nutc-offset -05:00\nprice cpu 1 per h\n"
		 "price cpu 2 per h at 00:00-01:00\nprice node-time 1 per h\n"
		 "price node-time 9 per h at 00:00-24:00\n");
	inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0 + 5 * H, DAY0 + 6 * H, "cpu", 3600000000ULL); /* 00:00-01:00 local */
	add1(inv, DAY0 + 5 * H, DAY0 + 6 * H, "node-time:ct", H);
	finish(inv);
	assert_int_equal(find(inv, "cpu 00:00-01:00")->amount, 2);
	assert_int_equal(find(inv, "node-time 00:00-24:00")->amount, 9);
	assert_int_equal(nlines(inv), 2);
	price_invoice_free(inv);
	price_plan_free(p);
}

static void
price_2_period(void **state)
{
	/* An invoice for [01:00, 02:00) takes the part of a record inside it;
	 * two adjacent invoices take the whole of it, exactly. */
	struct price_plan *p = plan(fixed_plan);
	struct price_invoice *a = price_invoice_new(p, "alice", DAY0, DAY0 + H);
	struct price_invoice *b = price_invoice_new(p, "alice", DAY0 + H, DAY0 + 2 * H);
	struct price_invoice *c = price_invoice_new(p, "alice", DAY0 + 2 * H, 0);

	for (struct price_invoice **i = (struct price_invoice *[]){a, b, c, NULL}; *i; i++) {
		add1(*i, DAY0 + 30 * MIN, DAY0 + H + 30 * MIN, "cpu", 7);
		add1(*i, DAY0 + 2 * H, DAY0 + 2 * H + 1000, "cpu", 100);
		finish(*i);
	}
	assert_int_equal(find(a, "cpu")->qty, 3);
	assert_int_equal(find(b, "cpu")->qty, 4);
	assert_int_equal(find(c, "cpu")->qty, 100);
	price_invoice_free(a);
	price_invoice_free(b);
	price_invoice_free(c);
	price_plan_free(p);
}

/* price-3.*: volume tiers */
static const char tier_plan[] = "currency USD\n"
				"price net-tx 20000 per GiB up to 1 GiB\n"
				"price net-tx 10000 per GiB up to 3 GiB\n"
				"price net-tx 5000 per GiB\n"
				"price net-tx:9 1 per KiB\n"
				"price mem-peak 1 per MiB\n"
				"price mem-peak 2 per MiB up to 1 GiB\n";

static void
price_3_tiers(void **state)
{
	struct price_plan *p;
	char err[300];

	/* mem-peak tiers must come first: this plan is wrong on purpose. */
	assert_int_equal(price_plan_parse(tier_plan, "plan", &p, err, sizeof(err)), -1);
	assert_string_equal(err, "plan:7: tier after the price for the rest of mem-peak (line 6); "
				 "list 'up to' lines first");

	p = plan("currency USD\n"
		 "price net-tx 20000 per GiB up to 1 GiB\n"
		 "price net-tx 10000 per GiB up to 3 GiB\n"
		 "price net-tx 5000 per GiB\n"
		 "price net-tx:9 1 per KiB\n"
		 "price mem-peak 1 per MiB\n");
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0, DAY0 + 1000, "net-tx:1", 2 * GiB);
	add1(inv, DAY0 + 1000, DAY0 + 2000, "net-tx:2", 2 * GiB);
	add1(inv, DAY0 + 1000, DAY0 + 2000, "net-tx:9", 10240); /* its own price */
	add1(inv, DAY0, DAY0 + 1000, "mem-peak", 10 << 20);
	add1(inv, DAY0 + 1000, DAY0 + 2000, "mem-peak", 30 << 20); /* a maximum */
	add1(inv, DAY0 + 2000, DAY0 + 3000, "mem-peak", 20 << 20);
	finish(inv);
	assert_int_equal(nlines(inv), 5);
	const struct price_line *l = find(inv, "net-tx up to 1 GiB");
	assert_int_equal(l->qty, GiB);
	assert_int_equal(l->amount, 20000);
	l = find(inv, "net-tx 1 GiB to 3 GiB");
	assert_int_equal(l->qty, 2 * GiB);
	assert_int_equal(l->amount, 20000);
	l = find(inv, "net-tx over 3 GiB");
	assert_int_equal(l->qty, GiB);
	assert_int_equal(l->amount, 5000);
	assert_int_equal(find(inv, "net-tx:9")->amount, 10);
	assert_int_equal(find(inv, "mem-peak")->amount, 30);
	assert_int_equal(price_invoice_total(inv), 45040);
	price_invoice_free(inv);

	/* price-3.2: a total inside the second tier; the third is not listed. */
	inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0, DAY0 + 1000, "net-tx:1", GiB + GiB / 2);
	finish(inv);
	assert_int_equal(nlines(inv), 2);
	assert_int_equal(find(inv, "net-tx up to 1 GiB")->amount, 20000);
	assert_int_equal(find(inv, "net-tx 1 GiB to 3 GiB")->amount, 5000);
	price_invoice_free(inv);

	/* price-3.3: exactly on the boundary. */
	inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0, DAY0 + 1000, "net-tx:1", GiB);
	finish(inv);
	assert_int_equal(nlines(inv), 1);
	assert_int_equal(price_invoice_total(inv), 20000);
	price_invoice_free(inv);
	price_plan_free(p);
}

/* price-4.*: plan errors name their line */
static void
price_4_errors(void **state)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
	    {"currency EUR\nprice cpu 5 per GB\n",
	     "plan:2: unknown unit 'GB' for cpu (use ms, s, min, h, day)"},
	    {"currency EUR\nprice mem 5 per GiB\n",
	     "plan:2: unknown unit 'GiB' for mem (use <bytes>*<time>, e.g. GiB*h)"},
	    {"currency EUR\nprice net-tx 5 per h\n",
	     "plan:2: unknown unit 'h' for net-tx (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"},
	    {"currency EUR\nprice cpu 1 per h\nprice cpu 2 per h at 08:00-10:00\n"
	     "price cpu 3 per h at 09:00-12:00\n",
	     "plan:4: window 09:00-12:00 overlaps the one on line 3"},
	    {"currency EUR\nprice cpu 1 per h\nprice cpu 2 per h at 22:00-06:00\n"
	     "# night\nprice cpu 3 per h at 05:59-07:00\n",
	     "plan:5: window 05:59-07:00 overlaps the one on line 3"},
	    {"currency EUR\nprice net-tx 1 per GiB up to 2 GiB\nprice net-tx 1 per GiB up to 1 "
	     "GiB\n",
	     "plan:3: tier up to 1 GiB is not above the one on line 2"},
	    {"currency EUR\nprice net-tx 1 per GiB up to 2 GiB\nprice net-tx 1 per GiB at "
	     "01:00-02:00\n",
	     "plan:3: net-tx has volume tiers (line 2): tiers and time-of-day prices do not mix"},
	    {"currency EUR\nprice net-tx 1 per GiB\nprice net-tx 1 per GiB at 01:00-02:00\n"
	     "price net-tx 1 per GiB up to 2 GiB\n",
	     "plan:4: net-tx has time-of-day prices (line 3): tiers and time-of-day prices do "
	     "not mix"},
	    {"price cpu 1 per h\n", "plan: no 'currency' line"},
	    {"currency EUR\nprice cpu 2 per h at 08:00-10:00\n",
	     "plan:2: cpu has time-of-day prices but no price for the other hours"},
	    {"currency EUR\n\nprice net-tx 2 per GiB up to 1 TiB\n",
	     "plan:3: net-tx has volume tiers but no price for the rest (a line without 'up to')"},
	    {"currency EUR\nprice cpu -1 per h\n",
	     "plan:2: bad price '-1' (an integer of micro-units, at most 10^15)"},
	    {"currency EUR\nprice cpu 1.5 per h\n",
	     "plan:2: bad price '1.5' (an integer of micro-units, at most 10^15)"},
	    {"currency EUR\nprice cpu 1000000000000001 per h\n",
	     "plan:2: bad price '1000000000000001' (an integer of micro-units, at most 10^15)"},
	    {"currency EUR\nprise cpu 1 per h\n",
	     "plan:2: unknown directive 'prise' (currency, utc-offset, price)"},
	    {"currency EUR\nprice mem-peak 1 per MiB\nprice mem-peak 1 per MiB at 01:00-02:00\n",
	     "plan:3: mem-peak is a maximum, not a sum: it cannot have time-of-day prices"},
	    {"currency EUR\nutc-offset +15:00\n",
	     "plan:2: bad utc-offset '+15:00' (+HH:MM or -HH:MM, at most 14:00)"},
	    {"currency EUR\nutc-offset 01:00\n",
	     "plan:2: bad utc-offset '01:00' (+HH:MM or -HH:MM, at most 14:00)"},
	    {"currency EUR\nutc-offset +01:00\nutc-offset +01:00\n",
	     "plan:3: second utc-offset line (first on line 2)"},
	    {"currency EUR\nprice cpu 1 per h\nprice cpu 2 per s\n",
	     "plan:3: cpu already has its price on line 2"},
	    {"currency EUR\nprice cpu 1 per h\nprice cpu 2 per h at 25:00-26:00\n",
	     "plan:3: bad window '25:00-26:00' (HH:MM-HH:MM)"},
	    {"currency EUR\nprice cpu 1 per h\nprice cpu 2 per h at 9:00-10:00\n",
	     "plan:3: bad window '9:00-10:00' (HH:MM-HH:MM)"},
	    {"currency EUR\nprice cpu 1 per h\nprice cpu 2 per h at 24:00-10:00\n",
	     "plan:3: bad window '24:00-10:00' (HH:MM-HH:MM)"},
	    {"currency EUR\nprice cpu 1 per h\nprice cpu 2 per h at 08:00-08:00\n",
	     "plan:3: empty window '08:00-08:00'"},
	    {"currency EUR\nprice cpu 5 per\n", "plan:2: missing unit after 'per'"},
	    {"currency EUR\nprice cpu 5 h\n", "plan:2: expected 'per' after the price"},
	    {"currency EUR\nprice cpu 5 per 0 h\n", "plan:2: bad count '0' (1 to 10^12)"},
	    {"currency EUR\nprice cpu 5 per h at\n",
	     "plan:2: expected 'at HH:MM-HH:MM' and nothing after it"},
	    {"currency EUR\nprice cpu 5 per h up to\n",
	     "plan:2: expected 'up to <n> <unit>' and nothing after it"},
	    {"currency EUR\nprice cpu 5 per h for ever\n",
	     "plan:2: unexpected 'for' (expected 'at' or 'up to')"},
	    {"currency EUR\ncurrency USD\n", "plan:2: second currency line (first on line 1)"},
	    {"currency EU1\n", "plan:1: expected 'currency <1-16 letters>'"},
	    {"currency EUR\nprice CPU 1 per h\n", "plan:2: bad resource name 'CPU'"},
	    {"currency EUR\nprice\n", "plan:2: bad resource name ''"},
	    {"currency EUR\nprice net-tx 1 per GiB up to 0 GiB\nprice net-tx 1 per GiB\n",
	     "plan:2: bad tier size '0' (1 to 10^12)"},
	    {"currency EUR\nprice net-tx 1 per GiB up to 1 h\nprice net-tx 1 per GiB\n",
	     "plan:2: unknown unit 'h' for net-tx (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct price_plan *p = NULL;
		char err[300] = "";
		int rc = price_plan_parse(cases[i].text, "plan", &p, err, sizeof(err));
		if (rc != -1 || strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: got %d '%s', want '%s'", i, rc, err, cases[i].err);
		assert_null(p);
	}

	/* price-4.2: a file; its name starts the messages */
	char path[] = "/tmp/test_price.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "currency EUR\nprice x 1 per h\n", 29), 29);
	close(fd);
	struct price_plan *p;
	char err[300], want[300];
	assert_int_equal(price_plan_load(path, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: unknown unit 'h' for x (use unit)",
		 strrchr(path, '/') + 1);
	assert_string_equal(err, want);
	unlink(path);
	assert_int_equal(price_plan_load(path, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

/* price-5.*: outputs */
static void
price_5_outputs(void **state)
{
	struct price_plan *p = plan(fixed_plan);
	struct price_invoice *inv = fixed_invoice(p);
	struct sbuf b;

	sbuf_init(&b);
	price_invoice_csv(inv, &b);
	assert_string_equal(
	    b.s, "item,resource,quantity,unit,base_quantity,base_unit,rate,per,amount,currency\r\n"
		 "cpu,cpu,3600.00,s,3600000000,us,0.005000,h,0.005000,EUR\r\n"
		 "node-time:ct,node-time:ct,3.0,s,3000,ms,0.010000,h,0.000008,EUR\r\n"
		 "net-tx,net-tx,3145728,B,3145728,B,0.000020,MiB,0.000060,EUR\r\n"
		 "total,,,,,,,,0.005068,EUR\r\n");
	sbuf_reset(&b);
	price_invoice_json(inv, &b);
	assert_string_equal(
	    b.s,
	    "{\"principal\":\"alice\",\"from\":0,\"to\":null,\"currency\":\"EUR\",\"lines\":["
	    "{\"item\":\"cpu\",\"resource\":\"cpu\",\"quantity\":\"3600.00\",\"unit\":\"s\","
	    "\"base\":3600000000,\"base_unit\":\"us\",\"rate_micro\":5000,\"per\":\"h\","
	    "\"amount_micro\":5000,\"amount\":\"0.005000\"},"
	    "{\"item\":\"node-time:ct\",\"resource\":\"node-time:ct\",\"quantity\":\"3.0\","
	    "\"unit\":\"s\",\"base\":3000,\"base_unit\":\"ms\",\"rate_micro\":10000,\"per\":\"h\","
	    "\"amount_micro\":8,\"amount\":\"0.000008\"},"
	    "{\"item\":\"net-tx\",\"resource\":\"net-tx\",\"quantity\":\"3145728\",\"unit\":\"B\","
	    "\"base\":3145728,\"base_unit\":\"B\",\"rate_micro\":20,\"per\":\"MiB\","
	    "\"amount_micro\":60,\"amount\":\"0.000060\"}],"
	    "\"total_micro\":5068,\"total\":\"0.005068\"}\n");
	sbuf_reset(&b);
	price_invoice_text(inv, &b);
	assert_string_equal(b.s, "Invoice for alice, all recorded usage, in EUR\n"
				 "item          quantity  unit          rate    amount\n"
				 "cpu            3600.00  s       0.005000/h  0.005000\n"
				 "node-time:ct       3.0  s       0.010000/h  0.000008\n"
				 "net-tx         3145728  B     0.000020/MiB  0.000060\n"
				 "total                                       0.005068 EUR\n");
	price_invoice_free(inv);

	/* price-5.2: a bounded period; a CSV field that needs quotes */
	inv = price_invoice_new(p, "bob", DAY0, DAY0 + H);
	finish(inv);
	sbuf_reset(&b);
	price_invoice_json(inv, &b);
	assert_string_equal(b.s,
			    "{\"principal\":\"bob\",\"from\":1699920000000,\"to\":1699923600000,"
			    "\"currency\":\"EUR\",\"lines\":[],\"total_micro\":0,\"total\":"
			    "\"0.000000\"}\n");
	sbuf_reset(&b);
	price_invoice_text(inv, &b);
	assert_non_null(strstr(b.s, "Invoice for bob, 2023-11-14T00:00:00.000Z to "
				    "2023-11-14T01:00:00.000Z, in EUR\n"));
	price_invoice_free(inv);
	inv = price_invoice_new(p, "bob", DAY0, 0);
	finish(inv);
	sbuf_reset(&b);
	price_invoice_text(inv, &b);
	assert_true(strncmp(b.s, "Invoice for bob, usage from 2023-11-14T00:00:00.000Z, in EUR\n",
			    61) == 0);
	price_invoice_free(inv);
	inv = price_invoice_new(p, "bob", 0, DAY0 + 1);
	finish(inv);
	sbuf_reset(&b);
	price_invoice_text(inv, &b);
	assert_true(strncmp(b.s, "Invoice for bob, usage before 2023-11-14T00:00:00.001Z, in EUR\n",
			    63) == 0);
	price_invoice_free(inv);
	price_plan_free(p);

	p = plan("currency EUR\nprice net-txpk 3 per 1000 pkt\n");
	inv = price_invoice_new(p, "bob", 0, 0);
	add1(inv, DAY0, DAY0 + 1000, "net-txpk:1", 2000);
	finish(inv);
	sbuf_reset(&b);
	price_invoice_csv(inv, &b);
	assert_non_null(strstr(b.s, "\r\nnet-txpk,net-txpk,2000,pkt,2000,pkt,0.000003,1000 pkt,"
				    "0.000006,EUR\r\n"));
	price_invoice_free(inv);
	price_plan_free(p);
	sbuf_free(&b);
}

/* price-6: an invoice straight from ledger records */
static void
price_6_records(void **state)
{
	struct price_plan *p = plan(tod_plan);
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);
	struct ledger_rec r;
	char err[200];

	ledger_rec_init(&r);
	snprintf(r.principal, sizeof(r.principal), "alice");
	r.t0 = DAY0 + 10 * H;
	r.t1 = r.t0 + 1000;
	usage_add(&r.use, "cpu", 1000000);
	assert_int_equal(price_invoice_add_rec(inv, &r, err, sizeof(err)), 0);
	assert_int_equal(price_invoice_add(inv, 5, 4, &r.use, err, sizeof(err)), -1);
	finish(inv);
	assert_int_equal(find(inv, "cpu 09:00-17:00")->qty, 1000000);
	assert_int_equal(price_invoice_add_rec(inv, &r, err, sizeof(err)), -1); /* finished */
	ledger_rec_free(&r);
	price_invoice_free(inv);
	price_plan_free(p);
}

/* price-7.1: a plan of many rules parses in linear time (found by
 * fuzz/price: each rule cost MINUTES^2 steps, and the rules array grew one
 * rule at a time, so a plan of 3000 qualified resources took 15 s to load,
 * 30 s under ASan), and the windows still change where they should. */
static void
price_7_many_rules(void **state)
{
	struct sbuf text;
	struct timespec a, b;
	struct price_plan *p;
	sbuf_init(&text);
	sbuf_adds(&text, "currency EUR\n");
	for (int i = 0; i < 3000; i++)
		sbuf_printf(&text, "price net-tx:%d 1 per B\n", i);
	sbuf_adds(&text, "price cpu 5000 per h\nprice cpu 2000 per h at 22:00-06:00\n");
	clock_gettime(CLOCK_MONOTONIC, &a);
	p = plan(text.s);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	if (secs > 1.0)
		fail_msg("3002 rules took %.2f s to parse", secs);
	/* 21:00-23:00 across the window's start: one hour at each price */
	struct price_invoice *inv = price_invoice_new(p, "alice", 0, 0);
	add1(inv, DAY0 + 21 * H, DAY0 + 23 * H, "cpu", 7200000000ULL);
	finish(inv);
	assert_int_equal(price_invoice_total(inv), 5000 + 2000);
	price_invoice_free(inv);
	price_plan_free(p);
	sbuf_free(&text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(price_1_fixed),	    cmocka_unit_test(price_1_rounding),
	    cmocka_unit_test(price_2_window_split), cmocka_unit_test(price_2_offset_wrap),
	    cmocka_unit_test(price_2_period),	    cmocka_unit_test(price_3_tiers),
	    cmocka_unit_test(price_4_errors),	    cmocka_unit_test(price_5_outputs),
	    cmocka_unit_test(price_6_records),	    cmocka_unit_test(price_7_many_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
