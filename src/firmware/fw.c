/* fw: the monitor's core: the environment, the hush-like interpreter of
 * console lines (quotes, $var, ;, &&, || as U-Boot's hush runs them) and the
 * data mode of mrw.  The commands themselves are in fw_cmd.c. */
#include "firmware/fw_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes one command may grow to once its variables are expanded. */
#define FW_CMD_MAX (FW_ENV_SIZE + FW_LINE_MAX)

enum { FOLLOW_END, FOLLOW_SEQ, FOLLOW_AND, FOLLOW_OR };

/* ------------------------------------------------------------------ */
/* Output */

void
fw_out(struct fw *fw, const char *s, size_t n)
{
	if (fw->silent || n == 0 || fw->m.out == NULL)
		return;
	fw->m.out(fw->m.ctx, s, n);
}

void
fw_puts(struct fw *fw, const char *s)
{
	fw_out(fw, s, strlen(s));
}

void
fw_printf(struct fw *fw, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (fw->silent || fw->m.out == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(buf)) {
		fw_out(fw, buf, (size_t)n);
		return;
	}
	char *p = malloc((size_t)n + 1);
	if (p == NULL) {
		fw_out(fw, buf, sizeof(buf) - 1);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	fw_out(fw, p, (size_t)n);
	free(p);
}

void
fw_prompt(struct fw *fw)
{
	fw_puts(fw, FW_PROMPT);
}

/* ------------------------------------------------------------------ */
/* Environment */

const char *
fw_env_data(const struct fw *fw, uint32_t *len)
{
	if (fw->env != NULL) {
		*len = fw->envlen;
		return fw->env;
	}
	*len = fw->deflen;
	return fw->def;
}

/* Offset of the entry called name (nlen bytes, no '=') in buf, or -1. */
static long
env_find(const char *buf, uint32_t len, const char *name, size_t nlen)
{
	uint32_t i = 0;

	while (i < len) {
		size_t elen = strlen(buf + i);
		if (elen > nlen && buf[i + nlen] == '=' && memcmp(buf + i, name, nlen) == 0)
			return (long)i;
		i += (uint32_t)elen + 1;
	}
	return -1;
}

static const char *
env_get(const struct fw *fw, const char *name, size_t nlen)
{
	uint32_t len;
	const char *buf = fw_env_data(fw, &len);

	if (nlen == 0 || memchr(name, '=', nlen) != NULL)
		return NULL;
	long off = env_find(buf, len, name, nlen);
	return off < 0 ? NULL : buf + off + nlen + 1;
}

const char *
fw_getenv(const struct fw *fw, const char *name)
{
	return env_get(fw, name, strlen(name));
}

/* Make fw->env a private copy with room for need bytes. */
static int
env_reserve(struct fw *fw, uint32_t need)
{
	if (need > FW_ENV_SIZE)
		return -1;
	if (fw->env == NULL) {
		uint32_t cap = (need > fw->deflen ? need : fw->deflen) + 128;
		cap = (cap + 63) & ~63u;
		if (cap > FW_ENV_SIZE)
			cap = FW_ENV_SIZE;
		char *p = malloc(cap);
		if (p == NULL)
			return -1;
		memcpy(p, fw->def, fw->deflen);
		fw->env = p;
		fw->envlen = fw->deflen;
		fw->envcap = cap;
		return 0;
	}
	if (need <= fw->envcap)
		return 0;
	uint32_t cap = fw->envcap * 2;
	if (cap < need)
		cap = need;
	if (cap > FW_ENV_SIZE)
		cap = FW_ENV_SIZE;
	char *p = realloc(fw->env, cap);
	if (p == NULL)
		return -1;
	fw->env = p;
	fw->envcap = cap;
	return 0;
}

/* Set (val != NULL) or delete a variable.  Never half-applies: when the
 * new value does not fit, the old one stays. */
static int
env_set(struct fw *fw, const char *name, const char *val, int quiet)
{
	size_t nlen = strlen(name), vlen = val ? strlen(val) : 0;
	uint32_t len;
	const char *buf;
	long off;

	if (nlen == 0) {
		if (!quiet)
			fw_puts(fw, "## Error: empty variable name\n");
		return -1;
	}
	if (strchr(name, '=') != NULL) {
		if (!quiet)
			fw_printf(fw, "## Error: illegal character '=' in variable name \"%s\"\n",
				  name);
		return -1;
	}
	buf = fw_env_data(fw, &len);
	off = env_find(buf, len, name, nlen);
	if (off < 0 && val == NULL)
		return 0;
	size_t old = off < 0 ? 0 : strlen(buf + off) + 1;
	size_t need = val ? nlen + vlen + 2 : 0;
	if (len - old + need > FW_ENV_SIZE) {
		if (!quiet)
			fw_printf(fw, "## Error: environment overflow, \"%s\" not set\n", name);
		return -1;
	}
	if (env_reserve(fw, (uint32_t)(len - old + need)) == -1) {
		if (!quiet)
			fw_puts(fw, "## Error: out of memory\n");
		return -1;
	}
	if (off >= 0) {
		memmove(fw->env + off, fw->env + off + old, fw->envlen - (size_t)off - old);
		fw->envlen -= (uint32_t)old;
	}
	if (val != NULL) {
		char *p = fw->env + fw->envlen;
		memcpy(p, name, nlen);
		p[nlen] = '=';
		memcpy(p + nlen + 1, val, vlen + 1);
		fw->envlen += (uint32_t)need;
	}
	return 0;
}

/* name and val may point into the environment itself (fw_getenv's
 * answers); copy them before the entries move. */
int
fw_env_set(struct fw *fw, const char *name, const char *val, int quiet)
{
	char *n2 = NULL, *v2 = NULL;
	int r;

	if (fw->env != NULL) {
		const char *lo = fw->env, *hi = fw->env + fw->envcap;
		if (name >= lo && name < hi && (n2 = strdup(name)) == NULL)
			return -1;
		if (val != NULL && val >= lo && val < hi && (v2 = strdup(val)) == NULL) {
			free(n2);
			return -1;
		}
	}
	r = env_set(fw, n2 ? n2 : name, v2 ? v2 : val, quiet);
	free(n2);
	free(v2);
	return r;
}

int
fw_setenv(struct fw *fw, const char *name, const char *val)
{
	return fw_env_set(fw, name, val, 1);
}

/* Appends "name=value\0" (value, or the number v when value is NULL) to
 * b; plain copies, no printf: a facility creates a monitor per node. */
struct envb {
	char buf[FW_ENV_SIZE];
	size_t len;
	int full;
};

static void
envb_add(struct envb *b, const char *name, const char *value, uint64_t v)
{
	char num[24], *p = num + sizeof(num);
	size_t nlen = strlen(name), vlen;

	if (value == NULL) {
		*--p = '\0';
		do
			*--p = (char)('0' + v % 10);
		while ((v /= 10) != 0);
		value = p;
	}
	vlen = strlen(value);
	if (b->full || nlen + vlen + 2 > sizeof(b->buf) - b->len) {
		b->full = 1;
		return;
	}
	memcpy(b->buf + b->len, name, nlen);
	b->buf[b->len + nlen] = '=';
	memcpy(b->buf + b->len + nlen + 1, value, vlen + 1);
	b->len += nlen + vlen + 2;
}

static void
hex(char out[20], uint64_t v)
{
	char tmp[16];
	int n = 0;

	do
		tmp[n++] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) != 0);
	out[0] = '0';
	out[1] = 'x';
	for (int i = 0; i < n; i++)
		out[2 + i] = tmp[n - 1 - i];
	out[2 + n] = '\0';
}

