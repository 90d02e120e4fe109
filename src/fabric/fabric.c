/* fabric: one Ethernet segment per communication domain, below the nodes.
 * A segment is a macvlan "port": a veth pair "d<netid>"/"d<netid>x" in a
 * network namespace that only khd holds, and one macvlan in bridge mode on
 * "d<netid>" per node interface, living in the node's own namespace as
 * eth<i>.  The kernel forwards between the macvlans of one lower device by
 * destination MAC (broadcast and multicast to those that listen) and sends
 * everything else out of the lower, into the veth's other end, where it
 * dies.  Enforcement is the topology: a node's frames enter only the
 * segments it has a macvlan on; nothing a node does (its MAC, addresses,
 * VLAN tags, raw frames, more macvlans stacked on its own) reaches another.
 *
 * Why macvlans and not a Linux bridge per domain: a frame crosses one
 * device instead of two veths and a bridge, and joining a segment costs
 * the same whatever its size, where a bridge's join walks all its ports
 * (docs/fabric.md has the figures).  Interface and segment indexes are
 * chosen here, so no request looks a name up; a free node's namespace is
 * made ahead of need in khd's idle time.
 *
 * A vm node's interfaces are macvtaps instead (a macvlan whose frames go to
 * a character device, QEMU's virtio-net backend), on the same segments,
 * with the same MACs and indexes: enforcement, the address plan and the
 * counters are the same.  The guest configures its own addresses. */
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
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The new mount API (Linux 5.2), spelt out: glibc's and the kernel's
 * headers for it do not mix. */
#ifndef SYS_fsopen
#define SYS_fsopen   430
#define SYS_fsconfig 431
#define SYS_fsmount  432
#endif
#define FB_FSOPEN_CLOEXEC      0x1
#define FB_FSCONFIG_CMD_CREATE 6
#define FB_FSMOUNT_CLOEXEC     0x1

#define FB_MTU_INTERNAL 9000
#define FB_MTU_EXTERNAL 1500
#define FB_NODE_IF0	16	  /* eth<i> is ifindex 16+i in the node */
#define FB_SEG_BASE	(1 << 22) /* segment of netid n: lower ifindex BASE+n */
#define FB_SINK_BASE	(1 << 21) /* and its other end SINK+n */
#define FB_GRAVE	0x4b48	  /* link group of interfaces waiting for deletion */
#define FB_VX_BASE	(FB_SEG_BASE + FB_SINK_BASE) /* a spanning domain's VXLAN device */
#define FB_BR_BASE	(1 << 23)		     /* and the bridge joining it to the sink */
#define FB_NETID_SPAN	FB_SINK_BASE		     /* netids below this can span */
#define FB_VXLAN_PORT	4789			     /* IANA's */
#define FB_VXLAN_OVER	50 /* outer Ethernet, IPv4, UDP and VXLAN headers */
#define FB_MAX_PEERS	1024

struct fb_node {
	int netns;		    /* -1: not prepared */
	int nsid;		    /* its id in the fabric's namespace */
	int running;		    /* configured since boot: new interfaces get addresses */
	int used;		    /* a node has run in its namespace since it was assigned */
	int nets[KH_MAX_IFS];	    /* netid wired at eth<i>, 0: none */
	unsigned made;		    /* bit i: eth<i> exists */
	unsigned graves;	    /* bit i: eth<i> removed, deleted at the next flush */
	int tap;		    /* a vm node: its interfaces are macvtaps */
	int sysfs;		    /* vm: a sysfs of its namespace (detached mount), or -1 */
	uint8_t mac[KH_MAX_IFS][6]; /* the MAC eth<i> holds */
};

struct fb_seg {
	int netid;
	int ports;
};

/* A domain spanning other hosts: its VXLAN device's static forwarding
 * entries, as made: the all-zeros MAC to every peer, and the plan's MAC of
 * each remote node whose host is known to that host alone. */
struct fb_remote {
	int rank;
	uint32_t host; /* IPv4, network order */
};
struct fb_span {
	int netid;
	uint32_t *peers;
	int npeers;
	struct fb_remote *rem;
	int nrem;
};

/* A namespace made ahead with eth0 already on the external segment (down,
 * throwaway MAC): what `khget -x` gives a node without making a device. */
struct fb_spare {
	int netns, nsid;
};

struct fabric {
	char pin[4096]; /* where its namespace is pinned ("": not) */
	char facid[16];
	char uplink[16];
	int hostns, fabns;
	struct nl host, fab;
	struct fb_node *nodes; /* KH_MAX_NODES */
	struct fb_seg *seg;
	int nseg, capseg;
	int nat;
	int fwd_changed; /* ip_forward was 0 and we set it */
	int nprepared, nports;
	struct fb_spare *xpool; /* KH_MAX_NODES */
	int nx;
	struct fb_spare *ppool; /* empty namespaces given back by take_spare */
	int np;
	int adopted;	 /* its namespace is a dead khd's: segments may be there already */
	int graves;	 /* nodes with interfaces in their graveyard group */
	uint32_t macseq; /* throwaway MACs handed out */
	int devdir;	 /* a tmpfs of our own (detached mount) for device nodes, or -1 */
	int nsidseq;	 /* namespace ids handed out */
	void (*on_remove)(void *, int, const struct fabric_ifstats *);
	void *remove_arg;
	int (*ns_make)(void *, char *, size_t); /* nodes' namespaces; NULL: unshare */
	void (*ns_drop)(void *, int);
	void *ns_arg;
	/* across hosts: the underlay (IPv4 in the host's namespace, network
	 * order; 0: none), the interface holding it and its MTU */
	uint32_t ul_addr;
	int ul_port, ul_mtu;
	char ul_if[IF_NAMESIZE + 1];
	struct fb_span *spans;
	int nspan, capspan;
	int guard; /* the VXLAN guard table is there */
};

static int
seg_index(int netid)
{
	return FB_SEG_BASE + netid;
}

static int
mtu_of(int netid)
{
	return netid == NETID_EXTERNAL ? FB_MTU_EXTERNAL : FB_MTU_INTERNAL;
}

/* A MAC no plan gives (02:... are the plan's): an interface has one from
 * its creation until its node boots, and again once removed, so the plan's
 * MAC is never held by a device on its way out, nor by a squatter's
 * interface at creation time. */
