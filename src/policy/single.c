/* single: the trivial placement (docs/policy.md): every node of an
 * allocation on one host, the first that is up with enough free nodes of
 * the type; when none has, the first host, and the allocator answers
 * nonodes.  pack and spread (pack.c) answer the same hook. */
#include "policy/policy.h"

#include <stdio.h>

static int
single_place(void *m, const struct policy_view *v, const struct policy_req *r, int *per_host)
{
	int at = 0; /* none has room: the first, and the allocator says so */
	for (int i = 0; i < v->nhosts; i++)
		if (v->hosts[i].free[r->type] >= r->count) {
			at = i;
			break;
		}
	per_host[at] = r->count;
	return 0;
}

static void
single_show(void *m, const struct policy_view *v, struct sbuf *out, int json)
{
	if (json) {
		sbuf_adds(out, "{\"hosts\":[");
		for (int i = 0; i < v->nhosts; i++) {
			if (i)
				sbuf_adds(out, ",");
			sbuf_json_str(out, v->hosts[i].name);
		}
		sbuf_adds(out, "]}");
		return;
	}
	for (int i = 0; i < v->nhosts; i++)
		sbuf_printf(out, "single host %s\n", v->hosts[i].name);
}

const struct policy_module policy_single = {
    .name = "single",
    .what = "placement: every node of an allocation on one host",
    .place = single_place,
    .show = single_show,
};
