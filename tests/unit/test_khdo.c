/* khdo-*: the pure parts of khdo: the control block as khget prints it
 * (and as the original's scripts parsed it), rank lists, placeholders, and
 * the tracker that decides from the nodes' prefixed answers which node
 * loaded and which failed, and why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/khdo.h"

static const char block[] = "con7@kh.example.org\n"
			    "protocol: uboot\n"
			    "network External : eth0\n"
			    "network Internal : eth1\n"
			    "network 3 : eth2\n"
			    "nodeinfo: 4 bcbc27180004 10.0.0.5\n"
			    "nodeinfo: 5 bcbc27180005 10.0.0.6 extra fields\n"
			    "nodes: 4 5\n";

static int
parse(const char *s, struct khdo_block *b, char *err)
{
	err[0] = '\0';
	return khdo_block_parse(s, strlen(s), b, err, 200);
}

/* khdo_block_1.1: every line of khget's block. */
static void
khdo_block_1_1(void **state)
{
	struct khdo_block b;
	char err[200];

	assert_int_equal(parse(block, &b, err), 0);
	assert_int_equal(b.chan, 7);
	assert_string_equal(b.con, "con7@kh.example.org");
	assert_string_equal(b.host, "kh.example.org");
	assert_int_equal(b.ssh_port, 0);
	assert_int_equal(b.nnets, 3);
	assert_string_equal(b.nets[0].name, "External");
	assert_string_equal(b.nets[0].ifname, "eth0");
	assert_string_equal(b.nets[1].name, "Internal");
	assert_string_equal(b.nets[2].name, "3");
	assert_string_equal(b.nets[2].ifname, "eth2");
	assert_int_equal(b.nranks, 2);
	assert_int_equal(b.ranks[0], 4);
	assert_int_equal(b.ranks[1], 5);
	assert_string_equal(khdo_block_info(&b, 5)->ip, "10.0.0.6");
	assert_string_equal(khdo_block_info(&b, 4)->uni, "bcbc27180004");
	assert_null(khdo_block_info(&b, 6));
	khdo_block_free(&b);
}

/* khdo_block_1.2: lines added later (ssh-port:, unknown prefixes, the
 * original's KHPIPEINFO), CRLF and blank lines do not disturb it. */
static void
khdo_block_1_2(void **state)
{
	struct khdo_block b;
	char err[200];

	assert_int_equal(parse("KHPIPEINFO: x:\r\ncon3@h\r\n\r\nssh-port: 2222\r\n"
			       "future-thing: 1 2 3\r\nnodes: 9\r\nafter: too\r\n",
			       &b, err),
			 0);
	assert_int_equal(b.chan, 3);
	assert_string_equal(b.host, "h");
	assert_int_equal(b.ssh_port, 2222);
	assert_int_equal(b.nranks, 1);
	assert_int_equal(b.ranks[0], 9);
	assert_int_equal(b.ninfo, 0);
	khdo_block_free(&b);
	/* a long allocation */
	char big[40000];
	size_t n = (size_t)snprintf(big, sizeof(big), "con1@h\nnodes:");
	for (int i = 0; i < 4092; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, " %d", 4091 - i);
	assert_int_equal(parse(big, &b, err), 0);
	assert_int_equal(b.nranks, 4092);
	assert_int_equal(b.ranks[4091], 0);
	khdo_block_free(&b);
}

/* khdo_block_2: bad blocks, one line of reason each. */
static void
khdo_block_2(void **state)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"", "no control block on standard input"},
	    {"\n\n", "no control block on standard input"},
	    {"nodes: 1\n", "no con<C>@HOST line"},
	    {"con1@h\n", "no nodes: line"},
	    {"con1@h\nnodes:\n", "names no node"},
	    {"con1@h\nnodes: 1 x\n", "bad rank 'x'"},
	    {"con1@h\nnodes: 1 -2\n", "bad rank '-2'"},
	    {"con1@h\nnodes: 1 2 1\n", "node 1 is named twice"},
	    {"conx@h\nnodes: 1\n", "bad channel line 'conx@h'"},
	    {"con1\nnodes: 1\n", "bad channel line 'con1'"},
	    {"con1@-oProxyCommand=x\nnodes: 1\n", "bad channel line"},
	    {"con1@h;rm\nnodes: 1\n", "bad channel line"},
	    {"con1@h\ncon2@h\nnodes: 1\n", "two channel lines"},
	    {"con1@h\nnodes: 1\ncon2@h\nnodes: 2\n", "more than one control block"},
	    {"con1@h\nprotocol: pxe\nnodes: 1\n", "protocol 'pxe'"},
	    {"con1@h\nssh-port: 0\nnodes: 1\n", "bad ssh-port"},
	    {"con1@h\nssh-port: 70000\nnodes: 1\n", "bad ssh-port"},
	    {"con1@h\nnetwork 3 eth0\nnodes: 1\n", "bad network line"},
	    {"con1@h\nnetwork 3 : wlan0\nnodes: 1\n", "bad network line"},
	    {"con1@h\nnodeinfo: 1 u\nnodes: 1\n", "bad nodeinfo line"},
	    {"con1@h\nnodeinfo: 1 u 1.2.3.4\nnodeinfo: 1 v 1.2.3.5\nnodes: 1\n",
	     "two nodeinfo lines for node 1"},
	};
	struct khdo_block b;
	char err[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i].in, &b, err), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s', want '%s'", bad[i].in, err, bad[i].why);
		assert_null(strchr(err, '\n'));
		assert_null(b.ranks);
	}
	assert_int_equal(khdo_block_parse("con1@h\nno\0des: 1\n", 17, &b, err, 200), -1);
	assert_non_null(strstr(err, "NUL"));
}

