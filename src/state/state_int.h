/* state_int: what the backends share (not for callers of state.h): the
 * text forms of int lists and of a node's interface baselines, which both
 * keep in a text column. */
#ifndef KH_STATE_INT_H
#define KH_STATE_INT_H

#include "state/state.h"

#include <stddef.h>

/* The schema's version, kept in meta as "schema_version". */
#define STATE_SCHEMA_VERSION 1

/* "3,4,0,7" from v[0..n). */
void state_ints_text(char *buf, size_t len, const int *v, int n);
/* Back to at most max ints; returns how many. */
int state_text_ints(const char *s, int *v, int max);
/* A node's interface baselines as "slot:netid:rxB:txB:rxP:txP ...". */
void state_ports_encode(const struct state_meter_node *mn, char *buf, size_t len);
/* Into mn->port; a damaged entry is left out and makes it return -1. */
int state_ports_decode(const char *text, struct state_meter_node *mn);

#endif
