/* args: option parsing by hand (getopt keeps global state and we want the
 * parsers to be testable and re-entrant).  Short flags may be combined
 * ("-ix") and take their value attached or as the next word ("-n3" or
 * "-n 3"); options may come before or after the operands, as in GNU tools;
 * "--" ends the options.  A word like "-5" is an operand, so a negative
 * count gets "invalid count", not "unknown option". */
#include "tools/args.h"
#include "allocator/facility.h"
#include "common/proto.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char args_khget_usage[] =
    "usage: khget [-n netid[,netid...]] [-p num] [-i] [-x] [-c credential] [-t type]\n"
    "             [--place pack|spread] [--json] [--socket PATH] user [count]\n";

const char args_khctl_usage[] =
    "usage: khctl [--socket PATH] VERB ...\n"
    "  nodes [--free] [--user USER] [--json]   one line per node: rank state owner channel netids "
    "type host\n"
    "  domains [--json]                        one line per domain: netid kind owner nodes subnet\n"
    "  info [--json]                           the facility, its node types and hosts\n"
    "  policy [--json]                         policy modules, limits, what each principal holds\n"
    "  release -c CRED USER con<C>|RANK...     give nodes back to the free pool\n"
    "  reset -c CRED USER con<C>|RANK...       reset nodes to the boot monitor\n"
    "  addnet -c CRED USER NETID RANK...       add nodes to a domain\n"
    "  rmnet -c CRED USER NETID RANK...        remove nodes from a domain\n"
    "  transfer -c CRED USER con<C> [NEWCRED]  hand the channel to a new credential\n"
    "  addkey -c CRED USER PUBKEYFILE          register an SSH public key (ssh con<C>@host)\n"
    "  addkey -k CHANCRED con<C> PUBKEYFILE    ... as the holder of a transferred channel\n"
    "  keys -c CRED USER | -k CHANCRED con<C>  list the registered keys\n"
    "  block -c CRED USER con<C> [--json]      print a channel's control block again\n"
    "  allowed [RANK RANK] [--json]            isAllowed: which nodes may exchange frames\n"
    "  exec -c CRED USER con<C>|RANK... CMD [ARG...]  run CMD in booted nodes (khctl exec -h)\n"
    "A rank may also be a range A-B.  The credential may come from $KH_CRED.\n";

/* A parsed command line: flags seen, their values, the operands. */
struct cmdline {
	const char *val[128]; /* by flag character; "" for a set boolean */
	const char *longval[8];
	const char *ops[KH_MAX_NODES + 16];
	int nops;
};

enum { L_JSON, L_SOCKET, L_HELP, L_FREE, L_USER, L_PLACE };
static const char *const longnames[] = {"json", "socket", "help", "free", "user", "place", NULL};
static const int longhasarg[] = {0, 1, 0, 0, 1, 1};

/* shorts: the short flags allowed, "c:" = takes a value.  longs: bitmask of
 * L_* allowed. */
static int
scan(int argc, char *const argv[], const char *shorts, unsigned longs, struct cmdline *cl,
     char *err, size_t errlen)
{
	int endopts = 0;

	memset(cl, 0, sizeof(*cl));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (endopts || a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9')) {
			if (cl->nops == (int)(sizeof(cl->ops) / sizeof(cl->ops[0])))
				return seterr(err, errlen, "too many arguments");
			cl->ops[cl->nops++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			endopts = 1;
			continue;
		}
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t nl = eq ? (size_t)(eq - name) : strlen(name);
			int k = -1;
			for (int j = 0; longnames[j]; j++)
				if (strlen(longnames[j]) == nl &&
				    strncmp(longnames[j], name, nl) == 0)
					k = j;
			if (k < 0 || !(longs & (1u << k)))
				return seterr(err, errlen, "unknown option '%.40s'", a);
			if (longhasarg[k]) {
				if (eq)
					cl->longval[k] = eq + 1;
				else if (i + 1 < argc)
					cl->longval[k] = argv[++i];
				else
					return seterr(err, errlen, "option --%s needs a value",
						      longnames[k]);
			} else {
				if (eq)
					return seterr(err, errlen, "option --%s takes no value",
						      longnames[k]);
				cl->longval[k] = "";
			}
			continue;
		}
		for (const char *p = a + 1; *p; p++) {
			const char *s = strchr(shorts, *p);
			if (s == NULL || *p == ':')
				return seterr(err, errlen, "unknown option '-%c'", *p);
			if (s[1] == ':') {
				if (p[1])
					cl->val[(unsigned char)*p] = p + 1;
				else if (i + 1 < argc)
					cl->val[(unsigned char)*p] = argv[++i];
				else
					return seterr(err, errlen, "option -%c needs a value", *p);
				break;
			}
			cl->val[(unsigned char)*p] = "";
		}
	}
	return 0;
}

