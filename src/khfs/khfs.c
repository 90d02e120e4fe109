/* khfs: the facility as files.  One thread runs an epoll loop over the
 * FUSE session's descriptor, the exec streams of its sessions (khd's exec
 * verb), the channels' console streams it attached (console files and
 * splices), the khdo children that load and boot nodes, and a signalfd.
 * A read that must wait (stdout, wait, console) keeps its request and is
 * answered later (deferred reply), or EAGAIN under O_NONBLOCK, or EINTR
 * when the reader is interrupted.  Short requests to khd (get, release,
 * nodes, reset...) are made synchronously on a fresh connection with a
 * timeout; a query is answered from one nodes listing. */
#define FUSE_USE_VERSION 34
#include "khfs/khfs.h"
#include "khfs/query.h"
#include "common/proto.h"
#include "common/sbuf.h"
#include "common/util.h"
#include "exec/frame.h"
#include "tools/args.h"
#include "tools/client.h"
#include "tools/xclient.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
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
#define XOUTMAX	 (1u << 20) /* bytes queued for a session's exec stream */
#define MAXTAPS	 1024
#define MAXQ	 65536

/* What an epoll event is for: data.u64 = tag << 56 | id. */
enum { EV_FUSE = 1, EV_SIG, EV_JOB, EV_EXEC, EV_TAP };

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
	K_SRANK,    /* N/RANK */
	K_SROUT,    /* N/RANK/stdout */
	K_NCONSOLE, /* nodes/RANK/console */
	K_QDIR,	    /* query/TERM/... (a: the query's number; 0 is query/) */
	K_QSTATUS,
	K_QCTL,
	K_QNODE, /* query/.../RANK (a: query, b: rank) */
	K_DOMAINS,
	K_DOMAIN, /* domains/NETID */
	K_DMEMBERS,
	K_DSTATUS,
	K_CHANNELS,
	K_CHAN, /* channels/con<C> */
	K_CSTATUS,
	K_CCTL,
	K_CCONSOLE,
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
struct sess;

struct waiter { /* a read answered when its stream has data or ends */
	fuse_req_t req;
	struct fh *fh;
	size_t size;
	uint64_t koff; /* the read's offset in the file */
	struct waiter *next;
};

struct wpend { /* a stdin write held while the exec stream's queue is full */
	fuse_req_t req;
	size_t size;
	struct sess *s;
	struct wpend *next;
};

struct job { /* a khdo child: load or boot */
	pid_t pid;
	int pidfd, errfd;
	struct sbuf errtext;
	fuse_req_t req; /* the ctl write it answers */
	size_t wsize;
	int boot;
};

/* A console stream of one channel (khd's attach, mode=prefix): its lines
 * of the wanted ranks go to log, with or without their "[RANK] ". */
struct ctap {
	int id, fd, chan;
	int strip;
	unsigned char *want; /* bitmap of ranks, NULL: all */
	struct sbuf part;
	struct olog own, *log;
	int eof;
};

/* splice PATH: the source's lines go to the stdin of dst's run dgen.  The
 * source is a session's log (its run sgen) or consoles (taps). */
struct splice {
	struct sess *dst;
	uint64_t dgen;
	struct sess *src; /* NULL: consoles */
	int which;	  /* K_STDOUT, K_STDERR or K_SROUT */
	int ridx;
	uint64_t sgen, off;
	int taps[64];
	int ntaps;
	struct olog log; /* the consoles' lines */
	char path[256];
	struct splice *next;
};

struct sess {
	int id;
	int opens, refs; /* open files; splices reading it */
	int stdins;	 /* open stdin files */
	int chan, owned; /* con<C>; allocated by this session (released at its end) */
	int ranks[MAXNODES];
	int n;
	struct sbuf block;	  /* the control block */
	struct sbuf env, args;	  /* NAME=VALUE lines; the last exec's command */
	char status[512];	  /* the last command's outcome */
	int xfd;		  /* exec stream to khd, or -1 */
	struct sbuf xin, xout;	  /* its bytes not yet parsed; not yet sent */
	int xpoll;		  /* EPOLLOUT asked for xfd */
	uint64_t gen;		  /* execs so far */
	int running, done, ended; /* an exec started / all its processes ended */
	struct olog out, err, wait;
	struct olog *rout;	  /* per rank of ranks[] */
	struct sbuf *pout, *perr; /* partial lines per rank */
	char *gone;		  /* per rank: its process of this run ended */
	struct job *job;
	uint64_t boot_deadline;
	fuse_req_t boot_req;
	size_t boot_wsize;
};

struct fh {
	int kind;
	struct sess *s;
	int ridx; /* index into s->ranks for K_SROUT */
	uint64_t ino;
	uint64_t off; /* streams: where the next read starts, in the log */
	uint64_t gen; /* session streams: the run off is in */
	/* Streams are seekable: a file offset k is log offset k - kbase.  A
	 * new run starts at the offset the file had reached (kpos), so runs
	 * follow each other in the file; a reader skipped past dropped bytes
	 * moves kbase. */
	int64_t kbase;
	uint64_t kpos;
	struct fuse_pollhandle *ph;
	struct sbuf snap; /* static files: the contents at open */
	int nonblock;
	int tap;	 /* console files: their stream, else 0 */
	struct fh *next; /* on the fs's list of open files */
};

struct outcome { /* the last command written to a ctl file outside sessions */
	uint64_t ino;
	char text[256];
	struct outcome *next;
};

struct query {
	char *path; /* "user=alice/state=running" */
	struct kq q;
};

struct fs {
	const char *sock, *user, *cred;
	char mnt[PATH_MAX];
	int operator;
	struct fuse_session *se;
	int ep;
	struct sess *sess[MAXSESS];
	struct fh *streams;
	struct waiter *waiters;
	struct wpend *wpend;
	struct ctap *taps[MAXTAPS];
	struct splice *splices;
	struct query *q;
	int nq, qcap;
	struct outcome *outcomes;
	char host[64];
	int lasterr_khd;
};

static struct fs *G; /* the one file system (FUSE callbacks, interrupts) */

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
log_of(struct fs *fs, struct fh *h)
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
	case K_NCONSOLE:
	case K_CCONSOLE:
		return fs->taps[h->tap] ? fs->taps[h->tap]->log : NULL;
	}
	return NULL;
}

static int
is_stream(int kind)
{
	return kind == K_STDOUT || kind == K_STDERR || kind == K_WAIT || kind == K_SROUT ||
	       kind == K_NCONSOLE || kind == K_CCONSOLE;
}

/* A session's stream file read on into a new run (an exec since it was
 * opened or last read) reads the new run from its start. */
static void
fh_sync(struct fh *h)
{
	if (h->s && h->kind != K_NCONSOLE && h->kind != K_CCONSOLE && h->gen != h->s->gen) {
		h->gen = h->s->gen;
		h->off = 0;
		h->kbase = (int64_t)h->kpos;
	}
}

/* A read at file offset koff: where in the log it starts. */
static void
fh_seek(struct fh *h, uint64_t koff)
{
	fh_sync(h);
	int64_t p = (int64_t)koff - h->kbase;
	h->off = p < 0 ? 0 : (uint64_t)p;
}

/* The file's size for fstat and SEEK_END: its offset of what can be read
 * now without waiting (0 while nothing can). */
static uint64_t
stream_size(struct fs *fs, struct fh *h)
{
	struct olog *l = log_of(fs, h);
	if (l == NULL)
		return h->kpos;
	fh_sync(h);
	uint64_t end = l->base + l->b.len;
	if (h->kind == K_WAIT && !h->s->done && h->s->running)
		end = 0;
	int64_t k = h->kbase + (int64_t)end;
	return k < 0 ? 0 : (uint64_t)k;
}

/* Is a stream read of h answerable now: data, or the end. */
static int
stream_ready(struct fs *fs, struct fh *h)
{
	struct olog *l = log_of(fs, h);
	if (l == NULL)
		return 1;
	fh_sync(h);
	if (h->kind == K_NCONSOLE || h->kind == K_CCONSOLE)
		return l->base + l->b.len > h->off || fs->taps[h->tap]->eof;
	if (h->kind == K_WAIT)
		return h->s->done || !h->s->running;
	return l->base + l->b.len > h->off || h->s->done || !h->s->running;
}

/* Answer a stream read at file offset koff: bytes from the handle's
 * offset (skipping what was dropped), or 0 at the end. */
static void
stream_reply(struct fs *fs, fuse_req_t req, struct fh *h, size_t size, uint64_t koff)
{
	struct olog *l = log_of(fs, h);
	if (l == NULL) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	fh_seek(h, koff);
	if (h->off < l->base)
		h->off = l->base;
	if (h->off > l->base + l->b.len)
		h->off = l->base + l->b.len;
	h->kbase = (int64_t)koff - (int64_t)h->off;
	size_t avail = (size_t)(l->base + l->b.len - h->off);
	size_t n = avail < size ? avail : size;
	fuse_reply_buf(req, n ? l->b.s + (h->off - l->base) : NULL, n);
	h->off += n;
	h->kpos = koff + n;
}

