/* limits: protective limits per principal (docs/policy.md): the most nodes
 * held at once, the most channels held at once (one per allocation), the
 * most allocations per unit of time (a token bucket), with a facility-wide
 * default (`limits * ...`) and per-principal overrides (`limits NAME ...`).
 * Holdings are counted from the facility's state when khd starts and kept
 * up to date from allocations and releases; the bucket is replayed from the
 * creation times of the channels still held. */
#include "policy/policy.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIM_UNSET (-2) /* an override that inherits the default */
#define LIM_NONE  (-1) /* no limit */
#define LIM_MAX	  1000000

struct lim {
	int64_t max_nodes, max_channels;
	int64_t rate;	 /* allocations per unit; LIM_NONE/LIM_UNSET */
	int64_t unit_ms; /* 1000, 60000 or 3600000 */
	int64_t burst;	 /* bucket size, allocations */
};

struct over {
	char name[KH_NAME_MAX + 1]; /* "*" for the facility's default */
	struct lim l;
};

struct acct {
	char name[KH_NAME_MAX + 1];
	int64_t nodes, channels;
	int bucket;	/* tokens and last are set */
	int64_t tokens; /* ticks (see ticks_at) */
	int64_t last_ms;
};

struct limits {
	struct lim def;
	int def_line;
	struct over *over;
	int nover, capover;
	struct acct *acct;
	int nacct, capacct;
};

static void *
lim_create(void)
{
	struct limits *s = calloc(1, sizeof(*s));
	if (s)
		s->def = (struct lim){LIM_NONE, LIM_NONE, LIM_NONE, 1000, 0};
	return s;
}

static void
lim_destroy(void *m)
{
	struct limits *s = m;
	free(s->over);
	free(s->acct);
	free(s);
}

static int
parse_limit(const char *v, int64_t *out)
{
	uint64_t x;
	if (strcmp(v, "none") == 0) {
		*out = LIM_NONE;
		return 0;
	}
	if (parse_uint(v, 0, LIM_MAX, &x) < 0)
		return -1;
	*out = (int64_t)x;
	return 0;
}

/* "N/s", "N/m", "N/h" or "none". */
static int
parse_rate(char *v, struct lim *l)
{
	char *slash = strchr(v, '/');
	uint64_t x;
	if (strcmp(v, "none") == 0) {
		l->rate = LIM_NONE;
		return 0;
	}
	if (slash == NULL || slash[1] == '\0' || slash[2] != '\0')
		return -1;
	*slash = '\0';
	int rc = parse_uint(v, 1, LIM_MAX, &x);
	*slash = '/';
	if (rc < 0)
		return -1;
	switch (slash[1]) {
	case 's':
		l->unit_ms = 1000;
		break;
	case 'm':
		l->unit_ms = 60000;
		break;
	case 'h':
		l->unit_ms = 3600000;
		break;
	default:
		return -1;
	}
	l->rate = (int64_t)x;
	return 0;
}

