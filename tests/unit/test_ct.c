/* ct-*: the container node backend on this host's real kernel (root only):
 * a node boots from a tiny busybox root, is isolated (namespaces, no host
 * file, limits in its cgroup, few capabilities), talks on its console,
 * exits, is killed, runs out of memory alone, and many boot at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nodes/node.h"

#define MIB (1024ULL * 1024)

struct fx {
	char dir[64];	/* everything of the test lives here */
	char root[128]; /* the shared lower root */
	char fac[16];	/* facility id: our pid in hex */
	int nscratch;	/* scratch dirs made so far */
	struct node_host host;
	struct node_host host2; /* ct-3.1: v2 on a hybrid host */
	int have_host;
	int have_host2;
};

/* The node's /init: run one line typed on the console.  Tests type what
 * they need; markers are computed ($((..))) so the tty's echo of the
 * typed line never matches them. */
static const char init_script[] = "#!/bin/sh\n"
				  "read -r cmd\n"
				  "eval \"$cmd\"\n";

static const char *const applets[] = {"sh",    "ls",	"cat",	 "echo", "hostname", "sleep",
				      "awk",   "mkdir", "mount", "grep", "mknod",    "wait",
				      "touch", "head",	"true",	 "dd",	 "rm"};

static const char *
busybox_path(void)
{
	static const char *const cand[] = {"/bin/busybox", "/usr/bin/busybox"};

	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (access(cand[i], X_OK) == 0)
			return cand[i];
	return NULL;
}

static int
copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	close(out);
	return n < 0 ? -1 : 0;
}

static int
rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
group_setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	const char *bb = busybox_path();
	char path[256], err[256];
	FILE *fp;

	if (x == NULL)
		return -1;
	*state = x;
	if (geteuid() != 0 || bb == NULL)
		return 0; /* every test skips */
	snprintf(x->dir, sizeof(x->dir), "/tmp/kh-test-ct-XXXXXX");
	if (mkdtemp(x->dir) == NULL)
		return -1;
	snprintf(x->root, sizeof(x->root), "%s/root", x->dir);
	snprintf(path, sizeof(path), "%s/bin", x->root);
	if (mkdir(x->root, 0755) < 0 || mkdir(path, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/bin/busybox", x->root);
	if (copy_file(bb, path, 0755) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(applets) / sizeof(applets[0]); i++) {
		snprintf(path, sizeof(path), "%s/bin/%s", x->root, applets[i]);
		if (symlink("busybox", path) < 0)
			return -1;
	}
	/* ct-4.2's program, built next to this one. */
	{
		char self[200], from[256];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0)
			return -1;
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(from, sizeof(from), "%s/chroot_escape", self);
		snprintf(path, sizeof(path), "%s/bin/chroot_escape", x->root);
		if (copy_file(from, path, 0755) < 0) {
			fprintf(stderr, "test_ct: %s: %s\n", from, strerror(errno));
			return -1;
		}
	}
	snprintf(path, sizeof(path), "%s/init", x->root);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs(init_script, fp);
	fclose(fp);
	chmod(path, 0755);
	snprintf(x->fac, sizeof(x->fac), "%08x", (unsigned)getpid());
	if (node_host_init(&x->host, 0, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_ct: %s\n", err);
		return -1;
	}
	x->have_host = 1;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fx *x = *state;

	if (x->have_host) {
		/* Whatever a failed test left running: kill, reap, remove. */
		cgroup_facility_clear(&x->host.cg, x->fac);
		if (x->have_host2)
			cgroup_facility_clear(&x->host2.cg, x->fac);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		node_host_close(&x->host);
		if (x->have_host2)
			node_host_close(&x->host2);
	}
	if (x->dir[0] != '\0')
		rm_tree(x->dir);
	free(x);
	return 0;
}

/* After each test: what a failed one left running is killed, reaped and
 * removed, so that the next ones start clean. */
static int
test_teardown(void **state)
{
	struct fx *x = *state;

	if (x->have_host) {
		for (int r = 0; r < NODE_PREP_RANKS; r++)
			node_ct_unwarm(&x->host, r);
		cgroup_facility_clear(&x->host.cg, x->fac);
		memset(x->host.cg_ready, 0, sizeof(x->host.cg_ready));
	}
	if (x->have_host2)
		cgroup_facility_clear(&x->host2.cg, x->fac);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return 0;
}

static struct fx *
fixture(void **state)
{
	struct fx *x = *state;

	if (!x->have_host)
		skip();
	return x;
}

/* A fresh scratch directory and a spec with sane limits. */
static void
spec_for(struct fx *x, struct node_spec *s, int rank, char *name, char *scratch)
{
	sprintf(name, "kh%s-n%d", x->fac, rank);
	sprintf(scratch, "%s/s%d", x->dir, x->nscratch++);
	assert_int_equal(mkdir(scratch, 0700), 0);
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->facility = x->fac;
	s->rank = rank;
	s->cpu_milli = 500;
	s->mem = 64 * MIB;
	s->pids = 50;
	s->lower = x->root;
	s->scratch = scratch;
	s->images = x->dir; /* where x->root is */
	s->netns_fd = -1;
}

static void
type_line(const struct node_handle *h, const char *line)
{
	size_t n = strlen(line);

	assert_int_equal(write(h->console, line, n), (ssize_t)n);
	assert_int_equal(write(h->console, "\n", 1), 1);
}

/* Read the console into buf until want shows up (1) or timeout / end of
 * the node (0). */
static int
expect(const struct node_handle *h, const char *want, char *buf, size_t len, int timeout_ms)
{
	size_t have = 0;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	buf[0] = '\0';
	for (;;) {
		struct pollfd p = {h->console, POLLIN, 0};
		long el;
		ssize_t r;

		if (strstr(buf, want) != NULL)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= timeout_ms || have + 1 >= len)
			return 0;
		if (poll(&p, 1, (int)(timeout_ms - el)) <= 0)
			continue;
		r = read(h->console, buf + have, len - 1 - have);
		if (r <= 0) {
			if (r < 0 && errno == EAGAIN)
				continue;
			return strstr(buf, want) != NULL; /* EIO: the node ended */
		}
		have += (size_t)r;
		buf[have] = '\0';
	}
}

