/* fabric: communication domains as Ethernet segments below the nodes.
 * khd owns a fabric network namespace holding one segment per domain (a
 * macvlan lower device "d<netid>"); every node has its own network
 * namespace from the moment it exists, and each of its interfaces is a
 * macvlan eth<i> on its domain's segment.  Nothing in a node can reach a
 * segment it has no interface on.  The external domain's segment has one
 * more macvlan, the host's uplink "kh<facility>", with NAT beyond the host. */
#ifndef KH_FABRIC_H
#define KH_FABRIC_H

#include <stddef.h>
#include <stdint.h>

#define KH_FABRIC_COUNTERS 1

struct fabric;

/* Make the fabric namespace and the external domain's uplink in the
 * caller's namespace (facid: 8 hex digits; nat: masquerade external
 * traffic leaving the host).  pin (or NULL): a file path where the fabric's
 * namespace is bind-mounted while the fabric lives, so that after a kill
 * -9 its segments, and the running nodes' interfaces on them, last until
 * the next khd has read their counters and calls fabric_unpin (a pin left
 * there is replaced).  Returns NULL with err. */
struct fabric *fabric_new(const char *facid, int nat, const char *pin, char *err, size_t errlen);
/* Remove a pin (a dead khd's fabric then goes, with its nodes' interfaces
 * once their processes are gone).  Nothing there is not an error. */
void fabric_unpin(const char *pin);
/* Tear everything down: nodes' namespaces, segments, uplink, NAT. */
void fabric_free(struct fabric *fb);
/* khd stops and leaves its nodes running: let go of the fabric but keep
 * it (the pin, segments, uplink and NAT stay for the next khd's
 * fabric_adopt). */
void fabric_leave(struct fabric *fb);
/* As fabric_new, but take the namespace pinned at pin (a khd's that died
 * or left, fabric_leave) as the fabric's, with its segments and the
 * interfaces of the nodes still running there (fabric_node_adopt).  When
 * nothing is pinned there, a new one, as fabric_new. */
struct fabric *fabric_adopt(const char *facid, int nat, const char *pin, char *err, size_t errlen);
/* Node rank runs already (adopted from an earlier khd) in the network
 * namespace netns (dup'd; the caller keeps its fd): its interfaces eth<i>
 * on netids[i] that still exist become the fabric's, configured (the node
 * is running).  Call before the node is first wired.  Returns 0 or -1. */
int fabric_node_adopt(struct fabric *fb, int rank, int netns, const int *netids, int n, char *err,
		      size_t errlen);
/* Nodes' network namespaces made by make(arg) (one owned by a node's user
 * namespace, say) instead of by khd itself; each is given to drop(arg, fd)
 * before the fabric closes it. */
void fabric_set_netns_maker(struct fabric *fb, int (*make)(void *, char *, size_t),
			    void (*drop)(void *, int), void *arg);

/* Give node rank its network namespace ahead of need.  Idempotent. */
int fabric_node_prepare(struct fabric *fb, int rank, char *err, size_t errlen);
/* Make up to budget namespaces, until target are ready, each with its
 * eth0 already on the external segment: a node wired with the external
 * domain first (`khget -x`) takes one instead of having a device made.
 * Returns 1 while below target, 0 when there, -1 with err. */
int fabric_pool_fill(struct fabric *fb, int target, int budget, char *err, size_t errlen);
int fabric_pool_size(const struct fabric *fb);

/* Make node rank's interfaces match netids[0..n) (0: no interface at that
 * position): interfaces appear on or disappear from segments.  When the
 * node runs (fabric_node_config was called since its last
 * fabric_node_down), new interfaces are configured at once. */
int fabric_node_wire(struct fabric *fb, int rank, const int *netids, int n, char *err,
		     size_t errlen);
/* Configure the node's side: MAC, MTU, addresses, routes, up (before its
 * /init starts). */
int fabric_node_config(struct fabric *fb, int rank, char *err, size_t errlen);
/* The node stopped running: later wiring does not configure addresses. */
void fabric_node_down(struct fabric *fb, int rank);
/* The node left its principal: its namespace and interfaces are destroyed
 * (nothing the principal set survives); a new one is prepared later. */
void fabric_node_release(struct fabric *fb, int rank);
/* Delete the interfaces removed since the last flush (call after each
 * batch of wiring; removed interfaces are down and carry nothing before). */
