/* rawframe: raw Ethernet frames for the fabric's end-to-end test.  A sender
 * writes frames of a local experimental EtherType that carry a token naming
 * it, with any addresses and an optional 802.1Q tag; a listener prints the
 * tokens that reach its interfaces, so a test can see who reached whom.
 *
 *   rawframe listen SECONDS [IFACE...]     every interface but lo if none given
 *   rawframe send IFACE DSTMAC SRCMAC [VLAN] TOKEN
 *   rawframe batch [REPEAT]                lines "IFACE DSTMAC SRCMAC VLAN|- TOKEN"
 *
 * SRCMAC "-" is the interface's own address.  The listener prints
 * "# listening on IFACE..." once its sockets are open, then "TOKEN IFACE"
 * for each token frame it receives (not those its own node sends); it stops
 * after SECONDS or on SIGTERM/SIGINT. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* IEEE 802 "local experimental EtherType 1": no stack on the node claims
 * it, so only our listener reacts to these frames. */
#define RF_ETHERTYPE 0x88b5
#define RF_MAGIC     "KHRF"
#define RF_MAGICLEN  4
#define RF_TOKENMAX  200
#define RF_MAXIFS    64
#define RF_MINFRAME  60

static const char usage[] =
    "usage: rawframe listen SECONDS [IFACE...]\n"
    "       rawframe send IFACE DSTMAC SRCMAC [VLAN] TOKEN\n"
    "       rawframe batch [REPEAT]    (stdin: IFACE DSTMAC SRCMAC VLAN|- TOKEN)\n";

struct listener {
	int fd;
	int ifindex;
	char name[IF_NAMESIZE];
};

static int
parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &end) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* "-" means untagged (-1); 0 is a priority tag, as 802.1Q allows. */
static int
parse_vlan(const char *s, int *vlan)
{
	char *end;
	long v;

	if (strcmp(s, "-") == 0) {
		*vlan = -1;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 4095)
		return -1;
	*vlan = (int)v;
	return 0;
}

/* A token is printed as one word, so it must be one. */
static int
valid_token(const char *t, size_t len)
{
	if (len == 0 || len > RF_TOKENMAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (t[i] <= ' ' || t[i] > '~')
			return 0;
	return 1;
}

static int
own_mac(int fd, const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return -1;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

/* Build and send one token frame; prints why on failure. */
static int
send_frame(int fd, const char *ifname, const char *dst, const char *src, const char *vlan,
	   const char *token)
{
	uint8_t frame[ETH_HLEN + 4 + 2 + RF_MAGICLEN + 1 + RF_TOKENMAX + RF_MINFRAME];
	uint8_t dmac[6], smac[6];
	struct sockaddr_ll sll;
	size_t tl = strlen(token), n = 0;
	unsigned ifindex;
	int vid;

	if (!valid_token(token, tl)) {
		fprintf(stderr, "rawframe: invalid token '%.40s'\n", token);
		return -1;
	}
	if (parse_mac(dst, dmac) < 0 || (strcmp(src, "-") != 0 && parse_mac(src, smac) < 0)) {
		fprintf(stderr, "rawframe: invalid MAC address in '%s %s'\n", dst, src);
		return -1;
	}
	if (parse_vlan(vlan, &vid) < 0) {
		fprintf(stderr, "rawframe: invalid VLAN id '%s'\n", vlan);
		return -1;
	}
	ifindex = if_nametoindex(ifname);
	if (ifindex == 0) {
		fprintf(stderr, "rawframe: %s: %s\n", ifname, strerror(errno));
		return -1;
	}
	if (strcmp(src, "-") == 0 && own_mac(fd, ifname, smac) < 0) {
		fprintf(stderr, "rawframe: %s: hardware address: %s\n", ifname, strerror(errno));
		return -1;
	}
	memset(frame, 0, sizeof(frame));
	memcpy(frame, dmac, 6);
	memcpy(frame + 6, smac, 6);
	n = 12;
	if (vid >= 0) {
		frame[n++] = ETHERTYPE_VLAN >> 8;
		frame[n++] = ETHERTYPE_VLAN & 0xff;
		frame[n++] = (uint8_t)(vid >> 8);
		frame[n++] = (uint8_t)vid;
	}
	frame[n++] = RF_ETHERTYPE >> 8;
	frame[n++] = RF_ETHERTYPE & 0xff;
	memcpy(frame + n, RF_MAGIC, RF_MAGICLEN);
	n += RF_MAGICLEN;
	frame[n++] = (uint8_t)tl;
	memcpy(frame + n, token, tl);
	n += tl;
	if (n < RF_MINFRAME)
		n = RF_MINFRAME;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)ifindex;
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, dmac, 6);
	if (sendto(fd, frame, n, 0, (struct sockaddr *)&sll, sizeof(sll)) != (ssize_t)n) {
		fprintf(stderr, "rawframe: send on %s: %s\n", ifname, strerror(errno));
		return -1;
	}
	return 0;
}

