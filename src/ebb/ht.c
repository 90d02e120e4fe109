/* ht: the hash table EBB.  Each node's root holds two configurations:
 * cfg, the one its store matches (changed only by the home's install),
 * and view, the newest it has heard of, by which it routes its own
 * operations.  Every operation carries the sender's epoch; an owner whose
 * epoch differs answers "stale" (with its configuration), and an owner
 * that is being switched answers "busy"; the sender retries.  So an entry
 * is written either before its owner froze (and the switch moves it) or
 * after the new configuration is installed. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "ebb/ht.h"

#define MAXM	    1024
#define VPOINTS	    64 /* points on the ring per member */
#define DEADLINE_NS (30ull * 1000000000ull)

enum { ST_OK = 0, ST_NOTFOUND = 1, ST_BUSY = 2, ST_STALE = 3, ST_BAD = 4 };

struct entry {
	struct entry *next;
	uint64_t h;
	uint32_t klen, vlen;
	uint8_t kv[];
};

struct store {
	struct entry **b;
	size_t nb, n;
};

struct cfg {
	uint32_t epoch;
	uint8_t mode;
	uint16_t n;
	uint16_t members[MAXM];
	char addrs[MAXM][48];
	/* the ring (partitioned): sorted points and their nodes */
	uint64_t *pts;
	uint16_t *pnode;
	size_t npts;
};

/* A forward from a primary that is ahead of this node. */
struct held {
	struct held *next;
	uint32_t epoch;
	struct ebb_msg *m;
};

struct hroot {
	ebb_id id;
	struct held *held;
	pthread_mutex_t mu;
	struct cfg *cfg, *view;
	struct store st;
	int frozen;
	uint64_t retries;
	pthread_mutex_t swmu; /* one switch at a time (home) */
};

/* ---- bytes ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
	int oom;
};

static void
bput(struct buf *b, const void *d, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void
bu8(struct buf *b, uint8_t v)
{
	bput(b, &v, 1);
}

static void
bu16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	bput(b, x, 2);
}

static void
bu32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	bput(b, x, 4);
}

/* A reader that fails once and stays failed: hostile bytes never read
 * past their end. */
struct rd {
	const uint8_t *p;
	size_t n;
	int bad;
};

static const uint8_t *
rtake(struct rd *r, size_t n)
{
	if (r->bad || r->n < n) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->n -= n;
	return p;
}

static uint8_t
ru8(struct rd *r)
{
	const uint8_t *p = rtake(r, 1);
	return p ? p[0] : 0;
}

