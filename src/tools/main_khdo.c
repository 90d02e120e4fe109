/* khdo: drive an allocation through its control block, as the original's
 * khdo did (`khget ... | khdo FUNCTION [ARGS]`).  The channel is reached
 * through khd's socket when that khd serves the block's host, else with
 * `ssh con<C>@HOST`; a load waits until every node has acknowledged it.
 * docs/khdo.md is the manual. */
#include "common/proto.h"
#include "common/util.h"
#include "tools/client.h"
#include "tools/khdo.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "usage: khdo [OPTIONS] FUNCTION [ARGS]    (the control block on standard input)\n"
    "functions:\n"
    "  write|writecon TEXT...  send a line to the nodes, print what they answer\n"
    "  readcon                 print the channel's output until interrupted\n"
    "  writefile FILE          send a file's bytes, print what the nodes answer\n"
    "  loadkernel FILE         mrw $loadaddr SIZE and the bytes; every node acknowledges\n"
    "  loadramdisk FILE        mrw $ramfsaddr SIZE and the bytes; every node acknowledges\n"
    "  loadfile ADDR FILE      the same at ADDR (hex, or $variable)\n"
    "  concmd CMD              run CMD, %con% replaced by the channel (con<C>@HOST)\n"
    "  peripcmd CMD            run CMD once per node, %ip% replaced by its address\n"
    "  pernodecmd CMD          run CMD once per node, %node% replaced by its rank\n"
    "  pernetcmd CMD           run CMD once per domain, %net% its name, %if% its interface\n"
    "  cmd CMD                 run CMD CHANNEL 'RANK ...' 'NET ...'\n"
    "  null                    only check the control block\n"
    "options:\n"
    "  -c CRED USER, -k CHANCRED  credentials for khd's socket (else $KH_CRED with\n"
    "                          $KH_USER or $USER, or $KH_CHANCRED)\n"
    "  --socket PATH, --ssh    reach the channel through this socket, or through ssh\n"
    "                          (default: $KH_SOCKET if that khd serves the block's host)\n"
    "  --prefix                output lines prefixed with [RANK]\n"
    "  --until TEXT            write, writefile: wait until every node printed TEXT\n"
    "  --idle MS               write, writefile: stop after MS quiet ms (default 500)\n"
    "  -t SECS                 wait at most SECS for the nodes (default 10)\n"
    "  -q                      write, writefile: print nothing, do not wait\n"
    "  -v                      loads: print the nodes' answers\n";

struct opts {
	const char *sock, *cred, *user, *ccred, *until;
	int ssh, prefix, quiet, verbose;
	uint64_t timeout_ms, idle_ms;
};

struct chan {
	int rfd, wfd;
	pid_t pid; /* the ssh client, or 0 for khd's socket */
	int errfd; /* what ssh says on stderr, kept for one clear line */
	char how[360];
};

static int
fail2(const char *fmt, const char *a)
{
	fprintf(stderr, "khdo: ");
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	return 2;
}

/* ------------------------------------------------------------------ */
/* Reaching the channel */

static int
has_cred(const struct opts *o)
{
	return o->ccred != NULL || (o->cred != NULL && o->user != NULL);
}

/* The host khd at path serves, or -1 when it cannot be asked. */
static int
socket_host(const char *path, char *host, size_t len)
{
	char err[512], code[32], msg[256];
	struct sbuf req, body;
	int fd = client_connect(path, err, sizeof(err)), rc = -1;

	if (fd < 0)
		return -1;
	sbuf_init(&req);
	sbuf_init(&body);
	proto_begin(&req, "info");
	proto_end(&req);
	if (client_call(fd, &req, &body, code, sizeof(code), msg, sizeof(msg)) == 0 && body.s) {
		/* "khd VERSION facility ID host HOST" */
		const char *h = strstr(body.s, " host ");
		if (h) {
			size_t n = strcspn(h + 6, " \n");
			snprintf(host, len, "%.*s", (int)n, h + 6);
			rc = 0;
		}
	}
	close(fd);
	sbuf_free(&req);
	sbuf_free(&body);
	return rc;
}

/* Socket (1) or ssh (0)? */
static int
via_socket(const struct opts *o, const struct khdo_block *b)
{
	char host[256];

	if (o->ssh)
		return 0;
	if (o->sock)
		return 1;
	if (!has_cred(o))
		return 0;
	if (socket_host(client_socket_path(NULL), host, sizeof(host)) < 0)
		return 0;
	return strcmp(host, b->host) == 0;
}

static int
open_socket(const struct opts *o, const struct khdo_block *b, int prefix, int ro, const char *ranks,
	    struct chan *c, char *err, size_t errlen)
{
	const char *path = client_socket_path(o->sock);
	struct sbuf req;
	char line[600], num[16];
	size_t ll = 0;

