/* fabric-*: the fabric on this host's real kernel (root only), inside a
 * network namespace of the test's own, which the fabric takes for "the
 * host": nodes get namespaces ahead of need, wiring puts the plan's
 * interfaces in a node, addnet/rmnet change a running node (with the last
 * counters of a removed interface handed to the meter), release leaves
 * nothing, and a second facility does not take the first one's uplink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fabric/fabric.h"

static int testns = -1; /* the namespace the test runs in ("the host") */

/* What a node sees: its interfaces (name, IPv4, MAC), as one string
 * "eth0=10.0.48.6/02:4b:00:03:00:05 ...", in name order. */
static void
node_view(struct fabric *fb, int rank, char *out, size_t len)
{
	struct ifaddrs *ifa, *p;
	char names[16][IF_NAMESIZE + 1], v4[16][32], mac[16][24];
	int n = 0;

	out[0] = 0;
	assert_int_equal(setns(fabric_node_netns(fb, rank), CLONE_NEWNET), 0);
	assert_int_equal(getifaddrs(&ifa), 0);
	for (p = ifa; p; p = p->ifa_next) {
		int i;
		if (strcmp(p->ifa_name, "lo") == 0 || p->ifa_addr == NULL)
			continue;
		for (i = 0; i < n && strcmp(names[i], p->ifa_name); i++)
			;
		if (i == n) {
			if (n == 16)
				continue;
			snprintf(names[n], sizeof(names[n]), "%s", p->ifa_name);
			v4[n][0] = mac[n][0] = 0;
			n++;
		}
		if (p->ifa_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr,
				  v4[i], sizeof(v4[i]));
		if (p->ifa_addr->sa_family == AF_PACKET) {
			const unsigned char *m =
			    ((struct sockaddr_ll *)(void *)p->ifa_addr)->sll_addr;
			snprintf(mac[i], sizeof(mac[i]), "%02x:%02x:%02x:%02x:%02x:%02x", m[0],
				 m[1], m[2], m[3], m[4], m[5]);
		}
	}
	freeifaddrs(ifa);
	assert_int_equal(setns(testns, CLONE_NEWNET), 0);
	for (int a = 0; a < n; a++) /* sort by name */
		for (int b = a + 1; b < n; b++)
			if (strcmp(names[b], names[a]) < 0) {
				char t[32];
				memcpy(t, names[a], sizeof(names[a]));
				memcpy(names[a], names[b], sizeof(names[a]));
				memcpy(names[b], t, sizeof(names[a]));
				memcpy(t, v4[a], sizeof(t));
				memcpy(v4[a], v4[b], sizeof(t));
				memcpy(v4[b], t, sizeof(t));
				memcpy(t, mac[a], sizeof(mac[a]));
				memcpy(mac[a], mac[b], sizeof(mac[a]));
				memcpy(mac[b], t, sizeof(mac[a]));
			}
	for (int i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, len - l, "%s%s=%s/%s", i ? " " : "", names[i], v4[i], mac[i]);
	}
}

/* Does the test's namespace (the "host") have this IPv4 address? */
static int
host_has(const char *a4)
{
	struct ifaddrs *ifa, *p;
	char buf[32];
	int found = 0;
	assert_int_equal(getifaddrs(&ifa), 0);
	for (p = ifa; p; p = p->ifa_next)
		if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET &&
		    inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr, buf,
			      sizeof(buf)) &&
		    strcmp(buf, a4) == 0)
			found = 1;
	freeifaddrs(ifa);
	return found;
}

static int
setup(void **state)
{
	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
		return 0; /* the tests skip */
	testns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (testns >= 0)
		close(testns);
	return 0;
}

struct removed {
	int n, rank, slot;
	uint32_t netid;
};

static void
on_remove(void *arg, int rank, const struct fabric_ifstats *st)
{
	struct removed *r = arg;
	r->n++;
	r->rank = rank;
	r->slot = st->slot;
	r->netid = st->netid;
}

