/* fabric: one Linux bridge per communication domain in a network namespace
 * that only khd holds, one veth pair per node interface.  Enforcement is
 * the topology itself: a node's frames leave only through its own veths and
 * a bridge forwards only among its own ports, so nothing a node does (its
 * MAC, its addresses, VLAN tags, raw frames) reaches a segment it has no
 * port on.
 *
 * Speed: creating a veth costs the kernel about half a millisecond and a
 * namespace about as much, so every free node gets its namespace and its
 * first interfaces ahead of need (fabric_prepare_some, from khd's idle
 * time); an allocation then only joins ports to bridges.  Interface and
 * bridge indexes are chosen here, so no request ever looks a name up. */
#include "fabric/fabric.h"
#include "allocator/facility.h"
#include "common/log.h"
#include "common/util.h"
#include "fabric/addr.h"
#include "fabric/nl.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FB_PREMADE	2 /* interfaces made ahead: eth0 and eth1 (-x and one more) */
#define FB_MTU_INTERNAL 9000
#define FB_MTU_EXTERNAL 1500
#define FB_UPLINK_INDEX 2	  /* the uplink's end in the fabric namespace */
#define FB_NODE_IF0	16	  /* eth<i> is ifindex 16+i in the node */
#define FB_BRIDGE_BASE	(1 << 22) /* bridge of netid n: ifindex BASE+n */
#define FB_GRAVE	0x4b48	  /* link group of interfaces waiting for deletion */

struct fb_node {
	int netns;	      /* -1: not prepared */
	int running;	      /* configured since boot: new interfaces get addresses */
	int nets[KH_MAX_IFS]; /* netid wired at eth<i>, 0: none */
	unsigned made;	      /* bit i: the veth of eth<i> exists */
};

struct fb_bridge {
	int netid;
	int ports;
};

struct fabric {
	char facid[16];
	char uplink[16];
	int hostns, fabns;
	struct nl host, fab;
	struct fb_node *nodes; /* KH_MAX_NODES */
	struct fb_bridge *br;
	int nbr, capbr;
	int nat;
	int fwd_changed; /* ip_forward was 0 and we set it */
	int nprepared, nports;
	int graves; /* links in the graveyard group */
};

static int
port_index(int rank, int slot)
{
	return 64 + rank * KH_MAX_IFS + slot;
}

static int
bridge_index(int netid)
{
	return FB_BRIDGE_BASE + netid;
}

static int
mtu_of(int netid)
{
	return netid == NETID_EXTERNAL ? FB_MTU_EXTERNAL : FB_MTU_INTERNAL;
}

/* Back to khd's own namespace.  Staying elsewhere would put every later
 * socket of khd in a node's namespace: not survivable. */
static void
leave(struct fabric *fb)
{
	if (setns(fb->hostns, CLONE_NEWNET) < 0)
		fatal("fabric: cannot return to khd's network namespace");
}

static int
enter(struct fabric *fb, int fd, char *err, size_t errlen)
{
	if (setns(fd, CLONE_NEWNET) < 0)
		return seterr(err, errlen, "enter network namespace: %s", strerror(errno));
	(void)fb;
	return 0;
}

/* A new network namespace, held by the returned fd. */
static int
new_netns(struct fabric *fb, char *err, size_t errlen)
{
	int fd;
	if (unshare(CLONE_NEWNET) < 0)
		return seterr(err, errlen, "new network namespace: %s", strerror(errno));
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int e = errno;
	leave(fb);
	if (fd < 0)
		return seterr(err, errlen, "/proc/self/ns/net: %s", strerror(e));
	return fd;
}

static void
write_proc(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t w = write(fd, val, strlen(val));
	(void)w;
	close(fd);
}

static struct fb_bridge *
bridge_find(struct fabric *fb, int netid)
{
	for (int i = 0; i < fb->nbr; i++)
		if (fb->br[i].netid == netid)
			return &fb->br[i];
	return NULL;
}

/* The domain's bridge, made on first use.  Its MAC and MTU are set here
 * so the kernel need not recompute them from all ports at every join. */
