/* boot_bench: how long N nodes take to boot until every /init runs, with
 * the ct backend (as khd boots them) or with crun (one `crun run --detach`
 * per container).  Each /init writes one byte when it starts; we count. */
#include "nodes/node.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct opts {
	const char *mode;   /* "ct" or "crun" */
	int n;		    /* nodes */
	const char *root;   /* ct: lower root */
	const char *work;   /* ct: scratch dirs go here */
	const char *bundle; /* crun: bundle directory */
	int premade_netns;  /* ct: enter namespaces made before the clock starts */
	int jobs;	    /* crun: concurrent crun processes */
	int cgroup_version; /* ct: 0 detect */
	const char *fac;    /* ct: facility id (8 hex digits) */
	int sequential;	    /* ct: wait for each /init before the next boot */
};

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time the whole machine spent busy so far, in ms (all CPUs). */
static double
busy_ms(void)
{
	unsigned long long v[8] = {0};
	FILE *fp = fopen("/proc/stat", "r");
	long hz = sysconf(_SC_CLK_TCK);

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) != 8)
		v[0] = v[1] = v[2] = v[5] = v[6] = v[7] = 0;
	fclose(fp);
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1000.0 / (double)hz;
}

/* CPU time of this process and its reaped children (nodes, the spawner), ms. */
static double
own_ms(void)
{
	struct rusage s, c;

	getrusage(RUSAGE_SELF, &s);
	getrusage(RUSAGE_CHILDREN, &c);
	return (double)(s.ru_utime.tv_sec + s.ru_stime.tv_sec + c.ru_utime.tv_sec +
			c.ru_stime.tv_sec) *
		   1e3 +
	       (double)(s.ru_utime.tv_usec + s.ru_stime.tv_usec + c.ru_utime.tv_usec +
			c.ru_stime.tv_usec) /
		   1e3;
}

