/* khappliance: build a stateless RAM-disk appliance from the host's root
 * file system (docs/appliances.md).  Exit 0, 1 when it could not be made,
 * 2 for a usage error; one line on stderr says why. */
#include "appliance/appliance.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: khappliance [-q] [-o OUT] [--uimage] [--root DIR] [--init FILE]\n"
    "                   [-f SRC[=DEST]]... [-d DIR]... [-u USER]... [-r RECIPE] [PROGRAM...]\n"
    "\n"
    "Build a gzip'd newc cpio appliance (a node's ramdisk) from the root file system.\n"
    "  PROGRAM        a name in the root's PATH or an absolute path in the root; it comes\n"
    "                 with its interpreter and shared libraries (read from its ELF headers)\n"
    "  -f SRC[=DEST]  a file or directory (recursively): SRC absolute is in the root,\n"
    "                 relative is from the current (or the recipe's) directory; DEST is\n"
    "                 where it goes (default: SRC's path, /SRC for a relative one)\n"
    "  -d DIR         an empty directory\n"
    "  -u USER        USER's lines of the root's /etc/passwd and /etc/group\n"
    "  --init FILE    the service script: /init starts it as /etc/kh/service\n"
    "  -r RECIPE      a recipe directory (appliances/NAME) with a file 'recipe': one of the\n"
    "                 arguments above per line, '#' comments\n"
    "  -o OUT         the output file ('-': standard output; default NAME.cpio.gz)\n"
    "  --uimage       wrap the archive in a legacy U-Boot ramdisk header\n"
    "  --root DIR     take files from DIR instead of /\n"
    "  -q             no size line on stderr\n"
    "The same inputs give the same bytes (mtime $SOURCE_DATE_EPOCH or 0).\n";

/* Sizes as the paper gives them: decimal megabytes. */
static void
human(char *buf, size_t len, uint64_t b)
{
	if (b >= 1000000000ull)
		snprintf(buf, len, "%.1f GB", (double)b / 1e9);
	else
		snprintf(buf, len, "%.1f MB", (double)b / 1e6);
}

int
main(int argc, char **argv)
{
	struct app_spec s;
	struct app_stats st;
	struct app *a = NULL;
	char err[512];
	int rc;

	if ((rc = app_parse_args(argc - 1, argv + 1, &s, err, sizeof(err))) < 0) {
		fprintf(stderr, "khappliance: %s\n", err);
		app_spec_free(&s);
		return rc == -1 ? 2 : 1;
	}
	if (s.help) {
		fputs(usage, stdout);
		app_spec_free(&s);
		return 0;
	}
	const char *out = app_default_out(&s);
	rc = 1;
	if ((a = app_new(s.root, err, sizeof(err))) == NULL) {
		fprintf(stderr, "khappliance: --root %s\n", err);
		goto done;
	}
	for (size_t i = 0; i < s.nitems; i++)
		if (app_add(a, &s.items[i], err, sizeof(err)) < 0) {
			if (s.items[i].base)
				fprintf(stderr, "khappliance: %s: %s\n", s.items[i].where, err);
			else
				fprintf(stderr, "khappliance: %s\n", err);
			goto done;
		}
	if (app_finish(a, err, sizeof(err)) < 0) {
		fprintf(stderr, "khappliance: %s\n", err);
		goto done;
	}
	const char *bn = strrchr(out, '/');
	bn = strcmp(out, "-") == 0 ? (s.recipe ? s.recipe : "appliance") : bn ? bn + 1 : out;
	/* the uImage's name says what it is: the recipe, else the file */
	if (app_write(a, out, s.uimage, s.recipe ? s.recipe : bn, s.mtime, &st, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "khappliance: %s\n", err);
		goto done;
	}
	if (!s.quiet) {
		char sz[32], un[32], ru[32];
		human(sz, sizeof(sz), st.bytes);
		human(un, sizeof(un), st.unpacked);
		human(ru, sizeof(ru), st.rootused);
		double pct = st.rootused ? 100.0 * (double)st.bytes / (double)st.rootused : 0;
		fprintf(stderr,
			"%s: %s (%.2g%% of the %s root file system %s), %llu files, %s unpacked\n",
			bn, sz, pct, ru, s.root ? s.root : "/", (unsigned long long)st.entries, un);
	}
	rc = 0;
done:
	app_free(a);
	app_spec_free(&s);
	return rc;
}
