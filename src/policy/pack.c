/* pack and spread: placement across hosts (docs/policy.md "Placement
 * across hosts").  pack puts an allocation on as few hosts as it can
 * (locality: the paper's memcached lesson, nodes that talk stay on one
 * host's fabric); spread deals it out evenly over the hosts (resilience:
 * a host lost takes few of its nodes).  Both see only hosts that are up;
 * when those lack the nodes, the rest goes to the first host and the
 * allocator answers nonodes, nothing changed. */
#include "policy/policy.h"

#include <stdio.h>

/* The hosts' indexes, most free nodes of the type first (ties: in the
 * facility's order, so the answer is the same every time). */
static int
by_free(const struct policy_view *v, int type, int *order)
{
	int n = 0;
	for (int i = 0; i < v->nhosts; i++) {
		int at = n++;
		while (at > 0 && v->hosts[order[at - 1]].free[type] < v->hosts[i].free[type]) {
			order[at] = order[at - 1];
			at--;
		}
		order[at] = i;
	}
	return n;
}

static int
pack_place(void *m, const struct policy_view *v, const struct policy_req *r, int *per_host)
{
	int order[POLICY_MAX_HOSTS], n = by_free(v, r->type, order), left = r->count;
	for (int k = 0; k < n && left > 0; k++) {
		int h = order[k], take = v->hosts[h].free[r->type];
		if (take > left)
			take = left;
		per_host[h] += take;
		left -= take;
	}
	per_host[n ? order[0] : 0] += left; /* more than is free: the allocator says so */
	return 0;
}

static int
spread_place(void *m, const struct policy_view *v, const struct policy_req *r, int *per_host)
{
	int order[POLICY_MAX_HOSTS], n = by_free(v, r->type, order), left = r->count;
	/* Round by round, one node to each host that has one more free. */
	while (left > 0) {
		int given = 0;
		for (int k = 0; k < n && left > 0; k++) {
			int h = order[k];
			if (per_host[h] < v->hosts[h].free[r->type]) {
				per_host[h]++;
				left--;
				given = 1;
			}
		}
		if (!given)
			break;
	}
	per_host[n ? order[0] : 0] += left;
	return 0;
}

static void
show(const char *name, const struct policy_view *v, struct sbuf *out, int json)
{
	if (json) {
		sbuf_adds(out, "{\"hosts\":[");
		for (int i = 0; i < v->nhosts; i++) {
			sbuf_adds(out, i ? ",{\"name\":" : "{\"name\":");
			sbuf_json_str(out, v->hosts[i].name);
			sbuf_printf(out, ",\"usable\":%s}", v->hosts[i].usable ? "true" : "false");
		}
		sbuf_adds(out, "]}");
		return;
	}
	for (int i = 0; i < v->nhosts; i++)
		sbuf_printf(out, "%s host %s%s\n", name, v->hosts[i].name,
			    v->hosts[i].usable ? "" : " (not up)");
}

static void
pack_show(void *m, const struct policy_view *v, struct sbuf *out, int json)
{
	show("pack", v, out, json);
}

static void
spread_show(void *m, const struct policy_view *v, struct sbuf *out, int json)
{
	show("spread", v, out, json);
}

const struct policy_module policy_pack = {
    .name = "pack",
    .what = "placement: as few hosts as can hold the allocation, fullest first",
    .place = pack_place,
    .show = pack_show,
};

const struct policy_module policy_spread = {
    .name = "spread",
    .what = "placement: the allocation dealt evenly over the hosts that are up",
    .place = spread_place,
    .show = spread_show,
};