/* Wait for the node to end (pidfd readable) and reap it. */
static int
wait_reap(struct fx *x, struct node_handle *h, int *status)
{
	struct pollfd p = {h->pidfd, POLLIN, 0};

	assert_true(h->pidfd >= 0);
	assert_int_equal(poll(&p, 1, 10000), 1);
	return node_ct.reap(&x->host, h, status);
}

static unsigned long
ns_inode(const char *pid, const char *ns)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, ns);
	assert_int_equal(stat(path, &st), 0);
	return (unsigned long)st.st_ino;
}

static unsigned long long
read_ull(const char *dir, const char *file)
{
	char path[4200], buf[64];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	return strtoull(buf, NULL, 10);
}

static int
cg_exists(struct fx *x, unsigned ctl, const char *rel)
{
	char path[4200];

	assert_int_equal(cgroup_node_path(&x->host.cg, ctl, rel, path, sizeof(path)), 0);
	return access(path, F_OK) == 0;
}

/* The group run a second time with warm = 1: each node boots through a
 * waiting process made for it first (node_ct_warm), as khd's free nodes
 * do, and must be the same node in every way the tests look at. */
static int warm;

/* node_ct.boot, or (warm) the same through a waiting process, which the
 * boot must take: the node's first process is the one that waited. */
static int
boot_node(struct fx *x, const struct node_spec *s, struct node_handle *h, char *err, size_t errlen)
{
	pid_t waiting = 0;

	if (warm && x->host.cg.version == 1) {
		struct cgroup_limits lim = {
		    .cpu_milli = s->cpu_milli, .mem = s->mem, .pids = s->pids};
		if (node_ct_prepare(&x->host, s->facility, s->rank, &lim, err, errlen) < 0 ||
		    node_ct_warm(&x->host, s, err, errlen) < 0)
			fail_msg("waiting process for rank %d: %s", s->rank, err);
		assert_true(node_ct_warmed(&x->host, s->rank, s->netns_fd));
		waiting = x->host.warm[s->rank].pid;
		assert_true(waiting > 0);
	}
	if (node_ct.boot(&x->host, s, h, err, errlen) < 0)
		return -1;
	if (waiting > 0) {
		assert_int_equal(h->pid, waiting);
		assert_false(node_ct_warmed(&x->host, s->rank, s->netns_fd));
	}
	return 0;
}

/* ct-1.1: hostname, PID 1, a root of the image only, own namespaces, limits
 * in the cgroup; kill takes everything away. */
static void
ct_1_1_boot_identity(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[8192], pid[16], want[128], dir[4200], rel[64];
	const char *nss[] = {"mnt", "net", "pid", "uts", "ipc", "cgroup"};

	spec_for(x, &s, 1, name, scratch);
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	assert_true(h.pid > 0);
	assert_true(h.console >= 0);
	assert_true(fcntl(h.console, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(h.console, F_GETFD) & FD_CLOEXEC);
	type_line(
	    &h,
	    "echo \"H=$(hostname)= P=$$=\"; echo OWN=$(ls -ln /init | awk '{print $3\":\"$4}')=; "
	    "echo ROOT; ls /; echo END$((40+2)); exec sleep 1000");
	assert_true(expect(&h, "END42", buf, sizeof(buf), 10000));
	snprintf(want, sizeof(want), "H=%s= P=1=", name);
	assert_non_null(strstr(buf, want));
	/* The image's files are node root's (host root's, seen through the
	 * node's user namespace). */
	assert_non_null(strstr(buf, "OWN=0:0="));
	/* Exactly what the image holds, plus the mount points made for it. */
	{
		char *ls = strstr(strstr(buf, "P=1="), "ROOT"), *end = strstr(ls, "END42");
		const char *names[] = {"bin", "dev", "init", "proc", "sys"};
		int count = 0;
		*end = '\0';
		for (char *tok = strtok(ls + 4, " \r\n\t"); tok; tok = strtok(NULL, " \r\n\t")) {
			int known = 0;
			for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
				known |= strcmp(tok, names[i]) == 0;
			if (!known)
				fail_msg("host file visible in the node: /%s", tok);
			count++;
		}
		assert_int_equal(count, 5);
	}
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++)
		if (ns_inode(pid, nss[i]) == ns_inode("self", nss[i]))
			fail_msg("the node shares the host's %s namespace", nss[i]);
	snprintf(rel, sizeof(rel), "kh-%s/n1", x->fac);
	assert_string_equal(h.cg, rel);
	if (x->host.cg.version == 1) {
		assert_int_equal(cgroup_node_path(&x->host.cg, CG_MEMORY, rel, dir, sizeof(dir)),
				 0);
		assert_int_equal(read_ull(dir, "memory.limit_in_bytes"), 64 * MIB);
		assert_int_equal(cgroup_node_path(&x->host.cg, CG_PIDS, rel, dir, sizeof(dir)), 0);
		assert_int_equal(read_ull(dir, "pids.max"), 50);
		assert_int_equal(cgroup_node_path(&x->host.cg, CG_CPU, rel, dir, sizeof(dir)), 0);
		assert_int_equal(read_ull(dir, "cpu.cfs_quota_us"), 50000);
		assert_int_equal(read_ull(dir, "cpu.cfs_period_us"), 100000);
	} else {
		assert_int_equal(cgroup_node_path(&x->host.cg, CG_MEMORY, rel, dir, sizeof(dir)),
				 0);
		assert_int_equal(read_ull(dir, "memory.max"), 64 * MIB);
		assert_int_equal(read_ull(dir, "pids.max"), 50);
		assert_int_equal(read_ull(dir, "cpu.max"), 50000);
	}
	/* The node is in its cgroup as the host sees it. */
	{
		char path[64], line[512];
		int found = 0;
		FILE *fp;
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)h.pid);
		assert_non_null(fp = fopen(path, "r"));
		while (fgets(line, sizeof(line), fp))
			found += strstr(line, rel) != NULL;
		fclose(fp);
		assert_true(found >= 1);
	}
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	assert_int_equal(h.pid, 0);
	assert_int_equal(h.pidfd, -1);
	assert_false(cg_exists(x, CG_MEMORY, rel));
	assert_false(cg_exists(x, CG_PIDS, rel));
	close(h.console);
}

