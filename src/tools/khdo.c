/* khdo: control block parsing, rank lists, placeholders and the answer
 * tracker of khdo.  The block is parsed line by line on its prefixes, as
 * the original's scripts did, so lines added later never break it. */
#include "tools/khdo.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The control block */

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int
parse_rank(const char *s, int *rank)
{
	uint64_t v;
	if (parse_uint(s, 0, INT32_MAX, &v) < 0)
		return -1;
	*rank = (int)v;
	return 0;
}

/* A host name as ssh takes it: no option, no blank, no shell syntax. */
static int
valid_host(const char *h)
{
	if (*h == '\0' || *h == '-' || strlen(h) >= 256)
		return 0;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || strchr("._:-", *h)))
			return 0;
	return 1;
}

/* "prefix" followed by the rest: the rest, else NULL. */
static const char *
after(const char *line, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(line, prefix, n) == 0 ? line + n : NULL;
}

static const char *
skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static int
grow(void **p, int n, size_t size)
{
	/* n is the count before adding one: grow at powers of two */
	if (n != 0 && (n & (n - 1)) != 0)
		return 0;
	void *q = realloc(*p, size * (size_t)(n ? 2 * n : 1));
	if (q == NULL)
		return -1;
	*p = q;
	return 0;
}

static int
block_line(struct khdo_block *b, char *line, int *saw_con, char *err, size_t errlen)
{
	const char *v;

	if ((v = after(line, "con")) != NULL && *saw_con && b->nranks > 0)
		return seterr(err, errlen, "more than one control block on standard input");
	if ((v = after(line, "con")) != NULL) {
		char *at = strchr(line, '@');
		if (*saw_con)
			return seterr(err, errlen, "two channel lines (%s)", line);
		if (at == NULL)
			return seterr(err, errlen, "bad channel line '%s' (want con<C>@HOST)",
				      line);
		*at = '\0';
		int chan;
		if (parse_rank(v, &chan) < 0 || !valid_host(at + 1)) {
			*at = '@';
			return seterr(err, errlen, "bad channel line '%s' (want con<C>@HOST)",
				      line);
		}
		*at = '@';
		b->chan = chan;
		snprintf(b->host, sizeof(b->host), "%s", at + 1);
		snprintf(b->con, sizeof(b->con), "con%d@%s", chan, b->host);
		*saw_con = 1;
		return 0;
	}
	if ((v = after(line, "protocol:")) != NULL) {
		v = skip_blanks(v);
		if (strcmp(v, "uboot") != 0)
			return seterr(err, errlen, "protocol '%s' is not one khdo speaks (uboot)",
				      v);
		return 0;
	}
	if ((v = after(line, "ssh-port:")) != NULL) {
		uint64_t port;
		if (parse_uint(skip_blanks(v), 1, 65535, &port) < 0)
			return seterr(err, errlen, "bad ssh-port line '%s'", line);
		b->ssh_port = (int)port;
		return 0;
	}
	if ((v = after(line, "network ")) != NULL) {
		/* network NAME : ethN */
		const char *sep = strstr(v, " : ");
		struct khdo_net net;
		size_t nl = sep ? (size_t)(sep - v) : 0;
		uint64_t k;
		const char *ifn = sep ? skip_blanks(sep + 3) : NULL;
		if (sep == NULL || nl == 0 || nl >= sizeof(net.name) ||
		    strncmp(ifn, "eth", 3) != 0 || parse_uint(ifn + 3, 0, 9999, &k) < 0)
			return seterr(err, errlen,
				      "bad network line '%s' (want network NAME : ethN)", line);
		memcpy(net.name, v, nl);
		net.name[nl] = '\0';
		if (strchr(net.name, ' ') != NULL)
			return seterr(err, errlen,
				      "bad network line '%s' (want network NAME : ethN)", line);
		snprintf(net.ifname, sizeof(net.ifname), "%s", ifn);
		if (grow((void **)&b->nets, b->nnets, sizeof(net)) < 0)
			return seterr(err, errlen, "out of memory");
		b->nets[b->nnets++] = net;
		return 0;
	}
	if ((v = after(line, "nodeinfo:")) != NULL) {
		/* nodeinfo: RANK UNI IP [more] */
		char copy[512], *f[3], *save = NULL;
		struct khdo_info in;
		int nf = 0;
		snprintf(copy, sizeof(copy), "%s", v);
		for (char *t = strtok_r(copy, " \t", &save); t && nf < 3;
		     t = strtok_r(NULL, " \t", &save))
			f[nf++] = t;
		if (nf < 3 || parse_rank(f[0], &in.rank) < 0 || strlen(f[1]) >= sizeof(in.uni) ||
		    strlen(f[2]) >= sizeof(in.ip))
			return seterr(err, errlen,
				      "bad nodeinfo line '%s' (want nodeinfo: RANK UNI IP)", line);
		if (khdo_block_info(b, in.rank) != NULL)
			return seterr(err, errlen, "two nodeinfo lines for node %d", in.rank);
		snprintf(in.uni, sizeof(in.uni), "%s", f[1]);
		snprintf(in.ip, sizeof(in.ip), "%s", f[2]);
		if (grow((void **)&b->info, b->ninfo, sizeof(in)) < 0)
			return seterr(err, errlen, "out of memory");
		b->info[b->ninfo++] = in;
		return 0;
	}
	if ((v = after(line, "nodes:")) != NULL) {
		char *save = NULL;
		if (b->nranks > 0)
			return seterr(err, errlen, "more than one control block on standard input");
		for (char *t = strtok_r(line + 6, " \t", &save); t;
		     t = strtok_r(NULL, " \t", &save)) {
			int r;
			if (parse_rank(t, &r) < 0)
				return seterr(err, errlen, "bad rank '%s' in the nodes: line", t);
			if (grow((void **)&b->ranks, b->nranks, sizeof(int)) < 0)
				return seterr(err, errlen, "out of memory");
			b->ranks[b->nranks++] = r;
		}
		if (b->nranks == 0)
			return seterr(err, errlen, "the nodes: line names no node");
		int *s = malloc(sizeof(int) * (size_t)b->nranks);
		if (s == NULL)
			return seterr(err, errlen, "out of memory");
		memcpy(s, b->ranks, sizeof(int) * (size_t)b->nranks);
		qsort(s, (size_t)b->nranks, sizeof(int), cmp_int);
		for (int i = 1; i < b->nranks; i++)
			if (s[i] == s[i - 1]) {
				int r = s[i];
				free(s);
				return seterr(err, errlen,
					      "node %d is named twice in the nodes: line", r);
			}
		free(s);
		return 0;
	}
	return 0; /* a line khdo does not know: information added later */
}