/* The default environment: where things load, how kboot boots them, and
 * what the node is (the variables the original's scripts read). */
static int
make_defaults(const struct fw_machine *m, const struct fw_node_info *info, char **out,
	      uint32_t *outlen)
{
	struct envb b;
	char a[24], name[32] = "bg_eth";

	if (info->neth > FW_MAX_ETH || (info->neth > 0 && info->netid == NULL))
		return -1;
	b.len = 0;
	b.full = 0;
	envb_add(&b, "bootdelay", "-1", 0);
	hex(a, m->mem_base);
	envb_add(&b, "loadaddr", a, 0);
	hex(a, m->mem_base + 0x1000000);
	envb_add(&b, "ramfsaddr", a, 0);
	envb_add(&b, "kboot", "bootm $loadaddr $ramfsaddr", 0);
	if (info->bootargs != NULL)
		envb_add(&b, "bootargs", info->bootargs, 0);
	envb_add(&b, "ver", FW_VERSION, 0);
	envb_add(&b, "bgp_rank", NULL, info->rank);
	if (info->uni != NULL)
		envb_add(&b, "uni", info->uni, 0);
	if (info->name != NULL)
		envb_add(&b, "hostname", info->name, 0);
	if (info->eth0ip != NULL)
		envb_add(&b, "eth0ip", info->eth0ip, 0);
	envb_add(&b, "bg_num_netids", NULL, info->neth);
	for (unsigned int k = 0; k < info->neth; k++) {
		char *p = name + 6;
		if (k >= 100)
			*p++ = (char)('0' + k / 100);
		if (k >= 10)
			*p++ = (char)('0' + k / 10 % 10);
		*p++ = (char)('0' + k % 10);
		memcpy(p, "_netid", 7);
		envb_add(&b, name, NULL, info->netid[k]);
	}
	if (b.full || (*out = malloc(b.len)) == NULL)
		return -1;
	memcpy(*out, b.buf, b.len);
	*outlen = (uint32_t)b.len;
	return 0;
}