/* ct-1.9: a program started in a node the moment its boot returns runs in
 * the node as it is once set up, never in the clone still setting it up
 * (whose root is the host's until pivot_root): exec waits for /init. */
static void
ct_1_9_exec_at_boot(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	struct node_proc p;
	char name[64], scratch[128], err[256], buf[256];
	char *argv[] = {"/bin/sh", "-c", "test -e /init && echo node || echo host", NULL};
	char *envp[] = {"PATH=/bin", NULL};

	for (int i = 0; i < 10; i++) {
		size_t got = 0;
		ssize_t n;
		spec_for(x, &s, 1, name, scratch);
		assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
		if (node_ct.exec(&x->host, &h, argv, envp, &p, err, sizeof(err)) < 0)
			fail_msg("exec at boot: %s", err);
		close(p.in);
		struct pollfd pf = {p.out, POLLIN, 0};
		while (got < sizeof(buf) - 1 && poll(&pf, 1, 5000) == 1 &&
		       (n = read(p.out, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		while (waitpid(p.pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(p.pidfd);
		close(p.out);
		close(p.err);
		assert_string_equal(buf, "node\n");
		assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
		close(h.console);
	}
}

/* ct-1.2: console I/O: a shell reads what khd writes, answers on it. */
static void
ct_1_2_console(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[8192];
	int st;

	spec_for(x, &s, 2, name, scratch);
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	type_line(&h, "exec sh");
	type_line(&h, "echo hello-$((6*7)); tty");
	assert_true(expect(&h, "/dev/console", buf, sizeof(buf), 10000));
	assert_non_null(strstr(buf, "hello-42"));
	assert_int_equal(node_ct.reap(&x->host, &h, &st), 0); /* still running */
	type_line(&h, "exit 5");
	assert_int_equal(wait_reap(x, &h, &st), 1);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 5);
	close(h.console);
}

/* ct-1.3: /init exits; reap reports its status once it has, cleans up, and
 * keeps reporting it. */
static void
ct_1_3_exit_reap(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], rel[64];
	int st = -1;
	DIR *d;

	spec_for(x, &s, 3, name, scratch);
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	snprintf(rel, sizeof(rel), "%s", h.cg);
	assert_true(cg_exists(x, CG_MEMORY, rel));
	type_line(&h, "exit 3");
	assert_int_equal(wait_reap(x, &h, &st), 1);
	assert_int_equal(WEXITSTATUS(st), 3);
	assert_int_equal(h.pid, 0);
	assert_int_equal(h.pidfd, -1);
	assert_false(cg_exists(x, CG_MEMORY, rel));
	assert_false(cg_exists(x, CG_CPU, rel));
	st = -1;
	assert_int_equal(node_ct.reap(&x->host, &h, &st), 1);
	assert_int_equal(WEXITSTATUS(st), 3);
	/* Nothing was ever written to scratch on the host. */
	assert_non_null(d = opendir(scratch));
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			fail_msg("scratch holds %s", e->d_name);
	closedir(d);
	/* The console reads EIO (not EAGAIN) once the node is gone. */
	{
		char b[256];
		while (read(h.console, b, sizeof(b)) > 0)
			;
		assert_int_equal(errno, EIO);
	}
	close(h.console);
}

/* ct-1.4: kill takes the whole tree (init and its children), at once, and
 * the cgroup with it. */
static void
ct_1_4_kill_tree(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[8192], dir[4200], path[4300], rel[64];
	pid_t pids[64];
	int n = 0;
	FILE *fp;

	spec_for(x, &s, 4, name, scratch);
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	type_line(&h, "sleep 1000 & sleep 1000 & (sleep 1000 &); echo READY$((2*3)); wait");
	assert_true(expect(&h, "READY6", buf, sizeof(buf), 10000));
	snprintf(rel, sizeof(rel), "%s", h.cg);
	assert_int_equal(cgroup_node_path(&x->host.cg, CG_PIDS, rel, dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	assert_non_null(fp = fopen(path, "r"));
	while (n < 64 && fscanf(fp, "%d", &pids[n]) == 1)
		n++;
	fclose(fp);
	assert_true(n >= 4); /* sh and three sleeps */
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	assert_true(WIFSIGNALED(h.status));
	assert_int_equal(WTERMSIG(h.status), SIGKILL);
	for (int i = 0; i < n; i++) {
		char st[64], line[128];
		FILE *f;
		snprintf(st, sizeof(st), "/proc/%d/status", (int)pids[i]);
		if ((f = fopen(st, "r")) == NULL)
			continue; /* gone */
		/* The pid may live on only as a zombie no one reaps, or be
		 * reused by an unrelated process: neither is ours. */
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "PPid:", 5) == 0 && atoi(line + 5) == (int)h.pid)
				fail_msg("pid %d survived the kill", (int)pids[i]);
		fclose(f);
	}
	assert_int_equal(access(dir, F_OK), -1);
	assert_false(cg_exists(x, CG_MEMORY, rel));
	close(h.console);
}

/* ct-1.5: a node that outgrows its memory meets its own OOM killer; the
 * host (this test) lives on, and the node's init too. */
static void
ct_1_5_oom(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	struct node_stats ns;
	char name[64], scratch[128], err[256], buf[8192];

	spec_for(x, &s, 5, name, scratch);
	s.mem = 32 * MIB;
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	type_line(&h, "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; echo OOM-RC=$((0+$?))=; exec "
		      "sleep 1000");
	assert_true(expect(&h, "OOM-RC=137=", buf, sizeof(buf), 30000));
	assert_int_equal(node_ct.stats(&x->host, &h, &ns), 0);
	assert_true(ns.oom_kills >= 1);
	assert_true(ns.mem_peak == 0 || ns.mem_peak <= 32 * MIB);
	assert_true(ns.mem_peak == 0 || ns.mem_peak >= 16 * MIB);
	assert_true(ns.cpu_ns > 0);
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	close(h.console);
}

/* The first line of a small file (static buffer), "" when unreadable. */
static const char *
read_small(const char *path)
{
	static char buf[64];
	FILE *f = fopen(path, "r");
	buf[0] = 0;
	if (f) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

/* ct-1.6: the node's root user cannot reach past the node: no mounts, no
 * device nodes, read-only sysctls, a reduced capability set, no stray
 * descriptors, nothing of the host in its mount table. */
static void
ct_1_6_confined(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[16384];

	char fwd[8];
	snprintf(fwd, sizeof(fwd), "%s", read_small("/proc/sys/net/ipv4/ip_forward"));
	spec_for(x, &s, 6, name, scratch);
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	type_line(&h, "mount -t tmpfs t /bin 2>/dev/null; echo MNT$((1+0))=$?; "
		      "mknod /dev/sdx b 8 0 2>/dev/null; echo MKNOD$((1+0))=$?; "
		      "echo x > /proc/sys/kernel/hostname 2>/dev/null; echo SYSCTL$((1+0))=$?; "
		      "v=$((1 - $(cat /proc/sys/net/ipv4/ip_forward))); "
		      "echo $v > /proc/sys/net/ipv4/ip_forward; echo NETSYS$((1+0))=$?; "
		      "echo 1 > /proc/sys/vm/drop_caches 2>/dev/null; echo VMSYS$((1+0))=$?; "
		      "ls -l /proc/sysrq-trigger; touch /newfile; echo WRITE$((1+0))=$?; "
		      "grep CapBnd /proc/self/status; echo FDA$((1)); ls /proc/self/fd; "
		      "echo FDB$((1)); cat /proc/self/mountinfo; echo END$((40+2))");
	assert_true(expect(&h, "END42", buf, sizeof(buf), 10000));
	assert_null(strstr(buf, "MNT1=0"));
	assert_null(strstr(buf, "MKNOD1=0"));
	assert_null(strstr(buf, "SYSCTL1=0"));
	assert_null(strstr(buf, "VMSYS1=0"));
	/* its own network namespace's knobs are its to set, and only its */
	assert_non_null(strstr(buf, "NETSYS1=0"));
	assert_string_equal(read_small("/proc/sys/net/ipv4/ip_forward"), fwd);
	assert_non_null(strstr(buf, "WRITE1=0")); /* its own root is writable */
	/* CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
	 * NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW SYS_CHROOT
	 * AUDIT_WRITE SETFCAP */
	assert_non_null(strstr(buf, "CapBnd:\t00000000a0043dfb"));
	/* SysRq is /dev/null here (1, 3). */
	/* SysRq, if this kernel has it, is /dev/null (1, 3) here. */
	assert_true(strstr(buf, "1,   3") != NULL || strstr(buf, "sysrq-trigger: No such file"));
	/* The host's file systems are not in the node's mount table. */
	assert_null(strstr(buf, "ext4"));
	assert_null(strstr(buf, "devtmpfs"));
	assert_null(strstr(buf, "cgroup"));
	assert_null(strstr(buf, x->dir));
	assert_non_null(strstr(buf, " / / "));
	/* ls shows 0, 1, 2 and its own directory descriptor: nothing else. */
	{
		char *fds = strstr(buf, "FDA1"), *end = strstr(buf, "FDB1");
		int count = 0;
		assert_non_null(fds);
		assert_non_null(end);
		*end = '\0';
		for (char *tok = strtok(fds + 4, " \r\n\t"); tok; tok = strtok(NULL, " \r\n\t")) {
			if (atoi(tok) > 3)
				fail_msg("descriptor %s leaked into the node", tok);
			count++;
		}
		assert_int_equal(count, 4);
	}
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	close(h.console);
}

/* ct-1.7: twenty nodes at once, each with its own name. */
static void
ct_1_7_twenty(void **state)
{
	struct fx *x = fixture(state);
	enum { N = 20 };
	struct node_spec s[N];
	struct node_handle h[N];
	char name[N][64], scratch[N][128], err[256], buf[4096], want[128];

	for (int i = 0; i < N; i++) {
		spec_for(x, &s[i], 100 + i, name[i], scratch[i]);
		assert_int_equal(boot_node(x, &s[i], &h[i], err, sizeof(err)), 0);
	}
	for (int i = 0; i < N; i++)
		type_line(&h[i], "echo \"NAME=$(hostname)=\"; exec sleep 1000");
	for (int i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "NAME=%s=", name[i]);
		if (!expect(&h[i], want, buf, sizeof(buf), 20000))
			fail_msg("node %d: no %s in %s", i, want, buf);
		for (int j = 0; j < i; j++)
			assert_true(h[j].pid != h[i].pid);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(node_ct.kill(&x->host, &h[i], 0) >= 0, 1);
	for (int i = 0; i < N; i++) {
		if (h[i].pid > 0)
			assert_int_equal(node_ct.kill(&x->host, &h[i], 5000), 1);
		close(h[i].console);
	}
}

/* ct-1.8: what the node writes to its root lives in RAM charged to the node
 * (tmpfs pages go to the writer's cgroup), and leaves with it. */
static void
ct_1_8_root_in_ram(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	struct node_stats before, after;
	char name[64], scratch[128], err[256], buf[4096];

	spec_for(x, &s, 11, name, scratch);
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	type_line(&h,
		  "echo A$((1)); read -r go; dd if=/dev/zero of=/big bs=1M count=24 2>/dev/null; "
		  "echo B$((1))=$?; read -r go; rm /big; echo C$((1)); exec sleep 1000");
	assert_true(expect(&h, "A1", buf, sizeof(buf), 10000));
	assert_int_equal(node_ct.stats(&x->host, &h, &before), 0);
	type_line(&h, "");
	assert_true(expect(&h, "B1=0", buf, sizeof(buf), 10000));
	assert_int_equal(node_ct.stats(&x->host, &h, &after), 0);
	/* 24 MiB of file pages, give or take what the shell and dd freed. */
	if (after.mem < before.mem + 20 * MIB)
		fail_msg("24 MiB written, charge went from %llu to %llu",
			 (unsigned long long)before.mem, (unsigned long long)after.mem);
	type_line(&h, "");
	assert_true(expect(&h, "C1", buf, sizeof(buf), 10000));
	assert_int_equal(node_ct.stats(&x->host, &h, &after), 0);
	assert_true(after.mem < before.mem + 8 * MIB);
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	close(h.console);
}

/* ct-2.1: bad specs are refused before anything is made. */
static void
ct_2_1_bad_spec(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], inside[200];

	spec_for(x, &s, 7, name, scratch);
	s.name = "bad name";
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "name"));
	s.name = name;
	s.facility = "xyz";
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), -1);
	s.facility = x->fac;
	s.lower = "relative";
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), -1);
	snprintf(inside, sizeof(inside), "%s/root", scratch);
	s.lower = inside;
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "inside"));
	s.lower = x->root;
	s.pids = -1;
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), -1);
	assert_false(cg_exists(x, CG_MEMORY, "kh-00000000/n7"));
	{
		char rel[64];
		snprintf(rel, sizeof(rel), "kh-%s/n7", x->fac);
		assert_false(cg_exists(x, CG_MEMORY, rel));
	}
}

