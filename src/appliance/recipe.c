/* recipe: khappliance's command line and its recipes (a directory holding
 * a file "recipe": one argument per line, "#" comments), parsed into one
 * list of items whose relative paths keep the directory they came from. */
#include "appliance/appliance.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_RECIPE_LINE 4096

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

static void
push(struct app_spec *s, enum app_item_kind kind, const char *arg, const char *base,
     const char *where)
{
	struct app_item *v = realloc(s->items, (s->nitems + 1) * sizeof(*v));

	if (v == NULL)
		abort();
	s->items = v;
	v[s->nitems++] =
	    (struct app_item){kind, xstrdup(arg), base ? xstrdup(base) : NULL, xstrdup(where)};
}

void
app_spec_free(struct app_spec *s)
{
	for (size_t i = 0; i < s->nitems; i++) {
		free(s->items[i].arg);
		free(s->items[i].base);
		free(s->items[i].where);
	}
	free(s->items);
	free(s->out);
	free(s->root);
	free(s->recipe);
	memset(s, 0, sizeof(*s));
}

/* The item options, shared by the command line and recipes.  Returns the
 * kind, or -1 when opt is not one of them. */
static int
item_opt(const char *opt)
{
	if (strcmp(opt, "-f") == 0 || strcmp(opt, "--file") == 0)
		return APP_FILE;
	if (strcmp(opt, "-d") == 0 || strcmp(opt, "--dir") == 0)
		return APP_DIR;
	if (strcmp(opt, "-u") == 0 || strcmp(opt, "--user") == 0)
		return APP_USER;
	if (strcmp(opt, "--init") == 0)
		return APP_INIT;
	if (strcmp(opt, "--kmod") == 0)
		return APP_KMOD;
	return -1;
}

