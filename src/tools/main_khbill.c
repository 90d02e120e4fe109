/* khbill: a principal's bill.  usage asks khd for totals; export fetches the
 * signed ledger in parts and writes it whole; verify checks an export with
 * the public key alone (no khd needed); invoice prices the ledger's records
 * with a price plan. */
#include "common/sbuf.h"
#include "meter/ledger.h"
#include "meter/price.h"
#include "tools/billargs.h"
#include "tools/client.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PART 20000 /* records per request: well below khd's reply limit */

static int
fail(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "khbill: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return 1;
}

/* One request on fd; body gets the reply's lines.  Returns 0, or 1 after
 * saying why. */
static int
call(int fd, const struct sbuf *req, struct sbuf *body)
{
	char code[32], msg[512];
	int rc = client_call(fd, req, body, code, sizeof(code), msg, sizeof(msg));
	if (rc != 0)
		return fail("%s%s", msg, "");
	return 0;
}

/* The parts of an export, until the one with the end line. */
static int
fetch_export(int fd, const struct bill_opts *o, struct sbuf *all)
{
	uint64_t after = 0;
	for (;;) {
		struct sbuf req, body;
		sbuf_init(&req);
		sbuf_init(&body);
		bill_req_export(o, after, PART, &req);
		int rc = call(fd, &req, &body);
		sbuf_free(&req);
		if (rc) {
			sbuf_free(&body);
			return 1;
		}
		uint64_t last = after;
		int end = 0;
		for (char *l = body.s; l && *l;) {
			char *nl = strchr(l, '\n');
			uint64_t seq = bill_line_seq(l);
			if (seq)
				last = seq;
			end |= strncmp(l, "end ", 4) == 0;
			if (nl == NULL)
				break;
			l = nl + 1;
		}
		sbuf_add(all, body.s ? body.s : "", body.len);
		sbuf_free(&body);
		if (end)
			return 0;
		if (last == after)
			return fail("%s%s", "khd's export did not advance", "");
		after = last;
	}
}

/* Write to path through a temporary file, so that a failure leaves no
 * half export behind. */
static int
write_file(const char *path, const struct sbuf *b)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return fail("%s: path too long%s", path, "");
	FILE *f = fopen(tmp, "wx");
	if (f == NULL)
		return fail("%s: %s", path, strerror(errno));
	size_t n = fwrite(b->s ? b->s : "", 1, b->len, f);
	if (n != b->len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;
		fclose(f);
		unlink(tmp);
		return fail("%s: %s", path, strerror(e));
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return fail("%s: %s", path, strerror(e));
	}
	return 0;
}

static int
cmd_export(const struct bill_opts *o)
{
	char err[512];
	struct sbuf all;
	int fd = client_connect(client_socket_path(o->socket), err, sizeof(err));
	if (fd < 0)
		return fail("%s%s", err, "");
	sbuf_init(&all);
	int rc = fetch_export(fd, o, &all);
	close(fd);
	if (rc == 0) {
		if (o->out)
			rc = write_file(o->out, &all);
		else if (fwrite(all.s ? all.s : "", 1, all.len, stdout) != all.len ||
			 fflush(stdout) != 0)
			rc = fail("stdout: %s%s", strerror(errno), "");
	}
	sbuf_free(&all);
	return rc;
}

