/* linkmsg: the payloads of the link's frames (link.h), parsed and built.
 * Parsing is pure: bytes in, a struct out or one line of why not; no I/O,
 * no state.  It checks everything that can be checked without knowing the
 * reader's state (lengths inside the payload, counts within their bounds,
 * ranks below LINK_MAX_RANKS, names that are names, addresses that are
 * addresses); what depends on state (is this rank mine, is this the blob
 * being received) stays with the handlers in agent.c and front.c.  Bytes
 * after the last field are ignored, as they always were, except in the
 * handshake's frames, whose length is exact.  linkmsg_put builds what
 * linkmsg_parse reads back to the same struct (fuzz/link.c checks it). */
#ifndef KH_LINKMSG_H
#define KH_LINKMSG_H

#include "agent/link.h"

#include <stddef.h>
#include <stdint.h>

#define LINK_MAX_IFS   16  /* a node's interfaces in L_WIRE and L_STATS */
#define LINK_MAX_PEERS 64  /* other hosts one L_SPAN names */
#define LINK_MAX_HAVE  256 /* blobs one L_WELCOME lists */
#define LINK_NAME_LEN  64  /* a host's or a node's name, its NUL included */
#define LINK_ADDR_LEN  64  /* an L_SPAN peer's address, its NUL included */
#define LINK_ENV_LEN   512 /* a boot's NAME=VALUE */
#define LINK_WHY_LEN   512 /* an L_FAILED's or L_ERROR's reason */
#define LINK_NODE_WIRE 40  /* an L_WELCOME node: u32 rank, u32 gen, hash */

/* Who reads the frame: each side reads only the other's types. */
enum linkmsg_to { LINKMSG_TO_AGENT, LINKMSG_TO_FRONT };

struct linkmsg_if {
	uint32_t slot, netid;
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
};

/* One frame's payload.  Pointers point into the parsed payload (or, for
 * linkmsg_put, into the caller's bytes), in wire form where noted. */
struct linkmsg {
	int type;
	uint32_t rank;
	union {
		struct {
			unsigned char nonce[LINK_NONCE];
		} challenge;
		struct {
			unsigned char mac[32], nonce[LINK_NONCE];
		} proof;
		struct {
			unsigned char mac[32];
		} proven;
		struct {
			uint32_t facid, first, count;
		} hello;
		struct {
			char name[LINK_NAME_LEN];
			uint32_t nnodes, nblobs;
			const unsigned char
			    *nodes; /* nnodes x LINK_NODE_WIRE: linkmsg_welcome_node */
			const unsigned char *blobs; /* nblobs x 32-byte hash */
		} welcome;
		struct {
			unsigned char hash[32];
		} have;
		struct {
			unsigned char hash[32];
			uint64_t total, off; /* off + len <= total <= LINK_MAX_BLOB */
			const unsigned char *bytes;
			size_t len;
		} blob;
		struct {
			uint32_t gen, cpu_milli, pids;
			uint64_t mem;
			unsigned char hash[32];
			char name[LINK_NAME_LEN], env[LINK_ENV_LEN];
		} boot;
		struct {
			uint32_t gen, pid;
		} booted;
		struct {
			uint32_t gen;
			char why[LINK_WHY_LEN];
		} failed;
		struct {
			const unsigned char *bytes;
			uint32_t len;
			uint32_t nranks;	    /* <= LINK_MAX_RANKS */
			const unsigned char *ranks; /* nranks x u32: linkmsg_input_rank */
		} input;
		struct {
			uint32_t gen;
			const unsigned char *bytes;
			size_t len;
		} out;
		struct {
			uint32_t gen;
			int32_t status;
		} exit;
		struct {
			uint32_t gen;
		} kill;
		struct {
			uint32_t n;
			uint32_t netid[LINK_MAX_IFS]; /* each <= 0xffff, 0: none */
		} wire;
		struct {
			uint32_t netid, n; /* netid 1..0xffff */
			char peer[LINK_MAX_PEERS][LINK_ADDR_LEN];
		} span;
		struct {
			uint32_t gen, nifs;
			uint64_t cpu_ns, mem, mem_peak, oom_kills;
			struct linkmsg_if ifs[LINK_MAX_IFS]; /* slot < LINK_MAX_IFS */
		} stats;
		struct {
			char why[LINK_WHY_LEN];
		} error;
	} u;
};

struct linkmsg_node {
	uint32_t rank, gen;
	unsigned char image[32];
};

/* The frame (type, rank, payload p/len) as the reader `to` takes it.
 * Returns 0 with *m filled, or -1 with one line in err: a type that side
 * does not read, a payload too short, a count or length past its bound or
 * past the payload's end, a string with a NUL or too long, a rank at or
 * beyond LINK_MAX_RANKS, a name, address or netid that is none. */
int linkmsg_parse(enum linkmsg_to to, int type, uint32_t rank, const unsigned char *p, size_t len,
		  struct linkmsg *m, char *err, size_t errlen);

/* Queue m as one frame on l.  m must hold what linkmsg_parse accepts.
 * Returns where the frame starts in l->out (for link_end). */
size_t linkmsg_put(struct link *l, const struct linkmsg *m);

/* The i-th node of an L_WELCOME, and the wire form of one (to build
 * welcome.nodes). */
void linkmsg_welcome_node(const struct linkmsg *m, uint32_t i, struct linkmsg_node *out);
void linkmsg_node_wire(unsigned char out[LINK_NODE_WIRE], const struct linkmsg_node *n);
/* The i-th rank of an L_INPUT. */
uint32_t linkmsg_input_rank(const struct linkmsg *m, uint32_t i);
/* "boot", "welcome", ...; "?" for a type there is not. */
const char *linkmsg_type_name(int type);

#endif
