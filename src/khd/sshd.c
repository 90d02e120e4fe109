/* sshd: khd runs and supervises its own OpenSSH server (docs/channels.md).
 * sshd needs every login to resolve through getpwnam, and we may not touch
 * the host's user database, so sshd runs in a mount namespace of its own
 * where /etc/passwd, group, shadow and nsswitch.conf are bind mounts of
 * files khd writes under DIR/ssh, listing one user con<C> per channel. */
#include "khd/sshd.h"
#include "khd/khd.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_NS      (30ull * 1000000000ull) /* ran this long: backoff starts over */
#define READY_MS       10000		       /* first start: sshd must listen by then */

/* The user files sshd's namespace sees instead of the host's. */
enum { F_PASSWD, F_GROUP, F_SHADOW, F_NSSWITCH, F_COUNT };
static const char *const file_names[F_COUNT] = {"passwd", "group", "shadow", "nsswitch.conf"};
static const char *const file_targets[F_COUNT] = {"/etc/passwd", "/etc/group", "/etc/shadow",
						  "/etc/nsswitch.conf"};
/* Host files sshd would write login records to, or run for every session:
 * inside the namespace they are /dev/null. */
static const char *const hidden[] = {"/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog",
				     "/etc/ssh/sshrc", NULL};

struct sshd {
	struct khd *k;
	int port;
	char listen[INET6_ADDRSTRLEN];
	char program[PATH_MAX];
	char dir[PATH_MAX];	/* DIR/ssh */
	char pub[PATH_MAX + 8]; /* DIR/ssh/pub: SSHD_RUNDIR inside the namespace */
	char config[PATH_MAX + 16];
	char pidfile[PATH_MAX + 16];
	char sock[PATH_MAX + 16];
	char files[F_COUNT][PATH_MAX + 16];
	int ufd[2];    /* passwd, shadow: rewritten in place (bind mounts) */
	uint64_t usig; /* the channel set they list */
	int lfd;       /* khd's ssh socket */
	pid_t pid;
	int pidfd;
	int errr, errw; /* sshd's stderr: a pipe khd reads (and keeps) */
	struct sbuf errline;
	char last[256]; /* sshd's last line, for an error message */
	int ready;	/* "Server listening" seen */
	uint64_t started_ns;
	uint64_t backoff_ms;
	uint64_t timer;
	int stopping;
};

int
sshd_parse_port(const char *s)
{
	uint64_t v;
	if (s == NULL || parse_uint(s, 1, 65535, &v) < 0)
		return -1;
	return (int)v;
}

int
sshd_uid_chan(uid_t uid)
{
	if (uid < SSHD_UID_BASE + 2 || uid > SSHD_UID_BASE + SSHD_CHAN_MAX)
		return -1;
	return (int)(uid - SSHD_UID_BASE);
}

/* Write all of p at offset 0 and cut the file there: the same inode, so
 * the bind mount in sshd's namespace sees the new contents. */
static int
rewrite(int fd, const char *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = pwrite(fd, p + off, n - off, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		off += (size_t)w;
	}
	return ftruncate(fd, (off_t)n);
}

static int
write_file(const char *path, mode_t mode, const char *p, size_t n, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0 || fchmod(fd, mode) < 0 || rewrite(fd, p, n) < 0) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* One line per channel, in id order; ids only grow, so a new channel
 * appends.  A getpwnam racing a rewrite may read old and new bytes mixed:
 * that can fail a login, never open a wrong channel, because khd goes by
 * the uid, and the key lookup refuses a name and uid that disagree. */
