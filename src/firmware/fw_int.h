/* fw_int: what fw.c (environment, parser, interpreter) and fw_cmd.c (the
 * commands) share.  Not for use outside src/firmware/. */
#ifndef KH_FW_INT_H
#define KH_FW_INT_H

#include "firmware/fw.h"

#include <stdarg.h>
#include <stdint.h>

struct fw {
	struct fw_machine m;
	/* Environment: "name=value\0" entries back to back, in the order
	 * printenv shows.  env is NULL until the first change: until then the
	 * monitor reads the defaults, so a new monitor costs one allocation. */
	char *def;
	uint32_t deflen;
	char *env;
	uint32_t envlen, envcap;
	uint8_t mode;	       /* enum fw_mode */
	uint8_t silent;	       /* silence: no output at all */
	uint8_t status;	       /* $?: exit status of the last command */
	uint8_t abort;	       /* stop the current line (step limit, reset, boot) */
	uint8_t mrw_failed;    /* a write of the pending mrw failed */
	uint8_t resume_follow; /* operator after the mrw (FOLLOW_*) */
	uint32_t steps;	       /* commands run by the current line */
	uint64_t mrw_addr, mrw_total, mrw_got;
	char *resume; /* rest of the console line after mrw (NULL: none) */
	size_t resume_len;
};

struct fw_cmd {
	const char *name;
	int (*fn)(struct fw *, int argc, char **argv, int depth);
	const char *args;  /* usage after the name */
	const char *brief; /* one line for help */
};

/* fw_cmd.c */
const struct fw_cmd *fw_cmd_find(const char *name, int *ambiguous);
extern const struct fw_cmd fw_cmds[];
extern const size_t fw_ncmds;

/* fw.c */
void fw_out(struct fw *, const char *s, size_t n);
void fw_puts(struct fw *, const char *s);
void fw_printf(struct fw *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run a script (console line or variable) at run depth depth. */
int fw_run_script(struct fw *, const char *s, size_t len, int depth);
/* The whole environment as entries (see struct fw). */
const char *fw_env_data(const struct fw *, uint32_t *len);
int fw_env_set(struct fw *, const char *name, const char *val, int quiet);

#endif
