/* billargs: khbill's options by hand, as args.c does for khget and khctl:
 * options before or after operands, "--" ends them, values attached
 * ("--from=T", "-cPW") or as the next word. */
#include "tools/billargs.h"
#include "common/proto.h"
#include "common/util.h"
#include "tools/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char bill_usage_text[] =
    "usage: khbill [--socket PATH] COMMAND ...\n"
    "  usage -c CRED USER [--from T] [--to T] [--json]   what USER used: one line per resource\n"
    "  usage --operator (USER | --all) [--from T] [--to T] [--json]\n"
    "  export -c CRED USER [-o FILE]                    USER's ledger, signed, for verify\n"
    "  export --operator USER [-o FILE]\n"
    "  verify FILE [--key PUBFILE]                      check an export offline\n"
    "  invoice -c CRED USER [--from T] [--to T] [--plan FILE] [--csv | --json]\n"
    "  invoice --operator USER ...\n"
    "T: unix seconds, or ISO 8601 (2024-05-01, 2024-05-01T13:00[:SS][Z|+HH:MM]; UTC when\n"
    "no offset).  The credential may come from $KH_CRED.  --operator: khd's owner or root,\n"
    "no credential.  verify's key and invoice's plan default to ledger.pub and prices.conf\n"
    "in $KH_DIR, else beside the socket.\n";

static const struct {
	const char *name;
	int cmd;
} cmds[] = {{"usage", BILL_USAGE},
	    {"export", BILL_EXPORT},
	    {"verify", BILL_VERIFY},
	    {"invoice", BILL_INVOICE}};

/* Digits at s, exactly n of them, as a number. */
static int
digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int
bill_parse_time(const char *s, uint64_t *secs, char *err, size_t errlen)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
	const char *p = s;
	uint64_t v;

	if (s == NULL)
		s = p = "";
	if (strchr(s, '-') == NULL && parse_uint(s, 0, (1ULL << 40), &v) == 0) {
		*secs = v;
		return 0;
	}
	if (digits(p, 4, &y) < 0 || p[4] != '-' || digits(p + 5, 2, &mo) < 0 || p[7] != '-' ||
	    digits(p + 8, 2, &d) < 0)
		goto bad;
	p += 10;
	if (*p == 'T' || *p == ' ') {
		if (digits(p + 1, 2, &h) < 0 || p[3] != ':' || digits(p + 4, 2, &mi) < 0)
			goto bad;
		p += 6;
		if (*p == ':') {
			if (digits(p + 1, 2, &sec) < 0)
				goto bad;
			p += 3;
		}
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (digits(p + 1, 2, &oh) < 0)
			goto bad;
		p += 3;
		if (*p == ':')
			p++;
		if (digits(p, 2, &om) < 0)
			goto bad;
		p += 2;
	}
	if (*p != '\0')
		goto bad;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 || oh > 23 ||
	    om > 59)
		goto bad;
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] + (mo == 2 && leap))
		goto bad;
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = sec};
	int64_t t = (int64_t)timegm(&tm) - sign * (int64_t)(oh * 3600 + om * 60);
	if (t < 0)
		goto bad;
	*secs = (uint64_t)t;
	return 0;
bad:
	return seterr(err, errlen,
		      "invalid time '%.40s': give unix seconds or ISO 8601 "
		      "(2024-05-01, 2024-05-01T13:00:00Z, ...+02:00)",
		      s);
}

static const char *
cred_or_env(const char *c)
{
	if (c == NULL)
		c = getenv("KH_CRED");
	return c && *c ? c : NULL;
}

