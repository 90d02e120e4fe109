/* khmcd: a memcached-compatible cache server (docs/mc.md).
 *   khmcd [-p PORT] [-m MEGABYTES] [-t THREADS] [-l ADDR] [-c MAXCONNS] [-f FACTOR]
 *         [-U 0] [--port-file FILE] [-v]
 * Defaults as memcached's: port 11211, 64 MB of items, 4 threads, every
 * address, 1024 connections.  It serves until SIGTERM or SIGINT. */
#include "common/log.h"
#include "common/util.h"
#include "mc/conn.h"
#include "mc/mc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

static const char usage[] =
    "usage: khmcd [-p PORT] [-m MEGABYTES] [-t THREADS] [-l ADDR] [-c MAXCONNS] [-f FACTOR]\n"
    "             [-U 0] [--port-file FILE] [--rdma auto|off|IFACE] [-v]\n";

static int
bad(const char *msg, const char *arg)
{
	fprintf(stderr, "khmcd: %s%s%s (see khmcd --help)\n", msg, arg ? " " : "", arg ? arg : "");
	return 2;
}

int
main(int argc, char **argv)
{
	struct mc_settings s;
	const char *port_file = NULL;
	uint64_t v;
	char err[256];

	mc_settings_default(&s);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("khmcd %s\n", MC_VERSION);
			return 0;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "-vv") == 0) {
			s.verbose += (int)strlen(a) - 1;
			continue;
		}
		static const char *const valued[] = {
		    "-p", "-m", "-t", "-c", "-l", "-f", "-U", "--port-file", "--buckets", "--rdma"};
		int known = 0;
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
			known |= strcmp(a, valued[k]) == 0;
		if (a[0] != '-')
			return bad("unexpected argument", a);
		if (!known)
			return bad("unknown option", a);
		if (next == NULL)
			return bad("option needs a value:", a);
		i++;
		if (strcmp(a, "-p") == 0) {
			if (parse_uint(next, 0, 65535, &v) < 0)
				return bad("-p takes a port, not", next);
			s.port = (uint16_t)v;
		} else if (strcmp(a, "-m") == 0) {
			if (parse_uint(next, 1, 1u << 19, &v) < 0)
				return bad("-m takes megabytes (1..524288), not", next);
			s.maxbytes = v << 20;
		} else if (strcmp(a, "-t") == 0) {
			if (parse_uint(next, 1, 256, &v) < 0)
				return bad("-t takes 1..256 threads, not", next);
			s.threads = (int)v;
		} else if (strcmp(a, "-c") == 0) {
			if (parse_uint(next, 1, 1000000, &v) < 0)
				return bad("-c takes a connection count, not", next);
			s.maxconns = (int)v;
		} else if (strcmp(a, "-l") == 0) {
			s.listen = next;
		} else if (strcmp(a, "-f") == 0) {
			char *end;
			s.factor = strtod(next, &end);
			if (*end != '\0' || !(s.factor > 1.0 && s.factor <= 4.0))
				return bad("-f takes a factor above 1 (1.25), not", next);
		} else if (strcmp(a, "-U") == 0) {
			if (strcmp(next, "0") != 0)
				return bad("there is no UDP: -U takes only 0, not", next);
		} else if (strcmp(a, "--port-file") == 0) {
			port_file = next;
		} else if (strcmp(a, "--rdma") == 0) {
			s.rdma = next;
		} else if (strcmp(a, "--buckets") == 0) {
			if (parse_uint(next, 8, UINT64_C(1) << 32, &v) < 0)
				return bad("--buckets takes a table size, not", next);
			s.buckets = v;
		} else {
			return bad("unknown option", a);
		}
	}
	log_init("khmcd", NULL, s.verbose);
	/* Room for -c connections and then some, as far as the hard limit
	 * allows (memcached does the same). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)s.maxconns + 64) {
		rl.rlim_cur = (rlim_t)s.maxconns + 64;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* SIGTERM and SIGINT stop the server through a signalfd; blocked
	 * before any thread starts, so that no thread takes them. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		perror("khmcd: signalfd");
		return 1;
	}
	struct mc_server *srv = mc_server_new(&s, err, sizeof(err));
	if (srv == NULL) {
		fprintf(stderr, "khmcd: %s\n", err);
		return 1;
	}
	if (port_file != NULL) {
		FILE *fp = fopen(port_file, "we");
		if (fp == NULL || fprintf(fp, "%u\n", mc_server_port(srv)) < 0 || fclose(fp) != 0) {
			fprintf(stderr, "khmcd: %s: cannot write the port\n", port_file);
			mc_server_free(srv);
			return 1;
		}
	}
	mc_server_stop_on(srv, sfd);
	if (s.verbose)
		log_info("serving on port %u, %llu MB, %d threads", mc_server_port(srv),
			 (unsigned long long)(s.maxbytes >> 20), s.threads);
	int rc = mc_server_run(srv);
	mc_server_free(srv);
	close(sfd);
	return rc == 0 ? 0 : 1;
}
