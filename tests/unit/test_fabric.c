/* fabric-*: the fabric on this host's real kernel (root only), inside a
 * network namespace of the test's own, which the fabric takes for "the
 * host": nodes get namespaces ahead of need, wiring puts the plan's
 * interfaces in a node, addnet/rmnet change a running node (with the last
 * counters of a removed interface handed to the meter), release leaves
 * nothing, and a second facility does not take the first one's uplink.
 * fabric-4: domains spanning hosts, as far as one host shows it: bad input
 * refused with a reason and nothing made, the VXLAN socket on the host's
 * underlay while a domain spans, and gone after unspan, free, or a
 * takeover of a left fabric (tests/e2e/fabric_hosts.sh has three hosts). */
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
#include "fabric/nl.h"

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

/* Is a UDP socket bound to port in the test's namespace (the host's)? */
static int
udp_bound(int port)
{
	char line[512];
	unsigned p;
	int found = 0;
	FILE *f = fopen("/proc/net/udp", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " %*u: %*x:%x", &p) == 1 && (int)p == port)
			found = 1;
	fclose(f);
	return found;
}

/* An underlay in the test's namespace: a veth "ul0" (MTU mtu, up) with
 * 192.0.2.1/24. */
static void
make_underlay(int mtu)
{
	char err[256];
	struct nl nl;
	assert_int_equal(nl_open(&nl, err, sizeof(err)), 0);
	struct nl_link l = {.name = "ul0",
			    .kind = "veth",
			    .mtu = mtu,
			    .master = -1,
			    .up = 1,
			    .peer_name = "ul0p",
			    .peer_netns = -1,
			    .peer_mtu = mtu};
	assert_int_equal(nl_link(&nl, &l, err, sizeof(err)), 0);
	int idx = nl_link_index(&nl, "ul0");
	assert_true(idx > 0);
	assert_int_equal(nl_addr(&nl, AF_INET, idx, "192.0.2.1", 24, err, sizeof(err)), 0);
	nl_close(&nl);
}

/* fabric-4.1 spanning: refused without an underlay, with a bad one, with
 * bad peers, and for a domain whose MTU the underlay cannot carry (naming
 * both MTUs); nothing is made by a refusal. */