static uint16_t
ru16(struct rd *r)
{
	const uint8_t *p = rtake(r, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t
ru32(struct rd *r)
{
	const uint8_t *p = rtake(r, 4);
	return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		       (uint32_t)p[3] << 24
		 : 0;
}

static uint64_t
hash(const void *d, size_t n)
{
	const uint8_t *p = d;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	/* FNV's low bits are weak: mix */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* ---- the store ---- */

static struct entry *
st_find(struct store *s, uint64_t h, const void *k, size_t kl, struct entry ***where)
{
	if (s->nb == 0)
		return NULL;
	struct entry **p = &s->b[h & (s->nb - 1)];
	for (; *p != NULL; p = &(*p)->next)
		if ((*p)->h == h && (*p)->klen == kl && memcmp((*p)->kv, k, kl) == 0) {
			if (where)
				*where = p;
			return *p;
		}
	return NULL;
}

/* Store k with the value a then b (b may be empty); h is hash(k). */
static int
st_put(struct store *s, uint64_t h, const void *k, size_t kl, const void *a, size_t al,
       const void *b2, size_t bl)
{
	if (s->n + 1 > s->nb) {
		size_t nb = s->nb ? s->nb * 2 : 1024;
		struct entry **b = calloc(nb, sizeof(*b));
		if (b == NULL)
			return -1;
		for (size_t i = 0; i < s->nb; i++)
			while (s->b[i] != NULL) {
				struct entry *e = s->b[i];
				s->b[i] = e->next;
				e->next = b[e->h & (nb - 1)];
				b[e->h & (nb - 1)] = e;
			}
		free(s->b);
		s->b = b;
		s->nb = nb;
	}
	struct entry *e = malloc(sizeof(*e) + kl + al + bl);
	if (e == NULL)
		return -1;
	e->h = h;
	e->klen = (uint32_t)kl;
	e->vlen = (uint32_t)(al + bl);
	memcpy(e->kv, k, kl);
	if (al > 0)
		memcpy(e->kv + kl, a, al);
	if (bl > 0)
		memcpy(e->kv + kl + al, b2, bl);
	struct entry **where;
	struct entry *o = st_find(s, h, k, kl, &where);
	if (o != NULL) {
		e->next = o->next;
		*where = e;
		free(o);
		return 0;
	}
	e->next = s->b[h & (s->nb - 1)];
	s->b[h & (s->nb - 1)] = e;
	s->n++;
	return 0;
}

static int
st_del(struct store *s, uint64_t h, const void *k, size_t kl)
{
	struct entry **where;
	struct entry *o = st_find(s, h, k, kl, &where);
	if (o == NULL)
		return ST_NOTFOUND;
	*where = o->next;
	free(o);
	s->n--;
	return ST_OK;
}

static void
st_clear(struct store *s)
{
	for (size_t i = 0; i < s->nb; i++)
		while (s->b[i] != NULL) {
			struct entry *e = s->b[i];
			s->b[i] = e->next;
			free(e);
		}
	free(s->b);
	s->b = NULL;
	s->nb = s->n = 0;
}

static void
st_dump(struct store *s, struct buf *b)
{
	for (size_t i = 0; i < s->nb; i++)
		for (struct entry *e = s->b[i]; e != NULL; e = e->next) {
			bu32(b, e->klen);
			bu32(b, e->vlen);
			bput(b, e->kv, e->klen + e->vlen);
		}
}

/* ---- configurations ---- */

static void
cfg_free(struct cfg *c)
{
	if (c == NULL)
		return;
	free(c->pts);
	free(c->pnode);
	free(c);
}

static int
cmp_pt(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Build the ring of a partitioned configuration. */
static int
cfg_ring(struct cfg *c)
{
	if (c->mode != HT_PARTITIONED || c->n == 0)
		return 0;
	size_t n = (size_t)c->n * VPOINTS;
	uint64_t *pairs = malloc(n * 2 * sizeof(uint64_t));
	c->pts = malloc(n * sizeof(uint64_t));
	c->pnode = malloc(n * sizeof(uint16_t));
	if (pairs == NULL || c->pts == NULL || c->pnode == NULL) {
		free(pairs);
		return -1;
	}
	for (size_t i = 0; i < c->n; i++)
		for (size_t v = 0; v < VPOINTS; v++) {
			uint32_t key[2] = {c->members[i], (uint32_t)v};
			pairs[2 * (i * VPOINTS + v)] = hash(key, sizeof(key));
			pairs[2 * (i * VPOINTS + v) + 1] = c->members[i];
		}
	qsort(pairs, n, 2 * sizeof(uint64_t), cmp_pt);
	for (size_t i = 0; i < n; i++) {
		c->pts[i] = pairs[2 * i];
		c->pnode[i] = (uint16_t)pairs[2 * i + 1];
	}
	c->npts = n;
	free(pairs);
	return 0;
}

/* The node that owns a key's entry (for writes, and reads elsewhere than
 * at a replica). */
static uint16_t
cfg_owner(const struct cfg *c, uint64_t h)
{
	if (c->mode != HT_PARTITIONED || c->npts == 0 || c->n == 1)
		return c->members[0];
	size_t lo = 0, hi = c->npts;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->pts[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return c->pnode[lo == c->npts ? 0 : lo];
}

static int
cfg_member(const struct cfg *c, uint16_t node)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->members[i] == node)
			return 1;
	return 0;
}

static void
cfg_put(struct buf *b, const struct cfg *c)
{
	bu32(b, c->epoch);
	bu8(b, c->mode);
	bu16(b, c->n);
	for (size_t i = 0; i < c->n; i++) {
		bu16(b, c->members[i]);
		size_t al = strlen(c->addrs[i]);
		bu8(b, (uint8_t)al);
		bput(b, c->addrs[i], al);
	}
}

static struct cfg *
cfg_get(struct rd *r)
{
	struct cfg *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->epoch = ru32(r);
	c->mode = ru8(r);
	c->n = ru16(r);
	if (r->bad || c->mode > HT_PARTITIONED || c->n == 0 || c->n > MAXM)
		goto bad;
	for (size_t i = 0; i < c->n; i++) {
		c->members[i] = ru16(r);
		size_t al = ru8(r);
		const uint8_t *a = rtake(r, al);
		if (a == NULL || al >= sizeof(c->addrs[i]) || memchr(a, 0, al) != NULL)
			goto bad;
		memcpy(c->addrs[i], a, al);
		for (size_t j = 0; j < i; j++)
			if (c->members[j] == c->members[i])
				goto bad;
	}
	if (cfg_ring(c) < 0)
		goto bad;
	return c;
bad:
	cfg_free(c);
	return NULL;
}

static struct cfg *
cfg_copy(const struct cfg *c)
{
	struct buf b = {0};
	cfg_put(&b, c);
	struct rd r = {b.p, b.n, b.oom};
	struct cfg *d = b.oom ? NULL : cfg_get(&r);
	free(b.p);
	return d;
}

/* ---- the type ---- */

static void *
hroot_new(ebb_id id, const void *global, size_t len)
{
	struct rd r = {global, len, 0};
	struct cfg *c = cfg_get(&r);
	if (c == NULL)
		return NULL;
	struct hroot *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		cfg_free(c);
		return NULL;
	}
	h->id = id;
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_init(&h->swmu, NULL);
	h->view = c;
	/* the home starts as the first configuration's member; any other
	 * node holds nothing until the home installs a configuration there */
	if (EBB_HOME(id) == ebb_node() && c->epoch == 1) {
		h->cfg = cfg_copy(c);
	} else {
		h->cfg = calloc(1, sizeof(*h->cfg));
	}
	if (h->cfg == NULL) {
		cfg_free(c);
		free(h);
		return NULL;
	}
	return h;
}

static void
hroot_free(void *p)
{
	struct hroot *h = p;
	while (h->held != NULL) {
		struct held *x = h->held;
		h->held = x->next;
		ebb_msg_reply(x->m, ST_BUSY, NULL, 0);
		free(x);
	}
	st_clear(&h->st);
	cfg_free(h->cfg);
	cfg_free(h->view);
	pthread_mutex_destroy(&h->mu);
	pthread_mutex_destroy(&h->swmu);
	free(h);
}

/* An operation's key (with its hash), its value in two parts (a then b:
 * a caller's header and data need not be copied together first), and, for
 * a get, where the value goes: fn is called with it (under h->mu when the
 * entry is here, so fn only copies), or else it is appended to out. */
struct opd {
	uint8_t op;
	uint32_t epoch;
	uint64_t h;
	const uint8_t *k;
	size_t kl;
	const void *a, *b;
	size_t al, bl;
	ht_sink fn;
	void *arg;
};

/* Apply an operation as its owner.  G: the value to d->fn or into out;
 * stale: the configuration into out.  Called with h->mu held. */
static int
own_op(struct hroot *h, const struct opd *d, struct buf *out)
{
	uint32_t epoch = d->epoch;
	if (h->frozen)
		return ST_BUSY;
	if (epoch != h->cfg->epoch || h->cfg->n == 0) {
		if (h->cfg->epoch < epoch || h->cfg->n == 0)
			return ST_BUSY; /* an install on its way here */
		cfg_put(out, h->cfg);
		return ST_STALE;
	}
	switch (d->op) {
	case 'G': {
		struct entry *e = st_find(&h->st, d->h, d->k, d->kl, NULL);
		if (e == NULL)
			return ST_NOTFOUND;
		if (d->fn != NULL) {
			d->fn(d->arg, e->kv + e->klen, e->vlen);
			return ST_OK;
		}
		bput(out, e->kv + e->klen, e->vlen);
		return out->oom ? ST_BAD : ST_OK;
	}
	case 'S':
		return st_put(&h->st, d->h, d->k, d->kl, d->a, d->al, d->b, d->bl) == 0 ? ST_OK
											: ST_BAD;
	case 'D':
		return st_del(&h->st, d->h, d->k, d->kl);
	}
	return ST_BAD;
}

struct pend {
	struct ebb_msg *m;
	int left, status;
	pthread_mutex_t mu;
};

static void
fwd_done(struct ebb_future *f, void *arg)
{
	struct pend *p = arg;
	int s = ebb_future_wait(f, 0);
	ebb_future_free(f);
	pthread_mutex_lock(&p->mu);
	if (s != 0)
		p->status = ST_BUSY; /* a replica is gone: the client retries */
	int last = --p->left == 0;
	pthread_mutex_unlock(&p->mu);
	if (last) {
		ebb_msg_reply(p->m, p->status, NULL, 0);
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
}

/* A replicated write applied at the primary goes to the other members;
 * the write is answered once they all have it.  Returns the futures'
 * count (calls made), with mu held by the caller: the forwards leave in
 * the order the writes were applied. */
static size_t
forward(struct hroot *h, const struct opd *d, struct ebb_future **fs)
{
	struct buf b = {0};
	bu8(&b, d->op == 'S' ? 'R' : 'X');
	bu32(&b, h->cfg->epoch);
	bu32(&b, (uint32_t)d->kl);
	bput(&b, d->k, d->kl);
	bput(&b, d->a, d->al);
	bput(&b, d->b, d->bl);
	size_t n = 0;
	for (size_t i = 1; i < h->cfg->n && !b.oom; i++)
		fs[n++] = ebb_call(h->cfg->members[i], h->id, b.p, b.n);
	free(b.p);
	return n;
}

static void
fwd_apply(struct hroot *h, uint8_t op, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	if (op == 'R')
		st_put(&h->st, hash(k, kl), k, kl, v, vl, NULL, 0);
	else
		st_del(&h->st, hash(k, kl), k, kl);
}

/* The install of epoch is in (h->mu held): apply the forwards that waited
 * for it, in the order they came, and answer them; older ones are moot. */
static struct held *
held_release(struct hroot *h)
{
	struct held *rev = NULL, *keep = NULL;
	while (h->held != NULL) {
		struct held *x = h->held;
		h->held = x->next;
		if (x->epoch > h->cfg->epoch) {
			x->next = keep;
			keep = x;
		} else {
			x->next = rev;
			rev = x;
		}
	}
	/* keep was reversed once: put it back in arrival order */
	while (keep != NULL) {
		struct held *x = keep;
		keep = x->next;
		x->next = h->held;
		h->held = x;
	}
	for (struct held *x = rev; x != NULL; x = x->next) {
		if (x->epoch != h->cfg->epoch || !cfg_member(h->cfg, ebb_node()))
			continue;
		struct rd r = {x->m->data, x->m->len, 0};
		uint8_t op = ru8(&r);
		ru32(&r);
		size_t kl = ru32(&r);
		const uint8_t *k = rtake(&r, kl);
		if (k != NULL)
			fwd_apply(h, op, k, kl, r.p, r.n);
	}
	return rev; /* answered by the caller, without h->mu */
}

static void
held_answer(struct held *x)
{
	while (x != NULL) {
		struct held *n = x->next;
		ebb_msg_reply(x->m, ST_OK, NULL, 0);
		free(x);
		x = n;
	}
}

static void
reply_buf(struct ebb_msg *m, int st, struct buf *b)
{
	ebb_msg_reply(m, b->oom ? ST_BAD : st, b->p, b->oom ? 0 : b->n);
	free(b->p);
}

static void
hmsg(ebb_id id, void *root, struct ebb_msg *m)
{
	struct hroot *h = root;
	struct rd r = {m->data, m->len, 0};
	struct buf out = {0};
	uint8_t op = ru8(&r);
	uint32_t epoch = ru32(&r);
	if (r.bad) {
		ebb_msg_reply(m, ST_BAD, NULL, 0);
		return;
	}
	switch (op) {
	case 'G':
	case 'D':
	case 'S':
	case 'R':
	case 'X': {
		size_t kl = ru32(&r);
		const uint8_t *k = rtake(&r, kl);
		if (k == NULL || kl == 0 || kl > HT_KEY_MAX || r.n > HT_VAL_MAX ||
		    (op != 'S' && op != 'R' && r.n != 0)) {
			ebb_msg_reply(m, ST_BAD, NULL, 0);
			return;
		}
		const uint8_t *v = r.p;
		size_t vl = r.n;
		pthread_mutex_lock(&h->mu);
		if (op == 'R' || op == 'X') {
			/* a primary's forward.  Of this node's configuration:
			 * applied.  Of an older one: moot (the primary had
			 * applied it before it froze, so the install that
			 * replaced this store carried it).  Of a newer one,
			 * whose install is on its way (the home sends every
			 * install before it starts another switch): held, and
			 * applied once that install is in. */
			if (epoch > h->cfg->epoch) {
				struct held *x = malloc(sizeof(*x));
				if (x != NULL) {
					x->m = ebb_msg_keep(m);
					x->epoch = epoch;
					x->next = h->held;
					h->held = x;
					pthread_mutex_unlock(&h->mu);
					return;
				}
				pthread_mutex_unlock(&h->mu);
				ebb_msg_reply(m, ST_BUSY, NULL, 0);
				return;
			}
			if (epoch == h->cfg->epoch && cfg_member(h->cfg, ebb_node()))
				fwd_apply(h, op, k, kl, v, vl);
			pthread_mutex_unlock(&h->mu);
			ebb_msg_reply(m, ST_OK, NULL, 0);
			return;
		}
		struct opd d = {
		    .op = op, .epoch = epoch, .h = hash(k, kl), .k = k, .kl = kl, .a = v, .al = vl};
		int st = own_op(h, &d, &out);
		if (st == ST_OK && op != 'G' && h->cfg->mode == HT_REPLICATED && h->cfg->n > 1) {
			struct ebb_future *fs[MAXM];
			size_t n = forward(h, &d, fs);
			pthread_mutex_unlock(&h->mu);
			struct pend *p = calloc(1, sizeof(*p));
			if (p == NULL) {
				for (size_t i = 0; i < n; i++) {
					ebb_future_wait(fs[i], -1);
					ebb_future_free(fs[i]);
				}
				ebb_msg_reply(m, ST_OK, NULL, 0);
				return;
			}
			pthread_mutex_init(&p->mu, NULL);
			p->m = ebb_msg_keep(m);
			p->left = (int)n;
			for (size_t i = 0; i < n; i++)
				ebb_future_then(fs[i], EBB_HERE, fwd_done, p);
			return;
		}
		pthread_mutex_unlock(&h->mu);
		reply_buf(m, st, &out);
		return;
	}
	case 'F': {
		/* freeze for the switch to `epoch`; answer what this node is
		 * authoritative for */
		pthread_mutex_lock(&h->mu);
		if (epoch <= h->cfg->epoch || EBB_HOME(id) != m->from) {
			pthread_mutex_unlock(&h->mu);
			ebb_msg_reply(m, ST_BAD, NULL, 0);
			return;
		}
		h->frozen = 1;
		struct cfg *c = h->cfg;
		if (c->n > 0 && (c->mode == HT_PARTITIONED || c->members[0] == ebb_node()))
			st_dump(&h->st, &out);
		pthread_mutex_unlock(&h->mu);
		reply_buf(m, ST_OK, &out);
		return;
	}
	case 'T': /* thaw: the switch was called off */
		pthread_mutex_lock(&h->mu);
		if (EBB_HOME(id) == m->from)
			h->frozen = 0;
		pthread_mutex_unlock(&h->mu);
		ebb_msg_reply(m, ST_OK, NULL, 0);
		return;
	case 'I': {
		if (EBB_HOME(id) != m->from) {
			ebb_msg_reply(m, ST_BAD, NULL, 0);
			return;
		}
		struct cfg *c = cfg_get(&r);
		struct cfg *v = c ? cfg_copy(c) : NULL;
		struct store st = {0};
		int ok = c != NULL && v != NULL && c->epoch == epoch;
		while (ok && r.n > 0) {
			size_t kl = ru32(&r), vl = ru32(&r);
			const uint8_t *k = rtake(&r, kl), *val = rtake(&r, vl);
			if (k == NULL || val == NULL || kl == 0 || kl > HT_KEY_MAX ||
			    vl > HT_VAL_MAX ||
			    st_put(&st, hash(k, kl), k, kl, val, vl, NULL, 0) < 0)
				ok = 0;
		}
		if (!ok) {
			cfg_free(c);
			cfg_free(v);
			st_clear(&st);
			ebb_msg_reply(m, ST_BAD, NULL, 0);
			return;
		}
		for (size_t i = 0; i < c->n; i++)
			if (c->addrs[i][0] != '\0' && c->members[i] != ebb_node())
				ebb_node_addr(c->members[i], c->addrs[i]);
		pthread_mutex_lock(&h->mu);
		st_clear(&h->st);
		h->st = st;
		cfg_free(h->cfg);
		h->cfg = c;
		if (h->view->epoch <= c->epoch) {
			cfg_free(h->view);
			h->view = v;
			v = NULL;
		}
		h->frozen = 0;
		struct held *done = held_release(h);
		pthread_mutex_unlock(&h->mu);
		held_answer(done);
		cfg_free(v);
		ebb_msg_reply(m, ST_OK, NULL, 0);
		return;
	}
	case 'C':
		pthread_mutex_lock(&h->mu);
		cfg_put(&out, h->view);
		pthread_mutex_unlock(&h->mu);
		reply_buf(m, ST_OK, &out);
		return;
	}
	ebb_msg_reply(m, ST_BAD, NULL, 0);
}

const struct ebb_type ht_type = {
    .name = "ht",
    .root_new = hroot_new,
    .msg = hmsg,
    .root_free = hroot_free,
};

int
ht_register(void)
{
	return ebb_type_register(&ht_type);
}

ebb_id
ht_new(enum ht_mode mode)
{
	if (mode > HT_PARTITIONED)
		return 0;
	struct cfg *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return 0;
	c->epoch = 1;
	c->mode = (uint8_t)mode;
	c->n = 1;
	c->members[0] = ebb_node();
	struct buf b = {0};
	cfg_put(&b, c);
	cfg_free(c);
	ebb_id id = ebb_id_new();
	if (b.oom || id == 0 || ebb_create(id, &ht_type, b.p, b.n) < 0 ||
	    ebb_root(id, &ht_type) == NULL)
		id = 0;
	free(b.p);
	return id;
}

/* Take a newer configuration heard of (a stale answer, the home's). */
static void
view_update(struct hroot *h, const void *d, size_t n)
{
	struct rd r = {d, n, 0};
	struct cfg *c = cfg_get(&r);
	if (c == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	if (c->epoch > h->view->epoch) {
		struct cfg *o = h->view;
		h->view = c;
		c = o;
	}
	pthread_mutex_unlock(&h->mu);
	cfg_free(c);
}

/* Ask the home for its view (the node we sent to did not answer: it may
 * have been given back). */
static void
view_refresh(struct hroot *h)
{
	uint8_t q[5] = {'C', 0, 0, 0, 0};
	struct ebb_future *f = ebb_call(EBB_HOME(h->id), h->id, q, sizeof(q));
	if (f == NULL)
		return;
	if (ebb_future_wait(f, 5000) == 0) {
		size_t n;
		const void *d = ebb_future_data(f, &n);
		view_update(h, d, n);
	}
	ebb_future_free(f);
}

/* Route d to its owner and apply it there, retrying while a switch moves
 * its entry.  The hit path (the entry on this node, no switch) is one lock
 * and a bucket; the clock is read only once a retry starts. */
static int
op(ebb_id id, struct opd *d)
{
	if (d->k == NULL || d->kl == 0 || d->kl > HT_KEY_MAX || d->al + d->bl > HT_VAL_MAX)
		return -1;
	struct hroot *h = ebb_rep(id, &ht_type);
	if (h == NULL)
		return -1;
	const uint8_t opc = d->op;
	d->h = hash(d->k, d->kl);
	uint64_t deadline = 0;
	unsigned backoff = 50;
	struct buf q = {0};
	for (;;) {
		pthread_mutex_lock(&h->mu);
		uint32_t epoch = h->view->epoch;
		uint8_t mode = h->view->mode;
		uint16_t to = cfg_owner(h->view, d->h);
		uint16_t me = ebb_node();
		if (opc == 'G' && mode == HT_REPLICATED && cfg_member(h->view, me) &&
		    h->cfg->epoch == epoch)
			to = me;
		d->epoch = epoch;
		int st;
		struct buf out = {0};
		if (to == me && !(opc != 'G' && mode == HT_REPLICATED && h->cfg->n > 1)) {
			st = own_op(h, d, &out);
			pthread_mutex_unlock(&h->mu);
		} else if (to == me) {
			/* a replicated write at the primary: apply, forward in
			 * order, wait for the replicas */
			st = own_op(h, d, &out);
			struct ebb_future *fs[MAXM];
			size_t n = st == ST_OK ? forward(h, d, fs) : 0;
			pthread_mutex_unlock(&h->mu);
			for (size_t i = 0; i < n; i++) {
				if (ebb_future_wait(fs[i], 30000) != 0 && st == ST_OK)
					st = ST_BUSY;
				ebb_future_free(fs[i]);
			}
			/* a replica that failed: the write is at the primary;
			 * the retry writes the same value again */
		} else {
			pthread_mutex_unlock(&h->mu);
			q.n = 0;
			bu8(&q, opc);
			bu32(&q, epoch);
			bu32(&q, (uint32_t)d->kl);
			bput(&q, d->k, d->kl);
			bput(&q, d->a, d->al);
			bput(&q, d->b, d->bl);
			if (q.oom) {
				free(q.p);
				return -1;
			}
			struct ebb_future *f = ebb_call(to, id, q.p, q.n);
			if (f == NULL) {
				free(q.p);
				return -1;
			}
			st = ebb_future_wait(f, 30000);
			size_t n = 0;
			const void *rd = ebb_future_data(f, &n);
			if (st == ST_OK && opc == 'G' && d->fn != NULL)
				d->fn(d->arg, rd, n);
			else if (st == ST_OK || st == ST_STALE)
				bput(&out, rd, n);
			ebb_future_free(f);
			if (st != ST_OK && st != ST_NOTFOUND && st != ST_BUSY && st != ST_STALE &&
			    st != ST_BAD) {
				/* the messenger's own failure: where is it now? */
				view_refresh(h);
				st = ST_BUSY;
			}
		}
		if (st == ST_STALE || st == ST_BUSY) {
			uint64_t t = now_ns();
			if (deadline == 0)
				deadline = t + DEADLINE_NS;
			if (t > deadline) {
				free(out.p);
				free(q.p);
				return -1;
			}
		}
		if (st == ST_STALE) {
			view_update(h, out.p, out.n);
			free(out.p);
			continue;
		}
		if (st == ST_BUSY) {
			free(out.p);
			pthread_mutex_lock(&h->mu);
			h->retries++;
			pthread_mutex_unlock(&h->mu);
			usleep(backoff);
			if (backoff < 5000)
				backoff *= 2;
			continue;
		}
		free(q.p);
		free(out.p);
		if (st == ST_OK && opc == 'G' && out.oom)
			return -1;
		return st == ST_OK ? 0 : st == ST_NOTFOUND ? 1 : -1;
	}
}

struct copy {
	void *p;
	size_t n;
	int oom;
};

static void
copy_val(void *arg, const void *v, size_t n)
{
	struct copy *c = arg;
	c->p = malloc(n ? n : 1);
	c->n = n;
	c->oom = c->p == NULL;
	if (c->p != NULL && n > 0)
		memcpy(c->p, v, n);
}

int
ht_set(ebb_id id, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct opd d = {.op = 'S', .k = key, .kl = klen, .a = val, .al = vlen};
	return op(id, &d);
}

int
ht_set2(ebb_id id, const void *key, size_t klen, const void *a, size_t alen, const void *b,
	size_t blen)
{
	struct opd d = {.op = 'S', .k = key, .kl = klen, .a = a, .al = alen, .b = b, .bl = blen};
	return op(id, &d);
}

int
ht_get(ebb_id id, const void *key, size_t klen, void **val, size_t *vlen)
{
	struct copy c = {0};
	struct opd d = {.op = 'G', .k = key, .kl = klen, .fn = copy_val, .arg = &c};
	int rc = op(id, &d);
	if (rc == 0 && c.oom)
		rc = -1;
	if (rc != 0) {
		free(c.p);
		return rc;
	}
	*val = c.p;
	*vlen = c.n;
	return 0;
}

int
ht_get_to(ebb_id id, const void *key, size_t klen, ht_sink fn, void *arg)
{
	struct opd d = {.op = 'G', .k = key, .kl = klen, .fn = fn, .arg = arg};
	return op(id, &d);
}

int
ht_del(ebb_id id, const void *key, size_t klen)
{
	struct opd d = {.op = 'D', .k = key, .kl = klen};
	return op(id, &d);
}

/* Call every node in nodes with the same bytes; 0 when all answered 0.
 * replies[i] (if given) gets each future, for the caller to read and free. */
static int
call_all(ebb_id id, const uint16_t *nodes, size_t n, const struct buf *b,
	 struct ebb_future **replies)
{
	struct ebb_future *fs[MAXM];
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		fs[i] = ebb_call(nodes[i], id, b->p, b->n);
	for (size_t i = 0; i < n; i++) {
		if (fs[i] == NULL || ebb_future_wait(fs[i], 30000) != 0)
			rc = -1;
		if (replies != NULL)
			replies[i] = fs[i];
		else
			ebb_future_free(fs[i]);
	}
	return rc;
}

int
ht_switch(ebb_id id, enum ht_mode mode, const uint16_t *members, size_t n)
{
	if (EBB_HOME(id) != ebb_node() || mode > HT_PARTITIONED || n == 0 || n > MAXM)
		return -1;
	struct hroot *h = ebb_root(id, &ht_type);
	if (h == NULL)
		return -1;
	struct cfg *nc = calloc(1, sizeof(*nc));
	if (nc == NULL)
		return -1;
	pthread_mutex_lock(&h->swmu);
	pthread_mutex_lock(&h->mu);
	struct cfg *oc = cfg_copy(h->cfg);
	pthread_mutex_unlock(&h->mu);
	int rc = -1;
	struct store all = {0};
	struct ebb_future *dumps[MAXM] = {0};
	if (oc == NULL)
		goto out;
	nc->epoch = oc->epoch + 1;
	nc->mode = (uint8_t)mode;
	nc->n = (uint16_t)n;
	for (size_t i = 0; i < n; i++) {
		nc->members[i] = members[i];
		for (size_t j = 0; j < i; j++)
			if (members[j] == members[i])
				goto out;
		if (members[i] != ebb_node() &&
		    ebb_node_addr_get(members[i], nc->addrs[i], sizeof(nc->addrs[i])) < 0)
			nc->addrs[i][0] = '\0';
	}
	if (cfg_ring(nc) < 0)
		goto out;

	/* 1. freeze the old members; each answers what it owns */
	struct buf b = {0};
	bu8(&b, 'F');
	bu32(&b, nc->epoch);
	if (call_all(id, oc->members, oc->n, &b, dumps) < 0) {
		b.n = 0;
		bu8(&b, 'T');
		bu32(&b, nc->epoch);
		call_all(id, oc->members, oc->n, &b, NULL);
		free(b.p);
		goto out;
	}
	free(b.p);
	for (size_t i = 0; i < oc->n; i++) {
		size_t len;
		const uint8_t *d = ebb_future_data(dumps[i], &len);
		struct rd r = {d, len, 0};
		while (r.n > 0) {
			size_t kl = ru32(&r), vl = ru32(&r);
			const uint8_t *k = rtake(&r, kl), *v = rtake(&r, vl);
			if (k == NULL || v == NULL)
				break;
			st_put(&all, hash(k, kl), k, kl, v, vl, NULL, 0);
		}
		/* one copy of the entries at a time is enough: a node's memory
		 * is what the table is made of */
		ebb_future_free(dumps[i]);
		dumps[i] = NULL;
	}

	/* 2. install the new configuration and each node's share on every
	 * node old or new */
	uint16_t to[2 * MAXM];
	size_t nto = 0;
	for (size_t i = 0; i < oc->n; i++)
		to[nto++] = oc->members[i];
	for (size_t i = 0; i < nc->n; i++)
		if (!cfg_member(oc, nc->members[i]))
			to[nto++] = nc->members[i];
	if (!cfg_member(oc, ebb_node()) && !cfg_member(nc, ebb_node()))
		to[nto++] = ebb_node();
	/* Every message starts the same (the configuration, ~70 bytes a
	 * member); the entries go to their owners in one pass over them.
	 * (Building each node's message from all the entries, asking for
	 * every bucket whether the node is a member, cost the door ~1 ms a
	 * node while it held the table frozen: 0.1-0.4 s for 64 new nodes.) */
	struct buf head = {0};
	bu8(&head, 'I');
	bu32(&head, nc->epoch);
	cfg_put(&head, nc);
	struct buf *ibs = calloc(nto, sizeof(*ibs));
	struct ebb_future *fs[2 * MAXM];
	int oom = head.oom || ibs == NULL;
	for (size_t i = 0; i < nto && !oom; i++)
		bput(&ibs[i], head.p, head.n);
	/* to[] lists members of the new configuration by their index there */
	size_t slot[MAXM];
	for (size_t m = 0; m < nc->n && !oom; m++)
		for (size_t i = 0; i < nto; i++)
			if (to[i] == nc->members[m])
				slot[m] = i;
	for (size_t bk = 0; bk < all.nb && !oom; bk++)
		for (struct entry *e = all.b[bk]; e != NULL; e = e->next) {
			int all_get = nc->mode == HT_REPLICATED;
			uint16_t owner = all_get ? 0 : cfg_owner(nc, e->h);
			for (size_t m = 0; m < nc->n; m++) {
				if (!all_get && nc->members[m] != owner)
					continue;
				struct buf *ib = &ibs[slot[m]];
				bu32(ib, e->klen);
				bu32(ib, e->vlen);
				bput(ib, e->kv, e->klen + e->vlen);
				if (!all_get)
					break;
			}
		}
	for (size_t i = 0; i < nto; i++) {
		fs[i] = oom || ibs[i].oom ? NULL : ebb_call(to[i], id, ibs[i].p, ibs[i].n);
		if (ibs != NULL)
			free(ibs[i].p);
	}
	free(ibs);
	free(head.p);
	rc = 0;
	for (size_t i = 0; i < nto; i++) {
		if (fs[i] == NULL || ebb_future_wait(fs[i], 30000) != 0)
			rc = -1;
		ebb_future_free(fs[i]);
	}
out:
	for (size_t i = 0; i < MAXM; i++)
		ebb_future_free(dumps[i]);
	st_clear(&all);
	cfg_free(oc);
	cfg_free(nc);
	pthread_mutex_unlock(&h->swmu);
	return rc;
}

enum ht_mode
ht_mode(ebb_id id)
{
	struct hroot *h = ebb_rep(id, &ht_type);
	if (h == NULL)
		return HT_CENTRAL;
	pthread_mutex_lock(&h->mu);
	enum ht_mode m = (enum ht_mode)h->view->mode;
	pthread_mutex_unlock(&h->mu);
	return m;
}

uint32_t
ht_epoch(ebb_id id)
{
	struct hroot *h = ebb_rep(id, &ht_type);
	if (h == NULL)
		return 0;
	pthread_mutex_lock(&h->mu);
	uint32_t e = h->view->epoch;
	pthread_mutex_unlock(&h->mu);
	return e;
}

size_t
ht_local_count(ebb_id id)
{
	struct hroot *h = ebb_rep(id, &ht_type);
	if (h == NULL)
		return 0;
	pthread_mutex_lock(&h->mu);
	size_t n = h->st.n;
	pthread_mutex_unlock(&h->mu);
	return n;
}

uint64_t
ht_retries(ebb_id id)
{
	struct hroot *h = ebb_rep(id, &ht_type);
	if (h == NULL)
		return 0;
	pthread_mutex_lock(&h->mu);
	uint64_t n = h->retries;
	pthread_mutex_unlock(&h->mu);
	return n;
}

const char *
ht_mode_name(enum ht_mode m)
{
	switch (m) {
	case HT_CENTRAL:
		return "centralized";
	case HT_REPLICATED:
		return "replicated";
	case HT_PARTITIONED:
		return "partitioned";
	}
	return "?";
}

int
ht_mode_parse(const char *s, enum ht_mode *m)
{
	for (int i = HT_CENTRAL; i <= HT_PARTITIONED; i++)
		if (strcmp(s, ht_mode_name((enum ht_mode)i)) == 0) {
			*m = (enum ht_mode)i;
			return 0;
		}
	return -1;
}
