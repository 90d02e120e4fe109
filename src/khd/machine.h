/* machine: a node as khd runs it: its boot monitor, its memory, and, once
 * booted, its backend handle and console.  One per allocated node, made at
 * allocation, gone at release. */
#ifndef KH_MACHINE_H
#define KH_MACHINE_H

#include "common/sbuf.h"
#include "nodes/node.h"

#include <stdint.h>

struct khd;
struct fw;
struct mem;

/* A booted vm node whose console stays silent this long gets one line
 * ($KH_VM_QUIET_S at khd's start: another number of seconds, for tests). */
#define KH_VM_QUIET_S 30
/* The bootargs a vm node's monitor starts with (docs/firmware.md). */
#define KH_VM_BOOTARGS "console=ttyS0 panic=-1 quiet no_timer_check"

struct machine {
	struct khd *k;
	int rank;
	struct fw *fw;
	struct mem *mem;
	const struct node_backend *be; /* its type's backend (ct, vm) */
	struct node_handle h;
	int running;		 /* booted: h is live */
	int dying;		 /* killed, waiting for its pidfd */
	int releasing;		 /* going back to the pool: its row is the release's */
	int watched_pidfd;	 /* the fd number khd's loop watches for its end, or -1 */
	unsigned char image[32]; /* ramdisk content it runs (image cache reference) */
	int holds_image;
	char name[64], uni[24], eth0ip[32];
	uint32_t netids[16];
	struct sbuf outline;  /* partial output line, for rank-prefixed readers */
	int heard;	      /* the booted node has printed something */
	uint64_t quiet_timer; /* vm: says so when a booted node stays silent */
	uint64_t boot_ns;     /* when it booted (or was adopted) */
	uint64_t start;	      /* when its first process started (node_pid_start) */
	pid_t adopted_pid;    /* adopted: its first process, whose exit code exits.h keeps */
	uint32_t gen;	      /* on an agent's host: this boot's number (hosts.c) */
};

/* khd start and stop: blob store, image cache, node host (ct spawner). */
int machines_init(struct khd *k, char *err, size_t errlen);
void machines_close(struct khd *k);

/* After a request's changes: finish what the fabric batches (deletions). */
void machines_settle(struct khd *k);
/* The machine of rank, or NULL when the node is free. */
struct machine *machine_of(struct khd *k, int rank);
/* The node ended (everything in it exited, or it was stopped): back in the
 * monitor, which says so unless quiet. */
void machine_ended(struct machine *m, int status, int quiet);
/* Console input for a booted node (raw bytes to its pty). */
void machine_console_write(struct machine *m, const void *p, size_t n);

#endif
