/* test_fw: the boot monitor as a principal's tools see it: exact console
 * output of every command, the hush-like parser, the environment, mrw data
 * mode both ways, images, boot and reset, on a fake node with malloc'd RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "firmware/fw.h"
#include "firmware/fw_int.h"

#define BASE 0x10000000ull
#define SIZE 0x2000000ull /* 32 MiB: room for loadaddr and ramfsaddr */

struct fake {
	unsigned char *ram;
	char out[1 << 20];
	size_t outlen;
	int boots, resets, boot_fail;
	uint64_t kaddr, rdaddr;
	int crc_calls;
	uint64_t write_fail; /* writes at or above this address fail (0: none) */
};

static int
f_read(void *ctx, uint64_t a, void *buf, size_t n)
{
	struct fake *f = ctx;
	if (a < BASE || a - BASE > SIZE || n > SIZE - (a - BASE))
		return -1;
	memcpy(buf, f->ram + (a - BASE), n);
	return 0;
}

static int
f_write(void *ctx, uint64_t a, const void *buf, size_t n)
{
	struct fake *f = ctx;
	if (a < BASE || a - BASE > SIZE || n > SIZE - (a - BASE))
		return -1;
	if (f->write_fail && a + n > f->write_fail)
		return -1;
	memcpy(f->ram + (a - BASE), buf, n);
	return 0;
}

static int
f_boot(void *ctx, uint64_t k, uint64_t rd, char *err, size_t errlen)
{
	struct fake *f = ctx;
	if (f->boot_fail) {
		snprintf(err, errlen, "ct nodes cannot boot a kernel image");
		return -1;
	}
	f->boots++;
	f->kaddr = k;
	f->rdaddr = rd;
	return 0;
}

static void
f_reset(void *ctx)
{
	struct fake *f = ctx;
	f->resets++;
	memset(f->ram, 0, SIZE);
}

static void
f_out(void *ctx, const char *s, size_t n)
{
	struct fake *f = ctx;
	assert_true(f->outlen + n < sizeof(f->out));
	memcpy(f->out + f->outlen, s, n);
	f->outlen += n;
	f->out[f->outlen] = '\0';
}

static int
f_crc(void *ctx, uint64_t a, uint64_t n, uint32_t *crc)
{
	struct fake *f = ctx;
	if (a < BASE || a - BASE > SIZE || n > SIZE - (a - BASE))
		return -1;
	f->crc_calls++;
	*crc = (uint32_t)crc32(0, f->ram + (a - BASE), (uInt)n);
	return 0;
}

static const uint32_t netids[] = {1, 3};

struct t {
	struct fake *f;
	struct fw *fw;
};

static struct fw_machine
machine(struct fake *f)
{
	struct fw_machine m = {
	    .ctx = f,
	    .mem_base = BASE,
	    .mem_size = SIZE,
	    .read = f_read,
	    .write = f_write,
	    .boot = f_boot,
	    .reset = f_reset,
	    .out = f_out,
	};
	return m;
}

static struct fw_node_info
info5(void)
{
	struct fw_node_info i = {.rank = 5,
				 .uni = "0005",
				 .name = "node5",
				 .eth0ip = "10.0.0.5",
				 .neth = 2,
				 .netid = netids};
	return i;
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->f = calloc(1, sizeof(*t->f));
	assert_non_null(t->f);
	t->f->ram = calloc(1, SIZE);
	assert_non_null(t->f->ram);
	struct fw_machine m = machine(t->f);
	struct fw_node_info i = info5();
	t->fw = fw_new(&m, &i);
	assert_non_null(t->fw);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;
	fw_free(t->fw);
	free(t->f->ram);
	free(t->f);
	free(t);
	return 0;
}

/* Run one console line; the output is in t->f->out. */
static int
run(struct t *t, const char *line)
{
	t->f->outlen = 0;
	t->f->out[0] = '\0';
	return fw_input_line(t->fw, line, strlen(line));
}

/* Run a line and check its whole output (prompt included). */
#define EXPECT(t, line, rc, output)                                                                \
	do {                                                                                       \
		assert_int_equal(run(t, line), rc);                                                \
		assert_string_equal((t)->f->out, output);                                          \
	} while (0)

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A legacy image as mkimage makes it: header CRC over the header with
 * its hcrc field zero, data CRC over the data. */
static size_t
mkimage(unsigned char *out, uint8_t type, const void *data, uint32_t n, const char *name)
{
	memset(out, 0, 64);
	put32(out, 0x27051956);
	put32(out + 8, 1234567890);
	put32(out + 12, n);
	put32(out + 24, (uint32_t)crc32(0, data, n));
	out[28] = 5; /* Linux */
	out[29] = 7; /* PowerPC */
	out[30] = type;
	out[31] = 1; /* gzip */
	strncpy((char *)out + 32, name, 32);
	put32(out + 4, (uint32_t)crc32(0, out, 64));
	memcpy(out + 64, data, n);
	return 64 + n;
}

static void
load(struct t *t, uint64_t a, const void *p, size_t n)
{
	memcpy(t->f->ram + (a - BASE), p, n);
}

static const char *const defaults[] = {
    "bootdelay=-1",
    "loadaddr=0x10000000",
    "ramfsaddr=0x11000000",
    "kboot=bootm $loadaddr $ramfsaddr",
    ("ver=" FW_VERSION),
    "bgp_rank=5",
    "uni=0005",
    "hostname=node5",
    "eth0ip=10.0.0.5",
    "bg_num_netids=2",
    "bg_eth0_netid=1",
    "bg_eth1_netid=3",
};

static void
expect_defaults(struct t *t)
{
	char want[4096];
	size_t k = 0, envlen = 0;

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		k += (size_t)snprintf(want + k, sizeof(want) - k, "%s\n", defaults[i]);
		envlen += strlen(defaults[i]) + 1;
	}
	snprintf(want + k, sizeof(want) - k, "\nEnvironment size: %zu/%d bytes\n=> ", envlen,
		 FW_ENV_SIZE);
	EXPECT(t, "printenv", 0, want);
}

/* ------------------------------------------------------------------ */
/* fw_env: the environment */

/* fw_env_1: a new monitor's environment describes the node. */
static void
fw_env_1_defaults(void **state)
{
	struct t *t = *state;
	expect_defaults(t);
	assert_string_equal(fw_getenv(t->fw, "bgp_rank"), "5");
	assert_string_equal(fw_getenv(t->fw, "bg_eth1_netid"), "3");
	assert_null(fw_getenv(t->fw, "nosuch"));
	assert_int_equal(fw_mode(t->fw), FW_MODE_CMD);
}