/* khdo_ranks_1: targets lists as khd takes them. */
static void
khdo_ranks_1(void **state)
{
	static const struct {
		int r[8], n;
		const char *want;
	} c[] = {
	    {{0}, 1, "0"},
	    {{3, 2, 1, 0}, 4, "0-3"},
	    {{7, 9, 10, 0, 1, 2, 3}, 7, "0-3,7,9-10"},
	    {{5, 5, 6}, 3, "5-6"},
	    {{1, 3, 5}, 3, "1,3,5"},
	    {{0}, 0, ""},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct sbuf s;
		sbuf_init(&s);
		khdo_ranks_fmt(c[i].r, c[i].n, &s);
		assert_string_equal(s.s ? s.s : "", c[i].want);
		sbuf_free(&s);
	}
}

/* khdo_subst_1: %key% replaced, unsafe values quoted, the rest kept. */
static void
khdo_subst_1(void **state)
{
	static const struct {
		const char *tmpl, *val, *want;
	} c[] = {
	    {"wget http://%ip%/", "10.0.0.5", "wget http://10.0.0.5/"},
	    {"a %ip% %ip% b", "1.2", "a 1.2 1.2 b"},
	    {"%ip%", "x; rm -rf /", "'x; rm -rf /'"},
	    {"%ip%", "it's", "'it'\\''s'"},
	    {"%ip%", "", "''"},
	    {"100% %ipx% %i%", "v", "100% %ipx% %i%"},
	    {"", "v", ""},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		const char *k[] = {"ip"}, *v[] = {c[i].val};
		struct sbuf s;
		sbuf_init(&s);
		khdo_subst(c[i].tmpl, k, v, 1, &s);
		assert_string_equal(s.s, c[i].want);
		sbuf_free(&s);
	}
	const char *k[] = {"net", "if"}, *v[] = {"External", "eth0"};
	struct sbuf s;
	sbuf_init(&s);
	khdo_subst("ip link set %if% # %net%", k, v, 2, &s);
	assert_string_equal(s.s, "ip link set eth0 # External");
	sbuf_free(&s);
}

static void
feed(struct khdo_track *t, const char *lines)
{
	const char *p = lines;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		khdo_track_line(t, p, n);
		p += n + (nl != NULL);
	}
}

static char *
report(struct khdo_track *t)
{
	static char out[2048];
	struct sbuf s;
	sbuf_init(&s);
	khdo_track_report(t, "khdo", &s);
	snprintf(out, sizeof(out), "%s", s.s ? s.s : "");
	sbuf_free(&s);
	return out;
}

/* khdo_track_1: the question before a load: every node says where and how
 * much RAM; what does not fit is named per node, grouped by reason. */
static void
khdo_track_1(void **state)
{
	int ranks[] = {3, 1, 2, 0};
	struct khdo_track t;

	assert_int_equal(khdo_track_init(&t, ranks, 4, "abc"), 0);
	khdo_track_phase(&t, KHDO_PRE, "$ramfsaddr");
	feed(&t,
	     "[0] khdo-pre:abc:0x11000000\n"
	     "[0] memstart    = 0x10000000\n"
	     "[0] memsize     = 0x10000000\n"
	     "[1] => => khdo-pre:abc:0x1ffffff0\n" /* prompts before it */
	     "[1] memstart    = 0x10000000\n"
	     "[1] memsize     = 0x10000000\n"
	     "[2] echo khdo-pre:abc:$ramfsaddr; bdinfo; echo khdo-end:abc\n" /* a shell's echo */
	     "[2] khdo-pre:abc:\n"
	     "[2] sh: bdinfo: not found\n"
	     "[0] khdo-end:abc\n"
	     "[9] khdo-end:abc\n"   /* not ours */
	     "[1] khdo-end:xyz\n"); /* another run's */
	assert_int_equal(t.waiting, 3);
	feed(&t, "[1] khdo-end:abc\n[2] khdo-end:abc\n");
	assert_int_equal(t.waiting, 1);
	assert_int_equal(t.failed, 1);
	assert_int_equal(khdo_track_room(&t, 16 << 20), 2);
	khdo_track_expire(&t, "did not answer");
	assert_int_equal(t.failed, 3);
	assert_string_equal(
	    report(&t),
	    "khdo: node 1: cannot take 16777216 bytes at 0x1ffffff0 (its RAM is 0x10000000 ... "
	    "0x1fffffff)\n"
	    "khdo: node 2: not in its boot monitor (booted? khctl reset brings it back)\n"
	    "khdo: node 3: did not answer\n");
	/* the same reason for several nodes is one line */
	khdo_track_phase(&t, KHDO_PRE, "$ramfsaddr");
	for (int r = 0; r < 4; r++) {
		char l[200];
		snprintf(l, sizeof(l),
			 "[%d] khdo-pre:abc:%s\n[%d] memstart = 0x10000000\n"
			 "[%d] memsize = 0x800000\n[%d] khdo-end:abc\n",
			 r, r == 2 ? "" : "11000000", r, r, r);
		feed(&t, l);
	}
	assert_int_equal(t.waiting, 0);
	assert_int_equal(khdo_track_room(&t, 1), 4);
	assert_string_equal(report(&t), "khdo: nodes 0-1,3: cannot take 1 bytes at 0x11000000 (its "
					"RAM is 0x10000000 ... 0x107fffff)\n"
					"khdo: node 2: $ramfsaddr is not set\n");
	khdo_track_free(&t);
}