static int
lim_conf(void *m, char *args, char *why, size_t wlen)
{
	struct limits *s = m;
	char *save = NULL, *who = strtok_r(args, " \t\r", &save);
	struct lim l = {LIM_UNSET, LIM_UNSET, LIM_UNSET, 1000, LIM_UNSET};
	int any = 0;

	if (who == NULL || (strcmp(who, "*") != 0 && !valid_name(who))) {
		snprintf(why, wlen,
			 "limits takes * (everyone) or a principal's name, then "
			 "max_nodes= max_channels= max_rate= burst=");
		return -1;
	}
	int isdef = strcmp(who, "*") == 0;
	if (isdef && s->def_line) {
		snprintf(why, wlen, "limits * given twice");
		return -1;
	}
	for (int i = 0; !isdef && i < s->nover; i++)
		if (strcmp(s->over[i].name, who) == 0) {
			snprintf(why, wlen, "limits for %s given twice", who);
			return -1;
		}
	for (char *kv = strtok_r(NULL, " \t\r", &save); kv; kv = strtok_r(NULL, " \t\r", &save)) {
		char *eq = strchr(kv, '=');
		if (eq == NULL) {
			snprintf(why, wlen, "expected key=value, got '%.40s'", kv);
			return -1;
		}
		*eq = '\0';
		const char *k = kv;
		char *v = eq + 1;
		int64_t *dst = strcmp(k, "max_nodes") == 0	? &l.max_nodes
			       : strcmp(k, "max_channels") == 0 ? &l.max_channels
								: NULL;
		if (dst) {
			if (*dst != LIM_UNSET || parse_limit(v, dst) < 0) {
				snprintf(why, wlen, "%s must be 0..%d or none, once", k, LIM_MAX);
				return -1;
			}
		} else if (strcmp(k, "max_rate") == 0) {
			if (l.rate != LIM_UNSET || parse_rate(v, &l) < 0) {
				snprintf(why, wlen,
					 "max_rate must be N/s, N/m or N/h (N 1..%d) or none, once",
					 LIM_MAX);
				return -1;
			}
		} else if (strcmp(k, "burst") == 0) {
			uint64_t x;
			if (l.burst != LIM_UNSET || parse_uint(v, 1, LIM_MAX, &x) < 0) {
				snprintf(why, wlen, "burst must be 1..%d, once", LIM_MAX);
				return -1;
			}
			l.burst = (int64_t)x;
		} else {
			snprintf(why, wlen,
				 "unknown limit '%.32s' (max_nodes max_channels "
				 "max_rate burst)",
				 k);
			return -1;
		}
		any = 1;
	}
	if (!any) {
		snprintf(why, wlen, "limits %s: give max_nodes=, max_channels= or max_rate=", who);
		return -1;
	}
	if (l.burst != LIM_UNSET && (l.rate == LIM_UNSET || l.rate == LIM_NONE)) {
		snprintf(why, wlen, "burst goes with a max_rate on the same line");
		return -1;
	}
	if (l.rate > 0 && l.burst == LIM_UNSET)
		l.burst = l.rate; /* the bucket holds one unit's worth */
	if (isdef) {
		/* The default says "none" for what it leaves out. */
		s->def.max_nodes = l.max_nodes == LIM_UNSET ? LIM_NONE : l.max_nodes;
		s->def.max_channels = l.max_channels == LIM_UNSET ? LIM_NONE : l.max_channels;
		if (l.rate != LIM_UNSET) {
			s->def.rate = l.rate;
			s->def.unit_ms = l.unit_ms;
			s->def.burst = l.burst;
		}
		s->def_line = 1;
		return 0;
	}
	if (s->nover == s->capover) {
		int cap = s->capover ? s->capover * 2 : 8;
		struct over *o = realloc(s->over, sizeof(*o) * (size_t)cap);
		if (o == NULL) {
			snprintf(why, wlen, "out of memory");
			return -1;
		}
		s->over = o;
		s->capover = cap;
	}
	struct over *o = &s->over[s->nover++];
	snprintf(o->name, sizeof(o->name), "%s", who);
	o->l = l;
	return 0;
}

/* The limits that hold for principal name: its override over the default. */
static struct lim
effective(const struct limits *s, const char *name, int *overridden)
{
	struct lim l = s->def;
	*overridden = 0;
	for (int i = 0; i < s->nover; i++) {
		const struct lim *o = &s->over[i].l;
		if (strcmp(s->over[i].name, name) != 0)
			continue;
		*overridden = 1;
		if (o->max_nodes != LIM_UNSET)
			l.max_nodes = o->max_nodes;
		if (o->max_channels != LIM_UNSET)
			l.max_channels = o->max_channels;
		if (o->rate != LIM_UNSET) {
			l.rate = o->rate;
			l.unit_ms = o->unit_ms;
			l.burst = o->burst;
		}
	}
	return l;
}

static struct acct *
find_acct(const struct limits *s, const char *name)
{
	for (int i = 0; i < s->nacct; i++)
		if (strcmp(s->acct[i].name, name) == 0)
			return &s->acct[i];
	return NULL;
}

/* The principal's account, made empty when new; NULL when out of memory. */
static struct acct *
get_acct(struct limits *s, const char *name)
{
	struct acct *a = find_acct(s, name);
	if (a)
		return a;
	if (s->nacct == s->capacct) {
		int cap = s->capacct ? s->capacct * 2 : 16;
		a = realloc(s->acct, sizeof(*a) * (size_t)cap);
		if (a == NULL)
			return NULL;
		s->acct = a;
		s->capacct = cap;
	}
	a = &s->acct[s->nacct++];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	return a;
}

