/* ebbkv: the elastic memcached-protocol store (docs/ebb.md). */
#include "common/util.h"
#include "ebb/nodealloc.h"
#include "ebbkv/kv.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(void)
{
	fprintf(stderr,
		"usage: ebbkv [-p PORT] [-l ADDR] [-t CORES] [--msg IP:PORT] [--no-pin]\n"
		"             [--grow RPS --shrink RPS [--max-nodes N] [--grow-step K]\n"
		"              [--alloc local|kh]\n"
		"              [--user USER --appliance FILE --netid N]]   (the door, node 0)\n"
		"       ebbkv --node N --msg IP:PORT --home IP:PORT [-t CORES] [--no-pin]\n"
		"                                                            (another node)\n"
		"       (--node-by-rank LO-HI=N,...: N by this node's rank, its hostname's "
		"-n<rank>)\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"node", required_argument, NULL, 'N'},
					     {"node-by-rank", required_argument, NULL, 'R'},
					     {"msg", required_argument, NULL, 'M'},
					     {"home", required_argument, NULL, 'H'},
					     {"grow", required_argument, NULL, 'G'},
					     {"shrink", required_argument, NULL, 'S'},
					     {"max-nodes", required_argument, NULL, 'X'},
					     {"grow-step", required_argument, NULL, 'K'},
					     {"alloc", required_argument, NULL, 'A'},
					     {"user", required_argument, NULL, 'U'},
					     {"appliance", required_argument, NULL, 'P'},
					     {"netid", required_argument, NULL, 'I'},
					     {"no-pin", no_argument, NULL, 'n'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct kv_conf c = {
	    .port = 11211, .cores = 2, .msg = "127.0.0.1:0", .max_nodes = 8, .pin = 1};
	c.alloc.backend = "local";
	uint64_t v;
	int o;
	char self[PATH_MAX];
	while ((o = getopt_long(argc, argv, "p:l:t:h", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			if (parse_uint(optarg, 1, 65535, &v) < 0)
				goto bad;
			c.port = (int)v;
			break;
		case 'l':
			c.listen = optarg;
			break;
		case 't':
			if (parse_uint(optarg, 1, 32, &v) < 0)
				goto bad;
			c.cores = (unsigned)v;
			break;
		case 'N':
			if (parse_uint(optarg, 1, 1023, &v) < 0)
				goto bad;
			c.node = (uint16_t)v;
			break;
		case 'R': {
			/* a kh node, started by the door's NodeAllocator with the
			 * runs of ranks it allocated (nodealloc_rank_node) */
			char host[256] = "";
			gethostname(host, sizeof(host) - 1);
			int n = nodealloc_rank_node(optarg, host);
			if (n < 1 || n > 1023) {
				fprintf(stderr,
					"ebbkv: --node-by-rank %s: no node number for host %s\n",
					optarg, host);
				return 2;
			}
			c.node = (uint16_t)n;
			break;
		}
		case 'M':
			c.msg = optarg;
			break;
		case 'H':
			c.home = optarg;
			break;
		case 'G':
		case 'S':
			if (parse_uint(optarg, 1, 100000000, &v) < 0)
				goto bad;
			*(o == 'G' ? &c.grow_rps : &c.shrink_rps) = (double)v;
			break;
		case 'X':
			if (parse_uint(optarg, 1, 1023, &v) < 0)
				goto bad;
			c.max_nodes = (int)v;
			break;
		case 'K':
			if (parse_uint(optarg, 1, 1023, &v) < 0)
				goto bad;
			c.grow_step = (int)v;
			break;
		case 'n':
			c.pin = 0;
			break;
		case 'A':
			c.alloc.backend = optarg;
			break;
		case 'U':
			c.alloc.user = optarg;
			break;
		case 'P':
			c.alloc.appliance = optarg;
			break;
		case 'I':
			if (parse_uint(optarg, 3, 4095, &v) < 0)
				goto bad;
			c.alloc.netid = (int)v;
			break;
		default:
			usage();
			return o == 'h' ? 0 : 2;
		}
	}
	if (optind != argc)
		goto bad;
	/* local nodes: this very program, one core each, told the door's
	 * messenger, not pinned (they share this host's CPUs with the door);
	 * kh nodes: the appliance's ebbkv, typed on their console */
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[sl > 0 ? sl : 0] = '\0';
	char home[64];
	char *largv[] = {self, "--node", "%n",	     "--msg", "127.0.0.1:%p", "--home", home,
			 "-t", "1",	 "--no-pin", NULL};
	char cmd[256];
	c.alloc.argv = largv;
	c.alloc.cred = getenv("KH_CRED");
	/* short: every byte typed costs each of the nodes (the door knows
	 * their addresses from the plan; they listen on every one of theirs) */
	snprintf(cmd, sizeof(cmd),
		 "ebbkv --node-by-rank %%r --msg 0.0.0.0:7000 --home %s -t 1 --no-pin", c.msg);
	c.alloc.cmd = cmd;
	char err[512];
	/* the door's messenger needs a known port for --home: a fixed one
	 * when given, else the kernel's choice, which kv_run reports */
	snprintf(home, sizeof(home), "%s", c.msg);
	if (kv_run(&c, err, sizeof(err)) < 0) {
		fprintf(stderr, "ebbkv: %s\n", err);
		return 1;
	}
	return 0;
bad:
	fprintf(stderr, "ebbkv: bad arguments (ebbkv --help)\n");
	return 2;
}
