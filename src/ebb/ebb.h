/* libebb: Elastic Building Blocks in C (docs/ebb.md), after SESA's EBBs.
 * An EBB is a distributed object named by an id; each core (a thread of the
 * runtime) reaches it through its own representative, made by the EBB
 * type's miss handler on that core's first access, and each node holds one
 * root per EBB, made on the node's first access (from the id's home node's
 * data when the home is another node).  Work runs as events on a
 * non-preemptive loop per core; nodes talk through the messenger (framed
 * TCP).  One runtime per process, as a library OS is. */
#ifndef KH_EBB_H
#define KH_EBB_H

#include <stddef.h>
#include <stdint.h>

/* An id: the home node in the high 16 bits, a number unique there in the
 * low 16.  0 is no EBB. */
typedef uint32_t ebb_id;
#define EBB_ID(node, n) ((ebb_id)(((uint32_t)(node) << 16) | ((uint32_t)(n)&0xffffu)))
#define EBB_HOME(id)	((uint16_t)((id) >> 16))
/* Ids a program names before it runs (both ends agree on them) are
 * EBB_ID(home, n) with n below EBB_STATIC; ebb_id_new hands out the rest. */
#define EBB_STATIC 256

/* Cores: 0..cores-1 run the program's events; the messenger's own loop,
 * which runs message handlers, is core `cores`; a thread of the program
 * that touches an EBB gets a core of its own above those. */
#define EBB_MAX_CORES 64
#define EBB_HERE      (-1)

struct ebb_msg;

/* What an EBB type supplies.  root_new runs once per node, on the first
 * access there (global, len: the data the home node registered with
 * ebb_global_set, or NULL/0); rep_new once per core.  msg handles a message
 * to this EBB on this node; it runs on the messenger's loop and must not
 * wait for another node (reply later with ebb_msg_keep instead). */
struct ebb_type {
	const char *name;
	void *(*root_new)(ebb_id id, const void *global, size_t len);
	void *(*rep_new)(void *root, unsigned core);
	void (*msg)(ebb_id id, void *root, struct ebb_msg *m);
	void (*rep_free)(void *rep);
	void (*root_free)(void *root);
};

/* ---- the runtime ---- */

struct ebb_conf {
	unsigned cores;	    /* 1..EBB_MAX_CORES-2 loops; 0: one per CPU (at most 8) */
	uint16_t node;	    /* this node's index */
	const char *listen; /* "ADDR:PORT" for the messenger (port 0: any); NULL: none */
	int pin;	    /* 1: core i's loop stays on the i-th CPU the process may
			     * use (modulo their count), as a per-core runtime's
			     * loops do; 0: the kernel moves them at will */
};

/* Start the runtime: the loops' threads and the messenger.  Returns 0, or
 * -1 with a one-line reason in err. */
int ebb_init(const struct ebb_conf *conf, char *err, size_t errlen);
/* Stop everything and free every root and representative.  The calling
 * thread's representative cache is emptied; other threads of the program
 * must not touch EBBs after this. */
void ebb_fini(void);
uint16_t ebb_node(void);
unsigned ebb_cores(void);
/* The messenger's bound port (0 without one). */
int ebb_port(void);
/* Where node n is reached ("ADDR:PORT"); a node that connected to us is
 * reached on that connection anyway.  Returns 0, or -1 (bad address). */
int ebb_node_addr(uint16_t n, const char *addr);
/* Node n's address as given to ebb_node_addr, into buf.  Returns 0, or
 * -1 (none known). */
int ebb_node_addr_get(uint16_t n, char *buf, size_t len);
/* Forget node n (it was given back): its address and connection go. */
void ebb_node_forget(uint16_t n);
/* Connect to node n now (its hello tells it who we are) instead of at
 * the first message: a node just started says so to the node that
 * started it this way.  Returns 0, or -1 (n cannot be reached). */
int ebb_node_connect(uint16_t n);
/* Whether node n is connected (either end opened the connection). */
int ebb_node_connected(uint16_t n);
/* The nodes known (this one, those with an address, those connected), in
 * order; returns how many (at most max are written). */
size_t ebb_nodes(uint16_t *out, size_t max);

/* ---- EBBs ---- */

/* Make type t known on this node by its name: a message or a miss for an
 * EBB of that type can then make its root here.  Returns 0 or -1. */
int ebb_type_register(const struct ebb_type *t);
/* A new id whose home is this node. */
ebb_id ebb_id_new(void);
/* On id's home node: make id an EBB of type t (registered too), with the
 * data (at most 1 MiB) that a node missing on it is given, as EbbRT's
 * global id map does.  Returns 0, or -1 (not the home, taken, too big). */
int ebb_create(ebb_id id, const struct ebb_type *t, const void *global, size_t len);
/* The node's root for id, made (through the type's miss handler, and the
 * home node when it is another) if there is none.  NULL on failure (the
 * home did not answer, the handler failed). */
void *ebb_root(ebb_id id, const struct ebb_type *t);

/* Every thread that calls EBBs has a slot in a small thread-local cache;
 * a hit is one load and one compare. */
struct ebb_slot {
	ebb_id id;
	void *rep;
};
#define EBB_SLOTS 256
extern __thread struct ebb_slot ebb_tls_slots[EBB_SLOTS];
void *ebb_miss(ebb_id id, const struct ebb_type *t);