/* ct-2.2: a failure inside the new node (here: no root directory) ends it
 * with NODE_EXIT_SETUP and says why on its console. */
static void
ct_2_2_setup_failure(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[4096], missing[128], want[160];
	int st;

	spec_for(x, &s, 8, name, scratch);
	snprintf(missing, sizeof(missing), "%s/no-such-root", x->dir);
	s.lower = missing;
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "kh: node %s: open root: No such file", name);
	assert_true(expect(&h, want, buf, sizeof(buf), 10000));
	assert_int_equal(wait_reap(x, &h, &st), 1);
	assert_int_equal(WEXITSTATUS(st), NODE_EXIT_SETUP);
	close(h.console);
}

/* ct-2.3: a pre-made network namespace is entered, not a new one made.
 * With user namespaces (the default) it must be owned by one made for a
 * node (userns_fabric_make): one of host root's is refused, nothing made. */
static void
ct_2_3_netns(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[4096], pid[16];
	struct stat want;
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), fd;

	/* What khd's fabric did before user namespaces: one namespace per
	 * node, made ahead, in host root's user namespace. */
	assert_true(self >= 0);
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_int_equal(setns(self, CLONE_NEWNET), 0);
	spec_for(x, &s, 9, name, scratch);
	if (x->host.uns.on) {
		char rel[64];
		s.netns_fd = fd;
		assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "no user namespace of its own"));
		snprintf(rel, sizeof(rel), "kh-%s/n9", x->fac);
		assert_false(cg_exists(x, CG_MEMORY, rel));
		close(fd);
		/* What it does now. */
		fd = userns_fabric_make(&x->host, err, sizeof(err));
		assert_true(fd >= 0);
	}
	assert_int_equal(fstat(fd, &want), 0);
	s.netns_fd = fd;
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	if (x->host.uns.on)
		userns_fabric_drop(&x->host, fd);
	close(fd);
	type_line(&h, "echo UP$((1+1)); exec sleep 1000");
	assert_true(expect(&h, "UP2", buf, sizeof(buf), 10000));
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	assert_int_equal(ns_inode(pid, "net"), (unsigned long)want.st_ino);
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	close(h.console);
	close(self);
}