struct fw *
fw_new(const struct fw_machine *m, const struct fw_node_info *info)
{
	struct fw *fw;

	if (m == NULL || info == NULL || m->read == NULL || m->write == NULL)
		return NULL;
	if ((fw = calloc(1, sizeof(*fw))) == NULL)
		return NULL;
	fw->m = *m;
	if (make_defaults(m, info, &fw->def, &fw->deflen) == -1) {
		free(fw);
		return NULL;
	}
	fw->mode = FW_MODE_CMD;
	return fw;
}

void
fw_free(struct fw *fw)
{
	if (fw == NULL)
		return;
	free(fw->def);
	free(fw->env);
	free(fw->resume);
	free(fw);
}

int
fw_set_info(struct fw *fw, const struct fw_node_info *info)
{
	char *def;
	uint32_t deflen;

	if (make_defaults(&fw->m, info, &def, &deflen) == -1)
		return -1;
	if (fw->env != NULL) {
		/* The principal's own variables stay; the node's description
		 * is replaced (all or nothing). */
		char *save = malloc(fw->envlen ? fw->envlen : 1);
		uint32_t savelen = fw->envlen;
		if (save == NULL) {
			free(def);
			return -1;
		}
		memcpy(save, fw->env, fw->envlen);
		static const char *const opt[] = {"uni", "hostname", "eth0ip"};
		const char *optval[] = {info->uni, info->name, info->eth0ip};
		char name[32], val[32];
		int bad = 0;
		snprintf(val, sizeof(val), "%llu", (unsigned long long)info->rank);
		bad |= env_set(fw, "bgp_rank", val, 1);
		for (size_t i = 0; i < 3; i++)
			bad |= env_set(fw, opt[i], optval[i], 1);
		snprintf(val, sizeof(val), "%u", info->neth);
		bad |= env_set(fw, "bg_num_netids", val, 1);
		for (unsigned int k = 0; k < FW_MAX_ETH; k++) {
			snprintf(name, sizeof(name), "bg_eth%u_netid", k);
			if (k < info->neth)
				snprintf(val, sizeof(val), "%u", info->netid[k]);
			bad |= env_set(fw, name, k < info->neth ? val : NULL, 1);
		}
		if (bad) {
			memcpy(fw->env, save, savelen);
			fw->envlen = savelen;
			free(save);
			free(def);
			return -1;
		}
		free(save);
	}
	free(fw->def);
	fw->def = def;
	fw->deflen = deflen;
	return 0;
}

