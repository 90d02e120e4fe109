/* verbs: what khd does for each request of docs/protocol.md.  Each handler
 * checks its arguments and the principal, then calls the allocator, which
 * is all or nothing; the handler only formats the reply. */
#include "khd/hosts.h"
#include "khd/khd.h"
#include "admission/admission.h"
#include "admission/pubkey.h"
#include "allocator/alloc.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/sbuf.h"
#include "common/util.h"
#include "console/console.h"
#include "exec/exec.h"
#include "fabric/fabric.h"
#include "khd/machine.h"
#include "khd/meter.h"
#include "memory/mem.h"
#include "fabric/addr.h"
#include "khd/sshd.h"
#include "policy/policy.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const codes[] = {
    [AE_OK] = "ok",
    [AE_BADARG] = "badarg",
    [AE_AUTH] = "auth",
    [AE_NONODES] = "nonodes",
    [AE_NOTFOUND] = "notfound",
    [AE_PERM] = "perm",
    [AE_INTERNAL] = "internal",
    [AE_BUSY] = "busy",
    [AE_POLICY] = "policy",
};

static void
reply_err(struct sbuf *out, int code, const char *msg)
{
	sbuf_printf(out, "err %s %s\n", codes[code], msg);
}

/* Body: every line of text becomes "- line". */
static void
reply_body(struct sbuf *out, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		sbuf_adds(out, "- ");
		sbuf_add(out, p, n);
		sbuf_adds(out, "\n");
		p += n + (nl != NULL);
	}
}

static void
reply_ok(struct sbuf *out, struct sbuf *body)
{
	if (body && body->len)
		reply_body(out, body->s, body->len);
	sbuf_adds(out, "ok\n");
}

static int
want_json(const struct proto_req *req)
{
	const char *f = proto_get(req, "format");
	return f && strcmp(f, "json") == 0;
}

/* Arguments a verb accepts; anything else is an error, so a typo is never
 * silently ignored. */
static int
only_args(const struct proto_req *req, const char *const *allowed, struct sbuf *out)
{
	for (int i = 0; i < req->nargs; i++) {
		int found = 0;
		for (int j = 0; allowed[j]; j++)
			found |= strcmp(allowed[j], req->args[i].key) == 0;
		if (!found) {
			char m[96];
			snprintf(m, sizeof(m), "unknown argument '%s' for %s", req->args[i].key,
				 req->verb);
			reply_err(out, AE_BADARG, m);
			return -1;
		}
	}
	const char *f = proto_get(req, "format");
	if (f && strcmp(f, "json") != 0 && strcmp(f, "text") != 0) {
		reply_err(out, AE_BADARG, "format must be text or json");
		return -1;
	}
	return 0;
}

/* Authenticate user/cred.  Returns the principal's index, -1 after replying
 * with an error, or -2 when the request must wait (*wait set). */
static int
authenticate(struct khd *k, const struct proto_req *req, struct sbuf *out, uint64_t *wait)
{
	const char *user = proto_get(req, "user"), *cred = proto_get(req, "cred");
	char m[160];
	int idx;

	if (user == NULL || !valid_name(user)) {
		reply_err(out, AE_BADARG, user ? "invalid principal name" : "no principal given");
		return -1;
	}
	struct principal *p = fac_principal(&k->fac, user, &idx);
	if (p == NULL) {
		snprintf(m, sizeof(m), "unknown principal '%s'", user);
		reply_err(out, AE_AUTH, m);
		return -1;
	}
	uint64_t now = now_ns();
	if ((*wait = adm_wait(p, now)) > 0)
		return -2;
	if (cred == NULL) {
		snprintf(m, sizeof(m), "principal '%s' needs its credential (-c)", user);
		reply_err(out, AE_AUTH, m);
		return -1;
	}
	errno = 0;
	int v = adm_verify_async(&k->adm, p, cred);
	if (v == ADM_PENDING) {
		/* Argon2id on the worker: held until it answers (server.c). */
		*wait = ADM_HOLD_NS;
		k->adm_pending = 1;
		return -2;
	}
	if (v < 0 && errno == EBUSY) {
		reply_err(out, AE_BUSY, "too many credential checks waiting; try again");
		return -1;
	}
	if (v < 0) {
		adm_failed(p, now);
		log_warnx("wrong credential for %s (%d failures)", user, p->failures);
		snprintf(m, sizeof(m), "wrong credential for '%s'", user);
		reply_err(out, AE_AUTH, m);
		return -1;
	}
	adm_succeeded(p);
	return idx;
}

static int
parse_int_list(const char *s, int min, int max, int *v, int cap, int *n)
{
	char buf[PROTO_MAX_LINE];
	uint64_t x;

	*n = 0;
	if (s == NULL || *s == '\0' || strlen(s) >= sizeof(buf))
		return -1;
	memcpy(buf, s, strlen(s) + 1);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (*n >= cap || parse_uint(tok, (uint64_t)min, (uint64_t)max, &x) < 0)
			return -1;
		v[(*n)++] = (int)x;
	}
	return s[strlen(s) - 1] == ',' ? -1 : 0;
}

/* targets: a list of con<C> and ranks (and rank ranges A-B); expands to
 * ranks, checking ownership of channels. */
static int
parse_targets(struct khd *k, int pidx, const char *s, int **ranks, int *n, struct sbuf *out)
{
	char buf[PROTO_MAX_LINE], m[128];
	int cap = 64;
	uint64_t a, b;
	struct alloc_result res;

	*n = 0;
	if (s == NULL || *s == '\0') {
		reply_err(out, AE_BADARG, "no nodes given (con<C> or ranks)");
		return -1;
	}
	if (strlen(s) >= sizeof(buf)) {
		reply_err(out, AE_BADARG, "target list too long");
		return -1;
	}
	memcpy(buf, s, strlen(s) + 1);
	*ranks = malloc(sizeof(int) * (size_t)cap);
	if (*ranks == NULL)
		fatal("targets");
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int *add = NULL, nadd = 0, range[2] = {0, 0};
		char *dash = strchr(tok, '-');
		if (strncmp(tok, "con", 3) == 0 && parse_uint(tok + 3, 0, INT32_MAX, &a) == 0) {
			if (alloc_chan_ranks(&k->fac, pidx, (int)a, &add, &nadd, &res) < 0) {
				reply_err(out, res.code, res.msg);
				goto fail;
			}
		} else if (dash && (*dash = '\0', parse_uint(tok, 0, KH_MAX_NODES, &a) == 0) &&
			   parse_uint(dash + 1, 0, KH_MAX_NODES, &b) == 0 && a <= b) {
			range[0] = (int)a;
			range[1] = (int)b;
		} else if (!dash && parse_uint(tok, 0, KH_MAX_NODES, &a) == 0) {
			range[0] = range[1] = (int)a;
		} else {
			if (dash)
				*dash = '-';
			snprintf(m, sizeof(m), "bad node '%.60s': expected con<C>, a rank or A-B",
				 tok);
			reply_err(out, AE_BADARG, m);
			goto fail;
		}
		if (add == NULL) {
			nadd = range[1] - range[0] + 1;
			add = malloc(sizeof(int) * (size_t)nadd);
			if (add == NULL)
				fatal("targets");
			for (int i = 0; i < nadd; i++)
				add[i] = range[0] + i;
		}
		if (*n + nadd > KH_MAX_NODES) {
			free(add);
			reply_err(out, AE_BADARG, "too many nodes given");
			goto fail;
		}
		while (*n + nadd > cap)
			cap *= 2;
		*ranks = realloc(*ranks, sizeof(int) * (size_t)cap);
		if (*ranks == NULL)
			fatal("targets");
		memcpy(*ranks + *n, add, sizeof(int) * (size_t)nadd);
		*n += nadd;
		free(add);
	}
	if (s[strlen(s) - 1] == ',') {
		reply_err(out, AE_BADARG, "empty item in node list");
		goto fail;
	}
	return 0;
fail:
	free(*ranks);
	*ranks = NULL;
	return -1;
}

static uint64_t
v_ping(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {NULL};
	if (only_args(req, args, out) == 0)
		reply_ok(out, NULL);
	return 0;
}

static const char *const state_names[] = {"free", "monitor", "running"};

/* The node's state as shown: lost when its host is (derived, not stored). */
static const char *
node_state_name(const struct facility *f, const struct node *n)
{
	const struct fac_host *h = n->host >= 0 && n->host < f->nhosts ? &f->hosts[n->host] : NULL;
	if (h && h->state == HOST_LOST)
		return "lost";
	return state_names[n->state];
}