static int
read_recipe(struct app_spec *s, const char *arg, char *err, size_t errlen)
{
	char *dir = NULL, *file = NULL, *line = NULL, *real = NULL;
	size_t cap = 0;
	struct stat st;
	FILE *f = NULL;
	int rc = -2, lineno = 0;

	if (s->recipe)
		return seterr(err, errlen, "-r given twice"), -1;
	if (stat(arg, &st) < 0)
		return seterr(err, errlen, "recipe %s: %s", arg, strerror(errno)), -2;
	if (S_ISDIR(st.st_mode)) {
		dir = xstrdup(arg);
		if (asprintf(&file, "%s/recipe", arg) < 0)
			abort();
	} else {
		file = xstrdup(arg);
		const char *sl = strrchr(arg, '/');
		dir = sl ? strndup(arg, (size_t)(sl - arg) + (sl == arg)) : xstrdup(".");
		if (dir == NULL)
			abort();
	}
	if ((f = fopen(file, "re")) == NULL) {
		seterr(err, errlen, "recipe %s: %s", file, strerror(errno));
		goto out;
	}
	/* The recipe's name is its directory's. */
	if ((real = realpath(dir, NULL)) == NULL) {
		seterr(err, errlen, "recipe %s: %s", dir, strerror(errno));
		goto out;
	}
	const char *bn = strrchr(real, '/');
	s->recipe = xstrdup(bn && bn[1] ? bn + 1 : "appliance");
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		char where[PATH_MAX + 32];
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", file, lineno);
		if ((size_t)n > MAX_RECIPE_LINE || strlen(line) != (size_t)n) {
			seterr(err, errlen, "%s: line too long or not text", where);
			rc = -1;
			goto out;
		}
		char *p = line, *end = line + n;
		while (end > p &&
		       (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		p += strspn(p, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		if (*p != '-') {
			if (strpbrk(p, " \t")) {
				seterr(err, errlen, "%s: one program per line, not '%s'", where, p);
				rc = -1;
				goto out;
			}
			push(s, APP_PROGRAM, p, dir, where);
			continue;
		}
		char *val = p + strcspn(p, " \t=");
		if (*val == '=' && strncmp(p, "--", 2) == 0)
			*val++ = '\0';
		else if (*val != '\0') {
			*val++ = '\0';
			val += strspn(val, " \t");
		}
		int kind = item_opt(p);
		if (kind < 0) {
			if (strcmp(p, "-o") == 0 || strcmp(p, "-r") == 0 ||
			    strcmp(p, "--root") == 0 || strcmp(p, "--uimage") == 0 ||
			    strcmp(p, "-q") == 0)
				seterr(err, errlen,
				       "%s: %s belongs on the command line, not in a recipe", where,
				       p);
			else
				seterr(err, errlen, "%s: unknown option '%s'", where, p);
			rc = -1;
			goto out;
		}
		if (*val == '\0') {
			seterr(err, errlen, "%s: %s needs a value", where, p);
			rc = -1;
			goto out;
		}
		push(s, (enum app_item_kind)kind, val, dir, where);
	}
	if (ferror(f)) {
		seterr(err, errlen, "recipe %s: %s", file, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	free(line);
	free(file);
	free(dir);
	free(real);
	return rc;
}

int
app_parse_args(int argc, char *const argv[], struct app_spec *s, char *err, size_t errlen)
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	int opts = 1;

	memset(s, 0, sizeof(*s));
	if (sde && *sde) {
		uint64_t v;
		if (parse_uint(sde, 0, UINT32_MAX, &v) < 0)
			return seterr(err, errlen, "SOURCE_DATE_EPOCH=%s: not a time in seconds",
				      sde);
		s->mtime = (uint32_t)v;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		char where[32], opt[16];
		const char *val = NULL;
		snprintf(where, sizeof(where), "argument %d", i + 1);
		if (!opts || a[0] != '-' || strcmp(a, "-") == 0) {
			push(s, APP_PROGRAM, a, NULL, where);
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts = 0;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			s->help = 1;
			continue;
		}
		if (strcmp(a, "--uimage") == 0) {
			s->uimage = 1;
			continue;
		}
		if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			s->quiet = 1;
			continue;
		}
		/* An option with a value: "-o X", "-oX", "--root X", "--root=X". */
		const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
		if (eq) {
			snprintf(opt, sizeof(opt), "%.*s", (int)(eq - a), a);
			val = eq + 1;
		} else if (a[1] != '-' && a[2] != '\0') {
			snprintf(opt, sizeof(opt), "%.2s", a);
			val = a + 2;
		} else
			snprintf(opt, sizeof(opt), "%s", a);
		int kind = item_opt(opt);
		int known = kind >= 0 || strcmp(opt, "-o") == 0 || strcmp(opt, "--output") == 0 ||
			    strcmp(opt, "-r") == 0 || strcmp(opt, "--recipe") == 0 ||
			    strcmp(opt, "--root") == 0;
		if (!known)
			return seterr(err, errlen, "unknown option '%s' (khappliance -h: usage)",
				      a);
		if (val == NULL) {
			if (i + 1 >= argc)
				return seterr(err, errlen, "%s needs a value", opt);
			val = argv[++i];
		}
		if (*val == '\0')
			return seterr(err, errlen, "%s needs a value", opt);
		if (kind >= 0)
			push(s, (enum app_item_kind)kind, val, NULL, where);
		else if (strcmp(opt, "-o") == 0 || strcmp(opt, "--output") == 0) {
			if (s->out)
				return seterr(err, errlen, "-o given twice");
			s->out = xstrdup(val);
		} else if (strcmp(opt, "--root") == 0) {
			if (s->root)
				return seterr(err, errlen, "--root given twice");
			s->root = xstrdup(val);
		} else {
			int r = read_recipe(s, val, err, errlen);
			if (r < 0)
				return r;
		}
	}
	if (!s->help && s->nitems == 0)
		return seterr(err, errlen,
			      "nothing to put in the appliance (khappliance -h: usage)");
	return 0;
}

const char *
app_default_out(struct app_spec *s)
{
	if (s->out == NULL) {
		const char *n = s->recipe ? s->recipe : "appliance";
		if (asprintf(&s->out, "%s.%s", n, s->uimage ? "uimg" : "cpio.gz") < 0)
			abort();
	}
	return s->out;
}