void
fw_reset(struct fw *fw)
{
	free(fw->env);
	fw->env = NULL;
	fw->envlen = fw->envcap = 0;
	free(fw->resume);
	fw->resume = NULL;
	fw->resume_len = 0;
	fw->mode = FW_MODE_CMD;
	fw->silent = 0;
	fw->status = 0;
	fw->abort = 0;
	fw->mrw_failed = 0;
	fw->mrw_addr = fw->mrw_total = fw->mrw_got = 0;
}

enum fw_mode
fw_mode(const struct fw *fw)
{
	return (enum fw_mode)fw->mode;
}

/* ------------------------------------------------------------------ */
/* Words of one command */

struct words {
	char *buf;
	size_t len, cap;
	size_t start;
	int inword;
	int argc;
	int err; /* 1: too long, 2: too many words, 3: out of memory */
	size_t off[FW_MAXARGS];
	char *argv[FW_MAXARGS + 1];
};

static void
w_reset(struct words *w)
{
	w->len = 0;
	w->inword = 0;
	w->argc = 0;
	w->err = 0;
}

static void
w_add(struct words *w, const char *s, size_t n)
{
	if (w->err)
		return;
	if (w->len + n + 1 > FW_CMD_MAX) {
		w->err = 1;
		return;
	}
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n + 1)
			cap *= 2;
		char *p = realloc(w->buf, cap);
		if (p == NULL) {
			w->err = 3;
			return;
		}
		w->buf = p;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void
w_begin(struct words *w)
{
	if (w == NULL || w->inword)
		return;
	w->inword = 1;
	w->start = w->len;
}

static void
w_putc(struct words *w, char c)
{
	if (w == NULL)
		return;
	w_begin(w);
	w_add(w, &c, 1);
}

static void
w_end(struct words *w)
{
	if (w == NULL || !w->inword)
		return;
	w->inword = 0;
	w_add(w, "", 1);
	if (w->err)
		return;
	if (w->argc == FW_MAXARGS) {
		w->err = 2;
		return;
	}
	w->off[w->argc++] = w->start;
}

/* A variable's value: inside double quotes it is part of one word, outside
 * it is split on blanks (an empty one makes no word at all). */
static void
w_value(struct words *w, const char *v, int quoted)
{
	if (w == NULL || v == NULL)
		return;
	if (quoted) {
		w_begin(w);
		w_add(w, v, strlen(v));
		return;
	}
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\n')
			w_end(w);
		else
			w_putc(w, *v);
	}
}

static char **
w_argv(struct words *w)
{
	for (int i = 0; i < w->argc; i++)
		w->argv[i] = w->buf + w->off[i];
	w->argv[w->argc] = NULL;
	return w->argv;
}

/* ------------------------------------------------------------------ */
/* Scanner */

struct scan {
	struct fw *fw;	 /* NULL: only check the syntax */
	struct words *w; /* NULL likewise */
	const char *s;
	size_t len, i;
	int rawword;	 /* inside a word as written (before expansion) */
	int nwords;	 /* words as written */
	const char *err; /* syntax error */
};

static void
raw_begin(struct scan *sc)
{
	if (!sc->rawword) {
		sc->rawword = 1;
		sc->nwords++;
	}
}

static void
raw_end(struct scan *sc)
{
	sc->rawword = 0;
	w_end(sc->w);
}