/* Free, and on a host that is up: an allocation could get it now. */
static int
node_givable(const struct facility *f, const struct node *n)
{
	if (f->nhosts == 0)
		return n->state == NODE_FREE;
	return n->state == NODE_FREE && n->host >= 0 && n->host < f->nhosts &&
	       fac_host_usable(&f->hosts[n->host]);
}

static const char *
node_host_name(const struct facility *f, const struct node *n)
{
	return n->host >= 0 && n->host < f->nhosts ? f->hosts[n->host].name : "-";
}

/* info's hosts: "host NAME addr=ADDR state=STATE nodes=N free=F" lines,
 * or JSON objects (addr "-" / null for the local host). */
static void
hosts_text(struct khd *k, const struct facility *f, struct sbuf *b, int json)
{
	for (int h = 0; h < f->nhosts; h++) {
		const struct fac_host *fh = &f->hosts[h];
		int total = 0, nfree = 0;
		for (int i = 0; i < f->nnodes; i++)
			if (f->nodes[i].host == h) {
				total++;
				nfree += node_givable(f, &f->nodes[i]);
			}
		if (json) {
			sbuf_adds(b, h ? ",{\"name\":" : "{\"name\":");
			sbuf_json_str(b, fh->name);
			sbuf_adds(b, ",\"addr\":");
			if (fh->addr[0])
				sbuf_json_str(b, fh->addr);
			else
				sbuf_adds(b, "null");
			sbuf_printf(b, ",\"state\":\"%s\",\"nodes\":%d,\"free\":%d",
				    fac_host_state_name(fh->state), total, nfree);
			if (fh->state == HOST_LOST)
				sbuf_printf(b, ",\"lost_ms\":%lld", (long long)fh->lost_ms);
			if (fh->state != HOST_LOCAL)
				sbuf_printf(b, ",\"sent\":%llu",
					    (unsigned long long)hosts_sent(k, h));
			sbuf_adds(b, "}");
		} else {
			sbuf_printf(b, "host %s addr=%s state=%s nodes=%d free=%d", fh->name,
				    fh->addr[0] ? fh->addr : "-", fac_host_state_name(fh->state),
				    total, nfree);
			/* bytes that crossed to its agent: a broadcast crosses once */
			if (fh->state != HOST_LOCAL)
				sbuf_printf(b, " sent=%llu", (unsigned long long)hosts_sent(k, h));
			sbuf_adds(b, "\n");
		}
	}
}

static uint64_t
v_info(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"format", NULL};
	struct facility *f = &k->fac;
	struct sbuf b;

	if (only_args(req, args, out) < 0)
		return 0;
	sbuf_init(&b);
	if (want_json(req)) {
		sbuf_printf(&b, "{\"version\":\"%s\",\"facility\":\"%08x\",\"host\":", KH_VERSION,
			    f->id);
		sbuf_json_str(&b, f->host);
		sbuf_adds(&b, ",\"types\":[");
	} else {
		sbuf_printf(&b, "khd %s facility %08x host %s\n", KH_VERSION, f->id, f->host);
	}
	for (int t = 0; t < f->ntypes; t++) {
		int total = 0, nfree = 0;
		for (int i = 0; i < f->nnodes; i++)
			if (f->nodes[i].type == t) {
				total++;
				nfree += node_givable(f, &f->nodes[i]);
			}
		const struct node_type *ty = &f->types[t];
		if (want_json(req))
			sbuf_printf(&b,
				    "%s{\"name\":\"%s\",\"backend\":\"%s\",\"cpu_milli\":%d,"
				    "\"mem\":%llu,\"pids\":%d,\"ifs\":%d,\"nodes\":%d,\"free\":%d}",
				    t ? "," : "", ty->name, ty->backend, ty->cpu_milli,
				    (unsigned long long)ty->mem, ty->pids, ty->max_ifs, total,
				    nfree);
		else
			sbuf_printf(&b,
				    "type %s backend=%s cpus=%d.%03d mem=%lluM pids=%d ifs=%d "
				    "nodes=%d free=%d\n",
				    ty->name, ty->backend, ty->cpu_milli / 1000,
				    ty->cpu_milli % 1000, (unsigned long long)(ty->mem >> 20),
				    ty->pids, ty->max_ifs, total, nfree);
	}
	int vms = 0;
	for (int t = 0; t < f->ntypes; t++)
		vms |= strcmp(f->types[t].backend, "vm") == 0;
	const char *accel = !vms || !k->host.vm_ok ? "none" : k->host.kvm ? "kvm" : "tcg";
	const char *vmwhy = !vms ? "" : !k->host.vm_ok ? k->host.vm_why : k->host.kvm_why;
	size_t blobs = k->blobs ? blobstore_count(k->blobs) : 0;
	size_t bytes = k->blobs ? blobstore_bytes(k->blobs) : 0;
	int prepared = 0, ports = 0, segments = 0;
	if (k->fab)
		fabric_counts(k->fab, &prepared, &ports, &segments);
	if (want_json(req)) {
		sbuf_printf(&b, "],\"store\":{\"blobs\":%zu,\"bytes\":%zu},\"fabric\":", blobs,
			    bytes);
		if (k->fab)
			sbuf_printf(&b,
				    "{\"uplink\":\"%s\",\"prepared\":%d,\"prepared_x\":%d,"
				    "\"ports\":%d,\"segments\":%d}",
				    fabric_uplink(k->fab), prepared, fabric_pool_size(k->fab),
				    ports, segments);
		else
			sbuf_adds(&b, "null");
		if (vms) {
			sbuf_adds(&b, ",\"vm\":{\"qemu\":");
			sbuf_json_str(&b, k->host.qemu);
			sbuf_printf(&b, ",\"accel\":\"%s\",\"why\":", accel);
			sbuf_json_str(&b, vmwhy);
			sbuf_adds(&b, "}");
		}
		sbuf_adds(&b, ",\"policy\":[");
		policy_names(k->policy, &b, ",", 1);
		sbuf_adds(&b, "],\"hosts\":[");
		hosts_text(k, f, &b, 1);
		sbuf_adds(&b, "]}\n");
	} else {
		sbuf_printf(&b, "store blobs=%zu bytes=%zu\n", blobs, bytes);
		if (k->fab)
			sbuf_printf(
			    &b, "fabric uplink=%s prepared=%d prepared-x=%d ports=%d segments=%d\n",
			    fabric_uplink(k->fab), prepared, fabric_pool_size(k->fab), ports,
			    segments);
		else
			sbuf_adds(&b, "fabric off\n");
		/* vm nodes: which accelerator runs them, and why not KVM */
		if (vms)
			sbuf_printf(&b, "vm qemu=%s accel=%s%s%s%s\n",
				    k->host.qemu[0] ? k->host.qemu : "none", accel,
				    vmwhy[0] ? " (" : "", vmwhy, vmwhy[0] ? ")" : "");
		/* the modules consulted on allocation (khctl policy: their settings) */
		sbuf_adds(&b, "policy ");
		policy_names(k->policy, &b, " ", 0);
		sbuf_adds(&b, "\n");
		/* the hosts, after everything else (scripts grep the lines above) */
		hosts_text(k, f, &b, 0);
	}
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