static struct fb_bridge *
bridge_get(struct fabric *fb, int netid, char *err, size_t errlen)
{
	struct fb_bridge *b = bridge_find(fb, netid);
	char name[24];
	uint8_t mac[6];

	if (b)
		return b;
	snprintf(name, sizeof(name), "d%d", netid);
	addr_mac(netid, 0xffff, mac);
	struct nl_link l = {.index = bridge_index(netid),
			    .name = name,
			    .kind = "bridge",
			    .mac = mac,
			    .mtu = mtu_of(netid),
			    .master = -1,
			    .up = 1,
			    .peer_netns = -1,
			    .br_nosnoop = 1};
	if (nl_link(&fb->fab, &l, err, errlen) < 0)
		return NULL;
	fb->br = fac_grow(fb->br, &fb->capbr, fb->nbr + 1, sizeof(*fb->br));
	b = &fb->br[fb->nbr++];
	*b = (struct fb_bridge){.netid = netid};
	return b;
}

static void
bridge_unref(struct fabric *fb, int netid)
{
	char why[256];
	struct fb_bridge *b = bridge_find(fb, netid);
	if (b == NULL || --b->ports > 0 || netid == NETID_EXTERNAL)
		return;
	if (nl_link_del(&fb->fab, bridge_index(netid), 0, why, sizeof(why)) < 0)
		log_warnx("fabric: domain %d: %s", netid, why);
	*b = fb->br[--fb->nbr];
}

/* The veth of eth<slot>: "n<rank>e<slot>" here, eth<slot> in the node. */
static int
make_veth(struct fabric *fb, int rank, int slot, char *err, size_t errlen)
{
	struct fb_node *nd = &fb->nodes[rank];
	char name[24], peer[24];
	uint8_t mac[6];

	fabric_flush(fb);
	snprintf(name, sizeof(name), "n%de%d", rank, slot);
	snprintf(peer, sizeof(peer), "eth%d", slot);
	addr_mac(0, rank, mac); /* netid 0: in no domain yet */
	/* Up from the start, so that joining a domain is one change (the
	 * node's end stays down, hence no carrier, until the node boots). */
	struct nl_link l = {.index = port_index(rank, slot),
			    .name = name,
			    .kind = "veth",
			    .mtu = FB_MTU_INTERNAL,
			    .up = 1,
			    .master = -1,
			    .peer_name = peer,
			    .peer_index = FB_NODE_IF0 + slot,
			    .peer_netns = nd->netns,
			    .peer_mtu = FB_MTU_INTERNAL,
			    .peer_mac = mac};
	if (nl_link(&fb->fab, &l, err, errlen) < 0)
		return -1;
	nd->made |= 1u << slot;
	fb->nports++;
	return 0;
}

/* Removing an interface: its port goes down at once (no frame passes
 * after this returns) and into the graveyard group; fabric_flush deletes
 * the whole group in one request.  Deleting a veth waits for an RCU grace
 * period, tens of milliseconds on a small VM: once per release of a
 * thousand nodes, not once per interface. */
static void
drop_veth(struct fabric *fb, int rank, int slot)
{
	struct fb_node *nd = &fb->nodes[rank];
	char why[256];
	if (!(nd->made & (1u << slot)))
		return;
	struct nl_link l = {.index = port_index(rank, slot),
			    .master = -1,
			    .up = -1,
			    .group = FB_GRAVE,
			    .peer_netns = -1};
	if (nl_link(&fb->fab, &l, why, sizeof(why)) < 0 && strstr(why, "No such device") == NULL)
		log_warnx("fabric: node %d eth%d: %s", rank, slot, why);
	nd->made &= ~(1u << slot);
	fb->nports--;
	fb->graves++;
}

void
fabric_flush(struct fabric *fb)
{
	char why[256];
	if (fb == NULL || fb->graves == 0)
		return;
	/* Deleting one end of a pair deletes both: eth<i> leaves the node. */
	if (nl_link_del(&fb->fab, 0, FB_GRAVE, why, sizeof(why)) < 0 &&
	    strstr(why, "No such device") == NULL)
		log_warnx("fabric: %s", why);
	fb->graves = 0;
}

