/* khmc_rdma: libkhmc's one-sided transport (docs/mc.md, "One-sided gets").
 * A get looks its key up in a cached copy of the server's table, reads the
 * item with one one-sided read and checks it (key, version, checksum,
 * state, expiry); a stale or torn read re-reads the key's window of the
 * table (and the header, to see a grown table) and tries again, at most
 * KHMC_RDMA_TRIES times, then asks over TCP.  A key that is not in a
 * window just read is a miss.  Sets go in two phases: the value is put in
 * this client's exposed buffer and the server reads it from there.
 *
 * Each device context (one per domain interface) has one registered
 * buffer: the header's copy, window slots, item slots, and the staging area
 * of two-phase sets (the only part a peer has a reason to read). */
#include "mc/khmc_int.h"
#include "mc/item.h"
#include "rdma/khrdma.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KHMC_RDMA_TRIES 3
#define BATCH		64   /* keys a round reads at once */
#define HDR_OFF		0    /* the header's copy */
#define WIN_OFF		4096 /* BATCH windows of MC_PROBE buckets */
#define WIN_BYTES	(MC_PROBE * MC_BUCKET_BYTES)
#define ITEM_OFF	(WIN_OFF + BATCH * WIN_BYTES)
#define ITEM_BYTES	(2u << 20)		/* items of one round */
#define STAGE_OFF	(ITEM_OFF + ITEM_BYTES) /* two-phase sets */
#define STAGE_BYTES	((1u << 20) + 4096)
#define BUF_BYTES	(STAGE_OFF + STAGE_BYTES)
#define ITEM_MAX	(MC_ITEM_HDR + MC_KEY_MAX + (1u << 20) + 64)

/* A device context of one domain, shared by the servers in that domain. */
struct rdev {
	char ifname[16];
	khrdma_dev *d;
	struct khrdma_info info;
	uint8_t *buf;
	struct khrdma_mr *mr; /* buf, readable by peers (the staging area) */
};

struct khmc_rdma {
	char ifname[16]; /* khmc_use_rdma's choice, "" to find it per server */
	struct rdev dev[16];
	int ndev;
	struct khmc_rdma_stats st;
};

/* One server's one-sided state. */
struct rsrv {
	struct rdev *dev;
	struct khrdma_peer peer;
	uint32_t netid;
	uint64_t hdr_key, table_key, items_key;
	struct mc_arena_hdr hdr; /* the last whole copy */
	uint8_t *table;		 /* its copy of the table, bucket by bucket */
	uint8_t *fresh;		 /* per bucket: 1 when copied and not known stale */
	uint64_t nbuckets, gen;
};

static struct khmc_rdma *
ctx(struct khmc *c)
{
	return c->rdma;
}

int
khmc_use_rdma(struct khmc *c, const char *ifname)
{
	if (c->rdma == NULL && (c->rdma = calloc(1, sizeof(*c->rdma))) == NULL)
		return KHMC_NOMEM;
	if (ifname && strlen(ifname) >= sizeof(c->rdma->ifname))
		return KHMC_INVALID;
	snprintf(c->rdma->ifname, sizeof(c->rdma->ifname), "%s", ifname ? ifname : "");
	return KHMC_OK;
}

void
khmc_rdma_stats(const struct khmc *c, struct khmc_rdma_stats *st)
{
	if (c->rdma)
		*st = c->rdma->st;
	else
		memset(st, 0, sizeof(*st));
}

static struct rdev *
dev_open(struct khmc_rdma *r, const char *ifname)
{
	for (int i = 0; i < r->ndev; i++)
		if (strcmp(r->dev[i].ifname, ifname) == 0)
			return r->dev[i].d ? &r->dev[i] : NULL;
	if (r->ndev == 16)
		return NULL;
	struct rdev *v = &r->dev[r->ndev++];
	snprintf(v->ifname, sizeof(v->ifname), "%s", ifname);
	if ((v->d = khrdma_open(ifname, NULL)) == NULL)
		return NULL; /* remembered as absent */
	khrdma_query(v->d, &v->info);
	khrdma_set_spin(v->d, 200);
	if ((v->buf = khrdma_alloc(v->d, BUF_BYTES)) == NULL ||
	    (v->mr = khrdma_reg_mr(v->d, v->buf, BUF_BYTES, KHRDMA_REMOTE_READ)) == NULL) {
		khrdma_close(v->d);
		v->d = NULL;
		return NULL;
	}
	return v;
}

