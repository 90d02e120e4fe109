/* exec: the processes one client started in nodes (the exec verb), as a
 * framed stream (docs/protocol.md "exec"): their stdout and stderr go to
 * the client framed by rank, the client's framed input goes to their
 * stdin, their ends are reported with their CPU times, and a client that
 * goes away takes them with it.  The connection is reached through the
 * exec_io table, so this module knows nothing of khd's server. */
#ifndef KH_EXEC_H
#define KH_EXEC_H

#include "khd/ev.h"
#include "nodes/node.h"

#include <stddef.h>

struct exec_io {
	void *ctx;
	size_t (*room)(void *ctx); /* bytes the client takes now */
	void (*send)(void *ctx, const void *p, size_t n);
	void (*pause)(void *ctx, int paused); /* stop (1) or resume (0) reading the client */
	void (*fail)(void *ctx);	      /* bad input: end the connection once flushed */
};

struct exec;

struct exec *exec_new(struct ev *ev, const struct exec_io *io);
/* Take a process started in node rank: its descriptors are exec's now. */
void exec_add(struct exec *x, int rank, const struct node_proc *p);
/* Bytes the client sent (frames i, c, k, any way cut). */
void exec_input(struct exec *x, const char *p, size_t n);
/* The client sends nothing more (it shut its side): every stdin closes
 * once what is held for it is written. */
void exec_input_end(struct exec *x);
/* The client has room again: output held back flows. */
void exec_writable(struct exec *x);
/* SIGKILL what still runs (each process's session), reap, free. */
void exec_free(struct exec *x);

#endif