/* What each command accepts, checked after the scan. */
static int
check(struct bill_opts *o, const char *const *ops, int nops, int json, int csv, const char *from,
      const char *to, char *err, size_t errlen)
{
	if (nops == 0)
		return seterr(err, errlen, "no command given (usage, export, verify, invoice)");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(ops[0], cmds[i].name) == 0)
			o->cmd = cmds[i].cmd;
	if (o->cmd == 0)
		return seterr(err, errlen,
			      "unknown command '%.40s' (usage, export, verify, invoice)", ops[0]);
	if (json && csv)
		return seterr(err, errlen, "give --json or --csv, not both");
	if (csv && o->cmd != BILL_INVOICE)
		return seterr(err, errlen, "--csv is for invoice");
	if (json && o->cmd != BILL_USAGE && o->cmd != BILL_INVOICE)
		return seterr(err, errlen, "--json is for usage and invoice");
	o->fmt = json ? BILL_JSON : csv ? BILL_CSV : BILL_TEXT;
	if ((from || to) && o->cmd != BILL_USAGE && o->cmd != BILL_INVOICE)
		return seterr(err, errlen, "--from and --to are for usage and invoice");
	if (from && bill_parse_time(from, &o->from, err, errlen) < 0)
		return -1;
	if (to && bill_parse_time(to, &o->to, err, errlen) < 0)
		return -1;
	o->has_from = from != NULL;
	o->has_to = to != NULL;
	if (from && to && o->from >= o->to)
		return seterr(err, errlen, "--from must come before --to");
	if (o->key && o->cmd != BILL_VERIFY)
		return seterr(err, errlen, "--key is for verify");
	if (o->plan && o->cmd != BILL_INVOICE)
		return seterr(err, errlen, "--plan is for invoice");
	if (o->out && o->cmd != BILL_EXPORT)
		return seterr(err, errlen, "-o is for export");
	if (o->all && o->cmd != BILL_USAGE)
		return seterr(err, errlen, "--all is for usage");
	if (o->cmd == BILL_VERIFY) {
		if (nops != 2)
			return seterr(err, errlen,
				      nops < 2 ? "verify needs the export file"
					       : "verify takes one file");
		if (o->cred || o->operator_)
			return seterr(err, errlen, "verify needs no credential: it is offline");
		o->file = ops[1];
		return 0;
	}
	if (nops > 2)
		return seterr(err, errlen, "unexpected argument '%.40s'", ops[2]);
	o->user = nops == 2 ? ops[1] : NULL;
	if (o->all && !o->operator_)
		return seterr(err, errlen, "--all needs --operator");
	if (o->all && o->user)
		return seterr(err, errlen, "give a principal or --all, not both");
	if (!o->all && o->user == NULL)
		return seterr(err, errlen, "no principal given");
	if (o->user && !valid_name(o->user))
		return seterr(err, errlen,
			      "invalid principal name '%.40s' (1-32 of A-Z a-z 0-9 _ . -)",
			      o->user);
	if (o->operator_) {
		if (o->cred)
			return seterr(err, errlen, "--operator takes no credential");
	} else if ((o->cred = cred_or_env(o->cred)) == NULL) {
		return seterr(err, errlen,
			      "no credential: give -c CRED (or set KH_CRED), or --operator");
	}
	return 0;
}