static void
fabric_4_1(void **state)
{
	char err[256] = "";
	struct fabric *fb;
	const char *peer[] = {"192.0.2.2"};
	(void)state;
	if (testns < 0)
		skip();
	make_underlay(1600);
	fb = fabric_new("0000f005", 0, NULL, err, sizeof(err));
	assert_non_null(fb);
	int prepared, ports, segments;
	fabric_counts(fb, &prepared, &ports, &segments);
	assert_int_equal(fabric_span(fb, 1, peer, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no underlay"));
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.300", 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an IPv4 address"));
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.9", 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "none of the host's interfaces"));
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.1", 70000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a UDP port"));
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.1", 0, err, sizeof(err)), 0);

	assert_int_equal(fabric_span(fb, 3, peer, 1, err, sizeof(err)), -1);
	assert_string_equal(err, "domain 3 has MTU 9000, which needs an underlay MTU of at least "
				 "9050 across hosts; the underlay ul0 has MTU 1600");
	const char *self[] = {"192.0.2.1"}, *bad[] = {"192.0.2.2", "nohost"},
		   *twice[] = {"192.0.2.2", "192.0.2.2"};
	assert_int_equal(fabric_span(fb, 1, self, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "own underlay address"));
	assert_int_equal(fabric_span(fb, 1, bad, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'nohost': not an IPv4 address"));
	assert_int_equal(fabric_span(fb, 1, twice, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "named twice"));
	assert_int_equal(fabric_span(fb, 0, peer, 1, err, sizeof(err)), -1);
	assert_int_equal(fabric_span(fb, 1 << 24, peer, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot span"));
	int r[] = {5};
	assert_int_equal(fabric_span_nodes(fb, 1, r, peer, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "spans no other host"));
	int p2, po2, s2;
	fabric_counts(fb, &p2, &po2, &s2);
	assert_int_equal(s2, segments);
	assert_int_equal(fabric_spans(fb, 1), 0);
	assert_int_equal(fabric_spans(fb, 3), 0);
	assert_false(udp_bound(4789));
	fabric_free(fb);
}

/* fabric-4.2 the external domain (MTU 1500) spans over the 1600 underlay:
 * the VXLAN socket is on the host's side; spanning again is idempotent,
 * peers come and go, remote nodes are placed only on spanned hosts;
 * unspan and free leave no socket. */
static void
fabric_4_2(void **state)
{
	char err[256] = "";
	struct fabric *fb;
	const char *one[] = {"192.0.2.2"}, *two[] = {"192.0.2.2", "192.0.2.3"};
	(void)state;
	if (testns < 0)
		skip();
	fb = fabric_new("0000f006", 0, NULL, err, sizeof(err));
	assert_non_null(fb);
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.1", 0, err, sizeof(err)), 0);
	assert_int_equal(fabric_span(fb, 1, one, 1, err, sizeof(err)), 0);
	assert_true(udp_bound(4789));
	assert_int_equal(fabric_span(fb, 1, one, 1, err, sizeof(err)), 0);
	assert_int_equal(fabric_spans(fb, 1), 1);
	assert_int_equal(fabric_span(fb, 1, two, 2, err, sizeof(err)), 0);
	assert_int_equal(fabric_spans(fb, 1), 2);
	int r[] = {5, 6};
	const char *on[] = {"192.0.2.3", "192.0.2.4"};
	assert_int_equal(fabric_span_nodes(fb, 1, r, on, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a host domain 1 spans"));
	assert_int_equal(fabric_span_nodes(fb, 1, r, two, 2, err, sizeof(err)), 0);
	assert_int_equal(fabric_span(fb, 1, one, 1, err, sizeof(err)), 0);
	assert_int_equal(fabric_spans(fb, 1), 1);
	/* the underlay stays while domains span over it */
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.1", 4790, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unspan"));
	assert_int_equal(fabric_span(fb, 1, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(fabric_spans(fb, 1), 0);
	assert_false(udp_bound(4789));
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.1", 4790, err, sizeof(err)), 0);
	assert_int_equal(fabric_span(fb, 1, one, 1, err, sizeof(err)), 0);
	assert_true(udp_bound(4790));
	fabric_free(fb);
	assert_false(udp_bound(4790));
}

/* fabric-4.3 a fabric left to the next khd keeps its span (the socket
 * stays); the next one takes the fabric over and sweeps the dead one's
 * spans, to span again once it knows the hosts. */
static void
fabric_4_3(void **state)
{
	char err[256] = "", pin[64];
	struct fabric *fb;
	const char *one[] = {"192.0.2.2"};
	(void)state;
	if (testns < 0)
		skip();
	snprintf(pin, sizeof(pin), "/tmp/kh-test-fabric-pin.%d", (int)getpid());
	fb = fabric_new("0000f007", 0, pin, err, sizeof(err));
	assert_non_null(fb);
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.1", 0, err, sizeof(err)), 0);
	assert_int_equal(fabric_span(fb, 1, one, 1, err, sizeof(err)), 0);
	fabric_leave(fb);
	assert_true(udp_bound(4789));
	fb = fabric_adopt("0000f007", 0, pin, err, sizeof(err));
	assert_non_null(fb);
	assert_false(udp_bound(4789));
	assert_int_equal(fabric_spans(fb, 1), 0);
	assert_int_equal(fabric_set_underlay(fb, "192.0.2.1", 0, err, sizeof(err)), 0);
	assert_int_equal(fabric_span(fb, 1, one, 1, err, sizeof(err)), 0);
	assert_true(udp_bound(4789));
	fabric_free(fb);
	assert_false(udp_bound(4789));
	assert_int_equal(access(pin, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fabric_1_1), cmocka_unit_test(fabric_2_1),
	    cmocka_unit_test(fabric_3_1), cmocka_unit_test(fabric_4_1),
	    cmocka_unit_test(fabric_4_2), cmocka_unit_test(fabric_4_3),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