/* At a '$': $name, ${name} or $?; anything else is a plain '$'. */
static int
scan_dollar(struct scan *sc, int quoted)
{
	const char *s = sc->s, *name;
	size_t j = sc->i + 1, nlen;
	char status[4];

	if (j < sc->len && (isalpha((unsigned char)s[j]) || s[j] == '_')) {
		name = s + j;
		while (j < sc->len && (isalnum((unsigned char)s[j]) || s[j] == '_'))
			j++;
		nlen = (size_t)(s + j - name);
	} else if (j < sc->len && s[j] == '{') {
		const char *end = memchr(s + j + 1, '}', sc->len - j - 1);
		if (end == NULL) {
			sc->err = "syntax error: missing '}'";
			return -1;
		}
		name = s + j + 1;
		nlen = (size_t)(end - name);
		j = (size_t)(end - s) + 1;
	} else if (j < sc->len && s[j] == '?') {
		name = "?";
		nlen = 1;
		j++;
	} else {
		w_putc(sc->w, '$');
		sc->i = j;
		return 0;
	}
	sc->i = j;
	if (sc->w == NULL)
		return 0;
	if (nlen == 1 && name[0] == '?') {
		snprintf(status, sizeof(status), "%u", sc->fw->status);
		w_value(sc->w, status, quoted);
	} else {
		const char *v = env_get(sc->fw, name, nlen);
		if (quoted)
			w_begin(sc->w);
		w_value(sc->w, v, quoted);
	}
	return 0;
}

/* Scan one command from sc->i: its words (expanded when sc->w is set) and
 * the operator after it.  Returns FOLLOW_*, or -1 with sc->err set. */
static int
scan_cmd(struct scan *sc)
{
	const char *s = sc->s;

	sc->rawword = 0;
	sc->nwords = 0;
	if (sc->w != NULL)
		w_reset(sc->w);
	while (sc->i < sc->len) {
		char c = s[sc->i];
		switch (c) {
		case ' ':
		case '\t':
		case '\r':
			raw_end(sc);
			sc->i++;
			continue;
		case ';':
		case '\n':
			raw_end(sc);
			sc->i++;
			return FOLLOW_SEQ;
		case '&':
		case '|':
			if (sc->i + 1 < sc->len && s[sc->i + 1] == c) {
				raw_end(sc);
				sc->i += 2;
				return c == '&' ? FOLLOW_AND : FOLLOW_OR;
			}
			sc->err = c == '&' ? "syntax error: unexpected '&'"
					   : "syntax error: unexpected '|'";
			return -1;
		case '#':
			if (sc->rawword)
				break;
			while (sc->i < sc->len && s[sc->i] != '\n')
				sc->i++;
			continue;
		case '\'': {
			const char *end = memchr(s + sc->i + 1, '\'', sc->len - sc->i - 1);
			if (end == NULL) {
				sc->err = "syntax error: unterminated quoted string";
				return -1;
			}
			raw_begin(sc);
			w_begin(sc->w);
			if (sc->w != NULL)
				w_add(sc->w, s + sc->i + 1, (size_t)(end - s) - sc->i - 1);
			sc->i = (size_t)(end - s) + 1;
			continue;
		}
		case '"':
			raw_begin(sc);
			w_begin(sc->w);
			sc->i++;
			while (sc->i < sc->len && s[sc->i] != '"') {
				char d = s[sc->i];
				if (d == '\\' && sc->i + 1 < sc->len &&
				    strchr("\"\\$", s[sc->i + 1]) != NULL) {
					w_putc(sc->w, s[sc->i + 1]);
					sc->i += 2;
				} else if (d == '$') {
					if (scan_dollar(sc, 1) == -1)
						return -1;
				} else {
					w_putc(sc->w, d);
					sc->i++;
				}
			}
			if (sc->i >= sc->len) {
				sc->err = "syntax error: unterminated quoted string";
				return -1;
			}
			sc->i++;
			continue;
		case '\\':
			raw_begin(sc);
			if (sc->i + 1 < sc->len) {
				w_putc(sc->w, s[sc->i + 1]);
				sc->i += 2;
			} else {
				w_putc(sc->w, '\\');
				sc->i++;
			}
			continue;
		case '$':
			raw_begin(sc);
			if (scan_dollar(sc, 0) == -1)
				return -1;
			continue;
		default:
			break;
		}
		raw_begin(sc);
		w_putc(sc->w, c);
		sc->i++;
	}
	raw_end(sc);
	return FOLLOW_END;
}