static uint64_t
v_get(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user",    "cred",	"count",    "netids",
					   "newnets", "public", "external", "type",
					   "format",  "place",	NULL};
	struct facility *f = &k->fac;
	struct get_req r = {.count = 1, .newnets = -1};
	const char *user = proto_get(req, "user"), *cred = proto_get(req, "cred"), *v;
	struct principal newp, *p;
	struct alloc_result res;
	uint64_t x, wait = 0;
	char m[160];
	int pidx = -1, chan;

	if (only_args(req, args, out) < 0)
		return 0;
	if ((v = proto_get(req, "count")) && parse_uint(v, 1, KH_MAX_NODES, &x) < 0) {
		snprintf(m, sizeof(m), "invalid count '%.40s': expected 1..%d", v, KH_MAX_NODES);
		reply_err(out, AE_BADARG, m);
		return 0;
	}
	if (v)
		r.count = (int)x;
	if ((v = proto_get(req, "netids")) &&
	    parse_int_list(v, 0, INT32_MAX, r.netids, KH_MAX_IFS, &r.nnetids) < 0) {
		reply_err(out, AE_BADARG, "invalid netid list");
		return 0;
	}
	if ((v = proto_get(req, "newnets")) && parse_uint(v, 0, KH_MAX_IFS, &x) < 0) {
		snprintf(m, sizeof(m), "invalid number of new domains: expected 0..%d", KH_MAX_IFS);
		reply_err(out, AE_BADARG, m);
		return 0;
	}
	if (v)
		r.newnets = (int)x;
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "external" : "public";
		v = proto_get(req, key);
		if (v && strcmp(v, "0") && strcmp(v, "1")) {
			reply_err(out, AE_BADARG, "public and external take 0 or 1");
			return 0;
		}
		*(i ? &r.ext : &r.pub) = v && v[0] == '1';
	}
	r.type = 0;
	if ((v = proto_get(req, "type")) && (r.type = fac_type(f, v)) < 0) {
		snprintf(m, sizeof(m), "unknown node type '%.32s'", v);
		reply_err(out, AE_BADARG, m);
		return 0;
	}
	const char *place = proto_get(req, "place");
	if (place && !policy_hint_valid(place)) {
		reply_err(out, AE_BADARG, "place must be pack or spread");
		return 0;
	}
	if (user == NULL || !valid_name(user)) {
		reply_err(out, AE_BADARG,
			  user ? "invalid principal name (1-32 of A-Z a-z 0-9 _ . -)"
			       : "no principal given");
		return 0;
	}
	p = fac_principal(f, user, &pidx);
	if (p != NULL) {
		pidx = authenticate(k, req, out, &wait);
		if (pidx == -2)
			return wait;
		if (pidx < 0)
			return 0;
	} else {
		if (cred == NULL) {
			snprintf(m, sizeof(m),
				 "unknown principal '%s': give a credential (-c) to create it",
				 user);
			reply_err(out, AE_AUTH, m);
			return 0;
		}
		if (!adm_valid_cred(cred)) {
			reply_err(out, AE_BADARG, "a credential is 1-256 printable characters");
			return 0;
		}
		memset(&newp, 0, sizeof(newp));
		snprintf(newp.name, sizeof(newp.name), "%s", user);
		newp.created = (int64_t)time(NULL);
		errno = 0;
		int h = adm_hash_async(&k->adm, user, cred, newp.pwhash);
		if (h == ADM_PENDING) {
			k->adm_pending = 1;
			return ADM_HOLD_NS;
		}
		if (h < 0 && errno == EBUSY) {
			reply_err(out, AE_BUSY, "too many credential checks waiting; try again");
			return 0;
		}
		if (h < 0) {
			reply_err(out, AE_INTERNAL, "cannot hash credential (out of memory)");
			return 0;
		}
		adm_remember(&k->adm, &newp, cred);
	}
	/* The policy modules first: a refusal leaves everything as it was. */
	struct policy_req pr = {.principal = user,
				.pidx = pidx,
				.count = r.count,
				.type = r.type,
				.opts = &r,
				.place = place};
	int per_host[POLICY_MAX_HOSTS], pd;
	char pwhy[256];
	if ((pd = policy_decide(k->policy, f, &pr, policy_now_ms(), per_host, pwhy,
				sizeof(pwhy))) != POLICY_ALLOW) {
		log_info("%s: get %d %s: %s", user, r.count, f->types[r.type].name, pwhy);
		reply_err(out, pd < 0 ? AE_INTERNAL : AE_POLICY, pwhy);
		return 0;
	}
	/* The allocator takes per_host: each host's lowest free ranks. */
	r.per_host = per_host;
	r.nper_host = f->nhosts;
	if (alloc_get(f, pidx, &newp, &r, &chan, &res) < 0) {
		reply_err(out, res.code, res.msg);
		return 0;
	}
	policy_allocated(k->policy, f, &pr, chan, policy_now_ms());
	if (pidx < 0)
		log_info("principal %s created", user);
	log_info("%s: con%d with %d %s nodes", user, chan, r.count, f->types[r.type].name);
	struct sbuf b;
	sbuf_init(&b);
	alloc_block(f, chan, &b, want_json(req));
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

static void
netids_text(const struct node *n, struct sbuf *b, int json)
{
	int first = 1;
	for (int i = 0; i < n->nifs; i++) {
		if (n->ifs[i] == 0)
			continue;
		sbuf_printf(b, "%s%d", first ? "" : ",", n->ifs[i]);
		first = 0;
	}
	if (first && !json)
		sbuf_adds(b, "-");
}

static uint64_t
v_nodes(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"free", "user", "format", NULL};
	struct facility *f = &k->fac;
	const char *user = proto_get(req, "user"), *fr = proto_get(req, "free");
	int json = want_json(req), pidx = -1, first = 1;
	struct sbuf b;

	if (only_args(req, args, out) < 0)
		return 0;
	if (fr && strcmp(fr, "0") && strcmp(fr, "1")) {
		reply_err(out, AE_BADARG, "free takes 0 or 1");
		return 0;
	}
	if (user && fac_principal(f, user, &pidx) == NULL) {
		char m[96];
		snprintf(m, sizeof(m), "unknown principal '%.40s'", user);
		reply_err(out, AE_NOTFOUND, m);
		return 0;
	}
	sbuf_init(&b);
	if (json)
		sbuf_adds(&b, "[");
	for (int i = 0; i < f->nnodes; i++) {
		struct node *n = &f->nodes[i];
		if ((fr && fr[0] == '1' && !node_givable(f, n)) || (user && n->owner != pidx))
			continue;
		const char *owner = n->owner >= 0 ? f->principals[n->owner].name : NULL;
		if (json) {
			sbuf_printf(&b,
				    "%s{\"rank\":%d,\"state\":\"%s\",\"owner\":", first ? "" : ",",
				    n->rank, node_state_name(f, n));
			if (owner)
				sbuf_json_str(&b, owner);
			else
				sbuf_adds(&b, "null");
			if (n->chan)
				sbuf_printf(&b, ",\"channel\":\"con%d\"", n->chan);
			else
				sbuf_adds(&b, ",\"channel\":null");
			sbuf_adds(&b, ",\"netids\":[");
			netids_text(n, &b, 1);
			sbuf_printf(&b, "],\"type\":\"%s\",\"host\":", f->types[n->type].name);
			sbuf_json_str(&b, node_host_name(f, n));
			sbuf_adds(&b, "}");
		} else {
			sbuf_printf(&b, "%d %s %s ", n->rank, node_state_name(f, n),
				    owner ? owner : "-");
			if (n->chan)
				sbuf_printf(&b, "con%d ", n->chan);
			else
				sbuf_adds(&b, "- ");
			netids_text(n, &b, 0);
			/* The host last: scripts take the columns before it by position. */
			sbuf_printf(&b, " %s %s\n", f->types[n->type].name, node_host_name(f, n));
		}
		first = 0;
	}
	if (json)
		sbuf_adds(&b, "]\n");
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

static uint64_t
v_domains(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"format", NULL};
	static const char *const kinds[] = {"", "external", "public", "private"};
	struct facility *f = &k->fac;
	int json = want_json(req);
	struct sbuf b;
	char net[32];

	if (only_args(req, args, out) < 0)
		return 0;
	sbuf_init(&b);
	if (json)
		sbuf_adds(&b, "[");
	for (int i = 0; i < f->ndomains; i++) {
		struct domain *d = &f->domains[i];
		const char *owner = d->owner >= 0 ? f->principals[d->owner].name : "-";
		addr_net4(d->netid, net, sizeof(net));
		if (json) {
			sbuf_printf(&b, "%s{\"netid\":%d,\"kind\":\"%s\",\"owner\":", i ? "," : "",
				    d->netid, kinds[d->kind]);
			if (d->owner >= 0)
				sbuf_json_str(&b, owner);
			else
				sbuf_adds(&b, "null");
			sbuf_printf(&b, ",\"nodes\":%d,\"ipv4\":\"%s\"}", d->members, net);
		} else {
			sbuf_printf(&b, "%d %s %s %d %s\n", d->netid, kinds[d->kind], owner,
				    d->members, net);
		}
	}
	if (json)
		sbuf_adds(&b, "]\n");
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

static int op_release(struct facility *f, int p, int netid, const int *r, int n,
		      struct alloc_result *res);

/* The channels principal pidx holds (policy modules count releases). */
static int
channels_of(const struct facility *f, int pidx)
{
	int n = 0;
	for (int i = 0; i < f->nchannels; i++)
		n += f->channels[i].owner == pidx;
	return n;
}