/* fabric-1.1 a node is prepared with a namespace and no interface; wiring
 * and configuring gives eth0 the plan's address and MAC. */
static void
fabric_1_1(void **state)
{
	char err[256], view[512];
	struct fabric *fb;
	(void)state;
	if (testns < 0)
		skip();
	fb = fabric_new("0000f001", 0, NULL, err, sizeof(err));
	assert_non_null(fb);
	assert_string_equal(fabric_uplink(fb), "kh0000f001");
	assert_true(host_has("10.0.31.254"));
	assert_int_equal(fabric_node_prepare(fb, 5, err, sizeof(err)), 0);
	assert_true(fabric_node_netns(fb, 5) >= 0);
	node_view(fb, 5, view, sizeof(view));
	assert_string_equal(view, "");

	int nets[] = {3};
	assert_int_equal(fabric_node_wire(fb, 5, nets, 1, err, sizeof(err)), 0);
	assert_int_equal(fabric_node_config(fb, 5, err, sizeof(err)), 0);
	fabric_flush(fb);
	node_view(fb, 5, view, sizeof(view));
	assert_string_equal(view, "eth0=10.0.48.6/02:4b:00:03:00:05");

	/* fabric-1.2 addnet on the running node: eth1 appears, configured;
	 * rmnet: it goes, eth0 stays. */
	int two[] = {3, 2};
	assert_int_equal(fabric_node_wire(fb, 5, two, 2, err, sizeof(err)), 0);
	node_view(fb, 5, view, sizeof(view));
	assert_string_equal(view,
			    "eth0=10.0.48.6/02:4b:00:03:00:05 eth1=10.0.32.6/02:4b:00:02:00:05");
	struct fabric_ifstats st[4];
	assert_int_equal(fabric_node_counters(fb, 5, st, 4), 2);
	assert_true((st[0].slot == 0 && st[0].netid == 3 && st[1].slot == 1 && st[1].netid == 2) ||
		    (st[1].slot == 0 && st[1].netid == 3 && st[0].slot == 1 && st[0].netid == 2));
	struct removed rm = {0};
	fabric_set_remove_hook(fb, on_remove, &rm);
	int removed[] = {0, 2};
	assert_int_equal(fabric_node_wire(fb, 5, removed, 2, err, sizeof(err)), 0);
	assert_int_equal(rm.n, 1);
	assert_int_equal(rm.rank, 5);
	assert_int_equal(rm.slot, 0);
	assert_int_equal(rm.netid, 3);
	fabric_set_remove_hook(fb, NULL, NULL);
	fabric_flush(fb);
	node_view(fb, 5, view, sizeof(view));
	assert_string_equal(view, "eth1=10.0.32.6/02:4b:00:02:00:05");

	/* fabric-1.3 external: the default route goes through the host. */
	int ext[] = {1};
	fabric_node_down(fb, 5);
	assert_int_equal(fabric_node_wire(fb, 5, ext, 1, err, sizeof(err)), 0);
	assert_int_equal(fabric_node_config(fb, 5, err, sizeof(err)), 0);
	fabric_flush(fb);
	node_view(fb, 5, view, sizeof(view));
	assert_string_equal(view, "eth0=10.0.16.6/02:4b:00:01:00:05");

	int prepared, ports, segments;
	fabric_counts(fb, &prepared, &ports, &segments);
	assert_int_equal(prepared, 1);
	assert_int_equal(ports, 1);
	assert_int_equal(segments, 1); /* d1 only: d2 and d3 went with their last port */

	/* fabric-1.4 release: the namespace is gone, a new one comes clean. */
	fabric_node_release(fb, 5);
	fabric_flush(fb);
	assert_int_equal(fabric_node_netns(fb, 5), -1);
	fabric_counts(fb, &prepared, &ports, &segments);
	assert_int_equal(prepared, 0);
	assert_int_equal(ports, 0);
	assert_int_equal(fabric_node_prepare(fb, 5, err, sizeof(err)), 0);
	node_view(fb, 5, view, sizeof(view));
	assert_string_equal(view, "");

	/* fabric-1.5 a second facility on the same host does not take the
	 * first one's external subnet. */
	struct fabric *fb2 = fabric_new("0000f002", 0, NULL, err, sizeof(err));
	assert_non_null(fb2);
	assert_string_equal(fabric_uplink(fb2), "none");
	fabric_free(fb2);
	assert_true(host_has("10.0.31.254"));

	/* fabric-1.6 stopping removes the uplink from the host. */
	fabric_free(fb);
	assert_false(host_has("10.0.31.254"));
	assert_int_equal(if_nametoindex("kh0000f001"), 0);
}

