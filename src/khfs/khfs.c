/* khfs: the facility as files.  One thread runs an epoll loop over the
 * FUSE session's descriptor, the exec streams of its sessions (khd's exec
 * verb), the khdo children that load and boot nodes, and a signalfd.  A
 * read that must wait (stdout, wait) keeps its request and is answered
 * later (deferred reply), or EAGAIN under O_NONBLOCK, or EINTR when the
 * reader is interrupted.  Short requests to khd (get, release, nodes) are
 * made synchronously on a fresh connection with a timeout. */
#define FUSE_USE_VERSION 34
#include "khfs/khfs.h"
#include "common/proto.h"
#include "common/sbuf.h"
#include "common/util.h"
#include "exec/frame.h"
#include "tools/client.h"
#include "tools/xclient.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXSESS	 4096
#define MAXNODES 4096
#define LOGMAX	 (8u << 20) /* output kept per log; older bytes are dropped */

/* File kinds; an inode number is (kind << 56 | a << 24 | b). */
enum {
	K_ROOT = 1,
	K_CLONE,
	K_NODES,
	K_NODE, /* nodes/RANK */
	K_NSTATUS,
	K_NCTL,
	K_SESS, /* N */
	K_CTL,
	K_STDIN,
	K_STDOUT,
	K_STDERR,
	K_WAIT,
	K_STATUS,
	K_ENV,
	K_ARGS,
	K_SRANK, /* N/RANK */
	K_SROUT, /* N/RANK/stdout */
};

static const struct {
	const char *name;
	int kind;
	mode_t mode;
} sessfiles[] = {{"ctl", K_CTL, 0666},	     {"stdin", K_STDIN, 0222}, {"stdout", K_STDOUT, 0444},
		 {"stderr", K_STDERR, 0444}, {"wait", K_WAIT, 0444},   {"status", K_STATUS, 0444},
		 {"env", K_ENV, 0666},	     {"args", K_ARGS, 0444}};

struct olog {
	struct sbuf b;
	uint64_t base; /* offset of b.s[0] in the stream */
};

struct fh;

struct waiter {
	fuse_req_t req;
	struct fh *fh;
	size_t size;
	struct waiter *next;
	struct sess *s;
};

struct job { /* a khdo child: load or boot */
	pid_t pid;
	int pidfd, errfd;
	struct sbuf errtext;
	fuse_req_t req; /* the ctl write it answers */
	size_t wsize;
	int boot;
};

struct sess {
	int id;
	int opens;
	int chan, owned; /* con<C>; allocated by this session (released at its end) */
	int ranks[MAXNODES];
	int n;
	struct sbuf block;	  /* the control block */
	struct sbuf env, args;	  /* NAME=VALUE lines; the last exec's command */
	char status[512];	  /* the last command's outcome */
	int xfd;		  /* exec stream to khd, or -1 */
	struct sbuf xin;	  /* its bytes not yet parsed */
	int running, done, ended; /* an exec started / all its processes ended */
	struct olog out, err, wait;
	struct olog *rout;	  /* per rank of ranks[] */
	struct sbuf *pout, *perr; /* partial lines per rank */
	struct waiter *waiters;
	struct job *job;
	uint64_t boot_deadline;
	fuse_req_t boot_req;
	size_t boot_wsize;
};

struct fh {
	int kind;
	struct sess *s;
	int ridx; /* index into s->ranks for K_SROUT */
	uint64_t off;
	struct fuse_pollhandle *ph;
	struct sbuf snap; /* static files: the contents at open */
	int nonblock;
	struct fh *next; /* on the fs's list of stream handles */
};

struct fs {
	const char *sock, *user, *cred;
	int operator;
	struct fuse_session *se;
	int ep;
	struct sess *sess[MAXSESS];
	struct fh *streams;
	int lasterr_khd;
};

static struct fs *G; /* FUSE callbacks get it from fuse_req_userdata */

static uint64_t
ino_of(int kind, uint64_t a, uint64_t b)
{
	return kind == K_ROOT ? FUSE_ROOT_ID : ((uint64_t)kind << 56) | (a << 24) | b;
}

static int
kind_of(fuse_ino_t ino, uint64_t *a, uint64_t *b)
{
	if (ino == FUSE_ROOT_ID) {
		*a = *b = 0;
		return K_ROOT;
	}
	*a = (ino >> 24) & 0xffffffffULL;
	*b = ino & 0xffffff;
	return (int)(ino >> 56);
}

/* ---- khd ---- */

/* One request on a fresh connection.  Returns 0 (body filled), 1 with
 * khd's error in msg (code in code), -1 when khd cannot be reached. */
static int
khd_call(struct fs *fs, struct sbuf *req, struct sbuf *body, char *code, size_t cl, char *msg,
	 size_t ml)
{
	struct timeval tv = {10, 0};
	int fd = client_connect(fs->sock, msg, ml), rc;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = client_call(fd, req, body, code, cl, msg, ml);
	close(fd);
	return rc;
}

static void
auth_args(struct fs *fs, struct sbuf *req)
{
	proto_arg(req, "user", fs->user);
	proto_arg(req, "cred", fs->cred);
}

/* ---- logs and waiters ---- */

static void
olog_add(struct olog *l, const char *p, size_t n)
{
	sbuf_add(&l->b, p, n);
	if (l->b.len > LOGMAX) {
		size_t drop = l->b.len - LOGMAX / 2;
		sbuf_consume(&l->b, drop);
		l->base += drop;
	}
}

static void
olog_free(struct olog *l)
{
	sbuf_free(&l->b);
}

static struct olog *
log_of(struct fh *h)
{
	switch (h->kind) {
	case K_STDOUT:
		return &h->s->out;
	case K_STDERR:
		return &h->s->err;
	case K_WAIT:
		return &h->s->wait;
	case K_SROUT:
		return &h->s->rout[h->ridx];
	}
	return NULL;
}

/* Is a stream read of h answerable now: data, or the end. */
static int
stream_ready(struct fh *h)
{
	struct olog *l = log_of(h);
	if (h->kind == K_WAIT)
		return h->s->done;
	return l->base + l->b.len > h->off || h->s->done || !h->s->running;
}