static const char *
cred_of(const struct cmdline *cl)
{
	const char *c = cl->val['c'];
	if (c == NULL)
		c = getenv("KH_CRED");
	return c && *c ? c : NULL;
}

/* Netids "3,4,7": numbers >= 0, no empty item, no duplicates. */
static int
check_netids(const char *s, char *err, size_t errlen)
{
	int seen[KH_MAX_IFS + 1], n = 0;
	const char *p = s;
	uint64_t v;

	if (*s == '\0')
		return seterr(err, errlen, "-n needs a list of netids");
	while (*p) {
		char tok[16];
		size_t l = strcspn(p, ",");
		if (l == 0 || l >= sizeof(tok))
			return seterr(err, errlen, "invalid netid list '%.40s'", s);
		memcpy(tok, p, l);
		tok[l] = '\0';
		if (parse_uint(tok, 0, INT32_MAX, &v) < 0)
			return seterr(err, errlen, "invalid netid '%s'", tok);
		for (int i = 0; i < n; i++)
			if (seen[i] == (int)v)
				return seterr(err, errlen, "netid %d given twice", (int)v);
		if (n == KH_MAX_IFS)
			return seterr(err, errlen, "at most %d netids", KH_MAX_IFS);
		seen[n++] = (int)v;
		p += l;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				return seterr(err, errlen, "invalid netid list '%.40s'", s);
		}
	}
	return 0;
}

static void
common_opts(const struct cmdline *cl, struct tool_opts *o)
{
	o->socket = cl->longval[L_SOCKET];
	o->help = cl->longval[L_HELP] != NULL || cl->val['h'] != NULL;
}

