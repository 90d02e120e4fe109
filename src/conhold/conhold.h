/* conhold: the console holder, a small process per facility that keeps the
 * pty masters of running nodes open outside khd, so that a kill -9 or a
 * stop of khd for an upgrade does not hang up the nodes' consoles.  khd
 * hands it each node's master as the node boots (SCM_RIGHTS over a Unix
 * socket, DIR/run/conhold.sock) and reads the console itself while it is
 * connected.  While no khd is connected the holder reads what the nodes
 * print, counts it and throws it away, so no node ever blocks on a full
 * console.  The next khd connects and gets every master back, with the
 * count of what was lost.  docs/nodes.md, "Nodes outlive khd". */
#ifndef KH_CONHOLD_H
#define KH_CONHOLD_H

#include <stddef.h>
#include <stdint.h>

struct conhold;

/* A console the holder gave back. */
struct conhold_held {
	int rank;
	int fd;	       /* the pty master (non-blocking, close-on-exec): the caller's */
	uint64_t lost; /* bytes the node printed while no khd was connected */
};

/* Connect to the holder of rundir (a facility's DIR/run), starting one when
 * none runs, and take back every console it holds (*held: malloc'd array of
 * *nheld, the caller's to free, with its descriptors).  Only the khd holding
 * the facility's lock may call this.  Returns NULL with err when there is no
 * holder and none could be started (nodes then die with khd). */
struct conhold *conhold_open(const char *rundir, struct conhold_held **held, int *nheld, char *err,
			     size_t errlen);
/* Give the holder a copy of node rank's console master (fd stays the
 * caller's); one it held for rank before is closed.  Returns 0 or -1. */
int conhold_hold(struct conhold *ch, int rank, int fd);
/* The node ended: the holder closes its copy. */
void conhold_drop(struct conhold *ch, int rank);
/* The socket to the holder, for khd's loop: it turns readable only when
 * the holder is gone (it says nothing after conhold_open). */
int conhold_fd(const struct conhold *ch);
/* Disconnect.  A holder that holds nothing then exits; one that holds
 * consoles keeps them, reading and counting, for the next khd. */
void conhold_close(struct conhold *ch);
/* The holder khd was connected to died: forget its socket under rundir, so
 * that conhold_open starts a new one even if a copy of the dead one's
 * listening socket lives on in some other process (which would never
 * answer). */
void conhold_forget(const char *rundir);

#endif