int
bill_parse(int argc, char *const argv[], struct bill_opts *o, char *err, size_t errlen)
{
	const char *ops[4], *from = NULL, *to = NULL;
	int nops = 0, endopts = 0, json = 0, csv = 0;

	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v;
		if (endopts || a[0] != '-' || a[1] == '\0') {
			if (nops == 4)
				return seterr(err, errlen, "unexpected argument '%.40s'", a);
			ops[nops++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			endopts = 1;
			continue;
		}
		if (a[1] != '-') {
			/* -c CRED, -cCRED, -o FILE, -h */
			char f = a[1];
			if (f == 'h' && a[2] == '\0') {
				o->help = 1;
				continue;
			}
			if (f != 'c' && f != 'o')
				return seterr(err, errlen, "unknown option '%.40s'", a);
			if (a[2])
				v = a + 2;
			else if (i + 1 < argc)
				v = argv[++i];
			else
				return seterr(err, errlen, "option -%c needs a value", f);
			*(f == 'c' ? &o->cred : &o->out) = v;
			continue;
		}
		const char *name = a + 2;
		size_t nl = strcspn(name, "=");
#define IS(s) (strlen(s) == nl && strncmp(name, s, nl) == 0)
		if (IS("json") || IS("csv") || IS("operator") || IS("all") || IS("help")) {
			if (name[nl] == '=')
				return seterr(err, errlen, "option --%.*s takes no value", (int)nl,
					      name);
			if (IS("json"))
				json = 1;
			else if (IS("csv"))
				csv = 1;
			else if (IS("operator"))
				o->operator_ = 1;
			else if (IS("all"))
				o->all = 1;
			else
				o->help = 1;
			continue;
		}
		const char **dst = IS("from")	  ? &from
				   : IS("to")	  ? &to
				   : IS("socket") ? &o->socket
				   : IS("key")	  ? &o->key
				   : IS("plan")	  ? &o->plan
				   : IS("output") ? &o->out
						  : NULL;
#undef IS
		if (dst == NULL)
			return seterr(err, errlen, "unknown option '%.40s'", a);
		if (name[nl] == '=')
			v = name + nl + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return seterr(err, errlen, "option --%.*s needs a value", (int)nl, name);
		if (*v == '\0')
			return seterr(err, errlen, "option --%.*s needs a value", (int)nl, name);
		*dst = v;
	}
	if (o->help)
		return 0;
	return check(o, ops, nops, json, csv, from, to, err, errlen);
}

static void
who(const struct bill_opts *o, struct sbuf *req)
{
	if (o->user)
		proto_arg(req, "user", o->user);
	if (o->operator_)
		proto_arg(req, "operator", "1");
	else
		proto_arg(req, "cred", o->cred);
}

static void
range(const struct bill_opts *o, struct sbuf *req)
{
	char v[32];
	if (o->has_from) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)o->from);
		proto_arg(req, "from", v);
	}
	if (o->has_to) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)o->to);
		proto_arg(req, "to", v);
	}
}

void
bill_req_usage(const struct bill_opts *o, struct sbuf *req)
{
	proto_begin(req, "usage");
	who(o, req);
	if (o->all)
		proto_arg(req, "all", "1");
	range(o, req);
	if (o->fmt == BILL_JSON)
		proto_arg(req, "format", "json");
	proto_end(req);
}

static void
part(uint64_t after, uint64_t max, struct sbuf *req)
{
	char v[32];
	if (after) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)after);
		proto_arg(req, "after", v);
	}
	snprintf(v, sizeof(v), "%llu", (unsigned long long)max);
	proto_arg(req, "max", v);
}

void
bill_req_export(const struct bill_opts *o, uint64_t after, uint64_t max, struct sbuf *req)
{
	proto_begin(req, "export");
	who(o, req);
	part(after, max, req);
	proto_end(req);
}

void
bill_req_records(const struct bill_opts *o, uint64_t after, uint64_t max, struct sbuf *req)
{
	proto_begin(req, "records");
	who(o, req);
	range(o, req);
	part(after, max, req);
	proto_end(req);
}

int
bill_default_path(const char *sockopt, const char *name, char *buf, size_t len)
{
	const char *dir = getenv("KH_DIR");
	int n;
	if (dir && *dir) {
		n = snprintf(buf, len, "%s/%s", dir, name);
	} else {
		const char *sock = client_socket_path(sockopt), *slash = strrchr(sock, '/');
		if (slash == NULL)
			n = snprintf(buf, len, "%s", name);
		else
			n = snprintf(buf, len, "%.*s/%s", (int)(slash - sock), sock, name);
	}
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

uint64_t
bill_line_seq(const char *line)
{
	uint64_t v;
	char num[24];
	if (strncmp(line, "r ", 2) != 0)
		return 0;
	const char *p = strchr(line + 2, ' ');
	if (p == NULL)
		return 0;
	size_t n = strcspn(p + 1, " \n");
	if (n == 0 || n >= sizeof(num))
		return 0;
	memcpy(num, p + 1, n);
	num[n] = '\0';
	return parse_uint(num, 1, UINT64_MAX, &v) == 0 ? v : 0;
}
