/* alloc-*: the allocator's semantics (kittyhawk-reference.md "Acquiring
 * nodes"), its all-or-nothing rule, and that the state store holds exactly
 * what memory holds; every case on SQLite and on PostgreSQL (statefx.h).
 * alloc-6.1-6.3, 6.5-6.7: what only PostgreSQL's store is for: two front
 * ends with a facility each on one database never give a node twice; the
 * schema's own refusals; server restarts; notifications of changes.
 * alloc-7.*: a facility of several hosts: the rank layout, placement per
 * host, hosts that are not up, layout changes all or nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allocator/alloc.h"
#include "khd/config.h"
#include "state/state.h"
#include "statefx.h"

struct fx {
	char dir[64];
	struct facility f;
};

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct node_type t;
	struct alloc_result res;

	snprintf(x->dir, sizeof(x->dir), "/tmp/kh-test-alloc-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	statefx_new(x->dir);
	x->f.st = statefx_open();
	assert_non_null(x->f.st);
	assert_int_equal(state_load(x->f.st, &x->f), 0);
	x->f.next_netid = 3;
	x->f.next_chan = 2;
	snprintf(x->f.host, sizeof(x->f.host), "h");
	config_default_type(&t, 10);
	t.max_ifs = 4;
	assert_int_equal(alloc_pool(&x->f, &t, 1, &res), 0);
	assert_int_equal(alloc_init_domains(&x->f, &res), 0);
	assert_int_equal(x->f.nnodes, 10);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	char cmd[128];
	state_close(x->f.st);
	fac_free(&x->f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
	assert_int_equal(system(cmd), 0);
	free(x);
	return 0;
}

static struct principal
newp(const char *name)
{
	struct principal p;
	memset(&p, 0, sizeof(p));
	snprintf(p.name, sizeof(p.name), "%s", name);
	snprintf(p.pwhash, sizeof(p.pwhash), "$argon2id$fake");
	return p;
}

/* Get count nodes for name (created if new); returns the channel or -1. */
static int
get(struct facility *f, const char *name, int count, const char *flags, struct alloc_result *res)
{
	struct get_req r = {.count = count, .newnets = -1};
	struct principal np = newp(name);
	int idx = -1, chan = -1;
	const char *p;
	fac_principal(f, name, &idx);
	if ((p = strstr(flags, "p=")))
		r.newnets = atoi(p + 2);
	if ((p = strstr(flags, "n="))) {
		for (p += 2; *p && *p != ' ';) {
			r.netids[r.nnetids++] = atoi(p);
			p += strcspn(p, ", ");
			if (*p == ',')
				p++;
		}
	}
	r.pub = strstr(flags, "i") != NULL;
	r.ext = strstr(flags, "x") != NULL;
	if (alloc_get(f, idx, &np, &r, &chan, res) < 0)
		return -1;
	return chan;
}

static const char *
block(struct facility *f, int chan)
{
	static struct sbuf b;
	sbuf_free(&b);
	alloc_block(f, chan, &b, 0);
	return b.s;
}

/* Everything the store holds, loaded into a fresh facility, printed. */
static void
dump(struct facility *f, struct sbuf *out)
{
	for (int i = 0; i < f->nnodes; i++) {
		struct node *n = &f->nodes[i];
		sbuf_printf(out, "n%d s%d o%s c%d:", n->rank, n->state,
			    n->owner >= 0 ? f->principals[n->owner].name : "-", n->chan);
		for (int k = 0; k < n->nifs; k++)
			sbuf_printf(out, " %d", n->ifs[k]);
		sbuf_adds(out, "\n");
	}
	for (int i = 0; i < f->ndomains; i++)
		sbuf_printf(out, "d%d k%d o%d\n", f->domains[i].netid, f->domains[i].kind,
			    f->domains[i].owner);
	for (int i = 0; i < f->nchannels; i++)
		sbuf_printf(out, "c%d o%d nets%d\n", f->channels[i].id, f->channels[i].owner,
			    f->channels[i].nnets);
	for (int i = 0; i < f->nprincipals; i++)
		sbuf_printf(out, "p%s\n", f->principals[i].name);
	for (int i = 0; i < f->nkeys; i++)
		sbuf_printf(out, "k%d c%d %s\n", f->keys[i].owner, f->keys[i].chan,
			    f->keys[i].line);
}

static void
assert_store_matches(struct fx *x)
{
	struct facility g;
	struct sbuf a, b;
	memset(&g, 0, sizeof(g));
	g.st = statefx_open();
	assert_non_null(g.st);
	assert_int_equal(state_load(g.st, &g), 0);
	sbuf_init(&a);
	sbuf_init(&b);
	dump(&x->f, &a);
	dump(&g, &b);
	assert_string_equal(a.s, b.s);
	sbuf_free(&a);
	sbuf_free(&b);
	state_close(g.st);
	fac_free(&g);
}

/* alloc-1.1: a first acquisition makes a private domain and channel con2,
 * takes the lowest ranks and prints the original's control block. */
