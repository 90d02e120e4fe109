/* agent: khagent, the program that owns one host's nodes, fabric and
 * consoles for a facility whose front end runs elsewhere (docs/hosts.md).
 * It listens on the hosts' underlay for the front end (link.h), and does
 * what it is told: wire nodes into domains, boot them from ramdisks the
 * front end sends once per content, carry their consoles, kill them, join
 * domains to other hosts by VXLAN, report their usage. */
#ifndef KH_AGENT_H
#define KH_AGENT_H

/* khagent's main: parses argv, runs until SIGTERM.  Returns the exit code. */
int agent_main(int argc, char **argv);

#endif