/* The whole script is checked before any of it runs, as hush parses a line
 * before running it: a broken line does nothing. */
static const char *
check_syntax(const char *s, size_t len)
{
	struct scan sc = {.s = s, .len = len};
	int prev = FOLLOW_SEQ;

	for (;;) {
		int follow = scan_cmd(&sc);
		if (follow == -1)
			return sc.err;
		if (sc.nwords == 0 && (follow == FOLLOW_AND || follow == FOLLOW_OR))
			return follow == FOLLOW_AND ? "syntax error near '&&'"
						    : "syntax error near '||'";
		if (sc.nwords == 0 && (prev == FOLLOW_AND || prev == FOLLOW_OR))
			return prev == FOLLOW_AND ? "syntax error: nothing after '&&'"
						  : "syntax error: nothing after '||'";
		if (follow == FOLLOW_END)
			return NULL;
		prev = follow;
	}
}

/* ------------------------------------------------------------------ */
/* Interpreter */

static int
exec_cmd(struct fw *fw, int argc, char **argv, int depth)
{
	const struct fw_cmd *c;
	int ambiguous;

	if (++fw->steps > FW_MAX_STEPS) {
		fw_printf(fw, "## Error: more than %d commands in one line, stopped\n",
			  FW_MAX_STEPS);
		fw->abort = 1;
		return 1;
	}
	if ((c = fw_cmd_find(argv[0], &ambiguous)) == NULL) {
		fw_printf(fw, "Unknown command '%s' - try 'help'\n", argv[0]);
		return 1;
	}
	return c->fn(fw, argc, argv, depth) == 0 ? 0 : 1;
}

/* Run s[pos..len).  As in U-Boot's hush, a command whose status breaks an
 * && (or satisfies an ||) makes the rest of its and/or list be skipped, up
 * to the next ';' or newline.  Returns the status of the last command run
 * (last when none is). */
static int
exec_from(struct fw *fw, const char *s, size_t len, size_t pos, int skip, int depth, int last)
{
	struct words w = {0};
	struct scan sc = {.fw = fw, .s = s, .len = len, .i = pos};

	while (!fw->abort) {
		sc.w = skip ? NULL : &w;
		int follow = scan_cmd(&sc);
		if (follow == -1) { /* checked before: cannot happen */
			fw_printf(fw, "%s\n", sc.err);
			last = 1;
			break;
		}
		if (skip) {
			if (follow != FOLLOW_AND && follow != FOLLOW_OR)
				skip = 0;
		} else if (sc.nwords > 0) {
			int status;
			if (w.err == 2) {
				fw_printf(fw, "## Error: more than %d arguments\n", FW_MAXARGS);
				status = 1;
			} else if (w.err) {
				fw_puts(fw, "## Error: command too long after expansion\n");
				status = 1;
			} else if (w.argc == 0) {
				status = 0; /* only empty variables */
			} else {
				status = exec_cmd(fw, w.argc, w_argv(&w), depth);
			}
			fw->status = (uint8_t)status;
			last = status;
			if (fw->mode == FW_MODE_DATA && depth == 0) {
				/* mrw: the rest of the line runs once the
				 * bytes are in (fw_mrw_done). */
				if (follow != FOLLOW_END && sc.i < len) {
					fw->resume = malloc(len - sc.i);
					if (fw->resume == NULL) {
						fw_puts(fw, "## Error: out of memory, rest of "
							    "line dropped\n");
					} else {
						memcpy(fw->resume, s + sc.i, len - sc.i);
						fw->resume_len = len - sc.i;
						fw->resume_follow = (uint8_t)follow;
					}
				}
				break;
			}
			if ((status == 0 && follow == FOLLOW_OR) ||
			    (status != 0 && follow == FOLLOW_AND))
				skip = 1;
		}
		if (follow == FOLLOW_END)
			break;
	}
	free(w.buf);
	return last;
}