/* Answer a stream read: bytes from the handle's offset (skipping what was
 * dropped), or 0 at the end. */
static void
stream_reply(fuse_req_t req, struct fh *h, size_t size)
{
	struct olog *l = log_of(h);
	if (h->off < l->base)
		h->off = l->base;
	size_t avail = (size_t)(l->base + l->b.len - h->off);
	size_t n = avail < size ? avail : size;
	fuse_reply_buf(req, n ? l->b.s + (h->off - l->base) : NULL, n);
	h->off += n;
}

static void
wake(struct fs *fs, struct sess *s)
{
	struct waiter **w = &s->waiters;
	while (*w) {
		struct waiter *x = *w;
		if (stream_ready(x->fh)) {
			*w = x->next;
			stream_reply(x->req, x->fh, x->size);
			free(x);
			continue;
		}
		w = &x->next;
	}
	for (struct fh *h = fs->streams; h; h = h->next)
		if (h->s == s && h->ph && log_of(h) && stream_ready(h)) {
			fuse_lowlevel_notify_poll(h->ph);
			fuse_pollhandle_destroy(h->ph);
			h->ph = NULL;
		}
}

static void
interrupted(fuse_req_t req, void *data)
{
	struct waiter *x = data;
	struct waiter **w = &x->s->waiters;
	for (; *w; w = &(*w)->next)
		if (*w == x) {
			*w = x->next;
			fuse_reply_err(req, EINTR);
			free(x);
			return;
		}
}

/* ---- sessions ---- */

static void set_status(struct sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
set_status(struct sess *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->status, sizeof(s->status), fmt, ap);
	va_end(ap);
}

static struct sess *
sess_new(struct fs *fs)
{
	for (int i = 1; i < MAXSESS; i++) {
		if (fs->sess[i])
			continue;
		struct sess *s = calloc(1, sizeof(*s));
		if (s == NULL)
			return NULL;
		s->id = i;
		s->xfd = -1;
		sbuf_init(&s->block);
		sbuf_init(&s->env);
		sbuf_init(&s->args);
		sbuf_init(&s->xin);
		set_status(s, "new");
		fs->sess[i] = s;
		return s;
	}
	return NULL;
}

static void
exec_close(struct fs *fs, struct sess *s)
{
	if (s->xfd >= 0) {
		epoll_ctl(fs->ep, EPOLL_CTL_DEL, s->xfd, NULL);
		close(s->xfd);
		s->xfd = -1;
	}
}

static void
ranks_free(struct sess *s)
{
	for (int i = 0; i < s->n && s->rout; i++) {
		olog_free(&s->rout[i]);
		sbuf_free(&s->pout[i]);
		sbuf_free(&s->perr[i]);
	}
	free(s->rout);
	free(s->pout);
	free(s->perr);
	s->rout = NULL;
	s->pout = s->perr = NULL;
}

static int
targets_of(struct sess *s, char *buf, size_t len)
{
	if (s->chan > 0)
		return snprintf(buf, len, "con%d", s->chan) < (int)len ? 0 : -1;
	return -1;
}

static void
release_nodes(struct fs *fs, struct sess *s)
{
	char t[32], code[32], msg[256];
	struct sbuf req, body;

	if (!s->owned || targets_of(s, t, sizeof(t)) < 0)
		return;
	sbuf_init(&req);
	sbuf_init(&body);
	proto_begin(&req, "release");
	auth_args(fs, &req);
	proto_arg(&req, "targets", t);
	proto_end(&req);
	khd_call(fs, &req, &body, code, sizeof(code), msg, sizeof(msg));
	sbuf_free(&req);
	sbuf_free(&body);
	ranks_free(s);
	s->owned = 0;
	s->chan = 0;
	s->n = 0;
}

static void job_end(struct fs *fs, struct sess *s, int err);

/* The session ends when nothing holds it: no open file, no process. */
static void
sess_maybe_free(struct fs *fs, struct sess *s)
{
	if (s->opens > 0 || (s->running && !s->done) || s->job)
		return;
	exec_close(fs, s);
	release_nodes(fs, s);
	ranks_free(s);
	olog_free(&s->out);
	olog_free(&s->err);
	olog_free(&s->wait);
	sbuf_free(&s->block);
	sbuf_free(&s->env);
	sbuf_free(&s->args);
	sbuf_free(&s->xin);
	fs->sess[s->id] = NULL;
	free(s);
}

/* ---- the exec stream of a session ---- */

static void
line_out(struct sess *s, int idx, int err, const char *p, size_t n, int flush)
{
	struct sbuf *part = err ? &s->perr[idx] : &s->pout[idx];
	struct olog *l = err ? &s->err : &s->out;

	sbuf_add(part, p, n);
	for (;;) {
		char *nl = memchr(part->s ? part->s : "", '\n', part->len);
		if (nl == NULL)
			break;
		olog_add(l, part->s, (size_t)(nl - part->s) + 1);
		sbuf_consume(part, (size_t)(nl - part->s) + 1);
	}
	if (flush && part->len) {
		olog_add(l, part->s, part->len);
		olog_add(l, "\n", 1);
		sbuf_reset(part);
	}
}

static int
idx_of(struct sess *s, int rank)
{
	for (int i = 0; i < s->n; i++)
		if (s->ranks[i] == rank)
			return i;
	return -1;
}

static void
stream_end(struct fs *fs, struct sess *s, const char *why)
{
	for (int i = 0; i < s->n; i++) {
		line_out(s, i, 0, "", 0, 1);
		line_out(s, i, 1, "", 0, 1);
	}
	if (why)
		set_status(s, "error: %s", why);
	s->done = 1;
	exec_close(fs, s);
	wake(fs, s);
	sess_maybe_free(fs, s);
}

