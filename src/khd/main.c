/* khd: the Kittyhawk service daemon.  One process, one event loop, one
 * facility under one directory:  khd -d DIR [--nodes N] [--host NAME]. */
#include "khd/hosts.h"
#include "khd/khd.h"
#include "khd/config.h"
#include "policy/policy.h"
#include "khd/machine.h"
#include "khd/meter.h"
#include "khd/metrics.h"
#include "khd/sshd.h"
#include "common/log.h"
#include "common/util.h"
#include "state/state.h"
#include "fabric/addr.h"
#include "fabric/fabric.h"
#include "srviface/srviface.h"
#include "allocator/facility.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

struct opts {
	const char *dir;
	const char *host;
	const char *state; /* --state SPEC: overrides khd.conf's state line */
	int nodes;	   /* -1: as configured */
	int sync_full;
	int foreground;
	int verbose;
	uint64_t load_timeout_ms;
	struct sshd_conf ssh;	     /* --ssh-port, --ssh-listen: port 0, no sshd */
	struct metrics_conf metrics; /* --metrics-port, --metrics-listen */
	int no_fabric;
	int no_rdma;
	int stop_nodes; /* --stop-nodes: stop khd (running or not) and every node */
	int keep_nodes; /* --keep-nodes: stop the running khd, leaving the nodes running */
};