/* This core's representative of id (NULL only when a miss failed). */
static inline void *
ebb_rep(ebb_id id, const struct ebb_type *t)
{
	struct ebb_slot *s = &ebb_tls_slots[(id ^ (id >> 16)) & (EBB_SLOTS - 1)];
	if (__builtin_expect(s->id == id, 1))
		return s->rep;
	return ebb_miss(id, t);
}
/* The calling thread's core (a thread new to the runtime is given one). */
int ebb_core(void);
/* Misses handled so far on this node (for tests and benchmarks). */
uint64_t ebb_misses(void);

/* ---- events ---- */

typedef void (*ebb_fn)(void *arg);
/* Run fn(arg) as an event on core (EBB_HERE: the calling core, which must
 * be a loop's).  Events on one core never run at the same time and each
 * runs to its end.  Returns 0, or -1 (no such core, the runtime stops). */
int ebb_spawn(int core, ebb_fn fn, void *arg);
/* fn(arg) on core after ms milliseconds.  Returns a timer id (> 0), or -1. */
int64_t ebb_timer(int core, unsigned ms, ebb_fn fn, void *arg);
/* Cancel a timer that has not fired.  Returns 0, or -1 (fired or unknown). */
int ebb_timer_cancel(int core, int64_t timer);
/* Call fn(arg, events) on core whenever fd is ready for events (EPOLLIN,
 * EPOLLOUT...).  Returns 0 or -1. */
int ebb_watch(int core, int fd, uint32_t events, void (*fn)(void *arg, uint32_t events), void *arg);
int ebb_unwatch(int core, int fd);

/* ---- futures ---- */

/* A value that arrives later: a status (0 ok, else an error) and bytes. */
struct ebb_future;
struct ebb_future *ebb_future_new(void);
/* Set the value once (later sets are ignored; returns -1 then).  The bytes
 * are copied. */
int ebb_future_set(struct ebb_future *f, int status, const void *data, size_t len);
/* Wait for the value, at most ms milliseconds (-1: no limit).  Returns the
 * status, or -ETIMEDOUT.  A loop that waits stops its core meanwhile. */
int ebb_future_wait(struct ebb_future *f, int ms);
/* Once set: fn(f, arg) as an event on core (EBB_HERE: the thread that sets
 * it, at once).  One continuation per future. */
int ebb_future_then(struct ebb_future *f, int core, void (*fn)(struct ebb_future *, void *),
		    void *arg);
int ebb_future_ready(const struct ebb_future *f);
const void *ebb_future_data(const struct ebb_future *f, size_t *len);
void ebb_future_free(struct ebb_future *f);

/* ---- the messenger ---- */

/* Frames on the wire (little-endian):
 *   u32 len (bytes after this field, 20..EBB_FRAME_MAX), u8 kind, u8 pad[3],
 *   u32 ebb, u16 from, u16 status, u64 seq, then len-20 bytes of payload. */
#define EBB_FRAME_HDR 24
#define EBB_FRAME_MAX (64u << 20)
enum ebb_kind {
	EBB_K_HELLO = 1, /* first frame of a connection; from = the sender's node */
	EBB_K_CALL,	 /* wants a reply with the same seq */
	EBB_K_SEND,	 /* one-way */
	EBB_K_REPLY,
	EBB_K_MISS, /* "send me id's global data" */
	EBB_K_KMAX
};
struct ebb_frame {
	uint8_t kind;
	ebb_id ebb;
	uint16_t from, status;
	uint64_t seq;
	const uint8_t *data;
	size_t len;
};
/* Parse one frame at the start of buf.  Returns its whole size, 0 when more
 * bytes are needed, or -1 when the bytes are not a frame (the connection
 * must be dropped). */
long ebb_frame_parse(const uint8_t *buf, size_t n, struct ebb_frame *f);
/* Write a frame's header for a payload of len bytes into hdr. */
void ebb_frame_header(uint8_t hdr[EBB_FRAME_HDR], const struct ebb_frame *f);

/* A message received, for the EBB type's msg handler. */
struct ebb_msg {
	uint16_t from;
	ebb_id ebb;
	const void *data;
	size_t len;
	uint64_t seq; /* 0: one-way */
	int kept;     /* set by ebb_msg_keep */
	int replied;
};
/* Answer a call (no-op for a one-way message).  status 0 is success. */
int ebb_msg_reply(struct ebb_msg *m, int status, const void *data, size_t len);
/* Keep the message's reply for later: returns a copy to pass to
 * ebb_msg_reply (which frees it) once the answer is known. */
struct ebb_msg *ebb_msg_keep(struct ebb_msg *m);

/* Call EBB id on node n with data; the future gets the reply (status
 * EBB_E* for the messenger's own failures).  To this node itself, the
 * handler runs on the messenger's loop as for any other. */
struct ebb_future *ebb_call(uint16_t n, ebb_id id, const void *data, size_t len);
/* One-way.  Returns 0, or -1 (no route to n). */
int ebb_send(uint16_t n, ebb_id id, const void *data, size_t len);
/* The messenger's failures, as statuses of a reply. */
#define EBB_EUNREACH 0xff01 /* no connection to the node */
#define EBB_ENOEBB   0xff02 /* the node has no such EBB type handler */
#define EBB_EGONE    0xff03 /* the connection closed before the reply */

#endif