static int
open_sender(void)
{
	/* protocol 0: this socket only sends, so it queues nothing. */
	int fd = socket(AF_PACKET, SOCK_RAW, 0);

	if (fd < 0)
		fprintf(stderr, "rawframe: packet socket: %s\n", strerror(errno));
	return fd;
}

static int
cmd_send(int argc, char **argv)
{
	int fd, rc;

	if (argc != 4 && argc != 5) {
		fputs(usage, stderr);
		return 2;
	}
	if ((fd = open_sender()) < 0)
		return 1;
	rc = send_frame(fd, argv[0], argv[1], argv[2], argc == 5 ? argv[3] : "-", argv[argc - 1]);
	close(fd);
	return rc < 0 ? 1 : 0;
}

/* Every line is sent REPEAT times (the whole list, then again), so one lost
 * frame cannot look like a missing path.  A bad line is reported once and
 * the rest still goes out. */
struct batch_line {
	char *text;
	int bad;
};

static int
cmd_batch(int argc, char **argv)
{
	char line[512];
	struct batch_line *lines = NULL;
	size_t nlines = 0, cap = 0;
	long repeat = 1;
	int fd = -1, failed = 0;

	if (argc > 1) {
		fputs(usage, stderr);
		return 2;
	}
	if (argc == 1) {
		char *end;
		repeat = strtol(argv[0], &end, 10);
		if (end == argv[0] || *end || repeat < 1 || repeat > 100) {
			fprintf(stderr, "rawframe: invalid repeat count '%s'\n", argv[0]);
			return 2;
		}
	}
	while (fgets(line, sizeof(line), stdin)) {
		if (nlines == cap) {
			cap = cap ? cap * 2 : 64;
			struct batch_line *l = realloc(lines, cap * sizeof(*l));
			if (!l)
				goto nomem;
			lines = l;
		}
		lines[nlines].bad = 0;
		if (!(lines[nlines].text = strdup(line)))
			goto nomem;
		nlines++;
	}
	if ((fd = open_sender()) < 0) {
		failed = 1;
		goto out;
	}
	for (long r = 0; r < repeat; r++) {
		/* A pause between rounds lets queues drain, so a burst that
		 * overflows one cannot swallow every copy of a frame. */
		if (r > 0)
			nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
		for (size_t i = 0; i < nlines; i++) {
			char copy[512], *w[6], *save = NULL;
			int nw = 0;

			if (lines[i].bad)
				continue;
			snprintf(copy, sizeof(copy), "%s", lines[i].text);
			for (char *t = strtok_r(copy, " \t\r\n", &save); t && nw < 6;
			     t = strtok_r(NULL, " \t\r\n", &save))
				w[nw++] = t;
			if (nw == 0 || w[0][0] == '#')
				continue;
			if (nw != 5) {
				fprintf(stderr, "rawframe: line %zu: want 5 words\n", i + 1);
				lines[i].bad = failed = 1;
				continue;
			}
			if (send_frame(fd, w[0], w[1], w[2], w[3], w[4]) < 0)
				lines[i].bad = failed = 1;
		}
	}
	goto out;
nomem:
	fprintf(stderr, "rawframe: out of memory\n");
	failed = 1;
out:
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < nlines; i++)
		free(lines[i].text);
	free(lines);
	return failed;
}

