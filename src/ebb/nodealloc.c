/* nodealloc: the NodeAllocator's two backends.  "kh" runs the facility's
 * own tools (khget, khdo, khctl) as a principal would, so inside a node it
 * goes through the service interface; "local" starts processes. */
#include "ebb/nodealloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/ebb.h"

#define MAXN 1024

struct nodealloc {
	struct nodealloc_conf c;
	char *argv[64];
	int argc;
	pid_t pid[MAXN]; /* local */
	int rank[MAXN];	 /* kh: each node's rank + 1 (0: none) */
	char steps[200]; /* kh: the last grow's timeline */
};

static uint64_t
mono_ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int run(const char *cmd, const char *input, char *out, size_t len);

struct nodealloc *
nodealloc_new(const struct nodealloc_conf *c, char *err, size_t errlen)
{
	if (c->backend == NULL ||
	    (strcmp(c->backend, "local") != 0 && strcmp(c->backend, "kh") != 0))
		return seterr(err, errlen, "node allocator: backend local or kh"), NULL;
	struct nodealloc *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return seterr(err, errlen, "out of memory"), NULL;
	a->c = *c;
	if (strcmp(c->backend, "kh") == 0 &&
	    (c->user == NULL || c->cred == NULL || c->appliance == NULL || c->cmd == NULL ||
	     c->netid < 3)) {
		free(a);
		return seterr(err, errlen,
			      "node allocator kh: needs a user, a credential, an appliance, a "
			      "command and a private domain"),
		       NULL;
	}
	if (strcmp(c->backend, "kh") == 0 && c->cred != NULL && strchr(c->cred, '\'') == NULL) {
		/* Growth must not wait for an ssh key exchange: the tools share
		 * one connection to the service interface (tools/client.c), which
		 * this opens now and keeps for as long as growth may come
		 * (unless the user chose otherwise). */
		char cmd[512];
		setenv("KH_SSH_MUX", "86400", 0);
		snprintf(cmd, sizeof(cmd), "KH_CRED='%s' khctl info >/dev/null 2>&1 </dev/null",
			 c->cred);
		/* In the background (a grandchild, reaped by init): the
		 * application serves at once, the connection comes meanwhile. */
		pid_t p = fork();
		if (p == 0) {
			if (fork() == 0) {
				execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
				_exit(127);
			}
			_exit(0);
		}
		if (p > 0)
			while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
				;
	}
	return a;
}

const char *
nodealloc_steps(const struct nodealloc *a)
{
	return a->steps;
}

void
nodealloc_free(struct nodealloc *a)
{
	if (a == NULL)
		return;
	for (int i = 0; i < MAXN; i++)
		nodealloc_shrink(a, (uint16_t)i);
	free(a);
}

static int
free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

/* Whether something listens at ip:port (a connect that succeeds within
 * 200 ms). */