int
fabric_node_prepare(struct fabric *fb, int rank, char *err, size_t errlen)
{
	struct fb_node *nd;

	if (rank < 0 || rank >= KH_MAX_NODES)
		return seterr(err, errlen, "fabric: no node %d", rank);
	nd = &fb->nodes[rank];
	if (nd->netns >= 0)
		return 0;
	if ((nd->netns = new_netns(fb, err, errlen)) < 0)
		return -1;
	for (int i = 0; i < FB_PREMADE; i++)
		if (make_veth(fb, rank, i, err, errlen) < 0) {
			fabric_node_release(fb, rank);
			return -1;
		}
	fb->nprepared++;
	return 0;
}

/* Inside the node's namespace (nl is a socket there): eth<slot> gets the
 * plan's MAC, MTU and addresses; the external domain also routes. */
static int
config_slot(struct nl *nl, int rank, int slot, int netid, char *err, size_t errlen)
{
	char a4[32], a6[64], gw[64];
	uint8_t mac[6];
	int idx = FB_NODE_IF0 + slot;

	/* Quiet at link up: no duplicate detection for the link-local
	 * address and no router solicitations.  Each would be a multicast
	 * frame flooded to every port of the domain, and a thousand nodes
	 * coming up at once would send a million copies. */
	char path[96];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/eth%d/dad_transmits", slot);
	write_proc(path, "0");
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/eth%d/router_solicitations", slot);
	write_proc(path, "0");
	addr_mac(netid, rank, mac);
	struct nl_link l = {.index = idx,
			    .mac = mac,
			    .mtu = mtu_of(netid),
			    .master = -1,
			    .up = 1,
			    .peer_netns = -1};
	if (nl_link(nl, &l, err, errlen) < 0)
		return -1;
	addr_node4(netid, rank, a4, sizeof(a4));
	addr_node6(netid, rank, a6, sizeof(a6));
	if (nl_addr(nl, AF_INET, idx, a4, ADDR_PREFIX4, err, errlen) < 0 ||
	    nl_addr(nl, AF_INET6, idx, a6, 64, err, errlen) < 0)
		return -1;
	if (netid == NETID_EXTERNAL) {
		addr_gateway4(netid, gw, sizeof(gw));
		if (nl_default_route(nl, AF_INET, idx, gw, err, errlen) < 0)
			return -1;
		snprintf(gw, sizeof(gw), "fd4b:6b68:%x::%x", netid, ADDR_GATEWAY_HOST);
		if (nl_default_route(nl, AF_INET6, idx, gw, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* Join eth<slot> of the node to the bridge of netid (making the veth if it
 * is not there). */
static int
join(struct fabric *fb, int rank, int slot, int netid, char *err, size_t errlen)
{
	struct fb_node *nd = &fb->nodes[rank];
	struct fb_bridge *b;

	if (!(nd->made & (1u << slot)) && make_veth(fb, rank, slot, err, errlen) < 0)
		return -1;
	if ((b = bridge_get(fb, netid, err, errlen)) == NULL)
		return -1;
	struct nl_link l = {.index = port_index(rank, slot),
			    .mtu = netid == NETID_EXTERNAL ? FB_MTU_EXTERNAL : 0,
			    .master = bridge_index(netid),
			    .peer_netns = -1};
	if (nl_link(&fb->fab, &l, err, errlen) < 0) {
		if (b->ports == 0) {
			b->ports = 1;
			bridge_unref(fb, netid);
		}
		return -1;
	}
	b->ports++;
	nd->nets[slot] = netid;
	return 0;
}

/* Configure some slots of a running node (mask: which), from inside. */
static int
config_node(struct fabric *fb, int rank, unsigned mask, char *err, size_t errlen)
{
	struct fb_node *nd = &fb->nodes[rank];
	struct nl nl;
	int rc = 0;

	if (enter(fb, nd->netns, err, errlen) < 0)
		return -1;
	if (nl_open(&nl, err, errlen) < 0) {
		leave(fb);
		return -1;
	}
	struct nl_link lo = {.index = 1, .master = -1, .up = 1, .peer_netns = -1};
	rc = nl_link(&nl, &lo, err, errlen);
	for (int i = 0; rc == 0 && i < KH_MAX_IFS; i++)
		if ((mask & (1u << i)) && nd->nets[i])
			rc = config_slot(&nl, rank, i, nd->nets[i], err, errlen);
	nl_close(&nl);
	leave(fb);
	return rc;
}

int
fabric_node_wire(struct fabric *fb, int rank, const int *netids, int n, char *err, size_t errlen)
{
	struct fb_node *nd;
	unsigned fresh = 0;

	if (fabric_node_prepare(fb, rank, err, errlen) < 0)
		return -1;
	nd = &fb->nodes[rank];
	for (int i = 0; i < KH_MAX_IFS; i++) {
		int want = i < n ? netids[i] : 0, have = nd->nets[i];
		if (want == have)
			continue;
		if (have) {
			/* Leaving a domain removes the interface: its traffic
			 * stops with it. */
			drop_veth(fb, rank, i);
			nd->nets[i] = 0;
			bridge_unref(fb, have);
		}
		if (want) {
			if (join(fb, rank, i, want, err, errlen) < 0)
				return -1;
			fresh |= 1u << i;
		}
	}
	if (nd->running && fresh)
		return config_node(fb, rank, fresh, err, errlen);
	return 0;
}

int
fabric_node_config(struct fabric *fb, int rank, char *err, size_t errlen)
{
	struct fb_node *nd;
	char why[256];
	unsigned mask = 0;

	if (fabric_node_prepare(fb, rank, err, errlen) < 0)
		return -1;
	nd = &fb->nodes[rank];
	for (int i = 0; i < KH_MAX_IFS; i++) {
		if (nd->nets[i])
			mask |= 1u << i;
		else
			drop_veth(fb, rank, i); /* a spare: the node sees only its domains */
	}
	if (config_node(fb, rank, mask, why, sizeof(why)) < 0) {
		/* Software of an earlier boot may have deleted an interface
		 * (root in a node may): make the node's wiring afresh. */
		int nets[KH_MAX_IFS];
		memcpy(nets, nd->nets, sizeof(nets));
		for (int i = 0; i < KH_MAX_IFS; i++)
			if (nd->nets[i]) {
				drop_veth(fb, rank, i);
				bridge_unref(fb, nd->nets[i]);
				nd->nets[i] = 0;
			}
		if (fabric_node_wire(fb, rank, nets, KH_MAX_IFS, err, errlen) < 0 ||
		    config_node(fb, rank, mask, err, errlen) < 0)
			return -1;
	}
	nd->running = 1;
	return 0;
}

void
fabric_node_down(struct fabric *fb, int rank)
{
	if (rank >= 0 && rank < KH_MAX_NODES)
		fb->nodes[rank].running = 0;
}

void
fabric_node_release(struct fabric *fb, int rank)
{
	struct fb_node *nd;
	if (rank < 0 || rank >= KH_MAX_NODES)
		return;
	nd = &fb->nodes[rank];
	for (int i = 0; i < KH_MAX_IFS; i++) {
		drop_veth(fb, rank, i);
		if (nd->nets[i])
			bridge_unref(fb, nd->nets[i]);
		nd->nets[i] = 0;
	}
	if (nd->netns >= 0) {
		close(nd->netns);
		fb->nprepared--;
	}
	*nd = (struct fb_node){.netns = -1};
}

int
fabric_node_netns(struct fabric *fb, int rank)
{
	if (rank < 0 || rank >= KH_MAX_NODES)
		return -1;
	return fb->nodes[rank].netns;
}

const char *
fabric_uplink(const struct fabric *fb)
{
	return fb->uplink;
}

void
fabric_counts(const struct fabric *fb, int *prepared, int *ports, int *bridges)
{
	*prepared = fb->nprepared;
	*ports = fb->nports;
	*bridges = fb->nbr;
}

/* nftables through its library (the kernel's netlink API underneath):
 * one table of our own, replaced as a whole. */
static int
nft(const char *cmds, char *err, size_t errlen)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	int rc;
	if (ctx == NULL)
		return seterr(err, errlen, "nftables: no context");
	nft_ctx_buffer_error(ctx);
	rc = nft_run_cmd_from_buffer(ctx, cmds);
	if (rc != 0) {
		const char *e = nft_ctx_get_error_buffer(ctx);
		seterr(err, errlen, "nftables: %.*s", (int)strcspn(e ? e : "", "\n"), e ? e : "");
	}
	nft_ctx_free(ctx);
	return rc == 0 ? 0 : -1;
}

static int
nat_on(struct fabric *fb, char *err, size_t errlen)
{
	char cmds[1024], net[32], val[8] = "";
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t r = read(fd, val, sizeof(val) - 1);
		val[r > 0 ? r : 0] = 0;
		close(fd);
	}
	addr_net4(NETID_EXTERNAL, net, sizeof(net));
	snprintf(cmds, sizeof(cmds),
		 "add table ip %s\n"
		 "delete table ip %s\n"
		 "table ip %s {\n"
		 " chain post {\n"
		 "  type nat hook postrouting priority srcnat; policy accept;\n"
		 "  ip saddr %s oifname != \"%s\" masquerade\n"
		 " }\n"
		 "}\n",
		 fb->uplink, fb->uplink, fb->uplink, net, fb->uplink);
	if (nft(cmds, err, errlen) < 0)
		return -1;
	if (val[0] == '0') {
		write_proc("/proc/sys/net/ipv4/ip_forward", "1");
		fb->fwd_changed = 1;
	}
	return 0;
}

static void
nat_off(struct fabric *fb)
{
	char cmds[256], why[256];
	snprintf(cmds, sizeof(cmds), "add table ip %s\ndelete table ip %s\n", fb->uplink,
		 fb->uplink);
	if (nft(cmds, why, sizeof(why)) < 0)
		log_warnx("fabric: %s", why);
	if (fb->fwd_changed)
		write_proc("/proc/sys/net/ipv4/ip_forward", "0");
}

/* Is the gateway address already on one of the host's interfaces?  Every
 * facility's plan gives its external domain the same subnet; two uplinks
 * with it would split the host's routes between two facilities. */
static int
gateway_taken(const char *a4, char *name, size_t len)
{
	struct ifaddrs *ifa, *p;
	struct in_addr want;
	int found = 0;

	if (inet_pton(AF_INET, a4, &want) != 1 || getifaddrs(&ifa) < 0)
		return 0;
	for (p = ifa; p && !found; p = p->ifa_next)
		if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr.s_addr == want.s_addr) {
			snprintf(name, len, "%s", p->ifa_name);
			found = 1;
		}
	freeifaddrs(ifa);
	return found;
}

/* The external domain's bridge and the host's uplink into it. */
static int
uplink(struct fabric *fb, char *err, size_t errlen)
{
	char a4[32], a6[64], other[IF_NAMESIZE + 1];
	int idx;

	/* One left by a khd that was killed (its fabric dies with it, but the
	 * kernel may not have finished yet). */
	if ((idx = nl_link_index(&fb->host, fb->uplink)) > 0)
		nl_link_del(&fb->host, idx, 0, err, errlen);
	if (bridge_get(fb, NETID_EXTERNAL, err, errlen) == NULL)
		return -1;
	addr_gateway4(NETID_EXTERNAL, a4, sizeof(a4));
	if (gateway_taken(a4, other, sizeof(other)))
		return seterr(err, errlen,
			      "the host already has %s on %s (another facility's uplink?): "
			      "this facility's external domain is not reachable from the host",
			      a4, other);
	struct nl_link l = {.name = fb->uplink,
			    .kind = "veth",
			    .mtu = FB_MTU_EXTERNAL,
			    .master = -1,
			    .up = 1,
			    .peer_name = "up0",
			    .peer_index = FB_UPLINK_INDEX,
			    .peer_netns = fb->fabns,
			    .peer_mtu = FB_MTU_EXTERNAL};
	if (nl_link(&fb->host, &l, err, errlen) < 0)
		return -1;
	struct nl_link port = {.index = FB_UPLINK_INDEX,
			       .master = bridge_index(NETID_EXTERNAL),
			       .up = 1,
			       .peer_netns = -1};
	if (nl_link(&fb->fab, &port, err, errlen) < 0)
		return -1;
	if ((idx = nl_link_index(&fb->host, fb->uplink)) < 0)
		return seterr(err, errlen, "%s: %s", fb->uplink, strerror(-idx));
	snprintf(a6, sizeof(a6), "fd4b:6b68:%x::%x", NETID_EXTERNAL, ADDR_GATEWAY_HOST);
	if (nl_addr(&fb->host, AF_INET, idx, a4, ADDR_PREFIX4, err, errlen) < 0 ||
	    nl_addr(&fb->host, AF_INET6, idx, a6, 64, err, errlen) < 0)
		return -1;
	return 0;
}

struct fabric *
fabric_new(const char *facid, int nat, char *err, size_t errlen)
{
	struct fabric *fb = calloc(1, sizeof(*fb));
	char why[256];

	if (fb == NULL || (fb->nodes = calloc(KH_MAX_NODES, sizeof(*fb->nodes))) == NULL)
		fatal("fabric");
	for (int i = 0; i < KH_MAX_NODES; i++)
		fb->nodes[i].netns = -1;
	fb->fabns = -1;
	fb->nat = nat;
	snprintf(fb->facid, sizeof(fb->facid), "%s", facid);
	snprintf(fb->uplink, sizeof(fb->uplink), "kh%s", facid);
	if ((fb->hostns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) {
		seterr(err, errlen, "/proc/self/ns/net: %s", strerror(errno));
		goto fail;
	}
	if (nl_open(&fb->host, err, errlen) < 0)
		goto fail;
	/* The fabric's namespace: no addresses, no forwarding, no IPv6 of its
	 * own (a bridge would otherwise speak into every domain), bridged
	 * frames not passed to a firewall. */
	if (unshare(CLONE_NEWNET) < 0) {
		seterr(err, errlen, "fabric namespace: %s", strerror(errno));
		goto fail;
	}
	fb->fabns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	write_proc("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	write_proc("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	write_proc("/proc/sys/net/bridge/bridge-nf-call-iptables", "0");
	write_proc("/proc/sys/net/bridge/bridge-nf-call-ip6tables", "0");
	write_proc("/proc/sys/net/bridge/bridge-nf-call-arptables", "0");
	int rc = nl_open(&fb->fab, err, errlen);
	/* MLD reports are for multicast routers and snooping switches; the
	 * fabric has neither, so a bridge floods every report to every port
	 * of the domain.  A thousand nodes booting join a few groups each:
	 * millions of copies, seconds of softirq.  They stop at the bridge. */
	if (rc == 0 && nft("table bridge kh {\n"
			   " chain pre {\n"
			   "  type filter hook prerouting priority 0; policy accept;\n"
			   "  icmpv6 type { mld-listener-report, mld-listener-done, "
			   "mld2-listener-report } drop\n"
			   " }\n"
			   "}\n",
			   why, sizeof(why)) < 0)
		log_warnx("fabric: MLD reports will be flooded: %s", why);
	leave(fb);
	if (rc < 0 || fb->fabns < 0)
		goto fail;
	if (uplink(fb, why, sizeof(why)) < 0) {
		/* The domains work; only the host's way into the external one
		 * is missing. */
		log_warnx("fabric: %s", why);
		snprintf(fb->uplink, sizeof(fb->uplink), "none");
		fb->nat = 0;
	} else if (nat && nat_on(fb, why, sizeof(why)) < 0) {
		/* Nodes still reach the host and are reached from it. */
		log_warnx("fabric: no NAT beyond the host: %s", why);
		fb->nat = 0;
	}
	return fb;
fail:
	fabric_free(fb);
	return NULL;
}

void
fabric_free(struct fabric *fb)
{
	char why[256];
	int idx;

	if (fb == NULL)
		return;
	for (int i = 0; i < KH_MAX_NODES; i++)
		if (fb->nodes[i].netns >= 0)
			close(fb->nodes[i].netns);
	if (fb->host.s && strcmp(fb->uplink, "none") != 0) {
		if (fb->nat)
			nat_off(fb);
		/* The uplink now, so its name and address are free when we
		 * return; the rest goes with the fabric's namespace. */
		if ((idx = nl_link_index(&fb->host, fb->uplink)) > 0)
			nl_link_del(&fb->host, idx, 0, why, sizeof(why));
	}
	nl_close(&fb->fab);
	nl_close(&fb->host);
	if (fb->fabns >= 0)
		close(fb->fabns);
	if (fb->hostns >= 0)
		close(fb->hostns);
	free(fb->br);
	free(fb->nodes);
	free(fb);
}
