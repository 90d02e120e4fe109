/* policy: the chain of modules khd.conf chose, and how khd asks it.  The
 * framework builds the view of the facility each module sees, asks the
 * modules in order, checks what placement answers, and words a refusal. */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every module there is.  A new module is one file and one line here. */
static const struct policy_module *const modules[] = {&policy_limits, &policy_single, &policy_pack,
						      &policy_spread};
#define NMODULES ((int)(sizeof(modules) / sizeof(modules[0])))

struct inst {
	void *st;	/* made when first named, by the chain or a line of its own */
	int first_line; /* its first settings line in khd.conf, 0: none */
};

struct policy {
	struct inst inst[NMODULES];
	int chain[POLICY_MAX_MODULES]; /* indices into modules[], in order */
	int nchain;
	int chain_line; /* the `policy` line; 0: none (the default chain) */
	int nohints;	/* placement hints=no: principals' hints are ignored */
	int hints_line; /* the `placement` line; 0: none */
};

int64_t
policy_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
find_module(const char *name)
{
	for (int i = 0; i < NMODULES; i++)
		if (strcmp(modules[i]->name, name) == 0)
			return i;
	return -1;
}

static void *
inst_of(struct policy *p, int i)
{
	if (p->inst[i].st == NULL)
		p->inst[i].st = modules[i]->create ? modules[i]->create() : (void *)modules[i];
	return p->inst[i].st;
}

struct policy *
policy_new(void)
{
	return calloc(1, sizeof(struct policy));
}

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < NMODULES; i++)
		if (p->inst[i].st && modules[i]->destroy)
			modules[i]->destroy(p->inst[i].st);
	free(p);
}

static void
known_list(char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for (int i = 0; i < NMODULES && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? " " : "", modules[i]->name);
}

