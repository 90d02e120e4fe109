/* facility: look-ups over the in-memory model.  Domains and channels are
 * kept sorted by id (ids only grow), so look-ups are binary searches. */
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
	free(f->nodes);
	free(f->principals);
	free(f->domains);
	free(f->channels);
	for (int i = 0; i < f->nkeys; i++)
		free(f->keys[i].line);
	free(f->keys);
	memset(f, 0, sizeof(*f));
}