static void
exec_readable(struct fs *fs, struct sess *s)
{
	char buf[65536], why[128];
	ssize_t n = recv(s->xfd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		stream_end(fs, s, "lost khd before the processes ended");
		return;
	}
	sbuf_add(&s->xin, buf, (size_t)n);
	for (;;) {
		char *nl = memchr(s->xin.s, '\n', s->xin.len);
		struct xframe f;
		if (nl == NULL)
			break;
		size_t hl = (size_t)(nl - s->xin.s);
		if (xframe_parse(s->xin.s, hl, 1, &f, why, sizeof(why)) < 0) {
			stream_end(fs, s, why);
			return;
		}
		if ((f.kind == 'o' || f.kind == 'e') && s->xin.len < hl + 1 + f.len)
			break;
		int i = f.kind == 'd' ? 0 : idx_of(s, f.rank);
		if (i < 0) {
			stream_end(fs, s, "khd named a node not in the session");
			return;
		}
		const char *data = s->xin.s + hl + 1;
		switch (f.kind) {
		case 'o':
			olog_add(&s->rout[i], data, f.len);
			line_out(s, i, 0, data, f.len, 0);
			break;
		case 'e':
			line_out(s, i, 1, data, f.len, 0);
			break;
		case 'x': {
			char l[128];
			int k =
			    snprintf(l, sizeof(l), "%d %d %llu %llu %llu\n", f.rank, f.status,
				     (unsigned long long)f.user_ms, (unsigned long long)f.sys_ms,
				     (unsigned long long)f.real_ms);
			olog_add(&s->wait, l, (size_t)k);
			line_out(s, i, 0, "", 0, 1);
			line_out(s, i, 1, "", 0, 1);
			break;
		}
		case 'd':
			set_status(s, "done");
			sbuf_consume(&s->xin, hl + 1);
			stream_end(fs, s, NULL);
			return;
		}
		sbuf_consume(&s->xin, hl + 1 + (f.kind == 'o' || f.kind == 'e' ? f.len : 0));
	}
	wake(fs, s);
}

static int
send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- ctl commands ---- */

static int
errno_of(const char *code)
{
	if (strcmp(code, "auth") == 0 || strcmp(code, "perm") == 0)
		return EACCES;
	if (strcmp(code, "nonodes") == 0)
		return ENOSPC;
	if (strcmp(code, "notfound") == 0)
		return ENOENT;
	if (strcmp(code, "busy") == 0)
		return EBUSY;
	if (strcmp(code, "policy") == 0) /* a limit of the principal's (docs/policy.md) */
		return EDQUOT;
	return EINVAL;
}

/* Take a control block: con<C>@host and the nodes line. */
static int
take_block(struct sess *s, const char *blk)
{
	const char *p = strstr(blk, "\nnodes:");
	int n = 0;

	if (sscanf(blk, "con%d@", &s->chan) != 1 || p == NULL)
		return -1;
	p += 7;
	while (*p == ' ' && n < MAXNODES) {
		char *end;
		long r = strtol(p + 1, &end, 10);
		if (end == p + 1)
			break;
		s->ranks[n++] = (int)r;
		p = end;
	}
	s->n = n;
	sbuf_reset(&s->block);
	sbuf_adds(&s->block, blk);
	return n > 0 ? 0 : -1;
}

static int
c_res(struct fs *fs, struct sess *s, char **w, int nw)
{
	char code[32], msg[256];
	struct sbuf req, body;
	int rc;

	if (s->n > 0) {
		set_status(s, "error: the session has nodes already (con%d)", s->chan);
		return EBUSY;
	}
	if (nw < 2 || nw > 3) {
		set_status(s, "error: res COUNT [TYPE] or res con<C>");
		return EINVAL;
	}
	sbuf_init(&req);
	sbuf_init(&body);
	if (strncmp(w[1], "con", 3) == 0) {
		proto_begin(&req, "block");
		auth_args(fs, &req);
		proto_arg(&req, "chan", w[1] + 3);
	} else {
		proto_begin(&req, "get");
		auth_args(fs, &req);
		proto_arg(&req, "count", w[1]);
		if (nw == 3)
			proto_arg(&req, "type", w[2]);
	}
	proto_end(&req);
	rc = khd_call(fs, &req, &body, code, sizeof(code), msg, sizeof(msg));
	if (rc == 0 && take_block(s, body.s ? body.s : "") < 0) {
		rc = 1;
		snprintf(code, sizeof(code), "internal");
		snprintf(msg, sizeof(msg), "khd's control block is not understood");
	}
	sbuf_free(&req);
	sbuf_free(&body);
	if (rc < 0) {
		set_status(s, "error: %s", msg);
		return EIO;
	}
	if (rc > 0) {
		set_status(s, "error: %s", msg);
		return errno_of(code);
	}
	s->owned = strncmp(w[1], "con", 3) != 0;
	ranks_free(s);
	s->rout = calloc((size_t)s->n, sizeof(*s->rout));
	s->pout = calloc((size_t)s->n, sizeof(*s->pout));
	s->perr = calloc((size_t)s->n, sizeof(*s->perr));
	if (!s->rout || !s->pout || !s->perr)
		abort();
	set_status(s, "res con%d: %d nodes", s->chan, s->n);
	return 0;
}

