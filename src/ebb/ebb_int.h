/* libebb's insides, shared by its files: the runtime, the loops and the
 * messenger.  Nothing here is for programs. */
#ifndef KH_EBB_INT_H
#define KH_EBB_INT_H

#include <pthread.h>

#include "ebb/ebb.h"

struct loop;

/* loop.c */
struct loop *loop_new(int core, char *err, size_t errlen);
int loop_start(struct loop *l);
/* Ask the loop to stop, wait for its thread, run nothing more. */
void loop_stop(struct loop *l);
void loop_free(struct loop *l);
/* Keep the loop's thread on one CPU.  Returns 0 or -1. */
int loop_pin(struct loop *l, int cpu);
/* The loop the calling thread runs, or NULL. */
struct loop *loop_self(void);

/* rt.c */
struct loop *rt_loop(int core);
/* Set the calling thread's core (a loop's thread does at its start). */
void rt_thread_core(int core);
/* A message arrived for id: find or make its root (asking the home node
 * for a miss), then run its type's handler.  Runs on the messenger loop. */
void rt_dispatch(struct ebb_msg *m);
/* The data a node missing on id gets: type name, NUL, global data.  The
 * caller frees *out.  Returns 0, or -1 (no such EBB here). */
int rt_global_get(ebb_id id, void **out, size_t *len);

/* msg.c */
int msg_start(const char *listen, char *err, size_t errlen);
void msg_stop(void);
int msg_port(void);
int msg_node_addr(uint16_t n, const char *addr);
int msg_node_addr_get(uint16_t n, char *buf, size_t len);
void msg_node_forget(uint16_t n);
int msg_node_connect(uint16_t n);
int msg_node_connected(uint16_t n);
size_t msg_nodes(uint16_t *out, size_t max);
/* The messenger's loop core (handlers run there). */
int msg_core(void);
/* Ask home node n for id's global record (EBB_K_MISS). */
struct ebb_future *msg_miss(uint16_t n, ebb_id id);

#endif