/* Verbs of the form: user, cred, targets [, netid]. */
static uint64_t
on_targets(struct khd *k, const struct proto_req *req, struct sbuf *out, int with_netid,
	   int (*op)(struct facility *, int, int, const int *, int, struct alloc_result *))
{
	static const char *const args[] = {"user", "cred", "targets", NULL};
	static const char *const nargs[] = {"user", "cred", "targets", "netid", NULL};
	uint64_t wait = 0, x = 0;
	struct alloc_result res;
	int *ranks = NULL, n = 0;

	if (only_args(req, with_netid ? nargs : args, out) < 0)
		return 0;
	if (with_netid && parse_uint(proto_get(req, "netid"), 0, INT32_MAX, &x) < 0) {
		reply_err(out, AE_BADARG, "invalid or missing netid");
		return 0;
	}
	int pidx = authenticate(k, req, out, &wait);
	if (pidx == -2)
		return wait;
	if (pidx < 0)
		return 0;
	if (parse_targets(k, pidx, proto_get(req, "targets"), &ranks, &n, out) < 0)
		return 0;
	/* A running vm node's NICs are its QEMU's, made at boot: no hot-plug. */
	for (int i = 0; with_netid && i < n; i++) {
		struct node *nd = fac_node(&k->fac, ranks[i]);
		if (nd && nd->state == NODE_RUNNING &&
		    strcmp(k->fac.types[nd->type].backend, "vm") == 0) {
			char m[160];
			snprintf(m, sizeof(m),
				 "vm nodes: change domains in the monitor (node %d is running; "
				 "khctl reset first)",
				 ranks[i]);
			reply_err(out, AE_BADARG, m);
			free(ranks);
			return 0;
		}
	}
	int chans = op == op_release ? channels_of(&k->fac, pidx) : 0;
	if (op(&k->fac, pidx, (int)x, ranks, n, &res) < 0)
		reply_err(out, res.code, res.msg);
	else {
		const char *name = k->fac.principals[pidx].name;
		if (op == op_release)
			policy_released(k->policy, &k->fac, name, n,
					chans - channels_of(&k->fac, pidx), policy_now_ms());
		log_info("%s: %s %s", name, req->verb, proto_get(req, "targets"));
		reply_ok(out, NULL);
	}
	free(ranks);
	return 0;
}

static int
op_release(struct facility *f, int p, int netid, const int *r, int n, struct alloc_result *res)
{
	(void)netid;
	return alloc_release(f, p, r, n, res);
}

static int
op_reset(struct facility *f, int p, int netid, const int *r, int n, struct alloc_result *res)
{
	(void)netid;
	return alloc_reset(f, p, r, n, res);
}

static uint64_t
v_release(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	return on_targets(k, req, out, 0, op_release);
}

static uint64_t
v_reset(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	return on_targets(k, req, out, 0, op_reset);
}

static uint64_t
v_addnet(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	return on_targets(k, req, out, 1, alloc_addnet);
}

static uint64_t
v_rmnet(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	return on_targets(k, req, out, 1, alloc_rmnet);
}

static uint64_t
v_transfer(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "chan", "newcred", NULL};
	const char *newcred = proto_get(req, "newcred");
	char gen[64], hash[KH_HASH_MAX];
	struct alloc_result res;
	uint64_t wait = 0, chan;

	if (only_args(req, args, out) < 0)
		return 0;
	if (parse_uint(proto_get(req, "chan"), 0, INT32_MAX, &chan) < 0) {
		reply_err(out, AE_BADARG, "invalid or missing channel (con<C>)");
		return 0;
	}
	if (newcred && !adm_valid_cred(newcred)) {
		reply_err(out, AE_BADARG, "a credential is 1-256 printable characters");
		return 0;
	}
	int pidx = authenticate(k, req, out, &wait);
	if (pidx == -2)
		return wait;
	if (pidx < 0)
		return 0;
	if (newcred == NULL) {
		unsigned char raw[24];
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2base64(gen, sizeof(gen), raw, sizeof(raw),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		newcred = gen;
	}
	if (adm_hash(newcred, hash) < 0) {
		reply_err(out, AE_INTERNAL, "cannot hash credential (out of memory)");
		return 0;
	}
	if (alloc_transfer(&k->fac, pidx, (int)chan, hash, &res) < 0) {
		reply_err(out, res.code, res.msg);
		return 0;
	}
	log_info("%s: con%llu transferred", k->fac.principals[pidx].name, (unsigned long long)chan);
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "con%llu credential: %s\n", (unsigned long long)chan, newcred);
	reply_ok(out, &b);
	sbuf_free(&b);
	sodium_memzero(gen, sizeof(gen));
	return 0;
}

/* Check a channel's credential: 0, or -1 after an error reply, or -1 with
 * *wait set while the worker computes (the request is held). */
static int
ccred_check(struct khd *k, const struct channel *c, const char *ccred, struct sbuf *out,
	    uint64_t *wait)
{
	char m[160];
	int v;
	errno = 0;
	v = c->credhash[0] == '\0' ? -1 : adm_check_async(&k->adm, c->credhash, ccred);

	if (v == ADM_PENDING) {
		*wait = ADM_HOLD_NS;
		k->adm_pending = 1;
		return -1;
	}
	if (v < 0 && errno == EBUSY) {
		reply_err(out, AE_BUSY, "too many credential checks waiting; try again");
		return -1;
	}
	if (v < 0) {
		snprintf(m, sizeof(m), "wrong credential for channel con%d", c->id);
		reply_err(out, AE_AUTH, m);
		return -1;
	}
	return 0;
}

/* The holder of a transferred channel: ccred= is the channel's credential
 * (and no user/cred).  Returns the channel, or NULL after an error reply. */
static struct channel *
chan_holder(struct khd *k, const struct proto_req *req, struct sbuf *out, uint64_t *wait)
{
	uint64_t chan;
	struct channel *c;
	char m[160];

	if (proto_get(req, "user") || proto_get(req, "cred")) {
		reply_err(out, AE_BADARG,
			  "give the channel's credential or the principal's, not both");
		return NULL;
	}
	if (parse_uint(proto_get(req, "chan"), 0, INT32_MAX, &chan) < 0) {
		reply_err(out, AE_BADARG, "invalid or missing channel (con<C>)");
		return NULL;
	}
	if ((c = fac_channel(&k->fac, (int)chan)) == NULL) {
		snprintf(m, sizeof(m), "no channel con%d", (int)chan);
		reply_err(out, AE_NOTFOUND, m);
		return NULL;
	}
	if (ccred_check(k, c, proto_get(req, "ccred"), out, wait) < 0)
		return NULL;
	return c;
}

static uint64_t
v_addkey(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "key", "ccred", "chan", NULL};
	char canon[4500];
	struct alloc_result res;
	uint64_t wait = 0;

	if (only_args(req, args, out) < 0)
		return 0;
	const char *key = proto_get(req, "key");
	if (key == NULL || pubkey_valid(key, canon, sizeof(canon)) < 0) {
		reply_err(out, AE_BADARG, "not an OpenSSH public key line (type base64 [comment])");
		return 0;
	}
	if (proto_get(req, "ccred") || proto_get(req, "chan")) {
		/* The new holder of a transferred channel: a key for it alone. */
		struct channel *c = chan_holder(k, req, out, &wait);
		if (c == NULL)
			return wait;
		if (alloc_addkey_chan(&k->fac, c->id, canon, &res) < 0) {
			reply_err(out, res.code, res.msg);
			return 0;
		}
		log_info("con%d: key added by the channel's holder", c->id);
		reply_ok(out, NULL);
		return 0;
	}
	int pidx = authenticate(k, req, out, &wait);
	if (pidx == -2)
		return wait;
	if (pidx < 0)
		return 0;
	if (alloc_addkey(&k->fac, pidx, canon, &res) < 0)
		reply_err(out, res.code, res.msg);
	else
		reply_ok(out, NULL);
	return 0;
}

