/* ctl: between khd (rdma.c) and its engine process (rdmad.c).  khd sends
 * typed messages on a SOCK_SEQPACKET pair, descriptors ride along with
 * SCM_RIGHTS; the engine answers each with an ack, in order, so khd can
 * pipeline many and wait for them all once (rdma_sync). */
#ifndef KH_RDMA_CTL_H
#define KH_RDMA_CTL_H

#include "rdma/engine.h"

#include <stdint.h>

#define RC_ENV	    "KH_RDMA_ENGINE" /* =<pid of khd>: start as the engine */
#define RC_LOG_ENV  "KH_RDMA_LOG"    /* the log file the engine appends to */
#define RC_SPIN_ENV "KH_RDMA_SPIN_US"
#define RC_FD	    3 /* the engine's end of the control pair */
#define RC_SHM_FD   4 /* the shared page: stats, then the take mailbox */
#define RC_KHD_FD   5 /* listening at DIR/run/rdma/engine.sock: the next khd */
#define RC_SOCK	    "engine.sock"
#define RC_MAILBOX  4096

enum rc_type {
	RC_HELLO = 1, /* engine -> khd once, when it runs or a khd attaches */
	RC_LISTEN,    /* + the node's device socket (listening); its domains */
	RC_NODE,      /* its domains changed */
	RC_DROP,      /* it ended, was reset or released: revoke everything */
	RC_DISCARD,   /* forget its usage (released) */
	RC_TAKE,      /* move usage records into the mailbox */
	RC_HAVE,      /* engine -> an attaching khd: a node's device it kept
		       * (+ its listening socket; the set it was last told) */
};

/* An engine whose khd died keeps running while any node has a device: it
 * listens on RC_KHD_FD, and the next khd of the facility (root only)
 * attaches there.  It is sent RC_HELLO (count: how many RC_HAVE follow,
 * rank: the engine's pid; + the shared page), then one RC_HAVE rc_msg per node, each with its
 * device's listening socket; after that, control goes on as usual.  An
 * engine with no device left when its khd goes exits. */

struct rc_msg {
	uint32_t type;
	int32_t rank;
	uint32_t n;
	uint32_t pad;
	uint64_t reg_limit;
	uint32_t netids[RE_MAX_IFS];
};

struct rc_ack {
	uint32_t type;
	int32_t rank;
	uint32_t count; /* RC_TAKE: records in the mailbox */
	uint32_t pad;
};

struct rc_shared {
	struct re_stats stats;
	struct re_usage mailbox[RC_MAILBOX];
};

/* rdmad.c: run the engine (never returns).  Called before main() by the
 * constructor in rdma.c, in a process rdma.c started. */
void rdmad_main(void) __attribute__((noreturn));

#endif
