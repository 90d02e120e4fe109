/* xclient: khctl exec.  One poll loop over khd's socket, stdin and a
 * signalfd: frames from khd go to stdout/stderr, stdin goes out in "i *"
 * frames (then "c *" at its end), the first SIGINT/SIGTERM/SIGHUP is sent
 * to the processes ("k SIG") and a second one leaves, which kills them. */
#include "tools/xclient.h"
#include "common/proto.h"
#include "common/util.h"
#include "exec/frame.h"
#include "tools/client.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

static const char usage[] =
    "usage: khctl exec [-c CRED] [-n] [-t] [-e NAME=VALUE]... [--socket PATH]\n"
    "                  USER con<C>|RANKS COMMAND [ARG...]\n"
    "  runs COMMAND on every booted node given, inside the node; its output\n"
    "  comes back, standard input goes to every one of them (-n: none);\n"
    "  -t prints each node's 'RANK STATUS USER_MS SYS_MS REAL_MS' on stderr.\n"
    "  Exits with the status of the lowest rank that failed, else 0.\n";

static int
join_us(struct sbuf *b, char *const v[])
{
	sbuf_reset(b);
	for (int i = 0; v[i] != NULL; i++) {
		if (strchr(v[i], '\x1f') != NULL)
			return -1;
		if (i > 0)
			sbuf_add(b, "\x1f", 1);
		sbuf_adds(b, v[i]);
	}
	sbuf_add(b, "", 1);
	b->len--;
	return 0;
}

int
xclient_request(struct sbuf *req, const char *user, const char *cred, const char *targets,
		char *const argv[], char *const env[])
{
	struct sbuf a;
	int rc = -1;

	sbuf_init(&a);
	proto_begin(req, "exec");
	proto_arg(req, "user", user);
	if (cred)
		proto_arg(req, "cred", cred);
	proto_arg(req, "targets", targets);
	if (join_us(&a, argv) < 0)
		goto out;
	proto_arg(req, "argv", a.s);
	if (env != NULL && env[0] != NULL) {
		if (join_us(&a, env) < 0)
			goto out;
		proto_arg(req, "env", a.s);
	}
	proto_end(req);
	rc = 0;
out:
	sbuf_free(&a);
	return rc;
}

struct xc {
	int fd;
	struct sbuf in; /* bytes from khd not yet used */
	int times;
	int started; /* "ok" seen */
	int done;
	int failrank, failst; /* lowest rank with a non-zero status */
};

/* Use what khd sent.  Returns 1 when the stream is done, -1 on error
 * (reported), 0 for more. */
static int
consume(struct xc *c)
{
	char why[128];

	for (;;) {
		char *nl = memchr(c->in.s ? c->in.s : "", '\n', c->in.len);
		struct xframe f;
		if (nl == NULL)
			return c->in.len >= 8192
				   ? (fprintf(stderr, "khctl: bad reply from khd\n"), -1)
				   : 0;
		size_t hl = (size_t)(nl - c->in.s);
		if (!c->started) {
			*nl = '\0';
			if (strcmp(c->in.s, "ok") == 0) {
				c->started = 1;
				sbuf_consume(&c->in, hl + 1);
				continue;
			}
			if (strncmp(c->in.s, "err ", 4) == 0) {
				char *sp = strchr(c->in.s + 4, ' ');
				fprintf(stderr, "khctl: %s\n", sp ? sp + 1 : c->in.s + 4);
			} else {
				fprintf(stderr, "khctl: bad reply from khd\n");
			}
			return -1;
		}
		if (hl > 4 && strncmp(c->in.s, "err ", 4) == 0) {
			*nl = '\0';
			char *sp = strchr(c->in.s + 4, ' ');
			fprintf(stderr, "khctl: %s\n", sp ? sp + 1 : c->in.s + 4);
			return -1;
		}
		if (xframe_parse(c->in.s, hl, 1, &f, why, sizeof(why)) < 0) {
			fprintf(stderr, "khctl: from khd: %s\n", why);
			return -1;
		}
		if ((f.kind == 'o' || f.kind == 'e') && c->in.len < hl + 1 + f.len)
			return 0;
		switch (f.kind) {
		case 'o':
		case 'e':
			if (write_all(f.kind == 'o' ? 1 : 2, c->in.s + hl + 1, f.len) < 0 &&
			    errno == EPIPE)
				return -1;
			sbuf_consume(&c->in, hl + 1 + f.len);
			continue;
		case 'x':
			if (c->times)
				fprintf(stderr, "%d %d %llu %llu %llu\n", f.rank, f.status,
					(unsigned long long)f.user_ms, (unsigned long long)f.sys_ms,
					(unsigned long long)f.real_ms);
			if (f.status != 0 && (c->failrank < 0 || f.rank < c->failrank)) {
				c->failrank = f.rank;
				c->failst = f.status;
			}
			break;
		case 'd':
			return 1;
		}
		sbuf_consume(&c->in, hl + 1);
	}
}