/* fw_env_2: setenv sets, joins words, replaces (moving to the end, as
 * U-Boot does), deletes; printenv NAME. */
static void
fw_env_2_setenv(void **state)
{
	struct t *t = *state;
	EXPECT(t, "setenv foo bar   baz", 0, "=> ");
	assert_string_equal(fw_getenv(t->fw, "foo"), "bar baz");
	EXPECT(t, "printenv foo loadaddr", 0, "foo=bar baz\nloadaddr=0x10000000\n=> ");
	EXPECT(t, "setenv loadaddr 0x10001000", 0, "=> ");
	EXPECT(t, "printenv nosuch foo", 1, "## Error: \"nosuch\" not defined\nfoo=bar baz\n=> ");
	EXPECT(t, "setenv foo", 0, "=> ");
	assert_null(fw_getenv(t->fw, "foo"));
	EXPECT(t, "printenv foo", 1, "## Error: \"foo\" not defined\n=> ");
	EXPECT(t, "setenv nosuch", 0, "=> ");
	/* replaced variables move to the end */
	assert_int_equal(run(t, "printenv"), 0);
	assert_non_null(strstr(t->f->out, "bg_eth1_netid=3\nloadaddr=0x10001000\n\nEnv"));
}

/* fw_env_3: bad names and usage are one line each. */
static void
fw_env_3_errors(void **state)
{
	struct t *t = *state;
	EXPECT(t, "setenv a=b c", 1,
	       "## Error: illegal character '=' in variable name \"a=b\"\n=> ");
	EXPECT(t, "setenv", 1, "Usage: setenv name [value ...]\n=> ");
	EXPECT(t, "setenv '' x", 1, "## Error: empty variable name\n=> ");
	assert_int_equal(fw_setenv(t->fw, "x=y", "1"), -1);
}

/* fw_env_4: the environment is bounded; a value that does not fit leaves
 * the old one in place. */
static void
fw_env_4_overflow(void **state)
{
	struct t *t = *state;
	char val[1000];
	int i, rc = 0;

	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	assert_int_equal(fw_setenv(t->fw, "keep", "old"), 0);
	for (i = 0; i < 100 && rc == 0; i++) {
		char name[16];
		snprintf(name, sizeof(name), "v%d", i);
		rc = fw_setenv(t->fw, name, val);
	}
	assert_int_equal(rc, -1);
	assert_true(i > 10 && i < 20);
	assert_int_equal(fw_setenv(t->fw, "keep", val), -1);
	assert_string_equal(fw_getenv(t->fw, "keep"), "old");
	assert_int_equal(run(t, "printenv"), 0);
	assert_non_null(strstr(t->f->out, "/16384 bytes\n=> "));
	/* on the console */
	char line[80];
	for (i = 0; i < 100; i++) {
		char cmd[1100];
		snprintf(cmd, sizeof(cmd), "setenv w%d %.900s", i, val);
		if (run(t, cmd) != 0)
			break;
	}
	snprintf(line, sizeof(line), "## Error: environment overflow, \"w%d\" not set\n=> ", i);
	assert_string_equal(t->f->out, line);
}