	if (!has_cred(o))
		return seterr(err, errlen,
			      "give -c CRED USER or -k CHANNEL-CREDENTIAL (or set KH_CRED)");
	sbuf_init(&req);
	proto_begin(&req, "attach");
	if (o->ccred) {
		proto_arg(&req, "ccred", o->ccred);
	} else {
		proto_arg(&req, "user", o->user);
		proto_arg(&req, "cred", o->cred);
	}
	snprintf(num, sizeof(num), "%d", b->chan);
	proto_arg(&req, "chan", num);
	if (prefix)
		proto_arg(&req, "mode", "prefix");
	if (ro)
		proto_arg(&req, "ro", "1");
	if (ranks)
		proto_arg(&req, "ranks", ranks);
	proto_end(&req);
	int fd = client_connect(path, err, errlen);
	if (fd < 0) {
		sbuf_free(&req);
		return -1;
	}
	int w = write_all(fd, req.s, req.len);
	sbuf_free(&req);
	if (w < 0) {
		close(fd);
		return seterr(err, errlen, "lost khd");
	}
	/* The reply, byte by byte: what follows it is the channel. */
	for (;;) {
		ssize_t n = read(fd, line + ll, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return seterr(err, errlen, "khd closed the connection");
		}
		if (line[ll] == '\n' || ll + 2 >= sizeof(line))
			break;
		ll++;
	}
	line[ll] = '\0';
	if (strcmp(line, "ok") != 0) {
		const char *msg = strncmp(line, "err ", 4) == 0 ? strchr(line + 4, ' ') : NULL;
		close(fd);
		return seterr(err, errlen, "%s", msg ? msg + 1 : line);
	}
	c->rfd = c->wfd = fd;
	c->pid = 0;
	c->errfd = -1;
	snprintf(c->how, sizeof(c->how), "khd (%s)", path);
	return 0;
}

/* argv of the ssh client: $KH_SSH (words) or "ssh", then our options. */
static int
ssh_argv(const struct khdo_block *b, int prefix, int ro, const char *ranks, char *words, char *port,
	 char **argv, int max)
{
	int n = 0;

	for (char *t = strtok(words, " \t"); t && n < max - 12; t = strtok(NULL, " \t"))
		argv[n++] = t;
	if (n == 0)
		argv[n++] = "ssh";
	argv[n++] = "-T";
	if (b->ssh_port) {
		snprintf(port, 8, "%d", b->ssh_port);
		argv[n++] = "-p";
		argv[n++] = port;
	}
	argv[n++] = (char *)b->con;
	/* ssh reads options after the host too: "--" leaves ours to the far side */
	if (prefix || ro || ranks)
		argv[n++] = "--";
	if (prefix)
		argv[n++] = "--prefix";
	if (ro)
		argv[n++] = "--ro";
	if (ranks) {
		argv[n++] = "-n";
		argv[n++] = (char *)ranks;
	}
	argv[n] = NULL;
	return n;
}