static void
utc(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
cmd_verify(const struct bill_opts *o)
{
	char keypath[PATH_MAX], err[512], a[32], b[32];
	uint8_t pk[LEDGER_PK_LEN];
	struct ledger_verify_result res;

	if (o->key)
		snprintf(keypath, sizeof(keypath), "%s", o->key);
	else if (bill_default_path(o->socket, "ledger.pub", keypath, sizeof(keypath)) < 0)
		return fail("%s%s", "the default key path is too long: give --key", "");
	if (ledger_pub_load(keypath, pk, err, sizeof(err)) < 0)
		return fail("%s%s", err, o->key ? "" : " (give the facility's key with --key)");
	int rc = ledger_verify_file(o->file, pk, &res);
	if (rc < 0) {
		usage_free(&res.total);
		if (strncmp(res.reason, o->file, strlen(o->file)) == 0)
			return fail("%s%s", res.reason, ""); /* it names the file already */
		return fail("%s: %s", o->file, res.reason);
	}
	utc(res.t0, a, sizeof(a));
	utc(res.t1, b, sizeof(b));
	if (res.nrec)
		printf("ok: %s, %llu records (seq %llu-%llu, %s to %s), %llu signatures, key %s\n",
		       res.principal, (unsigned long long)res.nrec,
		       (unsigned long long)res.first_seq, (unsigned long long)res.last_seq, a, b,
		       (unsigned long long)res.nsig, res.fingerprint);
	else
		printf("ok: %s, no records, key %s\n", res.principal, res.fingerprint);
	usage_free(&res.total);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Price every record overlapping the period, fetched in parts. */
static int
fetch_priced(int fd, const struct bill_opts *o, struct price_invoice *inv)
{
	struct ledger_rec r;
	uint64_t after = 0;
	char why[256];
	int rc = 0;

	ledger_rec_init(&r);
	for (;;) {
		struct sbuf req, body;
		uint64_t n = 0, last = after;
		sbuf_init(&req);
		sbuf_init(&body);
		bill_req_records(o, after, PART, &req);
		rc = call(fd, &req, &body);
		sbuf_free(&req);
		for (char *l = body.s; rc == 0 && l && *l;) {
			char *nl = strchr(l, '\n');
			if (nl)
				*nl = '\0';
			if (ledger_rec_parse(l, &r, why, sizeof(why)) < 0 ||
			    price_invoice_add_rec(inv, &r, why, sizeof(why)) < 0)
				rc = fail("record from khd: %s%s", why, "");
			last = r.seq;
			n++;
			l = nl ? nl + 1 : NULL;
		}
		sbuf_free(&body);
		/* khd may send fewer than asked (its replies are bounded in
		 * bytes): the end is a part with nothing in it. */
		if (rc || n == 0 || last == after)
			break;
		after = last;
	}
	ledger_rec_free(&r);
	return rc;
}

static int
cmd_invoice(const struct bill_opts *o)
{
	char path[PATH_MAX], err[512];
	struct price_plan *plan;

	if (o->plan)
		snprintf(path, sizeof(path), "%s", o->plan);
	else if (bill_default_path(o->socket, "prices.conf", path, sizeof(path)) < 0)
		return fail("%s%s", "the default plan path is too long: give --plan", "");
	if (price_plan_load(path, &plan, err, sizeof(err)) < 0)
		return fail("%s%s", err, o->plan ? "" : " (give a price plan with --plan FILE)");
	int fd = client_connect(client_socket_path(o->socket), err, sizeof(err));
	if (fd < 0) {
		price_plan_free(plan);
		return fail("%s%s", err, "");
	}
	struct price_invoice *inv = price_invoice_new(
	    plan, o->user, o->has_from ? o->from * 1000 : 0, o->has_to ? o->to * 1000 : 0);
	int rc = fetch_priced(fd, o, inv);
	close(fd);
	if (rc == 0 && price_invoice_finish(inv, err, sizeof(err)) < 0)
		rc = fail("%s%s", err, "");
	if (rc == 0) {
		struct sbuf out;
		sbuf_init(&out);
		if (o->fmt == BILL_CSV)
			price_invoice_csv(inv, &out);
		else if (o->fmt == BILL_JSON)
			price_invoice_json(inv, &out);
		else
			price_invoice_text(inv, &out);
		if (fwrite(out.s ? out.s : "", 1, out.len, stdout) != out.len ||
		    fflush(stdout) != 0)
			rc = fail("stdout: %s%s", strerror(errno), "");
		sbuf_free(&out);
	}
	price_invoice_free(inv);
	price_plan_free(plan);
	return rc;
}

int
main(int argc, char **argv)
{
	struct bill_opts o;
	char err[256];

	if (bill_parse(argc - 1, argv + 1, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "khbill: %s\n", err);
		return 2;
	}
	if (o.help) {
		fputs(bill_usage_text, stdout);
		return 0;
	}
	switch (o.cmd) {
	case BILL_USAGE: {
		struct sbuf req;
		sbuf_init(&req);
		bill_req_usage(&o, &req);
		int rc = client_run("khbill", o.socket, &req);
		sbuf_free(&req);
		return rc;
	}
	case BILL_EXPORT:
		return cmd_export(&o);
	case BILL_VERIFY:
		return cmd_verify(&o);
	case BILL_INVOICE:
		return cmd_invoice(&o);
	}
	return 2;
}