static void
die(const char *what)
{
	fprintf(stderr, "boot_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Wait on epoll until `want` consoles have sent their byte; a console
 * that ends first (EIO) is a failed boot.  Returns how many were ready. */
static int
wait_ready(int ep, int want, double limit_ms)
{
	struct epoll_event ev[256];
	double end = now_ms() + limit_ms;
	int ready = 0;

	while (ready < want && now_ms() < end) {
		int k = epoll_wait(ep, ev, 256, 100);
		for (int i = 0; i < k; i++) {
			char buf[512];
			int fd = ev[i].data.fd;
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r > 0 && memchr(buf, 'R', (size_t)r) != NULL) {
				ready++;
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			} else if (r > 0) {
				fprintf(stderr, "boot_bench: console says: %.*s\n", (int)r, buf);
			} else if (r == 0 || errno != EAGAIN) {
				fprintf(stderr, "boot_bench: a node ended before its /init ran\n");
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				want--;
			}
		}
	}
	return ready;
}

static int
run_ct(const struct opts *o)
{
	struct node_host host;
	struct node_handle *h = calloc((size_t)o->n, sizeof(*h));
	int *netns = calloc((size_t)o->n, sizeof(int));
	char err[256], name[64], fac[16], scratch[4096];
	double t0, t1, t2, t3, boot_max = 0, c0, c2, own0 = own_ms();
	int ep, ready = 0, left;

	if (h == NULL || netns == NULL)
		die("calloc");
	if (node_host_init(&host, o->cgroup_version, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "boot_bench: %s\n", err);
		return 1;
	}
	snprintf(fac, sizeof(fac), "%s", o->fac ? o->fac : "");
	if (o->fac == NULL)
		snprintf(fac, sizeof(fac), "%08x", (unsigned)getpid());
	for (int i = 0; i < o->n; i++)
		netns[i] = -1;
	if (o->premade_netns) {
		/* What khd's fabric does ahead of boot: a namespace per node. */
		int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		for (int i = 0; i < o->n; i++) {
			if (unshare(CLONE_NEWNET) < 0)
				die("unshare netns");
			netns[i] = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		}
		if (setns(self, CLONE_NEWNET) < 0)
			die("setns back");
		close(self);
	}
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll");

	c0 = busy_ms();
	t0 = now_ms();
	for (int i = 0; i < o->n; i++) {
		struct node_spec s = {0};
		struct epoll_event ev = {.events = EPOLLIN};
		double b = now_ms();
		snprintf(name, sizeof(name), "kh%s-n%d", fac, i);
		snprintf(scratch, sizeof(scratch), "%s/n%d", o->work, i);
		if (mkdir(scratch, 0700) < 0 && errno != EEXIST)
			die(scratch);
		s.name = name;
		s.facility = fac;
		s.rank = i;
		s.cpu_milli = 1000;
		s.mem = 64ULL << 20;
		s.pids = 64;
		s.lower = o->root;
		s.scratch = scratch;
		s.netns_fd = netns[i];
		if (node_ct.boot(&host, &s, &h[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "boot_bench: node %d: %s\n", i, err);
			return 1;
		}
		if (now_ms() - b > boot_max)
			boot_max = now_ms() - b;
		ev.data.fd = h[i].console;
		epoll_ctl(ep, EPOLL_CTL_ADD, h[i].console, &ev);
		if (o->sequential)
			ready += wait_ready(ep, 1, 10000);
		/* The namespace lives on in the node; khd would keep it. */
		if (netns[i] >= 0)
			close(netns[i]);
	}
	t1 = now_ms();
	if (!o->sequential)
		ready = wait_ready(ep, o->n, 60000);
	t2 = now_ms();
	c2 = busy_ms();

	/* Kill all, then reap them as khd would: on pidfd events. */
	left = 0;
	for (int i = 0; i < o->n; i++)
		if (node_ct.kill(&host, &h[i], 0) == 0)
			left++;
	close(ep);
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < o->n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		if (h[i].pid > 0)
			epoll_ctl(ep, EPOLL_CTL_ADD, h[i].pidfd, &ev);
	}
	while (left > 0) {
		struct epoll_event ev[256];
		int k = epoll_wait(ep, ev, 256, 5000);
		if (k <= 0) {
			fprintf(stderr, "boot_bench: %d nodes do not die\n", left);
			break;
		}
		for (int i = 0; i < k; i++) {
			int st;
			struct node_handle *x = &h[ev[i].data.u32];
			epoll_ctl(ep, EPOLL_CTL_DEL, x->pidfd, NULL);
			if (node_ct.reap(&host, x, &st) == 1)
				left--;
		}
	}
	t3 = now_ms();
	close(ep);
	for (int i = 0; i < o->n; i++) {
		close(h[i].console);
		snprintf(scratch, sizeof(scratch), "%s/n%d", o->work, i);
		rmdir(scratch);
	}
	node_host_close(&host);
	printf("mode=ct%s%s n=%d ready=%d all_running_ms=%.1f boot_calls_ms=%.1f boot_call_us=%.0f "
	       "boot_call_max_us=%.0f cpu_per_node_us=%.0f own_cpu_per_node_us=%.0f "
	       "kill_reap_ms=%.1f\n",
	       o->premade_netns ? "-premade-netns" : "", o->sequential ? "-sequential" : "", o->n,
	       ready, t2 - t0, t1 - t0, (t1 - t0) * 1000 / o->n, boot_max * 1000,
	       (c2 - c0) * 1000 / o->n, (own_ms() - own0) * 1000 / o->n, t3 - t2);
	free(h);
	free(netns);
	return ready == o->n && left == 0 ? 0 : 1;
}

/* Run crun with args, stdout to fd out; returns its pid. */
static pid_t
crun(int out, char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(out >= 0 ? out : null, 1);
		execvp("crun", argv);
		_exit(127);
	}
	return pid;
}

