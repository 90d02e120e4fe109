/* alloc: the allocator.  The rule for every operation: check everything
 * first (nothing changes on bad input), then write the whole change to the
 * state store in one transaction, then apply it to memory, then tell the
 * hooks.  A crash before the commit leaves nothing; after, everything. */
#include "allocator/alloc.h"
#include "common/log.h"
#include "fabric/addr.h"
#include "state/state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(struct alloc_result *res, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct alloc_result *res, int code, const char *fmt, ...)
{
	va_list ap;
	res->code = code;
	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int
ok(struct alloc_result *res)
{
	res->code = AE_OK;
	res->msg[0] = '\0';
	return 0;
}

static int
store_failed(struct facility *f, struct alloc_result *res)
{
	state_rollback(f->st);
	return fail(res, AE_INTERNAL, "state store error (nothing was changed)");
}

#define HOOK(f, name, n)                                                                           \
	do {                                                                                       \
		if ((f)->hooks && (f)->hooks->name)                                                \
			(f)->hooks->name((f)->hooks->arg, (n));                                    \
	} while (0)

const struct node *
fac_node_const(const struct facility *f, int rank)
{
	int lo = 0, hi = f->nnodes - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (f->nodes[mid].rank == rank)
			return &f->nodes[mid];
		if (f->nodes[mid].rank < rank)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

struct node *
fac_node(struct facility *f, int rank)
{
	return (struct node *)fac_node_const(f, rank);
}

static int
node_in(const struct node *n, int netid)
{
	for (int i = 0; i < n->nifs; i++)
		if (n->ifs[i] == netid)
			return i;
	return -1;
}

static int
node_active_ifs(const struct node *n)
{
	int c = 0;
	for (int i = 0; i < n->nifs; i++)
		c += n->ifs[i] != 0;
	return c;
}

void
alloc_recount(struct facility *f)
{
	for (int i = 0; i < f->ndomains; i++)
		f->domains[i].members = 0;
	for (int i = 0; i < f->nchannels; i++)
		f->channels[i].nnodes = 0;
	for (int i = 0; i < f->nnodes; i++) {
		struct node *n = &f->nodes[i];
		for (int k = 0; k < n->nifs; k++) {
			struct domain *d = n->ifs[k] ? fac_domain(f, n->ifs[k]) : NULL;
			if (d)
				d->members++;
		}
		struct channel *c = n->chan ? fac_channel(f, n->chan) : NULL;
		if (c)
			c->nnodes++;
	}
}

static int64_t
wallclock(void)
{
	return (int64_t)time(NULL);
}

static int
by_netid(const void *a, const void *b)
{
	return ((const struct domain *)a)->netid - ((const struct domain *)b)->netid;
}

int
alloc_init_domains(struct facility *f, struct alloc_result *res)
{
	static const int fixed[2][2] = {{NETID_EXTERNAL, DOM_EXTERNAL}, {NETID_PUBLIC, DOM_PUBLIC}};
	int missing = 0;

	for (int i = 0; i < 2; i++)
		missing += fac_domain(f, fixed[i][0]) == NULL;
	if (!missing)
		return ok(res);
	if (state_begin(f->st) < 0)
		return store_failed(f, res);
	for (int i = 0; i < 2; i++) {
		struct domain d = {
		    .netid = fixed[i][0], .kind = fixed[i][1], .owner = -1, .created = wallclock()};
		if (fac_domain(f, d.netid) == NULL && state_put_domain(f->st, f, &d) < 0)
			return store_failed(f, res);
	}
	if (state_commit(f->st) < 0)
		return store_failed(f, res);
	for (int i = 0; i < 2; i++) {
		if (fac_domain(f, fixed[i][0]) != NULL)
			continue;
		f->domains =
		    fac_grow(f->domains, &f->capdomains, f->ndomains + 1, sizeof(*f->domains));
		f->domains[f->ndomains++] = (struct domain){
		    .netid = fixed[i][0], .kind = fixed[i][1], .owner = -1, .created = wallclock()};
	}
	qsort(f->domains, (size_t)f->ndomains, sizeof(*f->domains), by_netid);
	if (f->next_netid < NETID_FIRST_PRIVATE)
		f->next_netid = NETID_FIRST_PRIVATE;
	return ok(res);
}

static int
put_counters(struct facility *f, int next_netid, int next_chan)
{
	char v[32];
	snprintf(v, sizeof(v), "%d", next_netid);
	if (state_put_meta(f->st, "next_netid", v) < 0)
		return -1;
	snprintf(v, sizeof(v), "%d", next_chan);
	return state_put_meta(f->st, "next_chan", v);
}

/* A facility without hosts (loaded, its pool not yet made) is one host. */
static int
node_usable(const struct facility *f, const struct node *n)
{
	if (f->nhosts == 0)
		return 1;
	return n->host >= 0 && n->host < f->nhosts && fac_host_usable(&f->hosts[n->host]);
}

/* The nodes r gets, as indexes into f->nodes: the lowest free ranks of
 * the type, as the original did; with a placement, per host.  Nodes on a
 * host that is not up are not free to give. */
static int
pick_nodes(struct facility *f, const struct get_req *r, int *pick, int *npick,
	   struct alloc_result *res)
{
	int need[KH_MAX_HOSTS], sum = 0;

	*npick = 0;
	if (r->per_host == NULL) {
		for (int i = 0; i < f->nnodes && *npick < r->count; i++)
			if (f->nodes[i].type == r->type && f->nodes[i].state == NODE_FREE &&
			    node_usable(f, &f->nodes[i]))
				pick[(*npick)++] = i;
		if (*npick < r->count)
			return fail(res, AE_NONODES, "not enough nodes available");
		return 0;
	}
	if (r->nper_host != (f->nhosts ? f->nhosts : 1) || f->nhosts > KH_MAX_HOSTS)
		return fail(res, AE_BADARG, "placement names %d hosts, the facility has %d",
			    r->nper_host, f->nhosts);
	if (f->nhosts == 0) /* one host: everything there */
		return pick_nodes(f, &(struct get_req){.count = r->count, .type = r->type}, pick,
				  npick, res);
	for (int h = 0; h < f->nhosts; h++) {
		if (r->per_host[h] < 0 || r->per_host[h] > r->count)
			return fail(res, AE_BADARG, "placement puts %d nodes on host %s",
				    r->per_host[h], f->hosts[h].name);
		need[h] = r->per_host[h];
		sum += need[h];
	}
	if (sum != r->count)
		return fail(res, AE_BADARG, "placement places %d of %d nodes", sum, r->count);
	for (int i = 0; i < f->nnodes && *npick < r->count; i++) {
		const struct node *n = &f->nodes[i];
		if (n->type == r->type && n->state == NODE_FREE && node_usable(f, n) &&
		    need[n->host] > 0) {
			need[n->host]--;
			pick[(*npick)++] = i;
		}
	}
	for (int h = 0; h < f->nhosts; h++)
		if (need[h] > 0) {
			if (f->nhosts == 1)
				return fail(res, AE_NONODES, "not enough nodes available");
			if (!fac_host_usable(&f->hosts[h]))
				return fail(
				    res, AE_NONODES, "not enough nodes available: host %s is %s",
				    f->hosts[h].name, fac_host_state_name(f->hosts[h].state));
			return fail(res, AE_NONODES,
				    "not enough nodes available: host %s lacks %d free %s nodes",
				    f->hosts[h].name, need[h], f->types[r->type].name);
		}
	return 0;
}

int
alloc_get(struct facility *f, int pidx, const struct principal *newp, const struct get_req *r,
	  int *chan, struct alloc_result *res)
{
	int privs[KH_MAX_IFS], nprivs = 0, newnets = r->newnets, owned = 0, lastowned = 0;
	const struct node_type *t;

	if (r->type < 0 || r->type >= f->ntypes)
		return fail(res, AE_BADARG, "unknown node type");
	t = &f->types[r->type];
	if (r->count < 1)
		return fail(res, AE_BADARG, "count must be at least 1");
	for (int i = 0; i < f->ndomains; i++)
		if (pidx >= 0 && f->domains[i].kind == DOM_PRIVATE && f->domains[i].owner == pidx) {
			owned++;
			lastowned = f->domains[i].netid;
		}
	for (int i = 0; i < r->nnetids; i++) {
		int id = r->netids[i];
		struct domain *d = fac_domain(f, id);
		for (int j = 0; j < i; j++)
			if (r->netids[j] == id)
				return fail(res, AE_BADARG, "netid %d given twice", id);
		if (id == NETID_RESERVED)
			return fail(res, AE_BADARG, "netid 0 is reserved for the system");
		if (id == NETID_EXTERNAL || id == NETID_PUBLIC)
			return fail(res, AE_BADARG, "netid %d is the %s domain: use %s", id,
				    id == NETID_EXTERNAL ? "external" : "public",
				    id == NETID_EXTERNAL ? "-x" : "-i");
		if (d == NULL)
			return fail(res, AE_NOTFOUND, "no domain with netid %d", id);
		if (d->owner != pidx || pidx < 0)
			return fail(res, AE_PERM, "domain %d is not yours", id);
		privs[nprivs++] = id;
	}
	if (newnets < 0 && r->nnetids == 0) {
		if (owned == 1)
			privs[nprivs++] = lastowned;
		else if (owned == 0)
			newnets = 1; /* a principal's first private domain */
		else
			return fail(res, AE_BADARG,
				    "you own %d private domains: choose with -n, or create new "
				    "ones with -p",
				    owned);
	}
	if (newnets < 0)
		newnets = 0;
	int nnets = r->ext + r->pub + nprivs + newnets;
	if (newnets > t->max_ifs || nnets > t->max_ifs)
		return fail(res, AE_BADARG, "%d domains asked, a %s node has at most %d interfaces",
			    nnets, t->name, t->max_ifs);

	int *pick = malloc(sizeof(int) * (size_t)r->count), npick = 0;
	if (pick == NULL)
		fatal("alloc");
	if (pick_nodes(f, r, pick, &npick, res) < 0) {
		free(pick);
		return -1;
	}

	struct channel c = {.id = f->next_chan, .type = r->type, .created = wallclock()};
	if (r->ext)
		c.nets[c.nnets++] = NETID_EXTERNAL;
	if (r->pub)
		c.nets[c.nnets++] = NETID_PUBLIC;
	for (int i = 0; i < nprivs; i++)
		c.nets[c.nnets++] = privs[i];
	for (int i = 0; i < newnets; i++)
		c.nets[c.nnets++] = f->next_netid + i;

	/* A new principal is appended first so rows can name it; it is removed
	 * again if the transaction fails. */
	int created = 0;
	if (pidx < 0) {
		f->principals = fac_grow(f->principals, &f->capprincipals, f->nprincipals + 1,
					 sizeof(*f->principals));
		f->principals[f->nprincipals] = *newp;
		pidx = f->nprincipals++;
		created = 1;
	}
	c.owner = pidx;

	if (state_begin(f->st) < 0)
		goto store;
	if (created && state_put_principal(f->st, &f->principals[pidx]) < 0)
		goto store;
	for (int i = 0; i < newnets; i++) {
		struct domain d = {.netid = f->next_netid + i,
				   .kind = DOM_PRIVATE,
				   .owner = pidx,
				   .created = c.created};
		if (state_put_domain(f->st, f, &d) < 0)
			goto store;
	}
	if (state_put_channel(f->st, f, &c) < 0)
		goto store;
	for (int i = 0; i < npick; i++) {
		struct node n = f->nodes[pick[i]];
		n.state = NODE_MONITOR;
		n.owner = pidx;
		n.chan = c.id;
		n.nifs = c.nnets;
		memcpy(n.ifs, c.nets, sizeof(n.ifs));
		if (state_put_node(f->st, f, &n) < 0)
			goto store;
	}
	if (put_counters(f, f->next_netid + newnets, f->next_chan + 1) < 0)
		goto store;
	if (state_commit(f->st) < 0)
		goto store;

	/* Committed: apply to memory. */
	for (int i = 0; i < newnets; i++) {
		f->domains =
		    fac_grow(f->domains, &f->capdomains, f->ndomains + 1, sizeof(*f->domains));
		f->domains[f->ndomains++] = (struct domain){.netid = f->next_netid + i,
							    .kind = DOM_PRIVATE,
							    .owner = pidx,
							    .created = c.created};
	}
	f->next_netid += newnets;
	f->channels =
	    fac_grow(f->channels, &f->capchannels, f->nchannels + 1, sizeof(*f->channels));
	f->channels[f->nchannels++] = c;
	f->next_chan++;
	for (int i = 0; i < npick; i++) {
		struct node *n = &f->nodes[pick[i]];
		n->state = NODE_MONITOR;
		n->owner = pidx;
		n->chan = c.id;
		n->nifs = c.nnets;
		memcpy(n->ifs, c.nets, sizeof(n->ifs));
	}
	for (int i = 0; i < c.nnets; i++)
		fac_domain(f, c.nets[i])->members += npick;
	fac_channel(f, c.id)->nnodes = npick;
	for (int i = 0; i < npick; i++)
		HOOK(f, allocated, &f->nodes[pick[i]]);
	free(pick);
	*chan = c.id;
	return ok(res);
store:
	free(pick);
	if (created)
		f->nprincipals--;
	return store_failed(f, res);
}

/* Resolve ranks to nodes owned by pidx; no rank twice. */
static int
owned_nodes(struct facility *f, int pidx, const int *ranks, int n, struct node **out,
	    struct alloc_result *res)
{
	if (n < 1)
		return fail(res, AE_BADARG, "no nodes given");
	for (int i = 0; i < n; i++) {
		struct node *nd = fac_node(f, ranks[i]);
		if (nd == NULL)
			return fail(res, AE_NOTFOUND, "no node %d", ranks[i]);
		if (nd->state == NODE_FREE || nd->owner != pidx)
			return fail(res, AE_PERM, "node %d is not yours", ranks[i]);
		for (int j = 0; j < i; j++)
			if (out[j] == nd)
				return fail(res, AE_BADARG, "node %d given twice", ranks[i]);
		out[i] = nd;
	}
	return 0;
}

/* The keys a previous holder of channel chan registered: gone with it. */
static void
drop_chan_keys(struct facility *f, int chan)
{
	int j = 0;
	for (int i = 0; i < f->nkeys; i++) {
		if (f->keys[i].chan == chan)
			free(f->keys[i].line);
		else
			f->keys[j++] = f->keys[i];
	}
	f->nkeys = j;
}

int
alloc_release(struct facility *f, int pidx, const int *ranks, int n, struct alloc_result *res)
{
	struct node **nodes = calloc((size_t)(n > 0 ? n : 1), sizeof(*nodes));
	if (nodes == NULL)
		fatal("alloc");
	if (owned_nodes(f, pidx, ranks, n, nodes, res) < 0)
		goto out;
	/* Channels left without nodes are closed in the same transaction. */
	int *chans = calloc((size_t)n, sizeof(int)), nchans = 0;
	if (chans == NULL)
		fatal("alloc");
	for (int i = 0; i < n; i++) {
		struct channel *c = fac_channel(f, nodes[i]->chan);
		int left = c->nnodes;
		for (int j = 0; j < n; j++)
			left -= nodes[j]->chan == c->id;
		int seen = 0;
		for (int j = 0; j < nchans; j++)
			seen |= chans[j] == c->id;
		if (left == 0 && !seen)
			chans[nchans++] = c->id;
	}
	if (state_begin(f->st) < 0)
		goto store;
	for (int i = 0; i < n; i++) {
		struct node nd = *nodes[i];
		nd.state = NODE_FREE;
		nd.owner = -1;
		nd.chan = 0;
		nd.nifs = 0;
		if (state_put_node(f->st, f, &nd) < 0)
			goto store;
	}
	for (int i = 0; i < nchans; i++)
		if (state_del_channel(f->st, chans[i]) < 0)
			goto store;
	if (f->hooks && f->hooks->releasing && f->hooks->releasing(f->hooks->arg, nodes, n) < 0)
		goto store;
	if (state_commit(f->st) < 0)
		goto store;
	for (int i = 0; i < n; i++) {
		struct node *nd = nodes[i];
		HOOK(f, released, nd);
		nd->state = NODE_FREE;
		nd->owner = -1;
		nd->chan = 0;
		nd->nifs = 0;
		memset(nd->ifs, 0, sizeof(nd->ifs));
	}
	for (int i = 0; i < nchans; i++) {
		struct channel *c = fac_channel(f, chans[i]);
		int at = (int)(c - f->channels);
		drop_chan_keys(f, chans[i]);
		memmove(c, c + 1, (size_t)(f->nchannels - at - 1) * sizeof(*c));
		f->nchannels--;
	}
	alloc_recount(f);
	free(chans);
	free(nodes);
	return ok(res);
store:
	free(chans);
	free(nodes);
	return store_failed(f, res);
out:
	free(nodes);
	return -1;
}

static int
may_use_domain(struct facility *f, int pidx, int netid, struct alloc_result *res)
{
	struct domain *d = fac_domain(f, netid);
	if (netid == NETID_RESERVED)
		return fail(res, AE_BADARG, "netid 0 is reserved for the system");
	if (d == NULL)
		return fail(res, AE_NOTFOUND, "no domain with netid %d", netid);
	if (d->kind == DOM_PRIVATE && d->owner != pidx)
		return fail(res, AE_PERM, "domain %d is not yours", netid);
	return 0;
}

static int
put_nodes(struct facility *f, struct node *copies, int n, struct alloc_result *res)
{
	if (state_begin(f->st) < 0)
		return store_failed(f, res);
	for (int i = 0; i < n; i++)
		if (state_put_node(f->st, f, &copies[i]) < 0)
			return store_failed(f, res);
	if (state_commit(f->st) < 0)
		return store_failed(f, res);
	return 0;
}

static int
change_net(struct facility *f, int pidx, int netid, const int *ranks, int n, int add,
	   struct alloc_result *res)
{
	struct node **nodes = calloc((size_t)(n > 0 ? n : 1), sizeof(*nodes));
	struct node *copies = calloc((size_t)(n > 0 ? n : 1), sizeof(*copies));
	int rc = -1;

	if (nodes == NULL || copies == NULL)
		fatal("alloc");
	if (may_use_domain(f, pidx, netid, res) < 0 ||
	    owned_nodes(f, pidx, ranks, n, nodes, res) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		struct node c = *nodes[i];
		int at = node_in(&c, netid);
		if (add) {
			if (at >= 0) {
				fail(res, AE_BADARG, "node %d is already in domain %d", c.rank,
				     netid);
				goto out;
			}
			if (node_active_ifs(&c) >= f->types[c.type].max_ifs) {
				fail(res, AE_BADARG, "node %d has no free interface (max %d)",
				     c.rank, f->types[c.type].max_ifs);
				goto out;
			}
			int slot = node_in(&c, 0);
			if (slot < 0)
				slot = c.nifs++;
			c.ifs[slot] = netid;
		} else {
			if (at < 0) {
				fail(res, AE_BADARG, "node %d is not in domain %d", c.rank, netid);
				goto out;
			}
			c.ifs[at] = 0;
			while (c.nifs > 0 && c.ifs[c.nifs - 1] == 0)
				c.nifs--;
		}
		copies[i] = c;
	}
	if (put_nodes(f, copies, n, res) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		*nodes[i] = copies[i];
		fac_domain(f, netid)->members += add ? 1 : -1;
		HOOK(f, netchanged, nodes[i]);
	}
	rc = ok(res);
out:
	free(nodes);
	free(copies);
	return rc;
}

int
alloc_addnet(struct facility *f, int pidx, int netid, const int *ranks, int n,
	     struct alloc_result *res)
{
	return change_net(f, pidx, netid, ranks, n, 1, res);
}

int
alloc_rmnet(struct facility *f, int pidx, int netid, const int *ranks, int n,
	    struct alloc_result *res)
{
	return change_net(f, pidx, netid, ranks, n, 0, res);
}

int
alloc_reset(struct facility *f, int pidx, const int *ranks, int n, struct alloc_result *res)
{
	struct node **nodes = calloc((size_t)(n > 0 ? n : 1), sizeof(*nodes));
	struct node *copies = calloc((size_t)(n > 0 ? n : 1), sizeof(*copies));
	int rc = -1;

	if (nodes == NULL || copies == NULL)
		fatal("alloc");
	if (owned_nodes(f, pidx, ranks, n, nodes, res) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		copies[i] = *nodes[i];
		copies[i].state = NODE_MONITOR;
		copies[i].resets++;
	}
	if (put_nodes(f, copies, n, res) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		*nodes[i] = copies[i];
		HOOK(f, reset, nodes[i]);
	}
	rc = ok(res);
out:
	free(nodes);
	free(copies);
	return rc;
}

int
alloc_set_state(struct facility *f, struct node *n, int state)
{
	struct node c = *n;
	struct alloc_result res;
	c.state = state;
	if (put_nodes(f, &c, 1, &res) < 0)
		return -1;
	n->state = state;
	return 0;
}

int
alloc_chan_ranks(struct facility *f, int pidx, int chan, int **ranks, int *n,
		 struct alloc_result *res)
{
	struct channel *c = fac_channel(f, chan);
	if (c == NULL)
		return fail(res, AE_NOTFOUND, "no channel con%d", chan);
	if (c->owner != pidx)
		return fail(res, AE_PERM, "channel con%d is not yours", chan);
	*ranks = malloc(sizeof(int) * (size_t)(c->nnodes > 0 ? c->nnodes : 1));
	if (*ranks == NULL)
		fatal("alloc");
	*n = 0;
	for (int i = 0; i < f->nnodes; i++)
		if (f->nodes[i].chan == chan)
			(*ranks)[(*n)++] = f->nodes[i].rank;
	return 0;
}

int
alloc_transfer(struct facility *f, int pidx, int chan, const char *credhash,
	       struct alloc_result *res)
{
	struct channel *c = fac_channel(f, chan), copy;
	if (c == NULL)
		return fail(res, AE_NOTFOUND, "no channel con%d", chan);
	if (c->owner != pidx)
		return fail(res, AE_PERM, "channel con%d is not yours", chan);
	copy = *c;
	snprintf(copy.credhash, sizeof(copy.credhash), "%s", credhash);
	/* A new credential is a new holder: the keys the previous one
	 * registered stop opening the channel. */
	if (state_begin(f->st) < 0 || state_put_channel(f->st, f, &copy) < 0 ||
	    state_del_chankeys(f->st, chan) < 0 || state_commit(f->st) < 0)
		return store_failed(f, res);
	*c = copy;
	drop_chan_keys(f, chan);
	return ok(res);
}

static int
add_key(struct facility *f, int pidx, int chan, const char *line, struct alloc_result *res)
{
	for (int i = 0; i < f->nkeys; i++)
		if (f->keys[i].owner == pidx && f->keys[i].chan == chan &&
		    strcmp(f->keys[i].line, line) == 0)
			return ok(res); /* already there: adding twice changes nothing */
	struct sshkey k = {.owner = pidx, .chan = chan, .line = strdup(line)};
	if (k.line == NULL)
		fatal("alloc");
	if (state_begin(f->st) < 0 || state_put_key(f->st, f, &k) < 0 || state_commit(f->st) < 0) {
		free(k.line);
		return store_failed(f, res);
	}
	f->keys = fac_grow(f->keys, &f->capkeys, f->nkeys + 1, sizeof(*f->keys));
	f->keys[f->nkeys++] = k;
	return ok(res);
}

int
alloc_addkey(struct facility *f, int pidx, const char *line, struct alloc_result *res)
{
	return add_key(f, pidx, 0, line, res);
}

int
alloc_addkey_chan(struct facility *f, int chan, const char *line, struct alloc_result *res)
{
	struct channel *c = fac_channel(f, chan);
	if (c == NULL)
		return fail(res, AE_NOTFOUND, "no channel con%d", chan);
	if (c->credhash[0] == '\0')
		return fail(res, AE_PERM, "channel con%d was not transferred", chan);
	return add_key(f, -1, chan, line, res);
}

int
alloc_key_opens(const struct channel *c, const struct sshkey *k)
{
	if (c->credhash[0] != '\0')
		return k->chan == c->id;
	return k->chan == 0 && k->owner == c->owner;
}

int
alloc_allowed(const struct facility *f, const struct node *a, const struct node *b)
{
	(void)f;
	if (a->state == NODE_FREE || b->state == NODE_FREE)
		return 0;
	for (int i = 0; i < a->nifs; i++)
		if (a->ifs[i] != 0 && node_in(b, a->ifs[i]) >= 0)
			return 1;
	return 0;
}

void
alloc_node_addr(const struct node *n, char *buf, size_t len)
{
	int netid = node_in(n, NETID_EXTERNAL) >= 0 ? NETID_EXTERNAL : 0;
	for (int i = 0; netid == 0 && i < n->nifs; i++)
		netid = n->ifs[i];
	if (netid == 0 || addr_node4(netid, n->rank, buf, len) < 0)
		snprintf(buf, len, "-");
}

void
alloc_uni(const struct facility *f, const struct node *n, char *buf, size_t len)
{
	/* Digits only, as the original's unis were: its khdo takes the
	 * nodeinfo fields apart with patterns that expect numbers. */
	snprintf(buf, len, "%010u%04d", f->id, n->rank);
}

static const char *
net_name(int netid, char *buf, size_t len)
{
	if (netid == NETID_EXTERNAL)
		return "External";
	if (netid == NETID_PUBLIC)
		return "Internal";
	snprintf(buf, len, "%d", netid);
	return buf;
}

void
alloc_block(struct facility *f, int chan, struct sbuf *out, int json)
{
	struct channel *c = fac_channel(f, chan);
	char name[16], ip[32], uni[32];
	int first = 1;

	if (c == NULL)
		return;
	if (json) {
		sbuf_printf(out, "{\"channel\":\"con%d\",\"host\":", c->id);
		sbuf_json_str(out, f->host);
		sbuf_printf(out, ",\"protocol\":\"uboot\",");
		if (f->ssh_port > 0)
			sbuf_printf(out, "\"ssh_port\":%d,", f->ssh_port);
		sbuf_adds(out, "\"type\":");
		sbuf_json_str(out, f->types[c->type].name);
		sbuf_adds(out, ",\"networks\":[");
		for (int i = 0; i < c->nnets; i++)
			sbuf_printf(out, "%s{\"netid\":%d,\"name\":\"%s\",\"if\":\"eth%d\"}",
				    i ? "," : "", c->nets[i],
				    net_name(c->nets[i], name, sizeof(name)), i);
		sbuf_adds(out, "],\"nodes\":[");
		for (int i = 0; i < f->nnodes; i++) {
			struct node *n = &f->nodes[i];
			if (n->chan != chan)
				continue;
			alloc_node_addr(n, ip, sizeof(ip));
			alloc_uni(f, n, uni, sizeof(uni));
			sbuf_printf(out, "%s{\"rank\":%d,\"uni\":\"%s\",\"ip\":\"%s\"}",
				    first ? "" : ",", n->rank, uni, ip);
			first = 0;
		}
		sbuf_adds(out, "]}\n");
		return;
	}
	sbuf_printf(out, "con%d@%s\nprotocol: uboot\n", c->id, f->host);
	if (f->ssh_port > 0 && f->ssh_port != 22)
		sbuf_printf(out, "ssh-port: %d\n", f->ssh_port);
	for (int i = 0; i < c->nnets; i++)
		sbuf_printf(out, "network %s : eth%d\n", net_name(c->nets[i], name, sizeof(name)),
			    i);
	for (int i = 0; i < f->nnodes; i++) {
		struct node *n = &f->nodes[i];
		if (n->chan != chan)
			continue;
		alloc_node_addr(n, ip, sizeof(ip));
		alloc_uni(f, n, uni, sizeof(uni));
		sbuf_printf(out, "nodeinfo: %d %s %s\n", n->rank, uni, ip);
	}
	sbuf_adds(out, "nodes:");
	for (int i = 0; i < f->nnodes; i++)
		if (f->nodes[i].chan == chan)
			sbuf_printf(out, " %d", f->nodes[i].rank);
	sbuf_adds(out, "\n");
}

/* The stored types with the configured ones laid over them: types keep
 * their index, new ones are appended. */
static int
merge_types(struct facility *f, const struct node_type *types, int ntypes, struct node_type *all,
	    int *nall, struct alloc_result *res)
{
	int newtypes[KH_MAX_TYPES], nnew = 0;

	for (int i = 0; i < ntypes; i++) {
		int at = fac_type(f, types[i].name);
		if (at < 0) {
			if (f->ntypes + nnew >= KH_MAX_TYPES)
				return fail(res, AE_BADARG, "too many node types");
			newtypes[nnew++] = i;
		}
	}
	*nall = f->ntypes;
	memcpy(all, f->types, sizeof(f->types));
	for (int i = 0; i < nnew; i++)
		all[(*nall)++] = types[newtypes[i]];
	for (int i = 0; i < ntypes; i++) {
		int at = -1;
		for (int j = 0; j < *nall; j++)
			if (strcmp(all[j].name, types[i].name) == 0)
				at = j;
		all[at] = types[i];
	}
	return 0;
}

/* The hosts' states across a second call: kept for the same host. */
static void
set_hosts(struct facility *f, struct fac_host *hosts, int nhosts)
{
	for (int h = 0; h < nhosts; h++)
		for (int o = 0; o < f->nhosts; o++)
			if (strcmp(f->hosts[o].name, hosts[h].name) == 0 &&
			    strcmp(f->hosts[o].addr, hosts[h].addr) == 0 &&
			    (f->hosts[o].state == HOST_LOCAL) == (hosts[h].state == HOST_LOCAL)) {
				hosts[h].state = f->hosts[o].state;
				hosts[h].lost_ms = f->hosts[o].lost_ms;
			}
	free(f->hosts);
	f->hosts = hosts;
	f->nhosts = nhosts;
}

/* One host: khd itself, every node. */
static void
local_host(struct facility *f)
{
	struct fac_host *h = calloc(1, sizeof(*h));
	if (h == NULL)
		fatal("alloc");
	snprintf(h->name, sizeof(h->name), "%s", f->host);
	h->state = HOST_LOCAL;
	if (f->nnodes > 0) {
		h->first = f->nodes[0].rank;
		h->count = f->nodes[f->nnodes - 1].rank - h->first + 1;
	}
	for (int i = 0; i < f->nnodes; i++)
		f->nodes[i].host = 0;
	set_hosts(f, h, 1);
}

int
alloc_pool(struct facility *f, const struct node_type *types, int ntypes, struct alloc_result *res)
{
	return alloc_pool_hosts(f, types, ntypes, NULL, 0, res);
}

static int pool_hosts(struct facility *f, const struct node_type *types, int ntypes,
		      const struct fac_host *hosts, int nhosts, struct alloc_result *res);

int
alloc_pool_hosts(struct facility *f, const struct node_type *types, int ntypes,
		 const struct fac_host *hosts, int nhosts, struct alloc_result *res)
{
	int total = f->nnodes, maxrank = f->nnodes ? f->nodes[f->nnodes - 1].rank : -1;

	if (nhosts < 0 || nhosts > KH_MAX_HOSTS)
		return fail(res, AE_BADARG, "at most %d hosts", KH_MAX_HOSTS);
	if (nhosts > 0)
		return pool_hosts(f, types, ntypes, hosts, nhosts, res);
	struct node_type all[KH_MAX_TYPES];
	int nall;
	if (merge_types(f, types, ntypes, all, &nall, res) < 0)
		return -1;
	/* Wanted minus present, per type. */
	int delta[KH_MAX_TYPES] = {0}, grow = 0;
	for (int t = 0; t < nall; t++) {
		int have = 0;
		for (int i = 0; i < f->nnodes; i++)
			have += f->nodes[i].type == t;
		delta[t] = all[t].count - have;
		if (delta[t] > 0)
			grow += delta[t];
	}
	if (total + grow > KH_MAX_NODES)
		return fail(res, AE_BADARG, "at most %d nodes per facility", KH_MAX_NODES);
	struct node *nodes = calloc((size_t)(total + grow + 1), sizeof(*nodes));
	if (nodes == NULL)
		fatal("alloc");
	int n = 0;
	int drop[KH_MAX_TYPES];
	for (int t = 0; t < nall; t++)
		drop[t] = delta[t] < 0 ? -delta[t] : 0;
	/* Drop free nodes of shrinking types from the top ranks down. */
	char *gone = calloc((size_t)total + 1, 1);
	if (gone == NULL)
		fatal("alloc");
	for (int i = total - 1; i >= 0; i--) {
		struct node *nd = &f->nodes[i];
		if (drop[nd->type] > 0 && nd->state == NODE_FREE) {
			gone[i] = 1;
			drop[nd->type]--;
		}
	}
	for (int t = 0; t < nall; t++)
		if (drop[t] > 0)
			log_warnx("type %s: %d allocated nodes kept beyond the configured count",
				  all[t].name, drop[t]);
	for (int i = 0; i < total; i++)
		if (!gone[i])
			nodes[n++] = f->nodes[i];
	int first_new = n;
	for (int t = 0; t < nall; t++)
		for (int k = 0; k < delta[t]; k++) {
			nodes[n] = (struct node){.rank = ++maxrank, .type = t, .owner = -1};
			n++;
		}
	if (maxrank >= KH_MAX_NODES) {
		free(nodes);
		free(gone);
		return fail(res, AE_BADARG, "ranks beyond %d do not fit the address plan",
			    KH_MAX_NODES - 1);
	}
	if (state_begin(f->st) < 0)
		goto store;
	for (int t = 0; t < nall; t++)
		if (state_put_type(f->st, &all[t]) < 0)
			goto store;
	/* The state layer binds type names from f->types. */
	memcpy(f->types, all, sizeof(all));
	int oldntypes = f->ntypes;
	f->ntypes = nall;
	for (int i = 0; i < total; i++)
		if (gone[i] && state_del_node(f->st, f->nodes[i].rank) < 0)
			goto store_types;
	for (int i = first_new; i < n; i++)
		if (state_put_node(f->st, f, &nodes[i]) < 0)
			goto store_types;
	if (state_commit(f->st) < 0)
		goto store_types;
	free(f->nodes);
	f->nodes = nodes;
	f->nnodes = n;
	free(gone);
	alloc_recount(f);
	local_host(f);
	return ok(res);
store_types:
	f->ntypes = oldntypes;
store:
	free(nodes);
	free(gone);
	return store_failed(f, res);
}

/* Several hosts: the layout is a function of the configuration (ranks
 * host-major, types in index order within a host), so the front end and
 * every agent compute the same one; the stored rows are brought to it in
 * one transaction. */
static int
pool_hosts(struct facility *f, const struct node_type *types, int ntypes,
	   const struct fac_host *hosts, int nhosts, struct alloc_result *res)
{
	struct node_type all[KH_MAX_TYPES];
	int nall, per = 0;

	if (merge_types(f, types, ntypes, all, &nall, res) < 0)
		return -1;
	for (int t = 0; t < nall; t++)
		per += all[t].count;
	if ((long)per * nhosts > KH_MAX_NODES)
		return fail(res, AE_BADARG,
			    "%d hosts of %d nodes each are %ld nodes, more than the %d a facility "
			    "holds",
			    nhosts, per, (long)per * nhosts, KH_MAX_NODES);
	int total = per * nhosts;
	struct node *nodes = calloc((size_t)total + 1, sizeof(*nodes));
	struct fac_host *hs = calloc((size_t)nhosts, sizeof(*hs));
	char *kept = calloc((size_t)total + 1, 1);
	if (nodes == NULL || hs == NULL || kept == NULL)
		fatal("alloc");
	for (int h = 0, r = 0; h < nhosts; h++) {
		hs[h] = hosts[h];
		hs[h].state = HOST_DOWN;
		hs[h].lost_ms = 0;
		hs[h].first = r;
		hs[h].count = per;
		for (int t = 0; t < nall; t++)
			for (int k = 0; k < all[t].count; k++, r++)
				nodes[r] =
				    (struct node){.rank = r, .type = t, .owner = -1, .host = h};
	}
	/* A stored node stays where the layout has its type; an allocated one
	 * anywhere else stops the change. */
	for (int i = 0; i < f->nnodes; i++) {
		const struct node *o = &f->nodes[i];
		if (o->rank >= 0 && o->rank < total && nodes[o->rank].type == o->type) {
			int h = nodes[o->rank].host;
			nodes[o->rank] = *o;
			nodes[o->rank].host = h;
			kept[o->rank] = 1;
		} else if (o->state != NODE_FREE) {
			const char *there =
			    o->rank < total ? all[nodes[o->rank].type].name : "no node";
			fail(res, AE_BUSY,
			     "node %d (%s) is held by %s, and the hosts' layout has %s there: "
			     "release it first, or keep the configuration",
			     o->rank, f->types[o->type].name, f->principals[o->owner].name, there);
			free(nodes);
			free(hs);
			free(kept);
			return -1;
		}
	}
	if (state_begin(f->st) < 0)
		goto store;
	for (int t = 0; t < nall; t++)
		if (state_put_type(f->st, &all[t]) < 0)
			goto store;
	/* The state layer binds type names from f->types. */
	struct node_type oldtypes[KH_MAX_TYPES];
	int oldntypes = f->ntypes;
	memcpy(oldtypes, f->types, sizeof(oldtypes));
	memcpy(f->types, all, sizeof(all));
	f->ntypes = nall;
	for (int i = 0; i < f->nnodes; i++)
		if (f->nodes[i].rank >= total && state_del_node(f->st, f->nodes[i].rank) < 0)
			goto store_types;
	for (int r = 0; r < total; r++)
		if (!kept[r] && state_put_node(f->st, f, &nodes[r]) < 0)
			goto store_types;
	if (state_commit(f->st) < 0)
		goto store_types;
	free(f->nodes);
	f->nodes = nodes;
	f->nnodes = total;
	free(kept);
	set_hosts(f, hs, nhosts);
	alloc_recount(f);
	return ok(res);
store_types:
	memcpy(f->types, oldtypes, sizeof(oldtypes));
	f->ntypes = oldntypes;
store:
	free(nodes);
	free(hs);
	free(kept);
	return store_failed(f, res);
}