void
khmc_rdma_free(struct khmc *c)
{
	struct khmc_rdma *r = ctx(c);
	if (r == NULL)
		return;
	for (int i = 0; i < r->ndev; i++)
		khrdma_close(r->dev[i].d);
	free(r);
	c->rdma = NULL;
}

static void
rsrv_free(struct rsrv *v)
{
	if (v) {
		free(v->table);
		free(v->fresh);
		free(v);
	}
}

static void
rdma_close(struct khmc_server *s)
{
	rsrv_free(s->get_state);
	s->get_state = NULL;
}

/* Post reads (op i: rkey, roff, loff, len) and wait for all; statuses in
 * st.  Returns 0, or -1 when the device failed. */
struct rd {
	uint64_t rkey, roff;
	size_t loff;
	uint32_t len;
	int st;
};

static int
read_all(struct rsrv *v, struct rd *ops, int n)
{
	struct khrdma_wc wc[BATCH * 4 + 2];
	int posted = 0, done = 0;
	while (done < n) {
		while (posted < n && posted - done < 128) {
			if (khrdma_post_read(v->dev->d, v->peer, ops[posted].rkey, ops[posted].roff,
					     v->dev->mr, ops[posted].loff, ops[posted].len,
					     (uint64_t)posted) < 0)
				return -1;
			posted++;
		}
		int k = khrdma_wait(v->dev->d, wc, (int)(sizeof(wc) / sizeof(wc[0])), 2000);
		if (k < 0)
			return -1;
		for (int i = 0; i < k; i++)
			if (wc[i].wr_id < (uint64_t)n)
				ops[wc[i].wr_id].st = wc[i].status;
		done += k;
	}
	return 0;
}

/* Read the header until a whole copy comes (the server changes it under
 * its lock and seals it with a sum). */
static int
read_hdr(struct rsrv *v)
{
	for (int i = 0; i < 100; i++) {
		struct rd op = {v->hdr_key, 0, HDR_OFF, sizeof(struct mc_arena_hdr), 0};
		if (read_all(v, &op, 1) < 0 || op.st)
			return -1;
		struct mc_arena_hdr h;
		memcpy(&h, v->dev->buf + HDR_OFF, sizeof(h));
		if (mc_hdr_check(&h) < 0)
			continue;
		int slot = -1;
		for (int j = 0; j < MC_RDMA_SLOTS; j++)
			if (h.rdma[j].netid == v->netid)
				slot = j;
		if (slot < 0 || h.table_buckets == 0 || (h.table_buckets & (h.table_buckets - 1)))
			return -1;
		v->table_key = h.rdma[slot].table_key;
		v->items_key = h.rdma[slot].items_key;
		if (h.table_gen != v->gen || h.table_buckets != v->nbuckets || v->table == NULL) {
			/* A grown table: the copy starts again, empty. */
			uint8_t *t = calloc(h.table_buckets, MC_BUCKET_BYTES);
			uint8_t *f = calloc(h.table_buckets, 1);
			if (t == NULL || f == NULL) {
				free(t);
				free(f);
				return -1;
			}
			free(v->table);
			free(v->fresh);
			v->table = t;
			v->fresh = f;
			v->nbuckets = h.table_buckets;
			v->gen = h.table_gen;
		}
		v->hdr = h;
		return 0;
	}
	return -1;
}