/* ct-3.1: cgroup v2 on a hybrid host, through its cgroup2 mount.  Limits
 * whose controller v2 lacks here (v1 holds it) are refused; those it has
 * are set; membership (clone3 into the cgroup), cgroup.kill and removal
 * are real. */
static void
ct_3_1_cgroup_v2(void **state)
{
	struct fx *x = fixture(state);
	struct node_host *h2 = &x->host2;
	struct node_spec s;
	struct node_handle h;
	struct node_stats ns;
	char name[64], scratch[128], err[256], buf[4096], path[4200], line[512], rel[64];
	int found = 0;
	FILE *fp;

	if (cgroup_detect() == 2)
		skip(); /* a v2 host: every other test ran on v2 already */
	if (node_host_init(h2, 2, NULL, err, sizeof(err)) < 0)
		skip(); /* no cgroup2 mount at all */
	x->have_host2 = 1;
	spec_for(x, &s, 10, name, scratch);
	if ((h2->cg.ctrl & (CG_CPU | CG_MEMORY | CG_PIDS)) != (CG_CPU | CG_MEMORY | CG_PIDS)) {
		assert_int_equal(node_ct.boot(h2, &s, &h, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "controller is not available"));
		s.cpu_milli = h2->cg.ctrl & CG_CPU ? s.cpu_milli : 0;
		s.mem = h2->cg.ctrl & CG_MEMORY ? s.mem : 0;
		s.pids = h2->cg.ctrl & CG_PIDS ? s.pids : 0;
	}
	assert_int_equal(node_ct.boot(h2, &s, &h, err, sizeof(err)), 0);
	type_line(&h, "echo UP$((1+1)); sleep 1000 & wait");
	assert_true(expect(&h, "UP2", buf, sizeof(buf), 10000));
	snprintf(rel, sizeof(rel), "0::/kh-%s/n10\n", x->fac);
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)h.pid);
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp))
		found += strstr(line, rel) != NULL;
	fclose(fp);
	assert_int_equal(found, 1);
	snprintf(rel, sizeof(rel), "kh-%s/n10", x->fac);
	assert_int_equal(cgroup_node_path(&h2->cg, CG_CPUACCT, rel, path, sizeof(path)), 0);
	if (h2->cg.ctrl & CG_CPU)
		assert_int_equal(read_ull(path, "cpu.max"), 50000);
	if (h2->cg.ctrl & CG_PIDS)
		assert_int_equal(read_ull(path, "pids.max"), 50);
	if (h2->cg.ctrl & CG_MEMORY)
		assert_int_equal(read_ull(path, "memory.max"), 64 * MIB);
	assert_int_equal(node_ct.stats(h2, &h, &ns), 0);
	assert_true(ns.cpu_ns > 0);
	assert_int_equal(node_ct.kill(h2, &h, 5000), 1);
	assert_int_equal(access(path, F_OK), -1);
	close(h.console);
}

