/* link: the frames between the front end and a host's agent (docs/hosts.md).
 * One TCP connection per agent, opened by the front end over the hosts'
 * underlay; both ends prove they hold the facility's cluster key before
 * anything else (HMAC challenges, crypto_auth).  A frame is a 12-byte
 * header (payload length, type, rank; little-endian) and its payload,
 * built and read with the put/get cursors below.  Whatever comes off the
 * wire is hostile: every read is bounds-checked, and a frame that does not
 * parse ends the connection. */
#ifndef KH_LINK_H
#define KH_LINK_H

#include "common/sbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LINK_HDR	 12
#define LINK_PAYLOAD_MAX (2u << 20) /* largest payload; blobs go in chunks */
#define LINK_CHUNK	 (1u << 20) /* a blob's bytes per frame */
#define LINK_KEYLEN	 32	    /* the cluster key */
#define LINK_NONCE	 32
#define LINK_PORT	 7405 /* an agent's default port */
#define LINK_MAX_BLOB	 (1ull << 30)
#define LINK_MAX_RANKS	 4096

enum link_type {
	L_CHALLENGE = 1, /* agent: nonce */
	L_PROOF,	 /* front: hmac("front", agent's nonce), its own nonce */
	L_PROVEN,	 /* agent: hmac("agent", front's nonce) */
	L_HELLO,	 /* front: u32 facility id, u32 first rank, u32 count (this host's) */
	L_WELCOME,	 /* agent: str host name, u32 n, n x {u32 rank, u32 gen, hash}
			    (the nodes it runs), u32 m, m x hash (blobs it holds) */
	L_PING,		 /* either way; answered by L_PONG */
	L_PONG,
	L_BLOB,	   /* front: hash, u64 total, u64 offset, bytes */
	L_HAVE,	   /* agent: hash (stored and checked) */
	L_BOOT,	   /* front, rank: u32 gen, u32 cpu_milli, u64 mem, u32 pids, hash,
		      str hostname, str env ("" none) */
	L_BOOTED,  /* agent, rank: u32 gen, u32 pid */
	L_FAILED,  /* agent, rank: u32 gen, str why */
	L_INPUT,   /* front: u32 len, bytes, then to the end u32 ranks (console input
		      for those nodes: once per host, however many) */
	L_OUT,	   /* agent, rank: u32 gen, bytes (console output) */
	L_EXIT,	   /* agent, rank: u32 gen, i32 wait status */
	L_KILL,	   /* front, rank: u32 gen */
	L_WIRE,	   /* front, rank: u32 n, n x u32 netid (0: no interface there) */
	L_RELEASE, /* front, rank: the node left its principal */
	L_SPAN,	   /* front: u32 netid, u32 n, n x str peer address */
	L_STATS,   /* agent, rank: u32 gen, u64 cpu_ns, u64 mem, u64 mem_peak,
		      u64 oom_kills, u32 n, n x {u32 slot, u32 netid, 4 x u64} */
	L_ERROR,   /* either: str why; the connection ends */
	L_TYPES
};

/* One end of a link: what came in and what waits to go out. */
struct link {
	int fd;
	struct sbuf in, out;
	size_t in_off, out_off; /* consumed from in; sent from out */
	int bad;		/* a frame did not parse: close */
	uint64_t rx;		/* bytes read, ever */
	/* the header link_next saw last (for logs) */
	int last_type;
	uint32_t last_rank;
	size_t last_len;
};

void link_init(struct link *l, int fd);
void link_free(struct link *l); /* closes fd */

/* Read what the socket has (non-blocking).  Returns >0 bytes read, 0 at
 * EOF, -1 on error (EAGAIN: 0 bytes and errno EAGAIN, returns -2). */
ssize_t link_read(struct link *l);
/* The next whole frame, if any: 1 with its type, rank, payload (valid
 * until the next link_read); 0 when none yet; -1 when the peer sent
 * nonsense (too long, unknown type). */
int link_next(struct link *l, int *type, uint32_t *rank, const unsigned char **p, size_t *len);

/* One frame to its reader: 0 taken, -1 refused (the link is bad).  A
 * reader may close the link, or hand its struct over to another (either
 * way it sets l->fd to -1); link_pump then stops and touches l no more. */
typedef int (*link_frame_fn)(void *arg, int type, uint32_t rank, const unsigned char *p,
			     size_t len);
enum link_pump {
	LINK_WAIT,    /* every whole frame handled; more may come */
	LINK_EOF,     /* the peer closed the connection */
	LINK_ERR,     /* reading failed (errno) */
	LINK_BAD,     /* a header that makes no sense: too long, no known type */
	LINK_REFUSED, /* the reader refused a frame */
	LINK_LEFT,    /* the reader closed the link or handed it over */
};
/* Read what the socket has, then hand each whole frame, in order, to fn
 * until one is bad.  The frames that came before an end of file or an
 * error are handled first. */
enum link_pump link_pump(struct link *l, link_frame_fn fn, void *arg);
/* The same without reading: the whole frames already in l->in. */
enum link_pump link_dispatch(struct link *l, link_frame_fn fn, void *arg);
/* Send what is queued.  Returns 1 when everything went, 0 when some waits
 * (watch for writing), -1 on error. */
int link_flush(struct link *l);
size_t link_pending(const struct link *l);

/* Building a frame: link_begin, the put_* of its payload, link_end. */
size_t link_begin(struct link *l, int type, uint32_t rank);
void link_end(struct link *l, size_t at);
void put_u32(struct link *l, uint32_t v);
void put_u64(struct link *l, uint64_t v);
void put_bytes(struct link *l, const void *p, size_t n);
void put_str(struct link *l, const char *s); /* u32 length, bytes */

/* Reading a payload. Each get_* fails (returns -1, and every later one
 * too) past the end. */
struct lget {
	const unsigned char *p;
	size_t len, off;
	int bad;
};
void lget_init(struct lget *g, const unsigned char *p, size_t len);
int get_u32(struct lget *g, uint32_t *v);
int get_u64(struct lget *g, uint64_t *v);
int get_bytes(struct lget *g, void *out, size_t n);
/* A string of at most max-1 bytes, no NUL inside, copied NUL-terminated. */
int get_str(struct lget *g, char *out, size_t max);
/* What is left of the payload. */
const unsigned char *get_rest(struct lget *g, size_t *n);

/* Little-endian 32-bit words, as the wire has them. */
uint32_t link_get32(const unsigned char *p);
void link_set32(unsigned char *p, uint32_t v);

/* The cluster key from a file holding 64 hex digits (and nothing else but
 * a newline).  Returns 0, or -1 with err. */
int link_key_load(const char *path, unsigned char key[LINK_KEYLEN], char *err, size_t errlen);
/* The proof that one holds the key: HMAC over who ("front", "agent") and
 * the peer's nonce. */
void link_prove(const unsigned char key[LINK_KEYLEN], const char *who,
		const unsigned char nonce[LINK_NONCE], unsigned char mac[32]);
int link_check(const unsigned char key[LINK_KEYLEN], const char *who,
	       const unsigned char nonce[LINK_NONCE], const unsigned char mac[32]);

#endif
