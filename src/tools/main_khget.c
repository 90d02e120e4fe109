/* khget: acquire nodes (kittyhawk-reference.md "Acquiring nodes"). */
#include "tools/args.h"
#include "tools/client.h"

#include <stdio.h>

int
main(int argc, char **argv)
{
	struct tool_opts o;
	struct sbuf req;
	char err[256];

	sbuf_init(&req);
	if (args_khget(argc - 1, argv + 1, &req, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "khget: %s (see khget --help)\n", err);
		return 2;
	}
	if (o.help) {
		fputs(args_khget_usage, stdout);
		return 0;
	}
	int rc = client_run("khget", o.socket, &req);
	sbuf_free(&req);
	return rc;
}