static void
users_text(struct khd *k, struct sbuf *pw, struct sbuf *sh)
{
	sbuf_printf(pw,
		    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
		    "sshd:x:%u:%u:kittyhawk sshd privilege separation:/run/sshd:/usr/sbin/nologin\n"
		    "khkeys:x:%u:%u:kittyhawk key lookup:" SSHD_RUNDIR ":/usr/sbin/nologin\n"
		    "%s:x:%u:%u:kittyhawk service interface:" SSHD_RUNDIR ":/bin/sh\n",
		    SSHD_UID_PRIVSEP, SSHD_UID_PRIVSEP, SSHD_UID_KEYS, SSHD_UID_KEYS, SSHD_SVC_USER,
		    SSHD_UID_SVC, SSHD_UID_SVC);
	sbuf_printf(sh, "root:*:::::::\nsshd:*:::::::\nkhkeys:*:::::::\n%s:*:::::::\n",
		    SSHD_SVC_USER);
	for (int i = 0; i < k->fac.nchannels; i++) {
		int c = k->fac.channels[i].id;
		if (c < 2 || c > SSHD_CHAN_MAX)
			continue;
		unsigned uid = SSHD_UID_BASE + (unsigned)c;
		sbuf_printf(pw, "con%d:x:%u:%u:kittyhawk channel con%d:" SSHD_RUNDIR ":/bin/sh\n",
			    c, uid, uid, c);
		sbuf_printf(sh, "con%d:*:::::::\n", c);
	}
}

static uint64_t
channel_sig(const struct facility *f)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)f->nchannels;
	for (int i = 0; i < f->nchannels; i++) {
		h ^= (uint64_t)(uint32_t)f->channels[i].id;
		h *= 1099511628211ull;
	}
	return h;
}

void
sshd_users(struct khd *k)
{
	struct sshd *s = k->sshd;
	struct sbuf pw, sh;

	if (s == NULL || s->ufd[0] < 0)
		return;
	uint64_t sig = channel_sig(&k->fac);
	if (sig == s->usig)
		return;
	sbuf_init(&pw);
	sbuf_init(&sh);
	users_text(k, &pw, &sh);
	/* shadow first: a login listed in passwd always has its shadow line */
	if (rewrite(s->ufd[1], sh.s, sh.len) < 0 || rewrite(s->ufd[0], pw.s, pw.len) < 0)
		log_warn("sshd: cannot rewrite %s", s->dir);
	else
		s->usig = sig;
	sbuf_free(&pw);
	sbuf_free(&sh);
}

