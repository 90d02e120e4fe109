/* xclient: the client side of khd's exec verb (docs/protocol.md "exec"):
 * the request line, and khctl exec's loop (output to stdout and stderr,
 * stdin to every process, Ctrl-C to them, their exit status as ours). */
#ifndef KH_XCLIENT_H
#define KH_XCLIENT_H

#include "common/sbuf.h"

/* The exec request: argv and env (NULL-terminated; env may be NULL) joined
 * by the unit separator (0x1f).  Returns 0, or -1 when an argument holds a
 * 0x1f byte itself. */
int xclient_request(struct sbuf *req, const char *user, const char *cred, const char *targets,
		    char *const argv[], char *const env[]);

/* khctl exec ARGS (argv[0] is "exec").  Returns the exit status. */
int xclient_main(int argc, char *const argv[]);

#endif
