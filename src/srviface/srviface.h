/* srviface: the service interface as nodes reach it (SESA's SrvIface,
 * docs/ebb.md).  khd listens at the facility's address in the public
 * domain and relays each connection, bytes only, to its own sshd: a node
 * speaks OpenSSH end to end with the facility (login `kh`, see
 * docs/channels.md), and that sshd decides who it is. */
#ifndef KH_SRVIFACE_H
#define KH_SRVIFACE_H

#include <stddef.h>

struct ev;
struct srviface;

/* Relay what lfd (a listening socket, e.g. fabric_service_listen's)
 * accepts to addr:port (sshd), on khd's event loop.  Each connection is
 * logged.  Returns NULL with err. */
struct srviface *srviface_new(struct ev *ev, int lfd, const char *addr, int port, char *err,
			      size_t errlen);
/* Close the listener and every relayed connection. */
void srviface_free(struct srviface *s);
/* Connections relayed now, and since the start. */
void srviface_counts(const struct srviface *s, int *now, unsigned long *total);

#endif