/* fw_env_5: fw_setenv with a value that lives in the environment. */
static void
fw_env_5_alias(void **state)
{
	struct t *t = *state;
	assert_int_equal(fw_setenv(t->fw, "a", "12345"), 0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(fw_setenv(t->fw, "a", fw_getenv(t->fw, "a")), 0);
	assert_string_equal(fw_getenv(t->fw, "a"), "12345");
	assert_int_equal(fw_setenv(t->fw, "b", fw_getenv(t->fw, "hostname")), 0);
	assert_string_equal(fw_getenv(t->fw, "b"), "node5");
}

/* fw_env_6: fw_set_info replaces the node's description, now and at reset,
 * and keeps the principal's variables. */
static void
fw_env_6_set_info(void **state)
{
	struct t *t = *state;
	uint32_t ids[] = {2};
	struct fw_node_info i = {.rank = 9, .uni = "u9", .neth = 1, .netid = ids};

	EXPECT(t, "setenv mine 1", 0, "=> ");
	assert_int_equal(fw_set_info(t->fw, &i), 0);
	assert_string_equal(fw_getenv(t->fw, "bgp_rank"), "9");
	assert_string_equal(fw_getenv(t->fw, "bg_eth0_netid"), "2");
	assert_null(fw_getenv(t->fw, "bg_eth1_netid"));
	assert_null(fw_getenv(t->fw, "hostname"));
	assert_string_equal(fw_getenv(t->fw, "mine"), "1");
	fw_reset(t->fw);
	assert_null(fw_getenv(t->fw, "mine"));
	assert_string_equal(fw_getenv(t->fw, "uni"), "u9");
	assert_string_equal(fw_getenv(t->fw, "bg_num_netids"), "1");
}

/* ------------------------------------------------------------------ */
/* fw_parse: the line interpreter */

/* fw_parse_1: quoting and expansion. */
static void
fw_parse_1_quotes(void **state)
{
	struct t *t = *state;
	EXPECT(t, "setenv x 'a  b'", 0, "=> ");
	EXPECT(t, "echo '$x' \"$x\" $x ${x}y \\$x", 0, "$x a  b a b a by $x\n=> ");
	EXPECT(t, "echo \"q\\\"q\" 'it''s' a\\ b \"\"", 0, "q\"q its a b \n=> ");
	EXPECT(t, "echo $nosuch x ${nosuch}y \"$nosuch\"z", 0, "x y z\n=> ");
	EXPECT(t, "echo a$ $ $1 100%", 0, "a$ $ $1 100%\n=> ");
	EXPECT(t, "echo a # comment ; echo b", 0, "a\n=> ");
	EXPECT(t, "echo a#b", 0, "a#b\n=> ");
	EXPECT(t, "   ", 0, "=> ");
	EXPECT(t, "", 0, "=> ");
	/* the newline the console layer leaves on a line */
	EXPECT(t, "echo hi\r\n", 0, "hi\n=> ");
	/* an unquoted empty variable leaves no argument */
	EXPECT(t, "itest $nosuch == 1", 1,
	       "Usage: itest [.b, .w, .l, .s] [*]value1 <op> [*]value2\n=> ");
}

/* fw_parse_2: unbalanced quotes and stray operators: one line, nothing
 * of the line runs. */
static void
fw_parse_2_syntax(void **state)
{
	struct t *t = *state;
	EXPECT(t, "setenv a 1; echo 'oops", 1, "syntax error: unterminated quoted string\n=> ");
	assert_null(fw_getenv(t->fw, "a"));
	EXPECT(t, "echo \"oops", 1, "syntax error: unterminated quoted string\n=> ");
	EXPECT(t, "echo ${oops", 1, "syntax error: missing '}'\n=> ");
	EXPECT(t, "echo a & echo b", 1, "syntax error: unexpected '&'\n=> ");
	EXPECT(t, "echo a | cat", 1, "syntax error: unexpected '|'\n=> ");
	EXPECT(t, "&& echo b", 1, "syntax error near '&&'\n=> ");
	EXPECT(t, "echo a ||", 1, "syntax error: nothing after '||'\n=> ");
	EXPECT(t, "echo a && ; echo b", 1, "syntax error: nothing after '&&'\n=> ");
	EXPECT(t, "echo a ;; echo b;", 0, "a\nb\n=> ");
}

/* fw_parse_3: ; && || as U-Boot's hush runs them: a failed && (or a
 * successful ||) skips the rest of that list up to the next ';'. */
static void
fw_parse_3_lists(void **state)
{
	struct t *t = *state;
	EXPECT(t, "true && echo a; echo b", 0, "a\nb\n=> ");
	EXPECT(t, "false && echo a; echo b", 0, "b\n=> ");
	EXPECT(t, "false || echo a", 0, "a\n=> ");
	EXPECT(t, "true || echo a", 0, "=> ");
	EXPECT(t, "false; echo $?", 0, "1\n=> ");
	EXPECT(t, "true; echo $?", 0, "0\n=> ");
	EXPECT(t, "false && echo a", 1, "=> ");
	EXPECT(t, "false || false || echo c", 0, "c\n=> ");
	EXPECT(t, "true && true && echo c", 0, "c\n=> ");
	/* hush, not POSIX sh: the skip runs to the ';' */
	EXPECT(t, "false && echo a || echo b", 1, "=> ");
	EXPECT(t, "true || echo a && echo b", 0, "=> ");
	EXPECT(t, "false && echo a || echo b; echo c", 0, "c\n=> ");
	/* the original's rank filter */
	EXPECT(t, "itest $bgp_rank >= 3 && itest $bgp_rank <= 7 && setenv sel yes", 0, "=> ");
	assert_string_equal(fw_getenv(t->fw, "sel"), "yes");
	EXPECT(t, "itest $bgp_rank == 6 && setenv sel2 yes", 1, "=> ");
	assert_null(fw_getenv(t->fw, "sel2"));
	/* variables expand when their command runs */
	EXPECT(t, "setenv v 1; echo $v; setenv v 2 && echo $v", 0, "1\n2\n=> ");
}

/* fw_parse_4: bounds: long lines, NUL, too many words, expansion size. */
static void
fw_parse_4_bounds(void **state)
{
	struct t *t = *state;
	char line[2048];

	memset(line, 'a', sizeof(line));
	memcpy(line, "echo ", 5);
	assert_int_equal(fw_input_line(t->fw, line, FW_LINE_MAX + 1), 1);
	t->f->outlen = 0;
	assert_int_equal(fw_input_line(t->fw, line, FW_LINE_MAX + 1), 1);
	assert_string_equal(t->f->out, "## Error: line too long (max 1024 bytes)\n=> ");
	t->f->outlen = 0;
	line[FW_LINE_MAX] = '\n';
	assert_int_equal(fw_input_line(t->fw, line, FW_LINE_MAX + 1), 0);
	assert_int_equal(t->f->outlen, FW_LINE_MAX - 5 + 1 + 3);
	t->f->outlen = 0;
	assert_int_equal(fw_input_line(t->fw, "echo a\0b", 8), 1);
	assert_string_equal(t->f->out, "## Error: NUL byte in command line\n=> ");

	char many[400] = "echo";
	for (int i = 0; i < FW_MAXARGS; i++)
		strcat(many, " x");
	EXPECT(t, many, 1, "## Error: more than 64 arguments\n=> ");
	/* an unquoted value splits into words and counts */
	char v[200] = "";
	for (int i = 0; i < 70; i++)
		strcat(v, "y ");
	assert_int_equal(fw_setenv(t->fw, "w", v), 0);
	EXPECT(t, "echo $w", 1, "## Error: more than 64 arguments\n=> ");
	assert_int_equal(run(t, "echo \"$w\""), 0);
	/* a long value is fine inside a command */
	char big[5000];
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(fw_setenv(t->fw, "big", big), 0);
	assert_int_equal(run(t, "echo $big$big$big"), 0);
	assert_int_equal(t->f->outlen, 3 * 4999 + 1 + 3);
	EXPECT(t, "echo $big$big$big$big", 1, "## Error: command too long after expansion\n=> ");
}

/* fw_parse_5: unknown commands, abbreviations and size suffixes. */
static void
fw_parse_5_commands(void **state)
{
	struct t *t = *state;
	EXPECT(t, "foo", 1, "Unknown command 'foo' - try 'help'\n=> ");
	EXPECT(t, "foo; echo still", 0, "Unknown command 'foo' - try 'help'\nstill\n=> ");
	EXPECT(t, "s x", 1, "Unknown command 's' - try 'help'\n=> "); /* ambiguous */
	EXPECT(t, "printe bgp_rank", 0, "bgp_rank=5\n=> ");
	EXPECT(t, "ec.x hi", 0, "hi\n=> ");
	EXPECT(t, "md.q 10000000", 1, "md: bad size '.q'\n=> ");
	EXPECT(t, "'echo' hi", 0, "hi\n=> ");
	EXPECT(t, "x=1", 1, "Unknown command 'x=1' - try 'help'\n=> ");
}

/* ------------------------------------------------------------------ */
/* fw_run: run and its bounds */

/* fw_run_1: run executes variables in order and stops at a failure. */
static void
fw_run_1_basic(void **state)
{
	struct t *t = *state;
	EXPECT(t, "setenv a 'echo A; setenv got a'", 0, "=> ");
	EXPECT(t, "setenv b 'echo B; false'", 0, "=> ");
	EXPECT(t, "run a b a", 1, "A\nB\n=> ");
	EXPECT(t, "run a nosuch a", 1, "A\n## Error: \"nosuch\" not defined\n=> ");
	EXPECT(t, "run", 1, "Usage: run var [...]\n=> ");
	/* a script may change the variable it came from */
	EXPECT(t, "setenv s 'setenv s echo gone; echo kept'", 0, "=> ");
	EXPECT(t, "run s; run s", 0, "kept\ngone\n=> ");
	EXPECT(t, "setenv bad 'echo \"x'", 0, "=> ");
	EXPECT(t, "run bad || echo failed", 0,
	       "syntax error: unterminated quoted string\nfailed\n=> ");
}

/* fw_run_2: recursion and fan-out are bounded and never crash. */
static void
fw_run_2_recursion(void **state)
{
	struct t *t = *state;
	EXPECT(t, "setenv kboot 'run kboot'", 0, "=> ");
	EXPECT(t, "run kboot; echo not reached", 1, "## Error: run nested deeper than 16\n=> ");
	/* exactly FW_RUN_DEPTH runs may nest */
	for (int k = 1; k <= 17; k++) {
		char name[8], val[16];
		snprintf(name, sizeof(name), "d%d", k);
		snprintf(val, sizeof(val), "run d%d", k + 1);
		assert_int_equal(fw_setenv(t->fw, name, val), 0);
	}
	assert_int_equal(fw_setenv(t->fw, "d16", "echo bottom"), 0);
	EXPECT(t, "run d1", 0, "bottom\n=> ");
	assert_int_equal(fw_setenv(t->fw, "d16", "run d17"), 0);
	assert_int_equal(fw_setenv(t->fw, "d17", "echo bottom"), 0);
	EXPECT(t, "run d1", 1, "## Error: run nested deeper than 16\n=> ");
	EXPECT(t, "setenv a 'run a; run a; run a'", 0, "=> ");
	EXPECT(t, "run a; echo not reached", 1, "## Error: run nested deeper than 16\n=> ");
	/* fan-out within the depth bound meets the step bound */
	EXPECT(t, "setenv l4 true; setenv l3 'run l4 l4 l4 l4 l4 l4 l4 l4 l4 l4'", 0, "=> ");
	EXPECT(t, "setenv l2 'run l3 l3 l3 l3 l3 l3 l3 l3 l3 l3'", 0, "=> ");
	EXPECT(t, "setenv l1 'run l2 l2 l2 l2 l2 l2 l2 l2 l2 l2'", 0, "=> ");
	EXPECT(t, "run l1 && echo 1111 commands are fine", 0, "1111 commands are fine\n=> ");
	EXPECT(t, "setenv l0 'run l1 l1 l1 l1 l1 l1 l1 l1 l1 l1'", 0, "=> ");
	EXPECT(t, "run l0; echo not reached", 1,
	       "## Error: more than 10000 commands in one line, stopped\n=> ");
	EXPECT(t, "echo next line runs", 0, "next line runs\n=> ");
}

/* ------------------------------------------------------------------ */
/* fw_mem: md, mw, crc32, bdinfo */

/* fw_mem_1: mw fills big-endian values, md shows them U-Boot's way. */
static void
fw_mem_1_md_mw(void **state)
{
	struct t *t = *state;
	EXPECT(t, "mw 10000000 41424344 2", 0, "=> ");
	EXPECT(t, "md 10000000 2", 0, "10000000: 41424344 41424344    ABCDABCD\n=> ");
	EXPECT(t, "md.w 10000000 3", 0, "10000000: 4142 4344 4142    ABCDAB\n=> ");
	/* the ASCII column shows printable 7-bit bytes only; a short last line */
	EXPECT(t, "mw.b 10000008 7f 3; mw.w 1000000b 5c80", 0, "=> ");
	EXPECT(t, "md.b 10000000 12", 0,
	       "10000000: 41 42 43 44 41 42 43 44 7f 7f 7f 5c 80 00 00 00    ABCDABCD...\\....\n"
	       "10000010: 00 00    ..\n=> ");
}

/* fw_mem_2: md defaults to 0x40 longs; bad input is one line. */
static void
fw_mem_2_md_errors(void **state)
{
	struct t *t = *state;
	assert_int_equal(run(t, "md 10000000"), 0);
	int lines = 0;
	for (const char *p = t->f->out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 16);
	EXPECT(t, "md 1fffffff 1", 1,
	       "md: 1fffffff ... 20000002 is outside RAM (10000000 ... 11ffffff)\n=> ");
	EXPECT(t, "md 0 1", 1,
	       "md: 00000000 ... 00000003 is outside RAM (10000000 ... 11ffffff)\n=> ");
	EXPECT(t, "md xyz", 1, "md: bad address 'xyz'\n=> ");
	EXPECT(t, "md 10000000 1g", 1, "md: bad count '1g'\n=> ");
	EXPECT(t, "md", 1, "Usage: md [.b, .w, .l] address [# of objects]\n=> ");
	EXPECT(t, "md 10000000 100000", 1, "md: at most 0x100000 bytes at once\n=> ");
	EXPECT(t, "mw.b 10000000 100", 1, "mw: value 100 does not fit in 1 byte\n=> ");
	EXPECT(t, "mw 11fffffc 1 2", 1,
	       "mw: 11fffffc ... 12000003 is outside RAM (10000000 ... 11ffffff)\n=> ");
	EXPECT(t, "mw 10000000 1 ffffffffffff", 1,
	       "mw: count ffffffffffff is more than RAM holds\n=> ");
	EXPECT(t, "mw 10000000", 1, "Usage: mw [.b, .w, .l] address value [count]\n=> ");
	EXPECT(t, "md.l 0x11fffffc 1", 0, "11fffffc: 00000000    ....\n=> ");
}

/* fw_mem_3: crc32 is zlib's crc32, printed as U-Boot does. */
static void
fw_mem_3_crc32(void **state)
{
	struct t *t = *state;
	char want[128];

	for (int i = 0; i < 0x3000; i++)
		t->f->ram[i] = (unsigned char)(i * 7 + 3);
	snprintf(want, sizeof(want), "CRC32 for 10000000 ... 10002fff ==> %08lx\n=> ",
		 crc32(0, t->f->ram, 0x3000));
	EXPECT(t, "crc32 10000000 3000", 0, want);
	/* with a store address: the CRC lands there, big-endian */
	assert_int_equal(run(t, "crc32 10000000 3000 10100000"), 0);
	uLong c = crc32(0, t->f->ram, 0x3000);
	assert_int_equal(t->f->ram[0x100000], (c >> 24) & 0xff);
	assert_int_equal(t->f->ram[0x100003], c & 0xff);
	EXPECT(t, "crc32 11fff000 2000", 1,
	       "crc32: 11fff000 ... 12000fff is outside RAM (10000000 ... 11ffffff)\n=> ");
	EXPECT(t, "crc32 10000000", 1, "Usage: crc32 address count [addr]\n=> ");
	/* khd's crc callback is used when given */
	struct fw_machine m = machine(t->f);
	m.crc = f_crc;
	struct fw_node_info i = info5();
	struct fw *fw2 = fw_new(&m, &i);
	assert_non_null(fw2);
	t->f->outlen = 0;
	assert_int_equal(fw_input_line(fw2, "crc32 10000000 3000", 19), 0);
	assert_int_equal(t->f->crc_calls, 1);
	snprintf(want, sizeof(want), "CRC32 for 10000000 ... 10002fff ==> %08lx\n=> ", c);
	assert_string_equal(t->f->out, want);
	fw_free(fw2);
}

/* fw_mem_4: bdinfo. */
static void
fw_mem_4_bdinfo(void **state)
{
	struct t *t = *state;
	EXPECT(t, "bdinfo", 0, "memstart    = 0x10000000\nmemsize     = 0x02000000\n=> ");
}

/* ------------------------------------------------------------------ */
/* fw_mrw: loading memory from the console */

/* fw_mrw_1: bytes fed through the monitor, in pieces. */
static void
fw_mrw_1_bytes(void **state)
{
	struct t *t = *state;
	uint64_t a, n;

	assert_int_equal(run(t, "mrw $ramfsaddr 10"), FW_DATA);
	assert_string_equal(t->f->out, "Reading 10 bytes from stdin to store at 0x11000000 ...");
	assert_int_equal(fw_mode(t->fw), FW_MODE_DATA);
	assert_int_equal(fw_mrw_pending(t->fw, &a, &n), 1);
	assert_int_equal(a, 0x11000000);
	assert_int_equal(n, 10);
	assert_int_equal(fw_input_line(t->fw, "echo x", 6), -1);
	assert_int_equal(fw_input_bytes(t->fw, "0123", 4), 4);
	assert_int_equal(fw_mrw_pending(t->fw, &a, &n), 1);
	assert_int_equal(a, 0x11000004);
	assert_int_equal(n, 6);
	/* only what mrw expects is taken; the rest is the next command */
	assert_int_equal(fw_input_bytes(t->fw, "456789echo", 10), 6);
	assert_string_equal(t->f->out,
			    "Reading 10 bytes from stdin to store at 0x11000000 ...Done.\n=> ");
	assert_memory_equal(t->f->ram + 0x1000000, "0123456789", 10);
	assert_int_equal(fw_mode(t->fw), FW_MODE_CMD);
	assert_int_equal(fw_mrw_pending(t->fw, &a, &n), 0);
	assert_int_equal(fw_input_bytes(t->fw, "x", 1), 0);
}

/* fw_mrw_2: the caller takes the bytes itself (broadcast loading). */
static void
fw_mrw_2_caller(void **state)
{
	struct t *t = *state;
	uint64_t a, n;

	assert_int_equal(run(t, "mrw 10000000 1000000"), FW_DATA);
	assert_int_equal(fw_mrw_pending(t->fw, &a, &n), 1);
	assert_int_equal(a, 0x10000000);
	assert_int_equal(n, 1000000);
	t->f->outlen = 0;
	assert_int_equal(fw_mrw_done(t->fw, 1, n, NULL), 0);
	assert_string_equal(t->f->out, "Done.\n=> ");
	assert_int_equal(fw_mrw_done(t->fw, 1, 0, NULL), -1);
	/* a short read: the error names how far it got */
	assert_int_equal(run(t, "mrw 10000000 100"), FW_DATA);
	assert_int_equal(fw_input_bytes(t->fw, "abc", 3), 3);
	t->f->outlen = 0;
	assert_int_equal(fw_mrw_done(t->fw, 0, 37, "timed out"), 1);
	assert_string_equal(t->f->out, "\nmrw: timed out after 40 of 100 bytes\n=> ");
	assert_int_equal(run(t, "echo $?"), 0);
	assert_string_equal(t->f->out, "1\n=> ");
	/* the caller says ok but brings fewer bytes than expected */
	assert_int_equal(run(t, "mrw 10000000 10"), FW_DATA);
	t->f->outlen = 0;
	assert_int_equal(fw_mrw_done(t->fw, 1, 5, NULL), 1);
	assert_string_equal(t->f->out, "\nmrw: short read after 5 of 10 bytes\n=> ");
	/* more than expected counts as what was expected */
	assert_int_equal(run(t, "mrw 10000000 10"), FW_DATA);
	t->f->outlen = 0;
	assert_int_equal(fw_mrw_done(t->fw, 1, 11, NULL), 0);
	assert_string_equal(t->f->out, "Done.\n=> ");
}

/* fw_mrw_3: the rest of the line runs once the bytes are in, with the
 * mrw's status deciding && and ||. */
static void
fw_mrw_3_rest_of_line(void **state)
{
	struct t *t = *state;

	assert_int_equal(run(t, "mrw 10000000 2 && echo ok; echo after"), FW_DATA);
	t->f->outlen = 0;
	assert_int_equal(fw_input_bytes(t->fw, "hi", 2), 2);
	assert_string_equal(t->f->out, "Done.\nok\nafter\n=> ");

	assert_int_equal(run(t, "mrw 10000000 2 && echo ok || echo no; echo after"), FW_DATA);
	t->f->outlen = 0;
	assert_int_equal(fw_mrw_done(t->fw, 0, 1, "timed out"), 0);
	assert_string_equal(t->f->out, "\nmrw: timed out after 1 of 2 bytes\nafter\n=> ");

	/* two loads in one line */
	assert_int_equal(run(t, "mrw 10000000 1; mrw 10000001 1; echo both"), FW_DATA);
	assert_int_equal(fw_input_bytes(t->fw, "A", 1), 1);
	assert_int_equal(fw_mode(t->fw), FW_MODE_DATA);
	t->f->outlen = 0;
	assert_int_equal(fw_input_bytes(t->fw, "B", 1), 1);
	assert_string_equal(t->f->out, "Done.\nboth\n=> ");
	assert_memory_equal(t->f->ram, "AB", 2);
}

/* fw_mrw_4: mrw's checks. */
static void
fw_mrw_4_errors(void **state)
{
	struct t *t = *state;
	EXPECT(t, "mrw 11fffff0 17", 1,
	       "mrw: 11fffff0 ... 12000000 is outside RAM (10000000 ... 11ffffff)\n=> ");
	EXPECT(t, "mrw 10000000 0x10", 1, "mrw: bad count '0x10'\n=> ");
	EXPECT(t, "mrw 10000000", 1, "Usage: mrw address count\n=> ");
	EXPECT(t, "mrw 10000000 0", 0,
	       "Reading 0 bytes from stdin to store at 0x10000000 ...Done.\n=> ");
	EXPECT(t, "setenv l 'mrw 10000000 4'", 0, "=> ");
	EXPECT(t, "run l", 1, "mrw: only on the console, not inside run\n=> ");
	/* a write that fails: the bytes are still eaten (they are not
	 * commands), then one line says what happened */
	t->f->write_fail = 0x10000004;
	assert_int_equal(run(t, "mrw 10000000 8 || echo failed"), FW_DATA);
	assert_int_equal(fw_input_bytes(t->fw, "abc", 3), 3);
	assert_int_equal(fw_input_bytes(t->fw, "defgh", 5), 5);
	assert_string_equal(t->f->out,
			    "Reading 8 bytes from stdin to store at 0x10000000 ...\n"
			    "mrw: write to memory failed after 8 of 8 bytes\nfailed\n=> ");
	assert_memory_equal(t->f->ram, "abc", 3);
	t->f->write_fail = 0;
	EXPECT(t, "mrw 11fffff0 16", FW_DATA,
	       "Reading 16 bytes from stdin to store at 0x11fffff0 ...");
}

/* ------------------------------------------------------------------ */
/* fw_itest */

static void
fw_itest_1(void **state)
{
	struct t *t = *state;
	static const struct {
		const char *line;
		int rc;
	} cases[] = {
	    {"itest 1 == 1", 0},
	    {"itest 1 -eq 2", 1},
	    {"itest 10 > 9", 0}, /* hex 0x10 > 9, decimal ranks order alike */
	    {"itest 9 -lt 10", 0},
	    {"itest a -gt 9", 0},
	    {"itest 0x10 == 10", 0},
	    {"itest 5 != 5", 1},
	    {"itest 5 <> 6", 0},
	    {"itest 5 <= 5", 0},
	    {"itest 5 >= 6", 1},
	    {"itest 5 -le 4", 1},
	    {"itest 5 -ge 4", 0},
	    {"itest 5 -ne 4", 0},
	    {"itest 3 < 4", 0},
	    {"itest.b 101 == 1", 0}, /* widths mask */
	    {"itest.w 10001 == 1", 0},
	    {"itest.l 100000001 == 1", 0},
	    {"itest 100000001 == 1", 0},
	    {"itest.s abc == abc", 0},
	    {"itest.s abc == ab", 1},
	    {"itest.s abc < abd", 0},
	    {"itest.s abc != abd", 0},
	    {"itest *10000000 == 27051956", 0},
	    {"itest.b *10000001 == 5", 0},
	    {"itest.w *10000002 == 1956", 0},
	    {"itest.s *10000010 == hello", 0},
	};
	load(t, BASE, "\x27\x05\x19\x56", 4);
	load(t, BASE + 0x10, "hello", 6);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t->f->outlen = 0;
		int rc = fw_input_line(t->fw, cases[i].line, strlen(cases[i].line));
		if (rc != cases[i].rc || strcmp(t->f->out, "=> ") != 0)
			fail_msg("%s: rc %d output '%s'", cases[i].line, rc, t->f->out);
	}
	EXPECT(t, "itest 1 =~ 1", 1, "Unknown operator '=~'\n=> ");
	EXPECT(t, "itest.q 1 == 1", 1, "Invalid data width specifier\n=> ");
	EXPECT(t, "itest xyz == 1", 1, "itest: bad number 'xyz'\n=> ");
	EXPECT(t, "itest *0 == 1", 1,
	       "itest: 00000000 ... 00000003 is outside RAM (10000000 ... 11ffffff)\n=> ");
	EXPECT(t, "itest 1 ==", 1, "Usage: itest [.b, .w, .l, .s] [*]value1 <op> [*]value2\n=> ");
}