static int
open_ssh(const struct khdo_block *b, int prefix, int ro, const char *ranks, struct chan *c,
	 char *err, size_t errlen)
{
	const char *env = getenv("KH_SSH");
	char words[1024], port[8], *argv[64];
	int in[2], out[2];

	snprintf(words, sizeof(words), "%s", env && *env ? env : "ssh");
	ssh_argv(b, prefix, ro, ranks, words, port, argv, 64);
	int efd = memfd_create("ssh-stderr", MFD_CLOEXEC);
	if (efd < 0)
		return seterr(err, errlen, "memfd: %s", strerror(errno));
	if (pipe2(in, O_CLOEXEC) < 0) {
		close(efd);
		return seterr(err, errlen, "pipe: %s", strerror(errno));
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		close(efd);
		return seterr(err, errlen, "pipe: %s", strerror(errno));
	}
	fflush(NULL);
	pid_t p = fork();
	if (p < 0) {
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		close(efd);
		return seterr(err, errlen, "fork: %s", strerror(errno));
	}
	if (p == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(efd, 2);
		execvp(argv[0], argv);
		fprintf(stderr, "khdo: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->wfd = in[1];
	c->rfd = out[0];
	c->pid = p;
	c->errfd = efd;
	snprintf(c->how, sizeof(c->how), "ssh %s", b->con);
	return 0;
}

static int
chan_open(const struct opts *o, const struct khdo_block *b, int prefix, int ro, const char *ranks,
	  struct chan *c, char *err, size_t errlen)
{
	if (via_socket(o, b))
		return open_socket(o, b, prefix, ro, ranks, c, err, errlen);
	return open_ssh(b, prefix, ro, ranks, c, err, errlen);
}

/* The last line ssh wrote to stderr (its reason), or "". */
static void
ssh_said(const struct chan *c, char *line, size_t len)
{
	char buf[4096];
	off_t size = lseek(c->errfd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(c->errfd, buf, sizeof(buf) - 1, from);

	line[0] = '\0';
	if (n <= 0)
		return;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	char *l = strrchr(buf, '\n');
	snprintf(line, len, "%s", l ? l + 1 : buf);
	l = strchr(line, '\r');
	if (l)
		*l = '\0';
}

/* ssh ended by itself with status: 0, or -1 with its reason in err. */
static int
ssh_ended(struct chan *c, int status, char *err, size_t errlen)
{
	char said[512];
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

	ssh_said(c, said, sizeof(said));
	if (code == 0) {
		/* warnings of a session that worked: pass them on */
		char buf[4096];
		ssize_t n;
		for (off_t off = 0; (n = pread(c->errfd, buf, sizeof(buf), off)) > 0; off += n)
			(void)!write(2, buf, (size_t)n);
		return 0;
	}
	if (said[0])
		return seterr(err, errlen, "%s failed: %s", c->how, said);
	return seterr(err, errlen, "%s failed (ssh exit status %d)", c->how, code);
}

/* The end of what we send.  graceful: ssh is given time to deliver it
 * (the far side ends the session once its input ended and the nodes fell
 * quiet); else khdo has all the answers it waited for, so the bytes
 * arrived, and ssh is stopped at once (what it says then is dropped).
 * Returns 0, or -1 when ssh failed (err says why). */
static int
chan_close(struct chan *c, int graceful, char *err, size_t errlen)
{
	int status = 0, rc = 0;

	if (c->pid == 0) {
		close(c->rfd);
		if (c->errfd >= 0)
			close(c->errfd);
		return 0;
	}
	close(c->wfd);
	uint64_t end = now_ns() + (graceful ? 3000000000ULL : 0);
	for (;;) {
		struct pollfd pf = {c->rfd, POLLIN, 0};
		uint64_t now = now_ns();
		if (now >= end)
			break;
		if (poll(&pf, 1, (int)((end - now) / 1000000) + 1) <= 0)
			continue;
		char buf[4096];
		ssize_t n = read(c->rfd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
	}
	close(c->rfd);
	if (waitpid(c->pid, &status, WNOHANG) == 0) {
		kill(c->pid, SIGTERM);
		waitpid(c->pid, &status, 0);
	} else {
		rc = ssh_ended(c, status, err, errlen);
	}
	close(c->errfd);
	return rc;
}

/* Why the channel ended under us. */
static void
chan_lost(struct chan *c, char *err, size_t errlen)
{
	int status;
	if (c->pid && waitpid(c->pid, &status, 0) == c->pid) {
		c->pid = 0;
		close(c->wfd);
		if (ssh_ended(c, status, err, errlen) == 0)
			seterr(err, errlen, "%s ended", c->how);
		return;
	}
	seterr(err, errlen, "%s closed the channel", c->how);
}

/* ------------------------------------------------------------------ */
/* Sending and receiving at once */

struct io {
	struct chan *c;
	const struct opts *o;
	/* to send: head, then the file */
	const char *head;
	size_t headlen, headoff;
	int fd;
	int stream;	/* the file's size is unknown: read it to its end */
	uint64_t fleft; /* file bytes still to read */
	char *fbuf;
	size_t fblen, fboff;
	uint64_t total, sent; /* file bytes, for the progress bar */
	const char *fname;
	/* received */
	struct sbuf part;
	void (*line)(struct io *, const char *, size_t);
	void (*raw)(struct io *, const char *, size_t);
	struct khdo_track *t;
	uint64_t mark;	  /* last progress in sending, or its end */
	uint64_t last_in; /* last byte received (or the end of sending) */
	int load;	  /* a load: answers are the tracker's (printed with -v) */
	int bar;	  /* draw a progress bar on stderr */
	uint64_t bar_at;
	char err[512];
};

static int
sending(const struct io *io)
{
	return io->headoff < io->headlen || io->fboff < io->fblen || io->fleft > 0;
}

static const char *
base(const char *path)
{
	const char *s = strrchr(path, '/');
	return s && s[1] ? s + 1 : path;
}

static void
bar_draw(struct io *io, int force)
{
	uint64_t now = now_ns();
	char b[41];

	if (!io->bar || io->t == NULL || io->t->phase != KHDO_LOAD ||
	    (!force && now - io->bar_at < 100000000ULL))
		return;
	io->bar_at = now;
	if (sending(io) && io->total > 0) {
		int w = (int)(io->sent * 40 / io->total);
		memset(b, '#', (size_t)w);
		memset(b + w, '.', (size_t)(40 - w));
		b[40] = '\0';
		fprintf(stderr, "\r\033[Kkhdo: %s [%s] %3d%% %.1f/%.1f MiB", base(io->fname), b,
			(int)(io->sent * 100 / io->total), (double)io->sent / 1048576.0,
			(double)io->total / 1048576.0);
	} else if (io->t) {
		fprintf(stderr, "\r\033[Kkhdo: %s: %d of %d nodes acknowledged", base(io->fname),
			io->t->n - io->t->waiting - io->t->failed, io->t->n);
	}
}

static void
bar_clear(struct io *io)
{
	if (io->bar)
		fputs("\r\033[K", stderr);
}

static void
io_input(struct io *io, const char *p, size_t n)
{
	io->last_in = now_ns();
	if (io->raw) {
		io->raw(io, p, n);
		return;
	}
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		sbuf_add(&io->part, p, k);
		if (nl) {
			io->line(io, io->part.s ? io->part.s : "", io->part.len);
			sbuf_reset(&io->part);
			k++;
		}
		p += k;
		n -= k;
	}
}

/* Send one piece; -1 when the channel is gone, -2 when the file failed. */
static int
io_output(struct io *io)
{
	const char *p;
	size_t n;

	if (io->headoff < io->headlen) {
		p = io->head + io->headoff;
		n = io->headlen - io->headoff;
	} else {
		if (io->fboff == io->fblen) {
			size_t want = 1 << 20;
			if (!io->stream && io->fleft < want)
				want = (size_t)io->fleft;
			ssize_t r = read(io->fd, io->fbuf, want);
			if (r < 0 && errno == EINTR)
				return 0;
			if (r < 0 || (r == 0 && !io->stream)) {
				seterr(io->err, sizeof(io->err), "%s: %s", io->fname,
				       r < 0 ? strerror(errno) : "shorter than when khdo began");
				return -2;
			}
			if (r == 0) {
				io->fleft = 0;
				return 0;
			}
			io->fblen = (size_t)r;
			io->fboff = 0;
			if (!io->stream)
				io->fleft -= (uint64_t)r;
		}
		p = io->fbuf + io->fboff;
		n = io->fblen - io->fboff;
	}
	ssize_t w = write(io->c->wfd, p, n);
	if (w < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (io->headoff < io->headlen)
		io->headoff += (size_t)w;
	else {
		io->fboff += (size_t)w;
		io->sent += (uint64_t)w;
	}
	io->mark = io->last_in = now_ns();
	return 0;
}

/* Send what is queued while reading, until done(io) holds once all is
 * sent.  Returns 0; 1 when the nodes took longer than the timeout (since
 * the last progress in sending); -1 when the channel or the file failed
 * (io->err says why). */
static int
io_run(struct io *io, int (*done)(struct io *))
{
	struct chan *c = io->c;
	uint64_t timeout = io->o->timeout_ms * 1000000ULL;

	io->mark = io->last_in = now_ns();
	for (;;) {
		int snd = sending(io);
		if (!snd && done(io))
			return 0;
		uint64_t now = now_ns();
		if (now - io->mark >= timeout)
			return 1;
		struct pollfd pf[2] = {{c->rfd, POLLIN, 0}, {-1, POLLOUT, 0}};
		if (snd) {
			if (c->wfd == c->rfd)
				pf[0].events |= POLLOUT;
			else
				pf[1].fd = c->wfd;
		}
		int rc = poll(pf, 2, 20);
		if (rc < 0 && errno != EINTR) {
			seterr(io->err, sizeof(io->err), "poll: %s", strerror(errno));
			return -1;
		}
		if (rc > 0 && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[65536];
			ssize_t n = read(c->rfd, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				chan_lost(c, io->err, sizeof(io->err));
				return -1;
			}
			if (n > 0)
				io_input(io, buf, (size_t)n);
		}
		if (rc > 0 && snd && ((pf[0].revents | pf[1].revents) & (POLLOUT | POLLERR))) {
			int s = io_output(io);
			if (s == -1) {
				chan_lost(c, io->err, sizeof(io->err));
				return -1;
			}
			if (s == -2)
				return -1;
		}
		bar_draw(io, 0);
	}
}

static void
io_init(struct io *io, struct chan *c, const struct opts *o)
{
	memset(io, 0, sizeof(*io));
	io->c = c;
	io->o = o;
	io->fd = -1;
	sbuf_init(&io->part);
	fcntl(c->rfd, F_SETFL, fcntl(c->rfd, F_GETFL) | O_NONBLOCK);
	fcntl(c->wfd, F_SETFL, fcntl(c->wfd, F_GETFL) | O_NONBLOCK);
}

static void
io_free(struct io *io)
{
	sbuf_free(&io->part);
	free(io->fbuf);
}

static int
io_file(struct io *io, int fd, const char *name, int stream, uint64_t size)
{
	io->fbuf = malloc(1 << 20);
	if (io->fbuf == NULL)
		return -1;
	io->fd = fd;
	io->fname = name;
	io->stream = stream;
	io->fleft = stream ? 1 : size;
	io->total = size;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Functions that talk to the nodes */

static int
done_all(struct io *io)
{
	return io->t->waiting == 0;
}

static int
done_sent(struct io *io)
{
	(void)io;
	return 1;
}

static int
done_idle(struct io *io)
{
	return now_ns() - io->last_in >= io->o->idle_ms * 1000000ULL;
}

static void
out_raw(struct io *io, const char *p, size_t n)
{
	if (!io->o->quiet)
		(void)!write_all(1, p, n);
}

/* A prefixed line: to the tracker, and to stdout as asked. */
static void
out_line(struct io *io, const char *l, size_t n)
{
	if (io->t)
		khdo_track_line(io->t, l, n);
	if (io->o->quiet || (io->load && !io->o->verbose))
		return;
	if (!io->o->prefix && n > 0 && l[0] == '[') {
		const char *sp = memchr(l, ' ', n);
		if (sp) {
			n -= (size_t)(sp + 1 - l);
			l = sp + 1;
		}
	}
	(void)!write_all(1, l, n);
	(void)!write_all(1, "\n", 1);
}

static void
make_tag(char *tag, size_t len)
{
	uint32_t r;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)(now_ns() ^ (uint64_t)getpid() << 16);
	snprintf(tag, len, "%08x", r);
}

/* The ranks= list for the block's nodes, or NULL (the whole channel) when
 * it would not fit one request line. */
static const char *
block_ranks(const struct khdo_block *b, struct sbuf *s)
{
	khdo_ranks_fmt(b->ranks, b->nranks, s);
	return s->len > 0 && s->len < 4000 ? s->s : NULL;
}

static int
report(struct khdo_track *t)
{
	struct sbuf r;
	sbuf_init(&r);
	int failed = khdo_track_report(t, "khdo", &r);
	if (r.len)
		fputs(r.s, stderr);
	sbuf_free(&r);
	return failed;
}

/* write, writecon, writefile: text (or the file fd) to the nodes; what
 * they answer to stdout. */
static int
f_write(const struct opts *o, const struct khdo_block *b, const char *text, int fd,
	const char *fname, int stream, uint64_t size)
{
	struct chan c;
	struct io io;
	struct khdo_track t;
	struct sbuf rl;
	char err[512];
	int lines = o->prefix || o->until, rc = 0;

	sbuf_init(&rl);
	if (chan_open(o, b, lines, 0, block_ranks(b, &rl), &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "khdo: %s\n", err);
		sbuf_free(&rl);
		return 1;
	}
	sbuf_free(&rl);
	io_init(&io, &c, o);
	if (text) {
		io.head = text;
		io.headlen = strlen(text);
	}
	if ((fd >= 0 && io_file(&io, fd, fname, stream, size) < 0) ||
	    (o->until && khdo_track_init(&t, b->ranks, b->nranks, "") < 0)) {
		fprintf(stderr, "khdo: out of memory\n");
		io_free(&io);
		chan_close(&c, 0, err, sizeof(err));
		return 1;
	}
	if (lines)
		io.line = out_line;
	else
		io.raw = out_raw;
	if (o->until) {
		khdo_track_phase(&t, KHDO_UNTIL, o->until);
		io.t = &t;
	}
	int r = io_run(&io, o->quiet ? done_sent : o->until ? done_all : done_idle);
	if (r < 0) {
		fprintf(stderr, "khdo: %s\n", io.err);
		rc = 1;
	} else if (r == 1 && o->until) {
		char why[300];
		snprintf(why, sizeof(why), "did not print '%s' within %llu s", o->until,
			 (unsigned long long)(o->timeout_ms / 1000));
		khdo_track_expire(&t, why);
		report(&t);
		rc = 1;
	} else if (r == 1 && sending(&io)) {
		fprintf(stderr, "khdo: the channel took no input for %llu s\n",
			(unsigned long long)(o->timeout_ms / 1000));
		rc = 1;
	} /* else the nodes never fell quiet: -t bounds the wait, the line went */
	if (o->until)
		khdo_track_free(&t);
	io_free(&io);
	/* -q: nothing waited for the nodes, so ssh must deliver in its time */
	if (chan_close(&c, o->quiet, err, sizeof(err)) < 0 && rc == 0) {
		fprintf(stderr, "khdo: %s\n", err);
		rc = 1;
	}
	return rc;
}

static int
valid_addr(const char *a)
{
	const char *p = a;
	if (*p == '$') {
		int brace = *++p == '{';
		p += brace;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
			return 0;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || *p == '_')
			p++;
		if (brace && *p++ != '}')
			return 0;
		return *p == '\0';
	}
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (*p == '\0' || strlen(p) > 16)
		return 0;
	for (; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
		      (*p >= 'A' && *p <= 'F')))
			return 0;
	return 1;
}

/* loadkernel, loadramdisk, loadfile: ask every node where the bytes go
 * and whether they fit; only if all can take them, mrw and the bytes,
 * then every node's acknowledgement. */
static int
f_load(const struct opts *o, const struct khdo_block *b, const char *addr, const char *file, int fd,
       uint64_t size)
{
	struct chan c;
	struct io io;
	struct khdo_track t;
	struct sbuf rl, line;
	char err[512], tag[16], why[160];
	int rc = 0;

	make_tag(tag, sizeof(tag));
	if (khdo_track_init(&t, b->ranks, b->nranks, tag) < 0) {
		fprintf(stderr, "khdo: out of memory\n");
		return 1;
	}
	sbuf_init(&rl);
	if (chan_open(o, b, 1, 0, block_ranks(b, &rl), &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "khdo: %s\n", err);
		sbuf_free(&rl);
		khdo_track_free(&t);
		return 1;
	}
	sbuf_free(&rl);
	io_init(&io, &c, o);
	io.line = out_line;
	io.t = &t;
	io.fname = file;
	io.load = 1;
	io.bar = isatty(2) && !o->quiet;

	/* 1: where, and how much room */
	sbuf_init(&line);
	sbuf_printf(&line, "echo khdo-pre:%s:%s; bdinfo; echo khdo-end:%s\n", tag, addr, tag);
	khdo_track_phase(&t, KHDO_PRE, addr);
	io.head = line.s;
	io.headlen = line.len;
	int r = io_run(&io, done_all);
	if (r < 0) {
		bar_clear(&io);
		fprintf(stderr, "khdo: %s\n", io.err);
		rc = 1;
		goto out;
	}
	snprintf(why, sizeof(why), "did not answer within %llu s (not in its boot monitor?)",
		 (unsigned long long)(o->timeout_ms / 1000));
	khdo_track_expire(&t, why);
	if (khdo_track_room(&t, size) > 0) {
		bar_clear(&io);
		int n = report(&t);
		fprintf(stderr, "khdo: nothing loaded: %d of %d nodes cannot take %s\n", n, t.n,
			file);
		rc = 1;
		goto out;
	}

	/* 2: the load */
	sbuf_reset(&line);
	sbuf_printf(&line, "mrw %s %llu; echo khdo-ack:%s:$?\n", addr, (unsigned long long)size,
		    tag);
	khdo_track_phase(&t, KHDO_LOAD, addr);
	io.head = line.s;
	io.headlen = line.len;
	io.headoff = 0;
	if (io_file(&io, fd, file, 0, size) < 0) {
		fprintf(stderr, "khdo: out of memory\n");
		rc = 1;
		goto out;
	}
	r = io_run(&io, done_all);
	bar_clear(&io);
	if (r < 0) {
		fprintf(stderr, "khdo: %s\n", io.err);
		snprintf(why, sizeof(why), "no acknowledgement (the load was cut short)");
	} else {
		snprintf(why, sizeof(why), "did not acknowledge within %llu s",
			 (unsigned long long)(o->timeout_ms / 1000));
	}
	khdo_track_expire(&t, why);
	if (t.failed > 0) {
		int n = report(&t);
		fprintf(stderr, "khdo: %s did not load on %d of %d nodes\n", file, n, t.n);
		rc = 1;
	}
out:
	sbuf_free(&line);
	io_free(&io);
	khdo_track_free(&t);
	chan_close(&c, 0, err, sizeof(err));
	return rc;
}

/* readcon: the channel's output, read-only, until interrupted. */
static int
f_readcon(const struct opts *o, const struct khdo_block *b)
{
	char err[512];
	struct chan c;

	if (!via_socket(o, b)) {
		const char *env = getenv("KH_SSH");
		char words[1024], port[8], *argv[64];
		int null = open("/dev/null", O_RDONLY);
		snprintf(words, sizeof(words), "%s", env && *env ? env : "ssh");
		ssh_argv(b, o->prefix, 1, NULL, words, port, argv, 64);
		if (null >= 0)
			dup2(null, 0);
		fflush(NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "khdo: %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	if (open_socket(o, b, o->prefix, 1, NULL, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "khdo: %s\n", err);
		return 1;
	}
	for (;;) {
		char buf[65536];
		ssize_t n = read(c.rfd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "khdo: khd closed the channel\n");
			return 1;
		}
		if (write_all(1, buf, (size_t)n) < 0)
			return 0; /* the reader went away (| head) */
	}
}

/* ------------------------------------------------------------------ */
/* Functions that run commands */

static int
run_shell(const char *cmd, const char *const *args, int nargs)
{
	const char *sh = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
	const char *argv[8];
	int n = 0, status;

	argv[n++] = sh;
	argv[n++] = "-c";
	argv[n++] = cmd;
	argv[n++] = "khdo";
	for (int i = 0; i < nargs && n < 7; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	fflush(NULL);
	pid_t p = fork();
	if (p < 0) {
		fprintf(stderr, "khdo: fork: %s\n", strerror(errno));
		return 1;
	}
	if (p == 0) {
		execv(sh, (char *const *)argv);
		fprintf(stderr, "khdo: %s: %s\n", sh, strerror(errno));
		_exit(127);
	}
	while (waitpid(p, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Run tmpl with its placeholders; returns its status. */
static int
run_subst(const char *tmpl, const char *const *keys, const char *const *vals, int n)
{
	struct sbuf cmd;
	sbuf_init(&cmd);
	khdo_subst(tmpl, keys, vals, n, &cmd);
	int st = run_shell(cmd.s, NULL, 0);
	sbuf_free(&cmd);
	return st;
}

static int
f_percmd(const char *fn, const char *tmpl, const struct khdo_block *b)
{
	int last = 0;

	if (strcmp(fn, "concmd") == 0) {
		const char *k[] = {"con"}, *v[] = {b->con};
		return run_subst(tmpl, k, v, 1);
	}
	if (strcmp(fn, "pernetcmd") == 0) {
		for (int i = 0; i < b->nnets; i++) {
			const char *k[] = {"net", "if"},
				   *v[] = {b->nets[i].name, b->nets[i].ifname};
			int st = run_subst(tmpl, k, v, 2);
			if (st != 0)
				last = st;
		}
		return last;
	}
	if (strcmp(fn, "peripcmd") == 0)
		for (int i = 0; i < b->nranks; i++)
			if (khdo_block_info(b, b->ranks[i]) == NULL) {
				fprintf(stderr,
					"khdo: node %d has no nodeinfo line, so no address\n",
					b->ranks[i]);
				return 2;
			}
	for (int i = 0; i < b->nranks; i++) {
		char num[16];
		int st;
		if (strcmp(fn, "peripcmd") == 0) {
			const char *k[] = {"ip"}, *v[] = {khdo_block_info(b, b->ranks[i])->ip};
			st = run_subst(tmpl, k, v, 1);
		} else {
			snprintf(num, sizeof(num), "%d", b->ranks[i]);
			const char *k[] = {"node"}, *v[] = {num};
			st = run_subst(tmpl, k, v, 1);
		}
		if (st != 0)
			last = st;
	}
	return last;
}

/* cmd: the original appended the channel, the ranks and the domains as
 * three arguments. */
static int
f_cmd(const char *tmpl, const struct khdo_block *b)
{
	struct sbuf cmd, nodes, nets;
	sbuf_init(&cmd);
	sbuf_init(&nodes);
	sbuf_init(&nets);
	sbuf_printf(&cmd, "%s \"$@\"", tmpl);
	for (int i = 0; i < b->nranks; i++)
		sbuf_printf(&nodes, "%s%d", i ? " " : "", b->ranks[i]);
	for (int i = 0; i < b->nnets; i++)
		sbuf_printf(&nets, "%s%s", i ? " " : "", b->nets[i].name);
	const char *args[] = {b->con, nodes.s ? nodes.s : "", nets.s ? nets.s : ""};
	int st = run_shell(cmd.s, args, 3);
	sbuf_free(&cmd);
	sbuf_free(&nodes);
	sbuf_free(&nets);
	return st;
}

/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	int args; /* -1: any number */
} funcs[] = {
    {"write", -1},	{"writecon", -1}, {"readcon", 0}, {"writefile", 1}, {"loadkernel", 1},
    {"loadramdisk", 1}, {"loadfile", 2},  {"concmd", 1},  {"peripcmd", 1},  {"pernodecmd", 1},
    {"pernetcmd", 1},	{"cmd", 1},	  {"null", 0},
};

static int
read_block(struct khdo_block *b)
{
	struct sbuf in;
	char err[300];

	if (isatty(0))
		return fail2("%s", "the control block (khget's output) goes to standard input");
	sbuf_init(&in);
	for (;;) {
		char buf[65536];
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sbuf_free(&in);
			return fail2("standard input: %s", strerror(errno));
		}
		if (n == 0)
			break;
		sbuf_add(&in, buf, (size_t)n);
		if (in.len > (64u << 20)) {
			sbuf_free(&in);
			return fail2("%s", "standard input is too long for a control block");
		}
	}
	int rc = khdo_block_parse(in.s ? in.s : "", in.len, b, err, sizeof(err));
	sbuf_free(&in);
	if (rc < 0)
		return fail2("%s", err);
	return 0;
}

/* A file to send: open, and its size when it is a regular file. */
static int
open_file(const char *path, int need_size, int *fd, int *stream, uint64_t *size)
{
	struct stat st;

	/* O_NONBLOCK: a pipe with no writer must not hang khdo here */
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0 || fstat(*fd, &st) < 0) {
		fprintf(stderr, "khdo: %s: %s\n", path, strerror(errno));
		return 2;
	}
	fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK);
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, "khdo: %s: is a directory\n", path);
		return 2;
	}
	*stream = !S_ISREG(st.st_mode);
	*size = (uint64_t)st.st_size;
	if (need_size && *stream) {
		fprintf(stderr, "khdo: %s: not a regular file (mrw needs its size)\n", path);
		return 2;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o = {.cred = getenv("KH_CRED"),
			 .ccred = getenv("KH_CHANCRED"),
			 .timeout_ms = 10000,
			 .idle_ms = 500};
	int i;
	uint64_t v;

	signal(SIGPIPE, SIG_IGN);
	o.user = getenv("KH_USER");
	if (o.user == NULL || *o.user == '\0')
		o.user = getenv("USER");
	if (o.cred && *o.cred == '\0')
		o.cred = NULL;
	if (o.ccred && *o.ccred == '\0')
		o.ccred = NULL;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(a, "-c") == 0) {
			if (i + 2 >= argc)
				return fail2("%s",
					     "-c takes a credential and a user (-c CRED USER)");
			o.cred = argv[++i];
			o.user = argv[++i];
			o.ccred = NULL;
		} else if (strcmp(a, "-k") == 0 || strcmp(a, "--socket") == 0 ||
			   strcmp(a, "--until") == 0 || strcmp(a, "-t") == 0 ||
			   strcmp(a, "--idle") == 0) {
			if (next == NULL)
				return fail2("option %s needs a value", a);
			i++;
			if (strcmp(a, "-k") == 0)
				o.ccred = next;
			else if (strcmp(a, "--socket") == 0)
				o.sock = next;
			else if (strcmp(a, "--until") == 0) {
				if (*next == '\0')
					return fail2("%s", "--until needs a text");
				o.until = next;
			} else if (strcmp(a, "-t") == 0) {
				if (parse_uint(next, 1, 86400, &v) < 0)
					return fail2("-t takes 1..86400 seconds, not '%s'", next);
				o.timeout_ms = v * 1000;
			} else {
				if (parse_uint(next, 1, 3600000, &v) < 0)
					return fail2("--idle takes milliseconds, not '%s'", next);
				o.idle_ms = v;
			}
		} else if (strcmp(a, "--ssh") == 0) {
			o.ssh = 1;
		} else if (strcmp(a, "--prefix") == 0) {
			o.prefix = 1;
		} else if (strcmp(a, "-q") == 0) {
			o.quiet = 1;
		} else if (strcmp(a, "-v") == 0) {
			o.verbose = 1;
		} else {
			return fail2("unknown option %s (see khdo --help)", a);
		}
	}
	if (o.ssh && o.sock)
		return fail2("%s", "--ssh and --socket exclude each other");
	if (i >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	const char *fn = argv[i++];
	int nargs = argc - i, f;
	char **args = argv + i;
	for (f = 0; f < (int)(sizeof(funcs) / sizeof(funcs[0])); f++)
		if (strcmp(funcs[f].name, fn) == 0)
			break;
	if (f == (int)(sizeof(funcs) / sizeof(funcs[0])))
		return fail2("unknown function '%s' (see khdo --help)", fn);
	if (funcs[f].args >= 0 && nargs != funcs[f].args) {
		fprintf(stderr, "khdo: %s takes %d argument%s%s\n", fn, funcs[f].args,
			funcs[f].args == 1 ? "" : "s",
			funcs[f].args == 1 && strstr(fn, "cmd") ? " (quote the command)" : "");
		return 2;
	}
	if (strcmp(fn, "loadfile") == 0 && !valid_addr(args[0]))
		return fail2("bad address '%s' (hex, or $variable)", args[0]);

	/* Everything the user gave is checked before anything is sent. */
	int fd = -1, stream = 0, rc;
	uint64_t size = 0;
	const char *file = NULL;
	if (strcmp(fn, "writefile") == 0 || strncmp(fn, "load", 4) == 0) {
		file = args[nargs - 1];
		if ((rc = open_file(file, fn[0] == 'l', &fd, &stream, &size)) != 0)
			return rc;
	}
	struct khdo_block b;
	if ((rc = read_block(&b)) != 0)
		return rc;

	if (strcmp(fn, "write") == 0 || strcmp(fn, "writecon") == 0) {
		struct sbuf text;
		sbuf_init(&text);
		for (int k = 0; k < nargs; k++)
			sbuf_printf(&text, "%s%s", k ? " " : "", args[k]);
		if (text.len == 0) /* the original sent nothing then */
			rc = 0;
		else if (memchr(text.s, '\n', text.len) != NULL) {
			rc = fail2("%s", "write sends one line: use writefile for more");
		} else {
			sbuf_adds(&text, "\n");
			rc = f_write(&o, &b, text.s, -1, NULL, 0, 0);
		}
		sbuf_free(&text);
	} else if (strcmp(fn, "readcon") == 0) {
		rc = f_readcon(&o, &b);
	} else if (strcmp(fn, "writefile") == 0) {
		rc = f_write(&o, &b, NULL, fd, file, stream, size);
	} else if (strcmp(fn, "loadkernel") == 0) {
		rc = f_load(&o, &b, "$loadaddr", file, fd, size);
	} else if (strcmp(fn, "loadramdisk") == 0) {
		rc = f_load(&o, &b, "$ramfsaddr", file, fd, size);
	} else if (strcmp(fn, "loadfile") == 0) {
		rc = f_load(&o, &b, args[0], file, fd, size);
	} else if (strcmp(fn, "cmd") == 0) {
		rc = f_cmd(args[0], &b);
	} else if (strcmp(fn, "null") == 0) {
		rc = 0;
	} else {
		rc = f_percmd(fn, args[0], &b);
	}
	if (fd >= 0)
		close(fd);
	khdo_block_free(&b);
	return rc;
}