void fabric_flush(struct fabric *fb);
/* The node's network namespace (fd owned by the fabric), or -1. */
int fabric_node_netns(struct fabric *fb, int rank);

/* Node rank is a vm node (tap 1): its interfaces are macvtaps, configured
 * at boot with the plan's MAC, up, and no address (the guest sets its
 * own).  Say so before it is first wired. */
void fabric_node_set_tap(struct fabric *fb, int rank, int tap);
/* A vm node's interface, opened for its virtio-net NIC. */
struct fabric_tap {
	int slot;	/* eth<slot> */
	int netid;	/* its domain */
	int fd;		/* the macvtap's character device, open (close-on-exec) */
	int mtu;	/* the segment's */
	uint8_t mac[6]; /* the MAC the macvtap holds (the plan's, once configured) */
};
/* Open every interface of vm node rank (after fabric_node_config), in slot
 * order.  Returns how many (the caller closes their fds), or -1 with err. */
int fabric_node_taps(struct fabric *fb, int rank, struct fabric_tap *out, int max, char *err,
		     size_t errlen);

/* Traffic counters of one node interface, as the node sees them. */
struct fabric_ifstats {
	int slot;	/* eth<slot> */
	uint32_t netid; /* its domain */
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
};
/* Counters of node rank's interfaces, read from the kernel now (one
 * request per interface, aimed at the node's namespace by its id).  Fills
 * up to max; returns how many, or -1. */
int fabric_node_counters(struct fabric *fb, int rank, struct fabric_ifstats *out, int max);
/* The same for whatever namespace netns is (a leftover node's, found by
 * its processes): slots from the interfaces' indexes, netid 0. */
int fabric_netns_counters(int netns, struct fabric_ifstats *out, int max);
/* fn(arg, rank, last counters) runs just before an interface is removed
 * (rmnet, release), so no traffic goes uncounted. */
void fabric_set_remove_hook(struct fabric *fb,
			    void (*fn)(void *, int, const struct fabric_ifstats *), void *arg);

/* A listening TCP socket at the facility's own address (host 4094) in
 * domain netid, on port: how nodes of that domain reach a facility
 * service (the service interface, src/srviface).  khd gets a port of its
 * own on the segment for it.  Returns the fd, or -1 with err. */
int fabric_service_listen(struct fabric *fb, int netid, int port, char *err, size_t errlen);

/* Domains across hosts (docs/fabric.md, "Across hosts").  A domain
 * spanning hosts is one segment: each host's fabric joins its segment to
 * the others' by kernel VXLAN, VNI = netid, over the underlay, with static
 * forwarding entries only (no multicast, no learning).  The caller (the
 * host's agent) says which hosts each domain spans, and may say where
 * remote nodes are. */

/* The host's underlay: local_ip (IPv4, an address of the namespace the
 * fabric was made in) is where other hosts' fabrics reach this one, on UDP
 * port (0: 4789).  Its interface's MTU bounds the domains that can span.
 * Call before spanning; refused while domains span. */
int fabric_set_underlay(struct fabric *fb, const char *local_ip, int port, char *err,
			size_t errlen);
/* Domain netid spans the hosts at peers[0..n) (their underlay addresses;
 * n 0: it no longer spans).  Every frame leaving the local segment goes to
 * every peer except unicast to a node placed by fabric_span_nodes; frames
 * from a peer with VNI netid enter the segment.  Idempotent; a new set of
 * peers adds and removes forwarding entries, the segment's local nodes
 * notice nothing.  Refused, changing nothing, with one line in err: a bad
 * or repeated address, this host's own, no underlay, or an underlay MTU
 * below the domain's MTU + 50. */
int fabric_span(struct fabric *fb, int netid, const char *const *peers, int n, char *err,
		size_t errlen);
/* Remote nodes of spanning domain netid: node ranks[i] is on the host
 * hosts[i] (one of the domain's peers), so unicast to its plan MAC goes to
 * that host alone.  Replaces the previous set (a node not named is reached
 * by flooding to every peer, as before). */
int fabric_span_nodes(struct fabric *fb, int netid, const int *ranks, const char *const *hosts,
		      int n, char *err, size_t errlen);
/* How many hosts domain netid spans to (0: local only). */
int fabric_spans(const struct fabric *fb, int netid);

/* The host's uplink name, and counters for khctl info. */
const char *fabric_uplink(const struct fabric *fb);
void fabric_counts(const struct fabric *fb, int *prepared, int *ports, int *segments);

#endif
