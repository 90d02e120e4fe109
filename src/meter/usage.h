/* usage: a vector of (resource, quantity) pairs, the unit of metering.  The
 * sampler fills one per principal per tick, the ledger records it, khbill
 * sums and prints it.  Quantities are integers in base units, never floats. */
#ifndef KH_USAGE_H
#define KH_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

/*
 * Resource names and base units.  A name is a class, optionally followed by
 * ':' and a qualifier of [A-Za-z0-9_.-] (a node type or a domain's id):
 *
 *   name                  base unit   shown as      merge
 *   node-time:<type>      ms          s  (1 dec.)   sum
 *   cpu                   us          s  (2 dec.)   sum   (cgroup cpu.stat usage_usec)
 *   mem                   KiB*s       B*s (3 sig.)  sum   (memory.current is whole pages)
 *   mem-peak              B           B             max
 *   net-rx:<netid>        B           B             sum   (as seen BY THE NODE)
 *   net-tx:<netid>        B           B             sum
 *   net-rxpk:<netid>      pkt         pkt           sum
 *   net-txpk:<netid>      pkt         pkt           sum
 *   console-in            B           B             sum
 *   console-out           B           B             sum
 *   rdma-rd:<netid>       B           B             sum   (read by the node's operations)
 *   rdma-wr:<netid>       B           B             sum   (written by them)
 *   rdma-ops:<netid>      op          op            sum   (operations it posted)
 *
 * Units are chosen so that one principal's totals over years fit in 64 bits
 * (ns of CPU or B*s of memory would overflow within months for 1000 nodes).
 * Unknown classes are allowed (base unit "", shown as a bare number, summed)
 * so that a newer khd's ledger still verifies and prints with older tools.
 * Sums saturate at UINT64_MAX rather than wrap.
 */
#define USAGE_NAME_MAX 64 /* bytes of a resource name, NUL included */

struct usage_item {
	char res[USAGE_NAME_MAX];
	uint64_t qty;
};

/* Items are kept sorted by strcmp of res, each name at most once. */
struct usage {
	struct usage_item *items;
	size_t n, cap;
};

void usage_init(struct usage *u);
void usage_free(struct usage *u);
/* Forget the items, keep the memory. */
void usage_reset(struct usage *u);
/* Make dst an exact copy of src. */
void usage_copy(struct usage *dst, const struct usage *src);
/* 1 when s is a valid resource name (see above), else 0. */
int usage_valid_name(const char *s);
/* Add qty of res: summed, or kept as a maximum for mem-peak.  Adding 0 still
 * creates the item (a record may say "0 bytes sent").  Returns 0, or -1 when
 * res is not a valid name. */
int usage_add(struct usage *u, const char *res, uint64_t qty);
/* Add every item of src to dst with usage_add's rules. */
void usage_merge(struct usage *dst, const struct usage *src);
/* The quantity of res, 0 when absent. */
uint64_t usage_get(const struct usage *u, const char *res);
/* Into out (reset first): u's items plus, for every qualified class
 * ("net-tx:3", "node-time:ct"), a total under the bare class name ("net-tx",
 * "node-time"), merged with the class's rule.  Sorting puts each total just
 * before its per-domain lines. */
void usage_rollup(const struct usage *u, struct usage *out);

/* The compact text form "res=qty res=qty" (sorted, single spaces, "" when
 * empty), the same as in a ledger record; handy for storing baselines. */
void usage_encode(const struct usage *u, struct sbuf *out);
/* Parse usage_encode's form into u (reset first).  Strict: sorted, unique,
 * valid names, decimal quantities.  Returns 0, or -1 with a reason. */
int usage_decode(const char *s, struct usage *u, char *err, size_t errlen);

/* The display unit of res ("s", "B*s", "B", "pkt", "") and its base unit
 * ("ms", "us", "KiB*s", "B", "pkt", ""). */
const char *usage_unit(const char *res);
const char *usage_base_unit(const char *res);
/* The quantity in display units as text, exact (integer arithmetic, rounded
 * half up): "3.02" (cpu), "12.0" (node-time), "1.2e9" (mem), "52428800". */
void usage_format_qty(const char *res, uint64_t qty, struct sbuf *out);
/* One khbill usage line without newline: "cpu 3.02 s", "net-txpk:3 812 pkt",
 * "mem 1.2e9 B*s". */
void usage_format_line(const char *res, uint64_t qty, struct sbuf *out);
/* Every item of u, one usage_format_line per line, each ending in '\n'. */
void usage_format_text(const struct usage *u, struct sbuf *out);
/* u as a JSON array (no newline):
 * [{"resource":"cpu","quantity":"3.02","unit":"s","base":3020000,"base_unit":"us"},...]
 * "quantity" is the display text (a string, so it is exact); "base" the
 * integer.  Principals and intervals are the caller's to wrap around it. */
void usage_format_json(const struct usage *u, struct sbuf *out);

#endif
