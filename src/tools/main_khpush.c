/* khpush: PUSH pipelines across the nodes of an allocation (docs/khfs.md
 * "khpush").  `a |< b >| c` runs a here, spreads its records (lines) over
 * b on every node, and gathers their output into c here; `|#|` between
 * two node stages sends each record to the node its first field hashes
 * to, so equal keys meet; `|<` between them deals records round-robin.
 * Each node stage is one exec stream to khd (docs/protocol.md); records
 * are never cut, and every queue is bounded so no side waits on another
 * in a circle. */
#include "common/proto.h"
#include "common/sbuf.h"
#include "common/util.h"
#include "exec/frame.h"
#include "tools/client.h"
#include "tools/xclient.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXSTAGES 8
#define QMAX	  (1u << 20) /* bytes queued for one destination before its source waits */

static const char usage[] =
    "usage: khpush [-c CRED USER] [--socket PATH] con<C>|RANKS 'A |< B [|#| C ...] >| D'\n"
    "  A and D run here (sh -c; empty: khpush's stdin and stdout), B, C ... on\n"
    "  every node given; |< deals lines round-robin, |#| by a hash of the first field.\n";

struct stage {
	int fd;		   /* exec stream */
	struct sbuf out;   /* queued to khd */
	struct sbuf in;	   /* from khd, not yet parsed */
	struct sbuf *part; /* per node: partial output line */
	int hash;	   /* how records reach this stage: 1 by key, 0 round-robin */
	int rr;
	unsigned char *begun; /* round-robin: per node, its share has begun */
	int any, last;	      /* a record was dealt; the node that had the last */
	int done, closed_in;
};

static int nranks, ranks[4096];
static int failed;

static unsigned
key_hash(const char *s, size_t n)
{
	size_t i = 0, e;
	unsigned h = 2166136261u;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	for (e = i; e < n && s[e] != ' ' && s[e] != '\t' && s[e] != '\n'; e++)
		h = (h ^ (unsigned char)s[e]) * 16777619u;
	return h;
}

/* Queue whole lines (buf ends with a newline) for stage st. */
static void
route(struct stage *st, const char *buf, size_t n)
{
	struct sbuf *per = calloc((size_t)nranks, sizeof(*per));
	char hdr[48];
	if (per == NULL)
		abort();
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(buf + i, '\n', n - i);
		size_t l = (size_t)(nl - (buf + i)) + 1;
		int k =
		    st->hash ? (int)(key_hash(buf + i, l) % (unsigned)nranks) : st->rr++ % nranks;
		/* A node's share never begins with an empty line or a blank
		 * (unless the stream does): such a record goes on the share
		 * before it.  Then a stage that squeezes blanks across lines
		 * (tr -s ' ' '\n') gives on each share what the single stream
		 * gives, as no share starts where the stream did not. */
		if (!st->hash) {
			if (st->any && !st->begun[k] &&
			    (buf[i] == '\n' || buf[i] == ' ' || buf[i] == '\t'))
				k = st->last;
			st->begun[k] = 1;
			st->any = 1;
			st->last = k;
		}
		sbuf_add(&per[k], buf + i, l);
		i += l;
	}
	for (int k = 0; k < nranks; k++) {
		for (size_t off = 0; off < per[k].len;) {
			size_t c = per[k].len - off > XF_MAXDATA ? XF_MAXDATA : per[k].len - off;
			snprintf(hdr, sizeof(hdr), "i %d %zu\n", ranks[k], c);
			sbuf_adds(&st->out, hdr);
			sbuf_add(&st->out, per[k].s + off, c);
			off += c;
		}
		sbuf_free(&per[k]);
	}
	free(per);
}

/* Lines from a source into dest: complete ones go, the rest waits in part. */
static void
feed(struct sbuf *part, const char *p, size_t n, struct stage *next, struct sbuf *sink)
{
	sbuf_add(part, p, n);
	const char *last = NULL;
	for (size_t i = part->len; i > 0; i--)
		if (part->s[i - 1] == '\n') {
			last = part->s + i;
			break;
		}
	if (last == NULL)
		return;
	size_t l = (size_t)(last - part->s);
	if (next)
		route(next, part->s, l);
	else
		sbuf_add(sink, part->s, l);
	sbuf_consume(part, l);
}