static uint64_t
v_keys(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "ccred", "chan", NULL};
	uint64_t wait = 0;
	struct sbuf b;

	if (only_args(req, args, out) < 0)
		return 0;
	if (proto_get(req, "ccred") || proto_get(req, "chan")) {
		struct channel *c = chan_holder(k, req, out, &wait);
		if (c == NULL)
			return wait;
		sbuf_init(&b);
		for (int i = 0; i < k->fac.nkeys; i++)
			if (k->fac.keys[i].chan == c->id)
				sbuf_printf(&b, "%s\n", k->fac.keys[i].line);
		reply_ok(out, &b);
		sbuf_free(&b);
		return 0;
	}
	int pidx = authenticate(k, req, out, &wait);
	if (pidx == -2)
		return wait;
	if (pidx < 0)
		return 0;
	sbuf_init(&b);
	for (int i = 0; i < k->fac.nkeys; i++)
		if (k->fac.keys[i].owner == pidx && k->fac.keys[i].chan == 0)
			sbuf_printf(&b, "%s\n", k->fac.keys[i].line);
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

static uint64_t
v_block(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "chan", "format", NULL};
	uint64_t wait = 0, chan;
	struct channel *c;

	if (only_args(req, args, out) < 0)
		return 0;
	if (parse_uint(proto_get(req, "chan"), 0, INT32_MAX, &chan) < 0) {
		reply_err(out, AE_BADARG, "invalid or missing channel (con<C>)");
		return 0;
	}
	int pidx = authenticate(k, req, out, &wait);
	if (pidx == -2)
		return wait;
	if (pidx < 0)
		return 0;
	if ((c = fac_channel(&k->fac, (int)chan)) == NULL || c->owner != pidx) {
		reply_err(out, c ? AE_PERM : AE_NOTFOUND,
			  c ? "channel is not yours" : "no such channel");
		return 0;
	}
	struct sbuf b;
	sbuf_init(&b);
	alloc_block(&k->fac, (int)chan, &b, want_json(req));
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

/* Ranges "a-b" of consecutive ranks, for compact peer lists. */
static void
add_range(struct sbuf *b, int lo, int hi, int *first)
{
	if (lo < 0)
		return;
	sbuf_printf(b, "%s%d", *first ? "" : ",", lo);
	if (hi > lo)
		sbuf_printf(b, "-%d", hi);
	*first = 0;
}

static uint64_t
v_allowed(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"a", "b", "format", NULL};
	struct facility *f = &k->fac;
	const char *sa = proto_get(req, "a"), *sb = proto_get(req, "b");
	int json = want_json(req), firstnode = 1;
	uint64_t a, b;
	struct sbuf o;

	if (only_args(req, args, out) < 0)
		return 0;
	sbuf_init(&o);
	if (sa || sb) {
		struct node *na, *nb;
		if (parse_uint(sa, 0, KH_MAX_NODES, &a) < 0 ||
		    parse_uint(sb, 0, KH_MAX_NODES, &b) < 0 || (na = fac_node(f, (int)a)) == NULL ||
		    (nb = fac_node(f, (int)b)) == NULL) {
			reply_err(out, AE_BADARG, "allowed takes two ranks of this facility");
			return 0;
		}
		int yes = na == nb ? na->state != NODE_FREE : alloc_allowed(f, na, nb);
		sbuf_printf(&o, json ? "{\"a\":%d,\"b\":%d,\"allowed\":%s}\n" : "%d %d %s\n",
			    (int)a, (int)b,
			    yes ? (json ? "true" : "yes") : (json ? "false" : "no"));
		reply_ok(out, &o);
		sbuf_free(&o);
		return 0;
	}
	/* The whole matrix, one line per allocated node: its peers as ranges. */
	if (json)
		sbuf_adds(&o, "{");
	for (int i = 0; i < f->nnodes; i++) {
		struct node *n = &f->nodes[i];
		int lo = -1, hi = -1, first = 1;
		if (n->state == NODE_FREE)
			continue;
		sbuf_printf(&o, json ? "%s\"%d\":\"" : "%s%d:", json && !firstnode ? "," : "",
			    n->rank);
		if (!json)
			sbuf_adds(&o, " ");
		for (int j = 0; j < f->nnodes; j++) {
			struct node *m = &f->nodes[j];
			if (m == n || !alloc_allowed(f, n, m))
				continue;
			if (hi >= 0 && m->rank == hi + 1) {
				hi = m->rank;
				continue;
			}
			add_range(&o, lo, hi, &first);
			lo = hi = m->rank;
		}
		add_range(&o, lo, hi, &first);
		if (first && !json)
			sbuf_adds(&o, "-");
		sbuf_adds(&o, json ? "\"" : "\n");
		firstnode = 0;
	}
	if (json)
		sbuf_adds(&o, "}\n");
	reply_ok(out, &o);
	sbuf_free(&o);
	return 0;
}

/* The policy chain, each module's settings and accounting (docs/policy.md). */
static uint64_t
v_policy(struct khd *k, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"format", NULL};
	struct sbuf b;
	if (only_args(req, args, out) < 0)
		return 0;
	sbuf_init(&b);
	policy_show(k->policy, &k->fac, policy_now_ms(), &b, want_json(req));
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

static const struct {
	const char *verb;
	uint64_t (*fn)(struct khd *, const struct proto_req *, struct sbuf *);
} verbs[] = {
    {"ping", v_ping},	    {"info", v_info},	      {"get", v_get},	    {"nodes", v_nodes},
    {"domains", v_domains}, {"release", v_release},   {"reset", v_reset},   {"addnet", v_addnet},
    {"rmnet", v_rmnet},	    {"transfer", v_transfer}, {"addkey", v_addkey}, {"keys", v_keys},
    {"block", v_block},	    {"allowed", v_allowed},   {"policy", v_policy},
};

static int
attach_mode_ok(const struct proto_req *req, struct sbuf *out)
{
	const char *mode = proto_get(req, "mode"), *ro = proto_get(req, "ro");
	if (mode && strcmp(mode, "raw") && strcmp(mode, "prefix")) {
		reply_err(out, AE_BADARG, "mode is raw or prefix");
		return -1;
	}
	if (ro && strcmp(ro, "0") && strcmp(ro, "1")) {
		reply_err(out, AE_BADARG, "ro takes 0 or 1");
		return -1;
	}
	return 0;
}

/* The client may open channel c (on behalf of principal pidx): check its
 * ranks, answer ok, and from now on the connection is the stream. */
static uint64_t
attach_stream(struct khd *k, struct conn *conn, struct channel *c, int pidx,
	      const struct proto_req *req, struct sbuf *out, const char *how)
{
	const char *mode = proto_get(req, "mode"), *ro = proto_get(req, "ro");
	const char *rl = proto_get(req, "ranks");
	int *ranks = NULL, n = 0;
	char m[160];

	if (rl && parse_targets(k, pidx, rl, &ranks, &n, out) < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		struct node *nd = fac_node(&k->fac, ranks[i]);
		if (nd == NULL || nd->chan != c->id) {
			snprintf(m, sizeof(m), "node %d is not on con%d", ranks[i], c->id);
			reply_err(out, AE_BADARG, m);
			free(ranks);
			return 0;
		}
	}
	reply_ok(out, NULL);
	conn_set_reader(conn,
			console_attach(k, conn, c->id,
				       mode && strcmp(mode, "prefix") == 0 ? CON_PREFIX : CON_RAW,
				       ro && ro[0] == '1', ranks, n));
	free(ranks);
	log_info("con%d: client attached%s%s", c->id, how,
		 ro && ro[0] == '1' ? " (read-only)" : "");
	return 0;
}

/* attach: the connection becomes the channel's console stream. */
static uint64_t
v_attach(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "chan",  "ccred",
					   "mode", "ro",   "ranks", NULL};
	const char *ccred = proto_get(req, "ccred");
	uint64_t wait = 0, chan;
	struct channel *c;
	int pidx;
	char m[160];

	if (only_args(req, args, out) < 0)
		return 0;
	if (parse_uint(proto_get(req, "chan"), 0, INT32_MAX, &chan) < 0) {
		reply_err(out, AE_BADARG, "invalid or missing channel (con<C>)");
		return 0;
	}
	if (attach_mode_ok(req, out) < 0)
		return 0;
	if ((c = fac_channel(&k->fac, (int)chan)) == NULL) {
		snprintf(m, sizeof(m), "no channel con%d", (int)chan);
		reply_err(out, AE_NOTFOUND, m);
		return 0;
	}
	if (ccred) {
		/* Whoever the channel was transferred to. */
		errno = 0;
		if (ccred_check(k, c, ccred, out, &wait) < 0)
			return wait;
		pidx = c->owner;
	} else {
		pidx = authenticate(k, req, out, &wait);
		if (pidx == -2)
			return wait;
		if (pidx < 0)
			return 0;
		if (c->owner != pidx) {
			snprintf(m, sizeof(m), "channel con%d is not yours", c->id);
			reply_err(out, AE_PERM, m);
			return 0;
		}
		if (c->credhash[0] != '\0') {
			snprintf(m, sizeof(m),
				 "channel con%d was transferred: only its new credential opens it",
				 c->id);
			reply_err(out, AE_PERM, m);
			return 0;
		}
	}
	return attach_stream(k, conn, c, pidx, req, out, "");
}

