/* policy-*: the policy chain and its modules (src/policy, docs/policy.md):
 * khd.conf's policy lines, the limits module's decisions and accounting,
 * its recount from the facility's state, and placement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "khd/config.h"
#include "policy/policy.h"

/* A facility of n free ct1 nodes on host h, without a state store: the
 * policy reads the model only. */
static void
fac_make(struct facility *f, int n)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->host, sizeof(f->host), "h");
	snprintf(f->types[0].name, sizeof(f->types[0].name), "ct1");
	f->ntypes = 1;
	f->nodes = calloc((size_t)n, sizeof(*f->nodes));
	f->nnodes = n;
	for (int i = 0; i < n; i++)
		f->nodes[i] = (struct node){.rank = i, .owner = -1};
}

static int
fac_add_principal(struct facility *f, const char *name)
{
	f->principals =
	    fac_grow(f->principals, &f->capprincipals, f->nprincipals + 1, sizeof(*f->principals));
	memset(&f->principals[f->nprincipals], 0, sizeof(*f->principals));
	snprintf(f->principals[f->nprincipals].name, KH_NAME_MAX + 1, "%s", name);
	return f->nprincipals++;
}

/* Give principal p the next n free nodes as channel chan, made at t (s). */
static void
fac_hold(struct facility *f, int p, int chan, int n, int64_t t)
{
	f->channels =
	    fac_grow(f->channels, &f->capchannels, f->nchannels + 1, sizeof(*f->channels));
	f->channels[f->nchannels++] = (struct channel){.id = chan, .owner = p, .created = t};
	for (int i = 0; i < f->nnodes && n > 0; i++)
		if (f->nodes[i].state == NODE_FREE) {
			f->nodes[i].state = NODE_MONITOR;
			f->nodes[i].owner = p;
			f->nodes[i].chan = chan;
			n--;
		}
}

static struct policy *
pol_make(const char *conf)
{
	struct config c;
	char err[256];
	if (config_parse(conf, &c, err, sizeof(err)) < 0)
		fail_msg("config '%s': %s", conf, err);
	struct policy *p = c.policy;
	c.policy = NULL;
	return p;
}

/* decide: the verdict; why gets the reason. */
static int
ask(struct policy *p, struct facility *f, const char *who, int count, int64_t now, char *why)
{
	struct get_req g = {.count = count};
	struct policy_req r = {.principal = who, .pidx = -1, .count = count, .opts = &g};
	int per_host[POLICY_MAX_HOSTS];
	why[0] = '\0';
	return policy_decide(p, f, &r, now, per_host, why, 256);
}

/* decide, and when allowed commit as the allocator would have. */
static int
take(struct policy *p, struct facility *f, const char *who, int count, int64_t now, char *why)
{
	int d = ask(p, f, who, count, now, why);
	if (d == POLICY_ALLOW) {
		struct get_req g = {.count = count};
		struct policy_req r = {.principal = who, .pidx = -1, .count = count, .opts = &g};
		policy_allocated(p, f, &r, 99, now);
	}
	return d;
}

static void
shown(struct policy *p, struct facility *f, int64_t now, char *buf, size_t len)
{
	struct sbuf b;
	sbuf_init(&b);
	policy_show(p, f, now, &b, 0);
	snprintf(buf, len, "%s", b.s ? b.s : "");
	sbuf_free(&b);
}

/* policy-1.1: without a policy line the chain is `limits single`, with no
 * limit; a policy line sets the chain, in its order. */