/* ct-9.1: last: nothing of ours is left in any hierarchy. */
/* ct-3.2: a cgroup made ahead (cgroup v1) holds the node's limits under
 * p<rank> and nothing else; the boot takes it as n<rank> (the node runs
 * in it, with those limits), the end of the node removes it; one no boot
 * took goes with node_ct_unprepare. */
static void
ct_3_2_cgroup_ahead(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	struct cgroup_limits lim = {.cpu_milli = 500, .mem = 64 * MIB, .pids = 50};
	char name[64], scratch[128], err[256], buf[4096], prel[64], nrel[64], dir[4200];
	if (x->host.cg.version != 1)
		skip();
	snprintf(prel, sizeof(prel), "kh-%s/p7", x->fac);
	snprintf(nrel, sizeof(nrel), "kh-%s/n7", x->fac);
	assert_int_equal(node_ct_prepare(&x->host, x->fac, 7, &lim, err, sizeof(err)), 0);
	assert_true(node_ct_prepared(&x->host, 7));
	assert_true(cg_exists(x, CG_MEMORY, prel));
	assert_false(cg_exists(x, CG_MEMORY, nrel));
	assert_int_equal(cgroup_node_path(&x->host.cg, CG_MEMORY, prel, dir, sizeof(dir)), 0);
	assert_int_equal(read_ull(dir, "memory.limit_in_bytes"), 64 * MIB);
	assert_int_equal(access(dir, F_OK), 0);

	spec_for(x, &s, 7, name, scratch);
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), 0);
	assert_false(node_ct_prepared(&x->host, 7));
	assert_false(cg_exists(x, CG_MEMORY, prel));
	assert_true(cg_exists(x, CG_MEMORY, nrel));
	type_line(&h, "echo IN$((6*7)); exec sleep 1000");
	assert_true(expect(&h, "IN42", buf, sizeof(buf), 10000));
	assert_int_equal(cgroup_node_path(&x->host.cg, CG_MEMORY, nrel, dir, sizeof(dir)), 0);
	assert_int_equal(read_ull(dir, "memory.limit_in_bytes"), 64 * MIB);
	assert_int_equal(read_ull(dir, "cgroup.procs"), (unsigned long long)h.pid);
	assert_int_equal(cgroup_node_path(&x->host.cg, CG_PIDS, nrel, dir, sizeof(dir)), 0);
	assert_int_equal(read_ull(dir, "pids.max"), 50);
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	assert_false(cg_exists(x, CG_MEMORY, nrel));
	close(h.console);

	assert_int_equal(node_ct_prepare(&x->host, x->fac, 7, &lim, err, sizeof(err)), 0);
	assert_true(cg_exists(x, CG_MEMORY, prel));
	node_ct_unprepare(&x->host, x->fac, 7);
	assert_false(node_ct_prepared(&x->host, 7));
	assert_false(cg_exists(x, CG_MEMORY, prel));
}

/* ct-4.1: a free node's waiting process (node_ct_warm) runs kh-ctnode in
 * the rank's cgroup made ahead and in namespaces of its own; it ends when
 * khd gives it up (node_ct_unwarm) and when khd's end of its socket
 * closes (khd is gone), and takes nothing with it. */