/* fw_test_1: test, as the original's khctl scripts use it. */
static void
fw_test_1(void **state)
{
	struct t *t = *state;
	static const struct {
		const char *line;
		int rc;
	} cases[] = {
	    {"test -n $nosuch", 1},	{"test -n $bgp_rank", 0}, {"test -z \"$nosuch\"", 0},
	    {"test a = a", 0},		{"test a != a", 1},	  {"test 5 -eq 5", 0},
	    {"test 5 -lt 10", 0},	{"test ! 5 -lt 10", 1},	  {"test 1 = 1 -a 2 = 3", 1},
	    {"test 1 = 1 -o 2 = 3", 0}, {"test a = b -o", 1},	  {"test", 1},
	    {"test b > a", 0},		{"test 1 -ge 2", 1},	  {"test 1 = 1 2", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t->f->outlen = 0;
		int rc = fw_input_line(t->fw, cases[i].line, strlen(cases[i].line));
		if (rc != cases[i].rc || strcmp(t->f->out, "=> ") != 0)
			fail_msg("%s: rc %d output '%s'", cases[i].line, rc, t->f->out);
	}
	EXPECT(t, "test x -eq 1", 1, "test: bad number 'x'\n=> ");
}

/* ------------------------------------------------------------------ */
/* fw_image: imi and bootm */

static const char ramdisk_info[] =
    "   Image Name:   test ramdisk\n"
    "   Created:      2009-02-13  23:31:30 UTC\n"
    "   Image Type:   PowerPC Linux RAMDisk Image (gzip compressed)\n"
    "   Data Size:    12 Bytes =  0 kB\n"
    "   Load Address: 00000000\n"
    "   Entry Point:  00000000\n";

/* fw_image_1: imi of a good image. */
static void
fw_image_1_imi(void **state)
{
	struct t *t = *state;
	unsigned char img[256];
	char want[1024];

	size_t n = mkimage(img, 3, "hello world\n", 12, "test ramdisk");
	load(t, 0x11000000, img, n);
	snprintf(want, sizeof(want),
		 "\n## Checking Image at 11000000 ...\n%s   Verifying Checksum ... OK\n=> ",
		 ramdisk_info);
	EXPECT(t, "imi $ramfsaddr", 0, want);
	EXPECT(t, "iminfo 11000000", 0, want);
	/* the original's idiom */
	assert_int_equal(run(t, "imi $ramfsaddr && echo good"), 0);
	assert_non_null(strstr(t->f->out, "OK\ngood\n=> "));
	/* sizes print as U-Boot's print_size does */
	unsigned char *big = calloc(1, 64 + 1300000), *data = calloc(1, 1300000);
	assert_non_null(big);
	assert_non_null(data);
	n = mkimage(big, 2, data, 1300000, "kernel");
	load(t, 0x10000000, big, n);
	free(data);
	assert_int_equal(run(t, "imi"), 0);
	assert_non_null(strstr(t->f->out,
			       "   Image Type:   PowerPC Linux Kernel Image (gzip "
			       "compressed)\n   Data Size:    1300000 Bytes =  1.2 MB\n"));
	free(big);
}

/* fw_image_2: imi of damaged images and of nothing. */
static void
fw_image_2_imi_bad(void **state)
{
	struct t *t = *state;
	unsigned char img[256];
	char want[1024];

	size_t n = mkimage(img, 3, "hello world\n", 12, "test ramdisk");
	img[64 + 3] ^= 1;
	load(t, 0x11000000, img, n);
	snprintf(want, sizeof(want),
		 "\n## Checking Image at 11000000 ...\n%s"
		 "   Verifying Checksum ...    Bad Data CRC\n=> ",
		 ramdisk_info);
	EXPECT(t, "imi 11000000", 1, want);
	img[40] ^= 1; /* the name: header checksum */
	load(t, 0x11000000, img, n);
	EXPECT(t, "imi 11000000", 1,
	       "\n## Checking Image at 11000000 ...\n   Bad Header Checksum\n=> ");
	EXPECT(t, "imi 10000000", 1,
	       "\n## Checking Image at 10000000 ...\n   Bad Magic Number\n=> ");
	EXPECT(t, "imi 11ffffe0", 1,
	       "\n## Checking Image at 11ffffe0 ...\n"
	       "iminfo: 11ffffe0 ... 1200001f is outside RAM (10000000 ... 11ffffff)\n=> ");
	/* a header whose data runs past the end of RAM */
	n = mkimage(img, 3, "hello world\n", 12, "test ramdisk");
	put32(img + 12, 0x7fffffff);
	put32(img + 4, 0);
	put32(img + 4, (uint32_t)crc32(0, img, 64));
	load(t, 0x11000000, img, 64);
	assert_int_equal(run(t, "imi 11000000"), 1);
	assert_non_null(strstr(t->f->out, "iminfo: 11000040 ... 9100003e is outside RAM"));
}

/* fw_image_3: run kboot with only a ramdisk: the ct case. */
static void
fw_image_3_kboot_ramdisk(void **state)
{
	struct t *t = *state;
	unsigned char img[256];
	char want[1024];

	size_t n = mkimage(img, 3, "hello world\n", 12, "test ramdisk");
	load(t, 0x11000000, img, n);
	snprintf(want, sizeof(want),
		 "## Loading init Ramdisk from Legacy Image at 11000000 ...\n%s"
		 "   Verifying Checksum ... OK\n## Transferring control to the node ...\n",
		 ramdisk_info);
	EXPECT(t, "run kboot; echo not reached", FW_BOOTED, want);
	assert_int_equal(t->f->boots, 1);
	assert_int_equal(t->f->kaddr, 0);
	assert_int_equal(t->f->rdaddr, 0x11000000);
	assert_int_equal(fw_mode(t->fw), FW_MODE_BOOTED);
	assert_int_equal(fw_input_line(t->fw, "echo x", 6), -1);
	fw_reset(t->fw);
	assert_int_equal(fw_mode(t->fw), FW_MODE_CMD);
	EXPECT(t, "echo back", 0, "back\n=> ");
}

/* fw_image_4: a kernel and a ramdisk; and bootm's "-". */
static void
fw_image_4_kernel(void **state)
{
	struct t *t = *state;
	unsigned char img[256];

	size_t n = mkimage(img, 2, "KERNEL", 6, "linux");
	load(t, 0x10000000, img, n);
	n = mkimage(img, 3, "RD", 2, "rd");
	load(t, 0x11000000, img, n);
	assert_int_equal(run(t, "bootm $loadaddr - 12345678"), FW_BOOTED);
	assert_non_null(strstr(t->f->out, "## Booting kernel from Legacy Image at 10000000 ...\n"
					  "   Image Name:   linux\n"));
	assert_null(strstr(t->f->out, "Ramdisk"));
	assert_int_equal(t->f->kaddr, 0x10000000);
	assert_int_equal(t->f->rdaddr, 0);
	fw_reset(t->fw);
	assert_int_equal(run(t, "run kboot"), FW_BOOTED);
	assert_int_equal(t->f->kaddr, 0x10000000);
	assert_int_equal(t->f->rdaddr, 0x11000000);
	fw_reset(t->fw);
	assert_int_equal(run(t, "bootm - $ramfsaddr"), FW_BOOTED);
	assert_int_equal(t->f->kaddr, 0);
	assert_int_equal(t->f->rdaddr, 0x11000000);
	assert_int_equal(t->f->boots, 3);
}

/* fw_image_5: bootm refusals are one line and leave the monitor. */
static void
fw_image_5_bootm_errors(void **state)
{
	struct t *t = *state;
	unsigned char img[256];

	EXPECT(t, "run kboot || echo failed", 0,
	       "## Nothing to boot: no image at 10000000 or 11000000\nfailed\n=> ");
	EXPECT(t, "bootm", 1, "## Nothing to boot: no image at 10000000\n=> ");
	EXPECT(t, "bootm - -", 1, "## Nothing to boot\n=> ");
	EXPECT(t, "bootm 0", 1,
	       "bootm: 00000000 ... 0000003f is outside RAM (10000000 ... 11ffffff)\n=> ");
	EXPECT(t, "bootm zz", 1, "bootm: bad address 'zz'\n=> ");
	/* a ramdisk where the kernel should be */
	size_t n = mkimage(img, 3, "RD", 2, "rd");
	load(t, 0x10000000, img, n);
	assert_int_equal(run(t, "bootm"), 1);
	assert_non_null(strstr(t->f->out, "OK\nWrong Image Type for bootm command\n=> "));
	/* the backend refuses */
	n = mkimage(img, 2, "KERNEL", 6, "linux");
	load(t, 0x10000000, img, n);
	t->f->boot_fail = 1;
	assert_int_equal(run(t, "run kboot"), 1);
	assert_non_null(strstr(t->f->out,
			       "## Transferring control to the node ...\n"
			       "## Boot failed: ct nodes cannot boot a kernel image\n=> "));
	assert_int_equal(fw_mode(t->fw), FW_MODE_CMD);
	/* a damaged ramdisk stops the boot */
	t->f->boot_fail = 0;
	memset(t->f->ram, 0, 256);
	n = mkimage(img, 3, "RD", 2, "rd");
	img[65] ^= 0xff;
	load(t, 0x11000000, img, n);
	assert_int_equal(run(t, "run kboot"), 1);
	assert_non_null(strstr(t->f->out, "Bad Data CRC\n=> "));
	assert_int_equal(t->f->boots, 0);
	/* bytes without a uImage header go to the backend as they are */
	load(t, 0x11000000, "\x1f\x8b\x08\x00", 4);
	assert_int_equal(run(t, "run kboot"), FW_BOOTED);
	assert_string_equal(t->f->out,
			    "## Loading init Ramdisk at 11000000 (no uImage header) ...\n"
			    "## Transferring control to the node ...\n");
	assert_int_equal(t->f->rdaddr, 0x11000000);
}

/* ------------------------------------------------------------------ */
/* fw_misc: reset, silence, help, version, mketh, fdt */

/* fw_misc_1: reset wipes the node and gives a fresh monitor. */
static void
fw_misc_1_reset(void **state)
{
	struct t *t = *state;
	EXPECT(t, "setenv foo 1; setenv bgp_rank 99; silence", 0, "");
	EXPECT(t, "reset; echo not reached", 0, "=> ");
	assert_int_equal(t->f->resets, 1);
	expect_defaults(t);
	EXPECT(t, "mw 10000000 1; reset", 0, "resetting ...\n=> ");
	assert_int_equal(t->f->ram[3], 0);
	assert_int_equal(t->f->resets, 2);
}

/* fw_misc_2: silence stops all output, prompt included. */
static void
fw_misc_2_silence(void **state)
{
	struct t *t = *state;
	EXPECT(t, "silence; echo hidden", 0, "");
	EXPECT(t, "issilent && echo hidden; foo", 1, "");
	EXPECT(t, "unsilence; echo shown", 0, "shown\n=> ");
	EXPECT(t, "issilent", 1, "=> ");
}

/* fw_misc_3: help, version, fdt, mketh. */
static void
fw_misc_3_info(void **state)
{
	struct t *t = *state;
	EXPECT(t, "version", 0, "\n" FW_VERSION "\n=> ");
	EXPECT(t, "help md", 0,
	       "md      - memory display\n\nUsage:\nmd [.b, .w, .l] address [# of objects]\n=> ");
	EXPECT(t, "help bdinfo", 0, "bdinfo  - print Board Info structure\n\nUsage:\nbdinfo\n=> ");
	EXPECT(t, "help nosuch", 1,
	       "Unknown command 'nosuch' - try 'help' without arguments for list of all known "
	       "commands\n=> ");
	assert_int_equal(run(t, "help"), 0);
	assert_non_null(strstr(t->f->out, "\nmrw     - memory raw write"));
	assert_non_null(strstr(t->f->out, "\nprintenv - print environment variables\n"));
	assert_non_null(strstr(t->f->out, "\nversion - print monitor version\n=> "));
	EXPECT(t, "fdt rm /plb/ethernet@0 && echo ok", 0, "ok\n=> ");
	EXPECT(t, "mketh 3 2 9000", 0, "=> ");
	assert_string_equal(fw_getenv(t->fw, "bg_eth2_netid"), "3");
	assert_string_equal(fw_getenv(t->fw, "bg_eth2_mtu"), "9000");
	EXPECT(t, "mketh 0 1", 1, "ERROR: netid=0 is reserved\n=> ");
	EXPECT(t, "mketh 1 256", 1, "mketh: bad index '256'\n=> ");
	EXPECT(t, "mketh 1", 1, "Usage: mketh netid index [mtu] [vnic]\n=> ");
	EXPECT(t, "echo -n a; echo 'b\\c'; echo c", 0, "abc\n=> ");
	EXPECT(t, "echo a\\c", 0, "ac\n=> "); /* unquoted, \ escapes */
	EXPECT(t, "echo nodeinfo: $bgp_rank $uni", 0, "nodeinfo: 5 0005\n=> ");
}

/* fw_misc_4: monitors are small and cheap: two thousand of them. */
static void
fw_misc_4_many(void **state)
{
	struct t *t = *state;
	static struct fw *fws[2000];
	struct fw_machine m = machine(t->f);

	assert_true(sizeof(struct fw) <= 160);
	for (int i = 0; i < 2000; i++) {
		struct fw_node_info in = info5();
		in.rank = (uint64_t)i;
		fws[i] = fw_new(&m, &in);
		assert_non_null(fws[i]);
	}
	t->f->outlen = 0;
	assert_int_equal(fw_input_line(fws[1234], "echo $bgp_rank", 14), 0);
	assert_string_equal(t->f->out, "1234\n=> ");
	for (int i = 0; i < 2000; i++)
		fw_free(fws[i]);
	/* bad descriptions */
	struct fw_node_info in = info5();
	in.neth = FW_MAX_ETH + 1;
	assert_null(fw_new(&m, &in));
	in.neth = 1;
	in.netid = NULL;
	assert_null(fw_new(&m, &in));
	m.read = NULL;
	in = info5();
	assert_null(fw_new(&m, &in));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(fw_env_1_defaults),   T(fw_env_2_setenv),
	    T(fw_env_3_errors),	    T(fw_env_4_overflow),
	    T(fw_env_5_alias),	    T(fw_env_6_set_info),
	    T(fw_parse_1_quotes),   T(fw_parse_2_syntax),
	    T(fw_parse_3_lists),    T(fw_parse_4_bounds),
	    T(fw_parse_5_commands), T(fw_run_1_basic),
	    T(fw_run_2_recursion),  T(fw_mem_1_md_mw),
	    T(fw_mem_2_md_errors),  T(fw_mem_3_crc32),
	    T(fw_mem_4_bdinfo),	    T(fw_mrw_1_bytes),
	    T(fw_mrw_2_caller),	    T(fw_mrw_3_rest_of_line),
	    T(fw_mrw_4_errors),	    T(fw_itest_1),
	    T(fw_test_1),	    T(fw_image_1_imi),
	    T(fw_image_2_imi_bad),  T(fw_image_3_kboot_ramdisk),
	    T(fw_image_4_kernel),   T(fw_image_5_bootm_errors),
	    T(fw_misc_1_reset),	    T(fw_misc_2_silence),
	    T(fw_misc_3_info),	    T(fw_misc_4_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