int
fw_run_script(struct fw *fw, const char *s, size_t len, int depth)
{
	const char *err = check_syntax(s, len);

	if (err != NULL) {
		fw_printf(fw, "%s\n", err);
		fw->status = 1;
		return 1;
	}
	return exec_from(fw, s, len, 0, 0, depth, 0);
}

/* After a line (or the rest of one) ran: the prompt, and what happened. */
static int
line_done(struct fw *fw, int status)
{
	if (fw->mode == FW_MODE_DATA)
		return FW_DATA;
	if (fw->mode == FW_MODE_BOOTED)
		return FW_BOOTED;
	fw_prompt(fw);
	return status;
}

int
fw_input_line(struct fw *fw, const char *line, size_t len)
{
	if (fw->mode != FW_MODE_CMD)
		return -1;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	fw->steps = 0;
	fw->abort = 0;
	if (len > FW_LINE_MAX) {
		fw_printf(fw, "## Error: line too long (max %d bytes)\n", FW_LINE_MAX);
		fw->status = 1;
		return line_done(fw, 1);
	}
	if (memchr(line, '\0', len) != NULL) {
		fw_puts(fw, "## Error: NUL byte in command line\n");
		fw->status = 1;
		return line_done(fw, 1);
	}
	int status = fw_run_script(fw, line, len, 0);
	return line_done(fw, status);
}

/* ------------------------------------------------------------------ */
/* mrw data mode */

static int
mrw_finish(struct fw *fw, int ok, const char *why)
{
	int status;

	if (ok && !fw->mrw_failed && fw->mrw_got == fw->mrw_total) {
		fw_puts(fw, "Done.\n");
		status = 0;
	} else {
		if (fw->mrw_failed)
			why = "write to memory failed";
		fw_printf(fw, "\nmrw: %s after %llu of %llu bytes\n", why,
			  (unsigned long long)fw->mrw_got, (unsigned long long)fw->mrw_total);
		status = 1;
	}
	fw->mode = FW_MODE_CMD;
	fw->status = (uint8_t)status;
	fw->mrw_failed = 0;

	char *rest = fw->resume;
	size_t restlen = fw->resume_len;
	int follow = fw->resume_follow;
	fw->resume = NULL;
	fw->resume_len = 0;
	if (rest != NULL) {
		int skip =
		    (status == 0 && follow == FOLLOW_OR) || (status != 0 && follow == FOLLOW_AND);
		fw->steps = 0;
		fw->abort = 0;
		status = exec_from(fw, rest, restlen, 0, skip, 0, status);
		free(rest);
	}
	return line_done(fw, status);
}

int
fw_mrw_pending(const struct fw *fw, uint64_t *addr, uint64_t *count)
{
	if (fw->mode != FW_MODE_DATA)
		return 0;
	if (addr != NULL)
		*addr = fw->mrw_addr + fw->mrw_got;
	if (count != NULL)
		*count = fw->mrw_total - fw->mrw_got;
	return 1;
}

int
fw_mrw_done(struct fw *fw, int ok, uint64_t got, const char *why)
{
	if (fw->mode != FW_MODE_DATA)
		return -1;
	if (got > fw->mrw_total - fw->mrw_got)
		got = fw->mrw_total - fw->mrw_got;
	fw->mrw_got += got;
	if (why == NULL)
		why = ok ? "short read" : "failed";
	return mrw_finish(fw, ok, why);
}

size_t
fw_input_bytes(struct fw *fw, const void *p, size_t n)
{
	if (fw->mode != FW_MODE_DATA)
		return 0;
	uint64_t want = fw->mrw_total - fw->mrw_got;
	size_t take = (uint64_t)n < want ? n : (size_t)want;
	if (take > 0 && !fw->mrw_failed &&
	    fw->m.write(fw->m.ctx, fw->mrw_addr + fw->mrw_got, p, take) == -1)
		fw->mrw_failed = 1; /* keep eating the bytes: they are not commands */
	fw->mrw_got += take;
	if (fw->mrw_got == fw->mrw_total)
		mrw_finish(fw, 1, "write to memory failed");
	return take;
}