static void
usage(void)
{
	fprintf(stderr,
		"usage: khd [-F] [-v] [-d DIR] [--nodes N] [--host NAME] [--sync normal|full]\n"
		"           [--state sqlite|postgresql:CONNINFO]\n"
		"           [--ssh-port PORT [--ssh-listen ADDR]]\n"
		"           [--metrics-port PORT [--metrics-listen ADDR]]\n"
		"           [--load-timeout MS] [--no-fabric] [--no-rdma]\n"
		"       khd [-d DIR] --stop-nodes | --keep-nodes\n");
	exit(2);
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {{"dir", required_argument, NULL, 'd'},
						 {"nodes", required_argument, NULL, 'n'},
						 {"host", required_argument, NULL, 'H'},
						 {"sync", required_argument, NULL, 's'},
						 {"foreground", no_argument, NULL, 'F'},
						 {"verbose", no_argument, NULL, 'v'},
						 {"help", no_argument, NULL, 'h'},
						 {"load-timeout", required_argument, NULL, 'L'},
						 {"ssh-port", required_argument, NULL, 1001},
						 {"ssh-listen", required_argument, NULL, 1002},
						 {"metrics-port", required_argument, NULL, 1003},
						 {"metrics-listen", required_argument, NULL, 1004},
						 {"no-fabric", no_argument, NULL, 'X'},
						 {"no-rdma", no_argument, NULL, 1005},
						 {"state", required_argument, NULL, 1006},
						 {"stop-nodes", no_argument, NULL, 1007},
						 {"keep-nodes", no_argument, NULL, 1008},
						 {NULL, 0, NULL, 0}};
	uint64_t v;
	int ch;
	char err[160];

	*o = (struct opts){.dir = "/var/lib/kittyhawk", .nodes = -1, .load_timeout_ms = 10000};
	while ((ch = getopt_long(argc, argv, "d:n:H:s:L:XFvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->dir = optarg;
			break;
		case 'n':
			if (parse_uint(optarg, 0, KH_MAX_NODES, &v) < 0) {
				fprintf(stderr, "khd: --nodes takes 0..%d\n", KH_MAX_NODES);
				exit(2);
			}
			o->nodes = (int)v;
			break;
		case 'H':
			o->host = optarg;
			break;
		case 's':
			if (strcmp(optarg, "full") && strcmp(optarg, "normal")) {
				fprintf(stderr, "khd: --sync takes normal or full\n");
				exit(2);
			}
			o->sync_full = strcmp(optarg, "full") == 0;
			break;
		case 'L':
			if (parse_uint(optarg, 100, 3600000, &v) < 0) {
				fprintf(stderr, "khd: --load-timeout takes 100..3600000 ms\n");
				exit(2);
			}
			o->load_timeout_ms = v;
			break;
		case 'X':
			o->no_fabric = 1;
			break;
		case 1001:
			if ((o->ssh.port = sshd_parse_port(optarg)) < 0) {
				fprintf(stderr, "khd: --ssh-port takes 1..65535, not '%.40s'\n",
					optarg);
				exit(2);
			}
			break;
		case 1002:
			o->ssh.listen = optarg;
			break;
		case 1003:
			if ((o->metrics.port = sshd_parse_port(optarg)) < 0) {
				fprintf(stderr, "khd: --metrics-port takes 1..65535, not '%.40s'\n",
					optarg);
				exit(2);
			}
			break;
		case 1004:
			o->metrics.listen = optarg;
			break;
		case 1005:
			o->no_rdma = 1;
			break;
		case 1006:
			if (config_state_check(optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "khd: --state: %s\n", err);
				exit(2);
			}
			o->state = optarg;
			break;
		case 1007:
			o->stop_nodes = 1;
			break;
		case 1008:
			o->keep_nodes = 1;
			break;
		case 'F':
			o->foreground = 1;
			break;
		case 'v':
			o->verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (o->ssh.listen && o->ssh.port <= 0) {
		fprintf(stderr, "khd: --ssh-listen needs --ssh-port\n");
		exit(2);
	}
	if (o->stop_nodes && o->keep_nodes) {
		fprintf(stderr, "khd: --stop-nodes and --keep-nodes exclude each other\n");
		exit(2);
	}
	if (o->metrics.listen && o->metrics.port <= 0) {
		fprintf(stderr, "khd: --metrics-listen needs --metrics-port\n");
		exit(2);
	}
}

static int
lock_dir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX], pid[32] = "";
	snprintf(path, sizeof(path), "%s/khd.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen, "%s is in use by another khd%s%s%s", dir,
			 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		close(fd);
		return -1;
	}
	return fd;
}

/* --stop-nodes, --keep-nodes: signal the khd serving dir and wait until it
 * has stopped.  Returns 1 when it stopped, 0 when none runs, -1 with err. */
static int
signal_khd(const char *dir, int sig, char *err, size_t errlen)
{
	char path[PATH_MAX], pid[32] = "";
	snprintf(path, sizeof(path), "%s/khd.lock", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return 0;
	}
	ssize_t n = read(fd, pid, sizeof(pid) - 1);
	pid[n > 0 ? n : 0] = '\0';
	if (atoi(pid) <= 0 || kill(atoi(pid), sig) < 0) {
		snprintf(err, errlen, "cannot signal the khd of %s (pid '%s'): %s", dir, pid,
			 strerror(errno));
		close(fd);
		return -1;
	}
	/* Stopping nodes takes up to a second or so each when they resist. */
	for (int i = 0; i < 6000; i++) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			close(fd);
			return 1;
		}
		usleep(20000);
	}
	close(fd);
	snprintf(err, errlen, "the khd of %s (pid %s) did not stop within 120 s", dir, pid);
	return -1;
}

static void
write_pid(int lockfd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(lockfd, 0) == 0)
		(void)!pwrite(lockfd, buf, (size_t)n, 0);
}

