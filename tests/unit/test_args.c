/* args-*: khget's and khctl's command lines become the right requests,
 * and every bad command line gets a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tools/args.h"

typedef int parser(int, char *const[], struct sbuf *, struct tool_opts *, char *, size_t);

/* Split line at spaces, run parse on it; the request goes to out. */
static int
run(parser *parse, const char *line, char *out, char *err)
{
	char buf[512], *argv[32];
	int argc = 0;
	struct sbuf req;
	struct tool_opts o;
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
		argv[argc++] = t;
	sbuf_init(&req);
	err[0] = '\0';
	int rc = parse(argc, argv, &req, &o, err, 200);
	snprintf(out, 512, "%s", req.s ? req.s : "");
	sbuf_free(&req);
	return rc;
}

static int
khget(const char *line, char *out, char *err)
{
	return run(args_khget, line, out, err);
}

static int
khctl(const char *line, char *out, char *err)
{
	return run(args_khctl, line, out, err);
}

/* args-1.1: the original's flags, in order. */
static void
args_1_1(void **state)
{
	char out[512], err[200];
	unsetenv("KH_CRED");
	assert_int_equal(khget("-n 3,4 -p 2 -i -x -c key alice 5", out, err), 0);
	assert_string_equal(out, "get user=alice cred=key count=5 netids=3,4 newnets=2 public=1 "
				 "external=1\n");
	assert_int_equal(khget("alice", out, err), 0);
	assert_string_equal(out, "get user=alice\n");
}

/* args-1.2: combined and attached flags, options after operands, --. */
static void
args_1_2(void **state)
{
	char out[512], err[200];
	assert_int_equal(khget("-ixn3 -ckey alice 2 -t ct1 --json", out, err), 0);
	assert_string_equal(out, "get user=alice cred=key count=2 netids=3 public=1 external=1 "
				 "type=ct1 format=json\n");
	assert_int_equal(khget("-c k -- alice 1", out, err), 0);
	assert_string_equal(out, "get user=alice cred=k count=1\n");
	setenv("KH_CRED", "fromenv", 1);
	assert_int_equal(khget("alice", out, err), 0);
	assert_string_equal(out, "get user=alice cred=fromenv\n");
	unsetenv("KH_CRED");
}

/* args-2.*: bad input, one reason each. */
static void
args_2_1(void **state)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
	    {"", "no principal given"},
	    {"alice 0", "invalid count '0'"},
	    {"alice -3", "invalid count '-3'"},
	    {"alice abc", "invalid count 'abc'"},
	    {"alice 99999999999999999999999", "invalid count"},
	    {"alice 4093", "invalid count '4093'"},
	    {"alice 1 2", "unexpected argument '2'"},
	    {"-q alice", "unknown option '-q'"},
	    {"--frob alice", "unknown option '--frob'"},
	    {"-n 3,3 alice", "netid 3 given twice"},
	    {"-n 3, alice", "invalid netid list"},
	    {"-n ,3 alice", "invalid netid list"},
	    {"-n x alice", "invalid netid 'x'"},
	    {"-p -1 alice", "invalid -p"},
	    {"-p 99 alice", "invalid -p"},
	    {"alice -c", "option -c needs a value"},
	    {"bad/name", "invalid principal name"},
	    {"--json=1 alice", "takes no value"},
	};
	char out[512], err[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(khget(bad[i].line, out, err), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s', want '%s'", bad[i].line, err, bad[i].why);
		assert_null(strchr(err, '\n'));
	}
}

/* args-3.1: khctl verbs. */
static void
args_3_1(void **state)
{
	char out[512], err[200];
	assert_int_equal(khctl("nodes --free --user bob", out, err), 0);
	assert_string_equal(out, "nodes free=1 user=bob\n");
	assert_int_equal(khctl("release -c k alice con3 7 9-12", out, err), 0);
	assert_string_equal(out, "release user=alice cred=k targets=con3,7,9-12\n");
	assert_int_equal(khctl("addnet -c k alice 5 1 2", out, err), 0);
	assert_string_equal(out, "addnet user=alice cred=k netid=5 targets=1,2\n");
	assert_int_equal(khctl("transfer -c k alice con4 newsecret", out, err), 0);
	assert_string_equal(out, "transfer user=alice cred=k chan=4 newcred=newsecret\n");
	assert_int_equal(khctl("allowed 1 2 --json", out, err), 0);
	assert_string_equal(out, "allowed a=1 b=2 format=json\n");
	assert_int_equal(khctl("block -c k alice con4 --json", out, err), 0);
	assert_string_equal(out, "block user=alice cred=k chan=4 format=json\n");
}

/* args-3.2: khctl bad input. */
static void
args_3_2(void **state)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
	    {"", "no verb given"},
	    {"frob", "unknown verb 'frob'"},
	    {"release alice con3", "credential"},
	    {"release -c k alice", "missing arguments"},
	    {"release -c k alice con3,4", "bad node"},
	    {"release -c k alice x1", "bad node 'x1'"},
	    {"addnet -c k alice net 1", "invalid netid 'net'"},
	    {"transfer -c k alice 3x", "expected a channel"},
	    {"allowed 1", "two"},
	    {"nodes extra", "unexpected argument"},
	    {"addkey -c k alice /nonexistent/key.pub", "/nonexistent/key.pub"},
	    {"nodes --user", "needs a value"},
	};
	char out[512], err[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(khctl(bad[i].line, out, err), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s', want '%s'", bad[i].line, err, bad[i].why);
	}
}

/* args-4.1: the holder of a transferred channel registers and lists its
 * keys with the channel's credential (-k) instead of a principal's. */
static void
args_4_1(void **state)
{
	char out[512], err[200], path[] = "/tmp/kh-args-XXXXXX";
	(void)state;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "ssh-ed25519 AAAA k@x\n", 21), 21);
	close(fd);
	char line[256];
	snprintf(line, sizeof(line), "addkey -k s3 con7 %s", path);
	assert_int_equal(khctl(line, out, err), 0);
	assert_string_equal(out, "addkey ccred=s3 chan=7 key=ssh-ed25519%20AAAA%20k@x\n");
	assert_int_equal(khctl("keys -k s3 con7", out, err), 0);
	assert_string_equal(out, "keys ccred=s3 chan=7\n");
	assert_int_equal(khctl("keys -k s3 alice", out, err), -1);
	assert_non_null(strstr(err, "expected a channel con<C>"));
	assert_int_equal(khctl("keys -k s3 con7 extra", out, err), -1);
	assert_int_equal(khctl("addkey -k s3 con7", out, err), -1);
	assert_non_null(strstr(err, "PUBKEYFILE"));
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(args_1_1), cmocka_unit_test(args_1_2), cmocka_unit_test(args_2_1),
	    cmocka_unit_test(args_3_1), cmocka_unit_test(args_3_2), cmocka_unit_test(args_4_1),
	};
	return cmocka_run_group_tests_name("args", tests, NULL, NULL);
}
