/* nl: the few rtnetlink requests the fabric makes, over libmnl.  One
 * socket belongs to one network namespace (the one current when it was
 * opened); every request waits for the kernel's answer, so an error comes
 * back to the request that caused it. */
#ifndef KH_NL_H
#define KH_NL_H

#include <stddef.h>
#include <stdint.h>

struct mnl_socket;

struct nl {
	struct mnl_socket *s;
	uint32_t seq;
	uint32_t portid;
};

#define NL_BUF 8192

/* Open a route socket in the current network namespace. */
int nl_open(struct nl *nl, char *err, size_t errlen);
void nl_close(struct nl *nl);

/* What a link request sets; zero fields are left alone. */
struct nl_link {
	int index;	    /* the link, or the index to give a new one */
	const char *name;   /* the link by name (index 0), or a new link's name */
	const char *kind;   /* create a link of this kind ("bridge", "veth") */
	const uint8_t *mac; /* 6 bytes */
	int mtu;
	int master;   /* ifindex of the bridge to join; -1: leave it */
	int up;	      /* 1: set up, -1: set down */
	int allmulti; /* 1: receive every multicast frame, -1: only those joined */
	int group;
	/* veth: the peer end */
	const char *peer_name;
	int peer_index;
	int peer_netns; /* fd of the namespace for the peer; -1: same */
	int peer_mtu;
	const uint8_t *peer_mac;
	/* bridge */
	int br_nosnoop; /* multicast snooping off */
	/* macvlan: its lower device (ifindex here) and mode (MACVLAN_MODE_*) */
	int link;
	int macvlan_mode;
	/* vxlan: VNI, local address (network order), UDP port; always
	 * learning off, no multicast group, no link */
	int vni;
	uint32_t vx_local;
	int vx_port;
	/* where the link is or goes: nsid > 0, the namespace of that id (as
	 * nl_nsid_set gave it) for a change; in_netns, a new link is made in
	 * the namespace of fd netns */
	int nsid;
	int in_netns, netns;
};

/* Create (kind set) or change a link.  Returns 0, or -errno with err. */
int nl_link(struct nl *nl, const struct nl_link *l, char *err, size_t errlen);
/* A bridge port's learning (0: off: it adds nothing to the bridge's
 * forwarding table, so every frame floods to the other ports). */
int nl_brport_learning(struct nl *nl, int index, int learning, char *err, size_t errlen);
/* A static forwarding entry of a VXLAN device (index): frames for mac go
 * to the remote address dst (IPv4, network order).  add 1: create or, with
 * append, add dst to the entry's remotes (the all-zeros MAC: every frame
 * with no entry of its own, head-end replicated); otherwise replace its
 * remote.  add 0: remove dst from the entry.  Returns 0 or -errno. */
int nl_fdb(struct nl *nl, int add, int index, const uint8_t mac[6], uint32_t dst, int append,
	   char *err, size_t errlen);
/* Delete a link by index, or every link of a group (index 0, group set). */
int nl_link_del(struct nl *nl, int index, int group, char *err, size_t errlen);
/* Delete a link (index) or a group of links (index 0) in the namespace of
 * nsid (> 0), as nl_link_del does here. */
int nl_link_del_in(struct nl *nl, int nsid, int index, int group, char *err, size_t errlen);
/* Give the namespace of fd the id nsid (> 0) as seen from this socket's
 * namespace, so later requests can aim at it without entering it. */
int nl_nsid_set(struct nl *nl, int fd, int nsid, char *err, size_t errlen);
/* The id the namespace of fd has as seen from this socket's namespace:
 * > 0, 0 when it has none, or -errno. */
int nl_nsid_get(struct nl *nl, int fd);

struct nl_stats {
	int index;
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
};
/* Counters of every link of the namespace of nsid (0: this one): calls
 * fn for each.  Returns 0 or -errno. */
int nl_link_stats(struct nl *nl, int nsid, void (*fn)(void *arg, const struct nl_stats *),
		  void *arg);
/* The same for one link (index > 0): one message, not a dump.  -ENODEV
 * when it is not there. */
int nl_link_stats_of(struct nl *nl, int nsid, int index,
		     void (*fn)(void *arg, const struct nl_stats *), void *arg);
/* Find a link's index by name: >0, or -errno. */
int nl_link_index(struct nl *nl, const char *name);
/* Add (or replace) an address: family AF_INET or AF_INET6. */
int nl_addr(struct nl *nl, int family, int index, const char *addr, int prefix, char *err,
	    size_t errlen);
/* Replace the default route of family through gw on index. */
int nl_default_route(struct nl *nl, int family, int index, const char *gw, char *err,
		     size_t errlen);

#endif
