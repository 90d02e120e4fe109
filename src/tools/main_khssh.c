/* khssh: the ssh side of control channels.  khd's own sshd runs it, never a
 * user (docs/channels.md), inside sshd's namespace:
 *   khssh keys USER UID   AuthorizedKeysCommand: the keys that log in as USER
 *   khssh session         ForceCommand: this session becomes its channel
 * Both talk to khd's ssh socket, where the kernel tells khd our uid: the
 * uid of con<C> opens con<C> and nothing else. */
#include "common/proto.h"
#include "common/util.h"
#include "khd/sshd.h"
#include "tools/client.h"
#include "tools/sshargs.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

static int
keys(const char *sock, const char *user, const char *uid)
{
	struct sbuf req;
	sbuf_init(&req);
	proto_begin(&req, "authkeys");
	proto_arg(&req, "user", user);
	proto_arg(&req, "uid", uid);
	proto_end(&req);
	int rc = client_run("khssh", sock, &req);
	sbuf_free(&req);
	return rc;
}

/* The key sshd verified, from the file ExposeAuthInfo names: a line
 * "publickey TYPE BASE64". */
static int
auth_key(char *key, size_t len)
{
	const char *path = getenv("SSH_USER_AUTH");
	char line[8192];
	int found = 0;

	FILE *fp = path ? fopen(path, "re") : NULL;
	if (fp == NULL)
		return -1;
	while (!found && fgets(line, sizeof(line), fp)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "publickey ", 10) == 0 && strlen(line + 10) < len) {
			snprintf(key, len, "%s", line + 10);
			found = 1;
		}
	}
	fclose(fp);
	return found ? 0 : -1;
}

/* With a terminal (ssh -t, or an interactive ssh): the channel is a serial
 * console, so keys go through as typed (^C reaches the nodes; leave with
 * "~."), Enter is a newline, and output lines end as a terminal wants. */
static void
raw_tty(int fd)
{
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return;
	t.c_iflag &= ~(unsigned)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | IXON | IXOFF);
	t.c_iflag |= ICRNL;
	t.c_lflag &= ~(unsigned)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_oflag |= OPOST | ONLCR;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	tcsetattr(fd, TCSANOW, &t);
}

/* Attach: send the request, read the one reply line.  Returns the
 * connected fd, or -1 after saying why on stderr. */
static int
attach(const char *sock, const struct sshargs *a, const char *key)
{
	char err[512], line[600];
	struct sbuf req;
	size_t ll = 0;

	int fd = client_connect(sock, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "khssh: %s\n", err);
		return -1;
	}
	sbuf_init(&req);
	proto_begin(&req, "attach");
	proto_arg(&req, "key", key);
	if (a->prefix)
		proto_arg(&req, "mode", "prefix");
	if (a->ro)
		proto_arg(&req, "ro", "1");
	if (a->ranks)
		proto_arg(&req, "ranks", a->ranks);
	proto_end(&req);
	int rc = write_all(fd, req.s, req.len);
	sbuf_free(&req);
	if (rc < 0) {
		fprintf(stderr, "khssh: lost khd\n");
		close(fd);
		return -1;
	}
	/* The reply line, byte by byte: what follows it is the stream. */
	for (;;) {
		ssize_t n = read(fd, line + ll, 1);
		if (n <= 0) {
			fprintf(stderr, "khssh: khd closed the connection\n");
			close(fd);
			return -1;
		}
		if (line[ll] == '\n' || ll + 2 >= sizeof(line))
			break;
		ll++;
	}
	line[ll] = '\0';
	if (strcmp(line, "ok") != 0) {
		const char *msg = strncmp(line, "err ", 4) == 0 ? strchr(line + 4, ' ') : NULL;
		fprintf(stderr, "khssh: %s\n", msg ? msg + 1 : line);
		close(fd);
		return -1;
	}
	return fd;
}

/* Count the matches of until in the output, across reads: tail keeps the
 * last ul-1 bytes, so a match is never counted twice. */
static void
match(const struct sshargs *a, char *tail, size_t *tl, const char *buf, size_t n, uint64_t *seen)
{
	size_t ul = strlen(a->until);
	memcpy(tail + *tl, buf, n);
	*tl += n;
	for (char *at = tail; (at = memmem(at, *tl - (size_t)(at - tail), a->until, ul)) != NULL;
	     at += ul)
		(*seen)++;
	if (*tl >= ul) {
		memmove(tail, tail + *tl - (ul - 1), ul - 1);
		*tl = ul - 1;
	}
}