/* Open state, load it, give the facility its id and pool. */
static int
start_facility(struct khd *k, const struct opts *o, char *err, size_t errlen)
{
	struct facility *f = &k->fac;
	struct config cfg;
	struct alloc_result res;
	char path[PATH_MAX + 16], val[64];

	snprintf(path, sizeof(path), "%s/khd.conf", k->dir);
	if (config_load(path, &cfg, err, errlen) < 0)
		return -1;
	const char *spec = o->state ? o->state : cfg.state[0] ? cfg.state : "sqlite";
	if ((f->st = state_open(spec, k->dir, o->sync_full, err, errlen)) == NULL) {
		config_free(&cfg);
		return -1;
	}
	log_info("state: %s", f->st->ops->name);
	if (state_load(f->st, f) < 0) {
		if (state_spec_check(spec, val, sizeof(val)) == STATE_PG)
			snprintf(err, errlen, "PostgreSQL: cannot load state (see khd.log)");
		else
			snprintf(err, errlen, "%s/state.db: cannot load state (see khd.log)",
				 k->dir);
		config_free(&cfg);
		return -1;
	}
	if (state_get_meta(f->st, "facility_id", val, sizeof(val)) == 1) {
		f->id = (uint32_t)strtoul(val, NULL, 16);
	} else {
		f->id = randombytes_random();
		snprintf(val, sizeof(val), "%08x", f->id);
		if (state_put_meta(f->st, "facility_id", val) < 0) {
			snprintf(err, errlen, "cannot write state");
			config_free(&cfg);
			return -1;
		}
	}
	f->next_netid = NETID_FIRST_PRIVATE;
	f->next_chan = KH_FIRST_CHAN;
	if (state_get_meta(f->st, "next_netid", val, sizeof(val)) == 1)
		f->next_netid = atoi(val);
	if (state_get_meta(f->st, "next_chan", val, sizeof(val)) == 1)
		f->next_chan = atoi(val);

	if (cfg.ntypes == 0) {
		/* No configuration: keep the stored types, or make the default. */
		memcpy(cfg.types, f->types, sizeof(cfg.types));
		cfg.ntypes = f->ntypes;
		if (cfg.ntypes == 0) {
			config_default_type(&cfg.types[0], 64);
			cfg.ntypes = 1;
		}
	}
	if (o->nodes >= 0)
		cfg.types[0].count = o->nodes;
	k->policy = cfg.policy; /* khd's from now on */
	cfg.policy = NULL;
	/* The host name first: the one-host facility's host is named after it. */
	if (o->host)
		snprintf(f->host, sizeof(f->host), "%s", o->host);
	else if (cfg.host[0])
		snprintf(f->host, sizeof(f->host), "%s", cfg.host);
	else if (gethostname(f->host, sizeof(f->host)) < 0)
		snprintf(f->host, sizeof(f->host), "localhost");
	if (alloc_pool_hosts(f, cfg.types, cfg.ntypes, cfg.hosts, cfg.nhosts, &res) < 0 ||
	    alloc_init_domains(f, &res) < 0) {
		snprintf(err, errlen, "%s", res.msg);
		return -1;
	}
	k->on_stop_keep = cfg.on_stop_keep;
	if (cfg.cluster_key[0] == '/' || cfg.cluster_key[0] == '\0')
		snprintf(k->cluster_key, sizeof(k->cluster_key), "%s", cfg.cluster_key);
	else
		snprintf(k->cluster_key, sizeof(k->cluster_key), "%.2000s/%.2000s", k->dir,
			 cfg.cluster_key);
	alloc_recount(f);
	/* Limits hold across a restart: holdings are counted from the state. */
	policy_start(k->policy, f, policy_now_ms());
	return 0;
}

static void
signal_event(struct ev *ev, int fd, int events, void *arg)
{
	struct signalfd_siginfo si;
	struct khd *k = arg;
	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		/* SIGTERM and SIGINT as khd.conf says (on_stop); SIGUSR1 leaves
		 * the nodes running (an upgrade), SIGUSR2 stops them too. */
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGUSR1 ||
		    si.ssi_signo == SIGUSR2) {
			k->keep_nodes =
			    si.ssi_signo == SIGUSR1 || (si.ssi_signo != SIGUSR2 && k->on_stop_keep);
			log_info("signal %u: stopping%s", si.ssi_signo,
				 k->keep_nodes ? " (running nodes keep running)"
					       : " with the nodes");
			ev_stop(ev);
		}
	}
}