/* The bucket's tokens at time now, in ticks: a token is unit_ms ticks and
 * a rate of N per unit adds N ticks a millisecond, so nothing is rounded. */
static int64_t
ticks_at(const struct lim *l, const struct acct *a, int64_t now)
{
	int64_t cap = l->burst * l->unit_ms;
	if (a == NULL || !a->bucket)
		return cap;
	int64_t dt = now > a->last_ms ? now - a->last_ms : 0;
	__int128 t = (__int128)a->tokens + (__int128)dt * l->rate;
	return t > cap ? cap : (int64_t)t;
}

static void
take_token(const struct lim *l, struct acct *a, int64_t now)
{
	if (l->rate <= 0)
		return;
	int64_t t = ticks_at(l, a, now) - l->unit_ms;
	a->tokens = t > 0 ? t : 0;
	a->last_ms = now > a->last_ms || !a->bucket ? now : a->last_ms;
	a->bucket = 1;
}

static void
lim_start(void *m, const struct policy_view *v)
{
	struct limits *s = m;
	const struct facility *f = v->fac;
	int ovr;

	s->nacct = 0;
	for (int i = 0; i < f->nnodes; i++) {
		int o = f->nodes[i].owner;
		struct acct *a;
		if (o >= 0 && o < f->nprincipals && (a = get_acct(s, f->principals[o].name)))
			a->nodes++;
	}
	/* Channels are kept in the order they were made. */
	for (int i = 0; i < f->nchannels; i++) {
		const struct channel *c = &f->channels[i];
		struct acct *a;
		if (c->owner < 0 || c->owner >= f->nprincipals ||
		    (a = get_acct(s, f->principals[c->owner].name)) == NULL)
			continue;
		a->channels++;
		struct lim l = effective(s, a->name, &ovr);
		take_token(&l, a, c->created * 1000);
	}
}

static const char *
unit_name(int64_t unit_ms)
{
	return unit_ms == 1000 ? "second" : unit_ms == 60000 ? "minute" : "hour";
}

static int
lim_decide(void *m, const struct policy_view *v, const struct policy_req *r, char *why, size_t wlen)
{
	struct limits *s = m;
	const struct acct *a = find_acct(s, r->principal);
	int64_t nodes = a ? a->nodes : 0, chans = a ? a->channels : 0;
	int ovr;
	struct lim l = effective(s, r->principal, &ovr);

	if (l.max_nodes >= 0 && nodes + r->count > l.max_nodes) {
		snprintf(why, wlen, "%s may hold at most %lld nodes (holds %lld, asked %d)",
			 r->principal, (long long)l.max_nodes, (long long)nodes, r->count);
		return POLICY_REFUSE;
	}
	if (l.max_channels >= 0 && chans + 1 > l.max_channels) {
		snprintf(why, wlen,
			 "%s may hold at most %lld channels, one per allocation (holds %lld)",
			 r->principal, (long long)l.max_channels, (long long)chans);
		return POLICY_REFUSE;
	}
	if (l.rate > 0) {
		int64_t t = ticks_at(&l, a, v->now_ms);
		if (t < l.unit_ms) {
			int64_t ms = (l.unit_ms - t + l.rate - 1) / l.rate;
			snprintf(why, wlen,
				 "%s may make at most %lld allocation%s per %s (burst %lld); the "
				 "next in %lld.%01lld s",
				 r->principal, (long long)l.rate, l.rate == 1 ? "" : "s",
				 unit_name(l.unit_ms), (long long)l.burst,
				 (long long)((ms + 99) / 1000),
				 (long long)((ms + 99) % 1000 / 100));
			return POLICY_REFUSE;
		}
	}
	return POLICY_ALLOW;
}

static void
lim_allocated(void *m, const struct policy_view *v, const struct policy_req *r, int chan)
{
	struct limits *s = m;
	struct acct *a = get_acct(s, r->principal);
	int ovr;
	if (a == NULL)
		return;
	a->nodes += r->count;
	a->channels++;
	struct lim l = effective(s, r->principal, &ovr);
	take_token(&l, a, v->now_ms);
}

static void
lim_released(void *m, const struct policy_view *v, const char *principal, int nodes, int channels)
{
	struct acct *a = find_acct(m, principal);
	if (a == NULL)
		return;
	a->nodes = a->nodes > nodes ? a->nodes - nodes : 0;
	a->channels = a->channels > channels ? a->channels - channels : 0;
}