static void
policy_1_1(void **state)
{
	struct facility f;
	struct sbuf b;
	char why[256];
	fac_make(&f, 8);
	struct policy *p = pol_make("host h\n");
	sbuf_init(&b);
	policy_names(p, &b, " ", 0);
	assert_string_equal(b.s, "limits single");
	assert_int_equal(take(p, &f, "alice", 8, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 8, 0, why), POLICY_ALLOW);
	policy_free(p);

	p = pol_make("policy single limits\nlimits * max_nodes=1\n");
	sbuf_reset(&b);
	policy_names(p, &b, ",", 1);
	assert_string_equal(b.s, "\"single\",\"limits\"");
	sbuf_free(&b);
	assert_int_equal(ask(p, &f, "alice", 2, 0, why), POLICY_REFUSE);
	policy_free(p);
	fac_free(&f);
}

/* policy-1.2: every mistake in a policy line names its line, and nothing
 * is left to free. */
static void
policy_1_2(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"policy\n",
	     "line 1: policy needs one or more modules (there are: limits single pack spread)"},
	    {"policy limits frob\n", "line 1: unknown policy module 'frob'"},
	    {"policy limits limits\n", "policy module limits named twice"},
	    {"policy limits\npolicy single\n", "line 2: policy given twice (first on line 1)"},
	    {"limits\n", "limits takes * (everyone) or a principal's name"},
	    {"limits -x max_nodes=1\n", "limits takes *"},
	    {"limits alice\n", "limits alice: give max_nodes=, max_channels= or max_rate="},
	    {"limits * max_nodes=x\n", "max_nodes must be 0..1000000 or none"},
	    {"limits * max_nodes=1000001\n", "max_nodes must be"},
	    {"limits * max_nodes=1 max_nodes=2\n", "max_nodes must be 0..1000000 or none, once"},
	    {"limits * max_channels=-1\n", "max_channels must be"},
	    {"limits * max_rate=5\n", "max_rate must be N/s, N/m or N/h"},
	    {"limits * max_rate=0/s\n", "max_rate must be"},
	    {"limits * max_rate=5/d\n", "max_rate must be"},
	    {"limits * max_rate=5/ss\n", "max_rate must be"},
	    {"limits * burst=3\n", "burst goes with a max_rate on the same line"},
	    {"limits * max_rate=1/s burst=0\n", "burst must be 1..1000000"},
	    {"limits * colour=red\n", "unknown limit 'colour'"},
	    {"limits * 64\n", "expected key=value, got '64'"},
	    {"limits * max_nodes=1\nlimits * max_nodes=2\n", "line 2: limits * given twice"},
	    {"limits a max_nodes=1\nlimits a max_nodes=2\n", "line 2: limits for a given twice"},
	    {"host h\nlimits * max_nodes=1\npolicy single\n",
	     "line 2: settings for policy module limits, which the policy line (line 3) leaves "
	     "out"},
	    {"single x\n", "line 1: policy module single has no settings"},
	};
	struct config c;
	char err[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0x5a, sizeof(c));
		assert_int_equal(config_parse(bad[i].text, &c, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s'", bad[i].text, err);
		assert_null(c.policy);
	}
}

/* policy-2.1: max_nodes counts what the principal holds plus what it asks;
 * the refusal names the limit and its value; others are not affected. */
