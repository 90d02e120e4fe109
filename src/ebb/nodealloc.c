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

#define MAXN 1024

struct nodealloc {
	struct nodealloc_conf c;
	char *argv[64];
	int argc;
	pid_t pid[MAXN];     /* local */
	char chan[MAXN][16]; /* kh: con<C> of each node */
	char steps[160];     /* kh: the last grow's timeline */
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
		snprintf(cmd, sizeof(cmd), "KH_CRED='%s' khctl info >/dev/null 2>&1", c->cred);
		run(cmd, NULL, NULL, 0);
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
subst(char *out, size_t len, const char *s, unsigned n, const char *p)
{
	size_t o = 0;
	for (; *s && o + 1 < len; s++) {
		if (s[0] == '%' && (s[1] == 'n' || s[1] == 'p' || s[1] == 'a')) {
			int w = s[1] == 'n' ? snprintf(out + o, len - o, "%u", n)
					    : snprintf(out + o, len - o, "%s", p);
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
	snprintf(ps, sizeof(ps), "%d", port);
	for (i = 0; a->c.argv[i] != NULL && i < 64; i++) {
		subst(args[i], sizeof(args[i]), a->c.argv[i], n, ps);
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

static int
grow_kh(struct nodealloc *a, uint16_t n, char *addr, size_t len, char *err, size_t errlen)
{
	char cmd[4096], blk[8192], ip[32], line[512], out[4096];
	if (!quotable(a->c.user) || !quotable(a->c.cred) || !quotable(a->c.appliance))
		return seterr(err, errlen,
			      "node allocator: a quote in the user, credential or file");
	uint64_t t0 = mono_ms_now(), t1, t2, t3;
	snprintf(cmd, sizeof(cmd), "KH_CRED='%s' khget -n %d '%s' 1", a->c.cred, a->c.netid,
		 a->c.user);
	if (run(cmd, NULL, blk, sizeof(blk)) != 0 || strncmp(blk, "con", 3) != 0)
		return seterr(err, errlen, "khget failed: %.200s", blk);
	const char *nl = strstr(blk, "\nnodes: ");
	if (nl == NULL)
		return seterr(err, errlen, "khget: no nodes line");
	int rank = atoi(nl + 8);
	snprintf(a->chan[n], sizeof(a->chan[n]), "%.*s", (int)strcspn(blk, "@"), blk);
	/* the plan's address of the node in the domain (docs/fabric.md) */
	int h = rank + 1, nid = a->c.netid;
	snprintf(ip, sizeof(ip), "10.%d.%d.%d", nid >> 4, ((nid & 15) << 4) + (h >> 8), h & 255);
	snprintf(cmd, sizeof(cmd), "KH_CRED='%s' KH_USER='%s' khdo loadramdisk '%s'", a->c.cred,
		 a->c.user, a->c.appliance);
	t1 = mono_ms_now();
	if (run(cmd, blk, out, sizeof(out)) != 0)
		goto fail;
	t2 = mono_ms_now();
	snprintf(cmd, sizeof(cmd),
		 "KH_CRED='%s' KH_USER='%s' khdo -t 60 --until 'appliance up' write 'run kboot'",
		 a->c.cred, a->c.user);
	if (run(cmd, blk, out, sizeof(out)) != 0)
		goto fail;
	t3 = mono_ms_now();
	char where[64];
	snprintf(where, sizeof(where), "%s", ip);
	subst(line, sizeof(line), a->c.cmd, n, where);
	if (!quotable(line))
		goto fail;
	/* Sent (-q), then waited for where it matters: its messenger
	 * listening, not half a second of console silence. */
	snprintf(cmd, sizeof(cmd), "KH_CRED='%s' KH_USER='%s' khdo -q write '%s &'", a->c.cred,
		 a->c.user, line);
	if (run(cmd, blk, out, sizeof(out)) != 0)
		goto fail;
	{
		in_addr_t nip = inet_addr(ip);
		int t;
		for (t = 0; t < 1000 && !reachable_at(nip, 7000); t++)
			usleep(10000);
		if (t == 1000) {
			snprintf(out, sizeof(out),
				 "its messenger at %s:7000 did not listen within 10 s", ip);
			goto fail;
		}
	}
	snprintf(a->steps, sizeof(a->steps),
		 "khget %llu ms, load %llu ms, boot %llu ms, start %llu ms",
		 (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1),
		 (unsigned long long)(t3 - t2), (unsigned long long)(mono_ms_now() - t3));
	snprintf(addr, len, "%s:7000", ip);
	return 0;
fail:
	seterr(err, errlen, "booting node %u (rank %d): %.200s", n, rank, out);
	nodealloc_shrink(a, n);
	return -1;
}

int
nodealloc_grow(struct nodealloc *a, uint16_t n, char *addr, size_t len, char *err, size_t errlen)
{
	if (n >= MAXN)
		return seterr(err, errlen, "node %u: at most %d", n, MAXN);
	if (strcmp(a->c.backend, "local") == 0)
		return grow_local(a, n, addr, len, err, errlen);
	return grow_kh(a, n, addr, len, err, errlen);
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
	if (a->chan[n][0] != '\0') {
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "KH_CRED='%s' khctl release '%s' %s", a->c.cred,
			 a->c.user, a->chan[n]);
		a->chan[n][0] = '\0';
		return run(cmd, NULL, NULL, 0) == 0 ? 0 : -1;
	}
	return -1;
}
