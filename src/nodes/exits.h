/* exits: the exit status of processes that are not our children.  A node
 * adopted from an earlier khd (docs/nodes.md, "Nodes outlive khd") has a
 * first process khd cannot wait for; the kernel's taskstats interface
 * (generic netlink family TASKSTATS) tells a listener registered on every
 * CPU the exit code of each task that ends there, before the task's pidfd
 * turns readable.  This keeps the codes of the pids it is told to watch,
 * and throws the rest away. */
#ifndef KH_EXITS_H
#define KH_EXITS_H

#include <stddef.h>
#include <sys/types.h>

struct exits;

/* Listen for exits on every CPU.  Needs root in the host's namespaces.
 * NULL with err when the kernel has no taskstats (or refuses). */
struct exits *exits_open(char *err, size_t errlen);
/* Stop listening and free it (NULL is fine). */
void exits_close(struct exits *x);
/* The descriptor an event loop watches: readable when exits are waiting
 * (call exits_drain, or the socket's buffer may drop some). */
int exits_fd(const struct exits *x);
/* Start or stop keeping pid's exit code.  exits_watch returns 0, or -1
 * when the table is full. */
int exits_watch(struct exits *x, pid_t pid);
void exits_unwatch(struct exits *x, pid_t pid);
/* How many pids it watches. */
int exits_watching(const struct exits *x);
/* Read what the kernel sent (never blocks). */
void exits_drain(struct exits *x);
/* Drain, then pid's wait status (as waitpid's) if its exit was seen: 1;
 * 0 when not (yet, or lost). */
int exits_status(struct exits *x, pid_t pid, int *status);
/* How many messages the kernel dropped because they were not read in
 * time (the socket's ENOBUFS). */
unsigned long exits_lost(const struct exits *x);

#endif