static int
reachable_at(in_addr_t ip, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {0, 200000};
	sa.sin_addr.s_addr = ip;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Replace %n and %p (local) or %n and %a (kh) in s. */
static void
subst(char *out, size_t len, const char *s, const char *n, const char *p)
{
	size_t o = 0;
	for (; *s && o + 1 < len; s++) {
		if (s[0] == '%' && (s[1] == 'n' || s[1] == 'p' || s[1] == 'a')) {
			int w = snprintf(out + o, len - o, "%s", s[1] == 'n' ? n : p);
			o += w > 0 ? (size_t)w : 0;
			if (o >= len)
				o = len - 1;
			s++;
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
}

static int
grow_local(struct nodealloc *a, uint16_t n, char *addr, size_t len, char *err, size_t errlen)
{
	int port = free_port();
	char ps[16], args[64][256];
	char *argv[65];
	int i;
	if (port < 0)
		return seterr(err, errlen, "no free port");
	char ns[16];
	snprintf(ps, sizeof(ps), "%d", port);
	snprintf(ns, sizeof(ns), "%u", n);
	for (i = 0; a->c.argv[i] != NULL && i < 64; i++) {
		subst(args[i], sizeof(args[i]), a->c.argv[i], ns, ps);
		argv[i] = args[i];
	}
	argv[i] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return seterr(err, errlen, "fork: %s", strerror(errno));
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	a->pid[n] = pid;
	for (int t = 0; t < 500 && !reachable_at(htonl(INADDR_LOOPBACK), port); t++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			a->pid[n] = 0;
			return seterr(err, errlen, "node %u exited before it listened", n);
		}
		usleep(10000);
	}
	snprintf(addr, len, "127.0.0.1:%d", port);
	return 0;
}

/* Run a shell command line; its output into out (if given).  Returns its
 * exit status, or -1. */
static int
run(const char *cmd, const char *input, char *out, size_t len)
{
	char tmp[] = "/tmp/kh-nodealloc-XXXXXX";
	char line[8192];
	int fd = -1;
	if (input != NULL) {
		fd = mkstemp(tmp);
		if (fd < 0 || write_all(fd, input, strlen(input)) < 0) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		snprintf(line, sizeof(line), "%s <%s", cmd, tmp);
	} else {
		snprintf(line, sizeof(line), "%s </dev/null", cmd);
	}
	FILE *p = popen(line, "r");
	size_t o = 0;
	if (p != NULL) {
		size_t r;
		char buf[4096];
		while ((r = fread(buf, 1, sizeof(buf), p)) > 0)
			if (out != NULL && o + 1 < len) {
				size_t k = r < len - 1 - o ? r : len - 1 - o;
				memcpy(out + o, buf, k);
				o += k;
			}
	}
	if (out != NULL && len > 0)
		out[o] = '\0';
	int st = p != NULL ? pclose(p) : -1;
	if (input != NULL)
		unlink(tmp);
	return st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Values go into single quotes; a quote in one is refused. */
static int
quotable(const char *s)
{
	return s != NULL && strchr(s, '\'') == NULL;
}

/* Ranks of khget's "nodes: " line (single ranks and A-B ranges) into
 * ranks[]; returns how many, or -1. */
static int
parse_ranks(const char *blk, int *ranks, int max)
{
	const char *p = strstr(blk, "\nnodes: ");
	int n = 0;
	if (p == NULL)
		return -1;
	for (p += 8; *p != '\0' && *p != '\n';) {
		char *e;
		long lo = strtol(p, &e, 10), hi = lo;
		if (e == p || lo < 0)
			return -1;
		if (*e == '-') {
			p = e + 1;
			hi = strtol(p, &e, 10);
			if (e == p || hi < lo)
				return -1;
		}
		for (long r = lo; r <= hi; r++) {
			if (n == max)
				return -1;
			ranks[n++] = (int)r;
		}
		p = e;
		while (*p == ' ')
			p++;
	}
	return n;
}

/* A decimal number of at most 5 digits at *p, at most max; *p moves past
 * it.  -1 when there is none. */
static long
dec(const char **p, long max)
{
	long v = 0;
	int n = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++) {
		if (++n > 5)
			return -1;
		v = v * 10 + (**p - '0');
	}
	return n == 0 || v > max ? -1 : v;
}

int
nodealloc_rank_node(const char *runs, const char *hostname)
{
	const char *h = hostname ? strrchr(hostname, '-') : NULL, *p = runs;
	if (h == NULL || h[1] != 'n' || runs == NULL)
		return -1;
	h += 2;
	long rank = dec(&h, 99999);
	if (rank < 0 || *h != '\0')
		return -1;
	for (;;) {
		long lo = dec(&p, 99999), hi, n;
		if (lo < 0 || *p++ != '-' || (hi = dec(&p, 99999)) < lo || *p++ != '=' ||
		    (n = dec(&p, 65535)) < 0 || n + (hi - lo) > 65535)
			return -1;
		if (rank >= lo && rank <= hi)
			return (int)(n + rank - lo);
		if (*p == '\0')
			return -1;
		if (*p++ != ',')
			return -1;
	}
}

/* count nodes at once, the way a principal boots many: one khget, one
 * broadcast load, one "run kboot", one broadcast of the nodes' command
 * in which each node finds its own number and address by its hostname
 * (kh<facility>-n<rank>), so the cost hardly grows with count. */
static int
grow_kh(struct nodealloc *a, uint16_t first, int count, char (*addrs)[64], char *err, size_t errlen)
{
	char cmd[4096], blk[8192], out[4096], *script = NULL;
	int ranks[MAXN], got;
	size_t cap, o = 0;
	if (!quotable(a->c.user) || !quotable(a->c.cred) || !quotable(a->c.appliance))
		return seterr(err, errlen,
			      "node allocator: a quote in the user, credential or file");
	uint64_t t0 = mono_ms_now(), t1, t2, t3 = 0, t4 = 0;
	snprintf(cmd, sizeof(cmd), "KH_CRED='%s' khget -n %d '%s' %d", a->c.cred, a->c.netid,
		 a->c.user, count);
	if (run(cmd, NULL, blk, sizeof(blk)) != 0 || strncmp(blk, "con", 3) != 0)
		return seterr(err, errlen, "khget failed: %.200s", blk);
	got = parse_ranks(blk, ranks, MAXN);
	if (got != count) {
		char ch[16];
		snprintf(ch, sizeof(ch), "%.*s", (int)strcspn(blk, "@"), blk);
		snprintf(cmd, sizeof(cmd), "KH_CRED='%s' khctl release '%s' %s", a->c.cred,
			 a->c.user, ch);
		run(cmd, NULL, NULL, 0);
		return seterr(err, errlen, "khget: %d nodes asked, the answer lists %d", count,
			      got);
	}
	for (int i = 0; i < count; i++) {
		/* the plan's address of the node in the domain (docs/fabric.md) */
		int h = ranks[i] + 1, nid = a->c.netid;
		snprintf(addrs[i], 64, "10.%d.%d.%d", nid >> 4, ((nid & 15) << 4) + (h >> 8),
			 h & 255);
		a->rank[first + i] = ranks[i] + 1;
	}
	t1 = mono_ms_now();
	/* khdo asks khd whether it serves the block's host before it
	 * attaches, one more session each time: the block came from this
	 * very service, so it is told where the channel is. */
	const char *ks = getenv("KH_SOCKET");
	char sock[600] = "";
	if (ks != NULL && *ks != '\0' && quotable(ks) && strlen(ks) < 500)
		snprintf(sock, sizeof(sock), "--socket '%s' ", ks);
	snprintf(cmd, sizeof(cmd), "KH_CRED='%s' KH_USER='%s' khdo %sloadramdisk '%s'", a->c.cred,
		 a->c.user, sock, a->c.appliance);
	if (run(cmd, blk, out, sizeof(out)) != 0)
		goto fail;
	t2 = mono_ms_now();
	/* The same line(s) for every node, however many there are.  With
	 * "%r" the command itself finds the node's number by its rank (its
	 * hostname) in the runs of ranks given; with "%n"/"%a" the shell does
	 * (read without a fork), and the address comes from the plan.  (One
	 * line per node made each node's work grow with count: 64 nodes took
	 * ~1 s to read theirs; and each byte typed costs every node: ~2 ms a
	 * node for the shell's 330.) */
	cap = (size_t)count * 48 + strlen(a->c.cmd) * 2 + 1024;
	char *runs = malloc(cap), *fixed = malloc(cap);
	script = malloc(cap * 2);
	if (runs == NULL || fixed == NULL || script == NULL) {
		free(runs);
		free(fixed);
		snprintf(out, sizeof(out), "out of memory");
		goto fail;
	}
	cap *= 2;
	size_t ro = 0;
	runs[0] = '\0';
	o += (size_t)snprintf(script + o, cap - o, "run kboot\n");
	int shell = strstr(a->c.cmd, "%r") == NULL;
	if (shell)
		o += (size_t)snprintf(
		    script + o, cap - o,
		    "read -r KHH </proc/sys/kernel/hostname; KHR=${KHH##*-n}; KHN=\n"
		    "case $KHR in ''|*[!0-9]*) KHR=-1;; esac\n");
	for (int i = 0; i < count;) {
		int j = i;
		while (j + 1 < count && ranks[j + 1] == ranks[j] + 1)
			j++;
		if (shell)
			o += (size_t)snprintf(
			    script + o, cap - o,
			    "[ $KHR -ge %d ] && [ $KHR -le %d ] && KHN=$((KHR - %d + %u))\n",
			    ranks[i], ranks[j], ranks[i], (unsigned)(first + i));
		ro += (size_t)snprintf(runs + ro, cap / 2 - ro, "%s%d-%d=%u", ro ? "," : "",
				       ranks[i], ranks[j], (unsigned)(first + i));
		i = j + 1;
	}
	if (shell) {
		o += (size_t)snprintf(
		    script + o, cap - o,
		    "KHH=$((KHR + 1)); KHA=10.%d.$((%d + (KHH >> 8))).$((KHH & 255))\n",
		    a->c.netid >> 4, (a->c.netid & 15) << 4);
		subst(fixed, cap / 2, a->c.cmd, "$KHN", "$KHA");
	} else {
		size_t fo = 0;
		for (const char *c = a->c.cmd; *c && fo + 1 < cap / 2; c++)
			if (c[0] == '%' && c[1] == 'r') {
				fo += (size_t)snprintf(fixed + fo, cap / 2 - fo, "%s", runs);
				c++;
			} else {
				fixed[fo++] = *c;
			}
		fixed[fo < cap / 2 ? fo : cap / 2 - 1] = '\0';
	}
	free(runs);
	if (strchr(fixed, '\'') != NULL) {
		free(fixed);
		snprintf(out, sizeof(out), "a quote in the node's command");
		goto fail;
	}
	o += (size_t)snprintf(script + o, cap - o, shell ? "[ -n \"$KHN\" ] && %s &\n" : "%s &\n",
			      fixed);
	free(fixed);
	/* "run kboot" and the script in one write, one session, sent and not
	 * waited for (-q): the monitors boot the nodes on its first line, the
	 * rest waits in each node's console for its shell.  (Watching 64
	 * consoles for "appliance up" through ssh took the door's node, busy
	 * with the very load that asks for growth, ~0.5 s.) */
	{
		char path[] = "/tmp/kh-nodealloc-script-XXXXXX";
		int fd = mkstemp(path);
		if (fd < 0 || write_all(fd, script, o) < 0) {
			if (fd >= 0) {
				close(fd);
				unlink(path);
			}
			snprintf(out, sizeof(out), "temporary file: %s", strerror(errno));
			goto fail;
		}
		close(fd);
		snprintf(cmd, sizeof(cmd), "KH_CRED='%s' KH_USER='%s' khdo %s-q writefile %s",
			 a->c.cred, a->c.user, sock, path);
		int rc = run(cmd, blk, out, sizeof(out));
		t3 = mono_ms_now();
		unlink(path);
		if (rc != 0)
			goto fail;
	}
	/* Each node's messenger says hello to this one when it is up.  (The
	 * door dialling them instead found nodes still booting, and most
	 * likely waited for their addresses to answer ARP: ~1 s more.) */
	for (int i = 0, t = 0; i < count;) {
		if (ebb_node_connected((uint16_t)(first + i))) {
			if (i == 0)
				t4 = mono_ms_now();
			strncat(addrs[i], ":7000", 63 - strlen(addrs[i]));
			i++;
			continue;
		}
		if (++t == 5000) {
			snprintf(out, sizeof(out), "node %u (%s) did not start within 10 s",
				 first + i, addrs[i]);
			goto fail;
		}
		usleep(2000);
	}
	free(script);
	snprintf(a->steps, sizeof(a->steps),
		 "%d node%s: khget %llu ms, load %llu ms, boot+start %llu ms (typed %llu ms, "
		 "node %u up %llu ms)",
		 count, count == 1 ? "" : "s", (unsigned long long)(t1 - t0),
		 (unsigned long long)(t2 - t1), (unsigned long long)(mono_ms_now() - t2),
		 (unsigned long long)(t3 - t2), first, (unsigned long long)(t4 - t2));
	return 0;
fail:
	free(script);
	seterr(err, errlen, "booting nodes %u-%u: %.200s", first, first + count - 1, out);
	for (int i = 0; i < count; i++)
		nodealloc_shrink(a, (uint16_t)(first + i));
	return -1;
}

int
nodealloc_grow_many(struct nodealloc *a, uint16_t first, int count, char (*addrs)[64], char *err,
		    size_t errlen)
{
	if (count < 1 || first + count > MAXN)
		return seterr(err, errlen, "nodes %u..%u: at most %d", first, first + count - 1,
			      MAXN - 1);
	if (strcmp(a->c.backend, "local") == 0) {
		for (int i = 0; i < count; i++)
			if (grow_local(a, (uint16_t)(first + i), addrs[i], 64, err, errlen) < 0) {
				while (i-- > 0)
					nodealloc_shrink(a, (uint16_t)(first + i));
				return -1;
			}
		return 0;
	}
	return grow_kh(a, first, count, addrs, err, errlen);
}

int
nodealloc_grow(struct nodealloc *a, uint16_t n, char *addr, size_t len, char *err, size_t errlen)
{
	char addrs[1][64];
	if (nodealloc_grow_many(a, n, 1, addrs, err, errlen) < 0)
		return -1;
	snprintf(addr, len, "%s", addrs[0]);
	return 0;
}

int
nodealloc_shrink(struct nodealloc *a, uint16_t n)
{
	if (n >= MAXN)
		return -1;
	if (a->pid[n] > 0) {
		kill(a->pid[n], SIGTERM);
		waitpid(a->pid[n], NULL, 0);
		a->pid[n] = 0;
		return 0;
	}
	if (a->rank[n] > 0) {
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "KH_CRED='%s' khctl release '%s' %d", a->c.cred,
			 a->c.user, a->rank[n] - 1);
		a->rank[n] = 0;
		return run(cmd, NULL, NULL, 0) == 0 ? 0 : -1;
	}
	return -1;
}
