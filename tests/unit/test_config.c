/* config-*: khd.conf, strict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "khd/config.h"

/* config-1.1: types and host, defaults for what is not said. */
static void
config_1_1(void **state)
{
	struct config c;
	char err[200];
	assert_int_equal(config_parse("# facility\nhost kh.example\n"
				      "type ct1 cpus=0.5 mem=128M count=100 # small\n"
				      "\ntype big backend=ct cpus=2 mem=1G pids=4096 ifs=16\n",
				      &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.host, "kh.example");
	assert_int_equal(c.ntypes, 2);
	assert_int_equal(c.types[0].cpu_milli, 500);
	assert_int_equal(c.types[0].mem, 128ULL << 20);
	assert_int_equal(c.types[0].count, 100);
	assert_int_equal(c.types[0].max_ifs, 8);
	assert_int_equal(c.types[1].cpu_milli, 2000);
	assert_int_equal(c.types[1].mem, 1ULL << 30);
	assert_int_equal(c.types[1].pids, 4096);
	assert_int_equal(c.types[1].max_ifs, 16);
	config_free(&c);
}

/* config-1.2: a vm type (QEMU nodes) is configured as a ct type is. */
static void
config_1_2(void **state)
{
	struct config c;
	char err[200];
	assert_int_equal(
	    config_parse("type ct1 count=8\ntype vm1 backend=vm cpus=1 mem=256M count=16\n", &c,
			 err, sizeof(err)),
	    0);
	assert_int_equal(c.ntypes, 2);
	assert_string_equal(c.types[0].backend, "ct");
	assert_string_equal(c.types[1].name, "vm1");
	assert_string_equal(c.types[1].backend, "vm");
	assert_int_equal(c.types[1].cpu_milli, 1000);
	assert_int_equal(c.types[1].mem, 256ULL << 20);
	assert_int_equal(c.types[1].count, 16);
	config_free(&c);
}

/* config-1.3: the state backend: the rest of the line (libpq's conninfo
 * has spaces), a URI whole, nothing said: SQLite. */
static void
config_1_3(void **state)
{
	struct config c;
	char err[200];
	assert_int_equal(config_parse("type ct1\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.state, "");
	config_free(&c);
	assert_int_equal(config_parse("state \tpostgresql:host=/run/kh dbname=kh user=kh  # here\n",
				      &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.state, "postgresql:host=/run/kh dbname=kh user=kh");
	config_free(&c);
	assert_int_equal(
	    config_parse("state postgresql://kh@%2Frun%2Fkh/kh\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.state, "postgresql://kh@%2Frun%2Fkh/kh");
	config_free(&c);
	assert_int_equal(config_parse("state sqlite\r\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.state, "sqlite");
	config_free(&c);
}

/* config-1.4: on_stop says what SIGTERM does with running nodes; stop
 * unless it says keep. */
static void
config_1_4(void **state)
{
	struct config c;
	char err[200];
	assert_int_equal(config_parse("host a\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c.on_stop_keep, 0);
	config_free(&c);
	assert_int_equal(config_parse("on_stop keep\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c.on_stop_keep, 1);
	config_free(&c);
	assert_int_equal(config_parse("on_stop keep\non_stop stop\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c.on_stop_keep, 0);
	config_free(&c);
}

/* config-2.1: every mistake names its line. */
static void
config_2_1(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"frob 1\n", "line 1: unknown setting 'frob'"},
	    {"\n\ntype\n", "line 3: type needs a name"},
	    {"type a cpus=x\n", "cpus"},
	    {"type a cpus=0\n", "cpus"},
	    {"type a cpus=1.2345\n", "cpus"},
	    {"type a mem=1K\n", "mem"},
	    {"type a ifs=17\n", "ifs"},
	    {"type a count=5000\n", "count"},
	    {"type a backend=xen\n", "backend"},
	    {"type a colour=red\n", "unknown type setting"},
	    {"type a nokey\n", "key=value"},
	    {"type a\ntype a\n", "line 2: type a defined twice"},
	    {"host a b\n", "host takes one name"},
	    {"state\n", "line 1: state takes sqlite or postgresql:CONNINFO"},
	    {"state mysql:host=x\n", "state must be sqlite or postgresql"},
	    {"state sqlite3\n", "state must be sqlite or postgresql"},
	    {"on_stop\n", "line 1: on_stop takes keep or stop"},
	    {"host a\non_stop later\n", "line 2: on_stop takes keep or stop"},
	    {"on_stop keep stop\n", "line 1: on_stop takes keep or stop"},
	};
	struct config c;
	char err[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_parse(bad[i].text, &c, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s'", bad[i].text, err);
	}
}

/* config-3.1: host NAME ADDR lines: the facility's hosts, in order, their
 * agents' addresses, every host down until its agent connects; the
 * one-word host line is still this host's name. */
static void
config_3_1(void **state)
{
	struct config c;
	char err[200];
	assert_int_equal(config_parse("host front.example\n"
				      "host a 10.0.0.1:7070\n"
				      "host b.rack-2 192.168.1.20:65535 # the second\n"
				      "type ct1 count=1000\n"
				      "type vm1 backend=vm count=23\n"
				      "host c 10.0.0.3:1\n",
				      &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.host, "front.example");
	assert_int_equal(c.nhosts, 3);
	assert_string_equal(c.hosts[0].name, "a");
	assert_string_equal(c.hosts[0].addr, "10.0.0.1:7070");
	assert_string_equal(c.hosts[1].name, "b.rack-2");
	assert_string_equal(c.hosts[1].addr, "192.168.1.20:65535");
	assert_string_equal(c.hosts[2].addr, "10.0.0.3:1");
	for (int i = 0; i < 3; i++)
		assert_int_equal(c.hosts[i].state, HOST_DOWN);
	config_free(&c);
	/* without host lines: one host, none listed */
	assert_int_equal(config_parse("host kh\ntype ct1 count=4092\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c.nhosts, 0);
	config_free(&c);
}

/* config-3.2: every mistake in a host line names its line and changes
 * nothing (khd does not start). */
static void
config_3_2(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"host a_b 10.0.0.1:7\n", "line 1: a host's name is 1-32 of A-Z a-z 0-9 . -"},
	    {"host -a 10.0.0.1:7\n", "line 1: a host's name"},
	    {"host .a 10.0.0.1:7\n", "line 1: a host's name"},
	    {"host abcdefghijabcdefghijabcdefghijabc 10.0.0.1:7\n", "line 1: a host's name"},
	    {"host a 10.0.0.1\n", "line 1: host takes one name, or a name and its agent's "
				  "address IPv4:PORT ('10.0.0.1' is not one)"},
	    {"host a 10.0.0.300:7\n", "'10.0.0.300:7' is not one"},
	    {"host a 10.0.0.1:0\n", "'10.0.0.1:0' is not one"},
	    {"host a 10.0.0.1:65536\n", "is not one"},
	    {"host a 10.0.0.1:7x\n", "is not one"},
	    {"host a :7\n", "is not one"},
	    {"host a [::1]:7\n", "is not one"},
	    {"host a kh.example:7\n", "is not one"},
	    {"host a 10.0.0.1:7 extra\n", "line 1: host NAME ADDR takes nothing more"},
	    {"host a 10.0.0.1:7\nhost a 10.0.0.2:7\n", "line 2: host a given twice"},
	    {"host a 10.0.0.1:7\nhost b 10.0.0.1:7\n",
	     "line 2: hosts a and b have one address, 10.0.0.1:7"},
	    {"type ct1 count=2000\nhost a 10.0.0.1:7\nhost b 10.0.0.2:7\nhost c 10.0.0.3:7\n",
	     "line 4: 3 hosts of 2000 nodes each are 6000 nodes, more than the 4092 a facility "
	     "holds"},
	    {"host a 10.0.0.1:7\nhost b 10.0.0.2:7\ntype ct1 count=2000\ntype x count=47\n",
	     "line 4: 2 hosts of 2047 nodes each are 4094 nodes"},
	};
	struct config c;
	char err[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_parse(bad[i].text, &c, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s'", bad[i].text, err);
	}
	/* 64 hosts, not 65 */
	char text[8192];
	size_t n = 0;
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "host h%d 10.0.1.%d:7\n", i, i);
	assert_int_equal(config_parse(text, &c, err, sizeof(err)), -1);
	assert_string_equal(err, "line 65: at most 64 hosts");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(config_1_1), cmocka_unit_test(config_1_2),
	    cmocka_unit_test(config_1_3), cmocka_unit_test(config_1_4),
	    cmocka_unit_test(config_2_1), cmocka_unit_test(config_3_1),
	    cmocka_unit_test(config_3_2)};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