/* Run up to jobs crun commands at a time: `crun <verb...> id<i>`. */
static int
crun_all(const struct opts *o, int out, const char *verb, const char *pfx)
{
	int running = 0, failed = 0, st;
	char id[64], bundle[4096];

	snprintf(bundle, sizeof(bundle), "%s", o->bundle);
	for (int i = 0; i < o->n || running > 0;) {
		if (i < o->n && running < o->jobs) {
			snprintf(id, sizeof(id), "%s%d", pfx, i);
			if (strcmp(verb, "run") == 0) {
				char *argv[] = {"crun", "run", "--detach", "--bundle",
						bundle, id,    NULL};
				crun(out, argv);
			} else {
				char *argv[] = {"crun", "delete", "-f", id, NULL};
				crun(-1, argv);
			}
			running++;
			i++;
			continue;
		}
		if (wait(&st) < 0)
			break;
		running--;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	return failed;
}

/* crun refuses a hybrid host whose cgroup2 lists any controller (here:
 * hugetlb, which nobody uses).  In our own mount namespace we hide that
 * list, so crun takes the v1 hierarchies like ct does. */
static void
crun_hybrid_workaround(void)
{
	const char *ctl = "/sys/fs/cgroup/unified/cgroup.controllers";
	char buf[256];
	int fd = open(ctl, O_RDONLY), n;

	if (fd < 0)
		return;
	n = (int)read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0)
		return;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("/dev/null", ctl, NULL, MS_BIND, NULL) < 0)
		die("hide cgroup2 controllers from crun");
}

static int
run_crun(const struct opts *o)
{
	char pfx[32];
	int pp[2], ready = 0, fails;
	double t0, t1, t2, t3, c0, c2, own0 = own_ms();

	crun_hybrid_workaround();
	snprintf(pfx, sizeof(pfx), "khb%d-", (int)getpid());
	if (pipe2(pp, O_CLOEXEC) < 0)
		die("pipe");
	c0 = busy_ms();
	t0 = now_ms();
	/* Each container's /init inherits crun's stdout: the pipe. */
	fcntl(pp[1], F_SETFD, 0);
	fails = crun_all(o, pp[1], "run", pfx);
	fcntl(pp[1], F_SETFD, FD_CLOEXEC);
	t1 = now_ms();
	close(pp[1]);
	while (ready < o->n - fails) {
		char buf[512];
		ssize_t r = read(pp[0], buf, sizeof(buf));
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			ready += buf[i] == 'R';
	}
	t2 = now_ms();
	c2 = busy_ms();
	fails += crun_all(o, -1, "delete", pfx);
	t3 = now_ms();
	close(pp[0]);
	printf("mode=crun-j%d n=%d ready=%d all_running_ms=%.1f crun_runs_ms=%.1f "
	       "cpu_per_node_us=%.0f own_cpu_per_node_us=%.0f delete_ms=%.1f failures=%d\n",
	       o->jobs, o->n, ready, t2 - t0, t1 - t0, (c2 - c0) * 1000 / o->n,
	       (own_ms() - own0) * 1000 / o->n, t3 - t2, fails);
	return ready == o->n && fails == 0 ? 0 : 1;
}

static void
usage(void)
{
	fprintf(
	    stderr,
	    "usage: boot_bench -m ct -r ROOT -w WORKDIR [-P] [-S] [-c 1|2] [-F FACILITY] [-n N]\n"
	    "       boot_bench -m crun -b BUNDLE [-j JOBS] [-n N]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct opts o = {"ct", 100, NULL, NULL, NULL, 0, 1, 0, NULL, 0};
	int c;

	while ((c = getopt(argc, argv, "m:n:r:w:b:Pj:c:F:S")) != -1) {
		switch (c) {
		case 'm':
			o.mode = optarg;
			break;
		case 'n':
			o.n = atoi(optarg);
			break;
		case 'r':
			o.root = optarg;
			break;
		case 'w':
			o.work = optarg;
			break;
		case 'b':
			o.bundle = optarg;
			break;
		case 'P':
			o.premade_netns = 1;
			break;
		case 'j':
			o.jobs = atoi(optarg);
			break;
		case 'c':
			o.cgroup_version = atoi(optarg);
			break;
		case 'F':
			o.fac = optarg;
			break;
		case 'S':
			o.sequential = 1;
			break;
		default:
			usage();
		}
	}
	if (o.n <= 0 || o.jobs <= 0)
		usage();
	/* Nodes' consoles and pidfds: two descriptors a node. */
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(o.mode, "ct") == 0 && o.root && o.work)
		return run_ct(&o);
	if (strcmp(o.mode, "crun") == 0 && o.bundle)
		return run_crun(&o);
	usage();
	return 2;
}