static void
alloc_1_1(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	int c = get(&x->f, "alice", 3, "", &res);
	assert_int_equal(c, 2);
	const char *b = block(&x->f, c);
	assert_non_null(strstr(b, "con2@h\nprotocol: uboot\nnetwork 3 : eth0\n"));
	assert_non_null(strstr(b, "nodeinfo: 0 "));
	assert_non_null(strstr(b, " 10.0.48.1\n"));
	assert_non_null(strstr(b, "\nnodes: 0 1 2\n"));
	assert_store_matches(x);
}

/* alloc-1.2: a sole private domain is reused; -x and -i come first, in
 * the original's eth order. */
static void
alloc_1_2(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	assert_int_equal(get(&x->f, "alice", 1, "", &res), 2);
	int c = get(&x->f, "alice", 2, "xi", &res);
	assert_int_equal(c, 3);
	const char *b = block(&x->f, c);
	assert_non_null(strstr(b, "network External : eth0\nnetwork Internal : eth1\n"
				  "network 3 : eth2\n"));
	/* field 3 is the external address with -x */
	assert_non_null(strstr(b, "nodeinfo: 1 "));
	assert_non_null(strstr(b, " 10.0.16.2\n"));
	c = get(&x->f, "alice", 1, "i", &res);
	assert_non_null(strstr(block(&x->f, c), "network Internal : eth0\nnetwork 3 : eth1\n"));
	assert_store_matches(x);
}

/* alloc-1.3: -p makes new domains; owning several, no -n/-p is refused;
 * -n picks, -p 0 gives no private domain. */
static void
alloc_1_3(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	assert_int_equal(get(&x->f, "bob", 1, "p=2", &res), 2);
	assert_non_null(strstr(block(&x->f, 2), "network 3 : eth0\nnetwork 4 : eth1\n"));
	assert_int_equal(get(&x->f, "bob", 1, "", &res), -1);
	assert_int_equal(res.code, AE_BADARG);
	assert_non_null(strstr(res.msg, "choose with -n"));
	int c = get(&x->f, "bob", 1, "n=4", &res);
	assert_non_null(strstr(block(&x->f, c), "protocol: uboot\nnetwork 4 : eth0\nnodeinfo"));
	c = get(&x->f, "bob", 1, "n=4,3 p=1", &res);
	assert_non_null(strstr(block(&x->f, c), "network 4 : eth0\nnetwork 3 : eth1\n"
						"network 5 : eth2\n"));
	c = get(&x->f, "bob", 1, "x p=0", &res);
	assert_non_null(strstr(block(&x->f, c), "uboot\nnetwork External : eth0\nnodeinfo"));
	assert_store_matches(x);
}

/* alloc-2.1: too few nodes: nothing at all changes, not even the new
 * principal, its domain or the counters. */
static void
alloc_2_1(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	struct sbuf before, after;
	sbuf_init(&before);
	sbuf_init(&after);
	assert_int_equal(get(&x->f, "alice", 8, "", &res), 2);
	dump(&x->f, &before);
	int nn = x->f.next_netid, nc = x->f.next_chan;
	assert_int_equal(get(&x->f, "carol", 3, "", &res), -1);
	assert_int_equal(res.code, AE_NONODES);
	assert_string_equal(res.msg, "not enough nodes available");
	assert_int_equal(get(&x->f, "alice", 3, "p=1", &res), -1);
	dump(&x->f, &after);
	assert_string_equal(before.s, after.s);
	assert_null(fac_principal(&x->f, "carol", NULL));
	assert_int_equal(x->f.next_netid, nn);
	assert_int_equal(x->f.next_chan, nc);
	assert_store_matches(x);
	/* exactly the rest still works */
	assert_int_equal(get(&x->f, "carol", 2, "", &res), 3);
	sbuf_free(&before);
	sbuf_free(&after);
}

/* alloc-2.2: netids that are not the principal's, not private or not there. */
static void
alloc_2_2(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	assert_int_equal(get(&x->f, "alice", 1, "", &res), 2);
	assert_int_equal(get(&x->f, "bob", 1, "n=3", &res), -1);
	assert_int_equal(res.code, AE_PERM);
	assert_int_equal(get(&x->f, "alice", 1, "n=99", &res), -1);
	assert_int_equal(res.code, AE_NOTFOUND);
	assert_int_equal(get(&x->f, "alice", 1, "n=1", &res), -1);
	assert_non_null(strstr(res.msg, "use -x"));
	assert_int_equal(get(&x->f, "alice", 1, "n=0", &res), -1);
	assert_int_equal(get(&x->f, "alice", 1, "n=3,3", &res), -1);
	assert_non_null(strstr(res.msg, "twice"));
	assert_int_equal(get(&x->f, "alice", 1, "xi p=3", &res), -1); /* 5 > 4 ifs */
	assert_non_null(strstr(res.msg, "at most 4 interfaces"));
	assert_int_equal(get(&x->f, "alice", 0, "", &res), -1);
	assert_null(fac_principal(&x->f, "bob", NULL));
	assert_store_matches(x);
}

