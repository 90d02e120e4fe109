/* conn: one client connection's buffers and protocol state, and what the
 * protocol code shares with the server: the context (cache, settings,
 * counters) and per-thread statistics.  A connection is driven by bytes, not
 * by its socket: the server reads into it and writes from it; the unit tests
 * do the same without a socket.
 *
 * Output is a list of segments: bytes in the connection's own buffer, or an
 * item's value in the arena, held by a reference until it is written, so a
 * large value is never copied.  A connection whose unwritten output passes
 * MC_OUT_HIGH stops taking commands until it drains. */
#ifndef KH_MC_CONN_H
#define KH_MC_CONN_H

#include "mc/items.h"
#include "mc/mc.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define MC_RBUF_SIZE   16384u
#define MC_LINE_MAX    2048u	    /* a command line, as memcached */
#define MC_GETLINE_MAX (256u << 10) /* a get/gets line with many keys */
#define MC_OUT_HIGH    (512u << 10) /* unwritten bytes that stop reading */
#define MC_SEG_HIGH    4096u	    /* ... or segments */
#define MC_COPY_MAX    2048u	    /* values up to this are copied, not referenced */
#define MC_VERSION     "1.6.18-khmcd"

/* Counters of one worker thread; only that thread writes them. */
struct mc_tstats {
	uint64_t cmd_get, get_hits, get_misses, get_expired, get_flushed;
	uint64_t cmd_set, cmd_touch, touch_hits, touch_misses, cmd_flush, cmd_meta;
	uint64_t delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t cas_hits, cas_misses, cas_badval, store_too_large, store_no_memory;
	uint64_t bytes_read, bytes_written, conn_yields;
};
#define MC_TSTATS_N (sizeof(struct mc_tstats) / sizeof(uint64_t))

/* What every connection of a server shares. */
struct mc_ctx {
	struct mc_cache *cache;
	struct mc_settings settings;
	uint32_t started; /* unix seconds */
	int nthreads;
	struct mc_tstats **tstats; /* one per worker */
	struct mc_tstats reset;	   /* sums at the last "stats reset" */
	struct mc_rdma *rdma;	   /* the arena through the RDMA device, NULL: TCP only */
	uint64_t curr_conns, total_conns, rejected_conns; /* atomic */
	int verbosity;					  /* atomic */
};

static inline void
mc_stat_inc(uint64_t *f, uint64_t n)
{
	__atomic_store_n(f, *f + n, __ATOMIC_RELAXED);
}
#define MC_INC(c, field) mc_stat_inc(&(c)->st->field, 1)

enum mc_conn_state {
	MC_CONN_CMD,	 /* reading command lines */
	MC_CONN_NREAD,	 /* reading a value into a new item */
	MC_CONN_SWALLOW, /* throwing away a value we refused */
	MC_CONN_CLOSE,	 /* write what is pending, then close */
};

/* One piece of output: n bytes at off in the connection's buffer, or at p
 * in the arena, held by ch. */
struct mc_seg {
	const char *p;
	struct mc_chunk *ch;
	uint32_t off, len;
};

struct mc_conn {
	int fd;
	int thread; /* the worker serving it (its RDMA contexts) */
	struct mc_ctx *ctx;
	struct mc_tstats *st;
	uint32_t now; /* unix seconds, set before each batch */

	/* input: unparsed bytes are rbuf[rstart, rend) */
	char *rbuf;
	size_t rsize, rstart, rend;
	enum mc_conn_state state;
	int noreply;

	/* a value being read (MC_CONN_NREAD) */
	struct mc_chunk *item;
	char *ritem;
	size_t rleft;
	char crlf[2];
	size_t crlf_got;
	int nread_op; /* enum mc_op */
	uint64_t nread_cas;
	int nread_meta; /* ms: answer in meta form */
	int nread_stale;
	char meta_ret[160]; /* ms: the flags to echo (O, k, c), in order */
	size_t meta_retlen;
	char meta_key[MC_KEY_MAX]; /* ms: the key, for k */
	size_t meta_klen;
	int meta_bin; /* ms: the key came in base64 (b) */
	size_t swallow;

	/* output */
	char *obuf;
	size_t olen, osize;
	struct mc_seg *seg;
	size_t nseg, segcap, seg_sent, seg_off;
	size_t opending; /* bytes not yet written */

	struct mc_conn *next; /* the server's lists */
	int events;	      /* the server's epoll mask */
	int eof;	      /* the client sent its last byte */
};

/* Buffers for a new connection; -1 when out of memory. */
int mc_conn_init(struct mc_conn *c, int fd, struct mc_ctx *ctx, struct mc_tstats *st);
/* Drop everything: buffers, references held by output, a half-read item. */
void mc_conn_release(struct mc_conn *c);

/* Output helpers for the protocol. */
void mc_out(struct mc_conn *c, const void *p, size_t n);
void mc_out_str(struct mc_conn *c, const char *s); /* s and "\r\n", unless noreply */
void mc_out_err(struct mc_conn *c, const char *s); /* s and "\r\n", even with noreply */
/* The value of ch (a reference that output now owns). */
void mc_out_value(struct mc_conn *c, struct mc_chunk *ch);
/* Where output stood, to take back what a failed command wrote. */
struct mc_outmark {
	size_t nseg, olen, opending, lastlen;
};
void mc_out_mark(const struct mc_conn *c, struct mc_outmark *m);
void mc_out_rollback(struct mc_conn *c, const struct mc_outmark *m);
/* Decimal digits of v at p; returns the end. */
char *mc_utoa(uint64_t v, char *p);
/* Build up to n iovecs of pending output; returns how many. */
int mc_conn_iov(struct mc_conn *c, struct iovec *iov, int n);
/* n bytes of output were written: release what is done. */
void mc_conn_sent(struct mc_conn *c, size_t n);
/* Whether output is over the high mark (stop taking commands). */
int mc_conn_full(const struct mc_conn *c);

/* Room to read into: the free tail of rbuf (compacted/grown as needed). */
char *mc_conn_rspace(struct mc_conn *c, size_t *n);

/* Process buffered input: commands, values.  Returns MC_PROC_MORE (needs
 * more input), MC_PROC_FULL (stopped: output over the mark) or
 * MC_PROC_CLOSE (close after writing what is pending). */
enum { MC_PROC_MORE, MC_PROC_FULL, MC_PROC_CLOSE };
int mc_proto_process(struct mc_conn *c);

/* Inside the protocol code. */
struct mc_token {
	char *value;
	size_t length;
};
#define MC_MAX_TOKENS 24
size_t mc_tokenize(char *command, struct mc_token *tokens, size_t max);
void mc_meta_command(struct mc_conn *c, struct mc_token *t, size_t ntok);
void mc_meta_nread_done(struct mc_conn *c, enum mc_res r, uint64_t cas);
void mc_stats_command(struct mc_conn *c, struct mc_token *t, size_t ntok);
int mc_strtoul32(const char *s, uint32_t *out);
int mc_strtol32(const char *s, int32_t *out);
int mc_strtoull_tok(const char *s, uint64_t *out);

#endif
