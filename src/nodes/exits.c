/* exits: exit codes of processes that are not our children, from the
 * kernel's taskstats exit notifications (exits.h). */
#include "nodes/exits.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>

#define EXITS_MAX 4096 /* as many as a facility has nodes */

struct exit_slot {
	pid_t pid; /* 0: free */
	int seen;
	int status;
};

struct exits {
	struct mnl_socket *nl;
	uint16_t family;
	uint32_t seq;
	char cpus[32];
	unsigned long lost;
	int hi; /* slots in use are below this */
	int n;	/* pids watched */
	struct exit_slot slot[EXITS_MAX];
	char buf[65536];
};

static struct exit_slot *
find(struct exits *x, pid_t pid)
{
	for (int i = 0; i < x->hi; i++)
		if (x->slot[i].pid == pid)
			return &x->slot[i];
	return NULL;
}

/* One request on the blocking socket, and its answer: fn sees each reply
 * message.  Returns 0, or -1 with errno. */
static int
request(struct exits *x, struct nlmsghdr *nlh, mnl_cb_t fn, void *arg)
{
	uint32_t portid = mnl_socket_get_portid(x->nl);
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++x->seq;
	if (mnl_socket_sendto(x->nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	for (;;) {
		struct pollfd p = {mnl_socket_get_fd(x->nl), POLLIN, 0};
		if (poll(&p, 1, 2000) != 1) {
			errno = ETIMEDOUT;
			return -1;
		}
		ssize_t n = mnl_socket_recvfrom(x->nl, x->buf, sizeof(x->buf));
		if (n < 0) {
			if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
				continue;
			return -1;
		}
		int r = mnl_cb_run(x->buf, (size_t)n, x->seq, portid, fn, arg);
		if (r <= MNL_CB_STOP)
			return r;
	}
}

static int
family_attr(const struct nlattr *a, void *arg)
{
	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID && mnl_attr_validate(a, MNL_TYPE_U16) == 0)
		*(uint16_t *)arg = mnl_attr_get_u16(a);
	return MNL_CB_OK;
}

static int
family_cb(const struct nlmsghdr *nlh, void *arg)
{
	mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_attr, arg);
	return MNL_CB_OK;
}

static struct nlmsghdr *
genl_start(struct exits *x, char *buf, uint16_t type, uint8_t cmd, uint8_t version)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	struct genlmsghdr *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = version;
	(void)x;
	return nlh;
}

static int
listener(struct exits *x, int attr)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = genl_start(x, buf, x->family, TASKSTATS_CMD_GET, TASKSTATS_VERSION);
	mnl_attr_put_strz(nlh, (uint16_t)attr, x->cpus);
	return request(x, nlh, NULL, NULL) < 0 ? -1 : 0;
}