/* Set the server up for one-sided gets; on any failure it stays on TCP. */
void
khmc_rdma_attach(struct khmc *c, struct khmc_server *s)
{
	struct khmc_rdma *r = ctx(c);
	char reply[200];
	unsigned netid, rank, host;
	unsigned long long key;

	s->rdma_state = -1;
	if (r == NULL || khmc_tcp_simple(c, s, "rdma\r\n", reply, sizeof(reply)) != KHMC_OK ||
	    sscanf(reply, "RDMA %u %u %u %llx", &netid, &rank, &host, &key) != 4)
		return;
	struct rsrv *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return;
	v->netid = netid;
	v->hdr_key = key;
	v->peer = (struct khrdma_peer){.host = 0, .rank = rank};
	/* The device of the server's domain: the one named, or the interface
	 * whose domain the server's address is in. */
	for (int i = 0; i < 16 && v->dev == NULL; i++) {
		char name[16];
		if (r->ifname[0])
			snprintf(name, sizeof(name), "%s", r->ifname);
		else
			snprintf(name, sizeof(name), "eth%d", i);
		struct rdev *d = dev_open(r, name);
		if (d && d->info.netid == netid)
			v->dev = d;
		if (r->ifname[0])
			break;
	}
	if (v->dev == NULL || read_hdr(v) < 0) {
		rsrv_free(v);
		return;
	}
	s->get_state = v;
	s->get = &khmc_rdma;
	s->rdma_state = 1;
}

/* The key's window (MC_PROBE buckets from its home) in the copy, into out
 * (contiguous, even when it wraps around the table's end). */
static void
window_copy(struct rsrv *v, uint64_t home, uint8_t *out)
{
	for (unsigned b = 0; b < MC_PROBE; b++)
		memcpy(out + (size_t)b * MC_BUCKET_BYTES,
		       v->table + ((home + b) & (v->nbuckets - 1)) * MC_BUCKET_BYTES,
		       MC_BUCKET_BYTES);
}

static int
window_fresh(struct rsrv *v, uint64_t home)
{
	for (unsigned b = 0; b < MC_PROBE; b++)
		if (!v->fresh[(home + b) & (v->nbuckets - 1)])
			return 0;
	return 1;
}

static void
window_forget(struct rsrv *v, uint64_t home)
{
	for (unsigned b = 0; b < MC_PROBE; b++)
		v->fresh[(home + b) & (v->nbuckets - 1)] = 0;
}

void
khmc_rdma_forget(struct khmc_server *s, const char *key, size_t klen)
{
	struct rsrv *v = s->get_state;
	if (s->rdma_state != 1 || v == NULL || v->fresh == NULL)
		return;
	window_forget(v, mc_home_bucket(mc_key_hash(key, klen), v->nbuckets));
}

void
khmc_rdma_forget_all(struct khmc_server *s)
{
	struct rsrv *v = s->get_state;
	if (s->rdma_state == 1 && v != NULL && v->fresh != NULL)
		memset(v->fresh, 0, v->nbuckets);
}

struct pend {
	size_t i; /* index into the caller's keys */
	uint64_t hash, home;
	int just_read; /* its window was read this round */
	int done;
};