int
args_khget(int argc, char *const argv[], struct sbuf *req, struct tool_opts *o, char *err,
	   size_t errlen)
{
	struct cmdline *cl = calloc(1, sizeof(*cl));
	uint64_t v;
	int rc = -1;

	if (cl == NULL)
		return seterr(err, errlen, "out of memory");
	memset(o, 0, sizeof(*o));
	if (scan(argc, argv, "n:p:ixc:t:h",
		 1u << L_JSON | 1u << L_SOCKET | 1u << L_HELP | 1u << L_PLACE, cl, err, errlen) < 0)
		goto out;
	common_opts(cl, o);
	if (o->help) {
		rc = 0;
		goto out;
	}
	if (cl->nops < 1) {
		seterr(err, errlen, "no principal given");
		goto out;
	}
	if (cl->nops > 2) {
		seterr(err, errlen, "unexpected argument '%.40s'", cl->ops[2]);
		goto out;
	}
	const char *user = cl->ops[0], *count = cl->nops > 1 ? cl->ops[1] : NULL;
	if (!valid_name(user)) {
		seterr(err, errlen, "invalid principal name '%.40s' (1-32 of A-Z a-z 0-9 _ . -)",
		       user);
		goto out;
	}
	if (count && parse_uint(count, 1, KH_MAX_NODES, &v) < 0) {
		seterr(err, errlen, "invalid count '%.40s': expected a number from 1 to %d", count,
		       KH_MAX_NODES);
		goto out;
	}
	if (cl->val['n'] && check_netids(cl->val['n'], err, errlen) < 0)
		goto out;
	if (cl->val['p'] && parse_uint(cl->val['p'], 0, KH_MAX_IFS, &v) < 0) {
		seterr(err, errlen, "invalid -p '%.40s': expected a number from 0 to %d",
		       cl->val['p'], KH_MAX_IFS);
		goto out;
	}
	const char *place = cl->longval[L_PLACE];
	if (place && strcmp(place, "pack") != 0 && strcmp(place, "spread") != 0) {
		seterr(err, errlen, "--place must be pack or spread");
		goto out;
	}
	proto_begin(req, "get");
	proto_arg(req, "user", user);
	if (cred_of(cl))
		proto_arg(req, "cred", cred_of(cl));
	if (count)
		proto_arg(req, "count", count);
	if (cl->val['n'])
		proto_arg(req, "netids", cl->val['n']);
	if (cl->val['p'])
		proto_arg(req, "newnets", cl->val['p']);
	if (cl->val['i'])
		proto_arg(req, "public", "1");
	if (cl->val['x'])
		proto_arg(req, "external", "1");
	if (cl->val['t'])
		proto_arg(req, "type", cl->val['t']);
	if (place)
		proto_arg(req, "place", place);
	if (cl->longval[L_JSON])
		proto_arg(req, "format", "json");
	proto_end(req);
	rc = 0;
out:
	free(cl);
	return rc;
}

/* "con3" or "3" -> "3" (the channel number). */
static int
chan_number(const char *s, char *out, size_t len)
{
	uint64_t v;
	if (strncmp(s, "con", 3) == 0)
		s += 3;
	if (parse_uint(s, 0, INT32_MAX, &v) < 0)
		return -1;
	snprintf(out, len, "%llu", (unsigned long long)v);
	return 0;
}

/* Operands from..nops-1 joined by commas into a targets list; each must be
 * con<C>, RANK or A-B (khd checks the details). */
static int
targets(const struct cmdline *cl, int from, struct sbuf *t, char *err, size_t errlen)
{
	if (from >= cl->nops)
		return seterr(err, errlen, "no nodes given (con<C> or ranks)");
	sbuf_reset(t);
	for (int i = from; i < cl->nops; i++) {
		const char *s = cl->ops[i];
		if (*s == '\0' || strspn(s, "con0123456789-") != strlen(s) || strchr(s, ','))
			return seterr(err, errlen,
				      "bad node '%.40s': expected con<C>, a rank or A-B", s);
		sbuf_printf(t, "%s%s", i > from ? "," : "", s);
	}
	return 0;
}

static int
need_auth(const struct cmdline *cl, int min_ops, const char *verb, char *err, size_t errlen)
{
	if (cl->nops < 1)
		return seterr(err, errlen, "%s: no principal given", verb);
	if (!valid_name(cl->ops[0]))
		return seterr(err, errlen, "invalid principal name '%.40s'", cl->ops[0]);
	if (cred_of(cl) == NULL)
		return seterr(err, errlen, "%s: give the principal's credential with -c", verb);
	if (cl->nops < min_ops)
		return seterr(err, errlen, "%s: missing arguments (see khctl --help)", verb);
	return 0;
}

static int
read_keyfile(const char *path, char *line, size_t len, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	if (fp == NULL)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	if (fgets(line, (int)len, fp) == NULL) {
		fclose(fp);
		return seterr(err, errlen, "%s: empty file", path);
	}
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	return 0;
}

/* Is -k (a channel credential) among the words after the verb? */
static int
has_k(int argc, char *const argv[])
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strncmp(argv[i], "-k", 2) == 0)
			return 1;
	}
	return 0;
}