/* Split a %1F-separated list into v (NULL-terminated, pointing into buf,
 * which it modifies).  Returns the count, or -1 when more than cap. */
static int
split_us(char *buf, char **v, int cap)
{
	int n = 0;

	for (char *s = buf;; s++) {
		if (n == cap)
			return -1;
		v[n++] = s;
		if ((s = strchr(s, '\x1f')) == NULL)
			break;
		*s = '\0';
	}
	v[n] = NULL;
	return n;
}

#define EXEC_MAXV 512

/* exec: run a program on booted nodes of the principal's; after ok the
 * connection is the processes' framed stream (exec/).  All or nothing:
 * if one node cannot run it, those already started are killed. */
static uint64_t
v_exec(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "targets", "argv", "env", NULL};
	static char *const defenv[] = {"PATH=/sbin:/bin:/usr/sbin:/usr/bin", "HOME=/",
				       "TERM=linux"};
	const char *av = proto_get(req, "argv"), *ev = proto_get(req, "env");
	char abuf[PROTO_MAX_LINE], ebuf[PROTO_MAX_LINE], m[400], why[256], rankenv[32];
	char *argv[EXEC_MAXV + 1], *envp[EXEC_MAXV + 8];
	struct node_proc *procs = NULL;
	uint64_t wait = 0;
	int *ranks = NULL, n = 0, ne = 0, started = 0, pidx;

	if (only_args(req, args, out) < 0)
		return 0;
	if (av == NULL || av[0] == '\0' || av[0] == '\x1f') {
		reply_err(out, AE_BADARG, "no program given (argv)");
		return 0;
	}
	snprintf(abuf, sizeof(abuf), "%s", av);
	if (split_us(abuf, argv, EXEC_MAXV) < 0) {
		reply_err(out, AE_BADARG, "too many arguments (max 512)");
		return 0;
	}
	for (int i = 0; i < 3; i++)
		envp[ne++] = defenv[i];
	envp[ne++] = rankenv;
	if (ev != NULL && ev[0] != '\0') {
		char *ev_v[EXEC_MAXV + 1];
		int c;
		snprintf(ebuf, sizeof(ebuf), "%s", ev);
		if ((c = split_us(ebuf, ev_v, EXEC_MAXV)) < 0) {
			reply_err(out, AE_BADARG, "too many environment variables (max 512)");
			return 0;
		}
		for (int i = 0; i < c; i++) {
			char *eq = strchr(ev_v[i], '=');
			if (eq == NULL || eq == ev_v[i]) {
				snprintf(m, sizeof(m),
					 "bad environment entry '%.60s': want NAME=VALUE", ev_v[i]);
				reply_err(out, AE_BADARG, m);
				return 0;
			}
			/* A later NAME=VALUE replaces an earlier one. */
			int j;
			for (j = 0; j < ne; j++)
				if (strncmp(envp[j], ev_v[i], (size_t)(eq - ev_v[i]) + 1) == 0)
					break;
			if (j == ne && ne == EXEC_MAXV + 7) {
				reply_err(out, AE_BADARG, "too many environment variables");
				return 0;
			}
			envp[j] = ev_v[i];
			ne += j == ne;
		}
	}
	envp[ne] = NULL;
	pidx = authenticate(k, req, out, &wait);
	if (pidx == -2)
		return wait;
	if (pidx < 0)
		return 0;
	if (parse_targets(k, pidx, proto_get(req, "targets"), &ranks, &n, out) < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		struct node *nd = fac_node(&k->fac, ranks[i]);
		struct machine *mc = machine_of(k, ranks[i]);
		struct channel *ch = nd ? fac_channel(&k->fac, nd->chan) : NULL;
		for (int j = 0; j < i; j++)
			if (ranks[j] == ranks[i]) {
				snprintf(m, sizeof(m), "node %d is given twice", ranks[i]);
				reply_err(out, AE_BADARG, m);
				goto out;
			}
		if (nd == NULL || nd->owner != pidx) {
			snprintf(m, sizeof(m), "node %d is not yours", ranks[i]);
			reply_err(out, AE_PERM, m);
			goto out;
		}
		if (ch && ch->credhash[0] != '\0') {
			snprintf(m, sizeof(m),
				 "node %d: channel con%d was transferred: its holder runs its "
				 "programs",
				 ranks[i], ch->id);
			reply_err(out, AE_PERM, m);
			goto out;
		}
		if (mc == NULL || !mc->running || mc->dying) {
			snprintf(m, sizeof(m), "node %d is not booted (boot it first: run kboot)",
				 ranks[i]);
			reply_err(out, AE_BADARG, m);
			goto out;
		}
		if (hosts_remote(k, ranks[i]) >= 0) {
			snprintf(m, sizeof(m),
				 "node %d runs on host %s: exec reaches the front end's own nodes "
				 "only (use its console)",
				 ranks[i], fac_host_of(&k->fac, ranks[i])->name);
			reply_err(out, AE_BADARG, m);
			goto out;
		}
		if (mc->be->exec == NULL) {
			snprintf(
			    m, sizeof(m),
			    "node %d is a %s node: its programs run in its own kernel (use its "
			    "console)",
			    ranks[i], mc->be->name);
			reply_err(out, AE_BADARG, m);
			goto out;
		}
	}
	if (n < 1 || (procs = calloc((size_t)n, sizeof(*procs))) == NULL)
		fatal("exec");
	for (started = 0; started < n; started++) {
		struct machine *mc = machine_of(k, ranks[started]);
		snprintf(rankenv, sizeof(rankenv), "KH_RANK=%d", ranks[started]);
		if (mc->be->exec(&k->host, &mc->h, argv, envp, &procs[started], why, sizeof(why)) <
		    0) {
			snprintf(m, sizeof(m), "node %d: %s", ranks[started], why);
			reply_err(out, errno == ENOENT ? AE_NOTFOUND : AE_BADARG, m);
			break;
		}
	}
	if (started < n) {
		/* All or nothing: the ones started go again. */
		for (int i = 0; i < started; i++) {
			kill(-procs[i].pid, SIGKILL);
			while (waitpid(procs[i].pid, NULL, 0) < 0 && errno == EINTR)
				;
			close(procs[i].pidfd);
			close(procs[i].in);
			close(procs[i].out);
			close(procs[i].err);
		}
		goto out;
	}
	reply_ok(out, NULL);
	struct exec *x = conn_exec(conn);
	for (int i = 0; i < n; i++)
		exec_add(x, ranks[i], &procs[i]);
	log_info("%s: exec %.60s on %s", k->fac.principals[pidx].name, argv[0],
		 proto_get(req, "targets"));
out:
	free(procs);
	free(ranks);
	return 0;
}

/* Metering (docs/metering.md): who may read whose usage.  A principal
 * reads its own with its credential; the operator, anyone's.  Operator
 * rights: operator=1 and no credential, on khd.sock (never the ssh socket),
 * from uid 0 or the uid khd runs as (the owner of DIR).  Returns the
 * principal's index (-1 with all=1 and no user), -2 after an error reply,
 * -3 when the request must wait (*wait). */
