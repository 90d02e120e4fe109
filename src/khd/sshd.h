/* sshd: khd's own OpenSSH server, so that `ssh con<C>@HOST` with the stock
 * client reaches control channel con<C> (docs/channels.md).  khd runs
 * Debian's /usr/sbin/sshd with its own host key and configuration under
 * DIR/ssh, in a mount namespace where the user database is khd's; the
 * host's sshd, its configuration and its users are never touched. */
#ifndef KH_SSHD_H
#define KH_SSHD_H

#include <stddef.h>
#include <sys/types.h>

struct khd;

/* The login con<C> is uid SSHD_UID_BASE + C (channels start at 2): the
 * uid, which the kernel vouches for on khd's ssh socket, is what says
 * which channel a session may open.  Below the channels: sshd's privilege
 * separation user and the user that looks keys up.  The range
 * 0x70000000..0x7ffdffff is one systemd leaves unused. */
#define SSHD_UID_BASE	 0x70000000u
#define SSHD_UID_PRIVSEP (SSHD_UID_BASE + 0)
#define SSHD_UID_KEYS	 (SSHD_UID_BASE + 1)
#define SSHD_CHAN_MAX	 0x0ffdfffe
/* The login `kh`: the service interface for programs (in nodes, or
 * anywhere) that run khget, khctl and khdo with a principal's credential
 * (docs/ebb.md).  A key a principal registered logs in; every request
 * still carries the principal's name and credential. */
#define SSHD_SVC_USER "kh"
#define SSHD_UID_SVC  (SSHD_UID_BASE + 0x0ffdffff)

/* Inside sshd's namespace: the session program and khd's ssh socket. */
#define SSHD_RUNDIR "/run/kittyhawk"
#define SSHD_SOCKET SSHD_RUNDIR "/khd.sock"
#define SSHD_KHSSH  SSHD_RUNDIR "/khssh"

struct sshd_conf {
	int port;	     /* 1..65535 */
	const char *listen;  /* ListenAddress; NULL: every address */
	const char *program; /* the sshd binary; NULL: /usr/sbin/sshd */
};

/* Prepare DIR/ssh (host key once, configuration, user files), stop an sshd
 * a killed khd left behind, check that the port is free, start sshd and
 * wait until it listens.  From then on khd restarts it when it dies.
 * Returns 0, or -1 with a one-line reason in err. */
int sshd_start(struct khd *k, const struct sshd_conf *conf, char *err, size_t errlen);
/* Channels may have come or gone: bring sshd's user list up to date. */
void sshd_users(struct khd *k);
/* Stop sshd (khd is stopping). */
void sshd_stop(struct khd *k);
/* The channel a session uid may open, or -1. */
int sshd_uid_chan(uid_t uid);
/* Parse --ssh-port: 1..65535.  Returns the port or -1. */
int sshd_parse_port(const char *s);

#endif
