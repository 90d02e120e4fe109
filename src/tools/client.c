/* client: the tools' side of docs/protocol.md. */
#include "tools/client.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

const char *
client_socket_path(const char *opt)
{
	const char *env = getenv("KH_SOCKET");
	if (opt && *opt)
		return opt;
	if (env && *env)
		return env;
	return KH_DEFAULT_SOCKET;
}

/* ssh://[USER@]HOST[:PORT]: the facility's service interface over
 * OpenSSH (docs/ebb.md).  The stock ssh client carries the protocol on
 * its standard input and output; our end is a socket pair.  The key is
 * ssh's default or $KH_SSH_KEY; the host key is trusted on first use. */
static int
connect_ssh(const char *url, char *err, size_t errlen)
{
	char dest[300], port[8] = "22";
	const char *hp = url + 6;
	const char *colon = strrchr(hp, ':');
	size_t hl = colon ? (size_t)(colon - hp) : strlen(hp);
	if (hl == 0 || hl >= sizeof(dest) - 4 ||
	    (colon && (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(port) ||
		       strspn(colon + 1, "0123456789") != strlen(colon + 1)))) {
		snprintf(err, errlen, "bad service address %s (want ssh://[user@]host[:port])",
			 url);
		return -1;
	}
	if (memchr(hp, '@', hl) == NULL)
		snprintf(dest, sizeof(dest), "kh@%.*s", (int)hl, hp);
	else
		snprintf(dest, sizeof(dest), "%.*s", (int)hl, hp);
	if (colon)
		snprintf(port, sizeof(port), "%s", colon + 1);
	if (dest[0] == '-' || strchr(dest, ' ') != NULL) {
		snprintf(err, errlen, "bad service address %s", url);
		return -1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		const char *argv[32];
		int n = 0;
		const char *key = getenv("KH_SSH_KEY");
		const char *mux = getenv("KH_SSH_MUX");
		const char *tmp = getenv("TMPDIR");
		char cpath[PATH_MAX];
		argv[n++] = "ssh";
		argv[n++] = "-T";
		argv[n++] = "-o";
		argv[n++] = "BatchMode=yes";
		/* One connection for a burst of tools (a NodeAllocator runs
		 * khget, khdo and khctl one after the other): the first
		 * session pays the key exchange and stays as the master for
		 * KH_SSH_MUX seconds (default 30; 0: no sharing), the next
		 * ones open a channel in it in a few ms.  sshd still runs the
		 * forced command, and so logs, each session. */
		if (mux == NULL || strcmp(mux, "0") != 0) {
			static char persist[48];
			long secs = mux && *mux ? strtol(mux, NULL, 10) : 30;
			/* A connection belongs to the key it authenticated
			 * with: another key never rides on it. */
			uint64_t h = 1469598103934665603ULL;
			for (const char *q = key ? key : ""; *q; q++)
				h = (h ^ (unsigned char)*q) * 1099511628211ULL;
			snprintf(cpath, sizeof(cpath), "ControlPath=%s/kh-ssh-%016llx-%%C",
				 tmp && *tmp == '/' ? tmp : "/tmp", (unsigned long long)h);
			snprintf(persist, sizeof(persist), "ControlPersist=%ld",
				 secs > 0 && secs < 86400 ? secs : 30);
			argv[n++] = "-o";
			argv[n++] = "ControlMaster=auto";
			argv[n++] = "-o";
			argv[n++] = cpath;
			argv[n++] = "-o";
			argv[n++] = persist;
		}
		argv[n++] = "-o";
		argv[n++] = "StrictHostKeyChecking=accept-new";
		argv[n++] = "-o";
		argv[n++] = "LogLevel=ERROR";
		if (key && *key) {
			argv[n++] = "-i";
			argv[n++] = key;
		}
		argv[n++] = "-p";
		argv[n++] = port;
		argv[n++] = dest;
		argv[n] = NULL;
		dup2(sv[1], 0);
		dup2(sv[1], 1);
		execvp("ssh", (char *const *)argv);
		fprintf(stderr, "ssh: %s\n", strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	return sv[0];
}

int
client_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strncmp(path, "ssh://", 6) == 0)
		return connect_ssh(path, err, errlen);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		snprintf(err, errlen, "cannot reach khd at %s: %s (start khd, or set KH_SOCKET)",
			 path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
client_call(int fd, const struct sbuf *req, struct sbuf *body, char *code, size_t codelen,
	    char *msg, size_t msglen)
{
	struct sbuf in;
	size_t off = 0;

	for (size_t done = 0; done < req->len;) {
		ssize_t n = send(fd, req->s + done, req->len - done, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(msg, msglen, "lost khd: %s", strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	sbuf_init(&in);
	for (;;) {
		char *nl;
		while ((nl = memchr(in.s ? in.s + off : "", '\n', in.len - off)) != NULL) {
			char *line = in.s + off;
			*nl = '\0';
			off = (size_t)(nl - in.s) + 1;
			if (strncmp(line, "- ", 2) == 0) {
				sbuf_adds(body, line + 2);
				sbuf_adds(body, "\n");
			} else if (strcmp(line, "ok") == 0) {
				sbuf_free(&in);
				return 0;
			} else if (strncmp(line, "err ", 4) == 0) {
				char *sp = strchr(line + 4, ' ');
				if (sp)
					*sp = '\0';
				snprintf(code, codelen, "%s", line + 4);
				snprintf(msg, msglen, "%s", sp ? sp + 1 : "error");
				sbuf_free(&in);
				return 1;
			} else {
				snprintf(msg, msglen, "unexpected reply from khd");
				sbuf_free(&in);
				return -1;
			}
		}
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(msg, msglen, "khd closed the connection");
			sbuf_free(&in);
			return -1;
		}
		sbuf_add(&in, buf, (size_t)n);
	}
}

int
client_run(const char *prog, const char *sockopt, const struct sbuf *req)
{
	char err[512], code[32] = "";
	struct sbuf body;
	int fd = client_connect(client_socket_path(sockopt), err, sizeof(err));

	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	sbuf_init(&body);
	int rc = client_call(fd, req, &body, code, sizeof(code), err, sizeof(err));
	close(fd);
	if (body.len)
		fwrite(body.s, 1, body.len, stdout);
	sbuf_free(&body);
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