static void
flush_part(struct sbuf *part, struct stage *next, struct sbuf *sink)
{
	if (part->len == 0)
		return;
	sbuf_adds(part, "\n");
	feed(part, "", 0, next, sink);
}

static pid_t
local(const char *cmd, int *fd, int input)
{
	int p[2];
	pid_t pid;
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		dup2(p[input ? 0 : 1], input ? 0 : 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[input ? 0 : 1]);
	*fd = p[input ? 1 : 0];
	fcntl(*fd, F_SETFL, O_NONBLOCK);
	return pid;
}

/* Split the pipeline at |<, |#| and >| outside quotes: A |< B (|< or |#|
 * C)... [>| D].  Returns the count of node stages, or -1. */
static int
parse(char *s, char **src, char **stages, int *hash, char **sink)
{
	char *seg[MAXSTAGES + 3];
	int op[MAXSTAGES + 2], n = 0, q = 0;

	seg[0] = s;
	for (char *p = s; *p; p++) {
		if (q) {
			q = *p == q ? 0 : q;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			q = *p;
			continue;
		}
		int kind = strncmp(p, "|#|", 3) == 0  ? 3
			   : strncmp(p, "|<", 2) == 0 ? 2
			   : strncmp(p, ">|", 2) == 0 ? 1
						      : 0;
		if (kind == 0)
			continue;
		if (n == MAXSTAGES + 1)
			return -1;
		*p = '\0';
		op[n++] = kind;
		p += kind == 3 ? 2 : 1;
		seg[n] = p + 1;
	}
	if (q || n == 0 || op[0] != 2)
		return -1;
	*src = seg[0];
	*sink = NULL;
	int ns = 0;
	for (int i = 0; i < n; i++) {
		if (op[i] == 1) {
			if (i != n - 1)
				return -1;
			*sink = seg[i + 1];
			break;
		}
		hash[ns] = op[i] == 3;
		stages[ns++] = seg[i + 1];
	}
	for (int i = 0; i < ns; i++)
		if (stages[i][strspn(stages[i], " \t")] == '\0')
			return -1;
	return ns;
}

static int
blank(const char *s)
{
	return s == NULL || s[strspn(s, " \t")] == '\0';
}