static int
c_exec(struct fs *fs, struct sess *s, char **w, int nw)
{
	char t[32], err[256];
	char *env[257];
	int ne = 0;
	struct sbuf req;

	if (s->n == 0) {
		set_status(s, "error: no nodes in the session (res first)");
		return ENXIO;
	}
	if (s->running && !s->done) {
		set_status(s, "error: a program runs already (kill it first)");
		return EBUSY;
	}
	if (nw < 2) {
		set_status(s, "error: exec CMD [ARGS...]");
		return EINVAL;
	}
	for (char *p = s->env.s, *e; p && p < s->env.s + s->env.len && ne < 256; p = e + 1) {
		e = memchr(p, '\n', (size_t)(s->env.s + s->env.len - p));
		if (e == NULL)
			break;
		*e = '\0';
		env[ne++] = p;
	}
	env[ne] = NULL;
	targets_of(s, t, sizeof(t));
	sbuf_init(&req);
	int bad = xclient_request(&req, fs->user, fs->cred, t, w + 1, env);
	for (int i = 0; i < ne; i++)
		env[i][strlen(env[i])] = '\n';
	if (bad < 0) {
		sbuf_free(&req);
		set_status(s, "error: an argument holds byte 0x1f");
		return EINVAL;
	}
	int fd = client_connect(fs->sock, err, sizeof(err));
	if (fd < 0) {
		sbuf_free(&req);
		set_status(s, "error: %s", err);
		return EIO;
	}
	/* khd answers once every process is started: ms. */
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char line[1024];
	size_t got = 0;
	int rc = send_all(fd, req.s, req.len);
	sbuf_free(&req);
	while (rc == 0 && got < sizeof(line) - 1) {
		ssize_t n = recv(fd, line + got, 1, 0);
		if (n <= 0) {
			rc = -1;
			break;
		}
		if (line[got++] == '\n')
			break;
	}
	line[got] = '\0';
	if (rc < 0 || got == 0 || line[got - 1] != '\n') {
		close(fd);
		set_status(s, "error: lost khd");
		return EIO;
	}
	line[got - 1] = '\0';
	if (strcmp(line, "ok") != 0) {
		char code[32] = "internal";
		char *sp = strchr(line + 4, ' ');
		close(fd);
		if (strncmp(line, "err ", 4) == 0 && sp) {
			snprintf(code, sizeof(code), "%.*s", (int)(sp - line - 4), line + 4);
			set_status(s, "error: %s", sp + 1);
		} else {
			set_status(s, "error: bad reply from khd");
		}
		return errno_of(code);
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	exec_close(fs, s);
	s->xfd = fd;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (1ULL << 62) | (uint64_t)s->id};
	epoll_ctl(fs->ep, EPOLL_CTL_ADD, fd, &ev);
	/* A fresh run: its output, its wait lines. */
	olog_free(&s->out);
	olog_free(&s->err);
	olog_free(&s->wait);
	memset(&s->out, 0, sizeof(s->out));
	memset(&s->err, 0, sizeof(s->err));
	memset(&s->wait, 0, sizeof(s->wait));
	for (int i = 0; i < s->n; i++) {
		olog_free(&s->rout[i]);
		memset(&s->rout[i], 0, sizeof(s->rout[i]));
		sbuf_reset(&s->pout[i]);
		sbuf_reset(&s->perr[i]);
	}
	sbuf_reset(&s->xin);
	sbuf_reset(&s->args);
	for (int i = 1; i < nw; i++) {
		sbuf_adds(&s->args, w[i]);
		sbuf_adds(&s->args, i + 1 < nw ? " " : "\n");
	}
	s->running = 1;
	s->done = 0;
	set_status(s, "running %s on %d nodes", w[1], s->n);
	return 0;
}

static int
c_kill(struct sess *s, char **w, int nw)
{
	char f[32];
	uint64_t sig = SIGTERM;

	if (nw > 2 || (nw == 2 && parse_uint(w[1], 1, 64, &sig) < 0)) {
		set_status(s, "error: kill [SIGNAL NUMBER]");
		return EINVAL;
	}
	if (s->xfd < 0) {
		set_status(s, "error: nothing runs");
		return ESRCH;
	}
	snprintf(f, sizeof(f), "k %d\n", (int)sig);
	send_all(s->xfd, f, strlen(f));
	return 0;
}

static int
c_release(struct fs *fs, struct sess *s)
{
	if (s->n == 0) {
		set_status(s, "error: no nodes in the session");
		return ENXIO;
	}
	if (s->xfd >= 0)
		send_all(s->xfd, "k 9\n", 4);
	s->owned = 1;
	release_nodes(fs, s);
	set_status(s, "released");
	return 0;
}

/* load and boot: khdo does them (with its checks), a child of ours whose
 * end answers the ctl write. */
static int
c_job(struct fs *fs, struct sess *s, char **w, int nw, fuse_req_t req, size_t wsize)
{
	int boot = strcmp(w[0], "boot") == 0, in[2], er[2];
	pid_t pid;

	if (s->n == 0) {
		set_status(s, "error: no nodes in the session (res first)");
		return ENXIO;
	}
	if ((boot && nw != 1) || (!boot && nw != 3)) {
		set_status(s, "error: %s", boot ? "boot takes no argument" : "load ADDR FILE");
		return EINVAL;
	}
	if (s->job) {
		set_status(s, "error: a load or boot is under way");
		return EBUSY;
	}
	if (!boot && access(w[2], R_OK) < 0) {
		set_status(s, "error: %s: %s", w[2], strerror(errno));
		return errno;
	}
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0)
		return EIO;
	if ((pid = fork()) == 0) {
		char *argv[16];
		int a = 0;
		dup2(in[0], 0);
		dup2(er[1], 1);
		dup2(er[1], 2);
		argv[a++] = "khdo";
		argv[a++] = "--socket";
		argv[a++] = (char *)fs->sock;
		argv[a++] = "-c";
		argv[a++] = (char *)fs->cred;
		argv[a++] = (char *)fs->user;
		argv[a++] = "-q";
		if (boot) {
			argv[a++] = "write";
			argv[a++] = "run kboot";
		} else {
			argv[a++] = "loadfile";
			argv[a++] = w[1];
			argv[a++] = w[2];
		}
		argv[a] = NULL;
		execvp("khdo", argv);
		_exit(127);
	}
	close(in[0]);
	close(er[1]);
	if (pid < 0) {
		close(in[1]);
		close(er[0]);
		return EIO;
	}
	if (write_all(in[1], s->block.s, s->block.len) < 0)
		(void)0;
	close(in[1]);
	struct job *j = calloc(1, sizeof(*j));
	j->pid = pid;
	j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	j->errfd = er[0];
	j->req = req;
	j->wsize = wsize;
	j->boot = boot;
	sbuf_init(&j->errtext);
	s->job = j;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (1ULL << 63) | (uint64_t)s->id};
	epoll_ctl(fs->ep, EPOLL_CTL_ADD, j->pidfd, &ev);
	set_status(s, "%s under way", boot ? "boot" : "load");
	return -1; /* answered later */
}