/* Answer the reads and polls that can be answered now. */
static void
wake(struct fs *fs)
{
	struct waiter **w = &fs->waiters;
	while (*w) {
		struct waiter *x = *w;
		fh_seek(x->fh, x->koff);
		if (stream_ready(fs, x->fh)) {
			*w = x->next;
			stream_reply(fs, x->req, x->fh, x->size, x->koff);
			free(x);
			continue;
		}
		w = &x->next;
	}
	for (struct fh *h = fs->streams; h; h = h->next)
		if (h->ph && is_stream(h->kind) && stream_ready(fs, h)) {
			fuse_lowlevel_notify_poll(h->ph);
			fuse_pollhandle_destroy(h->ph);
			h->ph = NULL;
		}
}

static void
interrupted(fuse_req_t req, void *data)
{
	struct waiter *x = data;
	struct waiter **w = &G->waiters;
	for (; *w; w = &(*w)->next)
		if (*w == x) {
			*w = x->next;
			fuse_reply_err(req, EINTR);
			free(x);
			return;
		}
}

static void
wpend_interrupted(fuse_req_t req, void *data)
{
	struct wpend *x = data;
	struct wpend **w = &G->wpend;
	for (; *w; w = &(*w)->next)
		if (*w == x) {
			*w = x->next;
			fuse_reply_err(req, EINTR);
			free(x);
			return;
		}
}

/* Answer the stdin writes of s held for room (all of them when s's stream
 * is gone: err). */
static void
wpend_answer(struct fs *fs, struct sess *s, int err)
{
	struct wpend **w = &fs->wpend;
	while (*w) {
		struct wpend *x = *w;
		if (x->s == s && (err || s->xout.len < XOUTMAX)) {
			*w = x->next;
			if (err)
				fuse_reply_err(x->req, err);
			else
				fuse_reply_write(x->req, x->size);
			free(x);
			continue;
		}
		w = &x->next;
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
		sbuf_init(&s->xout);
		set_status(s, "new");
		fs->sess[i] = s;
		return s;
	}
	return NULL;
}

static uint64_t
ev_tag(int tag, uint64_t id)
{
	return ((uint64_t)tag << 56) | id;
}

static void
exec_close(struct fs *fs, struct sess *s)
{
	if (s->xfd >= 0) {
		epoll_ctl(fs->ep, EPOLL_CTL_DEL, s->xfd, NULL);
		close(s->xfd);
		s->xfd = -1;
	}
	sbuf_reset(&s->xout);
	s->xpoll = 0;
	wpend_answer(fs, s, EPIPE);
}

/* Send what the exec stream will take now; ask for EPOLLOUT while some is
 * left.  Frames are queued whole, so a record is never cut by another. */
static void
xout_flush(struct fs *fs, struct sess *s)
{
	while (s->xfd >= 0 && s->xout.len > 0) {
		ssize_t w = send(s->xfd, s->xout.s, s->xout.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break; /* EAGAIN; a lost khd shows on the read side */
		sbuf_consume(&s->xout, (size_t)w);
	}
	int want = s->xfd >= 0 && s->xout.len > 0;
	if (s->xfd >= 0 && want != s->xpoll) {
		struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
					 .data.u64 = ev_tag(EV_EXEC, (uint64_t)s->id)};
		epoll_ctl(fs->ep, EPOLL_CTL_MOD, s->xfd, &ev);
		s->xpoll = want;
	}
	wpend_answer(fs, s, 0);
}

static void
xout_put(struct fs *fs, struct sess *s, const char *p, size_t n)
{
	if (s->xfd < 0)
		return;
	sbuf_add(&s->xout, p, n);
	xout_flush(fs, s);
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
	free(s->gone);
	s->rout = NULL;
	s->pout = s->perr = NULL;
	s->gone = NULL;
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
static void splices_drop(struct fs *fs, struct sess *dst);

/* The session ends when nothing holds it: no open file, no process. */
static void
sess_maybe_free(struct fs *fs, struct sess *s)
{
	if (s->opens > 0 || s->refs > 0 || (s->running && !s->done) || s->job)
		return;
	fs->sess[s->id] = NULL;
	splices_drop(fs, s);
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
	sbuf_free(&s->xout);
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
	wake(fs);
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
			s->gone[i] = 1;
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
	wake(fs);
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

/* res COUNT [TYPE] [khget options] | res con<C>.  The options are khget's
 * (-n NETIDS, -p NUM, -i, -x, -t TYPE), parsed by khget's own parser. */
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
	if (nw < 2) {
		set_status(s,
			   "error: res COUNT [TYPE] [-n NETIDS] [-p NUM] [-i] [-x], or res con<C>");
		return EINVAL;
	}
	sbuf_init(&req);
	sbuf_init(&body);
	if (strncmp(w[1], "con", 3) == 0) {
		if (nw != 2) {
			set_status(s, "error: res con<C> takes nothing more");
			return EINVAL;
		}
		proto_begin(&req, "block");
		auth_args(fs, &req);
		proto_arg(&req, "chan", w[1] + 3);
		proto_end(&req);
	} else {
		/* khget [options] -c CRED USER COUNT [-t TYPE]: the options as
		 * given, a TYPE word as -t; -c last, so it is ours. */
		char *av[80], err[200];
		struct tool_opts topts;
		int ac = 0, type = 0;
		for (int i = 2; i < nw && ac < 70; i++) {
			const char *o = w[i];
			if (o[0] == '-' && (o[1] == '-' || strpbrk(o + 1, "ch"))) {
				set_status(s, "error: res: %.40s is not for res", o);
				return EINVAL;
			}
			if (o[0] == '-' && o[1]) {
				/* A flag taking a value (-n, -p, -t) as the last
				 * letter takes the next word. */
				size_t k = strcspn(o + 1, "npt");
				av[ac++] = w[i];
				if (o[1 + k] != '\0' && o[2 + k] == '\0' && i + 1 < nw)
					av[ac++] = w[++i];
				continue;
			}
			if (type++) {
				set_status(s, "error: res: one TYPE at most ('%.40s')", o);
				return EINVAL;
			}
			av[ac++] = "-t";
			av[ac++] = w[i];
		}
		av[ac++] = (char *)fs->user;
		av[ac++] = w[1];
		av[ac++] = "-c";
		av[ac++] = (char *)fs->cred;
		av[ac] = NULL;
		if (args_khget(ac, av, &req, &topts, err, sizeof(err)) < 0) {
			sbuf_free(&req);
			set_status(s, "error: res: %s", err);
			return EINVAL;
		}
	}
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
	s->gone = calloc((size_t)s->n, 1);
	if (!s->rout || !s->pout || !s->perr || !s->gone)
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
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_tag(EV_EXEC, (uint64_t)s->id)};
	epoll_ctl(fs->ep, EPOLL_CTL_ADD, fd, &ev);
	s->gen++;
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
		s->gone[i] = 0;
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
	xout_put(G, s, f, strlen(f));
	set_status(s, "signal %d sent", (int)sig);
	return 0;
}

static int
c_release(struct fs *fs, struct sess *s)
{
	if (s->n == 0) {
		set_status(s, "error: no nodes in the session");
		return ENXIO;
	}
	/* What runs is killed: closing its exec stream makes khd SIGKILL it.
	 * The run ends here (N/wait ends with the lines already come): the
	 * ends of processes on nodes given back are not waited for. */
	if (s->xfd >= 0)
		stream_end(fs, s, NULL);
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
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_tag(EV_JOB, (uint64_t)s->id)};
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

/* ---- the facility: listings from khd ---- */

/* khd's nodes listing (the principal's nodes, or all for the operator, or
 * all when every is set) into body and l.  Returns 0, or -1 (khd's reason
 * in why). */
static int
fetch_nodes(struct fs *fs, int every, struct sbuf *body, struct kq_list *l, char *why, size_t wl)
{
	char code[32];
	struct sbuf req;
	int rc;

	sbuf_init(&req);
	proto_begin(&req, "nodes");
	if (!fs->operator&& !every)
		proto_arg(&req, "user", fs->user);
	proto_end(&req);
	rc = khd_call(fs, &req, body, code, sizeof(code), why, wl);
	sbuf_free(&req);
	l->v = NULL;
	l->n = 0;
	if (rc != 0)
		return -1;
	if (kq_parse_nodes(body->s, body->len, l) < 0) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	return 0;
}

/* The facility's host name (khd's info), asked once; "" when unknown. */
static const char *
facility_host(struct fs *fs)
{
	char code[32], msg[128];
	struct sbuf req, body;

	if (fs->host[0])
		return fs->host;
	sbuf_init(&req);
	sbuf_init(&body);
	proto_begin(&req, "info");
	proto_end(&req);
	if (khd_call(fs, &req, &body, code, sizeof(code), msg, sizeof(msg)) == 0 && body.s) {
		const char *h = strstr(body.s, " host ");
		if (h)
			snprintf(fs->host, sizeof(fs->host), "%.*s", (int)strcspn(h + 6, " \n"),
				 h + 6);
	}
	sbuf_free(&req);
	sbuf_free(&body);
	return fs->host;
}