static void
policy_2_1(void **state)
{
	struct facility f;
	char why[256];
	fac_make(&f, 100);
	struct policy *p = pol_make("limits * max_nodes=64\n");
	assert_int_equal(take(p, &f, "alice", 60, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 8, 0, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: alice may hold at most 64 nodes "
				 "(holds 60, asked 8)");
	assert_int_equal(take(p, &f, "alice", 4, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, 0, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: alice may hold at most 64 nodes "
				 "(holds 64, asked 1)");
	assert_int_equal(take(p, &f, "bob", 64, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "carol", 65, 0, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: carol may hold at most 64 nodes "
				 "(holds 0, asked 65)");
	/* released nodes count no more */
	policy_released(p, &f, "alice", 10, 0, 0);
	assert_int_equal(take(p, &f, "alice", 10, 0, why), POLICY_ALLOW);
	assert_int_equal(ask(p, &f, "alice", 1, 0, why), POLICY_REFUSE);
	policy_free(p);
	fac_free(&f);
}

/* policy-2.2: a principal's line overrides what it names and inherits the
 * rest; none lifts a limit. */
static void
policy_2_2(void **state)
{
	struct facility f;
	char why[256];
	fac_make(&f, 8);
	struct policy *p = pol_make("limits alice max_nodes=none\n"
				    "limits * max_nodes=2 max_channels=3\n"
				    "limits bob max_nodes=5\n");
	assert_int_equal(take(p, &f, "alice", 1000, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1000, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, 0, why), POLICY_REFUSE); /* channels: 3 */
	assert_string_equal(why, "refused by policy limits: alice may hold at most 3 channels, "
				 "one per allocation (holds 3)");
	assert_int_equal(take(p, &f, "bob", 5, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "carol", 3, 0, why), POLICY_REFUSE);
	policy_free(p);
	fac_free(&f);
}

/* policy-2.3: max_channels: an allocation held is a channel; releasing a
 * channel's nodes gives it back. */
static void
policy_2_3(void **state)
{
	struct facility f;
	char why[256];
	fac_make(&f, 8);
	struct policy *p = pol_make("limits * max_channels=2\n");
	assert_int_equal(take(p, &f, "alice", 1, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, 0, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, 0, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: alice may hold at most 2 channels, "
				 "one per allocation (holds 2)");
	policy_released(p, &f, "alice", 1, 0, 0); /* a node, its channel still held */
	assert_int_equal(ask(p, &f, "alice", 1, 0, why), POLICY_REFUSE);
	policy_released(p, &f, "alice", 1, 1, 0);
	assert_int_equal(ask(p, &f, "alice", 1, 0, why), POLICY_ALLOW);
	policy_free(p);
	fac_free(&f);
}

/* policy-2.4: max_rate is a token bucket: burst allocations at once, then
 * one per 1/rate; the refusal says when the next one is allowed. */
static void
policy_2_4(void **state)
{
	struct facility f;
	char why[256];
	fac_make(&f, 8);
	struct policy *p = pol_make("limits * max_rate=2/s burst=3\nlimits bob max_rate=1/m\n");
	int64_t t = 1000000;
	for (int i = 0; i < 3; i++)
		assert_int_equal(take(p, &f, "alice", 1, t, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, t, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: alice may make at most 2 "
				 "allocations per second (burst 3); the next in 0.5 s");
	/* a refusal takes nothing: 499 ms later still no, 500 ms later yes */
	assert_int_equal(take(p, &f, "alice", 1, t + 499, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: alice may make at most 2 "
				 "allocations per second (burst 3); the next in 0.1 s");
	assert_int_equal(take(p, &f, "alice", 1, t + 500, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, t + 500, why), POLICY_REFUSE);
	/* the bucket fills up to burst, no further */
	for (int i = 0; i < 3; i++)
		assert_int_equal(take(p, &f, "alice", 1, t + 100000, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "alice", 1, t + 100000, why), POLICY_REFUSE);
	/* bob: one a minute, burst 1 by default */
	assert_int_equal(take(p, &f, "bob", 1, t, why), POLICY_ALLOW);
	assert_int_equal(take(p, &f, "bob", 1, t + 30000, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: bob may make at most 1 allocation "
				 "per minute (burst 1); the next in 30.0 s");
	assert_int_equal(take(p, &f, "bob", 1, t + 60000, why), POLICY_ALLOW);
	/* a clock that goes back refills nothing and breaks nothing */
	assert_int_equal(take(p, &f, "bob", 1, t, why), POLICY_REFUSE);
	policy_free(p);
	fac_free(&f);
}

/* policy-2.5: when khd starts, holdings are counted from the facility's
 * state and the bucket is replayed from the channels' creation times. */
static void
policy_2_5(void **state)
{
	struct facility f;
	char why[256], text[2048];
	fac_make(&f, 100);
	int a = fac_add_principal(&f, "alice"), b = fac_add_principal(&f, "bob");
	fac_hold(&f, a, 2, 40, 1000);
	fac_hold(&f, a, 3, 20, 1010);
	fac_hold(&f, b, 4, 5, 1020);
	struct policy *p = pol_make("limits * max_nodes=64 max_channels=3 max_rate=2/m\n");
	int64_t now = 1030 * 1000;
	policy_start(p, &f, now);
	assert_int_equal(ask(p, &f, "alice", 5, now, why), POLICY_REFUSE);
	assert_string_equal(why, "refused by policy limits: alice may hold at most 64 nodes "
				 "(holds 60, asked 5)");
	/* two allocations at 1000 and 1010 s emptied alice's bucket of 2 but
	 * for the third of a token the first one's 10 s earned; at 2/m one token
	 * is whole again 20 s later, at 1030 s */
	assert_int_equal(ask(p, &f, "alice", 4, now - 1, why), POLICY_REFUSE);
	assert_non_null(strstr(why, "at most 2 allocations per minute (burst 2); the next in"));
	assert_int_equal(ask(p, &f, "alice", 4, now, why), POLICY_ALLOW);
	assert_int_equal(ask(p, &f, "bob", 59, now, why), POLICY_ALLOW);
	shown(p, &f, now, text, sizeof(text));
	assert_string_equal(text,
			    "policy limits single\n"
			    "limits * max_nodes=64 max_channels=3 max_rate=2/m burst=2\n"
			    "limits alice max_nodes=64 max_channels=3 max_rate=2/m burst=2 "
			    "nodes=60 channels=2 tokens=1.0\n"
			    "limits bob max_nodes=64 max_channels=3 max_rate=2/m burst=2 nodes=5 "
			    "channels=1 tokens=1.3\n"
			    "single host h\n");
	/* a second start counts again from scratch, not on top */
	policy_start(p, &f, now);
	assert_int_equal(ask(p, &f, "alice", 4, now, why), POLICY_ALLOW);
	assert_int_equal(ask(p, &f, "alice", 5, now, why), POLICY_REFUSE);
	policy_free(p);
	fac_free(&f);
}

/* policy-2.6: a refusal changes nothing a module keeps. */
static void
policy_2_6(void **state)
{
	struct facility f;
	char why[256], before[2048], after[2048];
	fac_make(&f, 8);
	struct policy *p = pol_make("limits * max_nodes=4 max_channels=2 max_rate=1/h\n");
	assert_int_equal(take(p, &f, "alice", 3, 5000, why), POLICY_ALLOW);
	shown(p, &f, 5000, before, sizeof(before));
	assert_int_equal(take(p, &f, "alice", 2, 5000, why), POLICY_REFUSE); /* nodes */
	assert_int_equal(take(p, &f, "alice", 1, 5000, why), POLICY_REFUSE); /* rate */
	assert_string_equal(why, "refused by policy limits: alice may make at most 1 "
				 "allocation per hour (burst 1); the next in 3600.0 s");
	shown(p, &f, 5000, after, sizeof(after));
	assert_string_equal(before, after);
	policy_free(p);
	fac_free(&f);
}

/* policy-3.1: placement: single puts every node on the one host; a module
 * that refuses stops the chain before placement. */
static void
policy_3_1(void **state)
{
	struct facility f;
	char why[256];
	int per_host[POLICY_MAX_HOSTS];
	fac_make(&f, 8);
	struct policy *p = pol_make("policy limits single\nlimits * max_nodes=6\n");
	struct get_req g = {.count = 5};
	struct policy_req r = {.principal = "alice", .pidx = -1, .count = 5, .opts = &g};
	memset(per_host, 0xff, sizeof(per_host));
	assert_int_equal(policy_decide(p, &f, &r, 0, per_host, why, sizeof(why)), POLICY_ALLOW);
	assert_int_equal(per_host[0], 5);
	r.count = 7;
	assert_int_equal(policy_decide(p, &f, &r, 0, per_host, why, sizeof(why)), POLICY_REFUSE);
	/* more than the host has free: still there, and the allocator says no */
	r.count = 6;
	assert_int_equal(policy_decide(p, &f, &r, 0, per_host, why, sizeof(why)), POLICY_ALLOW);
	assert_int_equal(per_host[0], 6);
	policy_free(p);
	/* a chain without a placement module: the one host */
	p = pol_make("policy limits\n");
	r.count = 3;
	assert_int_equal(policy_decide(p, &f, &r, 0, per_host, why, sizeof(why)), POLICY_ALLOW);
	assert_int_equal(per_host[0], 3);
	policy_free(p);
	fac_free(&f);
}

/* policy-3.2: khctl policy --json is one JSON document naming every
 * module in order. */
static void
policy_3_2(void **state)
{
	struct facility f;
	struct sbuf b;
	char why[256];
	fac_make(&f, 8);
	struct policy *p = pol_make("limits * max_nodes=4\nlimits al max_rate=3/h burst=2\n");
	assert_int_equal(take(p, &f, "al", 2, 0, why), POLICY_ALLOW);
	sbuf_init(&b);
	policy_show(p, &f, 0, &b, 1);
	assert_string_equal(
	    b.s, "{\"modules\":[{\"name\":\"limits\",\"what\":\"protective limits per principal: "
		 "nodes and channels held, allocations per unit of time\",\"state\":{\"default\":"
		 "{\"max_nodes\":4,\"max_channels\":null,\"max_rate\":null,\"burst\":null},"
		 "\"principals\":[{\"name\":\"al\",\"override\":true,\"max_nodes\":4,"
		 "\"max_channels\":null,\"max_rate\":\"3/h\",\"burst\":2,\"nodes\":2,"
		 "\"channels\":1,\"tokens\":1.000}]}},{\"name\":\"single\",\"what\":\"placement: "
		 "every node of an allocation on one host\",\"state\":{\"hosts\":[\"h\"]}}]}\n");
	sbuf_free(&b);
	policy_free(p);
	fac_free(&f);
}

/* A facility of nh hosts (a, b, c, ...) with per free ct1 nodes each,
 * host-major as alloc_pool_hosts lays them out, every host up. */
static void
fac_hosts(struct facility *f, int nh, int per)
{
	fac_make(f, nh * per);
	f->hosts = calloc((size_t)nh, sizeof(*f->hosts));
	f->nhosts = nh;
	for (int h = 0; h < nh; h++) {
		snprintf(f->hosts[h].name, sizeof(f->hosts[h].name), "%c", 'a' + h);
		snprintf(f->hosts[h].addr, sizeof(f->hosts[h].addr), "10.0.0.%d:7000", h + 1);
		f->hosts[h].state = HOST_UP;
		f->hosts[h].first = h * per;
		f->hosts[h].count = per;
	}
	for (int i = 0; i < f->nnodes; i++)
		f->nodes[i].host = i / per;
}

/* The placement policy_decide answers, as "a+b+c"; "" when refused. */
static const char *
placed(struct policy *p, struct facility *f, int count, const char *hint)
{
	static char out[128];
	struct get_req g = {.count = count};
	struct policy_req r = {
	    .principal = "al", .pidx = -1, .count = count, .opts = &g, .place = hint};
	int per_host[POLICY_MAX_HOSTS];
	char why[256];
	out[0] = '\0';
	if (policy_decide(p, f, &r, 0, per_host, why, sizeof(why)) != POLICY_ALLOW)
		return out;
	for (int h = 0; h < f->nhosts; h++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%d", h ? "+" : "",
			 per_host[h]);
	return out;
}

/* policy-4.1: pack fills the host with the most free nodes first, then
 * the next: as few hosts as hold the allocation. */
static void
policy_4_1(void **state)
{
	struct facility f;
	fac_hosts(&f, 3, 4);
	struct policy *p = pol_make("policy limits pack\n");
	assert_string_equal(placed(p, &f, 6, NULL), "4+2+0");
	assert_string_equal(placed(p, &f, 4, NULL), "4+0+0");
	assert_string_equal(placed(p, &f, 12, NULL), "4+4+4");
	/* the fullest first: a has 1 free, b 4, c 3 */
	for (int i = 1; i < 4; i++)
		f.nodes[i].state = NODE_MONITOR;
	f.nodes[11].state = NODE_MONITOR;
	assert_string_equal(placed(p, &f, 5, NULL), "0+4+1");
	assert_string_equal(placed(p, &f, 8, NULL), "1+4+3");
	/* more than is free: the rest on the first choice, for the allocator
	 * to refuse (nonodes) */
	assert_string_equal(placed(p, &f, 9, NULL), "1+5+3");
	policy_free(p);
	fac_free(&f);
}

/* policy-4.2: spread deals the nodes round-robin over the hosts, evenly;
 * a host without free nodes of the type is passed over. */
static void
policy_4_2(void **state)
{
	struct facility f;
	fac_hosts(&f, 3, 4);
	struct policy *p = pol_make("policy limits spread\n");
	assert_string_equal(placed(p, &f, 6, NULL), "2+2+2");
	assert_string_equal(placed(p, &f, 7, NULL), "3+2+2");
	assert_string_equal(placed(p, &f, 2, NULL), "1+1+0");
	/* a has 1 free: it takes one, the others share the rest */
	for (int i = 1; i < 4; i++)
		f.nodes[i].state = NODE_MONITOR;
	assert_string_equal(placed(p, &f, 6, NULL), "1+3+2");
	assert_string_equal(placed(p, &f, 9, NULL), "1+4+4");
	policy_free(p);
	fac_free(&f);
}

/* policy-4.3: hosts that are not up are not used: their free nodes are
 * not free for placement (pack, spread, single alike). */
static void
policy_4_3(void **state)
{
	struct facility f;
	fac_hosts(&f, 3, 4);
	struct policy *pk = pol_make("policy limits pack\n");
	struct policy *sp = pol_make("policy limits spread\n");
	struct policy *si = pol_make("host h\n");
	assert_int_equal(fac_host_set_state(&f, 0, HOST_DOWN, 0), 0);
	assert_string_equal(placed(pk, &f, 6, NULL), "0+4+2");
	assert_string_equal(placed(sp, &f, 6, NULL), "0+3+3");
	assert_string_equal(placed(si, &f, 3, NULL), "0+3+0");
	assert_int_equal(fac_host_set_state(&f, 1, HOST_LOST, 1234), 0);
	assert_int_equal(f.hosts[1].lost_ms, 1234);
	assert_string_equal(placed(pk, &f, 3, NULL), "0+0+3");
	assert_string_equal(placed(sp, &f, 4, NULL), "0+0+4");
	/* single: all on one host, or the first and the allocator refuses */
	assert_string_equal(placed(si, &f, 6, NULL), "6+0+0");
	/* back up: used again, lost_ms cleared */
	assert_int_equal(fac_host_set_state(&f, 1, HOST_UP, 0), 0);
	assert_int_equal(f.hosts[1].lost_ms, 0);
	assert_string_equal(placed(pk, &f, 6, NULL), "0+4+2");
	/* an agent's host is never local, and there is no state 9 */
	assert_int_equal(fac_host_set_state(&f, 1, HOST_LOCAL, 0), -1);
	assert_int_equal(fac_host_set_state(&f, 1, 9, 0), -1);
	assert_int_equal(fac_host_set_state(&f, 3, HOST_UP, 0), -1);
	policy_free(pk);
	policy_free(sp);
	policy_free(si);
	fac_free(&f);
}

/* policy-4.4: a principal's hint picks the placement when the chain has a
 * placement module and the operator allows hints (the default); never
 * without a placement module in the chain, nor with hints=no. */
static void
policy_4_4(void **state)
{
	struct facility f;
	fac_hosts(&f, 3, 4);
	struct policy *p = pol_make("host h\n"); /* limits single */
	assert_string_equal(placed(p, &f, 3, NULL), "3+0+0");
	assert_string_equal(placed(p, &f, 3, "spread"), "1+1+1");
	assert_string_equal(placed(p, &f, 6, "pack"), "4+2+0");
	policy_free(p);
	p = pol_make("policy limits pack\n");
	assert_string_equal(placed(p, &f, 6, "spread"), "2+2+2");
	policy_free(p);
	p = pol_make("policy limits spread\nplacement hints=no\n");
	assert_string_equal(placed(p, &f, 6, "pack"), "2+2+2");
	policy_free(p);
	p = pol_make("policy limits\n"); /* no placement: everything on the first host */
	assert_string_equal(placed(p, &f, 3, "spread"), "3+0+0");
	policy_free(p);
	/* a hint that is no placement module is nonsense, never guessed at */
	p = pol_make("host h\n");
	struct get_req g = {.count = 1};
	struct policy_req r = {
	    .principal = "al", .pidx = -1, .count = 1, .opts = &g, .place = "limits"};
	int per_host[POLICY_MAX_HOSTS];
	char why[256];
	assert_int_equal(policy_decide(p, &f, &r, 0, per_host, why, sizeof(why)), -1);
	assert_string_equal(why, "no placement module 'limits'");
	assert_true(policy_hint_valid("pack") && policy_hint_valid("spread"));
	assert_false(policy_hint_valid("single") || policy_hint_valid("") ||
		     policy_hint_valid(NULL));
	policy_free(p);
	fac_free(&f);
}

/* policy-4.5: the placement lines of khd.conf and their mistakes. */
static void
policy_4_5(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"placement hints=maybe\n", "line 1: placement takes hints=yes or hints=no"},
	    {"placement\n", "line 1: placement takes hints=yes or hints=no"},
	    {"placement hints=no hints=yes\n", "line 1: placement takes hints=yes or hints=no"},
	    {"placement hints=no\nplacement hints=yes\n",
	     "line 2: placement given twice (first on line 1)"},
	    {"pack x\n", "line 1: policy module pack has no settings"},
	    {"policy pack spread pack\n", "line 1: policy module pack named twice"},
	};
	struct config c;
	struct facility f;
	char err[256], buf[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_parse(bad[i].text, &c, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': got '%s'", bad[i].text, err);
	}
	fac_hosts(&f, 2, 1);
	struct policy *p = pol_make("policy limits pack\nplacement hints=no\n");
	shown(p, &f, 0, buf, sizeof(buf));
	assert_string_equal(buf, "policy limits pack\nplacement hints=no\n"
				 "limits * max_nodes=none max_channels=none max_rate=none\n"
				 "pack host a\npack host b\n");
	fac_host_set_state(&f, 1, HOST_DOWN, 0);
	shown(p, &f, 0, buf, sizeof(buf));
	assert_non_null(strstr(buf, "pack host b (not up)\n"));
	policy_free(p);
	fac_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(policy_1_1), cmocka_unit_test(policy_1_2),
	    cmocka_unit_test(policy_2_1), cmocka_unit_test(policy_2_2),
	    cmocka_unit_test(policy_2_3), cmocka_unit_test(policy_2_4),
	    cmocka_unit_test(policy_2_5), cmocka_unit_test(policy_2_6),
	    cmocka_unit_test(policy_3_1), cmocka_unit_test(policy_3_2),
	    cmocka_unit_test(policy_4_1), cmocka_unit_test(policy_4_2),
	    cmocka_unit_test(policy_4_3), cmocka_unit_test(policy_4_4),
	    cmocka_unit_test(policy_4_5),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