static void
ct_4_1_waiting(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct cgroup_limits lim = {.cpu_milli = 500, .mem = 64 * MIB, .pids = 50};
	char name[64], scratch[128], err[256], path[64], comm[64], rel[64], pid[16];
	const char *nss[] = {"mnt", "pid", "uts", "ipc", "cgroup"};
	pid_t w;
	int st;

	if (x->host.cg.version != 1)
		skip();
	spec_for(x, &s, 12, name, scratch);
	assert_int_equal(node_ct_prepare(&x->host, x->fac, 12, &lim, err, sizeof(err)), 0);
	if (node_ct_warm(&x->host, &s, err, sizeof(err)) < 0)
		fail_msg("node_ct_warm: %s", err);
	w = x->host.warm[12].pid;
	assert_true(w > 0);
	assert_true(node_ct_warmed(&x->host, 12, -1));
	/* A second call finds it there. */
	assert_int_equal(node_ct_warm(&x->host, &s, err, sizeof(err)), 0);
	assert_int_equal(x->host.warm[12].pid, w);
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)w);
	snprintf(comm, sizeof(comm), "%s", read_small(path));
	assert_non_null(strstr(comm, "kh-ctnode"));
	snprintf(pid, sizeof(pid), "%d", (int)w);
	/* Once it has set itself up (the last step: its staging root made
	 * read-only, seen from here as its root's mount). */
	for (int i = 0; i < 1000; i++) {
		char line[512];
		int ro = 0;
		FILE *fp;
		snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)w);
		assert_non_null(fp = fopen(path, "r"));
		while (fgets(line, sizeof(line), fp))
			ro |= strstr(line, " / / ro,") != NULL;
		fclose(fp);
		if (ro)
			break;
		assert_true(i < 999);
		usleep(2000);
	}
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++)
		if (ns_inode(pid, nss[i]) == ns_inode("self", nss[i]))
			fail_msg("the waiting process shares the host's %s namespace", nss[i]);
	snprintf(rel, sizeof(rel), "kh-%s/p12", x->fac);
	{
		char dir[4200];
		assert_int_equal(cgroup_node_path(&x->host.cg, CG_MEMORY, rel, dir, sizeof(dir)),
				 0);
		assert_int_equal(read_ull(dir, "cgroup.procs"), (unsigned long long)w);
	}
	node_ct_unwarm(&x->host, 12);
	assert_false(node_ct_warmed(&x->host, 12, -1));
	assert_int_equal(kill(w, 0), -1);
	node_ct_unprepare(&x->host, x->fac, 12);
	assert_false(cg_exists(x, CG_MEMORY, rel));

	/* khd gone: its end of the socket closes, the process ends. */
	assert_int_equal(node_ct_prepare(&x->host, x->fac, 12, &lim, err, sizeof(err)), 0);
	assert_int_equal(node_ct_warm(&x->host, &s, err, sizeof(err)), 0);
	w = x->host.warm[12].pid;
	{
		/* once it has said it is ready */
		struct pollfd pf = {x->host.warm[12].sock, POLLIN, 0};
		char c = 0;
		assert_int_equal(poll(&pf, 1, 5000), 1);
		assert_int_equal(recv(x->host.warm[12].sock, &c, 1, 0), 1);
		assert_int_equal(c, 'R');
	}
	close(x->host.warm[12].sock);
	close(x->host.warm[12].console);
	x->host.warm[12].sock = x->host.warm[12].console = -1;
	x->host.warm[12].pid = 0;
	assert_int_equal(waitpid(w, &st, 0), w);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	node_ct_unprepare(&x->host, x->fac, 12);
	assert_false(cg_exists(x, CG_MEMORY, rel));
}

/* ct-4.2: root in a node (it keeps CAP_SYS_CHROOT) that climbs out of a
 * chroot of its own gets no further than the node's root: nothing of the
 * host, and (booted waiting) not the staging root under it either, which
 * the node's root covers. */
static void
ct_4_2_chroot_escape(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[8192];
	static const char *const ok[] = {"bin", "dev", "init", "proc", "sys", "tmp"};
	int n = 0;

	spec_for(x, &s, 13, name, scratch);
	assert_int_equal(boot_node(x, &s, &h, err, sizeof(err)), 0);
	type_line(&h, "/bin/chroot_escape; echo END$((40+2))");
	assert_true(expect(&h, "END42", buf, sizeof(buf), 10000));
	assert_null(strstr(buf, x->dir));
	assert_non_null(strstr(buf, "DONE"));
	char *root = strstr(buf, "ROOT /:"), *eol;
	assert_non_null(root);
	eol = strpbrk(root, "\r\n");
	assert_non_null(eol);
	*eol = '\0';
	for (char *tok = strtok(root + 7, " "); tok; tok = strtok(NULL, " "), n++) {
		int known = 0;
		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
			known |= strcmp(tok, ok[i]) == 0;
		if (!known)
			fail_msg("a chroot escape reaches /%s", tok);
	}
	assert_int_equal(n, 6);
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	close(h.console);
}

/* A waiting process for s's rank (its cgroup made ahead first): its pid. */
static pid_t
warm_rank(struct fx *x, const struct node_spec *s)
{
	struct cgroup_limits lim = {.cpu_milli = s->cpu_milli, .mem = s->mem, .pids = s->pids};
	char err[256];

	assert_int_equal(node_ct_prepare(&x->host, x->fac, s->rank, &lim, err, sizeof(err)), 0);
	if (node_ct_warm(&x->host, s, err, sizeof(err)) < 0)
		fail_msg("node_ct_warm: %s", err);
	assert_true(x->host.warm[s->rank].pid > 0);
	return x->host.warm[s->rank].pid;
}

/* The booted node answers on its console; then it is killed. */
static void
up_then_kill(struct fx *x, struct node_handle *h)
{
	char buf[4096];

	type_line(h, "echo UP$((1+1)); exec sleep 1000");
	assert_true(expect(h, "UP2", buf, sizeof(buf), 10000));
	assert_int_equal(node_ct.kill(&x->host, h, 5000), 1);
	close(h->console);
}

/* ct-4.3: a waiting process made for another network namespace is not
 * the node's: the boot ends it and sets the node up the usual way, in the
 * namespace it is given. */
static void
ct_4_3_stale(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], buf[4096], pid[16];
	struct stat want;
	pid_t w;
	int fd;

	if (x->host.cg.version != 1 || !x->host.uns.on)
		skip();
	spec_for(x, &s, 14, name, scratch);
	w = warm_rank(x, &s);
	fd = userns_fabric_make(&x->host, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &want), 0);
	s.netns_fd = fd;
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), 0);
	assert_true(h.pid != w);
	assert_false(node_ct_warmed(&x->host, 14, fd));
	userns_fabric_drop(&x->host, fd);
	close(fd);
	type_line(&h, "echo UP$((1+1)); exec sleep 1000");
	assert_true(expect(&h, "UP2", buf, sizeof(buf), 10000));
	snprintf(pid, sizeof(pid), "%d", (int)h.pid);
	assert_int_equal(ns_inode(pid, "net"), (unsigned long)want.st_ino);
	assert_int_equal(node_ct.kill(&x->host, &h, 5000), 1);
	close(h.console);
}