/* The query's nodes, out of a listing: their indexes in l into idx. */
static int
query_nodes(struct fs *fs, const struct kq *q, const struct kq_list *l, int *idx)
{
	int n = 0, host = 0;
	for (int i = 0; i < q->n; i++)
		host |= q->t[i].key == KQ_HOST;
	const char *h = host ? facility_host(fs) : NULL;
	for (int i = 0; i < l->n; i++)
		if (kq_match(q, &l->v[i], h))
			idx[n++] = i;
	return n;
}

/* The query numbered by its path below query/ ("" is query/ itself): an
 * existing one, or a new one; -1 when the table is full. */
static int
query_intern(struct fs *fs, const char *path, const struct kq *q)
{
	for (int i = 0; i < fs->nq; i++)
		if (strcmp(fs->q[i].path, path) == 0)
			return i;
	if (fs->nq == MAXQ)
		return -1;
	if (fs->nq == fs->qcap) {
		fs->qcap = fs->qcap ? fs->qcap * 2 : 64;
		fs->q = realloc(fs->q, sizeof(*fs->q) * (size_t)fs->qcap);
		if (fs->q == NULL)
			abort();
	}
	fs->q[fs->nq].path = strdup(path);
	fs->q[fs->nq].q = *q;
	if (fs->q[fs->nq].path == NULL)
		abort();
	return fs->nq++;
}

static struct outcome *
outcome_of(struct fs *fs, uint64_t ino, int make)
{
	for (struct outcome *o = fs->outcomes; o; o = o->next)
		if (o->ino == ino)
			return o;
	if (!make)
		return NULL;
	struct outcome *o = calloc(1, sizeof(*o));
	if (o == NULL)
		abort();
	o->ino = ino;
	o->next = fs->outcomes;
	fs->outcomes = o;
	return o;
}

static void set_outcome(struct fs *fs, uint64_t ino, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
set_outcome(struct fs *fs, uint64_t ino, const char *fmt, ...)
{
	struct outcome *o = outcome_of(fs, ino, 1);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->text, sizeof(o->text), fmt, ap);
	va_end(ap);
}

/* ---- console streams (khd's attach) ---- */

static void
tap_close(struct fs *fs, int id)
{
	struct ctap *t = fs->taps[id];
	if (t == NULL)
		return;
	if (t->fd >= 0) {
		epoll_ctl(fs->ep, EPOLL_CTL_DEL, t->fd, NULL);
		close(t->fd);
	}
	free(t->want);
	sbuf_free(&t->part);
	olog_free(&t->own);
	free(t);
	fs->taps[id] = NULL;
}

/* Attach to channel chan's console, mode=prefix: writes to the nodes of
 * ranks (a targets list; NULL: the whole channel), none when ro.  Lines go
 * to log (NULL: the tap's own).  Returns the tap's id, or -errno with the
 * reason in why. */
static int
tap_open(struct fs *fs, int chan, const char *ranks, int ro, int strip, struct olog *log, char *why,
	 size_t wl)
{
	char num[24], line[512];
	struct timeval tv = {10, 0};
	struct sbuf req;
	size_t got = 0;
	int id, fd;

	if (fs->cred == NULL) {
		snprintf(why, wl, "consoles need a principal (-c CRED USER)");
		return -EACCES;
	}
	for (id = 1; id < MAXTAPS && fs->taps[id]; id++)
		;
	if (id == MAXTAPS) {
		snprintf(why, wl, "too many consoles open");
		return -EMFILE;
	}
	if ((fd = client_connect(fs->sock, why, wl)) < 0)
		return -EIO;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sbuf_init(&req);
	proto_begin(&req, "attach");
	auth_args(fs, &req);
	snprintf(num, sizeof(num), "%d", chan);
	proto_arg(&req, "chan", num);
	proto_arg(&req, "mode", "prefix");
	if (ro)
		proto_arg(&req, "ro", "1");
	if (ranks)
		proto_arg(&req, "ranks", ranks);
	proto_end(&req);
	int rc = send_all(fd, req.s, req.len);
	sbuf_free(&req);
	/* The reply line, a byte at a time: the stream follows it. */
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
		snprintf(why, wl, "lost khd");
		return -EIO;
	}
	line[got - 1] = '\0';
	if (strcmp(line, "ok") != 0) {
		char code[32] = "internal", *sp = strchr(line + 4, ' ');
		close(fd);
		if (strncmp(line, "err ", 4) == 0 && sp) {
			snprintf(code, sizeof(code), "%.*s", (int)(sp - line - 4), line + 4);
			snprintf(why, wl, "%s", sp + 1);
		} else {
			snprintf(why, wl, "bad reply from khd");
		}
		return -errno_of(code);
	}
	struct ctap *t = calloc(1, sizeof(*t));
	if (t == NULL)
		abort();
	t->id = id;
	t->fd = fd;
	t->chan = chan;
	t->strip = strip;
	t->log = log ? log : &t->own;
	sbuf_init(&t->part);
	fs->taps[id] = t;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_tag(EV_TAP, (uint64_t)id)};
	epoll_ctl(fs->ep, EPOLL_CTL_ADD, fd, &ev);
	return id;
}

static void
tap_want(struct ctap *t, int rank)
{
	if (rank < 0 || rank >= MAXNODES)
		return;
	if (t->want == NULL && (t->want = calloc(MAXNODES / 8, 1)) == NULL)
		abort();
	t->want[rank / 8] |= (unsigned char)(1u << (rank % 8));
}

/* "[RANK] text\n": the node's line, kept when the tap wants RANK. */
static void
tap_line(struct ctap *t, const char *l, size_t n)
{
	char *end;
	long r = -1;

	if (n > 1 && l[0] == '[' && l[1] >= '0' && l[1] <= '9') {
		r = strtol(l + 1, &end, 10);
		if (end >= l + n - 1 || end[0] != ']' || end[1] != ' ')
			r = -1;
	}
	if (r < 0) { /* khd's own notes ("[khd: N bytes dropped]") */
		if (t->want == NULL && !t->strip)
			olog_add(t->log, l, n);
		return;
	}
	if (t->want && (r >= MAXNODES || !(t->want[r / 8] & (1u << (r % 8)))))
		return;
	if (t->strip) {
		size_t skip = (size_t)(end + 2 - l);
		olog_add(t->log, l + skip, n - skip);
	} else {
		olog_add(t->log, l, n);
	}
}

static void
tap_readable(struct fs *fs, struct ctap *t)
{
	char buf[65536];
	ssize_t n = recv(t->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		epoll_ctl(fs->ep, EPOLL_CTL_DEL, t->fd, NULL);
		close(t->fd);
		t->fd = -1;
		t->eof = 1;
		wake(fs);
		return;
	}
	sbuf_add(&t->part, buf, (size_t)n);
	size_t at = 0;
	for (;;) {
		char *nl = memchr(t->part.s + at, '\n', t->part.len - at);
		if (nl == NULL)
			break;
		size_t ll = (size_t)(nl - (t->part.s + at)) + 1;
		tap_line(t, t->part.s + at, ll);
		at += ll;
	}
	sbuf_consume(&t->part, at);
	if (t->part.len > 65536) { /* khd cuts lines at 4 KiB: not a line */
		sbuf_add(&t->part, "\n", 1);
		tap_line(t, t->part.s, t->part.len);
		sbuf_reset(&t->part);
	}
	wake(fs);
}