/* Are all the session's nodes running? -1: cannot tell. */
static int
all_running(struct fs *fs, struct sess *s)
{
	char code[32], msg[256];
	struct sbuf req, body;
	int rc, run = 0;

	sbuf_init(&req);
	sbuf_init(&body);
	proto_begin(&req, "nodes");
	proto_arg(&req, "user", fs->user);
	proto_end(&req);
	rc = khd_call(fs, &req, &body, code, sizeof(code), msg, sizeof(msg));
	for (char *l = body.s; rc == 0 && l && *l;) {
		int r;
		char st[32];
		if (sscanf(l, "%d %31s", &r, st) == 2 && idx_of(s, r) >= 0 &&
		    strcmp(st, "running") == 0)
			run++;
		l = strchr(l, '\n');
		l = l ? l + 1 : NULL;
	}
	sbuf_free(&req);
	sbuf_free(&body);
	return rc != 0 ? -1 : run == s->n;
}

static void
job_end(struct fs *fs, struct sess *s, int err)
{
	struct job *j = s->job;
	char buf[4096];
	ssize_t n;
	int st = 0;

	while ((n = read(j->errfd, buf, sizeof(buf))) > 0)
		sbuf_add(&j->errtext, buf, (size_t)n);
	waitpid(j->pid, &st, 0);
	epoll_ctl(fs->ep, EPOLL_CTL_DEL, j->pidfd, NULL);
	close(j->pidfd);
	close(j->errfd);
	if (err == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		char *nl = j->errtext.s ? memchr(j->errtext.s, '\n', j->errtext.len) : NULL;
		set_status(s, "error: %.*s", nl ? (int)(nl - j->errtext.s) : (int)j->errtext.len,
			   j->errtext.s ? j->errtext.s : "khdo failed");
		err = EIO;
	}
	if (err == 0 && j->boot) {
		/* The nodes boot: the write is answered once they run. */
		s->boot_req = j->req;
		s->boot_wsize = j->wsize;
		s->boot_deadline = now_ns() + 30000000000ULL;
	} else if (err) {
		fuse_reply_err(j->req, err);
	} else {
		set_status(s, "loaded");
		fuse_reply_write(j->req, j->wsize);
	}
	sbuf_free(&j->errtext);
	free(j);
	s->job = NULL;
}

static void
boot_tick(struct fs *fs, struct sess *s)
{
	int r = all_running(fs, s);
	if (r == 1) {
		set_status(s, "booted: %d nodes running", s->n);
		fuse_reply_write(s->boot_req, s->boot_wsize);
		s->boot_req = NULL;
	} else if (r < 0 || now_ns() > s->boot_deadline) {
		set_status(s, "error: %s", r < 0 ? "lost khd" : "the nodes did not boot in 30 s");
		fuse_reply_err(s->boot_req, r < 0 ? EIO : ETIMEDOUT);
		s->boot_req = NULL;
	}
}

/* Split a ctl line into words in place: blanks separate, '...' and "..."
 * quote (no expansion), as a user types it to a shell.  Returns the count,
 * or -1 for an unterminated quote or too many words. */
static int
split_words(char *s, char **w, int max)
{
	int n = 0;
	char *o = s;

	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (n == max)
			return -1;
		w[n++] = o;
		while (*s && *s != ' ' && *s != '\t') {
			if (*s == '\'' || *s == '"') {
				char q = *s++;
				while (*s && *s != q)
					*o++ = *s++;
				if (*s != q)
					return -1;
				s++;
				continue;
			}
			*o++ = *s++;
		}
		if (*s)
			s++;
		*o++ = '\0';
	}
	return n;
}

/* One ctl line.  Returns 0, an errno, or -1 when the reply is deferred. */
static int
ctl_line(struct fs *fs, struct sess *s, char *line, fuse_req_t req, size_t wsize)
{
	char *w[64];
	int nw = split_words(line, w, 63);

	if (nw < 0) {
		set_status(s, "error: unterminated quote or too many words");
		return EINVAL;
	}
	w[nw] = NULL;
	if (nw == 0)
		return 0;
	if (fs->cred == NULL && strcmp(w[0], "kill") != 0) {
		set_status(s, "error: %s needs a principal (-c CRED USER)", w[0]);
		return EACCES;
	}
	if (strcmp(w[0], "res") == 0)
		return c_res(fs, s, w, nw);
	if (strcmp(w[0], "exec") == 0)
		return c_exec(fs, s, w, nw);
	if (strcmp(w[0], "kill") == 0)
		return c_kill(s, w, nw);
	if (strcmp(w[0], "release") == 0)
		return c_release(fs, s);
	if (strcmp(w[0], "load") == 0 || strcmp(w[0], "boot") == 0)
		return c_job(fs, s, w, nw, req, wsize);
	set_status(s, "error: unknown command '%.40s'", w[0]);
	return EINVAL;
}

/* ---- file system operations ---- */

static void
fill_attr(struct stat *st, fuse_ino_t ino, int kind)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	switch (kind) {
	case K_ROOT:
	case K_NODES:
	case K_NODE:
	case K_SESS:
	case K_SRANK:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return;
	case K_CLONE:
	case K_NSTATUS:
		st->st_mode = S_IFREG | 0444;
		break;
	case K_NCTL:
		st->st_mode = S_IFREG | 0222;
		break;
	case K_SROUT:
		st->st_mode = S_IFREG | 0444;
		break;
	default:
		for (size_t i = 0; i < sizeof(sessfiles) / sizeof(sessfiles[0]); i++)
			if (sessfiles[i].kind == kind)
				st->st_mode = S_IFREG | sessfiles[i].mode;
	}
	st->st_nlink = 1;
}

