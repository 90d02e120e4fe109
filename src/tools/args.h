/* args: the command lines of khget and khctl, turned into protocol
 * requests.  Pure functions, so the unit tests can drive them. */
#ifndef KH_ARGS_H
#define KH_ARGS_H

#include "common/sbuf.h"

#include <stddef.h>

struct tool_opts {
	const char *socket; /* --socket PATH, or NULL */
	int help;	    /* -h/--help: print usage, exit 0 */
};

/* khget [-n netid,...] [-p num] [-i] [-x] [-c cred] [-t type] [--json]
 *       [--socket PATH] user [count]
 * Builds the "get" request into req.  Returns 0, or -1 with a one-line
 * reason in err. */
int args_khget(int argc, char *const argv[], struct sbuf *req, struct tool_opts *o, char *err,
	       size_t errlen);
/* khctl VERB ...: see khctl's usage text. */
int args_khctl(int argc, char *const argv[], struct sbuf *req, struct tool_opts *o, char *err,
	       size_t errlen);

extern const char args_khget_usage[];
extern const char args_khctl_usage[];

#endif