/* Bytes for the nodes a console file was opened on. */
static int
tap_write(struct fs *fs, int id, const char *p, size_t n)
{
	struct ctap *t = fs->taps[id];
	if (t == NULL || t->fd < 0)
		return EPIPE;
	while (n > 0) {
		ssize_t w = send(t->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = t->fd, .events = POLLOUT};
			if (poll(&pf, 1, 5000) <= 0)
				return EAGAIN;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- splices ---- */

static void
splice_free(struct fs *fs, struct splice *sp)
{
	for (int i = 0; i < sp->ntaps; i++)
		tap_close(fs, sp->taps[i]);
	olog_free(&sp->log);
	struct sess *src = sp->src;
	free(sp);
	if (src) {
		src->refs--;
		sess_maybe_free(fs, src);
	}
}

static void
splice_unlink(struct fs *fs, struct splice *sp)
{
	for (struct splice **p = &fs->splices; *p; p = &(*p)->next)
		if (*p == sp) {
			*p = sp->next;
			return;
		}
}

/* A writer of dst's run dgen ended: close the processes' stdin when it
 * was the last (no splice into that run, no stdin file open). */
static void
input_ended(struct fs *fs, struct sess *dst, uint64_t dgen)
{
	if (dst->gen != dgen || dst->xfd < 0 || dst->stdins > 0)
		return;
	for (struct splice *sp = fs->splices; sp; sp = sp->next)
		if (sp->dst == dst && sp->dgen == dgen)
			return;
	xout_put(fs, dst, "c *\n", 4);
}

/* Move what the source has to the destination, whole lines in frames of
 * at most 64 KiB, while the destination's queue has room.  Returns 0 while
 * the splice goes on, 1 when its destination's run is over, 2 when its
 * source ended and everything was passed on. */
static int
splice_pump(struct fs *fs, struct splice *sp)
{
	struct sess *d = sp->dst;
	struct olog *l = NULL;
	int ended;

	if (d->gen > sp->dgen || (d->gen == sp->dgen && (d->done || d->xfd < 0)))
		return 1;
	if (sp->src) {
		struct sess *s = sp->src;
		if (s->gen < sp->sgen)
			return 0; /* its run has not started */
		ended = s->gen > sp->sgen || s->done || !s->running;
		if (s->gen == sp->sgen)
			l = sp->which == K_STDOUT	 ? &s->out
			    : sp->which == K_STDERR	 ? &s->err
			    : s->rout && sp->ridx < s->n ? &s->rout[sp->ridx]
							 : NULL;
	} else {
		l = &sp->log;
		ended = 1;
		for (int i = 0; i < sp->ntaps; i++)
			ended &= fs->taps[sp->taps[i]] == NULL || fs->taps[sp->taps[i]]->eof;
	}
	if (d->gen < sp->dgen)
		return 0; /* the destination's run has not started */
	while (l && d->xout.len < XOUTMAX) {
		if (sp->off < l->base)
			sp->off = l->base;
		size_t avail = (size_t)(l->base + l->b.len - sp->off), n, addnl = 0;
		if (avail == 0)
			break;
		const char *p = l->b.s + (sp->off - l->base);
		n = avail < 65536 ? avail : 65536;
		const char *nl = memrchr(p, '\n', n);
		if (nl)
			n = (size_t)(nl - p) + 1;
		else if (n < 65536 && !ended)
			break; /* the rest of a line is to come */
		else if (n == avail)
			addnl = 1; /* the source's last line had no newline */
		char hdr[48];
		snprintf(hdr, sizeof(hdr), "i * %zu\n", n + addnl);
		sbuf_adds(&d->xout, hdr);
		sbuf_add(&d->xout, p, n);
		if (addnl)
			sbuf_adds(&d->xout, "\n");
		sp->off += n;
	}
	xout_flush(fs, d);
	if (!ended || (l && sp->off < l->base + l->b.len))
		return 0;
	return 2;
}

/* Pump every splice; those that are over go. */
static void
pump_all(struct fs *fs)
{
	for (int again = 1; again;) {
		again = 0;
		for (struct splice *sp = fs->splices; sp; sp = sp->next) {
			int r = splice_pump(fs, sp);
			if (r == 0)
				continue;
			struct sess *d = sp->dst;
			uint64_t dgen = sp->dgen;
			splice_unlink(fs, sp);
			if (r == 2)
				input_ended(fs, d, dgen);
			splice_free(fs, sp); /* may end sessions: start over */
			again = 1;
			break;
		}
	}
}

static void
splices_drop(struct fs *fs, struct sess *dst)
{
	for (int again = 1; again;) {
		again = 0;
		for (struct splice *sp = fs->splices; sp; sp = sp->next)
			if (sp->dst == dst) {
				splice_unlink(fs, sp);
				splice_free(fs, sp);
				again = 1;
				break;
			}
	}
}

/* A run of s as a splice sees it: the one going on, else the next. */
static uint64_t
run_of(struct sess *s)
{
	return s->running && !s->done ? s->gen : s->gen + 1;
}

/* splice PATH: PATH below the mount point (or absolute, inside it) names
 * a session (M, M/stdout, M/stderr), one of its nodes (M/RANK[/stdout]), or
 * nodes whose consoles are read (nodes/RANK, query/..., channels/con<C>,
 * domains/NETID). */
static int
c_splice(struct fs *fs, struct sess *s, char **w, int nw)
{
	char path[256], *c[32], why[256];
	int nc = 0;
	uint64_t v;

	if (nw != 2) {
		set_status(s, "error: splice PATH");
		return EINVAL;
	}
	const char *p = w[1];
	size_t ml = strlen(fs->mnt);
	if (p[0] == '/') {
		if (strncmp(p, fs->mnt, ml) != 0 || (p[ml] != '/' && p[ml] != '\0')) {
			set_status(s, "error: splice %.200s: not in this khfs (%s)", p, fs->mnt);
			return EXDEV;
		}
		p += ml;
	}
	snprintf(path, sizeof(path), "%s", p);
	for (char *save = NULL, *tok = strtok_r(path, "/", &save); tok && nc < 32;
	     tok = strtok_r(NULL, "/", &save))
		if (strcmp(tok, ".") != 0)
			c[nc++] = tok;
	if (nc == 0) {
		set_status(s, "error: splice %.200s: no output there", w[1]);
		return EINVAL;
	}
	struct splice *sp = calloc(1, sizeof(*sp));
	if (sp == NULL)
		abort();
	snprintf(sp->path, sizeof(sp->path), "%s", w[1]);
	sp->dst = s;
	sp->which = K_STDOUT;
	if (parse_uint(c[0], 0, MAXSESS - 1, &v) == 0) {
		struct sess *m = fs->sess[v];
		int bad = 0;
		if (m == NULL)
			goto missing;
		if (m == s) {
			free(sp);
			set_status(s, "error: splice %.200s: a session's own output", w[1]);
			return EINVAL;
		}
		if (nc >= 2 && strcmp(c[1], "stderr") == 0)
			sp->which = K_STDERR, bad = nc > 2;
		else if (nc >= 2 && strcmp(c[1], "stdout") == 0)
			bad = nc > 2;
		else if (nc >= 2 && parse_uint(c[1], 0, MAXNODES - 1, &v) == 0) {
			if ((sp->ridx = idx_of(m, (int)v)) < 0)
				goto missing;
			sp->which = K_SROUT;
			bad = nc > 3 || (nc == 3 && strcmp(c[2], "stdout") != 0);
		} else
			bad = nc > 1;
		if (bad)
			goto missing;
		sp->src = m;
		sp->sgen = run_of(m);
		m->refs++;
	} else {
		/* Nodes: their consoles, one stream per channel. */
		struct kq q = {.n = 0};
		struct kq_term t;
		struct sbuf body;
		struct kq_list l;
		int i = 1, rank = -1, chan = -1, netid = -1;

		if (strcmp(c[0], "nodes") == 0 && nc >= 2 &&
		    parse_uint(c[1], 0, MAXNODES - 1, &v) == 0)
			rank = (int)v, i = 2;
		else if (strcmp(c[0], "channels") == 0 && nc >= 2 && strncmp(c[1], "con", 3) == 0 &&
			 parse_uint(c[1] + 3, 1, INT32_MAX, &v) == 0)
			chan = (int)v, i = 2;
		else if (strcmp(c[0], "domains") == 0 && nc >= 2 &&
			 parse_uint(c[1], 0, INT32_MAX, &v) == 0)
			netid = (int)v, i = 2;
		else if (strcmp(c[0], "query") == 0) {
			for (; i < nc && kq_term_parse(c[i], &t) == 0; i++)
				if (kq_add(&q, &t) < 0)
					goto missing;
			if (i < nc && parse_uint(c[i], 0, MAXNODES - 1, &v) == 0)
				rank = (int)v, i++;
		} else
			goto missing;
		if (i + 1 == nc && strcmp(c[i], "console") == 0 && (rank >= 0 || chan >= 0))
			i++;
		if (i < nc)
			goto missing;
		sbuf_init(&body);
		if (fetch_nodes(fs, 0, &body, &l, why, sizeof(why)) < 0) {
			sbuf_free(&body);
			free(sp);
			set_status(s, "error: %s", why);
			return EIO;
		}
		int *idx = malloc(sizeof(int) * (size_t)(l.n + 1)),
		    n = query_nodes(fs, &q, &l, idx);
		int err = 0;
		if (idx == NULL)
			abort();
		for (int j = 0; j < n && err == 0; j++) {
			struct kq_node *nd = &l.v[idx[j]];
			int hit = (rank < 0 || nd->rank == rank) && (chan < 0 || nd->chan == chan);
			if (netid >= 0) {
				struct kq_term dt = {.key = KQ_DOMAIN, .num = netid};
				struct kq dq = {.n = 0};
				kq_add(&dq, &dt);
				hit &= kq_match(&dq, nd, NULL);
			}
			if (!hit || nd->chan == 0)
				continue;
			int k;
			for (k = 0; k < sp->ntaps; k++)
				if (fs->taps[sp->taps[k]]->chan == nd->chan)
					break;
			if (k == sp->ntaps) {
				if (k == (int)(sizeof(sp->taps) / sizeof(sp->taps[0]))) {
					snprintf(why, sizeof(why), "more than %d channels", k);
					err = E2BIG;
					break;
				}
				int id =
				    tap_open(fs, nd->chan, NULL, 1, 1, &sp->log, why, sizeof(why));
				if (id < 0) {
					err = -id;
					break;
				}
				sp->taps[sp->ntaps++] = id;
			}
			tap_want(fs->taps[sp->taps[k]], nd->rank);
		}
		free(idx);
		kq_list_free(&l);
		sbuf_free(&body);
		if (err == 0 && sp->ntaps == 0) {
			err = ENXIO;
			snprintf(why, sizeof(why), "no node of yours there runs on a channel");
		}
		if (err) {
			for (int k = 0; k < sp->ntaps; k++)
				tap_close(fs, sp->taps[k]);
			free(sp);
			set_status(s, "error: splice %.200s: %s", w[1], why);
			return err;
		}
	}
	sp->dgen = run_of(s);
	sp->next = fs->splices;
	fs->splices = sp;
	set_status(s, "splice %.200s: its output to this session's stdin", w[1]);
	pump_all(fs);
	return 0;
missing:
	free(sp);
	set_status(s, "error: splice %.200s: no such file or directory", w[1]);
	return ENOENT;
}

/* ---- ctl of nodes outside sessions (nodes/RANK, query/..., channels/con<C>) ---- */

/* kill [SIGNAL] written to a ctl outside sessions: the signal (default
 * 15) to the processes this mount's sessions run on the nodes named (the
 * ranks given, or with chan > 0 every node of con<chan>), each through the
 * exec stream of the session that started it, to that node's process
 * alone ("k SIG RANK").  Returns 0 or an errno; the outcome in out. */
static int
nodes_kill(struct fs *fs, const int *ranks, int nranks, int chan, const char *what, char **w,
	   int nw, char *out, size_t ol)
{
	uint64_t sig = SIGTERM;
	int procs = 0;

	if (nw > 2 || (nw == 2 && parse_uint(w[1], 1, 64, &sig) < 0)) {
		snprintf(out, ol, "error: kill [SIGNAL NUMBER]");
		return EINVAL;
	}
	if (fs->cred == NULL) {
		snprintf(out, ol, "error: kill needs a principal (-c CRED USER)");
		return EACCES;
	}
	if (chan <= 0 && nranks == 0) {
		snprintf(out, ol, "kill: no nodes match");
		return 0;
	}
	for (int i = 1; i < MAXSESS; i++) {
		struct sess *s = fs->sess[i];
		if (s == NULL || s->xfd < 0 || !s->running || s->done || s->gone == NULL)
			continue;
		for (int k = 0; k < s->n; k++) {
			int hit = chan > 0 ? s->chan == chan : 0;
			for (int j = 0; j < nranks && !hit; j++)
				hit = ranks[j] == s->ranks[k];
			if (!hit || s->gone[k])
				continue;
			char f[48];
			snprintf(f, sizeof(f), "k %d %d\n", (int)sig, s->ranks[k]);
			xout_put(fs, s, f, strlen(f));
			procs++;
		}
	}
	if (procs == 0) {
		snprintf(out, ol, "error: kill: no process of this mount's sessions runs on %s",
			 what);
		return ESRCH;
	}
	snprintf(out, ol, "kill %d: %d process%s on %s", (int)sig, procs, procs == 1 ? "" : "es",
		 what);
	return 0;
}

/* One command for the nodes of targets (a khd targets list; "" none):
 * reset, release, addnet NETID, rmnet NETID; kill [SIGNAL] for the ranks
 * given (or con<chan>'s).  Returns 0 or an errno; the outcome in out. */
static int
nodes_ctl(struct fs *fs, const char *targets, const int *ranks, int nranks, int chan,
	  const char *what, char *line, char *out, size_t ol)
{
	char *w[8], code[32], msg[256];
	int nw = kq_split_words(line, w, 7);
	struct sbuf req, body;
	uint64_t v;

	if (nw <= 0) {
		snprintf(out, ol, nw < 0 ? "error: too many words" : "nothing done");
		return nw < 0 ? EINVAL : 0;
	}
	if (strcmp(w[0], "kill") == 0)
		return nodes_kill(fs, ranks, nranks, chan, what, w, nw, out, ol);
	int net = strcmp(w[0], "addnet") == 0 || strcmp(w[0], "rmnet") == 0;
	if (!net && strcmp(w[0], "reset") != 0 && strcmp(w[0], "release") != 0) {
		snprintf(out, ol,
			 "error: unknown command '%.40s' (reset, release, addnet NETID, rmnet "
			 "NETID, kill [SIGNAL])",
			 w[0]);
		return EINVAL;
	}
	if (nw != 1 + net || (net && parse_uint(w[1], 0, INT32_MAX, &v) < 0)) {
		snprintf(out, ol, "error: %s%s", w[0], net ? " NETID" : " takes no argument");
		return EINVAL;
	}
	if (fs->cred == NULL) {
		snprintf(out, ol, "error: %s needs a principal (-c CRED USER)", w[0]);
		return EACCES;
	}
	if (*targets == '\0') {
		snprintf(out, ol, "%s: no nodes match", w[0]);
		return 0;
	}
	sbuf_init(&req);
	sbuf_init(&body);
	proto_begin(&req, w[0]);
	auth_args(fs, &req);
	if (net)
		proto_arg(&req, "netid", w[1]);
	proto_arg(&req, "targets", targets);
	proto_end(&req);
	int rc = req.len > PROTO_MAX_LINE
		     ? 2
		     : khd_call(fs, &req, &body, code, sizeof(code), msg, sizeof(msg));
	sbuf_free(&req);
	sbuf_free(&body);
	if (rc == 2) {
		snprintf(out, ol, "error: too many nodes for one request");
		return E2BIG;
	}
	if (rc != 0) {
		snprintf(out, ol, "error: %s", msg);
		return rc < 0 ? EIO : errno_of(code);
	}
	snprintf(out, ol, "%s%s%s: %s", w[0], net ? " " : "", net ? w[1] : "", what);
	return 0;
}

/* One ctl line.  Returns 0, an errno, or -1 when the reply is deferred. */
static int
ctl_line(struct fs *fs, struct sess *s, char *line, fuse_req_t req, size_t wsize)
{
	char *w[64];
	int nw = kq_split_words(line, w, 63);

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
	if (strcmp(w[0], "splice") == 0)
		return c_splice(fs, s, w, nw);
	if (strcmp(w[0], "load") == 0 || strcmp(w[0], "boot") == 0)
		return c_job(fs, s, w, nw, req, wsize);
	set_status(s, "error: unknown command '%.40s'", w[0]);
	return EINVAL;
}

/* ---- file system operations ---- */

static int
is_dir(int kind)
{
	switch (kind) {
	case K_ROOT:
	case K_NODES:
	case K_NODE:
	case K_SESS:
	case K_SRANK:
	case K_QDIR:
	case K_QNODE:
	case K_DOMAINS:
	case K_DOMAIN:
	case K_CHANNELS:
	case K_CHAN:
		return 1;
	}
	return 0;
}

static mode_t
file_mode(int kind)
{
	switch (kind) {
	case K_NCTL:
	case K_QCTL:
	case K_CCTL:
	case K_NCONSOLE:
	case K_CCONSOLE:
		return 0666;
	}
	for (size_t i = 0; i < sizeof(sessfiles) / sizeof(sessfiles[0]); i++)
		if (sessfiles[i].kind == kind)
			return sessfiles[i].mode;
	return 0444;
}

static void
fill_attr(struct stat *st, fuse_ino_t ino, int kind)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (is_dir(kind)) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return;
	}
	st->st_mode = S_IFREG | file_mode(kind);
	st->st_nlink = 1;
}