static int
open_listener(struct listener *l, const char *name)
{
	struct sockaddr_ll sll;
	struct packet_mreq mr;
	int size = 4 << 20;

	snprintf(l->name, sizeof(l->name), "%s", name);
	l->ifindex = (int)if_nametoindex(name);
	if (l->ifindex == 0) {
		fprintf(stderr, "rawframe: %s: %s\n", name, strerror(errno));
		return -1;
	}
	l->fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (l->fd < 0) {
		fprintf(stderr, "rawframe: packet socket: %s\n", strerror(errno));
		return -1;
	}
	/* A burst of floods must not overflow the queue and pass for a
	 * missing path; FORCE needs CAP_NET_ADMIN, the plain one is a fallback. */
	if (setsockopt(l->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = l->ifindex;
	if (bind(l->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "rawframe: bind %s: %s\n", name, strerror(errno));
		close(l->fd);
		return -1;
	}
	/* Promiscuous: the listener is an adversary that wants every frame the
	 * fabric lets onto its wire, whatever the destination address. */
	memset(&mr, 0, sizeof(mr));
	mr.mr_ifindex = l->ifindex;
	mr.mr_type = PACKET_MR_PROMISC;
	if (setsockopt(l->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
		fprintf(stderr, "rawframe: promiscuous %s: %s\n", name, strerror(errno));
		close(l->fd);
		return -1;
	}
	return 0;
}

/* Read one frame; print its token if it is one of ours. */
static void
receive(const struct listener *l)
{
	uint8_t buf[2048];
	struct sockaddr_ll from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(l->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
	size_t off = 12;

	if (n < 0 || from.sll_pkttype == PACKET_OUTGOING)
		return;
	/* The kernel usually moves an 802.1Q tag out of the frame into its
	 * metadata; one left in place (or a QinQ tag) is skipped here. */
	while ((size_t)n >= off + 2 && ((buf[off] << 8 | buf[off + 1]) == ETHERTYPE_VLAN ||
					(buf[off] << 8 | buf[off + 1]) == 0x88a8))
		off += 4;
	if ((size_t)n < off + 2 + RF_MAGICLEN + 1 || (buf[off] << 8 | buf[off + 1]) != RF_ETHERTYPE)
		return;
	off += 2;
	if (memcmp(buf + off, RF_MAGIC, RF_MAGICLEN) != 0)
		return;
	off += RF_MAGICLEN;
	size_t tl = buf[off++];
	if (off + tl > (size_t)n || !valid_token((const char *)buf + off, tl))
		return;
	printf("%.*s %s\n", (int)tl, (const char *)buf + off, l->name);
}

static int
cmd_listen(int argc, char **argv)
{
	struct listener ls[RF_MAXIFS];
	struct pollfd pfd[RF_MAXIFS + 1];
	struct if_nameindex *all = NULL;
	struct timespec t0, t;
	sigset_t mask;
	double secs;
	char *end;
	int n = 0, sfd = -1, rc = 1;

	if (argc < 1) {
		fputs(usage, stderr);
		return 2;
	}
	secs = strtod(argv[0], &end);
	if (end == argv[0] || *end || secs <= 0 || secs > 3600) {
		fprintf(stderr, "rawframe: invalid duration '%s'\n", argv[0]);
		return 2;
	}
	if (argc == 1) {
		all = if_nameindex();
		if (!all) {
			fprintf(stderr, "rawframe: interfaces: %s\n", strerror(errno));
			return 1;
		}
	}
	for (int i = 0;; i++) {
		const char *name = all ? all[i].if_name : (i + 1 < argc ? argv[i + 1] : NULL);
		if (!name)
			break;
		if (all && strcmp(name, "lo") == 0)
			continue;
		if (n == RF_MAXIFS) {
			fprintf(stderr, "rawframe: more than %d interfaces\n", RF_MAXIFS);
			goto out;
		}
		if (open_listener(&ls[n], name) < 0)
			goto out;
		n++;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
		fprintf(stderr, "rawframe: signalfd: %s\n", strerror(errno));
		goto out;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# listening on");
	for (int i = 0; i < n; i++)
		printf(" %s", ls[i].name);
	printf("\n");

	for (int i = 0; i < n; i++)
		pfd[i] = (struct pollfd){.fd = ls[i].fd, .events = POLLIN};
	pfd[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		double left =
		    secs - (double)(t.tv_sec - t0.tv_sec) - (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
		if (left <= 0)
			break;
		int r = poll(pfd, (nfds_t)n + 1, (int)(left * 1000) + 1);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "rawframe: poll: %s\n", strerror(errno));
			goto out;
		}
		if (r > 0 && pfd[n].revents)
			break;
		for (int i = 0; r > 0 && i < n; i++)
			if (pfd[i].revents & POLLIN)
				receive(&ls[i]);
	}
	/* Drain what is queued: a frame that arrived before the end counts. */
	for (int i = 0; i < n; i++) {
		int q;
		while (ioctl(ls[i].fd, FIONREAD, &q) == 0 && q > 0)
			receive(&ls[i]);
	}
	rc = 0;
out:
	for (int i = 0; i < n; i++)
		close(ls[i].fd);
	if (sfd >= 0)
		close(sfd);
	if (all)
		if_freenameindex(all);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "listen") == 0)
		return cmd_listen(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "send") == 0)
		return cmd_send(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "batch") == 0)
		return cmd_batch(argc - 2, argv + 2);
	fputs(usage, argc >= 2 && strcmp(argv[1], "-h") == 0 ? stdout : stderr);
	return 2;
}