/* ct-4.4: a waiting process whose setup failed (here: no image trees
 * where it was told they are) ends and says why; the boot sets the node up
 * the usual way and it runs. */
static void
ct_4_4_waiting_failed(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], nowhere[160];
	int st;

	if (x->host.cg.version != 1 || !x->host.uns.on)
		skip();
	spec_for(x, &s, 15, name, scratch);
	snprintf(nowhere, sizeof(nowhere), "%s/no-such-images", x->dir);
	s.images = nowhere;
	pid_t w = warm_rank(x, &s);
	/* It ends by itself, NODE_EXIT_SETUP, and says why on its socket. */
	assert_int_equal(waitpid(w, &st, 0), w);
	assert_int_equal(WEXITSTATUS(st), NODE_EXIT_SETUP);
	{
		char why[300];
		ssize_t n = recv(x->host.warm[15].sock, why, sizeof(why) - 1, MSG_DONTWAIT);
		assert_true(n > 0);
		why[n] = '\0';
		if (strncmp(why, "Fthe image trees: No such file", 30) != 0)
			fail_msg("the waiting process said: %s", why);
	}
	close(x->host.warm[15].sock);
	close(x->host.warm[15].console);
	x->host.warm[15].pid = 0;
	x->host.warm[15].sock = x->host.warm[15].console = -1;
	s.images = NULL;
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), 0);
	assert_true(h.pid != w);
	up_then_kill(x, &h);
}

/* ct-4.5: the boot of a node whose waiting process failed its setup goes
 * the usual way (khd logs why). */
static void
ct_4_5_failed_then_boot(void **state)
{
	struct fx *x = fixture(state);
	struct node_spec s;
	struct node_handle h;
	char name[64], scratch[128], err[256], nowhere[160];

	if (x->host.cg.version != 1 || !x->host.uns.on)
		skip();
	spec_for(x, &s, 16, name, scratch);
	snprintf(nowhere, sizeof(nowhere), "%s/no-such-images", x->dir);
	s.images = nowhere;
	pid_t w = warm_rank(x, &s);
	/* Give it time to fail. */
	for (int i = 0; i < 500 && kill(w, 0) == 0; i++) {
		char path[64], stat[256];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)w);
		snprintf(stat, sizeof(stat), "%s", read_small(path));
		if (strstr(stat, ") Z ") != NULL)
			break;
		usleep(2000);
	}
	assert_int_equal(node_ct.boot(&x->host, &s, &h, err, sizeof(err)), 0);
	assert_true(h.pid != w);
	assert_false(node_ct_warmed(&x->host, 16, -1));
	up_then_kill(x, &h);
}

static void
ct_9_1_nothing_left(void **state)
{
	struct fx *x = fixture(state);
	char path[4200], fac[64];

	snprintf(fac, sizeof(fac), "kh-%s", x->fac);
	for (int i = 0; i < x->host.cg.ndirs; i++) {
		snprintf(path, sizeof(path), "%s/%s", x->host.cg.dir[i].path, fac);
		if (access(path, F_OK) == 0)
			fail_msg("%s is left", path);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(ct_1_1_boot_identity, test_teardown),
	    cmocka_unit_test_teardown(ct_1_2_console, test_teardown),
	    cmocka_unit_test_teardown(ct_1_3_exit_reap, test_teardown),
	    cmocka_unit_test_teardown(ct_1_4_kill_tree, test_teardown),
	    cmocka_unit_test_teardown(ct_1_5_oom, test_teardown),
	    cmocka_unit_test_teardown(ct_1_6_confined, test_teardown),
	    cmocka_unit_test_teardown(ct_1_7_twenty, test_teardown),
	    cmocka_unit_test_teardown(ct_1_8_root_in_ram, test_teardown),
	    cmocka_unit_test_teardown(ct_1_9_exec_at_boot, test_teardown),
	    cmocka_unit_test_teardown(ct_2_1_bad_spec, test_teardown),
	    cmocka_unit_test_teardown(ct_2_2_setup_failure, test_teardown),
	    cmocka_unit_test_teardown(ct_2_3_netns, test_teardown),
	    cmocka_unit_test_teardown(ct_3_1_cgroup_v2, test_teardown),
	    cmocka_unit_test_teardown(ct_3_2_cgroup_ahead, test_teardown),
	    cmocka_unit_test_teardown(ct_4_1_waiting, test_teardown),
	    cmocka_unit_test_teardown(ct_4_2_chroot_escape, test_teardown),
	    cmocka_unit_test_teardown(ct_4_3_stale, test_teardown),
	    cmocka_unit_test_teardown(ct_4_4_waiting_failed, test_teardown),
	    cmocka_unit_test_teardown(ct_4_5_failed_then_boot, test_teardown),
	    cmocka_unit_test_teardown(ct_9_1_nothing_left, test_teardown),
	};
	int failed = cmocka_run_group_tests_name("ct", tests, group_setup, group_teardown);

	/* Again, every node booted through a waiting process (boot_node):
	 * on cgroup v1, where free nodes wait ready. */
	if (geteuid() != 0 || cgroup_detect() != 1) {
		printf("ok - ct, booted waiting # SKIP free nodes wait ready on cgroup v1 only\n");
		return failed;
	}
	warm = 1;
	return failed + cmocka_run_group_tests_name("ct, booted waiting", tests, group_setup,
						    group_teardown);
}
