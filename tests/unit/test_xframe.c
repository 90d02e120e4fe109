/* xframe-*: the exec stream's frame headers (docs/protocol.md "exec"),
 * both ways; a client's headers are hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "exec/frame.h"

static int
parse(const char *s, int from_khd, struct xframe *f)
{
	char err[128];
	return xframe_parse(s, strlen(s), from_khd, f, err, sizeof(err));
}

/* xframe-1.1: what khd sends. */
static void
xframe_1_1(void **state)
{
	struct xframe f;
	(void)state;
	assert_int_equal(parse("o 3 12", 1, &f), 0);
	assert_int_equal(f.kind, 'o');
	assert_int_equal(f.rank, 3);
	assert_int_equal(f.len, 12);
	assert_int_equal(parse("e 0 1048576", 1, &f), 0);
	assert_int_equal(f.len, 1048576);
	assert_int_equal(parse("x 7 130 12 3 4001", 1, &f), 0);
	assert_int_equal(f.rank, 7);
	assert_int_equal(f.status, 130);
	assert_int_equal(f.user_ms, 12);
	assert_int_equal(f.sys_ms, 3);
	assert_int_equal(f.real_ms, 4001);
	assert_int_equal(parse("d", 1, &f), 0);
	assert_int_equal(f.kind, 'd');
}

/* xframe-1.2: what a client sends; "*" is every process. */
static void
xframe_1_2(void **state)
{
	struct xframe f;
	(void)state;
	assert_int_equal(parse("i * 5", 0, &f), 0);
	assert_int_equal(f.rank, XF_ALL);
	assert_int_equal(f.len, 5);
	assert_int_equal(parse("i 2 0", 0, &f), 0);
	assert_int_equal(f.rank, 2);
	assert_int_equal(parse("c *", 0, &f), 0);
	assert_int_equal(f.kind, 'c');
	assert_int_equal(parse("c 4", 0, &f), 0);
	assert_int_equal(f.rank, 4);
	assert_int_equal(parse("k 15", 0, &f), 0);
	assert_int_equal(f.sig, 15);
	assert_int_equal(f.rank, XF_ALL);
	assert_int_equal(parse("k 9 7", 0, &f), 0);
	assert_int_equal(f.sig, 9);
	assert_int_equal(f.rank, 7);
}

/* xframe-1.3: bad headers are refused, whichever way they come. */
static void
xframe_1_3(void **state)
{
	static const char *const bad_client[] = {
	    "",	      "i",	 "i * ",   "i  * 5",  "i * 5 ",	       "i * -5", "i * 1048577",
	    "i x 5",  "i 1 5 6", "c",	   "c * 1",   "k 0",	       "k 65",	 "k -1",
	    "k TERM", "k 9 *",	 "k 9 -1", "k 9 7 1", "k 9 x",	       "o 1 5",	 "x 1 0 0 0 0",
	    "d",      "z",	 "ii * 5", "i *5",    "c 99999999999", NULL};
	static const char *const bad_khd[] = {"o * 5", "o 1",	"x 1 0 0 0", "x 1 999 0 0 0",
					      "d 1",   "i * 5", "e 1 -1",    NULL};
	struct xframe f;
	(void)state;
	for (int i = 0; bad_client[i]; i++)
		assert_int_equal(parse(bad_client[i], 0, &f), -1);
	for (int i = 0; bad_khd[i]; i++)
		assert_int_equal(parse(bad_khd[i], 1, &f), -1);
	/* A NUL inside, or a header longer than the most there is. */
	assert_int_equal(xframe_parse("c *\0x", 5, 0, &f, NULL, 0), -1);
	char longline[XF_MAXLINE + 8];
	memset(longline, '1', sizeof(longline));
	memcpy(longline, "i ", 2);
	longline[sizeof(longline) - 1] = '\0';
	assert_int_equal(parse(longline, 0, &f), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(xframe_1_1),
	    cmocka_unit_test(xframe_1_2),
	    cmocka_unit_test(xframe_1_3),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
