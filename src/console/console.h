/* console: control channels (DESIGN.md "Control channels").  What a client
 * attached to con<C> writes reaches every node of the allocation (or the
 * subset it chose): the boot monitor before boot, the console after; what
 * the nodes print comes back merged, raw or prefixed with the rank.  A
 * broadcast mrw is received once and stored once for all its nodes. */
#ifndef KH_CONSOLE_H
#define KH_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

struct khd;
struct conn;
struct reader;

enum { CON_RAW = 0, CON_PREFIX = 1 };

/* Attach conn to channel chan.  ranks (n of them, or NULL for all) limits
 * where this client's writes go; readonly drops its writes. */
struct reader *console_attach(struct khd *k, struct conn *conn, int chan, int mode, int readonly,
			      const int *ranks, int n);
void console_detach(struct khd *k, struct reader *r);
/* Bytes a client wrote. */
void console_input(struct khd *k, struct reader *r, const char *p, size_t n);
/* Bytes a node printed (monitor or console). */
void console_output(struct khd *k, int rank, const char *p, size_t n);
/* A node left the channel (released): forget it in bulk loads. */
void console_forget(struct khd *k, int rank);

#endif
