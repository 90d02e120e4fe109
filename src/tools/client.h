/* client: how a tool reaches khd: find the socket (--socket, KH_SOCKET,
 * or the default), send one request, collect the reply. */
#ifndef KH_CLIENT_H
#define KH_CLIENT_H

#include "common/sbuf.h"

#include <stddef.h>

#define KH_DEFAULT_SOCKET "/var/lib/kittyhawk/khd.sock"

/* The socket path the tool uses: opt if given, else $KH_SOCKET, else the default. */
const char *client_socket_path(const char *opt);
int client_connect(const char *path, char *err, size_t errlen);
/* Send req (a full request line) and read the reply.  Body lines go to
 * body without their "- ".  Returns 0 on "ok", 1 on "err" (code and msg
 * filled), -1 on a broken connection (msg filled). */
int client_call(int fd, const struct sbuf *req, struct sbuf *body, char *code, size_t codelen,
		char *msg, size_t msglen);
/* The whole round trip for a tool: connect, call, print body to stdout or
 * "prog: msg" to stderr.  Returns the tool's exit status. */
int client_run(const char *prog, const char *sockopt, const struct sbuf *req);

#endif