int
xclient_main(int argc, char *const argv[])
{
	const char *cred = getenv("KH_CRED"), *sockopt = NULL, *ops[2];
	char *env[257], err[256];
	int nops = 0, nenv = 0, nostdin = 0, i, rc = 1, sigs = 0, sfd;
	struct xc c = {.fd = -1, .failrank = -1};
	struct sbuf req;
	sigset_t mask;

	for (i = 1; i < argc && nops < 2; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(a, "-n") == 0) {
			nostdin = 1;
		} else if (strcmp(a, "-t") == 0) {
			c.times = 1;
		} else if ((strcmp(a, "-c") == 0 || strcmp(a, "-e") == 0 ||
			    strcmp(a, "--socket") == 0) &&
			   i + 1 < argc) {
			if (a[1] == 'c')
				cred = argv[++i];
			else if (a[1] == 'e') {
				if (nenv == 256 || strchr(argv[i + 1], '=') == NULL ||
				    argv[i + 1][0] == '=') {
					fprintf(stderr, "khctl: exec: -e takes NAME=VALUE\n");
					return 2;
				}
				env[nenv++] = argv[++i];
			} else
				sockopt = argv[++i];
		} else if (strncmp(a, "--socket=", 9) == 0) {
			sockopt = a + 9;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "khctl: exec: unknown option '%.40s'\n", a);
			return 2;
		} else {
			ops[nops++] = a;
		}
	}
	env[nenv] = NULL;
	if (nops < 2 || i >= argc) {
		fprintf(stderr, "khctl: exec: missing arguments (USER con<C>|RANKS COMMAND ...)\n");
		return 2;
	}
	sbuf_init(&req);
	sbuf_init(&c.in);
	if (xclient_request(&req, ops[0], cred, ops[1], argv + i, env) < 0) {
		fprintf(stderr, "khctl: exec: an argument holds the byte 0x1f\n");
		return 2;
	}
	if (req.len > PROTO_MAX_LINE) {
		fprintf(stderr, "khctl: exec: command line too long\n");
		return 2;
	}
	if ((c.fd = client_connect(client_socket_path(sockopt), err, sizeof(err))) < 0) {
		fprintf(stderr, "khctl: %s\n", err);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (send_all(c.fd, req.s, req.len) < 0)
		goto lost;
	for (;;) {
		struct pollfd p[3] = {
		    {c.fd, POLLIN, 0}, {sfd, POLLIN, 0}, {nostdin ? -1 : 0, POLLIN, 0}};
		if (!c.started)
			p[2].fd = -1;
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				char k[16];
				if (++sigs > 1) {
					rc = 128 + (int)si.ssi_signo;
					goto out; /* leaving kills them */
				}
				snprintf(k, sizeof(k), "k %u\n", si.ssi_signo);
				if (c.started && send_all(c.fd, k, strlen(k)) < 0)
					goto lost;
				if (!c.started) {
					rc = 128 + (int)si.ssi_signo;
					goto out;
				}
			}
		}
		if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[65536], hdr[32];
			ssize_t n = read(0, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				nostdin = 1;
				if (send_all(c.fd, "c *\n", 4) < 0)
					goto lost;
			} else {
				snprintf(hdr, sizeof(hdr), "i * %zd\n", n);
				if (send_all(c.fd, hdr, strlen(hdr)) < 0 ||
				    send_all(c.fd, buf, (size_t)n) < 0)
					goto lost;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[65536];
			ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto lost;
			sbuf_add(&c.in, buf, (size_t)n);
			int r = consume(&c);
			if (r < 0)
				goto out;
			if (r == 1) {
				rc = c.failrank >= 0 ? c.failst : 0;
				goto out;
			}
			if (c.started && nostdin == 0 && 0)
				continue;
		}
	}
lost:
	fprintf(stderr, "khctl: lost khd before the processes ended\n");
	rc = 1;
out:
	close(c.fd);
	sbuf_free(&req);
	sbuf_free(&c.in);
	return rc;
}