static void
throwaway_mac(struct fabric *fb, uint8_t mac[6])
{
	uint32_t n = ++fb->macseq;
	mac[0] = 0x06;
	mac[1] = 0x4b;
	mac[2] = (uint8_t)(n >> 24);
	mac[3] = (uint8_t)(n >> 16);
	mac[4] = (uint8_t)(n >> 8);
	mac[5] = (uint8_t)n;
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

/* A node's network namespace goes. */
static void
close_netns(struct fabric *fb, int fd)
{
	if (fb->ns_drop != NULL)
		fb->ns_drop(fb->ns_arg, fd);
	close(fd);
}

void
fabric_set_netns_maker(struct fabric *fb, int (*make)(void *, char *, size_t),
		       void (*drop)(void *, int), void *arg)
{
	fb->ns_make = make;
	fb->ns_drop = drop;
	fb->ns_arg = arg;
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

/* A new network namespace, held by the returned fd. */
static int
new_netns(struct fabric *fb, char *err, size_t errlen)
{
	int fd;
	if (fb->ns_make != NULL)
		return fb->ns_make(fb->ns_arg, err, errlen);
	if (unshare(CLONE_NEWNET) < 0)
		return seterr(err, errlen, "new network namespace: %s", strerror(errno));
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int e = errno;
	leave(fb);
	if (fd < 0)
		return seterr(err, errlen, "/proc/self/ns/net: %s", strerror(e));
	return fd;
}

/* A new network namespace with an id in the fabric's (ids are never
 * reused: a released namespace may outlive its fd a while, with its id). */
static int
new_netns_id(struct fabric *fb, int *nsid, char *err, size_t errlen)
{
	int fd = new_netns(fb, err, errlen), rc;
	if (fd < 0)
		return -1;
	/* In a fabric taken over from a dead khd, namespaces of its that the
	 * kernel has not torn down yet may still hold ids past ours. */
	for (int tries = 0;; tries++) {
		if (++fb->nsidseq <= 0)
			fb->nsidseq = 1;
		*nsid = fb->nsidseq;
		rc = nl_nsid_set(&fb->fab, fd, *nsid, err, errlen);
		if (rc != -EEXIST || !fb->adopted || tries == 4096)
			break;
	}
	if (rc < 0) {
		close_netns(fb, fd);
		return -1;
	}
	/* Quiet at link up (config_slot): the interfaces made in it later
	 * take the namespace's defaults, set now, ahead of need.  By path,
	 * the kernel finds a namespace's sysctl among those of every other
	 * namespace of the host (one hash chain per name): a thousand nodes
	 * made that walk at boot cost more than the rest of their wiring. */
	if (enter(fb, fd, err, errlen) == 0) {
		write_proc("/proc/sys/net/ipv6/conf/default/dad_transmits", "0");
		write_proc("/proc/sys/net/ipv6/conf/default/router_solicitations", "0");
		leave(fb);
	}
	return fd;
}

static struct fb_seg *
seg_find(struct fabric *fb, int netid)
{
	for (int i = 0; i < fb->nseg; i++)
		if (fb->seg[i].netid == netid)
			return &fb->seg[i];
	return NULL;
}

/* The domain's segment, made on first use. */
static struct fb_seg *
seg_get(struct fabric *fb, int netid, char *err, size_t errlen)
{
	struct fb_seg *b = seg_find(fb, netid);
	char name[24], sink[24];
	uint8_t mac[6];

	if (b)
		return b;
	snprintf(name, sizeof(name), "d%d", netid);
	snprintf(sink, sizeof(sink), "d%dx", netid);
	addr_mac(netid, 0xfffe, mac);
	/* A dead khd's segment, still carrying its running nodes. */
	if (fb->adopted && nl_link_index(&fb->fab, name) == seg_index(netid)) {
		fb->seg = fac_grow(fb->seg, &fb->capseg, fb->nseg + 1, sizeof(*fb->seg));
		b = &fb->seg[fb->nseg++];
		*b = (struct fb_seg){.netid = netid};
		return b;
	}
	/* Both ends up: a macvlan has carrier only while its lower has. */
	struct nl_link l = {.index = seg_index(netid),
			    .name = name,
			    .kind = "veth",
			    .mac = mac,
			    .mtu = mtu_of(netid),
			    .master = -1,
			    .up = 1,
			    .peer_name = sink,
			    .peer_index = FB_SINK_BASE + netid,
			    .peer_netns = -1,
			    .peer_mtu = mtu_of(netid)};
	if (nl_link(&fb->fab, &l, err, errlen) < 0)
		return NULL;
	struct nl_link up = {
	    .index = FB_SINK_BASE + netid, .master = -1, .up = 1, .peer_netns = -1};
	if (nl_link(&fb->fab, &up, err, errlen) < 0) {
		nl_link_del(&fb->fab, seg_index(netid), 0, err, errlen);
		return NULL;
	}
	fb->seg = fac_grow(fb->seg, &fb->capseg, fb->nseg + 1, sizeof(*fb->seg));
	b = &fb->seg[fb->nseg++];
	*b = (struct fb_seg){.netid = netid};
	return b;
}

static void
seg_unref(struct fabric *fb, int netid)
{
	char why[256];
	struct fb_seg *b = seg_find(fb, netid);
	if (b == NULL || --b->ports > 0 || netid == NETID_EXTERNAL)
		return;
	/* Deleting the lower deletes whatever is still stacked on it (the
	 * macvlans of released nodes whose namespaces the kernel has not
	 * finished with). */
	if (nl_link_del(&fb->fab, seg_index(netid), 0, why, sizeof(why)) < 0)
		log_warnx("fabric: domain %d: %s", netid, why);
	*b = fb->seg[--fb->nseg];
}

/* Counters of eth<slot> interfaces, from their indexes; the domain when
 * nd (the node's wiring) is known, else 0. */
struct slots_arg {
	const struct fb_node *nd;
	struct fabric_ifstats *out;
	int n, max;
};

static void
slots_cb(void *arg, const struct nl_stats *st)
{
	struct slots_arg *sa = arg;
	int slot = st->index - FB_NODE_IF0;
	if (slot < 0 || slot >= KH_MAX_IFS || sa->n >= sa->max)
		return;
	sa->out[sa->n++] =
	    (struct fabric_ifstats){.slot = slot,
				    .netid = sa->nd ? (uint32_t)sa->nd->nets[slot] : 0,
				    .rx_bytes = st->rx_bytes,
				    .tx_bytes = st->tx_bytes,
				    .rx_packets = st->rx_packets,
				    .tx_packets = st->tx_packets};
}

int
fabric_node_counters(struct fabric *fb, int rank, struct fabric_ifstats *out, int max)
{
	struct slots_arg sa;
	if (fb == NULL || rank < 0 || rank >= KH_MAX_NODES)
		return -1;
	sa = (struct slots_arg){.nd = &fb->nodes[rank], .out = out, .max = max};
	if (sa.nd->netns < 0 || sa.nd->made == 0)
		return 0;
	/* One request per interface we made: a dump would also describe lo
	 * and whatever the node made, at about twice the cost. */
	for (int i = 0; i < KH_MAX_IFS; i++) {
		if (!(sa.nd->made & (1u << i)))
			continue;
		int rc = nl_link_stats_of(&fb->fab, sa.nd->nsid, FB_NODE_IF0 + i, slots_cb, &sa);
		if (rc < 0 && rc != -ENODEV) /* gone: its root deleted it */
			return -1;
	}
	return sa.n;
}

int
fabric_netns_counters(int netns, struct fabric_ifstats *out, int max)
{
	struct slots_arg sa = {.out = out, .max = max};
	struct nl nl;
	char why[256];
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), rc;

	if (self < 0)
		return -1;
	if (setns(netns, CLONE_NEWNET) < 0) {
		close(self);
		return -1;
	}
	rc = nl_open(&nl, why, sizeof(why));
	if (setns(self, CLONE_NEWNET) < 0)
		fatal("fabric: cannot return to khd's network namespace");
	close(self);
	if (rc < 0)
		return -1;
	rc = nl_link_stats(&nl, 0, slots_cb, &sa);
	nl_close(&nl);
	return rc < 0 ? -1 : sa.n;
}

void
fabric_unpin(const char *pin)
{
	if (pin == NULL || pin[0] == 0)
		return;
	umount2(pin, MNT_DETACH);
	unlink(pin);
}

void
fabric_set_remove_hook(struct fabric *fb, void (*fn)(void *, int, const struct fabric_ifstats *),
		       void *arg)
{
	fb->on_remove = fn;
	fb->remove_arg = arg;
}

/* eth<slot>, a macvlan on netid's segment, made straight in the namespace
 * netns (moving a device between namespaces waits for the kernel's RCU;
 * making it there does not).  Down until the node boots. */
static int
make_if_in(struct fabric *fb, int netns, int slot, int netid, int tap, uint8_t mac[6], char *err,
	   size_t errlen)
{
	char name[24];

	snprintf(name, sizeof(name), "eth%d", slot);
	throwaway_mac(fb, mac);
	struct nl_link l = {.index = FB_NODE_IF0 + slot,
			    .name = name,
			    .kind = tap ? "macvtap" : "macvlan",
			    .link = seg_index(netid),
			    .macvlan_mode = MACVLAN_MODE_BRIDGE,
			    .mac = mac,
			    .mtu = mtu_of(netid),
			    .master = -1,
			    .peer_netns = -1,
			    .in_netns = 1,
			    .netns = netns};
	return nl_link(&fb->fab, &l, err, errlen);
}

static int
make_if(struct fabric *fb, int rank, int slot, int netid, char *err, size_t errlen)
{
	struct fb_node *nd = &fb->nodes[rank];

	if (nd->graves & (1u << slot))
		fabric_flush(fb); /* the removed eth<slot> still holds the name */
	if (make_if_in(fb, nd->netns, slot, netid, nd->tap, nd->mac[slot], err, errlen) < 0)
		return -1;
	nd->made |= 1u << slot;
	fb->nports++;
	return 0;
}

/* A route socket in node rank's namespace (the socket keeps it after we
 * return to ours).  Changes to a node's links go through one: this kernel
 * aims only link dumps, not changes, at another namespace by id. */
static int
node_nl(struct fabric *fb, int rank, struct nl *nl, char *err, size_t errlen)
{
	if (enter(fb, fb->nodes[rank].netns, err, errlen) < 0)
		return -1;
	int rc = nl_open(nl, err, errlen);
	leave(fb);
	return rc;
}

/* Removing interfaces (mask: which slots): each goes down at once (no
 * frame passes after this returns) with a throwaway MAC and, when grave,
 * into the graveyard group for fabric_flush to delete.  Deleting a device
 * waits for an RCU grace period, tens of milliseconds on a small VM, so
 * that waits for the end of the request.  A released node's are deleted
 * by the kernel with its namespace. */
static void
drop_ifs(struct fabric *fb, int rank, unsigned mask, int grave)
{
	struct fb_node *nd = &fb->nodes[rank];
	char why[256];
	struct nl nl;

	mask &= nd->made;
	if (mask == 0)
		return;
	if (fb->on_remove) {
		struct fabric_ifstats st[KH_MAX_IFS];
		int n = fabric_node_counters(fb, rank, st, KH_MAX_IFS);
		for (int i = 0; i < n; i++)
			if (mask & (1u << st[i].slot))
				fb->on_remove(fb->remove_arg, rank, &st[i]);
	}
	if (node_nl(fb, rank, &nl, why, sizeof(why)) < 0) {
		log_warnx("fabric: node %d: %s", rank, why);
		nl.s = NULL;
	}
	for (int i = 0; i < KH_MAX_IFS; i++) {
		if (!(mask & (1u << i)))
			continue;
		uint8_t mac[6];
		throwaway_mac(fb, mac);
		struct nl_link l = {.index = FB_NODE_IF0 + i,
				    .mac = mac,
				    .master = -1,
				    .up = -1,
				    .group = grave ? FB_GRAVE : 0,
				    .peer_netns = -1};
		/* "No such device": the node's root deleted it. */
		if (nl.s && nl_link(&nl, &l, why, sizeof(why)) < 0 &&
		    strstr(why, "No such device") == NULL)
			log_warnx("fabric: node %d eth%d: %s", rank, i, why);
		fb->nports--;
	}
	nl_close(&nl);
	nd->made &= ~mask;
	if (grave) {
		if (nd->graves == 0)
			fb->graves++;
		nd->graves |= mask;
	}
}

void
fabric_flush(struct fabric *fb)
{
	char why[256];
	struct nl nl;
	if (fb == NULL || fb->graves == 0)
		return;
	for (int r = 0; r < KH_MAX_NODES && fb->graves > 0; r++) {
		struct fb_node *nd = &fb->nodes[r];
		if (nd->graves == 0)
			continue;
		if (nd->netns >= 0 && node_nl(fb, r, &nl, why, sizeof(why)) == 0) {
			if (nl_link_del(&nl, 0, FB_GRAVE, why, sizeof(why)) < 0 &&
			    strstr(why, "No such device") == NULL)
				log_warnx("fabric: node %d: %s", r, why);
			nl_close(&nl);
		}
		nd->graves = 0;
		fb->graves--;
	}
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
	if (fb->np > 0) {
		struct fb_spare sp = fb->ppool[--fb->np];
		nd->netns = sp.netns;
		nd->nsid = sp.nsid;
	} else if ((nd->netns = new_netns_id(fb, &nd->nsid, err, errlen)) < 0)
		return -1;
	fb->nprepared++;
	return 0;
}

int
fabric_pool_fill(struct fabric *fb, int target, int budget, char *err, size_t errlen)
{
	if (target > KH_MAX_NODES)
		target = KH_MAX_NODES;
	if (seg_find(fb, NETID_EXTERNAL) == NULL)
		return 0; /* no external segment: nothing to prepare for */
	for (; fb->nx < target && budget > 0; budget--) {
		struct fb_spare sp;
		uint8_t mac[6];
		if ((sp.netns = new_netns_id(fb, &sp.nsid, err, errlen)) < 0)
			return -1;
		if (make_if_in(fb, sp.netns, 0, NETID_EXTERNAL, 0, mac, err, errlen) < 0) {
			close_netns(fb, sp.netns);
			return -1;
		}
		fb->xpool[fb->nx++] = sp;
	}
	return fb->nx < target;
}

/* Node rank takes a namespace of the pool for its eth0 in the external
 * domain, when it has nothing of its own yet.  Returns 1 when it did. */
static int
take_spare(struct fabric *fb, int rank)
{
	struct fb_node *nd = &fb->nodes[rank];
	struct fb_seg *b = seg_find(fb, NETID_EXTERNAL);

	/* Only a namespace no node has entered yet may be exchanged; the
	 * spares hold macvlans, not a vm node's macvtaps. */
	if (fb->nx == 0 || b == NULL || nd->used || nd->made || nd->graves || nd->tap)
		return 0;
	struct fb_spare sp = fb->xpool[--fb->nx];
	/* Its empty one goes to the next node that needs one: closing it
	 * would have the kernel tear it down, by the thousand, while the
	 * allocation makes devices. */
	if (nd->netns >= 0)
		fb->ppool[fb->np++] = (struct fb_spare){nd->netns, nd->nsid};
	else
		fb->nprepared++;
	nd->netns = sp.netns;
	nd->nsid = sp.nsid;
	nd->made = 1;
	nd->nets[0] = NETID_EXTERNAL;
	/* What it holds does not matter until boot sets the plan's. */
	memset(nd->mac[0], 0, 6);
	b->ports++;
	fb->nports++;
	return 1;
}

/* Inside the node's namespace (nl is a socket there): eth<slot> gets the
 * plan's MAC, MTU and addresses; the external domain also routes. */
static int
config_slot(struct nl *nl, struct fb_node *nd, int rank, int slot, int netid, char *err,
	    size_t errlen)
{
	char a4[32], a6[64], gw[64];
	uint8_t mac[6];
	int idx = FB_NODE_IF0 + slot;

	/* Quiet at link up: no duplicate detection for the link-local
	 * address and no router solicitations, multicast frames a thousand
	 * nodes coming up at once would send to each other (the namespace's
	 * defaults, new_netns_id).  A macvtap speaks only for its guest: no
	 * IPv6 of the namespace's own. */
	if (nd->tap) {
		char path[96];
		snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/eth%d/disable_ipv6", slot);
		write_proc(path, "1");
	}
	/* A macvtap passes its guest only the multicast frames joined on
	 * the macvtap itself, and nothing joins there for the guest: without
	 * allmulti, IPv6 neighbour discovery (solicited-node multicast)
	 * between two vm nodes fails.  The guest's NIC filters them. */
	addr_mac(netid, rank, mac);
	struct nl_link l = {.index = idx,
			    .mac = mac,
			    .master = -1,
			    .up = 1,
			    .allmulti = nd->tap ? 1 : 0,
			    .peer_netns = -1};
	if (nl_link(nl, &l, err, errlen) < 0) {
		/* The plan's MAC is taken on the segment (a node set it on
		 * its own interface): keep the throwaway one, the addresses
		 * are what the plan promises. */
		if (!strstr(err, "in use"))
			return -1;
		log_warnx("fabric: node %d eth%d: %s; it keeps another MAC", rank, slot, err);
		struct nl_link up = {.index = idx,
				     .master = -1,
				     .up = 1,
				     .allmulti = nd->tap ? 1 : 0,
				     .peer_netns = -1};
		if (nl_link(nl, &up, err, errlen) < 0)
			return -1;
	} else {
		memcpy(nd->mac[slot], mac, 6);
	}
	/* The guest sets its own addresses (from the plan on its command
	 * line); the macvtap in the namespace carries none. */
	if (nd->tap)
		return 0;
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

/* Put eth<slot> of the node on the segment of netid. */
static int
join(struct fabric *fb, int rank, int slot, int netid, char *err, size_t errlen)
{
	struct fb_node *nd = &fb->nodes[rank];
	struct fb_seg *b;

	if ((b = seg_get(fb, netid, err, errlen)) == NULL)
		return -1;
	if (make_if(fb, rank, slot, netid, err, errlen) < 0) {
		if (b->ports == 0) {
			b->ports = 1;
			seg_unref(fb, netid);
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
			rc = config_slot(&nl, nd, rank, i, nd->nets[i], err, errlen);
	nl_close(&nl);
	leave(fb);
	return rc;
}

int
fabric_node_wire(struct fabric *fb, int rank, const int *netids, int n, char *err, size_t errlen)
{
	struct fb_node *nd;
	unsigned fresh = 0;

	if (rank < 0 || rank >= KH_MAX_NODES)
		return seterr(err, errlen, "fabric: no node %d", rank);
	if (n > 0 && netids[0] == NETID_EXTERNAL)
		take_spare(fb, rank);
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
			drop_ifs(fb, rank, 1u << i, 1);
			nd->nets[i] = 0;
			seg_unref(fb, have);
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
	nd->used = 1;
	for (int i = 0; i < KH_MAX_IFS; i++)
		if (nd->nets[i])
			mask |= 1u << i;
	if (config_node(fb, rank, mask, why, sizeof(why)) < 0) {
		/* Software of an earlier boot may have deleted or changed an
		 * interface (root in a node may): make the node's wiring
		 * afresh. */
		int nets[KH_MAX_IFS];
		memcpy(nets, nd->nets, sizeof(nets));
		drop_ifs(fb, rank, ~0u, 1);
		for (int i = 0; i < KH_MAX_IFS; i++)
			if (nd->nets[i]) {
				seg_unref(fb, nd->nets[i]);
				nd->nets[i] = 0;
			}
		fabric_flush(fb);
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
	/* Down and with throwaway MACs now; the kernel deletes them with the
	 * namespace, in its own time and in batches. */
	if (nd->netns >= 0)
		drop_ifs(fb, rank, ~0u, 0);
	for (int i = 0; i < KH_MAX_IFS; i++) {
		if (nd->nets[i])
			seg_unref(fb, nd->nets[i]);
		nd->nets[i] = 0;
	}
	if (nd->graves) {
		nd->graves = 0;
		fb->graves--;
	}
	if (nd->netns >= 0) {
		close_netns(fb, nd->netns);
		fb->nprepared--;
	}
	if (nd->sysfs >= 0)
		close(nd->sysfs);
	*nd = (struct fb_node){.netns = -1, .sysfs = -1, .tap = nd->tap};
}

void
fabric_node_set_tap(struct fabric *fb, int rank, int tap)
{
	if (fb && rank >= 0 && rank < KH_MAX_NODES)
		fb->nodes[rank].tap = !!tap;
}

/* A file system of type, mounted nowhere: reached only through the
 * returned descriptor, gone with it. */
static int
detached_fs(const char *type)
{
	int fs = (int)syscall(SYS_fsopen, type, FB_FSOPEN_CLOEXEC), m = -1;

	if (fs < 0)
		return -1;
	if (syscall(SYS_fsconfig, fs, FB_FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
		m = (int)syscall(SYS_fsmount, fs, FB_FSMOUNT_CLOEXEC, 0);
	int e = errno;
	close(fs);
	errno = e;
	return m;
}

/* The character device of node rank's macvtap eth<slot>, open.  Its
 * number is in the sysfs of the node's namespace (a sysfs shows the
 * network devices of the namespace it was made in), and the node is
 * opened through a device node of our own: /dev/tap<ifindex> would name
 * the same number in every node's namespace. */
static int
open_tap(struct fabric *fb, int rank, int slot, char *err, size_t errlen)
{
	struct fb_node *nd = &fb->nodes[rank];
	char path[96], buf[32], name[32];
	unsigned maj, min;
	int fd;
	ssize_t n;

	if (nd->sysfs < 0) {
		if (enter(fb, nd->netns, err, errlen) < 0)
			return -1;
		nd->sysfs = detached_fs("sysfs");
		int e = errno;
		leave(fb);
		if (nd->sysfs < 0)
			return seterr(err, errlen, "sysfs of node %d's namespace: %s", rank,
				      strerror(e));
	}
	if (fb->devdir < 0 && (fb->devdir = detached_fs("tmpfs")) < 0)
		return seterr(err, errlen, "a tmpfs for device nodes: %s", strerror(errno));
	snprintf(path, sizeof(path), "class/net/eth%d/macvtap/tap%d/dev", slot, FB_NODE_IF0 + slot);
	if ((fd = openat(nd->sysfs, path, O_RDONLY | O_CLOEXEC)) < 0)
		return seterr(err, errlen, "eth%d is not a macvtap (%s)", slot, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || (buf[n] = '\0', sscanf(buf, "%u:%u", &maj, &min)) != 2)
		return seterr(err, errlen, "eth%d: no device number in sysfs", slot);
	snprintf(name, sizeof(name), "n%d-%d", rank, slot);
	unlinkat(fb->devdir, name, 0);
	if (mknodat(fb->devdir, name, S_IFCHR | 0600, makedev(maj, min)) < 0)
		return seterr(err, errlen, "eth%d: mknod %u:%u: %s", slot, maj, min,
			      strerror(errno));
	fd = openat(fb->devdir, name, O_RDWR | O_CLOEXEC);
	int e = errno;
	unlinkat(fb->devdir, name, 0);
	if (fd < 0)
		return seterr(err, errlen, "eth%d: open its macvtap (%u:%u): %s", slot, maj, min,
			      strerror(e));
	return fd;
}

int
fabric_node_taps(struct fabric *fb, int rank, struct fabric_tap *out, int max, char *err,
		 size_t errlen)
{
	struct fb_node *nd;
	int n = 0;

	if (fb == NULL || rank < 0 || rank >= KH_MAX_NODES)
		return seterr(err, errlen, "fabric: no node %d", rank);
	nd = &fb->nodes[rank];
	if (!nd->tap || nd->netns < 0)
		return seterr(err, errlen, "node %d has no macvtaps", rank);
	for (int i = 0; i < KH_MAX_IFS; i++) {
		if (!(nd->made & (1u << i)))
			continue;
		int fd = n < max ? open_tap(fb, rank, i, err, errlen) : -1;
		if (fd < 0) {
			if (n >= max)
				seterr(err, errlen, "more than %d interfaces", max);
			while (n > 0)
				close(out[--n].fd);
			return -1;
		}
		out[n] = (struct fabric_tap){
		    .slot = i, .netid = nd->nets[i], .fd = fd, .mtu = mtu_of(nd->nets[i])};
		memcpy(out[n].mac, nd->mac[i], 6);
		n++;
	}
	return n;
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

int
fabric_pool_size(const struct fabric *fb)
{
	return fb->nx;
}

void
fabric_counts(const struct fabric *fb, int *prepared, int *ports, int *segments)
{
	*prepared = fb->nprepared;
	*ports = fb->nports;
	*segments = fb->nseg;
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

/* The host's uplink into the external domain: a macvlan on its segment,
 * made in khd's (the host's) namespace. */
static int
uplink(struct fabric *fb, char *err, size_t errlen)
{
	char a4[32], a6[64], other[IF_NAMESIZE + 1];
	uint8_t mac[6];
	int idx;

	/* One left by a khd that was killed (its fabric dies with it, but the
	 * kernel may not have finished yet). */
	if ((idx = nl_link_index(&fb->host, fb->uplink)) > 0)
		nl_link_del(&fb->host, idx, 0, err, errlen);
	if (seg_get(fb, NETID_EXTERNAL, err, errlen) == NULL)
		return -1;
	addr_gateway4(NETID_EXTERNAL, a4, sizeof(a4));
	if (gateway_taken(a4, other, sizeof(other)))
		return seterr(err, errlen,
			      "the host already has %s on %s (another facility's uplink?): "
			      "this facility's external domain is not reachable from the host",
			      a4, other);
	addr_mac(NETID_EXTERNAL, 0xffff, mac);
	struct nl_link l = {.name = fb->uplink,
			    .kind = "macvlan",
			    .link = seg_index(NETID_EXTERNAL),
			    .macvlan_mode = MACVLAN_MODE_BRIDGE,
			    .mac = mac,
			    .mtu = FB_MTU_EXTERNAL,
			    .master = -1,
			    .peer_netns = -1,
			    .in_netns = 1,
			    .netns = fb->hostns};
	if (nl_link(&fb->fab, &l, err, errlen) < 0)
		return -1;
	if ((idx = nl_link_index(&fb->host, fb->uplink)) < 0)
		return seterr(err, errlen, "%s: %s", fb->uplink, strerror(-idx));
	struct nl_link up = {.index = idx, .master = -1, .up = 1, .peer_netns = -1};
	snprintf(a6, sizeof(a6), "fd4b:6b68:%x::%x", NETID_EXTERNAL, ADDR_GATEWAY_HOST);
	if (nl_link(&fb->host, &up, err, errlen) < 0 ||
	    nl_addr(&fb->host, AF_INET, idx, a4, ADDR_PREFIX4, err, errlen) < 0 ||
	    nl_addr(&fb->host, AF_INET6, idx, a6, 64, err, errlen) < 0)
		return -1;
	return 0;
}

int
fabric_service_listen(struct fabric *fb, int netid, int port, char *err, size_t errlen)
{
	char name[16], a4[32];
	uint8_t mac[6];
	int idx, fd = -1;

	struct fb_seg *b = seg_get(fb, netid, err, errlen);
	if (b == NULL)
		return -1;
	/* the facility's port on the segment: it keeps the segment alive */
	snprintf(name, sizeof(name), "s%d", netid);
	if ((idx = nl_link_index(&fb->fab, name)) <= 0) {
		addr_mac(netid, 0xffff, mac);
		struct nl_link l = {.name = name,
				    .kind = "macvlan",
				    .link = seg_index(netid),
				    .macvlan_mode = MACVLAN_MODE_BRIDGE,
				    .mac = mac,
				    .mtu = mtu_of(netid),
				    .master = -1,
				    .peer_netns = -1};
		if (nl_link(&fb->fab, &l, err, errlen) < 0)
			return -1;
		if ((idx = nl_link_index(&fb->fab, name)) < 0)
			return seterr(err, errlen, "%s: %s", name, strerror(-idx));
		addr_gateway4(netid, a4, sizeof(a4));
		struct nl_link up = {.index = idx, .master = -1, .up = 1, .peer_netns = -1};
		if (nl_link(&fb->fab, &up, err, errlen) < 0 ||
		    nl_addr(&fb->fab, AF_INET, idx, a4, ADDR_PREFIX4, err, errlen) < 0)
			return -1;
	}
	b->ports++; /* made now, or by a dead khd whose fabric we took */
	addr_gateway4(netid, a4, sizeof(a4));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, a4, &sa.sin_addr);
	if (enter(fb, fb->fabns, err, errlen) < 0)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, e = 0;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0)
		e = errno;
	leave(fb);
	if (e != 0) {
		if (fd >= 0)
			close(fd);
		return seterr(err, errlen, "listen on %s:%d in domain %d: %s", a4, port, netid,
			      strerror(e));
	}
	return fd;
}

/* ---- Domains across hosts ------------------------------------------
 * A domain spanning hosts is one segment: each host's d<netid>x, where
 * frames that leave the local segment end, is joined by a two-port bridge
 * b<netid> (learning off, so it keeps no table a node could fill with
 * forged source addresses and every frame crosses to the other port) to
 * v<netid>, a VXLAN device with VNI netid.  v<netid> lives in the fabric's
 * namespace but was made from the host's, so its UDP socket is in the
 * host's, on the underlay.  Its forwarding entries are static (learning
 * off, no multicast group): the all-zeros MAC to every peer (broadcast,
 * multicast and unknown unicast, replicated by the sender), and a node's
 * plan MAC to its host when the caller says where it is.  A frame coming
 * in from a peer lands on d<netid> like a local node's: delivered to the
 * macvlan holding its destination MAC (broadcast to all), never sent out
 * again, so the full mesh of peers has no loop.
 *
 * Enforcement across hosts is the same topology: a node's frames reach the
 * tunnel only from its own segments' sinks, and VNI netid reaches only
 * segment netid.  What VXLAN adds is a UDP port on the host that takes
 * frames for any VNI from anyone who can send to it: the guard table (an
 * nftables table of the facility's own in the host's namespace) takes VXLAN
 * only from the underlay's interface and the span's peers, and drops any
 * the host would forward from the external domain's uplink (an external
 * node's packet, masqueraded, would carry the host's own underlay
 * address). */

static struct fb_span *
span_find(struct fabric *fb, int netid)
{
	for (int i = 0; i < fb->nspan; i++)
		if (fb->spans[i].netid == netid)
			return &fb->spans[i];
	return NULL;
}

static int
has_addr(const uint32_t *a, int n, uint32_t x)
{
	for (int i = 0; i < n; i++)
		if (a[i] == x)
			return 1;
	return 0;
}

/* The guard table, written again from the spans (removed with none). */
static int
guard_update(struct fabric *fb, char *err, size_t errlen)
{
	char name[32], ip[INET_ADDRSTRLEN], *cmds;
	size_t cap = 1024 + (size_t)fb->nspan * 16 * 64, len = 0;
	uint32_t *all = NULL;
	int nall = 0, capall = 0, rc;

	snprintf(name, sizeof(name), "kh%svx", fb->facid);
	if ((cmds = malloc(cap)) == NULL)
		fatal("fabric");
	len += (size_t)snprintf(cmds + len, cap - len, "add table ip %s\ndelete table ip %s\n",
				name, name);
	for (int i = 0; i < fb->nspan; i++)
		for (int j = 0; j < fb->spans[i].npeers; j++)
			if (!has_addr(all, nall, fb->spans[i].peers[j])) {
				all = fac_grow(all, &capall, nall + 1, sizeof(*all));
				all[nall++] = fb->spans[i].peers[j];
			}
	if (nall > 0) {
		cap += (size_t)nall * 20;
		if ((cmds = realloc(cmds, cap)) == NULL)
			fatal("fabric");
		len += (size_t)snprintf(cmds + len, cap - len,
					"table ip %s {\n"
					" set peers { type ipv4_addr; elements = { ",
					name);
		for (int i = 0; i < nall; i++)
			len += (size_t)snprintf(cmds + len, cap - len, "%s%s", i ? ", " : "",
						inet_ntop(AF_INET, &all[i], ip, sizeof(ip)));
		len += (size_t)snprintf(cmds + len, cap - len,
					" } }\n"
					" chain guard_in {\n"
					"  type filter hook input priority filter; policy accept;\n"
					"  udp dport %d iifname != \"%s\" drop\n"
					"  udp dport %d ip saddr != @peers drop\n"
					" }\n",
					fb->ul_port, fb->ul_if, fb->ul_port);
		if (strcmp(fb->uplink, "none") != 0)
			len += (size_t)snprintf(
			    cmds + len, cap - len,
			    " chain guard_fwd {\n"
			    "  type filter hook forward priority filter; policy accept;\n"
			    "  iifname \"%s\" udp dport %d drop\n"
			    " }\n",
			    fb->uplink, fb->ul_port);
		snprintf(cmds + len, cap - len, "}\n");
	}
	rc = nft(cmds, err, errlen);
	if (rc == 0)
		fb->guard = nall > 0;
	free(cmds);
	free(all);
	return rc;
}

/* Can the underlay (interface ifname, MTU mtu) carry domain netid's
 * frames?  A VXLAN frame is 50 bytes more, and it must not fragment. */
static int
mtu_too_small(int netid, const char *ifname, int mtu, char *err, size_t errlen)
{
	if (mtu_of(netid) + FB_VXLAN_OVER <= mtu)
		return 0;
	seterr(err, errlen,
	       "domain %d has MTU %d, which needs an underlay MTU of at least %d across hosts; "
	       "the underlay %s has MTU %d",
	       netid, mtu_of(netid), mtu_of(netid) + FB_VXLAN_OVER, ifname, mtu);
	return 1;
}

int
fabric_set_underlay(struct fabric *fb, const char *local_ip, int port, char *err, size_t errlen)
{
	struct ifaddrs *ifa, *p;
	struct in_addr a;
	char name[IF_NAMESIZE + 1] = "";
	int mtu = 0;

	if (fb == NULL)
		return seterr(err, errlen, "fabric: none");
	if (local_ip == NULL || inet_pton(AF_INET, local_ip, &a) != 1 || a.s_addr == 0)
		return seterr(err, errlen, "underlay address '%s': not an IPv4 address",
			      local_ip ? local_ip : "");
	if (port == 0)
		port = FB_VXLAN_PORT;
	if (port < 1 || port > 65535)
		return seterr(err, errlen, "underlay port %d: not a UDP port", port);
	if (fb->nspan > 0 && (a.s_addr != fb->ul_addr || port != fb->ul_port))
		return seterr(err, errlen,
			      "domains span other hosts over the underlay: unspan them before "
			      "changing it");
	if (getifaddrs(&ifa) < 0)
		return seterr(err, errlen, "interfaces: %s", strerror(errno));
	for (p = ifa; p; p = p->ifa_next)
		if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr.s_addr == a.s_addr) {
			snprintf(name, sizeof(name), "%s", p->ifa_name);
			break;
		}
	freeifaddrs(ifa);
	if (name[0] == 0)
		return seterr(err, errlen,
			      "underlay address %s is on none of the host's interfaces", local_ip);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (fd < 0 || ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return seterr(err, errlen, "underlay %s: MTU: %s", name, strerror(e));
	}
	close(fd);
	mtu = ifr.ifr_mtu;
	for (int i = 0; i < fb->nspan; i++)
		if (mtu_too_small(fb->spans[i].netid, name, mtu, err, errlen))
			return -1;
	fb->ul_addr = a.s_addr;
	fb->ul_port = port;
	fb->ul_mtu = mtu;
	snprintf(fb->ul_if, sizeof(fb->ul_if), "%s", name);
	return 0;
}

/* The span's devices go (the VXLAN device with its forwarding entries and
 * its UDP socket, the bridge, which lets the sink go); so does the
 * segment, when no local node is on it. */
static void
unspan(struct fabric *fb, struct fb_span *sp)
{
	char why[256];
	int netid = sp->netid;
	if (nl_link_del(&fb->fab, FB_VX_BASE + netid, 0, why, sizeof(why)) < 0)
		log_warnx("fabric: domain %d: VXLAN: %s", netid, why);
	if (nl_link_del(&fb->fab, FB_BR_BASE + netid, 0, why, sizeof(why)) < 0)
		log_warnx("fabric: domain %d: bridge: %s", netid, why);
	free(sp->peers);
	free(sp->rem);
	*sp = fb->spans[--fb->nspan];
	seg_unref(fb, netid);
}

/* Make the span's devices: the segment (held), bridge, VXLAN device. */
static struct fb_span *
span_make(struct fabric *fb, int netid, char *err, size_t errlen)
{
	char br[24], vx[24], why[256];
	struct fb_seg *b = seg_get(fb, netid, err, errlen);
	if (b == NULL)
		return NULL;
	b->ports++;
	snprintf(br, sizeof(br), "b%d", netid);
	snprintf(vx, sizeof(vx), "v%d", netid);
	struct nl_link lb = {.index = FB_BR_BASE + netid,
			     .name = br,
			     .kind = "bridge",
			     .mtu = mtu_of(netid),
			     .master = -1,
			     .peer_netns = -1,
			     .br_nosnoop = 1};
	/* Made from the host's namespace, straight into the fabric's: the
	 * device is the fabric's, its socket the host's. */
	struct nl_link lv = {.index = FB_VX_BASE + netid,
			     .name = vx,
			     .kind = "vxlan",
			     .mtu = mtu_of(netid),
			     .master = -1,
			     .peer_netns = -1,
			     .vni = netid,
			     .vx_local = fb->ul_addr,
			     .vx_port = fb->ul_port,
			     .in_netns = 1,
			     .netns = fb->fabns};
	struct nl_link sink = {
	    .index = FB_SINK_BASE + netid, .master = FB_BR_BASE + netid, .peer_netns = -1};
	struct nl_link port = {
	    .index = FB_VX_BASE + netid, .master = FB_BR_BASE + netid, .up = 1, .peer_netns = -1};
	struct nl_link up = {.index = FB_BR_BASE + netid, .master = -1, .up = 1, .peer_netns = -1};
	int made = 0;
	if (nl_link(&fb->fab, &lb, err, errlen) < 0)
		goto fail;
	made = 1;
	if (nl_link(&fb->host, &lv, err, errlen) < 0)
		goto fail;
	made = 2;
	if (nl_link(&fb->fab, &sink, err, errlen) < 0 ||
	    nl_brport_learning(&fb->fab, FB_SINK_BASE + netid, 0, err, errlen) < 0 ||
	    nl_link(&fb->fab, &port, err, errlen) < 0 ||
	    nl_brport_learning(&fb->fab, FB_VX_BASE + netid, 0, err, errlen) < 0 ||
	    nl_link(&fb->fab, &up, err, errlen) < 0)
		goto fail;
	fb->spans = fac_grow(fb->spans, &fb->capspan, fb->nspan + 1, sizeof(*fb->spans));
	struct fb_span *sp = &fb->spans[fb->nspan++];
	*sp = (struct fb_span){.netid = netid};
	return sp;
fail:
	if (made == 2)
		nl_link_del(&fb->fab, FB_VX_BASE + netid, 0, why, sizeof(why));
	if (made >= 1)
		nl_link_del(&fb->fab, FB_BR_BASE + netid, 0, why, sizeof(why));
	seg_unref(fb, netid);
	return NULL;
}

/* Parse peer addresses into out (n of them): IPv4, not ours, once each. */
static int
parse_peers(struct fabric *fb, const char *const *peers, int n, uint32_t *out, char *err,
	    size_t errlen)
{
	for (int i = 0; i < n; i++) {
		struct in_addr a;
		if (peers[i] == NULL || inet_pton(AF_INET, peers[i], &a) != 1 || a.s_addr == 0 ||
		    a.s_addr == INADDR_BROADCAST)
			return seterr(err, errlen, "peer '%s': not an IPv4 address",
				      peers[i] ? peers[i] : "");
		if (a.s_addr == fb->ul_addr)
			return seterr(err, errlen, "peer %s is this host's own underlay address",
				      peers[i]);
		if (has_addr(out, i, a.s_addr))
			return seterr(err, errlen, "peer %s named twice", peers[i]);
		out[i] = a.s_addr;
	}
	return 0;
}

static const uint8_t zero_mac[6];

int
fabric_span(struct fabric *fb, int netid, const char *const *peers, int n, char *err, size_t errlen)
{
	struct fb_span *sp;
	uint32_t *want;
	int rc = 0;

	if (fb == NULL)
		return seterr(err, errlen, "fabric: none");
	if (netid < 1 || netid >= FB_NETID_SPAN)
		return seterr(err, errlen, "domain %d cannot span hosts (netids 1 to %d do)", netid,
			      FB_NETID_SPAN - 1);
	if (n < 0 || n > FB_MAX_PEERS)
		return seterr(err, errlen, "domain %d: %d peers (at most %d)", netid, n,
			      FB_MAX_PEERS);
	sp = span_find(fb, netid);
	if (n == 0) {
		if (sp) {
			unspan(fb, sp);
			rc = guard_update(fb, err, errlen);
		}
		return rc;
	}
	if (fb->ul_addr == 0)
		return seterr(err, errlen,
			      "domain %d: no underlay to span hosts over "
			      "(set the host's underlay address first)",
			      netid);
	if (mtu_too_small(netid, fb->ul_if, fb->ul_mtu, err, errlen))
		return -1;
	if ((want = calloc((size_t)n, sizeof(*want))) == NULL)
		fatal("fabric");
	if (parse_peers(fb, peers, n, want, err, errlen) < 0) {
		free(want);
		return -1;
	}
	if (sp == NULL && (sp = span_make(fb, netid, err, errlen)) == NULL) {
		free(want);
		return -1;
	}
	/* Peers that go: their entries first (a node's too), then new ones. */
	for (int i = 0; i < sp->npeers;) {
		uint32_t p = sp->peers[i];
		if (has_addr(want, n, p)) {
			i++;
			continue;
		}
		for (int j = 0; j < sp->nrem;) {
			if (sp->rem[j].host != p) {
				j++;
				continue;
			}
			uint8_t mac[6];
			addr_mac(netid, sp->rem[j].rank, mac);
			nl_fdb(&fb->fab, 0, FB_VX_BASE + netid, mac, p, 0, err, errlen);
			sp->rem[j] = sp->rem[--sp->nrem];
		}
		if (nl_fdb(&fb->fab, 0, FB_VX_BASE + netid, zero_mac, p, 0, err, errlen) < 0)
			rc = -1;
		sp->peers[i] = sp->peers[--sp->npeers];
	}
	sp->peers = realloc(sp->peers, (size_t)(sp->npeers + n) * sizeof(*sp->peers));
	if (sp->peers == NULL)
		fatal("fabric");
	for (int i = 0; i < n && rc == 0; i++) {
		if (has_addr(sp->peers, sp->npeers, want[i]))
			continue;
		if (nl_fdb(&fb->fab, 1, FB_VX_BASE + netid, zero_mac, want[i], 1, err, errlen) < 0)
			rc = -1;
		else
			sp->peers[sp->npeers++] = want[i];
	}
	free(want);
	/* Without its guard the tunnel's port would take frames for the
	 * domain from anyone: no span then. */
	char why[256];
	if (guard_update(fb, why, sizeof(why)) < 0) {
		unspan(fb, sp);
		guard_update(fb, NULL, 0);
		return seterr(err, errlen, "domain %d does not span hosts: guard: %s", netid, why);
	}
	return rc;
}

int
fabric_span_nodes(struct fabric *fb, int netid, const int *ranks, const char *const *hosts, int n,
		  char *err, size_t errlen)
{
	struct fb_span *sp;
	struct fb_remote *want;
	int rc = 0;

	if (fb == NULL || (sp = span_find(fb, netid)) == NULL)
		return seterr(err, errlen, "domain %d spans no other host", netid);
	if (n < 0 || n > KH_MAX_NODES)
		return seterr(err, errlen, "domain %d: %d remote nodes (at most %d)", netid, n,
			      KH_MAX_NODES);
	if ((want = calloc((size_t)n + 1, sizeof(*want))) == NULL)
		fatal("fabric");
	for (int i = 0; i < n; i++) {
		struct in_addr a;
		if (ranks[i] < 0 || ranks[i] >= KH_MAX_NODES) {
			rc = seterr(err, errlen, "no node %d", ranks[i]);
			break;
		}
		if (hosts[i] == NULL || inet_pton(AF_INET, hosts[i], &a) != 1 ||
		    !has_addr(sp->peers, sp->npeers, a.s_addr)) {
			rc = seterr(err, errlen, "node %d: '%s' is not a host domain %d spans",
				    ranks[i], hosts[i] ? hosts[i] : "", netid);
			break;
		}
		for (int j = 0; j < i; j++)
			if (want[j].rank == ranks[i])
				rc = seterr(err, errlen, "node %d named twice", ranks[i]);
		if (rc < 0)
			break;
		want[i] = (struct fb_remote){ranks[i], a.s_addr};
	}
	if (rc < 0) {
		free(want);
		return -1;
	}
	/* Entries that go or move, then those that come or moved. */
	for (int j = 0; j < sp->nrem;) {
		int keep = 0;
		for (int i = 0; i < n; i++)
			if (want[i].rank == sp->rem[j].rank && want[i].host == sp->rem[j].host)
				keep = 1;
		if (keep) {
			j++;
			continue;
		}
		uint8_t mac[6];
		addr_mac(netid, sp->rem[j].rank, mac);
		if (nl_fdb(&fb->fab, 0, FB_VX_BASE + netid, mac, sp->rem[j].host, 0, err, errlen) <
			0 &&
		    !strstr(err, "No such"))
			rc = -1;
		sp->rem[j] = sp->rem[--sp->nrem];
	}
	sp->rem = realloc(sp->rem, (size_t)(sp->nrem + n + 1) * sizeof(*sp->rem));
	if (sp->rem == NULL)
		fatal("fabric");
	for (int i = 0; i < n && rc == 0; i++) {
		int have = 0;
		for (int j = 0; j < sp->nrem; j++)
			if (sp->rem[j].rank == want[i].rank)
				have = 1;
		if (have)
			continue;
		uint8_t mac[6];
		addr_mac(netid, want[i].rank, mac);
		if (nl_fdb(&fb->fab, 1, FB_VX_BASE + netid, mac, want[i].host, 0, err, errlen) < 0)
			rc = -1;
		else
			sp->rem[sp->nrem++] = want[i];
	}
	free(want);
	return rc;
}

int
fabric_spans(const struct fabric *fb, int netid)
{
	const struct fb_span *sp = NULL;
	for (int i = 0; fb && i < fb->nspan; i++)
		if (fb->spans[i].netid == netid)
			sp = &fb->spans[i];
	return sp ? sp->npeers : 0;
}

/* A dead khd's spans, in a fabric taken over: their devices go (their
 * forwarding entries are not known here); the caller spans its domains
 * again once it knows the hosts. */
static void
span_sweep_cb(void *arg, const struct nl_stats *st)
{
	int *found = arg;
	if (st->index >= FB_VX_BASE && st->index < FB_VX_BASE + FB_NETID_SPAN && found[0] < 4096)
		found[1 + found[0]++] = st->index;
	else if (st->index >= FB_BR_BASE && st->index < FB_BR_BASE + FB_NETID_SPAN &&
		 found[0] < 4096)
		found[1 + found[0]++] = st->index;
}

static void
span_sweep(struct fabric *fb)
{
	char why[256];
	int *found = calloc(4097, sizeof(int));
	if (found == NULL)
		fatal("fabric");
	if (nl_link_stats(&fb->fab, 0, span_sweep_cb, found) == 0)
		for (int i = 0; i < found[0]; i++)
			if (nl_link_del(&fb->fab, found[1 + i], 0, why, sizeof(why)) < 0)
				log_warnx("fabric: a dead khd's span: %s", why);
	free(found);
	if (guard_update(fb, why, sizeof(why)) < 0)
		log_warnx("fabric: %s", why);
}

static struct fabric *
make(const char *facid, int nat, const char *pin, int adopt, char *err, size_t errlen)
{
	struct fabric *fb = calloc(1, sizeof(*fb));
	char why[256];

	if (fb == NULL || (fb->nodes = calloc(KH_MAX_NODES, sizeof(*fb->nodes))) == NULL ||
	    (fb->xpool = calloc(KH_MAX_NODES, sizeof(*fb->xpool))) == NULL ||
	    (fb->ppool = calloc(KH_MAX_NODES, sizeof(*fb->ppool))) == NULL)
		fatal("fabric");
	for (int i = 0; i < KH_MAX_NODES; i++)
		fb->nodes[i].netns = fb->nodes[i].sysfs = -1;
	fb->fabns = -1;
	fb->devdir = -1;
	fb->nat = nat;
	snprintf(fb->facid, sizeof(fb->facid), "%s", facid);
	snprintf(fb->uplink, sizeof(fb->uplink), "kh%s", facid);
	if ((fb->hostns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) {
		seterr(err, errlen, "/proc/self/ns/net: %s", strerror(errno));
		goto fail;
	}
	if (nl_open(&fb->host, err, errlen) < 0)
		goto fail;
	/* A dead khd's namespace, pinned: its segments carry the nodes we
	 * adopt. */
	if (adopt && pin && pin[0]) {
		struct statfs sf;
		int fd = open(pin, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && fstatfs(fd, &sf) == 0 && sf.f_type == NSFS_MAGIC &&
		    setns(fd, CLONE_NEWNET) == 0) {
			fb->fabns = fd;
			fb->adopted = 1;
			int rc = nl_open(&fb->fab, err, errlen);
			leave(fb);
			if (rc < 0)
				goto fail;
			snprintf(fb->pin, sizeof(fb->pin), "%s", pin);
			goto made;
		}
		if (fd >= 0)
			close(fd);
		log_warnx("fabric: no namespace pinned at %s to take over; a new one", pin);
	}
	/* The fabric's namespace: no addresses, no forwarding, no IPv6 of its
	 * own (the segments' lower devices would otherwise speak into every
	 * domain). */
	if (unshare(CLONE_NEWNET) < 0) {
		seterr(err, errlen, "fabric namespace: %s", strerror(errno));
		goto fail;
	}
	fb->fabns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	write_proc("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	write_proc("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	int rc = nl_open(&fb->fab, err, errlen);
	leave(fb);
	if (rc < 0 || fb->fabns < 0)
		goto fail;
	/* Pinned, the segments (and so the nodes' interfaces, with their
	 * counters) outlive a khd killed with -9 until the next khd has read
	 * what the nodes sent since the last sample (fabric_netns_counters). */
	if (pin && pin[0]) {
		char src[64];
		int fd;
		fabric_unpin(pin);
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fb->fabns);
		if ((fd = open(pin, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
		    (close(fd), mount(src, pin, NULL, MS_BIND, NULL)) < 0) {
			seterr(err, errlen, "pin the fabric namespace at %s: %s", pin,
			       strerror(errno));
			unlink(pin);
			goto fail;
		}
		snprintf(fb->pin, sizeof(fb->pin), "%s", pin);
	}
made:
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
	if (fb->adopted)
		span_sweep(fb);
	return fb;
fail:
	fabric_free(fb);
	return NULL;
}

struct fabric *
fabric_new(const char *facid, int nat, const char *pin, char *err, size_t errlen)
{
	return make(facid, nat, pin, 0, err, errlen);
}

struct fabric *
fabric_adopt(const char *facid, int nat, const char *pin, char *err, size_t errlen)
{
	return make(facid, nat, pin, 1, err, errlen);
}

static void
exists_cb(void *arg, const struct nl_stats *st)
{
	(void)arg;
	(void)st;
}

int
fabric_node_adopt(struct fabric *fb, int rank, int netns, const int *netids, int n, char *err,
		  size_t errlen)
{
	struct fb_node *nd;
	int nsid;

	if (fb == NULL || rank < 0 || rank >= KH_MAX_NODES)
		return seterr(err, errlen, "fabric: no node %d", rank);
	nd = &fb->nodes[rank];
	if (nd->netns >= 0)
		return seterr(err, errlen, "fabric: node %d has a namespace already", rank);
	if ((nd->netns = fcntl(netns, F_DUPFD_CLOEXEC, 0)) < 0)
		return seterr(err, errlen, "fabric: %s", strerror(errno));
	/* Its id in the fabric's namespace, as the dead khd gave it (ours
	 * count on from past it), or a new one. */
	nsid = nl_nsid_get(&fb->fab, nd->netns);
	if (nsid <= 0) {
		if (++fb->nsidseq <= 0)
			fb->nsidseq = 1;
		nsid = fb->nsidseq;
		if (nl_nsid_set(&fb->fab, nd->netns, nsid, err, errlen) < 0) {
			close(nd->netns);
			nd->netns = -1;
			return -1;
		}
	} else if (nsid > fb->nsidseq) {
		fb->nsidseq = nsid;
	}
	nd->nsid = nsid;
	nd->used = nd->running = 1;
	fb->nprepared++;
	/* The interfaces that are still there are the node's (its root may
	 * have deleted one: wiring makes it again). */
	for (int i = 0; i < n && i < KH_MAX_IFS; i++) {
		struct fb_seg *b;
		if (netids[i] <= 0 ||
		    nl_link_stats_of(&fb->fab, nsid, FB_NODE_IF0 + i, exists_cb, NULL) < 0 ||
		    (b = seg_get(fb, netids[i], err, errlen)) == NULL)
			continue;
		b->ports++;
		fb->nports++;
		nd->made |= 1u << i;
		nd->nets[i] = netids[i];
		addr_mac(netids[i], rank, nd->mac[i]);
	}
	return 0;
}

static void
release(struct fabric *fb, int keep)
{
	char why[256];
	int idx;

	if (fb == NULL)
		return;
	for (int i = 0; i < KH_MAX_NODES; i++) {
		if (fb->nodes[i].netns >= 0)
			close_netns(fb, fb->nodes[i].netns);
		if (fb->nodes[i].sysfs >= 0)
			close(fb->nodes[i].sysfs);
	}
	if (fb->devdir >= 0)
		close(fb->devdir);
	for (int i = 0; i < fb->nx; i++)
		close_netns(fb, fb->xpool[i].netns);
	for (int i = 0; i < fb->np; i++)
		close_netns(fb, fb->ppool[i].netns);
	/* The spans' VXLAN devices now, so their UDP port is free when we
	 * return (the namespace goes in the kernel's own time); kept for the
	 * next khd otherwise, which sweeps them (span_sweep). */
	while (fb->fab.s && !keep && fb->nspan > 0)
		unspan(fb, &fb->spans[fb->nspan - 1]);
	if (fb->host.s && !keep && fb->guard && guard_update(fb, why, sizeof(why)) < 0)
		log_warnx("fabric: %s", why);
	for (int i = 0; i < fb->nspan; i++) {
		free(fb->spans[i].peers);
		free(fb->spans[i].rem);
	}
	free(fb->spans);
	if (fb->host.s && strcmp(fb->uplink, "none") != 0 && !keep) {
		if (fb->nat)
			nat_off(fb);
		/* The uplink now, so its name and address are free when we
		 * return; the rest goes with the fabric's namespace. */
		if ((idx = nl_link_index(&fb->host, fb->uplink)) > 0)
			nl_link_del(&fb->host, idx, 0, why, sizeof(why));
	}
	nl_close(&fb->fab);
	nl_close(&fb->host);
	if (!keep)
		fabric_unpin(fb->pin);
	if (fb->fabns >= 0)
		close(fb->fabns);
	if (fb->hostns >= 0)
		close(fb->hostns);
	free(fb->seg);
	free(fb->xpool);
	free(fb->ppool);
	free(fb->nodes);
	free(fb);
}

void
fabric_free(struct fabric *fb)
{
	release(fb, 0);
}

void
fabric_leave(struct fabric *fb)
{
	release(fb, 1);
}
