/* fuzz/price: price plans (src/meter/price.c), which an operator writes and
 * khbill reads, and the invoice arithmetic they drive.  The input is a plan
 * file; its comment lines "#q RES QTY T0 T1" (usage records, unix ms) and
 * "#p FROM TO" (the invoice period) are read by this harness only, so the
 * fuzzer also steers quantities and intervals (a plan without "#q" lines is
 * charged a fixed set of records).  Checks: a refusal says why; an invoice
 * either fails with a reason (an amount over 64 bits) or its total is the
 * sum of its lines; the three outputs are made. */
#include "fuzz.h"
#include "meter/price.h"

#include <inttypes.h>
#include <stdio.h>

static const struct {
	const char *res;
	uint64_t qty;
} fixed[] = {
    {"cpu", 1200000000},   {"node-time:ct", 1000}, {"net-tx:3", 1048576},
    {"net-rxpk:3", 1000},  {"mem", 12345},	   {"mem-peak", 268435456},
    {"console-out", 4096}, {"rdma-ops:4", 77},	   {"rdma-rd:4", 1ULL << 40},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "", *text = fuzz_str(data, size);
	struct price_plan *p = NULL;
	uint64_t from = 0, to = 0, t0 = 1700000000000ULL;
	int nq = 0, ok = 1;
	struct usage u;

	if (price_plan_parse(text, "fuzz.conf", &p, err, sizeof(err)) < 0) {
		FUZZ_CHECK(err[0] != '\0' && p == NULL);
		free(text);
		return 0;
	}
	(void)price_plan_currency(p);
	for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (sscanf(l, "#p %" SCNu64 " %" SCNu64, &from, &to) == 2)
			break;
	struct price_invoice *inv = price_invoice_new(p, "alice", from, to);
	FUZZ_CHECK(inv != NULL);
	usage_init(&u);
	for (char *l = text; ok && l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char res[USAGE_NAME_MAX + 1];
		uint64_t q, a, b;
		if (sscanf(l, "#q %64s %" SCNu64 " %" SCNu64 " %" SCNu64, res, &q, &a, &b) != 4)
			continue;
		nq++;
		/* records are samples (seconds) that khd made: a year at most
		 * keeps a window's walk over the days short */
		if (b > a && b - a > 366 * 86400000ULL)
			b = a + 366 * 86400000ULL;
		usage_reset(&u);
		if (usage_add(&u, res, q) < 0)
			continue;
		ok = price_invoice_add(inv, a, b, &u, err, sizeof(err)) == 0;
	}
	for (size_t i = 0; ok && nq == 0 && i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		usage_reset(&u);
		FUZZ_CHECK(usage_add(&u, fixed[i].res, fixed[i].qty) == 0);
		ok = price_invoice_add(inv, t0 + i * 3600000, t0 + (i + 1) * 3600000, &u, err,
				       sizeof(err)) == 0;
	}
	usage_free(&u);
	if (ok && price_invoice_finish(inv, err, sizeof(err)) == 0) {
		size_t n;
		const struct price_line *lines = price_invoice_lines(inv, &n);
		uint64_t sum = 0;
		for (size_t i = 0; i < n; i++) {
			FUZZ_CHECK(sum + lines[i].amount >= sum);
			sum += lines[i].amount;
		}
		FUZZ_CHECK(sum == price_invoice_total(inv));
		struct sbuf out;
		sbuf_init(&out);
		price_invoice_text(inv, &out);
		price_invoice_csv(inv, &out);
		price_invoice_json(inv, &out);
		sbuf_free(&out);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	price_invoice_free(inv);
	price_plan_free(p);
	free(text);
	return 0;
}
