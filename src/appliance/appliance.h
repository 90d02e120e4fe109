/* appliance: build a stateless RAM-disk appliance (gzip'd newc cpio, bare
 * or in a legacy uImage) from a root file system: programs with their ELF
 * closure, named files and directories, an /init and a service script. */
#ifndef KH_APPLIANCE_H
#define KH_APPLIANCE_H

#include <stddef.h>
#include <stdint.h>

/* What an argument asks for.  base is the directory relative paths are
 * taken from (NULL: the current directory). */
enum app_item_kind {
	APP_PROGRAM, /* PROGRAM: a name looked up in the root's PATH, or a path */
	APP_FILE,    /* -f SRC[=DEST] */
	APP_DIR,     /* -d DIR: an empty directory */
	APP_USER,    /* -u USER: the user's lines of the root's passwd and group */
	APP_INIT,    /* --init FILE: the service script, /etc/kh/service */
	APP_KMOD     /* --kmod KVER: the modules a vm node's NICs need, from
			/lib/modules/KVER, and /etc/kh/modules, their load order */
};

struct app_item {
	enum app_item_kind kind;
	char *arg;
	char *base;
	char *where; /* "recipe:LINE" or "argument N", for messages */
};

/* A parsed command line, recipes expanded in place. */
struct app_spec {
	char *out;	/* -o OUT ("-": standard output); NULL: the default */
	char *root;	/* --root DIR, default "/" */
	char *recipe;	/* -r: the recipe's name (its directory's basename) */
	int uimage;	/* --uimage */
	int quiet;	/* -q: no size line */
	int help;	/* -h, --help */
	uint32_t mtime; /* $SOURCE_DATE_EPOCH, or 0 */
	struct app_item *items;
	size_t nitems;
};

/* Parse khappliance's arguments (argv[0] is the first argument, not the
 * program).  mtime comes from SOURCE_DATE_EPOCH when set.  Returns 0; -1
 * for a usage error (bad option, bad recipe line); -2 when a recipe cannot
 * be read.  err then holds one line. */
int app_parse_args(int argc, char *const argv[], struct app_spec *s, char *err, size_t errlen);
void app_spec_free(struct app_spec *s);
/* The output name when -o is not given: NAME.cpio.gz (NAME.uimg with
 * --uimage) for a recipe, appliance.cpio.gz otherwise.  Static storage in s. */
const char *app_default_out(struct app_spec *s);

struct app;

/* An empty appliance over the root file system at root ("/" if NULL). */
struct app *app_new(const char *root, char *err, size_t errlen);
void app_free(struct app *a);
/* Add what one argument asks for (see struct app_item).  Programs and ELF
 * files bring their interpreter and DT_NEEDED libraries, found as the
 * dynamic loader would (DT_RPATH, DT_RUNPATH with $ORIGIN, the root's
 * ld.so.conf, the default directories); symlinks on the way are kept as
 * symlinks.  Returns 0, or -1 with one line in err. */
int app_add(struct app *a, const struct app_item *it, char *err, size_t errlen);
/* Complete the tree: a shell, /init, /etc/passwd and /etc/group, the usual
 * mount points.  Call once, after the last app_add. */
int app_finish(struct app *a, char *err, size_t errlen);

struct app_stats {
	uint64_t entries;  /* archive entries, directories included */
	uint64_t unpacked; /* bytes of data (file contents, link targets) */
	uint64_t bytes;	   /* bytes of the output */
	uint64_t rootused; /* used bytes of the root's file system */
};

/* Write the archive to path ("-": standard output), gzip'd, wrapped in a
 * uImage ramdisk header named name when uimage is set.  Entries are sorted,
 * owned by 0:0, dated mtime, numbered in order, so equal inputs give equal
 * bytes.  The file appears whole or not at all (an unnamed file, linked and
 * renamed once complete).
 * Returns 0, or -1 with one line in err. */
int app_write(struct app *a, const char *path, int uimage, const char *name, uint32_t mtime,
	      struct app_stats *st, char *err, size_t errlen);

/* Walk the tree in archive order; fn gets each entry's path (no leading
 * '/'), mode and, for symlinks, the target.  For tests and listings. */
void app_foreach(struct app *a,
		 void (*fn)(void *ctx, const char *path, uint32_t mode, const char *target),
		 void *ctx);

/* The library directories the root's /etc/ld.so.conf names (includes
 * followed), in order; *n gets their count.  The array belongs to a. */
char *const *app_ldconf(struct app *a, size_t *n);

#endif