/* Does the inode exist now?  (Nodes, domains and channels are checked by
 * lookup, against khd.) */
static int
exists(struct fs *fs, int kind, uint64_t a, uint64_t b)
{
	switch (kind) {
	case K_ROOT:
	case K_CLONE:
	case K_NODES:
	case K_DOMAINS:
	case K_CHANNELS:
	case K_DOMAIN:
	case K_DMEMBERS:
	case K_DSTATUS:
	case K_CHAN:
	case K_CSTATUS:
	case K_CCTL:
	case K_CCONSOLE:
		return 1;
	case K_NODE:
	case K_NSTATUS:
	case K_NCTL:
	case K_NCONSOLE:
		return a < MAXNODES;
	case K_QDIR:
	case K_QSTATUS:
	case K_QCTL:
		return a < (uint64_t)fs->nq;
	case K_QNODE:
		return a < (uint64_t)fs->nq && b < MAXNODES;
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

/* khd's domains listing: NETID KIND OWNER NODES SUBNET.  Is line l one the
 * principal sees (its own private domains, public and external ones)? */
static int
domain_visible(struct fs *fs, const char *l, int *netid)
{
	char kind[16], owner[40];
	if (sscanf(l, "%d %15s %39s", netid, kind, owner) != 3)
		return 0;
	return fs->operator|| strcmp(owner, fs->user) == 0 || strcmp(kind, "private") != 0;
}

static int
fetch_domains(struct fs *fs, struct sbuf *body)
{
	char code[32], msg[256];
	struct sbuf req;
	sbuf_init(&req);
	proto_begin(&req, "domains");
	proto_end(&req);
	int rc = khd_call(fs, &req, body, code, sizeof(code), msg, sizeof(msg));
	sbuf_free(&req);
	return rc == 0 ? 0 : -1;
}

/* The line of domain netid in a domains listing, or NULL. */
static const char *
domain_line(struct fs *fs, const struct sbuf *body, int netid, size_t *len)
{
	for (const char *l = body->s; l && *l;) {
		const char *nl = strchr(l, '\n');
		int id;
		if (domain_visible(fs, l, &id) && id == netid) {
			*len = nl ? (size_t)(nl - l) + 1 : strlen(l);
			return l;
		}
		l = nl ? nl + 1 : NULL;
	}
	return NULL;
}

/* Is node rank among the query's (-1: khd cannot tell)? */
static int
query_has(struct fs *fs, int qid, int rank)
{
	char why[256];
	struct sbuf body;
	struct kq_list l;
	int found = 0;

	sbuf_init(&body);
	if (fetch_nodes(fs, 0, &body, &l, why, sizeof(why)) < 0) {
		sbuf_free(&body);
		return -1;
	}
	int *idx = malloc(sizeof(int) * (size_t)(l.n + 1)), n;
	if (idx == NULL)
		abort();
	n = query_nodes(fs, &fs->q[qid].q, &l, idx);
	for (int i = 0; i < n; i++)
		found |= l.v[idx[i]].rank == rank;
	free(idx);
	kq_list_free(&l);
	sbuf_free(&body);
	return found;
}

static int
chan_visible(struct fs *fs, int chan)
{
	char why[256];
	struct sbuf body;
	struct kq_list l;
	int found = 0;

	sbuf_init(&body);
	if (fetch_nodes(fs, 0, &body, &l, why, sizeof(why)) < 0) {
		sbuf_free(&body);
		return -1;
	}
	for (int i = 0; i < l.n; i++)
		found |= l.v[i].chan == chan;
	kq_list_free(&l);
	sbuf_free(&body);
	return found;
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = G;
	uint64_t a, b, v;
	int k = kind_of(parent, &a, &b), r;

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
		else if (strcmp(name, "query") == 0)
			reply_entry(req, K_QDIR, 0, 0);
		else if (strcmp(name, "domains") == 0)
			reply_entry(req, K_DOMAINS, 0, 0);
		else if (strcmp(name, "channels") == 0)
			reply_entry(req, K_CHANNELS, 0, 0);
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
	case K_QNODE: {
		uint64_t rank = k == K_NODE ? a : b;
		if (strcmp(name, "status") == 0)
			reply_entry(req, K_NSTATUS, rank, 0);
		else if (strcmp(name, "ctl") == 0)
			reply_entry(req, K_NCTL, rank, 0);
		else if (strcmp(name, "console") == 0)
			reply_entry(req, K_NCONSOLE, rank, 0);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	case K_QDIR: {
		struct kq_term t;
		if (strcmp(name, "status") == 0) {
			reply_entry(req, K_QSTATUS, a, 0);
		} else if (strcmp(name, "ctl") == 0) {
			reply_entry(req, K_QCTL, a, 0);
		} else if (kq_term_parse(name, &t) == 0) {
			struct kq q = fs->q[a].q;
			char path[1024];
			if (snprintf(path, sizeof(path), "%s%s%s", fs->q[a].path,
				     fs->q[a].path[0] ? "/" : "", name) >= (int)sizeof(path) ||
			    kq_add(&q, &t) < 0) {
				fuse_reply_err(req, ENAMETOOLONG);
				return;
			}
			int id = query_intern(fs, path, &q);
			if (id < 0)
				fuse_reply_err(req, ENOSPC);
			else
				reply_entry(req, K_QDIR, (uint64_t)id, 0);
		} else if (parse_num(name, MAXNODES - 1, &v) == 0) {
			r = query_has(fs, (int)a, (int)v);
			if (r == 1)
				reply_entry(req, K_QNODE, a, v);
			else
				fuse_reply_err(req, r < 0 ? EIO : ENOENT);
		} else {
			fuse_reply_err(req, ENOENT);
		}
		return;
	}
	case K_DOMAINS: {
		struct sbuf body;
		size_t len;
		sbuf_init(&body);
		if (parse_num(name, INT32_MAX, &v) < 0)
			fuse_reply_err(req, ENOENT);
		else if (fetch_domains(fs, &body) < 0)
			fuse_reply_err(req, EIO);
		else if (domain_line(fs, &body, (int)v, &len) == NULL)
			fuse_reply_err(req, ENOENT);
		else
			reply_entry(req, K_DOMAIN, v, 0);
		sbuf_free(&body);
		return;
	}
	case K_DOMAIN:
		if (strcmp(name, "members") == 0)
			reply_entry(req, K_DMEMBERS, a, 0);
		else if (strcmp(name, "status") == 0)
			reply_entry(req, K_DSTATUS, a, 0);
		else
			fuse_reply_err(req, ENOENT);
		return;
	case K_CHANNELS:
		if (strncmp(name, "con", 3) != 0 || parse_uint(name + 3, 1, INT32_MAX, &v) < 0) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		r = chan_visible(fs, (int)v);
		if (r == 1)
			reply_entry(req, K_CHAN, v, 0);
		else
			fuse_reply_err(req, r < 0 ? EIO : ENOENT);
		return;
	case K_CHAN:
		if (strcmp(name, "status") == 0)
			reply_entry(req, K_CSTATUS, a, 0);
		else if (strcmp(name, "ctl") == 0)
			reply_entry(req, K_CCTL, a, 0);
		else if (strcmp(name, "console") == 0)
			reply_entry(req, K_CCONSOLE, a, 0);
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
	if (!exists(G, k, a, b)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(&st, ino, k);
	/* A stream's size is what can be read now without waiting, so that
	 * tail -f sees it grow: for a reader (lseek SEEK_END), at its offsets;
	 * else (fstat, stat) the current run's (a console's: 0, each reader
	 * has its own). */
	struct fh *h = fi ? (struct fh *)(uintptr_t)fi->fh : NULL;
	struct sess *s = k >= K_SESS && k <= K_SROUT ? G->sess[a] : NULL;
	if (h && is_stream(h->kind) && h->ino == ino) {
		st.st_size = (off_t)stream_size(G, h);
	} else if (s && (k == K_STDOUT || k == K_STDERR || k == K_SROUT || k == K_WAIT)) {
		struct olog *l = k == K_STDOUT			 ? &s->out
				 : k == K_STDERR		 ? &s->err
				 : k == K_WAIT			 ? &s->wait
				 : s->rout && b < (uint64_t)s->n ? &s->rout[b]
								 : NULL;
		if (l && (k != K_WAIT || s->done || !s->running))
			st.st_size = (off_t)(l->base + l->b.len);
	}
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

/* The node directories of a listing: under nodes/ (qid < 0) or a query. */
static void
dir_nodes(struct fs *fs, fuse_req_t req, struct dirbuf *d, int qid)
{
	char why[256], name[32];
	struct sbuf body;
	struct kq_list l;
	struct kq all = {.n = 0};

	sbuf_init(&body);
	if (fetch_nodes(fs, 0, &body, &l, why, sizeof(why)) == 0) {
		int *idx = malloc(sizeof(int) * (size_t)(l.n + 1)), n;
		if (idx == NULL)
			abort();
		n = query_nodes(fs, qid < 0 ? &all : &fs->q[qid].q, &l, idx);
		for (int i = 0; i < n; i++) {
			int r = l.v[idx[i]].rank;
			snprintf(name, sizeof(name), "%d", r);
			dir_add(req, d, name,
				qid < 0 ? ino_of(K_NODE, (uint64_t)r, 0)
					: ino_of(K_QNODE, (uint64_t)qid, (uint64_t)r));
		}
		free(idx);
		kq_list_free(&l);
	}
	sbuf_free(&body);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = G;
	struct dirbuf d = {NULL, 0};
	uint64_t a, b;
	char name[32], why[256];
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
		dir_add(req, &d, "query", ino_of(K_QDIR, 0, 0));
		dir_add(req, &d, "domains", ino_of(K_DOMAINS, 0, 0));
		dir_add(req, &d, "channels", ino_of(K_CHANNELS, 0, 0));
		for (int i = 1; i < MAXSESS; i++)
			if (fs->sess[i]) {
				snprintf(name, sizeof(name), "%d", i);
				dir_add(req, &d, name, ino_of(K_SESS, (uint64_t)i, 0));
			}
		break;
	case K_NODES:
		dir_nodes(fs, req, &d, -1);
		break;
	case K_QDIR:
		dir_add(req, &d, "status", ino_of(K_QSTATUS, a, 0));
		dir_add(req, &d, "ctl", ino_of(K_QCTL, a, 0));
		dir_nodes(fs, req, &d, (int)a);
		break;
	case K_NODE:
	case K_QNODE: {
		uint64_t rank = k == K_NODE ? a : b;
		dir_add(req, &d, "status", ino_of(K_NSTATUS, rank, 0));
		dir_add(req, &d, "ctl", ino_of(K_NCTL, rank, 0));
		dir_add(req, &d, "console", ino_of(K_NCONSOLE, rank, 0));
		break;
	}
	case K_DOMAINS: {
		struct sbuf body;
		sbuf_init(&body);
		if (fetch_domains(fs, &body) == 0)
			for (const char *l = body.s; l && *l;) {
				const char *nl = strchr(l, '\n');
				int id;
				if (domain_visible(fs, l, &id)) {
					snprintf(name, sizeof(name), "%d", id);
					dir_add(req, &d, name, ino_of(K_DOMAIN, (uint64_t)id, 0));
				}
				l = nl ? nl + 1 : NULL;
			}
		sbuf_free(&body);
		break;
	}
	case K_DOMAIN:
		dir_add(req, &d, "members", ino_of(K_DMEMBERS, a, 0));
		dir_add(req, &d, "status", ino_of(K_DSTATUS, a, 0));
		break;
	case K_CHANNELS: {
		struct sbuf body;
		struct kq_list l;
		sbuf_init(&body);
		if (fetch_nodes(fs, 0, &body, &l, why, sizeof(why)) == 0) {
			for (int i = 0; i < l.n; i++) {
				int c = l.v[i].chan, seen = 0;
				for (int j = 0; j < i && !seen; j++)
					seen = l.v[j].chan == c;
				if (c == 0 || seen)
					continue;
				snprintf(name, sizeof(name), "con%d", c);
				dir_add(req, &d, name, ino_of(K_CHAN, (uint64_t)c, 0));
			}
			kq_list_free(&l);
		}
		sbuf_free(&body);
		break;
	}
	case K_CHAN:
		dir_add(req, &d, "status", ino_of(K_CSTATUS, a, 0));
		dir_add(req, &d, "ctl", ino_of(K_CCTL, a, 0));
		dir_add(req, &d, "console", ino_of(K_CCONSOLE, a, 0));
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

/* The node lines of a listing that match: a query (qid), a channel, a
 * domain, a rank (-1: any). */
static int
snap_nodes(struct fs *fs, struct sbuf *out, int every, const struct kq *q, int rank, int ranks_only)
{
	char why[256];
	struct sbuf body;
	struct kq_list l;

	sbuf_init(&body);
	if (fetch_nodes(fs, every, &body, &l, why, sizeof(why)) < 0) {
		sbuf_free(&body);
		return EIO;
	}
	int *idx = malloc(sizeof(int) * (size_t)(l.n + 1)), n;
	if (idx == NULL)
		abort();
	n = query_nodes(fs, q, &l, idx);
	for (int i = 0; i < n; i++) {
		struct kq_node *nd = &l.v[idx[i]];
		if (rank >= 0 && nd->rank != rank)
			continue;
		if (ranks_only)
			sbuf_printf(out, "%d\n", nd->rank);
		else
			sbuf_add(out, nd->line, nd->len);
	}
	free(idx);
	kq_list_free(&l);
	sbuf_free(&body);
	return 0;
}

/* Contents of a file read whole at open.  Returns 0 or an errno. */
static int
snapshot(struct fs *fs, struct fh *h, uint64_t a)
{
	struct sess *s = h->s;
	struct kq q = {.n = 0};
	struct kq_term t = {.key = 0};

	switch (h->kind) {
	case K_CLONE:
		sbuf_printf(&h->snap, "%d\n", s->id);
		break;
	case K_STATUS:
		sbuf_printf(&h->snap, "session %d user %s", s->id, fs->user ? fs->user : "-");
		if (s->chan)
			sbuf_printf(&h->snap, " con%d nodes %d", s->chan, s->n);
		sbuf_printf(&h->snap, "\n%s\n", s->status);
		for (struct splice *sp = fs->splices; sp; sp = sp->next)
			if (sp->dst == s)
				sbuf_printf(&h->snap, "splice %s\n", sp->path);
		break;
	case K_ENV:
		sbuf_add(&h->snap, s->env.s ? s->env.s : "", s->env.len);
		break;
	case K_ARGS:
		sbuf_add(&h->snap, s->args.s ? s->args.s : "", s->args.len);
		break;
	case K_NSTATUS:
		return snap_nodes(fs, &h->snap, 1, &q, (int)a, 0);
	case K_QSTATUS:
		return snap_nodes(fs, &h->snap, 0, &fs->q[a].q, -1, 0);
	case K_CSTATUS:
		t.key = KQ_CON;
		t.num = (long)a;
		kq_add(&q, &t);
		return snap_nodes(fs, &h->snap, 0, &q, -1, 0);
	case K_DMEMBERS:
		t.key = KQ_DOMAIN;
		t.num = (long)a;
		kq_add(&q, &t);
		return snap_nodes(fs, &h->snap, 0, &q, -1, 1);
	case K_DSTATUS: {
		struct sbuf body;
		const char *l;
		size_t len;
		sbuf_init(&body);
		if (fetch_domains(fs, &body) < 0) {
			sbuf_free(&body);
			return EIO;
		}
		if ((l = domain_line(fs, &body, (int)a, &len)) != NULL)
			sbuf_add(&h->snap, l, len);
		sbuf_free(&body);
		break;
	}
	case K_NCTL:
	case K_QCTL:
	case K_CCTL: {
		struct outcome *o = outcome_of(fs, h->ino, 0);
		if (o)
			sbuf_printf(&h->snap, "%s\n", o->text);
		break;
	}
	}
	return 0;
}

static int
writable(int kind)
{
	return kind == K_CTL || kind == K_STDIN || kind == K_ENV || file_mode(kind) == 0666;
}

static int
readable(int kind)
{
	return kind != K_STDIN;
}

/* A console file: node rank's (strip its lines' prefix) or channel
 * chan's (keep it).  Returns 0 or an errno. */
static int
console_open(struct fs *fs, struct fh *h, uint64_t a, int ro)
{
	char why[256], num[24];
	int chan = (int)a, rank = -1, id;

	if (h->kind == K_NCONSOLE) {
		struct sbuf body;
		struct kq_list l;
		rank = (int)a;
		chan = -1;
		sbuf_init(&body);
		if (fetch_nodes(fs, 1, &body, &l, why, sizeof(why)) < 0) {
			sbuf_free(&body);
			return EIO;
		}
		for (int i = 0; i < l.n; i++)
			if (l.v[i].rank == rank)
				chan = fs->operator||
					       strcmp(l.v[i].owner, fs->user ? fs->user : "") == 0
					   ? l.v[i].chan
					   : -2;
		kq_list_free(&l);
		sbuf_free(&body);
		if (chan == -2)
			return EACCES;
		if (chan <= 0)
			return chan < 0 ? ENOENT : ENXIO;
		snprintf(num, sizeof(num), "%d", rank);
	}
	id = tap_open(fs, chan, rank >= 0 ? num : NULL, ro, rank >= 0, NULL, why, sizeof(why));
	if (id < 0)
		return -id;
	if (rank >= 0)
		tap_want(fs->taps[id], rank);
	h->tap = id;
	return 0;
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = G;
	uint64_t a, b;
	int k = kind_of(ino, &a, &b), acc = fi->flags & O_ACCMODE, err;
	struct fh *h;

	if (!exists(fs, k, a, b)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (is_dir(k)) {
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
	h->ino = ino;
	h->ridx = (int)b;
	h->nonblock = (fi->flags & O_NONBLOCK) != 0;
	sbuf_init(&h->snap);
	if (k <= K_SROUT && k >= K_SESS && fs->sess[a])
		h->gen = fs->sess[a]->gen;
	if (k == K_CLONE) {
		if ((h->s = sess_new(fs)) == NULL) {
			free(h);
			fuse_reply_err(req, ENFILE);
			return;
		}
	} else if (k <= K_SROUT && k >= K_SESS) {
		h->s = fs->sess[a];
	}
	err = k == K_NCONSOLE || k == K_CCONSOLE ? console_open(fs, h, a, acc == O_RDONLY)
						 : snapshot(fs, h, a);
	if (err) {
		sbuf_free(&h->snap);
		if (k == K_CLONE)
			sess_maybe_free(fs, h->s);
		free(h);
		fuse_reply_err(req, err);
		return;
	}
	if (h->s)
		h->s->opens++;
	if (k == K_STDIN)
		h->s->stdins++;
	if (k == K_ENV && (fi->flags & O_TRUNC))
		sbuf_reset(&h->s->env);
	h->next = fs->streams; /* every open file, for the end */
	fs->streams = h;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->nonseekable = k == K_CTL || k == K_STDIN;
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
	if (h->tap)
		tap_close(fs, h->tap);
	if (h->kind == K_STDIN) {
		h->s->stdins--;
		input_ended(fs, h->s, h->s->gen);
	}
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
	struct fs *fs = G;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	(void)ino;

	if (is_stream(h->kind)) {
		fh_seek(h, (uint64_t)off);
		if (stream_ready(fs, h)) {
			stream_reply(fs, req, h, size, (uint64_t)off);
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
		w->koff = (uint64_t)off;
		w->next = fs->waiters;
		fs->waiters = w;
		fuse_req_interrupt_func(req, interrupted, w);
		return;
	}
	if ((size_t)off >= h->snap.len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, h->snap.s + off,
			       h->snap.len - (size_t)off < size ? h->snap.len - (size_t)off : size);
}

/* A ctl write to nodes/RANK, query/... or channels/con<C>: each line for
 * the nodes it names now. */
static int
nodes_ctl_write(struct fs *fs, struct fh *h, char *text)
{
	char out[256], what[32];
	uint64_t a, b;
	int k = kind_of(h->ino, &a, &b), rc = 0, count = 0, chan = 0, one, *ranks = NULL;
	struct sbuf targets;

	sbuf_init(&targets);
	if (k == K_NCTL) {
		sbuf_printf(&targets, "%d", (int)a);
		snprintf(what, sizeof(what), "node %d", (int)a);
		one = (int)a;
		ranks = &one;
		count = 1;
	} else if (k == K_CCTL) {
		sbuf_printf(&targets, "con%d", (int)a);
		snprintf(what, sizeof(what), "con%d", (int)a);
		chan = (int)a;
	} else {
		char why[256];
		struct sbuf body;
		struct kq_list l;
		sbuf_init(&body);
		if (fetch_nodes(fs, 0, &body, &l, why, sizeof(why)) < 0) {
			sbuf_free(&body);
			sbuf_free(&targets);
			set_outcome(fs, h->ino, "error: %s", why);
			return EIO;
		}
		int *idx = malloc(sizeof(int) * (size_t)(l.n + 1));
		ranks = malloc(sizeof(int) * (size_t)(l.n + 1));
		if (idx == NULL || ranks == NULL)
			abort();
		count = query_nodes(fs, &fs->q[a].q, &l, idx);
		for (int i = 0; i < count; i++)
			ranks[i] = l.v[idx[i]].rank;
		kq_targets(ranks, count, &targets);
		free(idx);
		kq_list_free(&l);
		sbuf_free(&body);
		snprintf(what, sizeof(what), "%d node%s", count, count == 1 ? "" : "s");
	}
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && rc == 0;
	     l = strtok_r(NULL, "\n", &save)) {
		rc = nodes_ctl(fs, targets.s ? targets.s : "", ranks, count, chan, what, l, out,
			       sizeof(out));
		set_outcome(fs, h->ino, "%s", out);
	}
	if (k == K_QCTL)
		free(ranks);
	sbuf_free(&targets);
	return rc;
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	 struct fuse_file_info *fi)
{
	struct fs *fs = G;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	struct sess *s = h->s;
	(void)ino;
	(void)off;

	if (h->kind == K_STDIN) {
		char hdr[48];
		if (s->xfd < 0) {
			set_status(s, "error: nothing runs to read stdin");
			fuse_reply_err(req, EPIPE);
			return;
		}
		if (s->xout.len >= XOUTMAX && (h->nonblock || (fi->flags & O_NONBLOCK))) {
			fuse_reply_err(req, EAGAIN);
			return;
		}
		for (size_t at = 0; at < size;) {
			size_t n = size - at < XOUTMAX ? size - at : XOUTMAX;
			snprintf(hdr, sizeof(hdr), "i * %zu\n", n);
			sbuf_adds(&s->xout, hdr);
			sbuf_add(&s->xout, buf + at, n);
			at += n;
		}
		xout_flush(fs, s);
		/* A writer with O_NONBLOCK is never held: what it wrote is
		 * queued, and its next write fails with EAGAIN while the queue
		 * is full (as a pipe's). */
		if (s->xout.len < XOUTMAX || s->xfd < 0 || h->nonblock ||
		    (fi->flags & O_NONBLOCK)) {
			fuse_reply_write(req, size);
			return;
		}
		/* Held until the processes take it in: a writer is slowed
		 * down, khfs's memory is not its buffer. */
		struct wpend *w = calloc(1, sizeof(*w));
		if (w == NULL)
			abort();
		w->req = req;
		w->size = size;
		w->s = s;
		w->next = fs->wpend;
		fs->wpend = w;
		fuse_req_interrupt_func(req, wpend_interrupted, w);
		return;
	}
	if (h->kind == K_ENV) {
		sbuf_add(&s->env, buf, size);
		if (size && buf[size - 1] != '\n')
			sbuf_adds(&s->env, "\n");
		fuse_reply_write(req, size);
		return;
	}
	if (h->kind == K_NCONSOLE || h->kind == K_CCONSOLE) {
		int err = tap_write(fs, h->tap, buf, size);
		if (err)
			fuse_reply_err(req, err);
		else
			fuse_reply_write(req, size);
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
	if (h->kind != K_CTL)
		rc = nodes_ctl_write(fs, h, copy);
	else
		for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && rc == 0;
		     l = strtok_r(NULL, "\n", &save))
			rc = ctl_line(fs, s, l, req, size);
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

	if (is_stream(h->kind)) {
		if (stream_ready(G, h))
			ev |= POLLIN;
		if (h->kind == K_NCONSOLE || h->kind == K_CCONSOLE)
			ev |= POLLOUT;
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
	if (realpath(mnt, fs.mnt) == NULL) {
		fprintf(stderr, "khfs: %s: %s\n", mnt, strerror(errno));
		return 1;
	}
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
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_tag(EV_FUSE, 0)};
	epoll_ctl(fs.ep, EPOLL_CTL_ADD, ffd, &ev);
	ev.data.u64 = ev_tag(EV_SIG, 0);
	epoll_ctl(fs.ep, EPOLL_CTL_ADD, sfd, &ev);
	fs.q = NULL;
	query_intern(&fs, "", &(struct kq){.n = 0}); /* query/ itself: every node */

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
			int tag = (int)(evs[i].data.u64 >> 56);
			uint64_t id = evs[i].data.u64 & 0xffffffffULL;
			struct sess *s = id < MAXSESS ? fs.sess[id] : NULL;
			if (tag == EV_FUSE) {
				int r = fuse_session_receive_buf(fs.se, &fbuf);
				if (r == -EAGAIN || r == -EINTR)
					continue;
				if (r <= 0) {
					fuse_session_exit(fs.se);
					break;
				}
				fuse_session_process_buf(fs.se, &fbuf);
			} else if (tag == EV_SIG) {
				fuse_session_exit(fs.se);
			} else if (tag == EV_JOB) {
				if (s && s->job) {
					job_end(&fs, s, 0);
					sess_maybe_free(&fs, s);
				}
			} else if (tag == EV_EXEC) {
				if (s && s->xfd >= 0 && (evs[i].events & EPOLLOUT))
					xout_flush(&fs, s);
				if (s && s->xfd >= 0 &&
				    (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					exec_readable(&fs, s);
			} else if (tag == EV_TAP) {
				if (id < MAXTAPS && fs.taps[id] && fs.taps[id]->fd >= 0)
					tap_readable(&fs, fs.taps[id]);
			}
		}
		if (fs.splices)
			pump_all(&fs);
	}
	/* Unmounting: every session ends, its nodes go back. */
	while (fs.waiters) {
		struct waiter *w = fs.waiters;
		fs.waiters = w->next;
		fuse_reply_err(w->req, EINTR);
		free(w);
	}
	while (fs.splices) {
		struct splice *sp = fs.splices;
		fs.splices = sp->next;
		sp->src = NULL;
		splice_free(&fs, sp);
	}
	while (fs.streams) {
		struct fh *h = fs.streams;
		fs.streams = h->next;
		if (h->ph)
			fuse_pollhandle_destroy(h->ph);
		if (h->tap)
			tap_close(&fs, h->tap);
		sbuf_free(&h->snap);
		free(h);
	}
	for (int i = 1; i < MAXSESS; i++) {
		struct sess *s = fs.sess[i];
		if (s == NULL)
			continue;
		s->opens = 0;
		s->refs = 0;
		s->done = 1;
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
	while (fs.wpend) {
		struct wpend *w = fs.wpend;
		fs.wpend = w->next;
		fuse_reply_err(w->req, EINTR);
		free(w);
	}
	while (fs.outcomes) {
		struct outcome *o = fs.outcomes;
		fs.outcomes = o->next;
		free(o);
	}
	for (int i = 0; i < fs.nq; i++)
		free(fs.q[i].path);
	free(fs.q);
	free(fbuf.mem);
	fuse_session_unmount(fs.se);
	fuse_session_destroy(fs.se);
	close(fs.ep);
	close(sfd);
	return rc;
}