/* The service interface (docs/ebb.md): nodes in the public domain reach
 * khd's sshd at the facility's address there, port 22, and are told so
 * in their environment.  Without a fabric there is no public domain to
 * serve; a failure here is logged, and khd serves everything else. */
static void
service_start(struct khd *k, const struct sshd_conf *ssh)
{
	char err[256], a4[32];
	if (k->fab == NULL)
		return;
	int fd = fabric_service_listen(k->fab, NETID_PUBLIC, 22, err, sizeof(err));
	const char *to =
	    ssh->listen && strcmp(ssh->listen, "0.0.0.0") != 0 ? ssh->listen : "127.0.0.1";
	if (fd < 0 || (k->srv = srviface_new(k->ev, fd, to, ssh->port, err, sizeof(err))) == NULL) {
		log_warnx("service interface: %s", err);
		if (fd >= 0)
			close(fd);
		return;
	}
	addr_gateway4(NETID_PUBLIC, a4, sizeof(a4));
	snprintf(k->srv_env, sizeof(k->srv_env), "KH_SOCKET=ssh://kh@%s", a4);
	log_info("service interface: ssh://kh@%s (public domain) relayed to sshd at %s:%d", a4, to,
		 ssh->port);
}

int
main(int argc, char **argv)
{
	struct khd *k = calloc(1, sizeof(*k));
	struct opts o;
	char err[512], logpath[PATH_MAX + 16];
	int report = -1, lockfd = -1, logging = 0, machines = 0;

	if (k == NULL)
		return 1;
	parse_opts(argc, argv, &o);
	if (sodium_init() < 0)
		snprintf(err, sizeof(err), "libsodium failed to start");
	else if (mkdir(o.dir, 0700) < 0 && errno != EEXIST)
		snprintf(err, sizeof(err), "%s: %s", o.dir, strerror(errno));
	else if (realpath(o.dir, k->dir) == NULL)
		snprintf(err, sizeof(err), "%s: %s", o.dir, strerror(errno));
	else
		err[0] = '\0';
	if (err[0]) {
		fprintf(stderr, "khd: %s\n", err);
		free(k);
		return 1;
	}

	/* A khd serving the directory is told to stop (with or without its
	 * nodes); when none is, --stop-nodes takes over the nodes left
	 * running and stops them, as a start and an immediate stop would. */
	if (o.stop_nodes || o.keep_nodes) {
		int rc = signal_khd(k->dir, o.stop_nodes ? SIGUSR2 : SIGUSR1, err, sizeof(err));
		if (rc != 0 || o.keep_nodes) {
			if (rc < 0)
				fprintf(stderr, "khd: %s\n", err);
			free(k);
			return rc < 0 ? 1 : 0;
		}
		o.foreground = 1;
	}

	/* Daemon: the parent waits until the child is serving (or failed) so
	 * that "khd -d DIR && khget ..." never races. */
	if (!o.foreground) {
		int p[2];
		pid_t pid = pipe2(p, O_CLOEXEC) < 0 ? -1 : fork();
		if (pid < 0) {
			fprintf(stderr, "khd: cannot start: %s\n", strerror(errno));
			free(k);
			return 1;
		}
		if (pid > 0) {
			char msg[600];
			close(p[1]);
			ssize_t n = read(p[0], msg, sizeof(msg) - 1);
			free(k);
			if (n > 0 && msg[0] == '0')
				return 0;
			msg[n > 0 ? n : 0] = '\0';
			fprintf(stderr, "khd: %s\n", n > 1 ? msg + 1 : "failed to start");
			return 1;
		}
		close(p[0]);
		report = p[1];
		setsid();
	}

	if ((lockfd = lock_dir(k->dir, err, sizeof(err))) < 0)
		goto fail;
	snprintf(logpath, sizeof(logpath), "%s/khd.log", k->dir);
	log_init("khd", logpath, o.foreground ? o.verbose + (o.verbose > 0) : 0);
	logging = 1;
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	k->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	k->ev = ev_new();
	k->lfd = -1;
	k->rdma_watched = -1;
	k->exits_watched = -1;
	k->started_ns = now_ns();
	k->load_timeout_ms = o.load_timeout_ms;
	k->no_fabric = o.no_fabric;
	k->no_rdma = o.no_rdma;
	adm_init(&k->adm);
	/* sshd and the metrics port early: a taken port stops khd before it
	 * sets up nodes.  The meter before the machines: leftover nodes of a
	 * khd that died are charged before they are stopped. */
	if (start_facility(k, &o, err, sizeof(err)) < 0 ||
	    metrics_start(k, &o.metrics, err, sizeof(err)) < 0 ||
	    (o.ssh.port > 0 && sshd_start(k, &o.ssh, err, sizeof(err)) < 0) ||
	    meter_init(k, err, sizeof(err)) < 0 ||
	    (machines = 1, machines_init(k, err, sizeof(err)) < 0) ||
	    hosts_init(k, err, sizeof(err)) < 0)
		goto fail;
	meter_start(k);
	if (o.ssh.port > 0)
		service_start(k, &o.ssh);
	snprintf(k->sock, sizeof(k->sock), "%.*s/khd.sock", (int)sizeof(k->sock) - 10, k->dir);
	if (strlen(k->dir) + 9 > sizeof(k->sock) - 1) {
		snprintf(err, sizeof(err), "directory path too long for a Unix socket: %s", k->dir);
		goto fail;
	}
	/* After every fork khd makes at start: the worker is a thread. */
	if (adm_worker_start(&k->adm) < 0)
		log_warn("admission worker (credentials are checked on the main loop)");
	if (server_listen(k, err, sizeof(err)) < 0)
		goto fail;
	ev_watch(k->ev, k->sigfd, EV_READ, signal_event, k);
	write_pid(lockfd);
	log_info("khd %s serving facility %08x (%d nodes) on %s", KH_VERSION, k->fac.id,
		 k->fac.nnodes, k->sock);
	if (report >= 0) {
		(void)!write(report, "0", 1);
		close(report);
		stdio_to_null();
	}

	if (o.stop_nodes)
		log_info("khd --stop-nodes: stopping %d nodes left running", k->adopted);
	else
		ev_run(k->ev);

	srviface_free(k->srv);
	k->srv = NULL;
	sshd_stop(k);
	server_close(k);
	adm_worker_stop(&k->adm);
	metrics_stop(k);
	meter_close(k); /* a last sample while the nodes still run */
	machines_close(k);
	hosts_close(k);
	state_close(k->fac.st);
	fac_free(&k->fac);
	policy_free(k->policy);
	ev_free(k->ev);
	close(k->sigfd);
	log_info("khd stopped");
	log_close();
	close(lockfd);
	free(k);
	return 0;
fail:
	k->keep_nodes = 1; /* nodes adopted here run on for the next khd */
	sshd_stop(k);
	adm_worker_stop(&k->adm);
	metrics_stop(k);
	meter_close(k);
	/* Nothing of this khd stays behind (the images mount, nodes' network
	 * namespaces), and the directory is free again before whoever waits
	 * for our answer gets it. */
	if (machines)
		machines_close(k);
	hosts_close(k);
	if (lockfd >= 0)
		close(lockfd);
	if (report >= 0) {
		char msg[600];
		int n = snprintf(msg, sizeof(msg), "1%s", err);
		(void)!write(report, msg, (size_t)n);
	} else {
		fprintf(stderr, "khd: %s\n", err);
	}
	if (logging && !o.foreground)
		log_warnx("%s", err);
	if (k->fac.st)
		state_close(k->fac.st);
	fac_free(&k->fac);
	policy_free(k->policy);
	if (k->ev)
		ev_free(k->ev);
	free(k);
	return 1;
}