static int
conf_chain(struct policy *p, int lineno, char *args, char *why, size_t wlen)
{
	char *save = NULL, known[128];

	if (p->chain_line) {
		snprintf(why, wlen, "policy given twice (first on line %d)", p->chain_line);
		return -1;
	}
	known_list(known, sizeof(known));
	for (char *w = strtok_r(args, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
		int i = find_module(w);
		if (i < 0) {
			snprintf(why, wlen, "unknown policy module '%.32s' (there are: %s)", w,
				 known);
			return -1;
		}
		for (int j = 0; j < p->nchain; j++)
			if (p->chain[j] == i) {
				snprintf(why, wlen, "policy module %s named twice", w);
				return -1;
			}
		if (p->nchain == POLICY_MAX_MODULES) {
			snprintf(why, wlen, "at most %d policy modules", POLICY_MAX_MODULES);
			return -1;
		}
		p->chain[p->nchain++] = i;
	}
	if (p->nchain == 0) {
		snprintf(why, wlen, "policy needs one or more modules (there are: %s)", known);
		return -1;
	}
	p->chain_line = lineno;
	return 0;
}

/* placement hints=yes|no */
static int
conf_placement(struct policy *p, int lineno, char *args, char *why, size_t wlen)
{
	char *save = NULL, *w = strtok_r(args, " \t\r", &save);
	if (p->hints_line) {
		snprintf(why, wlen, "placement given twice (first on line %d)", p->hints_line);
		return -1;
	}
	if (w == NULL || strtok_r(NULL, " \t\r", &save) != NULL ||
	    (strcmp(w, "hints=yes") != 0 && strcmp(w, "hints=no") != 0)) {
		snprintf(why, wlen, "placement takes hints=yes or hints=no");
		return -1;
	}
	p->nohints = strcmp(w, "hints=no") == 0;
	p->hints_line = lineno;
	return 0;
}

int
policy_hint_valid(const char *name)
{
	return name && (strcmp(name, "pack") == 0 || strcmp(name, "spread") == 0);
}

int
policy_conf_line(struct policy *p, int lineno, const char *word, char *args, char *why, size_t wlen)
{
	if (args == NULL)
		args = (char *)"";
	if (strcmp(word, "policy") == 0)
		return conf_chain(p, lineno, args, why, wlen) < 0 ? -1 : 1;
	if (strcmp(word, "placement") == 0)
		return conf_placement(p, lineno, args, why, wlen) < 0 ? -1 : 1;
	int i = find_module(word);
	if (i < 0)
		return 0;
	if (modules[i]->conf == NULL) {
		snprintf(why, wlen, "policy module %s has no settings", word);
		return -1;
	}
	void *st = inst_of(p, i);
	if (st == NULL) {
		snprintf(why, wlen, "out of memory");
		return -1;
	}
	if (modules[i]->conf(st, args, why, wlen) < 0)
		return -1;
	if (p->inst[i].first_line == 0)
		p->inst[i].first_line = lineno;
	return 1;
}

int
policy_conf_end(struct policy *p, char *err, size_t errlen)
{
	if (p->nchain == 0) {
		/* The default chain: protective limits, every node on this host. */
		p->chain[p->nchain++] = find_module("limits");
		p->chain[p->nchain++] = find_module("single");
	}
	for (int i = 0; i < NMODULES; i++) {
		int in = 0;
		for (int j = 0; j < p->nchain; j++)
			in |= p->chain[j] == i;
		if (p->inst[i].first_line && !in && p->chain_line == 0) {
			snprintf(err, errlen,
				 "line %d: settings for policy module %s, which is not in the "
				 "default chain: name it in a policy line",
				 p->inst[i].first_line, modules[i]->name);
			return -1;
		}
		if (p->inst[i].first_line && !in) {
			snprintf(err, errlen,
				 "line %d: settings for policy module %s, which the policy line "
				 "(line %d) leaves out",
				 p->inst[i].first_line, modules[i]->name, p->chain_line);
			return -1;
		}
		if (in && inst_of(p, i) == NULL) {
			snprintf(err, errlen, "line %d: out of memory", p->chain_line);
			return -1;
		}
	}
	return 0;
}

/* The view: the facility's hosts with their free nodes (only hosts that
 * are up count them).  A facility without hosts (made before its pool) is
 * one host, itself. */
static void
make_view(const struct facility *f, int64_t now_ms, struct policy_host *h, struct policy_view *v)
{
	int nh = f->nhosts > 0 ? f->nhosts : 1;
	if (nh > POLICY_MAX_HOSTS)
		nh = POLICY_MAX_HOSTS;
	memset(h, 0, sizeof(*h) * (size_t)nh);
	for (int i = 0; i < nh; i++) {
		h[i].name = f->nhosts > 0 ? f->hosts[i].name : f->host;
		h[i].state = f->nhosts > 0 ? f->hosts[i].state : HOST_LOCAL;
		h[i].usable = h[i].state == HOST_LOCAL || h[i].state == HOST_UP;
	}
	for (int i = 0; i < f->nnodes; i++) {
		const struct node *n = &f->nodes[i];
		int at = f->nhosts > 0 ? n->host : 0;
		if (n->state == NODE_FREE && n->type >= 0 && n->type < KH_MAX_TYPES && at >= 0 &&
		    at < nh && h[at].usable)
			h[at].free[n->type]++;
	}
	*v = (struct policy_view){.fac = f, .hosts = h, .nhosts = nh, .now_ms = now_ms};
}

/* A placement module's answer into per_host: 1 when it placed, 0 when it
 * passed, -1 with why when the answer is nonsense. */
static int
try_place(struct policy *p, int i, const struct policy_view *v, const struct policy_req *r,
	  int *per_host, char *why, size_t wlen)
{
	const struct policy_module *m = modules[i];
	memset(per_host, 0, sizeof(int) * (size_t)v->nhosts);
	if (m->place(inst_of(p, i), v, r, per_host) < 0)
		return 0;
	long sum = 0;
	for (int h = 0; h < v->nhosts; h++) {
		if (per_host[h] < 0) {
			snprintf(why, wlen, "policy %s placed %d nodes on host %d", m->name,
				 per_host[h], h);
			return -1;
		}
		sum += per_host[h];
	}
	if (sum != r->count) {
		snprintf(why, wlen, "policy %s placed %ld of %d nodes", m->name, sum, r->count);
		return -1;
	}
	return 1;
}

void
policy_start(struct policy *p, const struct facility *f, int64_t now_ms)
{
	struct policy_host h[POLICY_MAX_HOSTS];
	struct policy_view v;
	make_view(f, now_ms, h, &v);
	for (int j = 0; j < p->nchain; j++) {
		const struct policy_module *m = modules[p->chain[j]];
		if (m->start)
			m->start(inst_of(p, p->chain[j]), &v);
	}
}

int
policy_decide(struct policy *p, const struct facility *f, const struct policy_req *r,
	      int64_t now_ms, int *per_host, char *why, size_t wlen)
{
	struct policy_host h[POLICY_MAX_HOSTS];
	struct policy_view v;
	char reason[200];
	int placed = 0;

	make_view(f, now_ms, h, &v);
	for (int j = 0; j < p->nchain; j++) {
		const struct policy_module *m = modules[p->chain[j]];
		if (m->decide == NULL)
			continue;
		snprintf(reason, sizeof(reason), "no reason given");
		if (m->decide(inst_of(p, p->chain[j]), &v, r, reason, sizeof(reason)) !=
		    POLICY_ALLOW) {
			snprintf(why, wlen, "refused by policy %s: %s", m->name, reason);
			return POLICY_REFUSE;
		}
	}
	/* The principal's hint picks the placement when the operator chose
	 * to place at all (a placement module in the chain) and allows hints. */
	int places = 0;
	for (int j = 0; j < p->nchain; j++)
		places |= modules[p->chain[j]]->place != NULL;
	if (r->place != NULL && places && !p->nohints) {
		int i = find_module(r->place);
		if (i < 0 || modules[i]->place == NULL || !policy_hint_valid(r->place)) {
			snprintf(why, wlen, "no placement module '%.32s'", r->place);
			return -1;
		}
		if ((placed = try_place(p, i, &v, r, per_host, why, wlen)) < 0)
			return -1;
	}
	for (int j = 0; j < p->nchain && !placed; j++) {
		if (modules[p->chain[j]]->place == NULL)
			continue;
		if ((placed = try_place(p, p->chain[j], &v, r, per_host, why, wlen)) < 0)
			return -1;
	}
	if (!placed) {
		/* No placement module: everything on the first host. */
		memset(per_host, 0, sizeof(int) * (size_t)v.nhosts);
		per_host[0] = r->count;
	}
	return POLICY_ALLOW;
}

void
policy_allocated(struct policy *p, const struct facility *f, const struct policy_req *r, int chan,
		 int64_t now_ms)
{
	struct policy_host h[POLICY_MAX_HOSTS];
	struct policy_view v;
	make_view(f, now_ms, h, &v);
	for (int j = 0; j < p->nchain; j++) {
		const struct policy_module *m = modules[p->chain[j]];
		if (m->allocated)
			m->allocated(inst_of(p, p->chain[j]), &v, r, chan);
	}
}

void
policy_released(struct policy *p, const struct facility *f, const char *principal, int nodes,
		int channels, int64_t now_ms)
{
	struct policy_host h[POLICY_MAX_HOSTS];
	struct policy_view v;
	make_view(f, now_ms, h, &v);
	for (int j = 0; j < p->nchain; j++) {
		const struct policy_module *m = modules[p->chain[j]];
		if (m->released)
			m->released(inst_of(p, p->chain[j]), &v, principal, nodes, channels);
	}
}

void
policy_names(const struct policy *p, struct sbuf *out, const char *sep, int json)
{
	for (int j = 0; j < p->nchain; j++) {
		if (j)
			sbuf_adds(out, sep);
		if (json)
			sbuf_json_str(out, modules[p->chain[j]]->name);
		else
			sbuf_adds(out, modules[p->chain[j]]->name);
	}
}

void
policy_show(struct policy *p, const struct facility *f, int64_t now_ms, struct sbuf *out, int json)
{
	struct policy_host h[POLICY_MAX_HOSTS];
	struct policy_view v;
	make_view(f, now_ms, h, &v);
	if (json) {
		sbuf_adds(out, "{\"modules\":[");
		for (int j = 0; j < p->nchain; j++) {
			const struct policy_module *m = modules[p->chain[j]];
			sbuf_printf(out, "%s{\"name\":", j ? "," : "");
			sbuf_json_str(out, m->name);
			sbuf_adds(out, ",\"what\":");
			sbuf_json_str(out, m->what ? m->what : "");
			sbuf_adds(out, ",\"state\":");
			if (m->show)
				m->show(inst_of(p, p->chain[j]), &v, out, 1);
			else
				sbuf_adds(out, "null");
			sbuf_adds(out, "}");
		}
		sbuf_adds(out, p->nohints ? "],\"hints\":false}\n" : "]}\n");
		return;
	}
	sbuf_adds(out, "policy ");
	policy_names(p, out, " ", 0);
	sbuf_adds(out, "\n");
	if (p->nohints)
		sbuf_adds(out, "placement hints=no\n");
	for (int j = 0; j < p->nchain; j++) {
		const struct policy_module *m = modules[p->chain[j]];
		if (m->show)
			m->show(inst_of(p, p->chain[j]), &v, out, 0);
	}
}
