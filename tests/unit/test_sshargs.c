/* sshargs-*: the words after "ssh con<C>@host" become khssh's options, and
 * every bad word gets a reason (they come from a remote client). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "tools/sshargs.h"

/* sshargs-1.1: no words: raw, read-write, every node, defaults. */
static void
sshargs_1_1(void **state)
{
	struct sshargs a;
	char err[200];
	(void)state;
	assert_int_equal(sshargs_parse(NULL, "xterm", &a, err, sizeof(err)), 0);
	assert_int_equal(a.prefix, 0);
	assert_int_equal(a.ro, 0);
	assert_null(a.ranks);
	assert_null(a.until);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.idle_ms, 500);
	assert_int_equal(a.timeout_s, 0);
	assert_int_equal(sshargs_parse("   ", NULL, &a, err, sizeof(err)), 0);
	assert_int_equal(a.prefix | a.ro, 0);
}

/* sshargs-1.2: khcon's words, with or without their dashes. */
static void
sshargs_1_2(void **state)
{
	struct sshargs a;
	char err[200];
	(void)state;
	assert_int_equal(sshargs_parse("--prefix --ro -n 3-5,7", NULL, &a, err, sizeof(err)), 0);
	assert_int_equal(a.prefix, 1);
	assert_int_equal(a.ro, 1);
	assert_string_equal(a.ranks, "3-5,7");
	assert_int_equal(
	    sshargs_parse("prefix n 4 idle 900 timeout 30", NULL, &a, err, sizeof(err)), 0);
	assert_int_equal(a.prefix, 1);
	assert_int_equal(a.ro, 0);
	assert_string_equal(a.ranks, "4");
	assert_int_equal(a.idle_ms, 900);
	assert_int_equal(a.timeout_s, 30);
}

/* sshargs-1.3: quotes as a shell would take them (ssh joins the client's
 * words with spaces, so a text with spaces needs quotes). */
static void
sshargs_1_3(void **state)
{
	struct sshargs a;
	char err[200];
	(void)state;
	assert_int_equal(sshargs_parse("until 'appliance up' count 4", NULL, &a, err, sizeof(err)),
			 0);
	assert_string_equal(a.until, "appliance up");
	assert_int_equal(a.count, 4);
	assert_int_equal(sshargs_parse("--until \"a \\\"b\\\"\"", NULL, &a, err, sizeof(err)), 0);
	assert_string_equal(a.until, "a \"b\"");
	assert_int_equal(sshargs_parse("until x\\ y", NULL, &a, err, sizeof(err)), 0);
	assert_string_equal(a.until, "x y");
}

/* sshargs-1.4: the original's TERM=KHREAD is a read-only attachment. */
static void
sshargs_1_4(void **state)
{
	struct sshargs a;
	char err[200];
	(void)state;
	assert_int_equal(sshargs_parse(NULL, "KHREAD", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ro, 1);
	assert_int_equal(sshargs_parse("prefix", "KHREAD", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ro, 1);
	assert_int_equal(a.prefix, 1);
}

/* sshargs-2.1: bad words are refused with the reason. */
static void
sshargs_2_1(void **state)
{
	static const struct {
		const char *cmd, *why;
	} bad[] = {
	    {"/bin/sh -c id", "unknown word '/bin/sh'"},
	    {"sftp", "unknown word 'sftp'"},
	    {"-n", "'-n' needs a value"},
	    {"n 3;reboot", "bad ranks '3;reboot'"},
	    {"n ''", "bad ranks"},
	    {"until ''", "until needs a text"},
	    {"count 0", "count takes"},
	    {"timeout 99999999", "timeout takes"},
	    {"idle x", "idle takes"},
	    {"until 'open", "unterminated ' quote"},
	    {"until \"open", "unterminated \" quote"},
	};
	struct sshargs a;
	char err[200];
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(sshargs_parse(bad[i].cmd, NULL, &a, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s', want '%s'", bad[i].cmd, err, bad[i].why);
	}
}

/* sshargs-2.2: a command longer than the buffer is refused, not cut. */
static void
sshargs_2_2(void **state)
{
	static char big[SSHARGS_MAX + 64];
	struct sshargs a;
	char err[200];
	(void)state;
	memcpy(big, "until ", 6);
	memset(big + 6, 'x', sizeof(big) - 7);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(sshargs_parse(big, NULL, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sshargs_1_1), cmocka_unit_test(sshargs_1_2),
	    cmocka_unit_test(sshargs_1_3), cmocka_unit_test(sshargs_1_4),
	    cmocka_unit_test(sshargs_2_1), cmocka_unit_test(sshargs_2_2),
	};
	return cmocka_run_group_tests_name("sshargs", tests, NULL, NULL);
}
