/* khctl: every other verb of the service interface. */
#include "tools/args.h"
#include "tools/client.h"
#include "tools/xclient.h"

#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
	struct tool_opts o;
	struct sbuf req;
	char err[256];

	if (argc > 1 && strcmp(argv[1], "exec") == 0)
		return xclient_main(argc - 1, argv + 1);
	sbuf_init(&req);
	if (args_khctl(argc - 1, argv + 1, &req, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "khctl: %s\n", err);
		return 2;
	}
	if (o.help) {
		fputs(args_khctl_usage, stdout);
		return 0;
	}
	int rc = client_run("khctl", o.socket, &req);
	sbuf_free(&req);
	return rc;
}