/* khdo_track_2: the load: acknowledgements, the monitor's reasons, a reset
 * node, a status without a reason. */
static void
khdo_track_2(void **state)
{
	int ranks[] = {0, 1, 2, 3, 4};
	struct khdo_track t;

	assert_int_equal(khdo_track_init(&t, ranks, 5, "t1"), 0);
	khdo_track_phase(&t, KHDO_LOAD, "$ramfsaddr");
	feed(&t, "[0] => Reading 10 bytes from stdin to store at 0x11000000 ...Done.\n"
		 "[0] khdo-ack:t1:0\n"
		 "[1] => Reading 10 bytes from stdin to store at 0x11000000 ...\n"
		 "[1] mrw: timed out after 4 of 10 bytes\n"
		 "[1] khdo-ack:t1:1\n"
		 "[2] resetting ...\n"
		 "[2] khdo-ack:t1:0\n" /* too late: it was reset */
		 "[3] mrw $ramfsaddr 10; echo khdo-ack:t1:$?\n"
		 "[3] khdo-ack:t1:127\n"
		 "[4] khdo-ack:t1:x\n");
	assert_int_equal(t.waiting, 1);
	assert_int_equal(t.failed, 3);
	khdo_track_expire(&t, "did not acknowledge within 10 s");
	assert_string_equal(report(&t), "khdo: node 1: mrw: timed out after 4 of 10 bytes\n"
					"khdo: node 2: reset during the load\n"
					"khdo: node 3: mrw failed (status 127)\n"
					"khdo: node 4: did not acknowledge within 10 s\n");
	/* a new phase forgets the old answers */
	khdo_track_phase(&t, KHDO_UNTIL, "up on");
	assert_int_equal(t.waiting, 5);
	feed(&t, "[0] appliance up on n0\n[1] nothing\n[1] => up on n1\n[7] up on\n");
	assert_int_equal(t.waiting, 3);
	assert_string_equal(report(&t), "");
	khdo_track_free(&t);
	/* a rank twice is refused */
	int twice[] = {1, 2, 1};
	assert_int_equal(khdo_track_init(&t, twice, 3, "x"), -1);
}

/* khdo_track_3: what is not a prefixed answer is ignored, whatever it is. */
static void
khdo_track_3(void **state)
{
	int ranks[] = {0};
	struct khdo_track t;
	char junk[5000];

	assert_int_equal(khdo_track_init(&t, ranks, 1, "q"), 0);
	khdo_track_phase(&t, KHDO_LOAD, "$loadaddr");
	memset(junk, 'x', sizeof(junk));
	khdo_track_line(&t, junk, sizeof(junk));
	feed(&t, "\n[\n[]\n[0]\n[0]x\n[-1] khdo-ack:q:0\n[99999999999999999999] khdo-ack:q:0\n"
		 "[0x0] khdo-ack:q:0\n[khd: 10 bytes dropped]\n khdo-ack:q:0\n");
	assert_int_equal(t.waiting, 1);
	feed(&t, "[0] khdo-ack:q:0");
	assert_int_equal(t.waiting, 0);
	assert_int_equal(t.failed, 0);
	khdo_track_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(khdo_block_1_1), cmocka_unit_test(khdo_block_1_2),
	    cmocka_unit_test(khdo_block_2),   cmocka_unit_test(khdo_ranks_1),
	    cmocka_unit_test(khdo_subst_1),   cmocka_unit_test(khdo_track_1),
	    cmocka_unit_test(khdo_track_2),   cmocka_unit_test(khdo_track_3),
	};
	return cmocka_run_group_tests_name("khdo", tests, NULL, NULL);
}