struct exits *
exits_open(char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct exits *x = calloc(1, sizeof(*x));
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	int big = 4 << 20;

	if (x == NULL) {
		seterr(err, errlen, "exits: out of memory");
		return NULL;
	}
	snprintf(x->cpus, sizeof(x->cpus), "0-%ld", ncpu > 1 ? ncpu - 1 : 0);
	x->seq = (uint32_t)time(NULL);
	if ((x->nl = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC)) == NULL ||
	    mnl_socket_bind(x->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		seterr(err, errlen, "exits: generic netlink: %s", strerror(errno));
		goto fail;
	}
	/* Room for a burst of other processes' exits between two reads. */
	if (setsockopt(mnl_socket_get_fd(x->nl), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
		setsockopt(mnl_socket_get_fd(x->nl), SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	struct nlmsghdr *nlh = genl_start(x, buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME);
	if (request(x, nlh, family_cb, &x->family) < 0 || x->family == 0) {
		seterr(err, errlen, "exits: no taskstats in this kernel: %s", strerror(errno));
		goto fail;
	}
	if (listener(x, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK) < 0) {
		seterr(err, errlen, "exits: cannot listen for exits on CPUs %s: %s", x->cpus,
		       strerror(errno));
		goto fail;
	}
	int fd = mnl_socket_get_fd(x->nl);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		seterr(err, errlen, "exits: %s", strerror(errno));
		listener(x, TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK);
		goto fail;
	}
	return x;
fail:
	if (x->nl)
		mnl_socket_close(x->nl);
	free(x);
	return NULL;
}

void
exits_close(struct exits *x)
{
	if (x == NULL)
		return;
	int fd = mnl_socket_get_fd(x->nl);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	listener(x, TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK);
	mnl_socket_close(x->nl);
	free(x);
}

int
exits_fd(const struct exits *x)
{
	return x ? mnl_socket_get_fd(x->nl) : -1;
}

int
exits_watch(struct exits *x, pid_t pid)
{
	if (x == NULL || pid <= 0)
		return -1;
	struct exit_slot *s = find(x, pid);
	if (s == NULL && (s = find(x, 0)) == NULL) {
		if (x->hi == EXITS_MAX)
			return -1;
		s = &x->slot[x->hi++];
	}
	if (s->pid == 0)
		x->n++;
	*s = (struct exit_slot){.pid = pid};
	return 0;
}

void
exits_unwatch(struct exits *x, pid_t pid)
{
	struct exit_slot *s = x && pid > 0 ? find(x, pid) : NULL;
	if (s == NULL)
		return;
	*s = (struct exit_slot){0};
	x->n--;
	while (x->hi > 0 && x->slot[x->hi - 1].pid == 0)
		x->hi--;
}

int
exits_watching(const struct exits *x)
{
	return x ? x->n : 0;
}

struct aggr {
	uint32_t pid;
	int has_pid;
	const struct taskstats *st;
	size_t stlen;
};

static int
aggr_attr(const struct nlattr *a, void *arg)
{
	struct aggr *g = arg;
	switch (mnl_attr_get_type(a)) {
	case TASKSTATS_TYPE_PID:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
			g->pid = mnl_attr_get_u32(a);
			g->has_pid = 1;
		}
		break;
	case TASKSTATS_TYPE_STATS:
		g->st = mnl_attr_get_payload(a);
		g->stlen = mnl_attr_get_payload_len(a);
		break;
	}
	return MNL_CB_OK;
}

static int
top_attr(const struct nlattr *a, void *arg)
{
	struct exits *x = arg;
	struct aggr g = {0};
	struct taskstats ts;

	/* Only a task's own record carries its exit code (a thread group's
	 * aggregate does not). */
	if (mnl_attr_get_type(a) != TASKSTATS_TYPE_AGGR_PID ||
	    mnl_attr_validate(a, MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_parse_nested(a, aggr_attr, &g) < 0 || !g.has_pid || g.st == NULL ||
	    g.stlen < offsetof(struct taskstats, ac_exitcode) + sizeof(ts.ac_exitcode))
		return MNL_CB_OK;
	struct exit_slot *s = g.pid > 0 && g.pid <= INT32_MAX ? find(x, (pid_t)g.pid) : NULL;
	if (s == NULL)
		return MNL_CB_OK;
	memset(&ts, 0, sizeof(ts));
	memcpy(&ts, g.st, g.stlen < sizeof(ts) ? g.stlen : sizeof(ts));
	s->seen = 1;
	s->status = (int)ts.ac_exitcode;
	return MNL_CB_OK;
}

static int
exit_cb(const struct nlmsghdr *nlh, void *arg)
{
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct genlmsghdr)))
		return MNL_CB_OK;
	const struct genlmsghdr *g = mnl_nlmsg_get_payload(nlh);
	if (g->cmd == TASKSTATS_CMD_NEW)
		mnl_attr_parse(nlh, sizeof(*g), top_attr, arg);
	return MNL_CB_OK;
}

void
exits_drain(struct exits *x)
{
	if (x == NULL)
		return;
	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = {x->buf, sizeof(x->buf)};
		struct msghdr mh = {.msg_name = &from,
				    .msg_namelen = sizeof(from),
				    .msg_iov = &iov,
				    .msg_iovlen = 1};
		ssize_t n = recvmsg(mnl_socket_get_fd(x->nl), &mh, 0);
		if (n < 0) {
			if (errno == ENOBUFS) {
				x->lost++;
				continue;
			}
			if (errno == EINTR)
				continue;
			return; /* EAGAIN: all read */
		}
		/* Only the kernel's word counts: a process of the host may
		 * send to our port too. */
		if (mh.msg_namelen != sizeof(from) || from.nl_pid != 0 ||
		    (mh.msg_flags & MSG_TRUNC))
			continue;
		mnl_cb_run(x->buf, (size_t)n, 0, 0, exit_cb, x);
	}
}

int
exits_status(struct exits *x, pid_t pid, int *status)
{
	if (x == NULL || pid <= 0)
		return 0;
	exits_drain(x);
	struct exit_slot *s = find(x, pid);
	if (s == NULL || !s->seen)
		return 0;
	*status = s->status;
	return 1;
}

unsigned long
exits_lost(const struct exits *x)
{
	return x ? x->lost : 0;
}