static int
rdma_mget(struct khmc *c, struct khmc_server *s, const char *const *keys, const size_t *klens,
	  const size_t *idx, size_t n, void (*fn)(void *arg, size_t i, const struct khmc_hit *h),
	  void *arg)
{
	struct rsrv *v = s->get_state;
	struct khmc_rdma *r = ctx(c);
	struct pend p[BATCH];
	struct rd ops[BATCH * MC_BUCKET_ENTRIES + 1];
	struct mc_entry cand[BATCH][MC_BUCKET_ENTRIES];
	int ncand[BATCH], opof[BATCH][MC_BUCKET_ENTRIES];
	size_t *left = malloc(n * sizeof(*left));
	size_t nleft = 0;
	uint32_t now = (uint32_t)time(NULL);

	if (left == NULL)
		return KHMC_NOMEM;
	for (size_t base = 0; base < n; base += BATCH) {
		size_t m = n - base < BATCH ? n - base : BATCH;
		for (size_t k = 0; k < m; k++) {
			size_t i = idx[base + k];
			uint64_t h = mc_key_hash(keys[i], klens[i]);
			p[k] = (struct pend){.i = i, .hash = h};
		}
		size_t open = m;
		for (int round = 0; round < KHMC_RDMA_TRIES && open > 0; round++) {
			/* 1. Windows not fresh, with the header (a grown table). */
			int nops = 0, need = 0;
			for (size_t k = 0; k < m; k++) {
				p[k].just_read = 0;
				if (!p[k].done &&
				    !window_fresh(v, mc_home_bucket(p[k].hash, v->nbuckets)))
					need = 1;
			}
			if (need) {
				if (read_hdr(v) < 0)
					break;
				for (size_t k = 0; k < m; k++) {
					if (p[k].done)
						continue;
					p[k].home = mc_home_bucket(p[k].hash, v->nbuckets);
					if (window_fresh(v, p[k].home))
						continue;
					/* Up to two reads: the window may wrap. */
					uint64_t first = p[k].home,
						 nb = v->nbuckets - first < MC_PROBE
							  ? v->nbuckets - first
							  : MC_PROBE;
					ops[nops++] =
					    (struct rd){v->table_key, first * MC_BUCKET_BYTES,
							WIN_OFF + k * WIN_BYTES,
							(uint32_t)(nb * MC_BUCKET_BYTES), 0};
					if (nb < MC_PROBE)
						ops[nops++] = (struct rd){
						    v->table_key, 0,
						    WIN_OFF + k * WIN_BYTES + nb * MC_BUCKET_BYTES,
						    (uint32_t)((MC_PROBE - nb) * MC_BUCKET_BYTES),
						    0};
					p[k].just_read = 1;
				}
				if (read_all(v, ops, nops) < 0)
					break;
				int bad = 0;
				for (int o = 0; o < nops; o++)
					bad |= ops[o].st != 0;
				if (bad) { /* a key revoked: the table moved meanwhile */
					memset(v->fresh, 0, v->nbuckets);
					continue;
				}
				for (size_t k = 0; k < m; k++) {
					if (!p[k].just_read)
						continue;
					uint8_t *w = v->dev->buf + WIN_OFF + k * WIN_BYTES;
					for (unsigned b = 0; b < MC_PROBE; b++) {
						uint64_t bb = (p[k].home + b) & (v->nbuckets - 1);
						memcpy(v->table + bb * MC_BUCKET_BYTES,
						       w + (size_t)b * MC_BUCKET_BYTES,
						       MC_BUCKET_BYTES);
						v->fresh[bb] = 1;
					}
				}
			}
			/* 2. The candidates' items, one read each. */
			nops = 0;
			size_t room = ITEM_BYTES;
			for (size_t k = 0; k < m; k++) {
				ncand[k] = 0;
				if (p[k].done)
					continue;
				uint8_t win[WIN_BYTES];
				const uint8_t *wp = win;
				p[k].home = mc_home_bucket(p[k].hash, v->nbuckets);
				if (p[k].home + MC_PROBE <= v->nbuckets)
					wp = v->table + p[k].home * MC_BUCKET_BYTES;
				else
					window_copy(v, p[k].home, win);
				ncand[k] =
				    (int)mc_window_match(wp, p[k].hash, cand[k], MC_BUCKET_ENTRIES);
				if (ncand[k] == 0 && p[k].just_read) {
					p[k].done = 1; /* not in the table as it is now */
					open--;
					r->st.misses++;
					continue;
				}
				for (int j = 0; j < ncand[k]; j++) {
					uint64_t off = cand[k][j].word0 & MC_OFF_MASK;
					uint32_t len = cand[k][j].len;
					opof[k][j] = -1;
					if (off < v->hdr.item_off || len > ITEM_MAX || len > room ||
					    off - v->hdr.item_off > v->hdr.item_size)
						continue;
					opof[k][j] = nops;
					ops[nops++] =
					    (struct rd){v->items_key, off - v->hdr.item_off,
							ITEM_OFF + (ITEM_BYTES - room), len, 0};
					room -= (len + 7) & ~7u;
				}
			}
			if (nops > 0 && read_all(v, ops, nops) < 0)
				break;
			r->st.reads += (uint64_t)nops;
			/* 3. Check what came: a hit; a miss (expired, or not in a
			 * window just read); or stale (the copy of the table named
			 * an item that is not there any more: read again). */
			for (size_t k = 0; k < m; k++) {
				if (p[k].done || ncand[k] == 0) {
					if (!p[k].done)
						window_forget(v, p[k].home);
					continue;
				}
				int verdict = 0; /* 1 hit, 2 miss, 0 stale */
				for (int j = 0; j < ncand[k] && verdict != 1; j++) {
					int o = opof[k][j];
					struct mc_item_view iv;
					if (o < 0 || ops[o].st)
						continue;
					/* With fenced reuse a copy whose header
					 * checks out is whole (item.h): the value's
					 * checksum is computed only without it. */
					int sum = !(v->hdr.features & MC_FEAT_FENCED_REUSE);
					int rc = mc_item_check_sum(
					    v->dev->buf + ops[o].loff, ops[o].len, keys[p[k].i],
					    klens[p[k].i], cand[k][j].ver, now, &iv, sum);
					if (rc == MC_CHECK_OK &&
					    iv.version >= v->hdr.flush_version) {
						struct khmc_hit h = {iv.value, iv.value_len,
								     iv.flags, iv.version};
						fn(arg, p[k].i, &h);
						verdict = 1;
					} else if (rc == MC_CHECK_EXPIRED || rc == MC_CHECK_OK) {
						verdict = 2; /* expired, or flushed */
					}
				}
				if (verdict == 0) {
					window_forget(v, p[k].home);
					r->st.retries++;
					continue;
				}
				p[k].done = 1;
				open--;
				if (verdict == 1)
					r->st.hits++;
				else
					r->st.misses++;
			}
		}
		for (size_t k = 0; k < m; k++)
			if (!p[k].done)
				left[nleft++] = p[k].i;
	}
	int rc = KHMC_OK;
	if (nleft > 0) {
		/* Bounded tries spent (or the device failed): TCP answers. */
		r->st.fallbacks += nleft;
		rc = khmc_tcp.mget(c, s, keys, klens, left, nleft, fn, arg);
	}
	free(left);
	return rc;
}

