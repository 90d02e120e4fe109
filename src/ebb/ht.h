/* ht: a distributed hash table EBB (docs/ebb.md) with three placements
 * behind one interface: centralized (every entry on the home node),
 * replicated (every member node holds every entry; writes go through the
 * home, reads are local) and partitioned (consistent hashing over the
 * members).  The home switches placement, or the set of member nodes,
 * while the table is in use, and no entry is lost: owners refuse
 * operations while a switch moves the entries, and clients retry. */
#ifndef KH_EBB_HT_H
#define KH_EBB_HT_H

#include <stddef.h>
#include <stdint.h>

#include "ebb/ebb.h"

enum ht_mode { HT_CENTRAL = 0, HT_REPLICATED = 1, HT_PARTITIONED = 2 };
#define HT_KEY_MAX 250
#define HT_VAL_MAX (1u << 20)

extern const struct ebb_type ht_type;
int ht_register(void);
/* A new table whose home is this node, with this node its one member. */
ebb_id ht_new(enum ht_mode mode);
/* Store, fetch (*val is malloc'd, the caller frees it), remove.  Return 0;
 * 1 for a get or del of a key that is not there; -1 on failure (a bad
 * key or value, a node that does not answer for 30 s). */
int ht_set(ebb_id id, const void *key, size_t klen, const void *val, size_t vlen);
int ht_get(ebb_id id, const void *key, size_t klen, void **val, size_t *vlen);
int ht_del(ebb_id id, const void *key, size_t klen);
/* A set whose value is a then b (a header and data kept apart by the
 * caller: no copy to put them together). */
int ht_set2(ebb_id id, const void *key, size_t klen, const void *a, size_t alen, const void *b,
	    size_t blen);
/* A get that hands the value to fn instead of a malloc'd copy: fn(arg,
 * val, vlen) is called once if the key is there, before ht_get_to
 * returns; it may run under the table's lock, so it only copies the bytes
 * (it must not call the table).  Returns as ht_get. */
typedef void (*ht_sink)(void *arg, const void *val, size_t vlen);
int ht_get_to(ebb_id id, const void *key, size_t klen, ht_sink fn, void *arg);
/* On the home only: move every entry to a new placement and set of member
 * nodes (the home need not stay one).  Returns 0, or -1 (then nothing
 * changed, or, if a member failed halfway, the entries the others held). */
int ht_switch(ebb_id id, enum ht_mode mode, const uint16_t *members, size_t n);
/* What this node knows: placement, epoch, entries held here. */
enum ht_mode ht_mode(ebb_id id);
uint32_t ht_epoch(ebb_id id);
size_t ht_local_count(ebb_id id);
/* Operations that were refused by a switching owner and retried (here). */
uint64_t ht_retries(ebb_id id);
const char *ht_mode_name(enum ht_mode m);
int ht_mode_parse(const char *s, enum ht_mode *m);

#endif
