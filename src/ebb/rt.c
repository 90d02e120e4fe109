/* rt: the runtime of one process: its loops, the node's id map (each EBB's
 * root and per-core representatives, as EbbRT's LocalIdMap), the data a
 * home node gives to nodes that miss (its GlobalIdMap), the types known
 * here, and the miss path that fills each thread's representative cache. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/ebb_int.h"

__thread struct ebb_slot ebb_tls_slots[EBB_SLOTS];
static __thread int tls_core = -1;

struct ent {
	struct ent *next;
	ebb_id id;
	const struct ebb_type *type;
	void *root;
	void *reps[EBB_MAX_CORES];
	char *global; /* on the home: type name, NUL, data */
	size_t globallen;
};

#define NBUCKETS 1024
#define NTYPES	 32

static struct rt {
	int up;
	unsigned cores;
	uint16_t node;
	struct loop *loops[EBB_MAX_CORES];
	/* mu guards the map and the types; miss_mu serialises the making of
	 * roots (a root made from a remote miss waits for the home without
	 * holding mu, and a root's handler may miss on another EBB) */
	pthread_mutex_t mu;
	pthread_mutex_t miss_mu;
	struct ent *map[NBUCKETS];
	const struct ebb_type *types[NTYPES];
	unsigned ntypes;
	uint32_t nextid;
	int nextcore;
	uint64_t misses;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void
tls_clear(void)
{
	memset(ebb_tls_slots, 0, sizeof(ebb_tls_slots));
	tls_core = -1;
}

void
rt_thread_core(int core)
{
	tls_clear();
	tls_core = core;
}

struct loop *
rt_loop(int core)
{
	if (!R.up || core < 0 || core >= EBB_MAX_CORES)
		return NULL;
	return R.loops[core];
}

/* Core i's loop to the i-th CPU of the process's affinity, round robin
 * (the messenger's loop is not pinned: it moves to where there is room).
 * A loop that stays on its CPU keeps its cache and is never put on the
 * same CPU as another loop while one is idle (ebbkv under memcaslap on a
 * 2-CPU host: up to 1.3x the requests per second); but it cannot move
 * away from another program's load on its CPU either. */
static void
pin_loops(unsigned cores)
{
	cpu_set_t set;
	int cpus[CPU_SETSIZE], n = 0;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	for (unsigned i = 0; i < cores && n > 0; i++)
		loop_pin(R.loops[i], cpus[i % (unsigned)n]);
}

int
ebb_init(const struct ebb_conf *conf, char *err, size_t errlen)
{
	if (R.up)
		return seterr(err, errlen, "the EBB runtime is already running in this process");
	unsigned cores = conf->cores;
	if (cores == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cores = n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
	}
	if (cores > EBB_MAX_CORES - 2)
		return seterr(err, errlen, "cores: at most %d", EBB_MAX_CORES - 2);
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&R.miss_mu, &ma);
	pthread_mutexattr_destroy(&ma);
	R.cores = cores;
	R.node = conf->node;
	R.nextid = EBB_STATIC;
	R.nextcore = (int)cores + 1;
	R.misses = 0;
	R.ntypes = 0;
	/* loops 0..cores-1, then the messenger's */
	for (unsigned i = 0; i <= cores; i++) {
		R.loops[i] = loop_new((int)i, err, errlen);
		if (R.loops[i] == NULL)
			goto fail;
	}
	R.up = 1;
	tls_clear();
	for (unsigned i = 0; i <= cores; i++) {
		if (loop_start(R.loops[i]) < 0) {
			seterr(err, errlen, "event loop thread: %s", strerror(errno));
			goto fail;
		}
	}
	if (conf->pin)
		pin_loops(cores);
	if (msg_start(conf->listen, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	for (unsigned i = 0; i <= cores; i++) {
		loop_free(R.loops[i]);
		R.loops[i] = NULL;
	}
	R.up = 0;
	pthread_mutex_destroy(&R.miss_mu);
	return -1;
}

void
ebb_fini(void)
{
	if (!R.up)
		return;
	msg_stop();
	for (unsigned i = 0; i <= R.cores; i++)
		loop_stop(R.loops[i]);
	for (unsigned i = 0; i <= R.cores; i++) {
		loop_free(R.loops[i]);
		R.loops[i] = NULL;
	}
	for (size_t b = 0; b < NBUCKETS; b++) {
		while (R.map[b] != NULL) {
			struct ent *e = R.map[b];
			R.map[b] = e->next;
			for (int c = 0; c < EBB_MAX_CORES; c++)
				if (e->reps[c] != NULL && e->type->rep_free != NULL)
					e->type->rep_free(e->reps[c]);
			if (e->root != NULL && e->type->root_free != NULL)
				e->type->root_free(e->root);
			free(e->global);
			free(e);
		}
	}
	R.up = 0;
	pthread_mutex_destroy(&R.miss_mu);
	tls_clear();
}

uint16_t
ebb_node(void)
{
	return R.node;
}

unsigned
ebb_cores(void)
{
	return R.cores;
}

int
ebb_port(void)
{
	return msg_port();
}

int
ebb_node_addr(uint16_t n, const char *addr)
{
	return msg_node_addr(n, addr);
}

int
ebb_node_addr_get(uint16_t n, char *buf, size_t len)
{
	return msg_node_addr_get(n, buf, len);
}

void
ebb_node_forget(uint16_t n)
{
	msg_node_forget(n);
}

int
ebb_node_connect(uint16_t n)
{
	return msg_node_connect(n);
}

int
ebb_node_connected(uint16_t n)
{
	return msg_node_connected(n);
}

size_t
ebb_nodes(uint16_t *out, size_t max)
{
	return msg_nodes(out, max);
}

int
ebb_core(void)
{
	if (tls_core >= 0)
		return tls_core;
	pthread_mutex_lock(&R.mu);
	if (R.nextcore < EBB_MAX_CORES)
		tls_core = R.nextcore++;
	pthread_mutex_unlock(&R.mu);
	return tls_core;
}

uint64_t
ebb_misses(void)
{
	pthread_mutex_lock(&R.mu);
	uint64_t n = R.misses;
	pthread_mutex_unlock(&R.mu);
	return n;
}

/* ---- the map ---- */

static struct ent *
find(ebb_id id)
{
	for (struct ent *e = R.map[(id * 2654435761u) >> 22]; e != NULL; e = e->next)
		if (e->id == id)
			return e;
	return NULL;
}

static struct ent *
find_or_add(ebb_id id)
{
	struct ent *e = find(id);
	if (e != NULL)
		return e;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->id = id;
	struct ent **b = &R.map[(id * 2654435761u) >> 22];
	e->next = *b;
	*b = e;
	return e;
}

static const struct ebb_type *
type_by_name(const char *name)
{
	for (unsigned i = 0; i < R.ntypes; i++)
		if (strcmp(R.types[i]->name, name) == 0)
			return R.types[i];
	return NULL;
}

int
ebb_type_register(const struct ebb_type *t)
{
	if (!R.up || t == NULL || t->name == NULL || t->root_new == NULL)
		return -1;
	int rc = 0;
	pthread_mutex_lock(&R.mu);
	const struct ebb_type *o = type_by_name(t->name);
	if (o == NULL) {
		if (R.ntypes < NTYPES)
			R.types[R.ntypes++] = t;
		else
			rc = -1;
	} else if (o != t) {
		rc = -1;
	}
	pthread_mutex_unlock(&R.mu);
	return rc;
}

ebb_id
ebb_id_new(void)
{
	pthread_mutex_lock(&R.mu);
	ebb_id id = 0;
	if (R.nextid <= 0xffff)
		id = EBB_ID(R.node, R.nextid++);
	pthread_mutex_unlock(&R.mu);
	return id;
}

int
ebb_create(ebb_id id, const struct ebb_type *t, const void *global, size_t len)
{
	if (!R.up || id == 0 || EBB_HOME(id) != R.node || len > (1u << 20))
		return -1;
	if (ebb_type_register(t) < 0)
		return -1;
	size_t nl = strlen(t->name);
	char *g = malloc(nl + 1 + len);
	if (g == NULL)
		return -1;
	memcpy(g, t->name, nl + 1);
	if (len > 0)
		memcpy(g + nl + 1, global, len);
	pthread_mutex_lock(&R.mu);
	struct ent *e = find_or_add(id);
	if (e == NULL || e->global != NULL || (e->type != NULL && e->type != t)) {
		pthread_mutex_unlock(&R.mu);
		free(g);
		return -1;
	}
	e->global = g;
	e->globallen = nl + 1 + len;
	pthread_mutex_unlock(&R.mu);
	return 0;
}

int
rt_global_get(ebb_id id, void **out, size_t *len)
{
	int rc = -1;
	pthread_mutex_lock(&R.mu);
	struct ent *e = find(id);
	if (e != NULL && e->global != NULL) {
		*out = malloc(e->globallen);
		if (*out != NULL) {
			memcpy(*out, e->global, e->globallen);
			*len = e->globallen;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&R.mu);
	return rc;
}

/* The global record of id: from this node's map when it is the home, else
 * from the home over the messenger (a remote miss).  *type is checked
 * against, or set from, the record's type name. */
static int
global_fetch(ebb_id id, const struct ebb_type **type, void **data, size_t *len)
{
	void *g = NULL;
	size_t gl = 0;
	if (EBB_HOME(id) == R.node) {
		if (rt_global_get(id, &g, &gl) < 0) {
			/* a local EBB nobody created: its type alone makes it */
			if (*type == NULL)
				return -1;
			*data = NULL;
			*len = 0;
			return 0;
		}
	} else {
		struct ebb_future *f = msg_miss(EBB_HOME(id), id);
		if (f == NULL)
			return -1;
		int s = ebb_future_wait(f, 10000);
		size_t l = 0;
		const void *d = ebb_future_data(f, &l);
		if (s == 0 && l > 0 && (g = malloc(l)) != NULL) {
			memcpy(g, d, l);
			gl = l;
		}
		ebb_future_free(f);
		if (g == NULL)
			return -1;
	}
	const char *name = g;
	size_t nl = strnlen(name, gl);
	if (nl == gl) {
		free(g);
		return -1;
	}
	pthread_mutex_lock(&R.mu);
	const struct ebb_type *t = type_by_name(name);
	pthread_mutex_unlock(&R.mu);
	if (t == NULL || (*type != NULL && *type != t)) {
		free(g);
		return -1;
	}
	*type = t;
	*len = gl - nl - 1;
	*data = NULL;
	if (*len > 0) {
		*data = malloc(*len);
		if (*data == NULL) {
			free(g);
			return -1;
		}
		memcpy(*data, (char *)g + nl + 1, *len);
	}
	free(g);
	return 0;
}

/* Find or make the node's root of id; type may be NULL (a message for an
 * EBB not met here yet: the home's record names the type).  Returns the
 * entry, or NULL. */
static struct ent *
root_get(ebb_id id, const struct ebb_type *type)
{
	pthread_mutex_lock(&R.mu);
	struct ent *e = find(id);
	if (e != NULL && e->root != NULL) {
		pthread_mutex_unlock(&R.mu);
		return (type == NULL || e->type == type) ? e : NULL;
	}
	pthread_mutex_unlock(&R.mu);

	pthread_mutex_lock(&R.miss_mu);
	pthread_mutex_lock(&R.mu);
	e = find(id);
	if (e != NULL && e->root != NULL) {
		pthread_mutex_unlock(&R.mu);
		pthread_mutex_unlock(&R.miss_mu);
		return (type == NULL || e->type == type) ? e : NULL;
	}
	R.misses++;
	pthread_mutex_unlock(&R.mu);
	void *data = NULL;
	size_t len = 0;
	void *root = NULL;
	if (global_fetch(id, &type, &data, &len) == 0)
		root = type->root_new(id, data, len);
	free(data);
	if (root == NULL) {
		pthread_mutex_unlock(&R.miss_mu);
		return NULL;
	}
	pthread_mutex_lock(&R.mu);
	e = find_or_add(id);
	if (e == NULL) {
		pthread_mutex_unlock(&R.mu);
		pthread_mutex_unlock(&R.miss_mu);
		if (type->root_free != NULL)
			type->root_free(root);
		return NULL;
	}
	e->type = type;
	e->root = root;
	pthread_mutex_unlock(&R.mu);
	pthread_mutex_unlock(&R.miss_mu);
	return e;
}

void *
ebb_root(ebb_id id, const struct ebb_type *t)
{
	if (!R.up || id == 0)
		return NULL;
	struct ent *e = root_get(id, t);
	return e != NULL ? e->root : NULL;
}

void *
ebb_miss(ebb_id id, const struct ebb_type *t)
{
	if (!R.up || id == 0)
		return NULL;
	int core = ebb_core();
	if (core < 0)
		return NULL;
	struct ent *e = root_get(id, t);
	if (e == NULL)
		return NULL;
	pthread_mutex_lock(&R.mu);
	void *rep = e->reps[core];
	pthread_mutex_unlock(&R.mu);
	if (rep == NULL) {
		rep = t->rep_new != NULL ? t->rep_new(e->root, (unsigned)core) : e->root;
		if (rep == NULL)
			return NULL;
		pthread_mutex_lock(&R.mu);
		R.misses++;
		e->reps[core] = rep;
		pthread_mutex_unlock(&R.mu);
	}
	struct ebb_slot *s = &ebb_tls_slots[(id ^ (id >> 16)) & (EBB_SLOTS - 1)];
	s->id = id;
	s->rep = rep;
	return rep;
}

void
rt_dispatch(struct ebb_msg *m)
{
	struct ent *e = root_get(m->ebb, NULL);
	if (e == NULL || e->type->msg == NULL) {
		ebb_msg_reply(m, EBB_ENOEBB, NULL, 0);
		return;
	}
	e->type->msg(m->ebb, e->root, m);
}