/* alloc-3.1: release returns nodes; the emptied channel closes; a node
 * that is not yours is refused and nothing changes. */
static void
alloc_3_1(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	int ranks[3] = {0, 1, 2};
	assert_int_equal(get(&x->f, "alice", 3, "", &res), 2);
	assert_int_equal(get(&x->f, "bob", 1, "", &res), 3);
	int mixed[2] = {1, 3};
	assert_int_equal(alloc_release(&x->f, 0, mixed, 2, &res), -1);
	assert_int_equal(res.code, AE_PERM);
	assert_int_equal(fac_node(&x->f, 1)->state, NODE_MONITOR);
	int dup[2] = {1, 1};
	assert_int_equal(alloc_release(&x->f, 0, dup, 2, &res), -1);
	assert_int_equal(alloc_release(&x->f, 0, ranks, 2, &res), 0);
	assert_non_null(fac_channel(&x->f, 2));
	assert_int_equal(fac_channel(&x->f, 2)->nnodes, 1);
	assert_int_equal(alloc_release(&x->f, 0, ranks + 2, 1, &res), 0);
	assert_null(fac_channel(&x->f, 2));
	assert_int_equal(fac_node(&x->f, 0)->state, NODE_FREE);
	assert_int_equal(fac_domain(&x->f, 3)->members, 0);
	assert_store_matches(x);
	/* released nodes are the lowest free ones again */
	assert_int_equal(get(&x->f, "carol", 1, "", &res), 4);
	assert_non_null(strstr(block(&x->f, 4), "nodes: 0\n"));
}

/* alloc-3.2: addnet/rmnet change interfaces and isAllowed; only domains
 * the principal may use. */
static void
alloc_3_2(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	assert_int_equal(get(&x->f, "alice", 2, "", &res), 2); /* 0,1 in 3 */
	assert_int_equal(get(&x->f, "bob", 1, "", &res), 3);   /* 2 in 4 */
	struct node *a = fac_node(&x->f, 0), *b = fac_node(&x->f, 2), *c = fac_node(&x->f, 1);
	assert_true(alloc_allowed(&x->f, a, c));
	assert_false(alloc_allowed(&x->f, a, b));
	int r0 = 0, r2 = 2;
	assert_int_equal(alloc_addnet(&x->f, 0, 4, &r0, 1, &res), -1); /* bob's domain */
	assert_int_equal(res.code, AE_PERM);
	assert_int_equal(alloc_addnet(&x->f, 0, 2, &r0, 1, &res), 0);
	assert_int_equal(alloc_addnet(&x->f, 0, 2, &r0, 1, &res), -1); /* already */
	assert_int_equal(alloc_addnet(&x->f, 1, 2, &r2, 1, &res), 0);
	assert_true(alloc_allowed(&x->f, a, b));
	assert_int_equal(a->nifs, 2);
	assert_int_equal(a->ifs[1], 2);
	assert_int_equal(alloc_rmnet(&x->f, 0, 3, &r0, 1, &res), 0);
	assert_int_equal(a->ifs[0], 0); /* eth0 is gone, eth1 stays eth1 */
	assert_false(alloc_allowed(&x->f, a, c));
	assert_int_equal(alloc_rmnet(&x->f, 0, 3, &r0, 1, &res), -1);
	assert_int_equal(alloc_addnet(&x->f, 0, 3, &r0, 1, &res), 0);
	assert_int_equal(a->ifs[0], 3); /* the free slot is reused */
	assert_int_equal(alloc_addnet(&x->f, 0, 77, &r0, 1, &res), -1);
	assert_int_equal(res.code, AE_NOTFOUND);
	assert_store_matches(x);
}

/* alloc-4.1: the pool grows and shrinks from the top, never taking an
 * allocated node. */
static void
alloc_4_1(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	struct node_type t;
	config_default_type(&t, 12);
	t.max_ifs = 4;
	assert_int_equal(get(&x->f, "alice", 10, "", &res), 2);
	assert_int_equal(alloc_pool(&x->f, &t, 1, &res), 0);
	assert_int_equal(x->f.nnodes, 12);
	assert_int_equal(x->f.nodes[11].rank, 11);
	t.count = 4;
	assert_int_equal(alloc_pool(&x->f, &t, 1, &res), 0);
	assert_int_equal(x->f.nnodes, 10); /* the 10 allocated ones stay */
	assert_store_matches(x);
}

/* Does some key with this line open channel chan? */
static int
opens(struct facility *f, int chan, const char *line)
{
	struct channel *c = fac_channel(f, chan);
	for (int i = 0; c && i < f->nkeys; i++)
		if (strcmp(f->keys[i].line, line) == 0 && alloc_key_opens(c, &f->keys[i]))
			return 1;
	return 0;
}

/* alloc-5.1: ssh keys.  The owner's keys open its channels until one is
 * transferred; then only keys added for that channel do, until the next
 * transfer or its release; the store holds the same. */
