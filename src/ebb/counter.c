/* counter: per-core representatives, one cache line each, written only by
 * their own core (a plain load and store, atomic so that val may read them
 * from another core); the root lists them for val. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ebb/counter.h"

struct croot {
	pthread_mutex_t mu;
	int64_t *reps[EBB_MAX_CORES];
};

static void *
croot_new(ebb_id id, const void *global, size_t len)
{
	struct croot *r = calloc(1, sizeof(*r));
	if (r != NULL)
		pthread_mutex_init(&r->mu, NULL);
	return r;
}

static void *
crep_new(void *root, unsigned core)
{
	struct croot *r = root;
	int64_t *v = aligned_alloc(64, 64);
	if (v == NULL)
		return NULL;
	memset(v, 0, 64);
	pthread_mutex_lock(&r->mu);
	r->reps[core] = v;
	pthread_mutex_unlock(&r->mu);
	return v;
}

static int64_t
csum(struct croot *r)
{
	int64_t s = 0;
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < EBB_MAX_CORES; i++)
		if (r->reps[i] != NULL)
			s += __atomic_load_n(r->reps[i], __ATOMIC_RELAXED);
	pthread_mutex_unlock(&r->mu);
	return s;
}

static void
put64(uint8_t *p, int64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static int64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return (int64_t)v;
}

/* The one message: "what is your sum?" (no payload), answered with 8
 * bytes. */
static void
cmsg(ebb_id id, void *root, struct ebb_msg *m)
{
	uint8_t b[8];
	if (m->len != 0) {
		ebb_msg_reply(m, 1, NULL, 0);
		return;
	}
	put64(b, csum(root));
	ebb_msg_reply(m, 0, b, sizeof(b));
}

static void
crep_free(void *rep)
{
	free(rep);
}

static void
croot_free(void *root)
{
	struct croot *r = root;
	pthread_mutex_destroy(&r->mu);
	free(r);
}

const struct ebb_type counter_type = {
    .name = "counter",
    .root_new = croot_new,
    .rep_new = crep_new,
    .msg = cmsg,
    .rep_free = crep_free,
    .root_free = croot_free,
};

int
counter_register(void)
{
	return ebb_type_register(&counter_type);
}

ebb_id
counter_new(void)
{
	ebb_id id = ebb_id_new();
	if (id == 0 || ebb_create(id, &counter_type, NULL, 0) < 0)
		return 0;
	return id;
}

int64_t
counter_local(ebb_id id)
{
	struct croot *r = ebb_root(id, &counter_type);
	return r != NULL ? csum(r) : 0;
}

int
counter_val(ebb_id id, int64_t *val)
{
	uint16_t nodes[1024];
	size_t n = ebb_nodes(nodes, 1024);
	struct ebb_future *fs[1024] = {0};
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		if (nodes[i] != ebb_node())
			fs[i] = ebb_call(nodes[i], id, NULL, 0);
	int64_t s = counter_local(id);
	for (size_t i = 0; i < n; i++) {
		if (fs[i] == NULL)
			continue;
		size_t len;
		const uint8_t *d;
		if (ebb_future_wait(fs[i], 10000) == 0 &&
		    (d = ebb_future_data(fs[i], &len)) != NULL && len == 8)
			s += get64(d);
		else
			rc = -1;
		ebb_future_free(fs[i]);
	}
	*val = s;
	return rc;
}