static void
show_lim(struct sbuf *out, const struct lim *l, int json)
{
	static const char *const keys[] = {"max_nodes", "max_channels"};
	const int64_t vals[] = {l->max_nodes, l->max_channels};
	for (int i = 0; i < 2; i++) {
		if (json)
			sbuf_printf(out, "\"%s\":", keys[i]);
		else
			sbuf_printf(out, " %s=", keys[i]);
		if (vals[i] < 0)
			sbuf_adds(out, json ? "null," : "none");
		else
			sbuf_printf(out, json ? "%lld," : "%lld", (long long)vals[i]);
	}
	char unit = l->unit_ms == 1000 ? 's' : l->unit_ms == 60000 ? 'm' : 'h';
	if (l->rate <= 0)
		sbuf_adds(out, json ? "\"max_rate\":null,\"burst\":null" : " max_rate=none");
	else if (json)
		sbuf_printf(out, "\"max_rate\":\"%lld/%c\",\"burst\":%lld", (long long)l->rate,
			    unit, (long long)l->burst);
	else
		sbuf_printf(out, " max_rate=%lld/%c burst=%lld", (long long)l->rate, unit,
			    (long long)l->burst);
}

static void
show_one(const struct limits *s, const char *name, int64_t now, struct sbuf *out, int json,
	 int first)
{
	const struct acct *a = find_acct(s, name);
	int ovr;
	struct lim l = effective(s, name, &ovr);
	/* tokens in thousandths, rounded down */
	int64_t tk = l.rate > 0 ? (int64_t)((__int128)ticks_at(&l, a, now) * 1000 / l.unit_ms) : 0;
	if (json) {
		sbuf_adds(out, first ? "{\"name\":" : ",{\"name\":");
		sbuf_json_str(out, name);
		sbuf_printf(out, ",\"override\":%s,", ovr ? "true" : "false");
		show_lim(out, &l, 1);
		sbuf_printf(out, ",\"nodes\":%lld,\"channels\":%lld", (long long)(a ? a->nodes : 0),
			    (long long)(a ? a->channels : 0));
		if (l.rate > 0)
			sbuf_printf(out, ",\"tokens\":%lld.%03lld", (long long)(tk / 1000),
				    (long long)(tk % 1000));
		sbuf_adds(out, "}");
		return;
	}
	sbuf_printf(out, "limits %s", name);
	show_lim(out, &l, 0);
	sbuf_printf(out, " nodes=%lld channels=%lld", (long long)(a ? a->nodes : 0),
		    (long long)(a ? a->channels : 0));
	if (l.rate > 0)
		sbuf_printf(out, " tokens=%lld.%01lld", (long long)(tk / 1000),
			    (long long)(tk % 1000 / 100));
	sbuf_adds(out, "\n");
}

/* `limits * ...` (the default), then every principal with an override or
 * an account: its limits in force and what it holds. */
static void
lim_show(void *m, const struct policy_view *v, struct sbuf *out, int json)
{
	struct limits *s = m;
	int first = 1;
	if (json) {
		sbuf_adds(out, "{\"default\":{");
		show_lim(out, &s->def, 1);
		sbuf_adds(out, "},\"principals\":[");
	} else {
		sbuf_adds(out, "limits *");
		show_lim(out, &s->def, 0);
		sbuf_adds(out, "\n");
	}
	for (int i = 0; i < s->nover; i++, first = 0)
		show_one(s, s->over[i].name, v->now_ms, out, json, first);
	for (int i = 0; i < s->nacct; i++) {
		int ovr;
		(void)effective(s, s->acct[i].name, &ovr);
		if (ovr)
			continue;
		show_one(s, s->acct[i].name, v->now_ms, out, json, first);
		first = 0;
	}
	if (json)
		sbuf_adds(out, "]}");
}

const struct policy_module policy_limits = {
    .name = "limits",
    .what = "protective limits per principal: nodes and channels held, allocations per unit "
	    "of time",
    .create = lim_create,
    .destroy = lim_destroy,
    .conf = lim_conf,
    .start = lim_start,
    .decide = lim_decide,
    .allocated = lim_allocated,
    .released = lim_released,
    .show = lim_show,
};