static void
alloc_5_1(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	int alice = -1, bob = -1;
	assert_int_equal(get(&x->f, "alice", 2, "", &res), 2);
	assert_int_equal(get(&x->f, "bob", 1, "", &res), 3);
	fac_principal(&x->f, "alice", &alice);
	fac_principal(&x->f, "bob", &bob);
	assert_int_equal(alloc_addkey(&x->f, alice, "ssh-ed25519 AAAA a", &res), 0);
	assert_int_equal(alloc_addkey(&x->f, bob, "ssh-ed25519 BBBB b", &res), 0);
	assert_true(opens(&x->f, 2, "ssh-ed25519 AAAA a"));
	assert_false(opens(&x->f, 2, "ssh-ed25519 BBBB b"));
	assert_true(opens(&x->f, 3, "ssh-ed25519 BBBB b"));
	/* a key for a channel that was not transferred: refused */
	assert_int_equal(alloc_addkey_chan(&x->f, 2, "ssh-ed25519 CCCC c", &res), -1);
	assert_int_equal(res.code, AE_PERM);
	assert_int_equal(alloc_transfer(&x->f, alice, 2, "$argon2id$one", &res), 0);
	assert_false(opens(&x->f, 2, "ssh-ed25519 AAAA a"));
	assert_int_equal(alloc_addkey_chan(&x->f, 2, "ssh-ed25519 CCCC c", &res), 0);
	/* twice: stored once */
	assert_int_equal(alloc_addkey_chan(&x->f, 2, "ssh-ed25519 CCCC c", &res), 0);
	assert_true(opens(&x->f, 2, "ssh-ed25519 CCCC c"));
	assert_false(opens(&x->f, 3, "ssh-ed25519 CCCC c"));
	assert_int_equal(alloc_addkey_chan(&x->f, 9, "ssh-ed25519 CCCC c", &res), -1);
	assert_int_equal(res.code, AE_NOTFOUND);
	assert_store_matches(x);
	assert_int_equal(alloc_transfer(&x->f, alice, 2, "$argon2id$two", &res), 0);
	assert_false(opens(&x->f, 2, "ssh-ed25519 CCCC c"));
	assert_int_equal(alloc_addkey_chan(&x->f, 2, "ssh-ed25519 DDDD d", &res), 0);
	assert_store_matches(x);
	int *ranks, n;
	assert_int_equal(alloc_chan_ranks(&x->f, alice, 2, &ranks, &n, &res), 0);
	assert_int_equal(alloc_release(&x->f, alice, ranks, n, &res), 0);
	free(ranks);
	for (int i = 0; i < x->f.nkeys; i++)
		assert_int_equal(x->f.keys[i].chan, 0);
	assert_int_equal(x->f.nkeys, 2);
	assert_store_matches(x);
}

/* A second front end on the same database: its own facility, loaded
 * from the store as khd loads it at start. */
static void
second(struct fx *x, struct facility *g)
{
	memset(g, 0, sizeof(*g));
	g->st = statefx_open();
	assert_non_null(g->st);
	assert_int_equal(state_load(g->st, g), 0);
	g->next_netid = x->f.next_netid;
	g->next_chan = x->f.next_chan;
	snprintf(g->host, sizeof(g->host), "h");
	alloc_recount(g);
}

static void
close_second(struct facility *g)
{
	state_close(g->st);
	fac_free(g);
}

/* alloc-6.1: two front ends loaded at the same moment: what the first
 * gives, the second (which still sees the nodes free) cannot give again,
 * even under channel and domain numbers of its own; its allocation fails
 * whole and its memory is unchanged.  Loaded again, it gives the others. */
static void
alloc_6_1(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	struct facility g;
	struct sbuf before, after;
	second(x, &g);
	assert_int_equal(get(&x->f, "alice", 3, "", &res), 2);
	sbuf_init(&before);
	sbuf_init(&after);
	dump(&g, &before);
	assert_int_equal(get(&g, "bob", 2, "", &res), -1); /* con2 is alice's */
	assert_int_equal(res.code, AE_INTERNAL);
	g.next_chan = 7;
	g.next_netid = 9;
	assert_int_equal(get(&g, "bob", 2, "", &res), -1); /* nodes 0 and 1 are alice's */
	assert_int_equal(res.code, AE_INTERNAL);
	dump(&g, &after);
	assert_string_equal(before.s, after.s);
	assert_int_equal(g.next_chan, 7);
	assert_store_matches(x);
	/* the same name with another credential is another principal */
	struct principal other = newp("alice");
	snprintf(other.pwhash, sizeof(other.pwhash), "$argon2id$other");
	assert_int_equal(state_begin(g.st), 0);
	assert_int_equal(state_put_principal(g.st, &other), 0); /* sent... */
	assert_int_equal(state_commit(g.st), -1);		/* ...and refused whole */
	close_second(&g);
	/* loaded again, the second front end gives what is free */
	second(x, &g);
	assert_int_equal(get(&g, "bob", 2, "", &res), 3);
	assert_non_null(strstr(block(&g, 3), "nodes: 3 4\n"));
	close_second(&g);
	sbuf_free(&before);
	sbuf_free(&after);
}

