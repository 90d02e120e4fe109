/* price: price plans and invoices.  A plan gives each resource a unit price
 * (fixed, by time of day, or by volume tier); an invoice applies it to usage
 * records with integer arithmetic, so every total is exact and reproducible. */
#ifndef KH_PRICE_H
#define KH_PRICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "meter/ledger.h"
#include "meter/usage.h"

/*
 * Plan file format (e.g. DIR/prices.conf), one directive a line, '#' starts
 * a comment, blank lines ignored, fields separated by blanks:
 *
 *   currency EUR                          required, once: 1-16 letters
 *   utc-offset +01:00                     optional, once: windows are read
 *                                         in UTC plus this fixed offset (no
 *                                         daylight saving; default +00:00)
 *   price <res> <micro> per [<n>] <unit>                  fixed price
 *   price <res> <micro> per [<n>] <unit> at HH:MM-HH:MM   time-of-day price
 *   price <res> <micro> per [<n>] <unit> up to <n> <unit> volume tier
 *
 * <micro> is an integer number of millionths of the currency for every
 * <n> (default 1) <unit> of the resource: "price cpu 5000 per h" is 0.005
 * EUR per CPU hour.  Units by resource class (see meter/usage.h):
 *   time (node-time, cpu)   ms s min h day
 *   bytes (net-*, console-*, mem-peak, rdma-rd, rdma-wr)
 *                           B KB MB GB TB (powers of 1000) KiB MiB GiB TiB
 *   memory (mem)            <bytes unit>*<time unit>, e.g. GiB*h
 *   packets (net-*pk)       pkt
 *   operations (rdma-ops)   op
 *   other classes           unit (one base unit)
 * <res> is a class ("net-tx": all domains together) or a qualified name
 * ("net-tx:3", "node-time:ct"); a qualified rule wins over its class's.
 * Resources with no rule are not billed and not listed.
 *
 * One resource's lines form one rule, either:
 *   - one fixed line alone;
 *   - one fixed line (the price outside all windows) and any number of "at"
 *     lines, whose windows may not overlap; a window may wrap midnight
 *     (22:00-06:00); 00:00-24:00 is the whole day; or
 *   - "up to" lines in increasing order and then one fixed line for the
 *     rest: the first X units of the invoice period at the first price, the
 *     next at the second, and so on.
 * Tiers and windows do not mix, and mem-peak (a maximum, not a sum) cannot
 * have windows.
 *
 * Invoices: a record's quantity is apportioned by its interval [t0, t1):
 * the part inside the invoice period, and within it the part inside each
 * window, in proportion to time (exactly: parts always add up to the whole).
 * Each invoice line's amount is its quantity times its rate, rounded half up
 * to a micro-unit once per line; the total is the sum of the lines.
 */

struct price_plan;
struct price_invoice;

/* Parse a plan from text; name (the file name) starts error messages:
 * "prices.conf:7: unknown unit 'GB*h' for cpu (use ms, s, min, h, day)".
 * Returns 0 and *out, or -1 with a one-line reason. */
int price_plan_parse(const char *text, const char *name, struct price_plan **out, char *err,
		     size_t errlen);
/* Read and parse a plan file. */
int price_plan_load(const char *path, struct price_plan **out, char *err, size_t errlen);
void price_plan_free(struct price_plan *p);
const char *price_plan_currency(const struct price_plan *p);

/* One invoice line. */
struct price_line {
	char item[96];		  /* "cpu", "cpu 22:00-06:00", "net-tx up to 100 GiB" */
	char res[USAGE_NAME_MAX]; /* the rule's resource: "cpu", "net-tx" */
	uint64_t qty;		  /* in the resource's base units */
	uint64_t rate;		  /* micro-units per `per` */
	char per[32];		  /* "h", "1000000 pkt", "GiB*h" */
	uint64_t amount;	  /* micro-units */
};

/* Start an invoice for principal over [from, to) (unix ms; to 0 = open). */
struct price_invoice *price_invoice_new(const struct price_plan *p, const char *principal,
					uint64_t from, uint64_t to);
/* Charge one record's usage over its interval [t0, t1).  Returns 0, or -1
 * when a sum would overflow 64 bits. */
int price_invoice_add(struct price_invoice *inv, uint64_t t0, uint64_t t1, const struct usage *u,
		      char *err, size_t errlen);
/* The same for a ledger record. */
int price_invoice_add_rec(struct price_invoice *inv, const struct ledger_rec *r, char *err,
			  size_t errlen);
/* Compute the lines and the total; no more records after this.  Returns 0,
 * or -1 when an amount would overflow 64 bits of micro-units. */
int price_invoice_finish(struct price_invoice *inv, char *err, size_t errlen);
const struct price_line *price_invoice_lines(const struct price_invoice *inv, size_t *n);
uint64_t price_invoice_total(const struct price_invoice *inv);
void price_invoice_free(struct price_invoice *inv);

/* Outputs of a finished invoice.  Amounts print as exact decimals of the
 * currency with six places ("0.004000").
 * text: a heading line, one aligned line per item (item, quantity, unit,
 *       rate, amount), a total line.
 * csv:  RFC 4180 (CRLF line ends), header
 *       "item,resource,quantity,unit,base_quantity,base_unit,rate,per,amount,currency",
 *       one row per line (quantity as shown, base_quantity the exact integer,
 *       rate and amount as decimals), a last row "total,,,,,,,,<amount>,<currency>".
 * json: {"principal":..,"from":ms,"to":ms|null,"currency":..,"lines":[{"item":..,
 *       "resource":..,"quantity":"3.02","unit":"s","base":3020000,"base_unit":"us",
 *       "rate_micro":5000,"per":"h","amount_micro":4,"amount":"0.000004"}],
 *       "total_micro":4,"total":"0.000004"} plus a newline. */
void price_invoice_text(const struct price_invoice *inv, struct sbuf *out);
void price_invoice_csv(const struct price_invoice *inv, struct sbuf *out);
void price_invoice_json(const struct price_invoice *inv, struct sbuf *out);

#endif