int
args_khctl(int argc, char *const argv[], struct sbuf *req, struct tool_opts *o, char *err,
	   size_t errlen)
{
	struct cmdline *cl = calloc(1, sizeof(*cl));
	struct sbuf t;
	char num[32];
	int rc = -1;

	sbuf_init(&t);
	if (cl == NULL)
		return seterr(err, errlen, "out of memory");
	memset(o, 0, sizeof(*o));
	/* Global options before the verb: --socket PATH. */
	const char *sock = NULL;
	while (argc > 0 && strncmp(argv[0], "--socket", 8) == 0) {
		if (argv[0][8] == '=') {
			sock = argv[0] + 9;
		} else if (argv[0][8] == '\0' && argc > 1) {
			sock = argv[1];
			argc--;
			argv++;
		} else {
			seterr(err, errlen, "option --socket needs a value");
			goto out;
		}
		argc--;
		argv++;
	}
	if (argc < 1) {
		seterr(err, errlen, "no verb given (see khctl --help)");
		goto out;
	}
	const char *verb = argv[0];
	if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
		o->help = 1;
		rc = 0;
		goto out;
	}
	unsigned base = 1u << L_SOCKET | 1u << L_HELP;
	if (strcmp(verb, "nodes") == 0) {
		if (scan(argc - 1, argv + 1, "h", base | 1u << L_JSON | 1u << L_FREE | 1u << L_USER,
			 cl, err, errlen) < 0)
			goto out;
		if (cl->nops) {
			seterr(err, errlen, "nodes: unexpected argument '%.40s'", cl->ops[0]);
			goto out;
		}
		proto_begin(req, "nodes");
		if (cl->longval[L_FREE])
			proto_arg(req, "free", "1");
		if (cl->longval[L_USER])
			proto_arg(req, "user", cl->longval[L_USER]);
	} else if (strcmp(verb, "domains") == 0 || strcmp(verb, "info") == 0 ||
		   strcmp(verb, "policy") == 0) {
		if (scan(argc - 1, argv + 1, "h", base | 1u << L_JSON, cl, err, errlen) < 0)
			goto out;
		if (cl->nops) {
			seterr(err, errlen, "%s: unexpected argument '%.40s'", verb, cl->ops[0]);
			goto out;
		}
		proto_begin(req, verb);
	} else if (strcmp(verb, "allowed") == 0) {
		if (scan(argc - 1, argv + 1, "h", base | 1u << L_JSON, cl, err, errlen) < 0)
			goto out;
		if (cl->nops != 0 && cl->nops != 2) {
			seterr(err, errlen, "allowed takes no ranks or two");
			goto out;
		}
		proto_begin(req, "allowed");
		if (cl->nops == 2) {
			proto_arg(req, "a", cl->ops[0]);
			proto_arg(req, "b", cl->ops[1]);
		}
	} else if (strcmp(verb, "release") == 0 || strcmp(verb, "reset") == 0) {
		if (scan(argc - 1, argv + 1, "c:h", base, cl, err, errlen) < 0 ||
		    need_auth(cl, 2, verb, err, errlen) < 0 || targets(cl, 1, &t, err, errlen) < 0)
			goto out;
		proto_begin(req, verb);
		proto_arg(req, "user", cl->ops[0]);
		proto_arg(req, "cred", cred_of(cl));
		proto_arg(req, "targets", t.s);
	} else if (strcmp(verb, "addnet") == 0 || strcmp(verb, "rmnet") == 0) {
		uint64_t v;
		if (scan(argc - 1, argv + 1, "c:h", base, cl, err, errlen) < 0 ||
		    need_auth(cl, 3, verb, err, errlen) < 0)
			goto out;
		if (parse_uint(cl->ops[1], 0, INT32_MAX, &v) < 0) {
			seterr(err, errlen, "%s: invalid netid '%.40s'", verb, cl->ops[1]);
			goto out;
		}
		if (targets(cl, 2, &t, err, errlen) < 0)
			goto out;
		proto_begin(req, verb);
		proto_arg(req, "user", cl->ops[0]);
		proto_arg(req, "cred", cred_of(cl));
		proto_arg(req, "netid", cl->ops[1]);
		proto_arg(req, "targets", t.s);
	} else if (strcmp(verb, "transfer") == 0 || strcmp(verb, "block") == 0) {
		unsigned l = base | (verb[0] == 'b' ? 1u << L_JSON : 0);
		if (scan(argc - 1, argv + 1, "c:h", l, cl, err, errlen) < 0 ||
		    need_auth(cl, 2, verb, err, errlen) < 0)
			goto out;
		if (chan_number(cl->ops[1], num, sizeof(num)) < 0) {
			seterr(err, errlen, "%s: expected a channel con<C>, got '%.40s'", verb,
			       cl->ops[1]);
			goto out;
		}
		if (cl->nops > (verb[0] == 't' ? 3 : 2)) {
			seterr(err, errlen, "%s: unexpected argument '%.40s'", verb,
			       cl->ops[verb[0] == 't' ? 3 : 2]);
			goto out;
		}
		proto_begin(req, verb);
		proto_arg(req, "user", cl->ops[0]);
		proto_arg(req, "cred", cred_of(cl));
		proto_arg(req, "chan", num);
		if (cl->nops == 3)
			proto_arg(req, "newcred", cl->ops[2]);
	} else if ((strcmp(verb, "addkey") == 0 || strcmp(verb, "keys") == 0) &&
		   has_k(argc, argv)) {
		/* The holder of a transferred channel: its credential and the channel. */
		char line[4096];
		int add = verb[0] == 'a';
		if (scan(argc - 1, argv + 1, "k:h", base, cl, err, errlen) < 0)
			goto out;
		if (cl->nops < 1 || chan_number(cl->ops[0], num, sizeof(num)) < 0) {
			seterr(err, errlen, "%s: expected a channel con<C> after -k CHANCRED",
			       verb);
			goto out;
		}
		if (cl->nops != 1 + add) {
			seterr(err, errlen, "%s: expected -k CHANCRED con<C>%s", verb,
			       add ? " PUBKEYFILE" : "");
			goto out;
		}
		if (*cl->val['k'] == '\0') {
			seterr(err, errlen, "%s: -k needs the channel's credential", verb);
			goto out;
		}
		if (add && read_keyfile(cl->ops[1], line, sizeof(line), err, errlen) < 0)
			goto out;
		proto_begin(req, verb);
		proto_arg(req, "ccred", cl->val['k']);
		proto_arg(req, "chan", num);
		if (add)
			proto_arg(req, "key", line);
	} else if (strcmp(verb, "addkey") == 0) {
		char line[4096];
		if (scan(argc - 1, argv + 1, "c:h", base, cl, err, errlen) < 0 ||
		    need_auth(cl, 2, verb, err, errlen) < 0)
			goto out;
		if (cl->nops > 2) {
			seterr(err, errlen, "addkey: one key file at a time");
			goto out;
		}
		if (read_keyfile(cl->ops[1], line, sizeof(line), err, errlen) < 0)
			goto out;
		proto_begin(req, verb);
		proto_arg(req, "user", cl->ops[0]);
		proto_arg(req, "cred", cred_of(cl));
		proto_arg(req, "key", line);
	} else if (strcmp(verb, "keys") == 0) {
		if (scan(argc - 1, argv + 1, "c:h", base, cl, err, errlen) < 0 ||
		    need_auth(cl, 1, verb, err, errlen) < 0)
			goto out;
		proto_begin(req, verb);
		proto_arg(req, "user", cl->ops[0]);
		proto_arg(req, "cred", cred_of(cl));
	} else {
		seterr(err, errlen, "unknown verb '%.40s' (see khctl --help)", verb);
		goto out;
	}
	if (cl->longval[L_JSON])
		proto_arg(req, "format", "json");
	proto_end(req);
	common_opts(cl, o);
	if (o->socket == NULL)
		o->socket = sock;
	rc = 0;
out:
	sbuf_free(&t);
	free(cl);
	return rc;
}