static int
bill_subject(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out,
	     int allow_all, uint64_t *wait)
{
	const char *op = proto_get(req, "operator"), *all = proto_get(req, "all");
	const char *user = proto_get(req, "user");
	char m[160];
	int idx;

	if ((op && strcmp(op, "0") && strcmp(op, "1")) ||
	    (all && strcmp(all, "0") && strcmp(all, "1"))) {
		reply_err(out, AE_BADARG, "operator and all take 0 or 1");
		return -2;
	}
	int is_op = op && op[0] == '1', is_all = all && all[0] == '1';
	if (is_all && !allow_all) {
		reply_err(out, AE_BADARG, "all is not an argument of this request");
		return -2;
	}
	if (!is_op) {
		if (is_all) {
			reply_err(out, AE_PERM, "only the operator sees every principal's usage");
			return -2;
		}
		idx = authenticate(k, req, out, wait);
		return idx == -2 ? -3 : idx < 0 ? -2 : idx;
	}
	uid_t uid = conn_peer_uid(conn);
	if (proto_get(req, "cred")) {
		reply_err(out, AE_BADARG, "the operator gives no credential");
		return -2;
	}
	if (uid != 0 && uid != geteuid()) {
		snprintf(m, sizeof(m), "operator rights need uid 0 or uid %u (khd's) on khd.sock",
			 (unsigned)geteuid());
		reply_err(out, AE_PERM, m);
		return -2;
	}
	if (is_all) {
		if (user) {
			reply_err(out, AE_BADARG, "give a principal or all, not both");
			return -2;
		}
		return -1;
	}
	if (user == NULL || !valid_name(user)) {
		reply_err(out, AE_BADARG, user ? "invalid principal name" : "no principal given");
		return -2;
	}
	if (fac_principal(&k->fac, user, &idx) == NULL) {
		snprintf(m, sizeof(m), "unknown principal '%s'", user);
		reply_err(out, AE_NOTFOUND, m);
		return -2;
	}
	return idx;
}

/* from/to: unix seconds; *ms 0 when not given. */
static int
bill_time(const struct proto_req *req, const char *key, uint64_t *ms, struct sbuf *out)
{
	const char *v = proto_get(req, key);
	uint64_t x;
	char m[96];
	*ms = 0;
	if (v == NULL)
		return 0;
	/* Up to the year 2^36 s: far enough, and ms stay within 63 bits. */
	if (parse_uint(v, 0, (1ULL << 40), &x) < 0) {
		snprintf(m, sizeof(m), "invalid %s '%.32s': expected unix seconds", key, v);
		reply_err(out, AE_BADARG, m);
		return -1;
	}
	*ms = x * 1000;
	return 0;
}

static int
bill_range(const struct proto_req *req, uint64_t *from, uint64_t *to, struct sbuf *out)
{
	if (bill_time(req, "from", from, out) < 0 || bill_time(req, "to", to, out) < 0)
		return -1;
	if (*to && *from >= *to) {
		reply_err(out, AE_BADARG, "from must come before to");
		return -1;
	}
	/* "from 0" alone still means a range query, not the running totals. */
	if (*from == 0 && proto_get(req, "from") && *to == 0)
		*to = UINT64_MAX / 2;
	return 0;
}

static int
bill_count(const struct proto_req *req, const char *key, uint64_t def, uint64_t max, uint64_t *v,
	   struct sbuf *out)
{
	const char *s = proto_get(req, key);
	char m[96];
	*v = def;
	if (s && parse_uint(s, key[0] == 'm' ? 1 : 0, max, v) < 0) {
		snprintf(m, sizeof(m), "invalid %s '%.32s'", key, s);
		reply_err(out, AE_BADARG, m);
		return -1;
	}
	return 0;
}

static void
usage_one(struct khd *k, int pidx, const struct usage *u, uint64_t from, uint64_t to, int json,
	  int all, struct sbuf *b)
{
	struct usage r;
	usage_init(&r);
	usage_rollup(u, &r);
	const char *name = k->fac.principals[pidx].name;
	if (json) {
		sbuf_adds(b, "{\"principal\":");
		sbuf_json_str(b, name);
		if (from || to)
			sbuf_printf(b, ",\"from\":%llu,\"to\":", (unsigned long long)(from / 1000));
		else
			sbuf_adds(b, ",\"from\":null,\"to\":");
		if (to && to != UINT64_MAX / 2)
			sbuf_printf(b, "%llu", (unsigned long long)(to / 1000));
		else
			sbuf_adds(b, "null");
		sbuf_adds(b, ",\"usage\":");
		usage_format_json(&r, b);
		sbuf_adds(b, "}");
	} else if (all) {
		struct sbuf t;
		sbuf_init(&t);
		usage_format_text(&r, &t);
		for (char *line = t.s, *nl; line && *line; line = nl + 1) {
			nl = strchr(line, '\n');
			sbuf_printf(b, "%s %.*s\n", name,
				    (int)(nl ? nl - line : (long)strlen(line)), line);
			if (nl == NULL)
				break;
		}
		sbuf_free(&t);
	} else {
		usage_format_text(&r, b);
	}
	usage_free(&r);
}

/* usage: one line per resource (totals and per-domain lines). */
static uint64_t
v_usage(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "operator", "all",
					   "from", "to",   "format",   NULL};
	uint64_t wait = 0, from, to;
	char err[256];
	struct usage u;
	struct sbuf b;

	if (only_args(req, args, out) < 0 || bill_range(req, &from, &to, out) < 0)
		return 0;
	int pidx = bill_subject(k, conn, req, out, 1, &wait);
	if (pidx == -3)
		return wait;
	if (pidx == -2)
		return 0;
	int json = want_json(req), all = pidx == -1, first = 1;
	usage_init(&u);
	sbuf_init(&b);
	if (all && json)
		sbuf_adds(&b, "[");
	for (int p = all ? 0 : pidx; p < (all ? k->fac.nprincipals : pidx + 1); p++) {
		if (meter_usage(k, p, from, to, &u, err, sizeof(err)) < 0) {
			reply_err(out, AE_INTERNAL, err);
			goto out;
		}
		if (all && json && !first)
			sbuf_adds(&b, ",");
		usage_one(k, p, &u, from, to, json, all, &b);
		first = 0;
	}
	if (all && json)
		sbuf_adds(&b, "]");
	if (json)
		sbuf_adds(&b, "\n");
	reply_ok(out, &b);
out:
	usage_free(&u);
	sbuf_free(&b);
	return 0;
}

/* export: a principal's ledger as khbill verify reads it, in parts of at
 * most max records (the reply of the last part has the "end" line). */
