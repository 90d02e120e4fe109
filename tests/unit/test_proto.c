/* proto-*: the request line parser and builder (docs/protocol.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/proto.h"

static int
parse(const char *line, struct proto_req *r, char *err)
{
	return proto_parse(line, strlen(line), r, err, 128);
}

/* proto-1.1: a verb and arguments, values decoded. */
static void
proto_1_1(void **state)
{
	struct proto_req r;
	char err[128];
	assert_int_equal(parse("get user=alice cred=a%20b%25 count=3", &r, err), 0);
	assert_string_equal(r.verb, "get");
	assert_int_equal(r.nargs, 3);
	assert_string_equal(proto_get(&r, "user"), "alice");
	assert_string_equal(proto_get(&r, "cred"), "a b%");
	assert_string_equal(proto_get(&r, "count"), "3");
	assert_null(proto_get(&r, "type"));
}

/* proto-1.2: a verb alone; an empty value. */
static void
proto_1_2(void **state)
{
	struct proto_req r;
	char err[128];
	assert_int_equal(parse("ping", &r, err), 0);
	assert_int_equal(r.nargs, 0);
	assert_int_equal(parse("nodes user=", &r, err), 0);
	assert_string_equal(proto_get(&r, "user"), "");
	assert_int_equal(parse("ping\r", &r, err), 0);
}

/* proto-2.*: malformed lines are refused with a reason. */
static void
proto_2_1(void **state)
{
	static const char *bad[] = {
	    "",
	    " get",
	    "get  user=a",
	    "get user",
	    "get =x",
	    "GET user=a",
	    "get user=a b",
	    "get user=a user=b",
	    "get user=%4",
	    "get user=%zz",
	    "get user=%00",
	    "get user=a\tb",
	    "get us-er=a",
	    "get 1user=a",
	    "get user=a ",
	    "get user=\xff",
	    "verbthatiswaytoolongforthis x=1",
	};
	struct proto_req r;
	char err[128];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i], &r, err), -1);
		assert_true(strlen(err) > 0);
	}
}

/* proto-2.2: too many arguments, an over-long line. */
static void
proto_2_2(void **state)
{
	static char line[PROTO_MAX_LINE + 10];
	struct proto_req r;
	char err[128];
	strcpy(line, "x");
	for (int i = 0; i < PROTO_MAX_ARGS + 1; i++)
		sprintf(line + strlen(line), " a%d=1", i);
	assert_int_equal(parse(line, &r, err), -1);
	assert_string_equal(err, "too many arguments");
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(proto_parse(line, strlen(line), &r, err, sizeof(err)), -1);
	assert_string_equal(err, "request line too long");
}

/* proto-2.3: a raw NUL byte inside a value is refused like "%00", not taken
 * as the value's end (found by fuzz/proto: "get user=alice<NUL>x" was
 * user=alice). */
static void
proto_2_3(void **state)
{
	static const char line[] = "get user=alice\0x count=1";
	static const char verb[] = "get\0 user=a";
	struct proto_req r;
	char err[128];
	assert_int_equal(proto_parse(line, sizeof(line) - 1, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "unescaped byte in argument");
	assert_int_equal(proto_parse(line, 14, &r, err, sizeof(err)), 0);
	assert_string_equal(proto_get(&r, "user"), "alice");
	assert_int_equal(proto_parse(verb, sizeof(verb) - 1, &r, err, sizeof(err)), -1);
}

/* proto-3.1: what the builder makes, the parser reads back, byte for byte. */
static void
proto_3_1(void **state)
{
	struct sbuf b;
	struct proto_req r;
	char err[128], val[256];
	sbuf_init(&b);
	for (int i = 1; i < 256; i++)
		val[i - 1] = (char)i;
	val[255] = '\0';
	proto_begin(&b, "addkey");
	proto_arg(&b, "key", val);
	proto_arg(&b, "user", "bob");
	proto_end(&b);
	assert_int_equal(b.s[b.len - 1], '\n');
	assert_null(memchr(b.s, '\n', b.len - 1));
	assert_int_equal(proto_parse(b.s, b.len - 1, &r, err, sizeof(err)), 0);
	assert_string_equal(proto_get(&r, "key"), val);
	assert_string_equal(proto_get(&r, "user"), "bob");
	sbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(proto_1_1), cmocka_unit_test(proto_1_2), cmocka_unit_test(proto_2_1),
	    cmocka_unit_test(proto_2_3), cmocka_unit_test(proto_2_2), cmocka_unit_test(proto_3_1),
	};
	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