int
khdo_block_parse(const char *s, size_t len, struct khdo_block *b, char *err, size_t errlen)
{
	int saw_con = 0, any = 0;
	char *copy = malloc(len + 1);

	memset(b, 0, sizeof(*b));
	if (copy == NULL)
		return seterr(err, errlen, "out of memory");
	memcpy(copy, s, len);
	copy[len] = '\0';
	if (memchr(s, '\0', len) != NULL) {
		free(copy);
		return seterr(err, errlen, "the control block holds a NUL byte");
	}
	for (char *line = copy, *next; line && *line; line = next) {
		char *nl = strchr(line, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		size_t l = strlen(line);
		while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
			line[--l] = '\0';
		if (l == 0)
			continue;
		any = 1;
		if (block_line(b, line, &saw_con, err, errlen) < 0) {
			free(copy);
			khdo_block_free(b);
			return -1;
		}
	}
	free(copy);
	if (!any) {
		khdo_block_free(b);
		return seterr(err, errlen,
			      "no control block on standard input (pipe khget's output "
			      "into khdo)");
	}
	if (!saw_con || b->nranks == 0) {
		khdo_block_free(b);
		return seterr(err, errlen,
			      "no %s line in the control block (is it khget's output?)",
			      saw_con ? "nodes:" : "con<C>@HOST");
	}
	return 0;
}

void
khdo_block_free(struct khdo_block *b)
{
	free(b->nets);
	free(b->info);
	free(b->ranks);
	b->nets = NULL;
	b->info = NULL;
	b->ranks = NULL;
	b->nnets = b->ninfo = b->nranks = 0;
}

const struct khdo_info *
khdo_block_info(const struct khdo_block *b, int rank)
{
	for (int i = 0; i < b->ninfo; i++)
		if (b->info[i].rank == rank)
			return &b->info[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Rank lists and placeholders */

void
khdo_ranks_fmt(const int *ranks, int n, struct sbuf *out)
{
	int *s = n > 0 ? malloc(sizeof(int) * (size_t)n) : NULL;

	if (n <= 0 || s == NULL) {
		free(s);
		return;
	}
	memcpy(s, ranks, sizeof(int) * (size_t)n);
	qsort(s, (size_t)n, sizeof(int), cmp_int);
	for (int i = 0; i < n;) {
		int j = i;
		while (j + 1 < n && (s[j + 1] == s[j] || s[j + 1] == s[j] + 1))
			j++;
		if (i > 0)
			sbuf_adds(out, ",");
		if (s[j] == s[i])
			sbuf_printf(out, "%d", s[i]);
		else
			sbuf_printf(out, "%d-%d", s[i], s[j]);
		i = j + 1;
	}
	free(s);
}

static void
add_quoted(struct sbuf *out, const char *v)
{
	int safe = *v != '\0';
	for (const char *p = v; *p && safe; p++)
		safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || strchr("@%+=:,./_-", *p) != NULL;
	if (safe) {
		sbuf_adds(out, v);
		return;
	}
	sbuf_adds(out, "'");
	for (const char *p = v; *p; p++) {
		if (*p == '\'')
			sbuf_adds(out, "'\\''");
		else
			sbuf_add(out, p, 1);
	}
	sbuf_adds(out, "'");
}

void
khdo_subst(const char *tmpl, const char *const *keys, const char *const *vals, int n,
	   struct sbuf *out)
{
	for (const char *p = tmpl; *p;) {
		int hit = -1;
		size_t kl = 0;
		if (*p == '%')
			for (int i = 0; i < n && hit < 0; i++) {
				kl = strlen(keys[i]);
				if (strncmp(p + 1, keys[i], kl) == 0 && p[1 + kl] == '%')
					hit = i;
			}
		if (hit >= 0) {
			add_quoted(out, vals[hit]);
			p += kl + 2;
		} else {
			sbuf_add(out, p, 1);
			p++;
		}
	}
	if (out->s == NULL)
		sbuf_adds(out, "");
}

/* ------------------------------------------------------------------ */
/* The tracker */

static int
cmp_node(const void *a, const void *b)
{
	const struct khdo_node *x = a, *y = b;
	return (x->rank > y->rank) - (x->rank < y->rank);
}

int
khdo_track_init(struct khdo_track *t, const int *ranks, int n, const char *tag)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->tag, sizeof(t->tag), "%s", tag);
	t->nodes = calloc(n > 0 ? (size_t)n : 1, sizeof(*t->nodes));
	if (t->nodes == NULL)
		return -1;
	t->n = n;
	for (int i = 0; i < n; i++)
		t->nodes[i].rank = ranks[i];
	qsort(t->nodes, (size_t)n, sizeof(*t->nodes), cmp_node);
	for (int i = 1; i < n; i++)
		if (t->nodes[i].rank == t->nodes[i - 1].rank) {
			khdo_track_free(t);
			return -1;
		}
	khdo_track_phase(t, KHDO_PRE, "");
	return 0;
}

void
khdo_track_free(struct khdo_track *t)
{
	free(t->nodes);
	t->nodes = NULL;
	t->n = 0;
}

void
khdo_track_phase(struct khdo_track *t, int phase, const char *text)
{
	t->phase = phase;
	t->text = text;
	t->waiting = t->n;
	t->failed = 0;
	for (int i = 0; i < t->n; i++) {
		struct khdo_node *nd = &t->nodes[i];
		nd->state = KHDO_WAIT;
		nd->have = 0;
		nd->addr[0] = nd->why[0] = '\0';
		nd->memstart = nd->memsize = 0;
	}
}

static struct khdo_node *
find(struct khdo_track *t, int rank)
{
	struct khdo_node key = {.rank = rank};
	return bsearch(&key, t->nodes, (size_t)t->n, sizeof(*t->nodes), cmp_node);
}

static void
fail(struct khdo_track *t, struct khdo_node *nd, const char *why)
{
	if (nd->state != KHDO_WAIT)
		return;
	nd->state = KHDO_FAIL;
	t->waiting--;
	t->failed++;
	if (nd->why[0] == '\0')
		snprintf(nd->why, sizeof(nd->why), "%s", why);
}

static void
succeed(struct khdo_track *t, struct khdo_node *nd)
{
	if (nd->state != KHDO_WAIT)
		return;
	nd->state = KHDO_OK;
	t->waiting--;
}

/* "memstart    = 0x10000000" */
static int
bdinfo_value(const char *rest, const char *name, uint64_t *v)
{
	const char *p = after(rest, name);
	if (p == NULL)
		return -1;
	p = skip_blanks(p);
	if (*p != '=')
		return -1;
	return parse_hex(skip_blanks(p + 1), v);
}

static void
pre_line(struct khdo_track *t, struct khdo_node *nd, const char *rest)
{
	char mark[64];
	const char *v;

	snprintf(mark, sizeof(mark), "khdo-pre:%s:", t->tag);
	if ((v = after(rest, mark)) != NULL) {
		snprintf(nd->addr, sizeof(nd->addr), "%s", v);
		nd->have = 1;
		return;
	}
	if ((nd->have & 1) && bdinfo_value(rest, "memstart", &nd->memstart) == 0) {
		nd->have |= 2;
		return;
	}
	if ((nd->have & 1) && bdinfo_value(rest, "memsize", &nd->memsize) == 0) {
		nd->have |= 4;
		return;
	}
	snprintf(mark, sizeof(mark), "khdo-end:%s", t->tag);
	if (strcmp(rest, mark) != 0)
		return;
	uint64_t a;
	char why[sizeof(nd->why)];
	if (nd->have != 7)
		fail(t, nd, "not in its boot monitor (booted? khctl reset brings it back)");
	else if (nd->addr[0] == '\0') {
		snprintf(why, sizeof(why), "%s is not set", t->text);
		fail(t, nd, why);
	} else if (parse_hex(nd->addr, &a) < 0) {
		snprintf(why, sizeof(why), "%s is '%s', not an address", t->text, nd->addr);
		fail(t, nd, why);
	} else
		succeed(t, nd);
}

static void
load_line(struct khdo_track *t, struct khdo_node *nd, const char *rest)
{
	char mark[64];
	const char *v;

	if (after(rest, "mrw: ") != NULL) {
		if (nd->why[0] == '\0')
			snprintf(nd->why, sizeof(nd->why), "%s", rest);
		return;
	}
	if (strcmp(rest, "resetting ...") == 0) {
		fail(t, nd, "reset during the load");
		return;
	}
	snprintf(mark, sizeof(mark), "khdo-ack:%s:", t->tag);
	if ((v = after(rest, mark)) == NULL)
		return;
	uint64_t st;
	if (parse_uint(v, 0, 255, &st) < 0)
		return;
	if (st == 0) {
		succeed(t, nd);
		return;
	}
	char why[64];
	snprintf(why, sizeof(why), "mrw failed (status %d)", (int)st);
	fail(t, nd, why);
}

void
khdo_track_line(struct khdo_track *t, const char *line, size_t len)
{
	char buf[4200], *end;
	const char *rest;
	long r;

	if (len >= sizeof(buf) || len < 4 || line[0] != '[')
		return;
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (buf[1] < '0' || buf[1] > '9')
		return;
	r = strtol(buf + 1, &end, 10);
	if (end[0] != ']' || end[1] != ' ' || r < 0 || r > INT32_MAX)
		return;
	struct khdo_node *nd = find(t, (int)r);
	if (nd == NULL || nd->state != KHDO_WAIT)
		return;
	rest = end + 2;
	while (strncmp(rest, "=> ", 3) == 0) /* prompts of earlier lines */
		rest += 3;
	switch (t->phase) {
	case KHDO_PRE:
		pre_line(t, nd, rest);
		break;
	case KHDO_LOAD:
		load_line(t, nd, rest);
		break;
	default:
		if (t->text && *t->text && strstr(end + 2, t->text) != NULL)
			succeed(t, nd);
		break;
	}
}

int
khdo_track_room(struct khdo_track *t, uint64_t count)
{
	for (int i = 0; i < t->n; i++) {
		struct khdo_node *nd = &t->nodes[i];
		uint64_t a;
		if (nd->state != KHDO_OK || parse_hex(nd->addr, &a) < 0)
			continue;
		uint64_t base = nd->memstart, size = nd->memsize;
		if (a >= base && a - base <= size && count <= size - (a - base))
			continue;
		nd->state = KHDO_WAIT; /* so that fail() counts it */
		t->waiting++;
		snprintf(nd->why, sizeof(nd->why),
			 "cannot take %llu bytes at 0x%llx (its RAM is 0x%llx ... 0x%llx)",
			 (unsigned long long)count, (unsigned long long)a, (unsigned long long)base,
			 (unsigned long long)(base + size - 1));
		fail(t, nd, "");
	}
	return t->failed;
}

void
khdo_track_expire(struct khdo_track *t, const char *why)
{
	for (int i = 0; i < t->n; i++)
		if (t->nodes[i].state == KHDO_WAIT)
			fail(t, &t->nodes[i], why);
}

int
khdo_track_report(const struct khdo_track *t, const char *prog, struct sbuf *out)
{
	char *done = calloc(t->n > 0 ? (size_t)t->n : 1, 1);
	int *group = malloc(sizeof(int) * (size_t)(t->n > 0 ? t->n : 1));
	int failed = 0;

	if (done == NULL || group == NULL) {
		free(done);
		free(group);
		sbuf_printf(out, "%s: out of memory\n", prog);
		return t->failed;
	}
	for (int i = 0; i < t->n; i++) {
		const struct khdo_node *nd = &t->nodes[i];
		if (nd->state != KHDO_FAIL || done[i])
			continue;
		int ng = 0;
		for (int j = i; j < t->n; j++)
			if (!done[j] && t->nodes[j].state == KHDO_FAIL &&
			    strcmp(t->nodes[j].why, nd->why) == 0) {
				done[j] = 1;
				group[ng++] = t->nodes[j].rank;
			}
		failed += ng;
		sbuf_printf(out, "%s: node%s ", prog, ng > 1 ? "s" : "");
		khdo_ranks_fmt(group, ng, out);
		sbuf_printf(out, ": %s\n", nd->why);
	}
	free(done);
	free(group);
	return failed;
}