static uint64_t
v_export(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred", "operator", "after", "max", NULL};
	uint64_t wait = 0, after, max;
	char err[256];
	int more;

	if (only_args(req, args, out) < 0 ||
	    bill_count(req, "after", 0, UINT64_MAX / 2, &after, out) < 0 ||
	    bill_count(req, "max", 20000, 50000, &max, out) < 0)
		return 0;
	int pidx = bill_subject(k, conn, req, out, 0, &wait);
	if (pidx == -3)
		return wait;
	if (pidx < 0)
		return 0;
	struct sbuf b;
	sbuf_init(&b);
	if (meter_export(k, pidx, after, max, &b, &more, err, sizeof(err)) < 0)
		reply_err(out, AE_BADARG, err);
	else
		reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

/* records: the ledger lines of records whose interval starts in [from, to). */
static uint64_t
v_records(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "cred",  "operator", "from",
					   "to",   "after", "max",	NULL};
	uint64_t wait = 0, from, to, after, max;
	char err[256];
	int more;

	if (only_args(req, args, out) < 0 || bill_range(req, &from, &to, out) < 0 ||
	    bill_count(req, "after", 0, UINT64_MAX / 2, &after, out) < 0 ||
	    bill_count(req, "max", 20000, 50000, &max, out) < 0)
		return 0;
	int pidx = bill_subject(k, conn, req, out, 0, &wait);
	if (pidx == -3)
		return wait;
	if (pidx < 0)
		return 0;
	struct sbuf b;
	sbuf_init(&b);
	if (meter_records(k, pidx, from, to, after, max, &b, &more, err, sizeof(err)) < 0)
		reply_err(out, AE_INTERNAL, err);
	else
		reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

/* authkeys (sshd's AuthorizedKeysCommand, as user khkeys): the keys that
 * may log in as con<C>, each limited to what a channel session needs.  A
 * name and uid that do not belong together get no keys. */
static uint64_t
v_ssh_authkeys(struct khd *k, uid_t peer, const struct proto_req *req, struct sbuf *out)
{
	static const char *const args[] = {"user", "uid", NULL};
	const char *user = proto_get(req, "user");
	struct channel *c = NULL;
	uint64_t chan, uid;
	struct sbuf b;

	if (only_args(req, args, out) < 0)
		return 0;
	if (peer != SSHD_UID_KEYS && peer != 0) {
		reply_err(out, AE_PERM, "only sshd's key lookup may ask for keys");
		return 0;
	}
	if (user && strncmp(user, "con", 3) == 0 &&
	    parse_uint(user + 3, 0, SSHD_CHAN_MAX, &chan) == 0 &&
	    parse_uint(proto_get(req, "uid"), 0, UINT32_MAX, &uid) == 0 &&
	    sshd_uid_chan((uid_t)uid) == (int)chan)
		c = fac_channel(&k->fac, (int)chan);
	sbuf_init(&b);
	/* the service login: every principal's own keys, no terminal */
	if (user && strcmp(user, SSHD_SVC_USER) == 0 &&
	    parse_uint(proto_get(req, "uid"), 0, UINT32_MAX, &uid) == 0 && uid == SSHD_UID_SVC)
		for (int i = 0; i < k->fac.nkeys; i++) {
			const char *line = k->fac.keys[i].line;
			size_t tl = strcspn(line, " "), bl = strcspn(line + tl + 1, " ");
			if (k->fac.keys[i].chan == 0)
				sbuf_printf(&b, "restrict %.*s\n", (int)(tl + 1 + bl), line);
		}
	for (int i = 0; c && i < k->fac.nkeys; i++) {
		const char *line = k->fac.keys[i].line;
		size_t tl = strcspn(line, " "), bl = strcspn(line + tl + 1, " ");
		if (alloc_key_opens(c, &k->fac.keys[i]))
			sbuf_printf(&b, "restrict,pty %.*s\n", (int)(tl + 1 + bl), line);
	}
	reply_ok(out, &b);
	sbuf_free(&b);
	return 0;
}

/* attach over ssh: the session's uid names the channel (sshd ran it as
 * con<C>), the key is the one sshd verified (ExposeAuthInfo), and it must
 * still open that channel now. */
static uint64_t
v_ssh_attach(struct khd *k, struct conn *conn, uid_t peer, const struct proto_req *req,
	     struct sbuf *out)
{
	static const char *const args[] = {"key", "mode", "ro", "ranks", NULL};
	const char *key = proto_get(req, "key");
	int chan = sshd_uid_chan(peer), found = 0;
	struct channel *c;
	char m[160], fp[80], how[120];

	if (only_args(req, args, out) < 0 || attach_mode_ok(req, out) < 0)
		return 0;
	if (chan < 0) {
		reply_err(out, AE_PERM, "not a channel's ssh session");
		return 0;
	}
	if ((c = fac_channel(&k->fac, chan)) == NULL) {
		snprintf(m, sizeof(m), "no channel con%d", chan);
		reply_err(out, AE_NOTFOUND, m);
		return 0;
	}
	for (int i = 0; key && i < k->fac.nkeys && !found; i++)
		found =
		    alloc_key_opens(c, &k->fac.keys[i]) && pubkey_same(k->fac.keys[i].line, key);
	if (!found) {
		snprintf(m, sizeof(m), "this key does not open con%d", chan);
		reply_err(out, AE_PERM, m);
		return 0;
	}
	pubkey_fingerprint(key, fp, sizeof(fp));
	snprintf(how, sizeof(how), " over ssh (key %s)", fp);
	return attach_stream(k, conn, c, c->owner, req, out, how);
}

static uint64_t dispatch_plain(struct khd *k, struct conn *conn, const struct proto_req *req,
			       struct sbuf *out);

/* The service interface (login `kh`, docs/ebb.md): the session first
 * says which key sshd verified (`svc key=...`); it must be a key some
 * principal registered.  Then the principal verbs, each for a principal
 * who registered that key, with that principal's credential checked as
 * on khd.sock.  Every request is logged, without its credential. */
static uint64_t
verbs_svc(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	static const char *const served[] = {"ping",	"info",	 "nodes",  "domains", "get",
					     "release", "reset", "addnet", "rmnet",   "block",
					     "attach",	"keys",	 "usage",  "policy",  NULL};
	const char *key = conn_svc_key(conn), *user = proto_get(req, "user");
	char m[200], fp[80];

	if (strcmp(req->verb, "svc") == 0) {
		static const char *const args[] = {"key", NULL};
		const char *nk = proto_get(req, "key");
		struct sbuf who;
		if (only_args(req, args, out) < 0)
			return 0;
		sbuf_init(&who);
		for (int i = 0; nk && i < k->fac.nkeys; i++)
			if (k->fac.keys[i].chan == 0 && pubkey_same(k->fac.keys[i].line, nk))
				sbuf_printf(&who, "%s%s", who.len ? "," : "",
					    k->fac.principals[k->fac.keys[i].owner].name);
		if (key != NULL || nk == NULL || who.len == 0 || conn_set_svc_key(conn, nk) < 0) {
			sbuf_free(&who);
			if (nk != NULL && key == NULL) {
				pubkey_fingerprint(nk, fp, sizeof(fp));
				log_warnx("svc: refused a session with key %s", fp);
			}
			reply_err(out, AE_PERM,
				  key != NULL
				      ? "the session has its key already"
				      : "this key is registered by no principal (khctl addkey)");
			return 0;
		}
		pubkey_fingerprint(nk, fp, sizeof(fp));
		log_info("svc: session with key %s (registered by %s)", fp, who.s);
		sbuf_free(&who);
		reply_ok(out, NULL);
		return 0;
	}
	if (key == NULL) {
		reply_err(out, AE_PERM, "a service session starts with svc key=...");
		return 0;
	}
	int ok = 0;
	for (int i = 0; served[i] && !ok; i++)
		ok = strcmp(served[i], req->verb) == 0;
	if (!ok) {
		snprintf(m, sizeof(m), "'%.40s' is not served on the service interface", req->verb);
		reply_err(out, AE_PERM, m);
		return 0;
	}
	if (user != NULL) {
		int idx = -1, mine = 0;
		if (fac_principal(&k->fac, user, &idx) != NULL)
			for (int i = 0; i < k->fac.nkeys && !mine; i++)
				mine = k->fac.keys[i].chan == 0 && k->fac.keys[i].owner == idx &&
				       pubkey_same(k->fac.keys[i].line, key);
		/* a principal's first khget makes it: no key of its own yet */
		if (!mine) {
			pubkey_fingerprint(key, fp, sizeof(fp));
			log_warnx("svc: refused %.40s %s: key %s is not theirs", user, req->verb,
				  fp);
			snprintf(m, sizeof(m), "this key is not %.40s's (khctl addkey)", user);
			reply_err(out, AE_PERM, m);
			return 0;
		}
	}
	pubkey_fingerprint(key, fp, sizeof(fp));
	log_info("svc: %s %s (key %s)", user ? user : "-", req->verb, fp);
	return dispatch_plain(k, conn, req, out);
}

/* Requests on the ssh socket: only what sshd and its sessions need. */
static uint64_t
verbs_ssh(struct khd *k, struct conn *conn, uid_t peer, const struct proto_req *req,
	  struct sbuf *out)
{
	if (peer == SSHD_UID_SVC)
		return verbs_svc(k, conn, req, out);
	if (strcmp(req->verb, "authkeys") == 0)
		return v_ssh_authkeys(k, peer, req, out);
	if (strcmp(req->verb, "attach") == 0)
		return v_ssh_attach(k, conn, peer, req, out);
	if (strcmp(req->verb, "ping") == 0)
		return v_ping(k, req, out);
	char m[96];
	snprintf(m, sizeof(m), "'%.40s' is not served on the ssh socket", req->verb);
	reply_err(out, AE_PERM, m);
	return 0;
}

static uint64_t
dispatch_plain(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	if (strcmp(req->verb, "attach") == 0)
		return v_attach(k, conn, req, out);
	if (strcmp(req->verb, "exec") == 0)
		return v_exec(k, conn, req, out);
	if (strcmp(req->verb, "usage") == 0)
		return v_usage(k, conn, req, out);
	if (strcmp(req->verb, "export") == 0)
		return v_export(k, conn, req, out);
	if (strcmp(req->verb, "records") == 0)
		return v_records(k, conn, req, out);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verbs[i].verb, req->verb) == 0) {
			uint64_t r = verbs[i].fn(k, req, out);
			machines_settle(k);
			sshd_users(k); /* a channel may have come or gone */
			return r;
		}
	char m[64];
	snprintf(m, sizeof(m), "unknown request '%s'", req->verb);
	reply_err(out, AE_BADARG, m);
	return 0;
}

uint64_t
verbs_dispatch(struct khd *k, struct conn *conn, const struct proto_req *req, struct sbuf *out)
{
	uid_t peer;
	if (conn_ssh_peer(conn, &peer))
		return verbs_ssh(k, conn, peer, req, out);
	return dispatch_plain(k, conn, req, out);
}
