/* counter: a distributed counter EBB (docs/ebb.md).  Each core counts in
 * its own representative, so inc and dec touch no shared cache line; val
 * sums every core of this node and asks every other node for its sum. */
#ifndef KH_EBB_COUNTER_H
#define KH_EBB_COUNTER_H

#include <stdint.h>

#include "ebb/ebb.h"

extern const struct ebb_type counter_type;

/* A new counter whose home is this node (0 on failure).  Other nodes reach
 * it by its id. */
ebb_id counter_new(void);
/* Register the type on a node that will only meet counters made elsewhere. */
int counter_register(void);

/* Add to this core's count.  The representative is made on the core's
 * first call; after that a call is a cache lookup and an add. */
static inline void
counter_add(ebb_id id, int64_t d)
{
	int64_t *v = ebb_rep(id, &counter_type);
	if (v != NULL)
		__atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}
static inline void
counter_inc(ebb_id id)
{
	counter_add(id, 1);
}
static inline void
counter_dec(ebb_id id)
{
	counter_add(id, -1);
}
/* This node's sum. */
int64_t counter_local(ebb_id id);
/* The sum over every node this one knows (ebb_nodes).  Returns 0, or -1
 * when a node did not answer (*val then has the others' sum). */
int counter_val(ebb_id id, int64_t *val);

#endif
