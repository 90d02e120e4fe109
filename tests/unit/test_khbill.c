/* khbill-*: khbill's command line and times become the right requests, and
 * every bad command line gets one reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/billargs.h"

/* Split line at spaces and parse it. */
static int
parse(const char *line, struct bill_opts *o, char *err)
{
	static char buf[512];
	char *argv[32];
	int argc = 0;
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
		argv[argc++] = t;
	err[0] = '\0';
	return bill_parse(argc, argv, o, err, 200);
}

static uint64_t
t(const char *s)
{
	uint64_t v = 0;
	char err[200];
	assert_int_equal(bill_parse_time(s, &v, err, sizeof(err)), 0);
	return v;
}

static void
bad_time(const char *s)
{
	uint64_t v;
	char err[200] = "";
	assert_int_equal(bill_parse_time(s, &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid time"));
}

/* khbill-1.1: unix seconds and the ISO 8601 forms, UTC unless an offset
 * says otherwise. */
static void
khbill_1_1(void **state)
{
	(void)state;
	assert_int_equal(t("0"), 0);
	assert_int_equal(t("1700000000"), 1700000000);
	assert_int_equal(t("2024-05-01"), 1714521600);
	assert_int_equal(t("2024-05-01T13:00"), 1714521600 + 13 * 3600);
	assert_int_equal(t("2024-05-01T13:00:05Z"), 1714521600 + 13 * 3600 + 5);
	assert_int_equal(t("2024-05-01 13:00:05"), 1714521600 + 13 * 3600 + 5);
	assert_int_equal(t("2024-05-01T13:00:00+02:00"), 1714521600 + 11 * 3600);
	assert_int_equal(t("2024-05-01T13:00:00-0530"), 1714521600 + 18 * 3600 + 30 * 60);
	assert_int_equal(t("2024-02-29"), 1709164800); /* a leap day */
	assert_int_equal(t("1970-01-01T00:00:00Z"), 0);
}

/* khbill-1.2: what is not a time is refused, never guessed. */
static void
khbill_1_2(void **state)
{
	(void)state;
	bad_time("");
	bad_time("yesterday");
	bad_time("-5");
	bad_time("2023-02-29");
	bad_time("2024-13-01");
	bad_time("2024-05-01T25:00");
	bad_time("2024-05-01T13");
	bad_time("2024-05-01T13:00:00+2");
	bad_time("2024-05-01X");
	bad_time("1969-12-31");
	bad_time("12abc");
}

/* khbill-2.1: usage with a credential becomes one usage request. */
static void
khbill_2_1(void **state)
{
	struct bill_opts o;
	struct sbuf req;
	char err[200];
	(void)state;
	assert_int_equal(
	    parse("usage -c pw alice --from 2024-05-01 --to=1714608000 --json", &o, err), 0);
	assert_int_equal(o.cmd, BILL_USAGE);
	sbuf_init(&req);
	bill_req_usage(&o, &req);
	assert_string_equal(req.s,
			    "usage user=alice cred=pw from=1714521600 to=1714608000 format=json\n");
	sbuf_free(&req);
}

/* khbill-2.2: the operator asks without a credential, for one or all. */
static void
khbill_2_2(void **state)
{
	struct bill_opts o;
	struct sbuf req;
	char err[200];
	(void)state;
	assert_int_equal(parse("usage --operator --all", &o, err), 0);
	sbuf_init(&req);
	bill_req_usage(&o, &req);
	assert_string_equal(req.s, "usage operator=1 all=1\n");
	sbuf_reset(&req);
	assert_int_equal(parse("export --operator bob -o /tmp/x", &o, err), 0);
	bill_req_export(&o, 41, 100, &req);
	assert_string_equal(req.s, "export user=bob operator=1 after=41 max=100\n");
	sbuf_reset(&req);
	assert_int_equal(parse("invoice -c pw bob --from 100 --csv --plan p.conf", &o, err), 0);
	assert_int_equal(o.fmt, BILL_CSV);
	assert_string_equal(o.plan, "p.conf");
	bill_req_records(&o, 0, 5, &req);
	assert_string_equal(req.s, "records user=bob cred=pw from=100 max=5\n");
	sbuf_free(&req);
}

/* khbill-2.3: verify is offline: a file and maybe a key, nothing else. */
static void
khbill_2_3(void **state)
{
	struct bill_opts o;
	char err[200];
	(void)state;
	assert_int_equal(parse("verify x.exp --key k.pub", &o, err), 0);
	assert_int_equal(o.cmd, BILL_VERIFY);
	assert_string_equal(o.file, "x.exp");
	assert_string_equal(o.key, "k.pub");
}

static void
rejects(const char *line, const char *want)
{
	struct bill_opts o;
	char err[200];
	unsetenv("KH_CRED");
	assert_int_equal(parse(line, &o, err), -1);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': got '%s', want '%s'", line, err, want);
	assert_null(strchr(err, '\n'));
}

/* khbill-3.1: bad command lines, each with its reason. */
static void
khbill_3_1(void **state)
{
	(void)state;
	rejects("", "no command");
	rejects("frob alice", "unknown command");
	rejects("usage alice", "no credential");
	rejects("usage -c pw", "no principal");
	rejects("usage -c pw bad/name", "invalid principal name");
	rejects("usage -c pw alice bob", "unexpected argument");
	rejects("usage -c pw --all", "--all needs --operator");
	rejects("usage --operator --all alice", "not both");
	rejects("usage --operator -c pw alice", "no credential");
	rejects("usage -c pw alice --from tomorrow", "invalid time");
	rejects("usage -c pw alice --from 200 --to 100", "--from must come before --to");
	rejects("usage -c pw alice --csv", "--csv is for invoice");
	rejects("export -c pw alice --json", "--json is for usage and invoice");
	rejects("export -c pw alice --from 5", "--from and --to are for usage and invoice");
	rejects("verify", "needs the export file");
	rejects("verify a b", "one file");
	rejects("verify -c pw a", "offline");
	rejects("invoice -c pw alice --csv --json", "not both");
	rejects("usage -c pw alice --frob", "unknown option");
	rejects("usage -c pw alice --from", "needs a value");
	rejects("usage -c pw alice -x", "unknown option");
	rejects("usage -c pw alice --json=1", "takes no value");
	rejects("usage -c pw alice -o f", "-o is for export");
	rejects("export -c pw alice --key k", "--key is for verify");
}

/* khbill-3.2: the credential may come from the environment. */
static void
khbill_3_2(void **state)
{
	struct bill_opts o;
	char err[200];
	(void)state;
	setenv("KH_CRED", "secret", 1);
	assert_int_equal(parse("usage alice", &o, err), 0);
	assert_string_equal(o.cred, "secret");
	unsetenv("KH_CRED");
}

/* khbill-4.1: files of the facility's directory: $KH_DIR, else beside the
 * socket. */
static void
khbill_4_1(void **state)
{
	char p[256];
	(void)state;
	setenv("KH_DIR", "/srv/kh", 1);
	assert_int_equal(bill_default_path(NULL, "ledger.pub", p, sizeof(p)), 0);
	assert_string_equal(p, "/srv/kh/ledger.pub");
	unsetenv("KH_DIR");
	assert_int_equal(bill_default_path("/tmp/f/khd.sock", "prices.conf", p, sizeof(p)), 0);
	assert_string_equal(p, "/tmp/f/prices.conf");
	setenv("KH_SOCKET", "/a/b.sock", 1);
	assert_int_equal(bill_default_path(NULL, "ledger.pub", p, sizeof(p)), 0);
	assert_string_equal(p, "/a/ledger.pub");
	unsetenv("KH_SOCKET");
	assert_int_equal(bill_default_path(NULL, "ledger.pub", p, sizeof(p)), 0);
	assert_string_equal(p, "/var/lib/kittyhawk/ledger.pub");
	assert_int_equal(bill_default_path(NULL, "ledger.pub", p, 10), -1);
}

/* khbill-4.2: the seq of a record line, 0 for other lines. */
static void
khbill_4_2(void **state)
{
	(void)state;
	assert_int_equal(bill_line_seq("r alice 17 100 200 cpu=5 abcd"), 17);
	assert_int_equal(bill_line_seq("s 17 abcd"), 0);
	assert_int_equal(bill_line_seq("end 17 ab cd"), 0);
	assert_int_equal(bill_line_seq("r alice x 1 2"), 0);
	assert_int_equal(bill_line_seq("r alice"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(khbill_1_1), cmocka_unit_test(khbill_1_2),
	    cmocka_unit_test(khbill_2_1), cmocka_unit_test(khbill_2_2),
	    cmocka_unit_test(khbill_2_3), cmocka_unit_test(khbill_3_1),
	    cmocka_unit_test(khbill_3_2), cmocka_unit_test(khbill_4_1),
	    cmocka_unit_test(khbill_4_2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