static int
write_users(struct sshd *s, char *err, size_t errlen)
{
	static const char group[] = "root:x:0:\nnogroup:x:65534:\n";
	static const char nss[] = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";
	struct sbuf pw, sh;
	int rc = -1;

	sbuf_init(&pw);
	sbuf_init(&sh);
	users_text(s->k, &pw, &sh);
	if (write_file(s->files[F_PASSWD], 0644, pw.s, pw.len, err, errlen) < 0 ||
	    write_file(s->files[F_SHADOW], 0600, sh.s, sh.len, err, errlen) < 0 ||
	    write_file(s->files[F_GROUP], 0644, group, sizeof(group) - 1, err, errlen) < 0 ||
	    write_file(s->files[F_NSSWITCH], 0644, nss, sizeof(nss) - 1, err, errlen) < 0)
		goto out;
	s->ufd[0] = open(s->files[F_PASSWD], O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	s->ufd[1] = open(s->files[F_SHADOW], O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (s->ufd[0] < 0 || s->ufd[1] < 0) {
		seterr(err, errlen, "%s: %s", s->dir, strerror(errno));
		goto out;
	}
	s->usig = channel_sig(&s->k->fac);
	rc = 0;
out:
	sbuf_free(&pw);
	sbuf_free(&sh);
	return rc;
}

static int
write_config(struct sshd *s, char *err, size_t errlen)
{
	struct sbuf c;
	sbuf_init(&c);
	sbuf_printf(&c,
		    "# Written by khd at every start: edits are lost.  See docs/channels.md.\n"
		    "Port %d\n",
		    s->port);
	if (s->listen[0])
		sbuf_printf(&c, "ListenAddress %s\n", s->listen);
	sbuf_printf(&c,
		    "HostKey %s/host_ed25519_key\n"
		    "PidFile %s\n"
		    "UsePAM no\n"
		    "PermitRootLogin no\n"
		    "AllowUsers con* " SSHD_SVC_USER "\n"
		    "AuthenticationMethods publickey\n"
		    "PubkeyAuthentication yes\n"
		    "PasswordAuthentication no\n"
		    "KbdInteractiveAuthentication no\n"
		    "HostbasedAuthentication no\n"
		    "PermitEmptyPasswords no\n"
		    "AuthorizedKeysFile none\n"
		    "AuthorizedKeysCommand " SSHD_KHSSH " keys %%u %%U\n"
		    "AuthorizedKeysCommandUser khkeys\n"
		    "ExposeAuthInfo yes\n"
		    "ForceCommand " SSHD_KHSSH " session\n"
		    "DisableForwarding yes\n"
		    "AllowTcpForwarding no\n"
		    "AllowStreamLocalForwarding no\n"
		    "AllowAgentForwarding no\n"
		    "X11Forwarding no\n"
		    "PermitTunnel no\n"
		    "PermitTTY yes\n"
		    "PermitUserRC no\n"
		    "PermitUserEnvironment no\n"
		    "PrintMotd no\n"
		    "PrintLastLog no\n"
		    "UseDNS no\n"
		    /* Slow or silent clients (slowloris) hold a pre-auth
		     * slot for at most 15 s, and many of them do not lock
		     * out the rest: sshd's default drops at 10 starts. */
		    "LoginGraceTime 15\n"
		    "MaxStartups 200:30:2000\n"
		    "ClientAliveInterval 60\n"
		    "ClientAliveCountMax 3\n"
		    "LogLevel INFO\n",
		    s->dir, s->pidfile);
	int rc = write_file(s->config, 0644, c.s, c.len, err, errlen);
	sbuf_free(&c);
	return rc;
}

/* Run argv to completion; its first line of stderr becomes the error. */
static int
run_tool(char *const argv[], char *err, size_t errlen)
{
	int p[2], st;
	char msg[256] = "";

	if (pipe2(p, O_CLOEXEC) < 0)
		return seterr(err, errlen, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return seterr(err, errlen, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(p[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	ssize_t n = read(p[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return seterr(err, errlen, "%s: %s", argv[0], msg[0] ? msg : "failed");
	return 0;
}

/* The host key is made once: clients that met this facility keep trusting it. */
static int
host_key(struct sshd *s, char *err, size_t errlen)
{
	char path[PATH_MAX + 32], comment[300];
	snprintf(path, sizeof(path), "%s/host_ed25519_key", s->dir);
	if (access(path, R_OK) == 0)
		return 0;
	snprintf(comment, sizeof(comment), "kittyhawk@%s", s->k->fac.host);
	char *argv[] = {"ssh-keygen", "-q",    "-t", "ed25519", "-N", "",
			"-C",	      comment, "-f", path,	NULL};
	if (run_tool(argv, err, errlen) < 0)
		return -1;
	log_info("sshd: made host key %s", path);
	return 0;
}

/* sshd runs the session program as the channel's user, and insists that an
 * AuthorizedKeysCommand and every directory above it belong to root and are
 * writable by nobody else: a copy under DIR/ssh/pub (SSHD_RUNDIR inside
 * the namespace) is, wherever khd was built. */
static int
install_khssh(struct sshd *s, char *err, size_t errlen)
{
	char exe[PATH_MAX], src[PATH_MAX + 8], tmp[PATH_MAX + 32], dst[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return seterr(err, errlen, "/proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	snprintf(src, sizeof(src), "%s/khssh", exe);
	snprintf(tmp, sizeof(tmp), "%s/.khssh.tmp", s->pub);
	snprintf(dst, sizeof(dst), "%s/khssh", s->pub);
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return seterr(err, errlen, "%s: %s (khssh is installed beside khd)", src,
			      strerror(errno));
	unlink(tmp);
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0) {
		close(in);
		return seterr(err, errlen, "%s: %s", tmp, strerror(errno));
	}
	char buf[65536];
	int rc = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -1;
			break;
		}
	if (n < 0 || rc < 0 || fchmod(out, 0755) < 0 || fchown(out, 0, 0) < 0 || close(out) < 0) {
		close(in);
		unlink(tmp);
		return seterr(err, errlen, "%s: %s", tmp, strerror(errno));
	}
	close(in);
	if (rename(tmp, dst) < 0)
		return seterr(err, errlen, "%s: %s", dst, strerror(errno));
	return 0;
}

/* A khd killed with -9 leaves its sshd running: find it by the pid file and
 * make sure it is ours (its command line names our configuration). */
static void
kill_stale(struct sshd *s)
{
	char buf[64], path[64], cmd[4096];
	int fd = open(s->pidfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(s->pidfile);
	buf[n > 0 ? n : 0] = '\0';
	long pid = strtol(buf, NULL, 10);
	if (pid <= 1)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return;
	cmd[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	if (strstr(cmd, s->config) == NULL)
		return;
	log_info("sshd: stopping pid %ld, left by a previous khd", pid);
	kill((pid_t)pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		char st[512];
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return;
		n = read(fd, st, sizeof(st) - 1);
		close(fd);
		st[n > 0 ? n : 0] = '\0';
		char *rp = strrchr(st, ')');
		if (rp == NULL || rp[1] == '\0' || rp[2] == 'Z')
			return;
		if (i == 200)
			kill((pid_t)pid, SIGKILL);
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	log_warnx("sshd: pid %ld does not go away", pid);
}

/* Is the port free?  sshd would bind what it can and say so only in its
 * log; a port someone else holds must stop khd with one clear line. */
static int
probe_port(struct sshd *s, char *err, size_t errlen)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
				  .sin6_port = htons((uint16_t)s->port),
				  .sin6_addr = IN6ADDR_ANY_INIT};
	int fams[2] = {AF_INET, AF_INET6}, nfam = 2;

	if (s->listen[0]) {
		if (inet_pton(AF_INET, s->listen, &a4.sin_addr) == 1)
			nfam = 1;
		else if (inet_pton(AF_INET6, s->listen, &a6.sin6_addr) == 1) {
			fams[0] = AF_INET6;
			nfam = 1;
		}
	}
	for (int i = 0; i < nfam; i++) {
		int one = 1, fd = socket(fams[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue; /* no IPv6 here: sshd will not listen there either */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fams[i] == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		int rc = fams[i] == AF_INET ? bind(fd, (struct sockaddr *)&a4, sizeof(a4))
					    : bind(fd, (struct sockaddr *)&a6, sizeof(a6));
		int e = errno;
		close(fd);
		if (rc < 0 && e == EADDRINUSE)
			return seterr(err, errlen,
				      "--ssh-port %d: the port is in use by another program",
				      s->port);
		if (rc < 0 && s->listen[0])
			return seterr(err, errlen, "--ssh-listen %s: %s", s->listen, strerror(e));
	}
	return 0;
}

/* In the child, between fork and exec: report and leave. */
static void __attribute__((noreturn)) child_fail(const char *what, const char *path)
{
	dprintf(2, "khd: sshd namespace: %s %s: %s\n", what, path, strerror(errno));
	_exit(127);
}

static void
child_bind(int fd, const char *target)
{
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	if (mount(src, target, NULL, MS_BIND, NULL) < 0)
		child_fail("bind mount on", target);
}

static void
mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	mkdir(path, 0755);
}

/* The child: a private mount namespace, khd's user files over the host's,
 * a fresh /run (no host nscd or userdb socket reaches getpwnam there; sshd
 * finds its privilege separation directory and khd's socket), then sshd. */
static void __attribute__((noreturn)) child(struct sshd *s, int devnull)
{
	sigset_t none;
	int fds[F_COUNT], pubfd, dirfd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(s->errw, 2);
	if (unshare(CLONE_NEWNS) < 0)
		child_fail("unshare", "");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail("make private", "/");
	/* Held by descriptor (opened in the new namespace, so that they can be
	 * bind mounted): the tmpfs below may hide them (DIR under /run). */
	if ((pubfd = open(s->pub, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		child_fail("open", s->pub);
	if ((dirfd = open(s->dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		child_fail("open", s->dir);
	for (int i = 0; i < F_COUNT; i++)
		if ((fds[i] = open(s->files[i], O_PATH | O_CLOEXEC)) < 0)
			child_fail("open", s->files[i]);
	if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m") < 0)
		child_fail("mount tmpfs on", "/run");
	if (mkdir("/run/sshd", 0755) < 0 || mkdir(SSHD_RUNDIR, 0755) < 0)
		child_fail("mkdir in", "/run");
	child_bind(pubfd, SSHD_RUNDIR);
	if (access(s->config, R_OK) < 0) {
		mkdir_p(s->dir);
		child_bind(dirfd, s->dir);
	}
	for (int i = 0; i < F_COUNT; i++)
		child_bind(fds[i], file_targets[i]);
	for (int i = 0; hidden[i]; i++)
		if (access(hidden[i], F_OK) == 0 &&
		    mount("/dev/null", hidden[i], NULL, MS_BIND, NULL) < 0)
			child_fail("bind mount on", hidden[i]);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	char *argv[] = {s->program, "-D", "-e", "-f", s->config, NULL};
	char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	execve(s->program, argv, envp);
	child_fail("exec", s->program);
}

static void on_exit_event(struct ev *ev, int fd, int events, void *arg);
static void on_err_event(struct ev *ev, int fd, int events, void *arg);

static int
spawn(struct sshd *s, char *err, size_t errlen)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return seterr(err, errlen, "/dev/null: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(devnull);
		return seterr(err, errlen, "fork: %s", strerror(errno));
	}
	if (pid == 0)
		child(s, devnull);
	close(devnull);
	s->pid = pid;
	s->ready = 0;
	s->started_ns = now_ns();
	/* sshd writes the same file once it listens; until then, ours says
	 * which process a khd killed right now would leave behind. */
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	char e2[64];
	write_file(s->pidfile, 0644, buf, (size_t)n, e2, sizeof(e2));
	s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (s->pidfd >= 0) {
		fcntl(s->pidfd, F_SETFD, FD_CLOEXEC);
		ev_watch(s->k->ev, s->pidfd, EV_READ, on_exit_event, s);
	}
	return 0;
}

/* A whole line of sshd's stderr: to khd.log. */
static void
err_line(struct sshd *s, const char *line)
{
	if (*line == '\0')
		return;
	log_info("sshd: %s", line);
	snprintf(s->last, sizeof(s->last), "%s", line);
	if (strncmp(line, "Server listening on", 19) == 0)
		s->ready = 1;
}

static void
read_err(struct sshd *s)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(s->errr, buf, sizeof(buf))) > 0) {
		sbuf_add(&s->errline, buf, (size_t)n);
		char *nl;
		while ((nl = memchr(s->errline.s, '\n', s->errline.len)) != NULL) {
			*nl = '\0';
			if (nl > s->errline.s && nl[-1] == '\r')
				nl[-1] = '\0';
			err_line(s, s->errline.s);
			sbuf_consume(&s->errline, (size_t)(nl - s->errline.s) + 1);
		}
		if (s->errline.len > 2048) { /* a line that never ends: cut it */
			err_line(s, s->errline.s);
			sbuf_reset(&s->errline);
		}
	}
}

static void
on_err_event(struct ev *ev, int fd, int events, void *arg)
{
	(void)ev;
	(void)fd;
	(void)events;
	read_err(arg);
}

/* Reap sshd; returns its wait status. */
static int
reap(struct sshd *s)
{
	int st = 0;
	if (s->pidfd >= 0) {
		ev_unwatch(s->k->ev, s->pidfd);
		close(s->pidfd);
		s->pidfd = -1;
	}
	while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
		;
	s->pid = 0;
	return st;
}

static void
describe(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "ended");
}

static void
restart(struct ev *ev, void *arg)
{
	struct sshd *s = arg;
	char err[256];
	(void)ev;
	s->timer = 0;
	if (s->stopping)
		return;
	if (spawn(s, err, sizeof(err)) < 0) {
		log_warnx("sshd: cannot restart: %s", err);
		s->backoff_ms =
		    s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
		s->timer = ev_after(s->k->ev, s->backoff_ms, restart, s);
	}
}

static void
on_exit_event(struct ev *ev, int fd, int events, void *arg)
{
	struct sshd *s = arg;
	char how[64];
	(void)fd;
	(void)events;

	read_err(s);
	uint64_t ran = now_ns() - s->started_ns;
	describe(reap(s), how, sizeof(how));
	if (s->stopping)
		return;
	if (ran >= STABLE_NS)
		s->backoff_ms = BACKOFF_MIN_MS;
	log_warnx("sshd %s; restarting it in %llu ms", how, (unsigned long long)s->backoff_ms);
	s->timer = ev_after(ev, s->backoff_ms, restart, s);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* The first start is synchronous, so that khd reports a failing sshd as a
 * failure to start, and "khd --ssh-port P && ssh ..." never races. */
static int
wait_ready(struct sshd *s, char *err, size_t errlen)
{
	uint64_t until = now_ns() + READY_MS * 1000000ull;
	while (!s->ready) {
		struct pollfd pf[2] = {{s->errr, POLLIN, 0}, {s->pidfd, POLLIN, 0}};
		uint64_t now = now_ns();
		if (now >= until)
			return seterr(err, errlen, "sshd did not listen within %d s (see khd.log)",
				      READY_MS / 1000);
		poll(pf, s->pidfd >= 0 ? 2 : 1, (int)((until - now) / 1000000) + 1);
		read_err(s);
		int dead = s->pidfd >= 0 ? (pf[1].revents & POLLIN) != 0
					 : waitpid(s->pid, NULL, WNOHANG) == s->pid;
		if (dead && !s->ready) {
			char how[64];
			struct timespec ts = {0, 20000000};
			nanosleep(&ts, NULL);
			read_err(s);
			if (s->pidfd >= 0)
				describe(reap(s), how, sizeof(how));
			else
				snprintf(how, sizeof(how), "ended");
			s->pid = 0;
			return seterr(err, errlen, "sshd %s: %s", how, s->last[0] ? s->last : "?");
		}
	}
	return 0;
}

static void
sshd_free(struct sshd *s)
{
	for (int i = 0; i < 2; i++)
		if (s->ufd[i] >= 0)
			close(s->ufd[i]);
	if (s->lfd >= 0) {
		ev_unwatch(s->k->ev, s->lfd);
		close(s->lfd);
		unlink(s->sock);
	}
	if (s->errr >= 0) {
		ev_unwatch(s->k->ev, s->errr);
		close(s->errr);
	}
	if (s->errw >= 0)
		close(s->errw);
	sbuf_free(&s->errline);
	free(s);
}

int
sshd_start(struct khd *k, const struct sshd_conf *conf, char *err, size_t errlen)
{
	struct sshd *s = calloc(1, sizeof(*s));
	int p[2];

	if (s == NULL)
		return seterr(err, errlen, "out of memory");
	s->k = k;
	s->port = conf->port;
	s->ufd[0] = s->ufd[1] = s->lfd = s->pidfd = s->errr = s->errw = -1;
	s->backoff_ms = BACKOFF_MIN_MS;
	sbuf_init(&s->errline);
	snprintf(s->program, sizeof(s->program), "%s",
		 conf->program ? conf->program : "/usr/sbin/sshd");
	if (conf->listen) {
		struct in6_addr a;
		if (inet_pton(AF_INET, conf->listen, &a) != 1 &&
		    inet_pton(AF_INET6, conf->listen, &a) != 1) {
			seterr(err, errlen,
			       "--ssh-listen takes a numeric IPv4 or IPv6 address, not '%.60s'",
			       conf->listen);
			goto fail;
		}
		snprintf(s->listen, sizeof(s->listen), "%s", conf->listen);
	}
	if (access(s->program, X_OK) < 0) {
		seterr(err, errlen, "%s: %s (install openssh-server: scripts/deps.sh)", s->program,
		       strerror(errno));
		goto fail;
	}
	snprintf(s->dir, sizeof(s->dir), "%.*s/ssh", PATH_MAX - 8, k->dir);
	snprintf(s->pub, sizeof(s->pub), "%s/pub", s->dir);
	snprintf(s->config, sizeof(s->config), "%s/sshd_config", s->dir);
	snprintf(s->pidfile, sizeof(s->pidfile), "%s/sshd.pid", s->dir);
	snprintf(s->sock, sizeof(s->sock), "%s/khd.sock", s->pub);
	for (int i = 0; i < F_COUNT; i++)
		snprintf(s->files[i], sizeof(s->files[i]), "%s/%s", s->dir, file_names[i]);
	/* DIR/ssh is root's alone; pub is reachable only through sshd's
	 * namespace, where it is SSHD_RUNDIR. */
	if ((mkdir(s->dir, 0700) < 0 && errno != EEXIST) || chmod(s->dir, 0700) < 0 ||
	    (mkdir(s->pub, 0755) < 0 && errno != EEXIST) || chmod(s->pub, 0755) < 0) {
		seterr(err, errlen, "%s: %s", s->dir, strerror(errno));
		goto fail;
	}
	kill_stale(s);
	if (probe_port(s, err, errlen) < 0 || host_key(s, err, errlen) < 0 ||
	    write_config(s, err, errlen) < 0 || write_users(s, err, errlen) < 0 ||
	    install_khssh(s, err, errlen) < 0)
		goto fail;
	if ((s->lfd = server_listen_ssh(k, s->sock, err, errlen)) < 0)
		goto fail;
	if (pipe2(p, O_CLOEXEC) < 0) {
		seterr(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	s->errr = p[0];
	s->errw = p[1];
	fcntl(s->errr, F_SETFL, O_NONBLOCK);
	if (spawn(s, err, errlen) < 0 || wait_ready(s, err, errlen) < 0)
		goto fail;
	ev_watch(k->ev, s->errr, EV_READ, on_err_event, s);
	k->sshd = s;
	k->fac.ssh_port = s->port;
	log_info("sshd: listening on %s port %d for ssh con<C>@%s", s->listen[0] ? s->listen : "*",
		 s->port, k->fac.host);
	return 0;
fail:
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		reap(s);
	}
	sshd_free(s);
	return -1;
}

void
sshd_stop(struct khd *k)
{
	struct sshd *s = k->sshd;
	if (s == NULL)
		return;
	s->stopping = 1;
	if (s->timer)
		ev_cancel(k->ev, s->timer);
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		for (int i = 0; i < 200 && waitpid(s->pid, NULL, WNOHANG) == 0; i++) {
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL);
			if (i == 199) {
				log_warnx("sshd does not stop on SIGTERM: killing it");
				kill(s->pid, SIGKILL);
				waitpid(s->pid, NULL, 0);
			}
		}
		if (s->pidfd >= 0) {
			ev_unwatch(k->ev, s->pidfd);
			close(s->pidfd);
		}
		s->pid = 0;
	}
	read_err(s);
	unlink(s->pidfile);
	k->fac.ssh_port = 0;
	k->sshd = NULL;
	sshd_free(s);
}