int
main(int argc, char **argv)
{
	const char *cred = getenv("KH_CRED"), *user = getenv("KH_USER"), *sock = NULL, *tg = NULL;
	char *pipeline = NULL, *src, *sink, *stg[MAXSTAGES], err[256], why[128];
	int hash[MAXSTAGES] = {0}, ns;
	struct stage st[MAXSTAGES];
	struct sbuf srcpart, sinkq, req;
	int srcfd = 0, sinkfd = 1;
	pid_t srcpid = 0, sinkpid = 0;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 2 < argc) {
			cred = argv[++i];
			user = argv[++i];
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			sock = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (tg == NULL) {
			tg = argv[i];
		} else if (pipeline == NULL) {
			pipeline = argv[i];
		} else {
			fprintf(stderr, "khpush: unexpected argument '%.40s'\n", argv[i]);
			return 2;
		}
	}
	if (pipeline == NULL || cred == NULL || user == NULL) {
		fprintf(stderr, "khpush: %s\n%s",
			pipeline ? "a principal is needed (-c CRED USER)" : "missing arguments",
			usage);
		return 2;
	}
	if ((ns = parse(pipeline, &src, stg, hash, &sink)) < 1) {
		fprintf(stderr, "khpush: bad pipeline: want 'A |< B [|#| C ...] >| D'\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sbuf_init(&srcpart);
	sbuf_init(&sinkq);
	sbuf_init(&req);
	for (int k = 0; k < ns; k++) {
		memset(&st[k], 0, sizeof(st[k]));
		st[k].fd = -1;
		sbuf_init(&st[k].out);
		sbuf_init(&st[k].in);
	}
	/* The node stages: one exec stream each, the nodes from the first ok. */
	for (int k = 0; k < ns; k++) {
		char *av[] = {"sh", "-c", stg[k], NULL}, line[1024];
		size_t got = 0;
		st[k].hash = hash[k];
		sbuf_reset(&req);
		xclient_request(&req, user, cred, tg, av, NULL);
		if ((st[k].fd = client_connect(client_socket_path(sock), err, sizeof(err))) < 0) {
			fprintf(stderr, "khpush: %s\n", err);
			goto fail;
		}
		if (write_all(st[k].fd, req.s, req.len) < 0)
			goto fail;
		while (got < sizeof(line) - 1 && recv(st[k].fd, line + got, 1, 0) == 1 &&
		       line[got] != '\n')
			got++;
		line[got] = '\0';
		if (strcmp(line, "ok") != 0) {
			char *sp = strncmp(line, "err ", 4) == 0 ? strchr(line + 4, ' ') : NULL;
			fprintf(stderr, "khpush: %s\n", sp ? sp + 1 : "lost khd");
			goto fail;
		}
		fcntl(st[k].fd, F_SETFL, O_NONBLOCK);
	}
	/* The nodes: ask khd which ranks the targets are (the first stage's
	 * frames will name them; a "nodes"-free way: expand here). */
	{
		struct sbuf body;
		char code[32], msg[256];
		int fd = client_connect(client_socket_path(sock), err, sizeof(err));
		sbuf_init(&body);
		sbuf_reset(&req);
		if (strncmp(tg, "con", 3) == 0) {
			proto_begin(&req, "block");
			proto_arg(&req, "user", user);
			proto_arg(&req, "cred", cred);
			proto_arg(&req, "chan", tg + 3);
			proto_end(&req);
			if (fd < 0 || client_call(fd, &req, &body, code, sizeof(code), msg,
						  sizeof(msg)) != 0) {
				fprintf(stderr, "khpush: %s\n", fd < 0 ? err : msg);
				goto fail;
			}
			const char *p = strstr(body.s, "\nnodes:");
			for (p = p ? p + 7 : ""; *p == ' ' && nranks < 4096;) {
				char *e;
				ranks[nranks++] = (int)strtol(p + 1, &e, 10);
				p = e;
			}
		} else {
			char tl[1024];
			snprintf(tl, sizeof(tl), "%s", tg);
			for (char *save = NULL, *t = strtok_r(tl, ",", &save); t && nranks < 4096;
			     t = strtok_r(NULL, ",", &save)) {
				int a, b;
				if (sscanf(t, "%d-%d", &a, &b) != 2)
					b = a = atoi(t);
				for (int r = a; r <= b && nranks < 4096; r++)
					ranks[nranks++] = r;
			}
		}
		if (fd >= 0)
			close(fd);
		sbuf_free(&body);
	}
	for (int k = 0; k < ns; k++) {
		st[k].part = calloc((size_t)nranks, sizeof(struct sbuf));
		st[k].begun = calloc((size_t)nranks, 1);
		if (st[k].part == NULL || st[k].begun == NULL)
			abort();
	}
	if (!blank(src) && (srcpid = local(src, &srcfd, 0)) < 0)
		goto fail;
	if (!blank(sink) && (sinkpid = local(sink, &sinkfd, 1)) < 0)
		goto fail;
	if (srcfd == 0)
		fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);

	int srcopen = 1;
	while (!st[ns - 1].done || sinkq.len > 0) {
		struct pollfd p[MAXSTAGES + 2];
		int np = 0;
		p[np++] = (struct pollfd){srcopen && st[0].out.len < QMAX ? srcfd : -1, POLLIN, 0};
		p[np++] = (struct pollfd){sinkq.len ? sinkfd : -1, POLLOUT, 0};
		for (int k = 0; k < ns; k++) {
			int next_full = k + 1 < ns ? st[k + 1].out.len >= QMAX : sinkq.len >= QMAX;
			short ev = (st[k].out.len ? POLLOUT : 0) |
				   (!st[k].done && !next_full ? POLLIN : 0);
			p[np++] = (struct pollfd){ev ? st[k].fd : -1, ev, 0};
		}
		if (poll(p, (nfds_t)np, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents) {
			char buf[65536];
			ssize_t n = read(srcfd, buf, sizeof(buf));
			if (n > 0) {
				feed(&srcpart, buf, (size_t)n, &st[0], NULL);
			} else if (n == 0 || errno != EAGAIN) {
				flush_part(&srcpart, &st[0], NULL);
				sbuf_adds(&st[0].out, "c *\n");
				srcopen = 0;
			}
		}
		if (p[1].revents) {
			ssize_t n = write(sinkfd, sinkq.s, sinkq.len);
			if (n > 0)
				sbuf_consume(&sinkq, (size_t)n);
			else if (n < 0 && errno != EAGAIN)
				sbuf_reset(&sinkq);
		}
		for (int k = 0; k < ns; k++) {
			struct pollfd *q = &p[2 + k];
			if (q->revents & POLLOUT) {
				ssize_t n =
				    send(st[k].fd, st[k].out.s, st[k].out.len, MSG_NOSIGNAL);
				if (n > 0)
					sbuf_consume(&st[k].out, (size_t)n);
			}
			if (!(q->revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[65536];
			ssize_t n = recv(st[k].fd, buf, sizeof(buf), 0);
			if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
				fprintf(stderr, "khpush: lost khd\n");
				goto fail;
			}
			if (n > 0)
				sbuf_add(&st[k].in, buf, (size_t)n);
			struct stage *next = k + 1 < ns ? &st[k + 1] : NULL;
			for (;;) {
				char *nl = memchr(st[k].in.s ? st[k].in.s : "", '\n', st[k].in.len);
				struct xframe f;
				if (nl == NULL)
					break;
				size_t hl = (size_t)(nl - st[k].in.s);
				if (xframe_parse(st[k].in.s, hl, 1, &f, why, sizeof(why)) < 0) {
					fprintf(stderr, "khpush: from khd: %.*s\n", (int)hl,
						st[k].in.s);
					goto fail;
				}
				if ((f.kind == 'o' || f.kind == 'e') &&
				    st[k].in.len < hl + 1 + f.len)
					break;
				int idx = 0;
				while (idx < nranks && ranks[idx] != f.rank)
					idx++;
				if (f.kind != 'd' && idx == nranks) {
					fprintf(stderr, "khpush: node %d is not in %s\n", f.rank,
						tg);
					goto fail;
				}
				if (f.kind == 'o')
					feed(&st[k].part[idx], st[k].in.s + hl + 1, f.len, next,
					     &sinkq);
				else if (f.kind == 'e')
					(void)!write(2, st[k].in.s + hl + 1, f.len);
				else if (f.kind == 'x') {
					flush_part(&st[k].part[idx], next, &sinkq);
					failed |= f.status != 0;
				} else if (f.kind == 'd') {
					st[k].done = 1;
					if (next)
						sbuf_adds(&next->out, "c *\n");
				}
				sbuf_consume(&st[k].in,
					     hl + 1 + (f.kind == 'o' || f.kind == 'e' ? f.len : 0));
			}
		}
	}
	if (sinkpid > 0) {
		int s = 0;
		close(sinkfd);
		waitpid(sinkpid, &s, 0);
		failed |= !WIFEXITED(s) || WEXITSTATUS(s) != 0;
	}
	if (srcpid > 0) {
		int s = 0;
		kill(srcpid, SIGPIPE);
		waitpid(srcpid, &s, 0);
	}
	rc = failed ? 1 : 0;
fail:
	for (int k = 0; k < ns; k++) {
		if (st[k].fd >= 0)
			close(st[k].fd);
		sbuf_free(&st[k].out);
		sbuf_free(&st[k].in);
		for (int i = 0; st[k].part && i < nranks; i++)
			sbuf_free(&st[k].part[i]);
		free(st[k].part);
		free(st[k].begun);
	}
	sbuf_free(&srcpart);
	sbuf_free(&sinkq);
	sbuf_free(&req);
	return rc;
}