int
khmc_rdma_store(struct khmc *c, struct khmc_server *s, const char *verb, const char *key,
		size_t klen, const void *value, size_t vlen, uint32_t exptime, uint32_t flags)
{
	struct rsrv *v = s->get_state;
	char req[512], reply[200];

	if (s->rdma_state != 1 || v == NULL || vlen > STAGE_BYTES ||
	    (strcmp(verb, "set") && strcmp(verb, "add") && strcmp(verb, "replace")))
		return -1; /* not for this path */
	memcpy(v->dev->buf + STAGE_OFF, value, vlen);
	snprintf(req, sizeof(req), "r%s %.*s %u %u %zu %u %u %llu %u\r\n", verb, (int)klen, key,
		 flags, exptime, vlen, v->dev->info.netid, v->dev->info.rank,
		 (unsigned long long)v->dev->mr->key, STAGE_OFF);
	khmc_rdma_forget(s, key, klen);
	int rc = khmc_tcp_simple(c, s, req, reply, sizeof(reply));
	if (rc != KHMC_OK)
		return rc;
	if (strcmp(reply, "STORED") == 0)
		return KHMC_OK;
	if (strcmp(reply, "NOT_STORED") == 0)
		return KHMC_NOTSTORED;
	if (strncmp(reply, "SERVER_ERROR", 12) == 0)
		return KHMC_SERVER_ERROR;
	return KHMC_CLIENT_ERROR;
}

const struct khmc_transport khmc_rdma = {
    .name = "rdma",
    .mget = rdma_mget,
    .close = rdma_close,
};
