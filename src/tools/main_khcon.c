/* khcon: attach to a control channel through khd's socket.
 *   khcon [--socket PATH] (-c CRED USER | -k CHANCRED) [--prefix] [--ro]
 *         [-n RANKS] [--until TEXT [--count N]] [--timeout SECS] [--idle MS] con<C>
 * Standard input goes to every node of the channel (or to RANKS); what the
 * nodes print comes to standard output.  At the end of standard input,
 * khcon waits for TEXT in the output (--until; N times with --count, e.g.
 * once from every node), or until the output has been quiet for --idle
 * milliseconds (default 500), then exits. */
#include "common/proto.h"
#include "common/util.h"
#include "tools/client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char usage[] =
    "usage: khcon [--socket PATH] (-c CRED USER | -k CHANCRED) [--prefix] [--ro]\n"
    "             [-n RANKS] [--until TEXT [--count N]] [--timeout SECS] [--idle MS] con<C>\n";

static int
bad(const char *msg, const char *arg)
{
	fprintf(stderr, "khcon: %s%s%s (see khcon --help)\n", msg, arg ? " " : "", arg ? arg : "");
	return 2;
}

int
main(int argc, char **argv)
{
	const char *sock = NULL, *cred = getenv("KH_CRED"), *ccred = NULL, *user = NULL;
	const char *chan = NULL, *ranks = NULL, *until = NULL;
	int prefix = 0, ro = 0;
	uint64_t timeout_s = 0, idle_ms = 500, count = 1, v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(a, "--prefix") == 0) {
			prefix = 1;
		} else if (strcmp(a, "--ro") == 0) {
			ro = 1;
		} else if (strcmp(a, "--socket") == 0 || strcmp(a, "-c") == 0 ||
			   strcmp(a, "-k") == 0 || strcmp(a, "-n") == 0 ||
			   strcmp(a, "--until") == 0 || strcmp(a, "--timeout") == 0 ||
			   strcmp(a, "--idle") == 0 || strcmp(a, "--count") == 0) {
			if (next == NULL)
				return bad("option needs a value:", a);
			i++;
			if (a[1] == 'c')
				cred = next;
			else if (a[1] == 'k')
				ccred = next;
			else if (a[1] == 'n')
				ranks = next;
			else if (strcmp(a, "--socket") == 0)
				sock = next;
			else if (strcmp(a, "--until") == 0)
				until = next;
			else if (strcmp(a, "--timeout") == 0) {
				if (parse_uint(next, 1, 86400, &timeout_s) < 0)
					return bad("--timeout takes 1..86400 seconds, not", next);
			} else if (strcmp(a, "--count") == 0) {
				if (parse_uint(next, 1, 1000000, &count) < 0)
					return bad("--count takes a number, not", next);
			} else if (parse_uint(next, 1, 3600000, &idle_ms) < 0)
				return bad("--idle takes milliseconds, not", next);
		} else if (a[0] == '-') {
			return bad("unknown option", a);
		} else if (ccred == NULL && user == NULL && strncmp(a, "con", 3) != 0) {
			user = a;
		} else if (chan == NULL) {
			chan = a;
		} else {
			return bad("unexpected argument", a);
		}
	}
	if (chan == NULL || strncmp(chan, "con", 3) != 0 ||
	    parse_uint(chan + 3, 0, INT32_MAX, &v) < 0)
		return bad("expected a channel con<C>", chan);
	if (ccred == NULL && (user == NULL || cred == NULL))
		return bad("give -c CRED USER, or -k CHANNEL-CREDENTIAL", NULL);

	struct sbuf req;
	char err[512];
	sbuf_init(&req);
	proto_begin(&req, "attach");
	if (ccred) {
		proto_arg(&req, "ccred", ccred);
	} else {
		proto_arg(&req, "user", user);
		proto_arg(&req, "cred", cred);
	}
	proto_arg(&req, "chan", chan + 3);
	if (prefix)
		proto_arg(&req, "mode", "prefix");
	if (ro)
		proto_arg(&req, "ro", "1");
	if (ranks)
		proto_arg(&req, "ranks", ranks);
	proto_end(&req);
	int fd = client_connect(client_socket_path(sock), err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "khcon: %s\n", err);
		return 1;
	}
	if (write_all(fd, req.s, req.len) < 0) {
		fprintf(stderr, "khcon: lost khd\n");
		return 1;
	}
	sbuf_free(&req);
	/* The reply line, byte by byte: what follows it is the stream. */
	char line[600];
	size_t ll = 0;
	for (;;) {
		ssize_t n = read(fd, line + ll, 1);
		if (n <= 0) {
			fprintf(stderr, "khcon: khd closed the connection\n");
			return 1;
		}
		if (line[ll] == '\n' || ll + 2 >= sizeof(line))
			break;
		ll++;
	}
	line[ll] = '\0';
	if (strcmp(line, "ok") != 0) {
		const char *msg = strncmp(line, "err ", 4) == 0 ? strchr(line + 4, ' ') : NULL;
		fprintf(stderr, "khcon: %s\n", msg ? msg + 1 : line);
		return 1;
	}

	int in_open = !ro;
	uint64_t start = now_ns(), last_out = now_ns();
	size_t ul = until ? strlen(until) : 0;
	if (until && ul == 0)
		return bad("--until needs a text", NULL);
	char *tail = calloc(1, ul + 65536 + 1);
	size_t tl = 0;
	int ret = 0;
	uint64_t seen = 0;
	if (tail == NULL)
		return 1;
	for (;;) {
		struct pollfd pf[2] = {{fd, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
		int rc = poll(pf, 2, 50);
		if (rc < 0 && errno != EINTR)
			break;
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[65536];
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0) {
				fprintf(stderr, "khcon: khd closed the channel\n");
				ret = 1;
				goto out;
			}
			if (write_all(1, buf, (size_t)n) < 0) {
				ret = 1;
				goto out;
			}
			last_out = now_ns();
			if (until && seen < count) {
				/* keep the last ul-1 bytes to match across reads */
				memcpy(tail + tl, buf, (size_t)n);
				tl += (size_t)n;
				tail[tl] = '\0';
				/* the tail holds under ul bytes of old output, so every
				 * match found here ends in the new bytes: none counts twice */
				for (char *at = tail;
				     (at = memmem(at, tl - (size_t)(at - tail), until, ul)) != NULL;
				     at += ul)
					seen++;
				if (tl >= ul) {
					memmove(tail, tail + tl - (ul - 1), ul - 1);
					tl = ul - 1;
				}
			}
		}
		if (in_open && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[65536];
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0)
				in_open = 0;
			else if (write_all(fd, buf, (size_t)n) < 0) {
				fprintf(stderr, "khcon: lost khd\n");
				ret = 1;
				goto out;
			}
		}
		if (!in_open) {
			uint64_t now = now_ns();
			if (until ? seen >= count : now - last_out >= idle_ms * 1000000ULL)
				break;
		}
		if (timeout_s && now_ns() - start >= timeout_s * 1000000000ULL) {
			if (until)
				fprintf(stderr, "khcon: timed out waiting for '%s'\n", until);
			else
				fprintf(stderr, "khcon: timed out\n");
			ret = 1;
			goto out;
		}
	}
out:
	free(tail);
	close(fd);
	return ret;
}
