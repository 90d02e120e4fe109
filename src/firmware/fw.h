/* fw: a node's boot monitor, the U-Boot compatible subset the original's tools
 * speak (DESIGN.md "Firmware").  Pure logic: khd runs one per node and the
 * monitor reaches the node's memory, console and boot path only through the
 * callbacks of struct fw_machine.  docs/firmware.md is the user's manual. */
#ifndef KH_FW_H
#define KH_FW_H

#include "common/version.h"
#include <stddef.h>
#include <stdint.h>

#define FW_VERSION   "U-Boot 2008.10 compatible monitor (Kittyhawk for Linux " KH_VERSION ")"
#define FW_PROMPT    "=> "
#define FW_LINE_MAX  1024     /* console line, without its newline */
#define FW_ENV_SIZE  16384    /* bytes of "name=value\0" entries */
#define FW_MAXARGS   64	      /* words of one command after expansion */
#define FW_RUN_DEPTH 16	      /* run inside run inside ... */
#define FW_MAX_STEPS 10000    /* commands one console line may execute */
#define FW_MD_MAX    0x100000 /* bytes one md may display */
#define FW_MAX_ETH   256

/* Supplied by khd for each node.  read, write and out are required; the
 * others may be NULL (boot then fails with a reason, reset only resets the
 * monitor, crc falls back to reading the memory in pieces). */
struct fw_machine {
	void *ctx;
	uint64_t mem_base, mem_size; /* node RAM is [mem_base, mem_base+mem_size) */
	/* Copy RAM; -1 if [addr, addr+len) is not inside RAM. */
	int (*read)(void *ctx, uint64_t addr, void *buf, size_t len);
	int (*write)(void *ctx, uint64_t addr, const void *buf, size_t len);
	/* Boot what was loaded: kaddr is the address of the kernel image (a
	 * verified legacy image, or bytes without a uImage header the backend
	 * must recognise) or 0 for none; rdaddr likewise for the ramdisk.
	 * Returns 0 when the node is booting, or -1 with a one-line reason in
	 * err (e.g. a ct node refuses kernel images). */
	int (*boot)(void *ctx, uint64_t kaddr, uint64_t rdaddr, char *err, size_t errlen);
	/* Wipe memory, stop the node. */
	void (*reset)(void *ctx);
	/* Console output of the monitor. */
	void (*out)(void *ctx, const char *s, size_t n);
	/* Optional: zlib crc32 of [addr, addr+len) into *crc; -1 outside RAM.
	 * Lets khd answer imi/bootm/crc32 from a per-blob cache. */
	int (*crc)(void *ctx, uint64_t addr, uint64_t len, uint32_t *crc);
};

/* What the default environment says about the node (copied by fw_new). */
struct fw_node_info {
	uint64_t rank;	       /* bgp_rank */
	const char *uni;       /* uni; NULL: none */
	const char *name;      /* hostname; NULL: none */
	const char *eth0ip;    /* eth0ip; NULL: none */
	unsigned int neth;     /* bg_num_netids: interfaces eth0 .. eth<neth-1> */
	const uint32_t *netid; /* bg_eth<k>_netid = netid[k] */
	const char *bootargs;  /* bootargs, the kernel command line; NULL: none */
};

/* What the monitor is doing. */
enum fw_mode {
	FW_MODE_CMD,   /* reading command lines */
	FW_MODE_DATA,  /* mrw: the next console bytes are memory */
	FW_MODE_BOOTED /* the node booted: console input belongs to it */
};

/* Results of fw_input_line and fw_mrw_done besides -1 (the monitor was not
 * reading commands) and the last command's exit status (0 success, 1 not). */
#define FW_DATA	  2 /* mrw is waiting for bytes (see fw_mrw_pending) */
#define FW_BOOTED 3 /* bootm started the node */

struct fw;

/* A monitor with the default environment.  The machine and info are
 * copied.  Prints nothing (fw_prompt does).  NULL when out of memory or the
 * description does not fit (neth > FW_MAX_ETH, env over FW_ENV_SIZE). */
struct fw *fw_new(const struct fw_machine *m, const struct fw_node_info *info);
void fw_free(struct fw *);
/* Replace the node description: the defaults used at reset, and the same
 * variables in the current environment.  0, or -1 as for fw_new. */
int fw_set_info(struct fw *, const struct fw_node_info *info);
/* Back to a fresh monitor (defaults, command mode, output on) without
 * calling m->reset: for khd when it resets or stops the node itself. */
void fw_reset(struct fw *);
enum fw_mode fw_mode(const struct fw *);
/* Print the prompt (when khd first connects a console to the monitor). */
void fw_prompt(struct fw *);

/* Execute one console line (a trailing "\n" or "\r\n" is ignored), then
 * print the prompt unless the line left the monitor in data mode or booted
 * the node.  Returns 0 or 1 (last status), FW_DATA, FW_BOOTED, or -1 when
 * the monitor is not in command mode (the line is ignored). */
int fw_input_line(struct fw *, const char *line, size_t len);

/* Data mode.  The caller may take the bytes itself: fw_mrw_pending gives the
 * next address and how many bytes are still expected (1 if in data mode,
 * else 0); after storing them, fw_mrw_done says how many of those it got
 * (ok = 0 for a short read, why says what happened, e.g. "timed out").  It
 * prints the result, leaves data mode and runs the rest of the command line;
 * returns as fw_input_line, -1 if not in data mode. */
int fw_mrw_pending(const struct fw *, uint64_t *addr, uint64_t *count);
int fw_mrw_done(struct fw *, int ok, uint64_t got, const char *why);
/* Or feed the bytes through the monitor (m->write).  Consumes at most what
 * mrw still expects and returns how many; when the last one arrives the mrw
 * completes as with fw_mrw_done (check fw_mode afterwards).  0 when not in
 * data mode. */
size_t fw_input_bytes(struct fw *, const void *p, size_t n);

/* The environment.  fw_setenv with val NULL deletes; 0, or -1 (bad name,
 * environment full).  fw_getenv's answer lives until the next change. */
int fw_setenv(struct fw *, const char *name, const char *val);
const char *fw_getenv(const struct fw *, const char *name);

#endif