/* fabric-2.1 node ranks outside the plan are refused with a reason. */
static void
fabric_2_1(void **state)
{
	char err[256] = "";
	struct fabric *fb;
	(void)state;
	if (testns < 0)
		skip();
	fb = fabric_new("0000f003", 0, NULL, err, sizeof(err));
	assert_non_null(fb);
	assert_int_equal(fabric_node_prepare(fb, -1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no node"));
	assert_int_equal(fabric_node_prepare(fb, 1 << 20, err, sizeof(err)), -1);
	assert_int_equal(fabric_node_netns(fb, 1 << 20), -1);
	fabric_free(fb);
}

/* fabric-3.1 namespaces made ahead with eth0 in the external domain: a
 * node wired with the external domain first takes one (and is configured
 * as the plan says), others do not, and the pool refills to its target. */
static void
fabric_3_1(void **state)
{
	char err[256] = "", view[512];
	struct fabric *fb;
	(void)state;
	if (testns < 0)
		skip();
	fb = fabric_new("0000f004", 0, NULL, err, sizeof(err));
	assert_non_null(fb);
	assert_int_equal(fabric_pool_fill(fb, 3, 2, err, sizeof(err)), 1); /* budget spent */
	assert_int_equal(fabric_pool_size(fb), 2);
	assert_int_equal(fabric_pool_fill(fb, 3, 16, err, sizeof(err)), 0);
	assert_int_equal(fabric_pool_size(fb), 3);

	int plain[] = {3};
	assert_int_equal(fabric_node_wire(fb, 10, plain, 1, err, sizeof(err)), 0);
	assert_int_equal(fabric_pool_size(fb), 3);

	int x[] = {1, 3};
	assert_int_equal(fabric_node_prepare(fb, 9, err, sizeof(err)), 0);
	assert_int_equal(fabric_node_wire(fb, 9, x, 2, err, sizeof(err)), 0);
	assert_int_equal(fabric_pool_size(fb), 2);
	assert_int_equal(fabric_node_config(fb, 9, err, sizeof(err)), 0);
	node_view(fb, 9, view, sizeof(view));
	assert_string_equal(view,
			    "eth0=10.0.16.10/02:4b:00:01:00:09 eth1=10.0.48.10/02:4b:00:03:00:09");
	int prepared, ports, segments;
	fabric_counts(fb, &prepared, &ports, &segments);
	assert_int_equal(prepared, 2);
	assert_int_equal(ports, 3);

	/* fabric-3.2 a node that has interfaces already makes its own */
	int x2[] = {1};
	assert_int_equal(fabric_node_wire(fb, 10, x2, 1, err, sizeof(err)), 0);
	assert_int_equal(fabric_pool_size(fb), 2);
	fabric_node_release(fb, 9);
	fabric_node_release(fb, 10);
	fabric_flush(fb);
	assert_int_equal(fabric_pool_fill(fb, 3, 16, err, sizeof(err)), 0);
	assert_int_equal(fabric_pool_size(fb), 3);
	fabric_free(fb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fabric_1_1),
	    cmocka_unit_test(fabric_2_1),
	    cmocka_unit_test(fabric_3_1),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