/* Does the inode exist now? */
static int
exists(struct fs *fs, int kind, uint64_t a, uint64_t b)
{
	switch (kind) {
	case K_ROOT:
	case K_CLONE:
	case K_NODES:
		return 1;
	case K_NODE:
	case K_NSTATUS:
	case K_NCTL:
		return a < MAXNODES;
	case K_SESS:
	case K_CTL:
	case K_STDIN:
	case K_STDOUT:
	case K_STDERR:
	case K_WAIT:
	case K_STATUS:
	case K_ENV:
	case K_ARGS:
		return a < MAXSESS && fs->sess[a] != NULL;
	case K_SRANK:
	case K_SROUT:
		return a < MAXSESS && fs->sess[a] != NULL && b < (uint64_t)fs->sess[a]->n;
	}
	return 0;
}

static int
reply_entry(fuse_req_t req, int kind, uint64_t a, uint64_t b)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino_of(kind, a, b);
	fill_attr(&e.attr, e.ino, kind);
	/* No caching: sessions come and go. */
	return fuse_reply_entry(req, &e);
}

static int
parse_num(const char *s, uint64_t max, uint64_t *v)
{
	return parse_uint(s, 0, max, v);
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = G;
	uint64_t a, b, v;
	int k = kind_of(parent, &a, &b);

	if (!exists(fs, k, a, b)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	switch (k) {
	case K_ROOT:
		if (strcmp(name, "clone") == 0)
			reply_entry(req, K_CLONE, 0, 0);
		else if (strcmp(name, "nodes") == 0)
			reply_entry(req, K_NODES, 0, 0);
		else if (parse_num(name, MAXSESS - 1, &v) == 0 && fs->sess[v])
			reply_entry(req, K_SESS, v, 0);
		else
			fuse_reply_err(req, ENOENT);
		return;
	case K_NODES:
		if (parse_num(name, MAXNODES - 1, &v) == 0)
			reply_entry(req, K_NODE, v, 0);
		else
			fuse_reply_err(req, ENOENT);
		return;
	case K_NODE:
		if (strcmp(name, "status") == 0)
			reply_entry(req, K_NSTATUS, a, 0);
		else if (strcmp(name, "ctl") == 0)
			reply_entry(req, K_NCTL, a, 0);
		else
			fuse_reply_err(req, ENOENT);
		return;
	case K_SESS:
		for (size_t i = 0; i < sizeof(sessfiles) / sizeof(sessfiles[0]); i++)
			if (strcmp(name, sessfiles[i].name) == 0) {
				reply_entry(req, sessfiles[i].kind, a, 0);
				return;
			}
		if (parse_num(name, MAXNODES - 1, &v) == 0 && idx_of(fs->sess[a], (int)v) >= 0) {
			reply_entry(req, K_SRANK, a, (uint64_t)idx_of(fs->sess[a], (int)v));
			return;
		}
		fuse_reply_err(req, ENOENT);
		return;
	case K_SRANK:
		if (strcmp(name, "stdout") == 0)
			reply_entry(req, K_SROUT, a, b);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_err(req, ENOTDIR);
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	uint64_t a, b;
	int k = kind_of(ino, &a, &b);
	(void)fi;
	if (!exists(G, k, a, b)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(&st, ino, k);
	fuse_reply_attr(req, &st, 0);
}

struct dirbuf {
	char *p;
	size_t size;
};

static void
dir_add(fuse_req_t req, struct dirbuf *d, const char *name, fuse_ino_t ino)
{
	struct stat st;
	size_t old = d->size;
	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	d->size += fuse_add_direntry(req, NULL, 0, name, NULL, 0);
	d->p = realloc(d->p, d->size);
	if (d->p == NULL)
		abort();
	fuse_add_direntry(req, d->p + old, d->size - old, name, &st, (off_t)d->size);
}

static void
node_ranks(struct fs *fs, int *ranks, int *n)
{
	char code[32], msg[256];
	struct sbuf req, body;

	*n = 0;
	sbuf_init(&req);
	sbuf_init(&body);
	proto_begin(&req, "nodes");
	if (!fs->operator)
		proto_arg(&req, "user", fs->user);
	proto_end(&req);
	if (khd_call(fs, &req, &body, code, sizeof(code), msg, sizeof(msg)) == 0)
		for (char *l = body.s; l && *l && *n < MAXNODES;) {
			int r;
			if (sscanf(l, "%d", &r) == 1)
				ranks[(*n)++] = r;
			l = strchr(l, '\n');
			l = l ? l + 1 : NULL;
		}
	sbuf_free(&req);
	sbuf_free(&body);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = G;
	struct dirbuf d = {NULL, 0};
	uint64_t a, b;
	char name[32];
	int k = kind_of(ino, &a, &b);
	(void)fi;

	if (!exists(fs, k, a, b)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	dir_add(req, &d, ".", ino);
	dir_add(req, &d, "..", FUSE_ROOT_ID);
	switch (k) {
	case K_ROOT:
		dir_add(req, &d, "clone", ino_of(K_CLONE, 0, 0));
		dir_add(req, &d, "nodes", ino_of(K_NODES, 0, 0));
		for (int i = 1; i < MAXSESS; i++)
			if (fs->sess[i]) {
				snprintf(name, sizeof(name), "%d", i);
				dir_add(req, &d, name, ino_of(K_SESS, (uint64_t)i, 0));
			}
		break;
	case K_NODES: {
		static int ranks[MAXNODES];
		int n;
		node_ranks(fs, ranks, &n);
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "%d", ranks[i]);
			dir_add(req, &d, name, ino_of(K_NODE, (uint64_t)ranks[i], 0));
		}
		break;
	}
	case K_NODE:
		dir_add(req, &d, "status", ino_of(K_NSTATUS, a, 0));
		dir_add(req, &d, "ctl", ino_of(K_NCTL, a, 0));
		break;
	case K_SESS:
		for (size_t i = 0; i < sizeof(sessfiles) / sizeof(sessfiles[0]); i++)
			dir_add(req, &d, sessfiles[i].name, ino_of(sessfiles[i].kind, a, 0));
		for (int i = 0; i < fs->sess[a]->n; i++) {
			snprintf(name, sizeof(name), "%d", fs->sess[a]->ranks[i]);
			dir_add(req, &d, name, ino_of(K_SRANK, a, (uint64_t)i));
		}
		break;
	case K_SRANK:
		dir_add(req, &d, "stdout", ino_of(K_SROUT, a, b));
		break;
	default:
		free(d.p);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if ((size_t)off < d.size)
		fuse_reply_buf(req, d.p + off,
			       d.size - (size_t)off < size ? d.size - (size_t)off : size);
	else
		fuse_reply_buf(req, NULL, 0);
	free(d.p);
}

/* Contents of a file read whole at open. */
static void
snapshot(struct fs *fs, struct fh *h, uint64_t a)
{
	struct sess *s = h->s;
	char code[32], msg[256];

	switch (h->kind) {
	case K_CLONE:
		sbuf_printf(&h->snap, "%d\n", s->id);
		break;
	case K_STATUS:
		sbuf_printf(&h->snap, "session %d user %s", s->id, fs->user ? fs->user : "-");
		if (s->chan)
			sbuf_printf(&h->snap, " con%d nodes %d", s->chan, s->n);
		sbuf_printf(&h->snap, "\n%s\n", s->status);
		break;
	case K_ENV:
		sbuf_add(&h->snap, s->env.s ? s->env.s : "", s->env.len);
		break;
	case K_ARGS:
		sbuf_add(&h->snap, s->args.s ? s->args.s : "", s->args.len);
		break;
	case K_NSTATUS: {
		struct sbuf req, body;
		sbuf_init(&req);
		sbuf_init(&body);
		proto_begin(&req, "nodes");
		proto_end(&req);
		if (khd_call(fs, &req, &body, code, sizeof(code), msg, sizeof(msg)) == 0)
			for (char *l = body.s; l && *l;) {
				char *nl = strchr(l, '\n');
				int r;
				if (sscanf(l, "%d", &r) == 1 && (uint64_t)r == a)
					sbuf_add(&h->snap, l,
						 nl ? (size_t)(nl - l) + 1 : strlen(l));
				l = nl ? nl + 1 : NULL;
			}
		sbuf_free(&req);
		sbuf_free(&body);
		break;
	}
	}
}

static int
writable(int kind)
{
	return kind == K_CTL || kind == K_STDIN || kind == K_ENV || kind == K_NCTL;
}

static int
readable(int kind)
{
	return kind != K_STDIN && kind != K_NCTL;
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = G;
	uint64_t a, b;
	int k = kind_of(ino, &a, &b), acc = fi->flags & O_ACCMODE;
	struct fh *h;

	if (!exists(fs, k, a, b)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (k == K_ROOT || k == K_NODES || k == K_NODE || k == K_SESS || k == K_SRANK) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((acc != O_RDONLY && !writable(k)) || (acc != O_WRONLY && !readable(k))) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->kind = k;
	h->ridx = (int)b;
	h->nonblock = (fi->flags & O_NONBLOCK) != 0;
	sbuf_init(&h->snap);
	if (k == K_CLONE) {
		if ((h->s = sess_new(fs)) == NULL) {
			free(h);
			fuse_reply_err(req, ENFILE);
			return;
		}
	} else if (k != K_NSTATUS && k != K_NCTL) {
		h->s = fs->sess[a];
	}
	if (h->s)
		h->s->opens++;
	if (k == K_ENV && (fi->flags & O_TRUNC))
		sbuf_reset(&h->s->env);
	snapshot(fs, h, a);
	h->next = fs->streams; /* every open file, for the end */
	fs->streams = h;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->nonseekable =
	    k != K_CLONE && k != K_STATUS && k != K_ENV && k != K_ARGS && k != K_NSTATUS;
	fuse_reply_open(req, fi);
}

static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = G;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	(void)ino;

	for (struct fh **p = &fs->streams; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	if (h->ph)
		fuse_pollhandle_destroy(h->ph);
	if (h->kind == K_STDIN && h->s->xfd >= 0)
		send_all(h->s->xfd, "c *\n", 4);
	sbuf_free(&h->snap);
	if (h->s) {
		h->s->opens--;
		sess_maybe_free(fs, h->s);
	}
	free(h);
	fuse_reply_err(req, 0);
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	(void)ino;

	if (h->kind == K_STDOUT || h->kind == K_STDERR || h->kind == K_WAIT || h->kind == K_SROUT) {
		if (stream_ready(h)) {
			stream_reply(req, h, size);
			return;
		}
		if (h->nonblock || (fi->flags & O_NONBLOCK)) {
			fuse_reply_err(req, EAGAIN);
			return;
		}
		struct waiter *w = calloc(1, sizeof(*w));
		if (w == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		w->req = req;
		w->fh = h;
		w->size = size;
		w->s = h->s;
		w->next = h->s->waiters;
		h->s->waiters = w;
		fuse_req_interrupt_func(req, interrupted, w);
		return;
	}
	if ((size_t)off >= h->snap.len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, h->snap.s + off,
			       h->snap.len - (size_t)off < size ? h->snap.len - (size_t)off : size);
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	 struct fuse_file_info *fi)
{
	struct fs *fs = G;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	(void)ino;
	(void)off;

	if (h->kind == K_STDIN) {
		char hdr[48];
		if (h->s->xfd < 0) {
			set_status(h->s, "error: nothing runs to read stdin");
			fuse_reply_err(req, EPIPE);
			return;
		}
		snprintf(hdr, sizeof(hdr), "i * %zu\n", size);
		if (send_all(h->s->xfd, hdr, strlen(hdr)) < 0 ||
		    send_all(h->s->xfd, buf, size) < 0) {
			fuse_reply_err(req, EPIPE);
			return;
		}
		fuse_reply_write(req, size);
		return;
	}
	if (h->kind == K_ENV) {
		sbuf_add(&h->s->env, buf, size);
		if (size && buf[size - 1] != '\n')
			sbuf_adds(&h->s->env, "\n");
		fuse_reply_write(req, size);
		return;
	}
	if (h->kind == K_NCTL) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	/* ctl: one command a line; the first that fails fails the write. */
	char *copy = malloc(size + 1);
	if (copy == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, buf, size);
	copy[size] = '\0';
	int rc = 0;
	for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && rc == 0;
	     l = strtok_r(NULL, "\n", &save))
		rc = ctl_line(fs, h->s, l, req, size);
	free(copy);
	if (rc > 0)
		fuse_reply_err(req, rc);
	else if (rc == 0)
		fuse_reply_write(req, size);
}

static void
op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	unsigned ev = 0;
	(void)ino;

	if (h->kind == K_STDOUT || h->kind == K_STDERR || h->kind == K_WAIT || h->kind == K_SROUT) {
		if (stream_ready(h))
			ev |= POLLIN;
		if (ph) {
			if (h->ph)
				fuse_pollhandle_destroy(h->ph);
			h->ph = ph;
		}
	} else {
		ev = (readable(h->kind) ? POLLIN : 0) | (writable(h->kind) ? POLLOUT : 0);
		if (ph)
			fuse_pollhandle_destroy(ph);
	}
	fuse_reply_poll(req, ev);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readdir = op_readdir,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .write = op_write,
    .poll = op_poll,
};

/* ---- main ---- */

static const char usage[] = "usage: khfs [-c CRED USER | --operator] [--socket PATH] MOUNTPOINT\n";

int
khfs_main(int argc, char *argv[])
{
	struct fs fs;
	const char *mnt = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_buf fbuf = {.mem = NULL};
	sigset_t mask;
	int sfd, rc = 0;

	memset(&fs, 0, sizeof(fs));
	fs.cred = getenv("KH_CRED");
	fs.user = getenv("KH_USER");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 2 < argc) {
			fs.cred = argv[++i];
			fs.user = argv[++i];
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			fs.sock = argv[++i];
		} else if (strcmp(argv[i], "--operator") == 0) {
			fs.operator= 1;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (argv[i][0] == '-' || mnt) {
			fprintf(stderr, "khfs: unexpected argument '%.40s'\n%s", argv[i], usage);
			return 2;
		} else {
			mnt = argv[i];
		}
	}
	if (mnt == NULL) {
		fprintf(stderr, "khfs: no mount point given\n%s", usage);
		return 2;
	}
	if (fs.operator) {
		fs.cred = NULL;
	} else if (fs.cred == NULL || fs.user == NULL || !valid_name(fs.user)) {
		fprintf(stderr, "khfs: a principal is needed: -c CRED USER (or KH_CRED and "
				"KH_USER), or --operator\n");
		return 2;
	}
	fs.sock = client_socket_path(fs.sock);
	G = &fs;
	fuse_opt_add_arg(&args, "khfs");
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, "fsname=khfs,subtype=khfs");
	fs.se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
	fuse_opt_free_args(&args);
	if (fs.se == NULL) {
		fprintf(stderr, "khfs: cannot start a FUSE session\n");
		return 1;
	}
	if (fuse_session_mount(fs.se, mnt) != 0) {
		fprintf(stderr, "khfs: cannot mount on %s\n", mnt);
		fuse_session_destroy(fs.se);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	fs.ep = epoll_create1(EPOLL_CLOEXEC);
	int ffd = fuse_session_fd(fs.se);
	fcntl(ffd, F_SETFL, fcntl(ffd, F_GETFL) | O_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &fs};
	epoll_ctl(fs.ep, EPOLL_CTL_ADD, ffd, &ev);
	ev.data.ptr = &sfd;
	epoll_ctl(fs.ep, EPOLL_CTL_ADD, sfd, &ev);

	while (!fuse_session_exited(fs.se)) {
		struct epoll_event evs[64];
		int booting = 0;
		for (int i = 1; i < MAXSESS; i++)
			booting |= fs.sess[i] && fs.sess[i]->boot_req;
		int n = epoll_wait(fs.ep, evs, 64, booting ? 50 : -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 1; booting && i < MAXSESS; i++)
			if (fs.sess[i] && fs.sess[i]->boot_req)
				boot_tick(&fs, fs.sess[i]);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &fs) {
				int r = fuse_session_receive_buf(fs.se, &fbuf);
				if (r == -EAGAIN || r == -EINTR)
					continue;
				if (r <= 0) {
					fuse_session_exit(fs.se);
					break;
				}
				fuse_session_process_buf(fs.se, &fbuf);
			} else if (evs[i].data.ptr == &sfd) {
				fuse_session_exit(fs.se);
			} else if (evs[i].data.u64 >> 63) {
				struct sess *s = fs.sess[evs[i].data.u64 & 0xffff];
				if (s && s->job) {
					job_end(&fs, s, 0);
					sess_maybe_free(&fs, s);
				}
			} else if (evs[i].data.u64 >> 62) {
				struct sess *s = fs.sess[evs[i].data.u64 & 0xffff];
				if (s && s->xfd >= 0)
					exec_readable(&fs, s);
			}
		}
	}
	/* Unmounting: every session ends, its nodes go back. */
	while (fs.streams) {
		struct fh *h = fs.streams;
		fs.streams = h->next;
		if (h->ph)
			fuse_pollhandle_destroy(h->ph);
		sbuf_free(&h->snap);
		free(h);
	}
	for (int i = 1; i < MAXSESS; i++) {
		struct sess *s = fs.sess[i];
		if (s == NULL)
			continue;
		s->opens = 0;
		s->done = 1;
		while (s->waiters) {
			struct waiter *w = s->waiters;
			s->waiters = w->next;
			fuse_reply_err(w->req, EINTR);
			free(w);
		}
		if (s->boot_req) {
			fuse_reply_err(s->boot_req, EINTR);
			s->boot_req = NULL;
		}
		if (s->job) {
			kill(s->job->pid, SIGKILL);
			job_end(&fs, s, EINTR);
		}
		sess_maybe_free(&fs, s);
	}
	free(fbuf.mem);
	fuse_session_unmount(fs.se);
	fuse_session_destroy(fs.se);
	close(fs.ep);
	close(sfd);
	return rc;
}
