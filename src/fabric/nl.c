/* nl: rtnetlink requests (links, addresses, routes) with libmnl.  Each
 * request asks for an acknowledgement and reads until it, so a failing
 * request is reported by the call that made it. */
#include "fabric/nl.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/net_namespace.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int
nl_open(struct nl *nl, char *err, size_t errlen)
{
	nl->s = mnl_socket_open(NETLINK_ROUTE);
	if (nl->s == NULL || mnl_socket_bind(nl->s, 0, MNL_SOCKET_AUTOPID) < 0) {
		seterr(err, errlen, "netlink: %s", strerror(errno));
		if (nl->s)
			mnl_socket_close(nl->s);
		nl->s = NULL;
		return -1;
	}
	nl->portid = mnl_socket_get_portid(nl->s);
	nl->seq = (uint32_t)time(NULL);
	return 0;
}

void
nl_close(struct nl *nl)
{
	if (nl->s)
		mnl_socket_close(nl->s);
	nl->s = NULL;
}

static struct nlmsghdr *
start(char *buf, struct nl *nl, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	h->nlmsg_seq = ++nl->seq;
	return h;
}

/* Send h and read up to its acknowledgement.  Returns 0 or -errno. */
static int
talk(struct nl *nl, struct nlmsghdr *h, mnl_cb_t cb, void *arg)
{
	char buf[NL_BUF];
	uint32_t seq = h->nlmsg_seq;
	int rc;

	if (mnl_socket_sendto(nl->s, h, h->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->s, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		rc = mnl_cb_run(buf, (size_t)n, seq, nl->portid, cb, arg);
		if (rc <= MNL_CB_STOP)
			return rc < 0 ? -errno : 0;
	}
}

int
nl_link(struct nl *nl, const struct nl_link *l, char *err, size_t errlen)
{
	char buf[NL_BUF];
	/* A change aimed at another namespace must be RTM_SETLINK: RTM_NEWLINK
	 * looks the index up in the socket's own namespace. */
	uint16_t type = l->kind || l->nsid <= 0 ? RTM_NEWLINK : RTM_SETLINK;
	struct nlmsghdr *h = start(buf, nl, type, l->kind ? NLM_F_CREATE | NLM_F_EXCL : 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	int rc;

	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = l->index;
	if (l->up) {
		ifm->ifi_change = IFF_UP;
		ifm->ifi_flags = l->up > 0 ? IFF_UP : 0;
	}
	if (l->allmulti) {
		ifm->ifi_change |= IFF_ALLMULTI;
		ifm->ifi_flags |= l->allmulti > 0 ? IFF_ALLMULTI : 0;
	}
	if (l->name)
		mnl_attr_put_strz(h, IFLA_IFNAME, l->name);
	if (l->mac)
		mnl_attr_put(h, IFLA_ADDRESS, 6, l->mac);
	if (l->mtu)
		mnl_attr_put_u32(h, IFLA_MTU, (uint32_t)l->mtu);
	if (l->master > 0)
		mnl_attr_put_u32(h, IFLA_MASTER, (uint32_t)l->master);
	if (l->group)
		mnl_attr_put_u32(h, IFLA_GROUP, (uint32_t)l->group);
	if (l->link > 0)
		mnl_attr_put_u32(h, IFLA_LINK, (uint32_t)l->link);
	if (l->nsid > 0)
		mnl_attr_put_u32(h, IFLA_TARGET_NETNSID, (uint32_t)l->nsid);
	if (l->in_netns)
		mnl_attr_put_u32(h, IFLA_NET_NS_FD, (uint32_t)l->netns);
	if (l->kind) {
		struct nlattr *li = mnl_attr_nest_start(h, IFLA_LINKINFO);
		mnl_attr_put_strz(h, IFLA_INFO_KIND, l->kind);
		struct nlattr *data = mnl_attr_nest_start(h, IFLA_INFO_DATA);
		if (strcmp(l->kind, "veth") == 0 && l->peer_name) {
			struct nlattr *peer = mnl_attr_nest_start(h, VETH_INFO_PEER);
			struct ifinfomsg *pi = mnl_nlmsg_put_extra_header(h, sizeof(*pi));
			pi->ifi_family = AF_UNSPEC;
			pi->ifi_index = l->peer_index;
			mnl_attr_put_strz(h, IFLA_IFNAME, l->peer_name);
			if (l->peer_netns >= 0)
				mnl_attr_put_u32(h, IFLA_NET_NS_FD, (uint32_t)l->peer_netns);
			if (l->peer_mtu)
				mnl_attr_put_u32(h, IFLA_MTU, (uint32_t)l->peer_mtu);
			if (l->peer_mac)
				mnl_attr_put(h, IFLA_ADDRESS, 6, l->peer_mac);
			mnl_attr_nest_end(h, peer);
		}
		if ((strcmp(l->kind, "macvlan") == 0 || strcmp(l->kind, "macvtap") == 0) &&
		    l->macvlan_mode)
			mnl_attr_put_u32(h, IFLA_MACVLAN_MODE, (uint32_t)l->macvlan_mode);
		if (strcmp(l->kind, "bridge") == 0 && l->br_nosnoop)
			mnl_attr_put_u8(h, IFLA_BR_MCAST_SNOOPING, 0);
		if (strcmp(l->kind, "vxlan") == 0) {
			mnl_attr_put_u32(h, IFLA_VXLAN_ID, (uint32_t)l->vni);
			mnl_attr_put(h, IFLA_VXLAN_LOCAL, 4, &l->vx_local);
			mnl_attr_put_u16(h, IFLA_VXLAN_PORT, htons((uint16_t)l->vx_port));
			mnl_attr_put_u8(h, IFLA_VXLAN_LEARNING, 0);
		}
		mnl_attr_nest_end(h, data);
		mnl_attr_nest_end(h, li);
	}
	if ((rc = talk(nl, h, NULL, NULL)) < 0)
		seterr(err, errlen, "%s link %s: %s", l->kind ? "create" : "set",
		       l->name ? l->name : "", strerror(-rc));
	return rc;
}

int
nl_brport_learning(struct nl *nl, int index, int learning, char *err, size_t errlen)
{
	char buf[NL_BUF];
	struct nlmsghdr *h = start(buf, nl, RTM_SETLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	int rc;

	/* AF_BRIDGE: the bridge's own setlink, which reads the port's
	 * attributes from a nested IFLA_PROTINFO */
	ifm->ifi_family = AF_BRIDGE;
	ifm->ifi_index = index;
	struct nlattr *pi = mnl_attr_nest_start(h, IFLA_PROTINFO);
	mnl_attr_put_u8(h, IFLA_BRPORT_LEARNING, learning ? 1 : 0);
	mnl_attr_nest_end(h, pi);
	if ((rc = talk(nl, h, NULL, NULL)) < 0)
		seterr(err, errlen, "bridge port %d: learning: %s", index, strerror(-rc));
	return rc;
}

int
nl_fdb(struct nl *nl, int add, int index, const uint8_t mac[6], uint32_t dst, int append, char *err,
       size_t errlen)
{
	char buf[NL_BUF], a[INET_ADDRSTRLEN];
	uint16_t flags = add ? NLM_F_CREATE | (append ? NLM_F_APPEND : NLM_F_REPLACE) : 0;
	struct nlmsghdr *h = start(buf, nl, add ? RTM_NEWNEIGH : RTM_DELNEIGH, flags);
	struct ndmsg *nd = mnl_nlmsg_put_extra_header(h, sizeof(*nd));
	int rc;

	/* NTF_SELF: the VXLAN device's own table, not a bridge's */
	nd->ndm_family = AF_BRIDGE;
	nd->ndm_ifindex = index;
	nd->ndm_state = NUD_PERMANENT | NUD_NOARP;
	nd->ndm_flags = NTF_SELF;
	mnl_attr_put(h, NDA_LLADDR, 6, mac);
	mnl_attr_put(h, NDA_DST, 4, &dst);
	if ((rc = talk(nl, h, NULL, NULL)) < 0)
		seterr(err, errlen, "%s forwarding entry %02x:%02x:%02x:%02x:%02x:%02x -> %s: %s",
		       add ? "add" : "delete", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
		       inet_ntop(AF_INET, &dst, a, sizeof(a)) ? a : "?", strerror(-rc));
	return rc;
}

int
nl_link_del(struct nl *nl, int index, int group, char *err, size_t errlen)
{
	return nl_link_del_in(nl, 0, index, group, err, errlen);
}

int
nl_link_del_in(struct nl *nl, int nsid, int index, int group, char *err, size_t errlen)
{
	char buf[NL_BUF];
	struct nlmsghdr *h = start(buf, nl, RTM_DELLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	int rc;

	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	if (index == 0)
		mnl_attr_put_u32(h, IFLA_GROUP, (uint32_t)group);
	if (nsid > 0)
		mnl_attr_put_u32(h, IFLA_TARGET_NETNSID, (uint32_t)nsid);
	if ((rc = talk(nl, h, NULL, NULL)) < 0)
		seterr(err, errlen, "delete link %d: %s", index, strerror(-rc));
	return rc;
}

int
nl_nsid_set(struct nl *nl, int fd, int nsid, char *err, size_t errlen)
{
	char buf[NL_BUF];
	struct nlmsghdr *h = start(buf, nl, RTM_NEWNSID, 0);
	struct rtgenmsg *g = mnl_nlmsg_put_extra_header(h, sizeof(*g));
	int rc;

	g->rtgen_family = AF_UNSPEC;
	mnl_attr_put_u32(h, NETNSA_FD, (uint32_t)fd);
	mnl_attr_put_u32(h, NETNSA_NSID, (uint32_t)nsid);
	if ((rc = talk(nl, h, NULL, NULL)) < 0)
		seterr(err, errlen, "namespace id %d: %s", nsid, strerror(-rc));
	return rc;
}

static int
nsid_attr(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == NETNSA_NSID && mnl_attr_get_payload_len(a) >= 4)
		*(int32_t *)data = (int32_t)mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int
nsid_cb(const struct nlmsghdr *h, void *arg)
{
	if (h->nlmsg_type == RTM_NEWNSID)
		mnl_attr_parse(h, sizeof(struct rtgenmsg), nsid_attr, arg);
	return MNL_CB_OK;
}

int
nl_nsid_get(struct nl *nl, int fd)
{
	char buf[NL_BUF];
	struct nlmsghdr *h = start(buf, nl, RTM_GETNSID, 0);
	struct rtgenmsg *g = mnl_nlmsg_put_extra_header(h, sizeof(*g));
	int32_t id = -1;
	int rc;

	g->rtgen_family = AF_UNSPEC;
	mnl_attr_put_u32(h, NETNSA_FD, (uint32_t)fd);
	if ((rc = talk(nl, h, nsid_cb, &id)) < 0)
		return rc;
	return id > 0 ? id : 0;
}

struct stats_arg {
	void (*fn)(void *, const struct nl_stats *);
	void *arg;
};

static int
stats_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);
	if (type == IFLA_STATS64 && mnl_attr_get_payload_len(a) >= sizeof(struct rtnl_link_stats64))
		tb[IFLA_STATS64] = a;
	return MNL_CB_OK;
}

static int
stats_cb(const struct nlmsghdr *h, void *arg)
{
	const struct stats_arg *sa = arg;
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(h);
	const struct nlattr *tb[IFLA_MAX + 1] = {0};
	struct rtnl_link_stats64 s;
	struct nl_stats out = {.index = ifm->ifi_index};

	if (h->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	mnl_attr_parse(h, sizeof(*ifm), stats_attr, tb);
	if (tb[IFLA_STATS64]) {
		memcpy(&s, mnl_attr_get_payload(tb[IFLA_STATS64]), sizeof(s));
		out.rx_bytes = s.rx_bytes;
		out.tx_bytes = s.tx_bytes;
		out.rx_packets = s.rx_packets;
		out.tx_packets = s.tx_packets;
	}
	sa->fn(sa->arg, &out);
	return MNL_CB_OK;
}

int
nl_link_stats(struct nl *nl, int nsid, void (*fn)(void *arg, const struct nl_stats *), void *arg)
{
	return nl_link_stats_of(nl, nsid, 0, fn, arg);
}

int
nl_link_stats_of(struct nl *nl, int nsid, int index, void (*fn)(void *arg, const struct nl_stats *),
		 void *arg)
{
	char buf[NL_BUF];
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;
	struct stats_arg sa = {fn, arg};

	h->nlmsg_type = RTM_GETLINK;
	/* a single get ends with its acknowledgement, a dump with DONE */
	h->nlmsg_flags = NLM_F_REQUEST | (index ? NLM_F_ACK : NLM_F_DUMP);
	h->nlmsg_seq = ++nl->seq;
	ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	if (nsid > 0)
		mnl_attr_put_u32(h, IFLA_TARGET_NETNSID, (uint32_t)nsid);
	/* only what a counter needs: no VF or per-protocol details */
	mnl_attr_put_u32(h, IFLA_EXT_MASK, 0);
	return talk(nl, h, stats_cb, &sa);
}

static int
index_cb(const struct nlmsghdr *h, void *arg)
{
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(h);
	*(int *)arg = ifm->ifi_index;
	return MNL_CB_OK;
}

int
nl_link_index(struct nl *nl, const char *name)
{
	char buf[NL_BUF];
	struct nlmsghdr *h = start(buf, nl, RTM_GETLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(h, sizeof(*ifm));
	int index = 0, rc;

	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	if ((rc = talk(nl, h, index_cb, &index)) < 0)
		return rc;
	return index > 0 ? index : -ENODEV;
}

int
nl_addr(struct nl *nl, int family, int index, const char *addr, int prefix, char *err,
	size_t errlen)
{
	char buf[NL_BUF];
	unsigned char a[16];
	struct nlmsghdr *h = start(buf, nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
	int rc;

	if (inet_pton(family, addr, a) != 1) {
		seterr(err, errlen, "bad address %s", addr);
		return -EINVAL;
	}
	ifa->ifa_family = (unsigned char)family;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_index = (unsigned)index;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	mnl_attr_put(h, IFA_LOCAL, family == AF_INET ? 4 : 16, a);
	mnl_attr_put(h, IFA_ADDRESS, family == AF_INET ? 4 : 16, a);
	/* The plan gives every address once: no duplicate detection, so the
	 * address works the moment /init starts. */
	if (family == AF_INET6) {
		ifa->ifa_flags = IFA_F_NODAD;
		mnl_attr_put_u32(h, IFA_FLAGS, IFA_F_NODAD);
	}
	if ((rc = talk(nl, h, NULL, NULL)) < 0)
		seterr(err, errlen, "address %s/%d: %s", addr, prefix, strerror(-rc));
	return rc;
}

int
nl_default_route(struct nl *nl, int family, int index, const char *gw, char *err, size_t errlen)
{
	char buf[NL_BUF];
	unsigned char a[16];
	struct nlmsghdr *h = start(buf, nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
	int rc;

	if (inet_pton(family, gw, a) != 1) {
		seterr(err, errlen, "bad gateway %s", gw);
		return -EINVAL;
	}
	rt->rtm_family = (unsigned char)family;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_STATIC;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	mnl_attr_put(h, RTA_GATEWAY, family == AF_INET ? 4 : 16, a);
	mnl_attr_put_u32(h, RTA_OIF, (uint32_t)index);
	if ((rc = talk(nl, h, NULL, NULL)) < 0)
		seterr(err, errlen, "default route via %s: %s", gw, strerror(-rc));
	return rc;
}
