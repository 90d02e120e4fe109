/* facility: look-ups over the in-memory model.  Domains and channels are
 * kept sorted by id (ids only grow), so look-ups are binary searches. */
#include "allocator/alloc.h"
#include "allocator/facility.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

struct principal *
fac_principal(struct facility *f, const char *name, int *idx)
{
	for (int i = 0; i < f->nprincipals; i++)
		if (strcmp(f->principals[i].name, name) == 0) {
			if (idx)
				*idx = i;
			return &f->principals[i];
		}
	return NULL;
}

struct domain *
fac_domain(struct facility *f, int netid)
{
	int lo = 0, hi = f->ndomains - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (f->domains[mid].netid == netid)
			return &f->domains[mid];
		if (f->domains[mid].netid < netid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

struct channel *
fac_channel(struct facility *f, int id)
{
	int lo = 0, hi = f->nchannels - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (f->channels[mid].id == id)
			return &f->channels[mid];
		if (f->channels[mid].id < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

int
fac_type(struct facility *f, const char *name)
{
	for (int i = 0; i < f->ntypes; i++)
		if (strcmp(f->types[i].name, name) == 0)
			return i;
	return -1;
}

const struct fac_host *
fac_host_of(const struct facility *f, int rank)
{
	const struct node *n = fac_node_const(f, rank);
	if (n == NULL || n->host < 0 || n->host >= f->nhosts)
		return NULL;
	return &f->hosts[n->host];
}

int
fac_host_find(const struct facility *f, const char *name)
{
	for (int i = 0; i < f->nhosts; i++)
		if (strcmp(f->hosts[i].name, name) == 0)
			return i;
	return -1;
}

int
fac_host_usable(const struct fac_host *h)
{
	return h->state == HOST_LOCAL || h->state == HOST_UP;
}

const char *
fac_host_state_name(int state)
{
	static const char *const names[] = {
	    [HOST_LOCAL] = "local", [HOST_DOWN] = "down", [HOST_UP] = "up", [HOST_LOST] = "lost"};
	if (state < 0 || state > HOST_LOST)
		return "?";
	return names[state];
}

int
fac_host_set_state(struct facility *f, int h, int state, int64_t now_ms)
{
	if (h < 0 || h >= f->nhosts || state < HOST_LOCAL || state > HOST_LOST)
		return -1;
	/* The local host is khd itself: it is never down or lost, and an
	 * agent's host is never local. */
	if ((f->hosts[h].state == HOST_LOCAL) != (state == HOST_LOCAL))
		return -1;
	f->hosts[h].state = state;
	f->hosts[h].lost_ms = state == HOST_LOST ? now_ms : 0;
	return 0;
}

void *
fac_grow(void *arr, int *cap, int need, size_t sz)
{
	if (need <= *cap)
		return arr;
	int c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *p = realloc(arr, (size_t)c * sz);
	if (p == NULL)
		fatal("facility");
	*cap = c;
	return p;
}

void
fac_free(struct facility *f)
{
	free(f->hosts);
	free(f->nodes);
	free(f->principals);
	free(f->domains);
	free(f->channels);
	for (int i = 0; i < f->nkeys; i++)
		free(f->keys[i].line);
	free(f->keys);
	memset(f, 0, sizeof(*f));
}
