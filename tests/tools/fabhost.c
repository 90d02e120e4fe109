/* fabhost: one host's fabric for the tests across hosts
 * (tests/e2e/fabric_hosts.sh).  Started in a "host" network namespace, it
 * makes a fabric there and obeys one command per line on stdin, answering
 * each with one line on stdout, "ok" or "error: WHY":
 *
 *   new FACID NAT              the fabric (NAT 1: masquerade external traffic)
 *   underlay IP PORT           fabric_set_underlay
 *   node RANK NETID[,NETID] PIN  node RANK wired to those domains (eth0, eth1,
 *                              ...) and configured, its namespace pinned at PIN
 *   release RANK PIN           the node leaves; PIN is unmounted
 *   span NETID [PEER...]       fabric_span (no peers: unspan)
 *   nodes NETID [RANK@HOST...] fabric_span_nodes
 *   spans NETID                prints "ok N": how many hosts it spans to
 *   free                       fabric_free
 *
 * At the end of input the fabric is freed. */
#include "fabric/fabric.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define FH_MAXW 64

static struct fabric *fb;

static int
pin(int netns, const char *path, char *err, size_t errlen)
{
	char src[64];
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	snprintf(src, sizeof(src), "/proc/self/fd/%d", netns);
	if (mount(src, path, NULL, MS_BIND, NULL) < 0) {
		snprintf(err, errlen, "pin at %s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

static void
unpin(const char *path)
{
	umount2(path, MNT_DETACH);
	unlink(path);
}

static int
cmd(int argc, char **w, char *err, size_t errlen)
{
	const char *c = w[0];

	if (strcmp(c, "new") == 0 && argc == 3) {
		if (fb)
			fabric_free(fb);
		fb = fabric_new(w[1], atoi(w[2]), NULL, err, errlen);
		return fb ? 0 : -1;
	}
	if (fb == NULL) {
		snprintf(err, errlen, "no fabric (new first)");
		return -1;
	}
	if (strcmp(c, "underlay") == 0 && argc == 3)
		return fabric_set_underlay(fb, w[1], atoi(w[2]), err, errlen);
	if (strcmp(c, "node") == 0 && argc == 4) {
		int rank = atoi(w[1]), nets[16], n = 0;
		for (char *s = w[2], *save = NULL, *t; (t = strtok_r(s, ",", &save)) && n < 16;
		     s = NULL)
			nets[n++] = atoi(t);
		if (fabric_node_wire(fb, rank, nets, n, err, errlen) < 0 ||
		    fabric_node_config(fb, rank, err, errlen) < 0)
			return -1;
		fabric_flush(fb);
		return pin(fabric_node_netns(fb, rank), w[3], err, errlen);
	}
	if (strcmp(c, "release") == 0 && argc == 3) {
		unpin(w[2]);
		fabric_node_release(fb, atoi(w[1]));
		fabric_flush(fb);
		return 0;
	}
	if (strcmp(c, "span") == 0 && argc >= 2)
		return fabric_span(fb, atoi(w[1]), (const char *const *)w + 2, argc - 2, err,
				   errlen);
	if (strcmp(c, "nodes") == 0 && argc >= 2) {
		int ranks[FH_MAXW];
		const char *hosts[FH_MAXW];
		int n = 0;
		for (int i = 2; i < argc; i++) {
			char *at = strchr(w[i], '@');
			if (at == NULL) {
				snprintf(err, errlen, "want RANK@HOST, not %s", w[i]);
				return -1;
			}
			*at = 0;
			ranks[n] = atoi(w[i]);
			hosts[n++] = at + 1;
		}
		return fabric_span_nodes(fb, atoi(w[1]), ranks, hosts, n, err, errlen);
	}
	if (strcmp(c, "spans") == 0 && argc == 2) {
		snprintf(err, errlen, "%d", fabric_spans(fb, atoi(w[1])));
		return 1;
	}
	if (strcmp(c, "free") == 0 && argc == 1) {
		fabric_free(fb);
		fb = NULL;
		return 0;
	}
	snprintf(err, errlen, "unknown command or arguments: %s", c);
	return -1;
}

int
main(void)
{
	char line[4096];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char *w[FH_MAXW], *save = NULL, err[512] = "";
		int argc = 0;
		for (char *s = line, *t; argc < FH_MAXW && (t = strtok_r(s, " \t\r\n", &save));
		     s = NULL)
			w[argc++] = t;
		if (argc == 0)
			continue;
		int rc = cmd(argc, w, err, sizeof(err));
		if (rc < 0)
			printf("error: %s\n", err);
		else if (rc > 0)
			printf("ok %s\n", err);
		else
			printf("ok\n");
	}
	if (fb)
		fabric_free(fb);
	return 0;
}