/* alloc-6.2: a front end that saw an allocation which the other has since
 * released and given to someone else cannot release those nodes. */
static void
alloc_6_2(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	struct facility g, h;
	int ranks[3] = {0, 1, 2}, alice = -1;
	assert_int_equal(get(&x->f, "alice", 3, "", &res), 2);
	second(x, &g);
	fac_principal(&g, "alice", &alice);
	fac_principal(&x->f, "alice", &alice);
	assert_int_equal(alloc_release(&x->f, alice, ranks, 3, &res), 0);
	assert_int_equal(get(&x->f, "carol", 3, "", &res), 3);
	fac_principal(&g, "alice", &alice);
	assert_int_equal(alloc_release(&g, alice, ranks, 3, &res), -1);
	assert_int_equal(res.code, AE_INTERNAL);
	assert_store_matches(x);
	second(x, &h);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fac_node(&h, i)->chan, 3);
		assert_string_equal(h.principals[fac_node(&h, i)->owner].name, "carol");
	}
	close_second(&h);
	close_second(&g);
}

/* alloc-6.3: the schema refuses on its own, whoever writes: a node moved
 * from one allocation to another without being freed, a node in a channel
 * of another owner, an owner without a channel, a channel removed while
 * it has nodes. */
static void
alloc_6_3(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	char err[512];
	assert_int_equal(get(&x->f, "alice", 2, "", &res), 2);
	assert_int_equal(get(&x->f, "bob", 1, "", &res), 3);
	assert_int_equal(
	    statefx_sql("UPDATE nodes SET owner='bob', chan=3 WHERE rank=0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "node 0 is already given (channel con2)"));
	assert_int_equal(statefx_sql("UPDATE nodes SET owner='bob' WHERE rank=0", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "nodes_chan"));
	assert_int_equal(
	    statefx_sql("UPDATE nodes SET chan=NULL, state=0 WHERE rank=0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nodes_free"));
	assert_int_equal(statefx_sql("DELETE FROM channels WHERE id=2", err, sizeof(err)), -1);
	assert_int_equal(statefx_sql("UPDATE nodes SET state=0, owner=NULL, chan=NULL WHERE rank=5;"
				     "UPDATE nodes SET state=1, owner='alice', chan=2 WHERE rank=5",
				     err, sizeof(err)),
			 0); /* freed first, then given: allowed */
	assert_int_equal(statefx_sql("UPDATE nodes SET state=0, owner=NULL, chan=NULL WHERE rank=5",
				     err, sizeof(err)),
			 0);
	assert_store_matches(x);
}

/* alloc-6.4: the schema is made once: opening again changes nothing, its
 * version is in meta, and a database of a newer khd is refused in one
 * line. */
static void
alloc_6_4(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	char v[32], err[256];
	assert_int_equal(get(&x->f, "alice", 2, "", &res), 2);
	assert_int_equal(state_get_meta(x->f.st, "schema_version", v, sizeof(v)), 1);
	assert_string_equal(v, "1");
	struct state *again = statefx_open();
	assert_non_null(again);
	state_close(again);
	assert_store_matches(x);
	assert_int_equal(
	    statefx_sql("UPDATE meta SET value='99' WHERE key='schema_version'", err, sizeof(err)),
	    0);
	assert_null(state_open(statefx.spec, x->dir, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "schema is version 99, this khd knows up to 1"));
	assert_null(strchr(err, '\n'));
	assert_int_equal(
	    statefx_sql("UPDATE meta SET value='1' WHERE key='schema_version'", err, sizeof(err)),
	    0);
}

/* alloc-6.5: the server restarts under a running front end: the next
 * change goes through on a new connection, and nothing is lost. */
static void
alloc_6_5(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	char cmd[160];
	assert_int_equal(get(&x->f, "alice", 2, "", &res), 2);
	snprintf(cmd, sizeof(cmd), "tests/lib/pgcluster.sh restart %s", statefx.dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(get(&x->f, "bob", 1, "", &res), 3);
	assert_store_matches(x);
}

/* alloc-6.6: the server restarts in the middle of a transaction (its
 * writes sent, not yet committed): that change fails whole, and the next
 * goes through on a new connection. */
static void
alloc_6_6(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	char cmd[160], v[32];
	assert_int_equal(get(&x->f, "alice", 2, "", &res), 2);
	assert_int_equal(state_begin(x->f.st), 0);
	assert_int_equal(state_put_meta(x->f.st, "half", "done"), 0);
	snprintf(cmd, sizeof(cmd), "tests/lib/pgcluster.sh restart %s", statefx.dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(state_put_meta(x->f.st, "half", "again"), 0);
	assert_int_equal(state_commit(x->f.st), -1);
	assert_int_equal(get(&x->f, "bob", 1, "", &res), 3);
	assert_int_equal(state_get_meta(x->f.st, "half", v, sizeof(v)), 0);
	assert_store_matches(x);
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The notifications on channel kh_state that arrive within ms, as
 * "table table ...", sorted and each once. */
static void
notified(PGconn *c, int ms, char *out, size_t len)
{
	struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
	char seen[8][32];
	int n = 0;
	out[0] = '\0';
	while (poll(&p, 1, ms) > 0) {
		PGnotify *nf;
		assert_int_equal(PQconsumeInput(c), 1);
		while ((nf = PQnotifies(c)) != NULL) {
			int dup = strcmp(nf->relname, "kh_state") != 0;
			for (int i = 0; i < n; i++)
				dup |= strcmp(seen[i], nf->extra) == 0;
			if (!dup && n < 8)
				snprintf(seen[n++], sizeof(seen[0]), "%s", nf->extra);
			PQfreemem(nf);
		}
		ms = 200;
	}
	qsort(seen, (size_t)n, sizeof(seen[0]), by_name);
	for (int i = 0; i < n; i++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", seen[i]);
}

/* alloc-6.7: whoever keeps a copy of the facility learns of a change
 * without polling: a committed allocation notifies channel kh_state with
 * the tables it changed, a refused one (rolled back) nothing. */
static void
alloc_6_7(void **state)
{
	struct fx *x = *state;
	struct alloc_result res;
	struct facility g;
	char got[256];
	PGconn *c = PQconnectdb(statefx.spec + strlen("postgresql:"));
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "LISTEN kh_state"));
	second(x, &g);
	assert_int_equal(get(&x->f, "alice", 2, "", &res), 2);
	notified(c, 2000, got, sizeof(got));
	assert_string_equal(got, "channels domains nodes principals");
	assert_int_equal(get(&g, "bob", 1, "p=0", &res), -1); /* con2 is alice's */
	notified(c, 500, got, sizeof(got));
	assert_string_equal(got, "");
	int r0 = 0;
	assert_int_equal(alloc_reset(&x->f, 0, &r0, 1, &res), 0);
	notified(c, 2000, got, sizeof(got));
	assert_string_equal(got, "nodes");
	close_second(&g);
	PQfinish(c);
}

/* Three hosts a, b, c (agents at 10.0.0.1-3:7000) with 4 ct1 and 1 vm1
 * node each, every host up. */
static void
three_hosts(struct facility *f, int ct1, int vm1, struct alloc_result *res)
{
	struct node_type t[2];
	struct fac_host h[3];
	config_default_type(&t[0], ct1);
	t[0].max_ifs = 4;
	config_default_type(&t[1], vm1);
	snprintf(t[1].name, sizeof(t[1].name), "vm1");
	snprintf(t[1].backend, sizeof(t[1].backend), "vm");
	memset(h, 0, sizeof(h));
	for (int i = 0; i < 3; i++) {
		snprintf(h[i].name, sizeof(h[i].name), "%c", 'a' + i);
		snprintf(h[i].addr, sizeof(h[i].addr), "10.0.0.%d:7000", i + 1);
	}
	assert_int_equal(alloc_pool_hosts(f, t, 2, h, 3, res), 0);
}

/* Nodes' types and hosts as "rank:type@host ...". */
static const char *
layout(const struct facility *f)
{
	static char out[512];
	out[0] = '\0';
	for (int i = 0; i < f->nnodes; i++) {
		const struct fac_host *h = fac_host_of(f, f->nodes[i].rank);
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%d:%s@%s", i ? " " : "",
			 f->nodes[i].rank, f->types[f->nodes[i].type].name, h ? h->name : "?");
	}
	return out;
}

/* alloc-7.1: without hosts the facility is one host, as before: named
 * after the facility, local, every rank. */
static void
alloc_7_1(void **state)
{
	struct fx *x = *state;
	struct facility *f = &x->f;
	assert_int_equal(f->nhosts, 1);
	assert_string_equal(f->hosts[0].name, "h");
	assert_string_equal(f->hosts[0].addr, "");
	assert_int_equal(f->hosts[0].state, HOST_LOCAL);
	assert_int_equal(f->hosts[0].first, 0);
	assert_int_equal(f->hosts[0].count, 10);
	assert_ptr_equal(fac_host_of(f, 9), &f->hosts[0]);
	assert_null(fac_host_of(f, 10));
	assert_null(fac_host_of(f, -1));
	assert_int_equal(fac_host_find(f, "h"), 0);
	assert_int_equal(fac_host_find(f, "a"), -1);
}

/* alloc-7.2: with hosts, every host gets every type (counts per host),
 * ranks host-major, types in order within a host; hosts start down; the
 * store holds the same nodes, and the same configuration again changes
 * nothing. */
static void
alloc_7_2(void **state)
{
	struct fx *x = *state;
	struct facility *f = &x->f;
	struct alloc_result res;
	three_hosts(f, 4, 1, &res);
	assert_int_equal(f->nnodes, 15);
	assert_int_equal(f->nhosts, 3);
	assert_string_equal(layout(f), "0:ct1@a 1:ct1@a 2:ct1@a 3:ct1@a 4:vm1@a "
				       "5:ct1@b 6:ct1@b 7:ct1@b 8:ct1@b 9:vm1@b "
				       "10:ct1@c 11:ct1@c 12:ct1@c 13:ct1@c 14:vm1@c");
	for (int h = 0; h < 3; h++) {
		assert_int_equal(f->hosts[h].state, HOST_DOWN);
		assert_int_equal(f->hosts[h].first, 5 * h);
		assert_int_equal(f->hosts[h].count, 5);
		assert_int_equal(f->hosts[h].lost_ms, 0);
	}
	assert_string_equal(f->hosts[1].addr, "10.0.0.2:7000");
	assert_store_matches(x);
	/* the store's rows have the layout's types */
	struct facility g;
	memset(&g, 0, sizeof(g));
	g.st = statefx_open();
	assert_int_equal(state_load(g.st, &g), 0);
	assert_int_equal(g.nnodes, 15);
	for (int i = 0; i < 15; i++)
		assert_string_equal(g.types[g.nodes[i].type].name, f->types[f->nodes[i].type].name);
	state_close(g.st);
	fac_free(&g);
	/* again, with one allocation held: nothing changes, host states kept */
	assert_int_equal(fac_host_set_state(f, 0, HOST_UP, 0), 0);
	assert_int_equal(get(f, "alice", 2, "", &res), 2);
	struct sbuf a, b;
	sbuf_init(&a);
	sbuf_init(&b);
	dump(f, &a);
	three_hosts(f, 4, 1, &res);
	dump(f, &b);
	assert_string_equal(a.s, b.s);
	assert_int_equal(f->hosts[0].state, HOST_UP);
	assert_int_equal(f->hosts[1].state, HOST_DOWN);
	assert_store_matches(x);
	sbuf_free(&a);
	sbuf_free(&b);
}

/* alloc-7.3: a placement takes each host's lowest free ranks of the type;
 * all or nothing: a host short of nodes, or not up, fails the whole
 * request (nonodes) and nothing changes. */
static void
alloc_7_3(void **state)
{
	struct fx *x = *state;
	struct facility *f = &x->f;
	struct alloc_result res;
	struct principal np = newp("alice");
	int chan, per[3] = {2, 0, 2};
	three_hosts(f, 4, 1, &res);
	for (int h = 0; h < 3; h++)
		assert_int_equal(fac_host_set_state(f, h, HOST_UP, 0), 0);
	struct get_req r = {.count = 4, .newnets = -1, .per_host = per, .nper_host = 3};
	assert_int_equal(alloc_get(f, -1, &np, &r, &chan, &res), 0);
	assert_non_null(strstr(block(f, chan), "nodes: 0 1 10 11\n"));
	assert_store_matches(x);

	struct sbuf before, after;
	sbuf_init(&before);
	sbuf_init(&after);
	dump(f, &before);
	int next_chan = f->next_chan, next_netid = f->next_netid;
	/* host a has 2 free ct1 left: 3 there fails all 4 */
	int short_a[3] = {3, 1, 0};
	r.per_host = short_a;
	assert_int_equal(alloc_get(f, 0, NULL, &r, &chan, &res), -1);
	assert_int_equal(res.code, AE_NONODES);
	assert_string_equal(res.msg, "not enough nodes available: host a lacks 1 free ct1 nodes");
	/* vm1: one per host */
	int two_vm[3] = {0, 2, 0};
	struct get_req v = {
	    .count = 2, .newnets = -1, .type = 1, .per_host = two_vm, .nper_host = 3};
	assert_int_equal(alloc_get(f, 0, NULL, &v, &chan, &res), -1);
	assert_int_equal(res.code, AE_NONODES);
	/* a host that is not up has no free nodes to give */
	assert_int_equal(fac_host_set_state(f, 1, HOST_DOWN, 0), 0);
	int on_b[3] = {0, 1, 0};
	r.count = 1;
	r.per_host = on_b;
	assert_int_equal(alloc_get(f, 0, NULL, &r, &chan, &res), -1);
	assert_string_equal(res.msg, "not enough nodes available: host b is down");
	assert_int_equal(fac_host_set_state(f, 1, HOST_LOST, 99), 0);
	assert_int_equal(alloc_get(f, 0, NULL, &r, &chan, &res), -1);
	assert_string_equal(res.msg, "not enough nodes available: host b is lost");
	/* nonsense placements are refused, never half taken */
	int wrong_sum[3] = {1, 0, 1};
	r.per_host = wrong_sum;
	assert_int_equal(alloc_get(f, 0, NULL, &r, &chan, &res), -1);
	assert_int_equal(res.code, AE_BADARG);
	int negative[3] = {2, -1, 0};
	r.per_host = negative;
	assert_int_equal(alloc_get(f, 0, NULL, &r, &chan, &res), -1);
	assert_int_equal(res.code, AE_BADARG);
	r.nper_host = 2;
	r.per_host = short_a;
	assert_int_equal(alloc_get(f, 0, NULL, &r, &chan, &res), -1);
	assert_int_equal(res.code, AE_BADARG);
	dump(f, &after);
	assert_string_equal(before.s, after.s);
	assert_int_equal(f->next_chan, next_chan);
	assert_int_equal(f->next_netid, next_netid);
	assert_store_matches(x);

	/* without a placement: the lowest free ranks on hosts that are up */
	struct get_req d = {.count = 4, .newnets = -1};
	assert_int_equal(alloc_get(f, 0, NULL, &d, &chan, &res), 0);
	assert_non_null(strstr(block(f, chan), "nodes: 2 3 12 13\n"));
	d.count = 1;
	assert_int_equal(alloc_get(f, 0, NULL, &d, &chan, &res), -1);
	assert_int_equal(res.code, AE_NONODES);
	assert_store_matches(x);
	sbuf_free(&before);
	sbuf_free(&after);
}

/* alloc-7.4: a change of the hosts or counts that would move or drop a
 * held node is refused whole (the layout is kept, the store unchanged);
 * one that keeps every held node where it is goes through. */
static void
alloc_7_4(void **state)
{
	struct fx *x = *state;
	struct facility *f = &x->f;
	struct alloc_result res;
	struct principal np = newp("alice");
	int chan, per[3] = {0, 0, 1};
	three_hosts(f, 4, 1, &res);
	fac_host_set_state(f, 2, HOST_UP, 0);
	struct get_req r = {.count = 1, .newnets = -1, .per_host = per, .nper_host = 3};
	assert_int_equal(alloc_get(f, -1, &np, &r, &chan, &res), 0);
	assert_non_null(strstr(block(f, chan), "nodes: 10\n"));
	struct sbuf before, after;
	sbuf_init(&before);
	sbuf_init(&after);
	dump(f, &before);
	/* 2 ct1 per host: rank 10 would be beyond the 9 nodes */
	struct node_type t[2];
	config_default_type(&t[0], 2);
	config_default_type(&t[1], 1);
	snprintf(t[1].name, sizeof(t[1].name), "vm1");
	assert_int_equal(alloc_pool_hosts(f, t, 2, f->hosts, 3, &res), -1);
	assert_int_equal(res.code, AE_BUSY);
	assert_string_equal(res.msg, "node 10 (ct1) is held by alice, and the hosts' layout has "
				     "no node there: release it first, or keep the configuration");
	/* 5 vm1 per host and no ct1: rank 10 would be host c's first vm1 */
	t[0].count = 0;
	t[1].count = 5;
	assert_int_equal(alloc_pool_hosts(f, t, 2, f->hosts, 3, &res), -1);
	assert_int_equal(res.code, AE_BUSY);
	assert_non_null(strstr(res.msg, "has vm1 there"));
	/* one host fewer: rank 10 would be beyond */
	config_default_type(&t[0], 4);
	t[1].count = 1;
	assert_int_equal(alloc_pool_hosts(f, t, 2, f->hosts, 2, &res), -1);
	assert_int_equal(res.code, AE_BUSY);
	dump(f, &after);
	assert_string_equal(before.s, after.s);
	assert_int_equal(f->nhosts, 3);
	assert_store_matches(x);
	/* 4 hosts of the same: rank 10 stays c's ct1 */
	struct fac_host h4[4];
	memcpy(h4, f->hosts, 3 * sizeof(*h4));
	h4[3] = h4[2];
	snprintf(h4[3].name, sizeof(h4[3].name), "d");
	snprintf(h4[3].addr, sizeof(h4[3].addr), "10.0.0.4:7000");
	config_default_type(&t[0], 4);
	t[1].count = 1;
	assert_int_equal(alloc_pool_hosts(f, t, 2, h4, 4, &res), 0);
	assert_int_equal(f->nnodes, 20);
	assert_string_equal(fac_host_of(f, 10)->name, "c");
	assert_string_equal(fac_host_of(f, 19)->name, "d");
	assert_int_equal(f->hosts[2].state, HOST_UP); /* kept */
	assert_int_equal(f->hosts[3].state, HOST_DOWN);
	assert_int_equal(fac_node(f, 10)->chan, chan);
	assert_store_matches(x);
	sbuf_free(&before);
	sbuf_free(&after);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(alloc_1_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_1_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_1_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_2_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_2_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_3_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_3_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_4_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_5_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_6_4, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_7_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_7_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_7_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_7_4, setup, teardown),
	};
	const struct CMUnitTest pg_only[] = {
	    cmocka_unit_test_setup_teardown(alloc_6_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_6_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_6_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_6_5, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_6_6, setup, teardown),
	    cmocka_unit_test_setup_teardown(alloc_6_7, setup, teardown),
	};
	int rc = cmocka_run_group_tests_name("alloc (sqlite)", tests, NULL, NULL);
	if (statefx_pg_start() < 0)
		return 1;
	rc |= cmocka_run_group_tests_name("alloc (postgresql)", tests, NULL, NULL);
	rc |= cmocka_run_group_tests_name("alloc (postgresql: two front ends, the schema)", pg_only,
					  NULL, NULL);
	statefx_pg_stop();
	return rc;
}