static int
session(const char *sock)
{
	struct sshargs a;
	char err[512], key[8192], buf[65536];
	int tty = isatty(0), rc = 1;

	/* First of all: what the client types must not echo back. */
	if (tty)
		raw_tty(0);
	if (sshargs_parse(getenv("SSH_ORIGINAL_COMMAND"), getenv("TERM"), &a, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "khssh: %s\n", err);
		return 2;
	}
	if (auth_key(key, sizeof(key)) < 0) {
		fprintf(stderr,
			"khssh: no public key in SSH_USER_AUTH (sshd needs ExposeAuthInfo)\n");
		return 1;
	}
	int fd = attach(sock, &a, key);
	if (fd < 0)
		return 1;

	/* Input ends in one of three ways.  A terminal: the client left.  A
	 * session that wrote something (echo cmd | ssh con2@host): it waits
	 * for the answers like khcon, until "until" or "idle".  A session
	 * that wrote nothing (ssh con2@host </dev/null, the original's
	 * readcon): it reads until the client goes away. */
	int in_open = !a.ro, reader = a.ro;
	uint64_t got_in = 0, start = now_ns(), last_out = now_ns(), seen = 0;
	size_t tl = 0;
	char *tail = calloc(1, (a.until ? strlen(a.until) : 0) + sizeof(buf) + 1);
	if (tail == NULL)
		goto out;
	for (;;) {
		struct pollfd pf[3] = {{fd, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}, {1, 0, 0}};
		if (poll(pf, 3, 50) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0) {
				fprintf(stderr, "khssh: khd closed the channel\n");
				goto out;
			}
			/* Blocking: a client that stops reading holds us here, and
			 * khd counts what it drops for us meanwhile. */
			if (write_all(1, buf, (size_t)n) < 0)
				break;
			last_out = now_ns();
			if (a.until && seen < a.count)
				match(&a, tail, &tl, buf, (size_t)n, &seen);
		}
		if (pf[2].revents & (POLLERR | POLLHUP))
			break; /* the client went away */
		if (in_open && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				in_open = 0;
				if (tty)
					break;
				reader = got_in == 0;
			} else {
				got_in += (uint64_t)n;
				if (write_all(fd, buf, (size_t)n) < 0) {
					fprintf(stderr, "khssh: lost khd\n");
					goto out;
				}
			}
		}
		if (!in_open && a.until && seen >= a.count)
			break;
		if (!in_open && !reader && !a.until &&
		    now_ns() - last_out >= a.idle_ms * 1000000ull)
			break;
		if (a.timeout_s && now_ns() - start >= a.timeout_s * 1000000000ull) {
			if (a.until)
				fprintf(stderr, "khssh: timed out waiting for '%s'\n", a.until);
			else
				fprintf(stderr, "khssh: timed out\n");
			goto out;
		}
	}
	rc = 0;
out:
	free(tail);
	close(fd);
	return rc;
}

/* A session of the service login (uid SSHD_UID_SVC): it tells khd the
 * key sshd verified, then the connection is the client's: protocol lines
 * from the client (khget, khctl, khdo in a node), replies back, and after
 * an attach the channel's bytes.  Each side's end is passed on. */
static int
svc_session(const char *sock)
{
	char err[512], key[8192], code[32], msg[256], buf[65536];
	if (auth_key(key, sizeof(key)) < 0) {
		fprintf(stderr, "khssh: no public key in SSH_USER_AUTH\n");
		return 1;
	}
	int fd = client_connect(sock, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "khssh: %s\n", err);
		return 1;
	}
	struct sbuf req, body;
	sbuf_init(&req);
	sbuf_init(&body);
	proto_begin(&req, "svc");
	proto_arg(&req, "key", key);
	proto_end(&req);
	int rc = client_call(fd, &req, &body, code, sizeof(code), msg, sizeof(msg));
	sbuf_free(&req);
	sbuf_free(&body);
	if (rc != 0) {
		fprintf(stderr, "khssh: %s\n", msg);
		close(fd);
		return 1;
	}
	int in_open = 1;
	for (;;) {
		struct pollfd pf[2] = {{fd, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0 || write_all(1, buf, (size_t)n) < 0)
				break;
		}
		if (in_open && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				in_open = 0;
				shutdown(fd, SHUT_WR);
			} else if (write_all(fd, buf, (size_t)n) < 0) {
				break;
			}
		}
	}
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *sock = SSHD_SOCKET;

	signal(SIGPIPE, SIG_IGN);
	if (argc > 2 && strcmp(argv[1], "--socket") == 0) {
		sock = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc == 4 && strcmp(argv[1], "keys") == 0)
		return keys(sock, argv[2], argv[3]);
	if (argc == 2 && strcmp(argv[1], "session") == 0)
		return getuid() == SSHD_UID_SVC ? svc_session(sock) : session(sock);
	fprintf(stderr, "usage: khssh [--socket PATH] keys USER UID | session\n"
			"(khd's sshd runs khssh; see docs/channels.md)\n");
	return 2;
}
