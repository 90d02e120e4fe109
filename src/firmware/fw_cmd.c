/* fw_cmd: the monitor's commands, with U-Boot's names, arguments and output
 * (cmd_mem.c, cmd_nvedit.c, cmd_itest.c, cmd_bootm.c) plus the original
 * Kittyhawk's mrw, mketh and silence.  Multi-byte memory values are
 * big-endian, as on the original's PowerPC, so a uImage reads 27051956. */
#include "firmware/fw_int.h"
#include "common/util.h"
#include "image/uimage.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define CHUNK 16384

/* ------------------------------------------------------------------ */
/* Helpers */

static int
usage(struct fw *fw, const char *name)
{
	int amb;
	const struct fw_cmd *c = fw_cmd_find(name, &amb);

	if (c == NULL || c->args[0] == '\0')
		fw_printf(fw, "Usage: %s\n", c ? c->name : name);
	else
		fw_printf(fw, "Usage: %s %s\n", c->name, c->args);
	return 1;
}

static int
get_hex(struct fw *fw, const char *cmd, const char *what, const char *s, uint64_t *v)
{
	if (parse_hex(s, v) == 0)
		return 0;
	fw_printf(fw, "%s: bad %s '%s'\n", cmd, what, s);
	return -1;
}

static int
get_dec(struct fw *fw, const char *cmd, const char *what, const char *s, uint64_t max, uint64_t *v)
{
	if (parse_uint(s, 0, max, v) == 0)
		return 0;
	fw_printf(fw, "%s: bad %s '%s'\n", cmd, what, s);
	return -1;
}

/* [a, a+n) inside RAM, or one line saying it is not. */
static int
check_ram(struct fw *fw, const char *cmd, uint64_t a, uint64_t n)
{
	uint64_t base = fw->m.mem_base, size = fw->m.mem_size;

	if (a >= base && a - base <= size && n <= size - (a - base))
		return 0;
	fw_printf(fw, "%s: %08llx ... %08llx is outside RAM (%08llx ... %08llx)\n", cmd,
		  (unsigned long long)a, (unsigned long long)(a + n - 1), (unsigned long long)base,
		  (unsigned long long)(base + size - 1));
	return -1;
}

static int
ram_read(struct fw *fw, uint64_t a, void *p, size_t n)
{
	return fw->m.read(fw->m.ctx, a, p, n);
}

static int
ram_crc(struct fw *fw, uint64_t a, uint64_t n, uint32_t *crc)
{
	unsigned char buf[CHUNK];
	uLong c = crc32(0L, Z_NULL, 0);

	if (fw->m.crc != NULL)
		return fw->m.crc(fw->m.ctx, a, n, crc);
	while (n > 0) {
		size_t k = n < CHUNK ? (size_t)n : CHUNK;
		if (ram_read(fw, a, buf, k) == -1)
			return -1;
		c = crc32(c, buf, (uInt)k);
		a += k;
		n -= k;
	}
	*crc = (uint32_t)c;
	return 0;
}

static uint64_t
get_be(const unsigned char *p, int w)
{
	uint64_t v = 0;

	for (int i = 0; i < w; i++)
		v = v << 8 | p[i];
	return v;
}

static void
put_be(unsigned char *p, uint64_t v, int w)
{
	for (int i = w - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* Width from a ".b/.w/.l" (".s" where strings are allowed) suffix of the
 * command name: 1, 2, 4, -2 for .s; def without one; -1 when bad. */
static int
data_size(const char *cmd, int def, int strings)
{
	const char *dot = strchr(cmd, '.');

	if (dot == NULL)
		return def;
	if (strcmp(dot, ".b") == 0)
		return 1;
	if (strcmp(dot, ".w") == 0)
		return 2;
	if (strcmp(dot, ".l") == 0)
		return 4;
	if (strings && strcmp(dot, ".s") == 0)
		return -2;
	return -1;
}

static int
env_addr(struct fw *fw, const char *cmd, const char *var, uint64_t *a)
{
	const char *v = fw_getenv(fw, var);

	if (v == NULL) {
		fw_printf(fw, "%s: $%s is not set\n", cmd, var);
		return -1;
	}
	return get_hex(fw, cmd, "address", v, a);
}

/* ------------------------------------------------------------------ */
/* Images */

/* U-Boot's print_size: "1.2 MB", " 12 kB". */
static void
print_size(struct fw *fw, uint64_t size)
{
	uint64_t d = 1 << 20, n, m;
	char c = 'M';

	if (size < d) {
		c = 'k';
		d = 1 << 10;
	}
	n = size / d;
	m = (10 * (size - n * d) + d / 2) / d;
	if (m >= 10) {
		m -= 10;
		n++;
	}
	if (m)
		fw_printf(fw, "%2llu.%llu %cB\n", (unsigned long long)n, (unsigned long long)m, c);
	else
		fw_printf(fw, "%2llu %cB\n", (unsigned long long)n, c);
}

static void
print_hdr(struct fw *fw, const struct uimage_hdr *h)
{
	time_t t = (time_t)h->time;
	struct tm tm;

	fw_printf(fw, "   Image Name:   %s\n", h->name);
	if (gmtime_r(&t, &tm) != NULL)
		fw_printf(fw, "   Created:      %4d-%02d-%02d  %2d:%02d:%02d UTC\n",
			  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			  tm.tm_sec);
	fw_printf(fw, "   Image Type:   %s %s %s (%s)\n", uimage_arch_name(h->arch),
		  uimage_os_name(h->os), uimage_type_name(h->type), uimage_comp_name(h->comp));
	fw_printf(fw, "   Data Size:    %u Bytes = ", h->size);
	print_size(fw, h->size);
	fw_printf(fw, "   Load Address: %08x\n   Entry Point:  %08x\n", h->load, h->ep);
}

/* Check the legacy image at a (its header has been read into hdr) and
 * print it as U-Boot does: header, then data CRC.  0 or -1. */
static int
image_check(struct fw *fw, const char *cmd, uint64_t a, const unsigned char *hdr,
	    struct uimage_hdr *h)
{
	char err[128];
	uint32_t crc;

	if (get_be(hdr, 4) != UIMAGE_MAGIC) {
		fw_puts(fw, "   Bad Magic Number\n");
		return -1;
	}
	if (uimage_parse(hdr, UIMAGE_HDRSIZE, h, err, sizeof(err)) == -1) {
		fw_printf(fw, "   %s\n", err);
		return -1;
	}
	print_hdr(fw, h);
	if (check_ram(fw, cmd, a + UIMAGE_HDRSIZE, h->size) == -1)
		return -1;
	fw_puts(fw, "   Verifying Checksum ... ");
	if (ram_crc(fw, a + UIMAGE_HDRSIZE, h->size, &crc) == -1 || crc != h->dcrc) {
		fw_puts(fw, "   Bad Data CRC\n");
		return -1;
	}
	fw_puts(fw, "OK\n");
	return 0;
}

static int
read_hdr(struct fw *fw, const char *cmd, uint64_t a, unsigned char *hdr)
{
	if (check_ram(fw, cmd, a, UIMAGE_HDRSIZE) == -1)
		return -1;
	if (ram_read(fw, a, hdr, UIMAGE_HDRSIZE) == -1) {
		fw_printf(fw, "%s: cannot read memory at %08llx\n", cmd, (unsigned long long)a);
		return -1;
	}
	return 0;
}

static int
iminfo_one(struct fw *fw, uint64_t a)
{
	unsigned char hdr[UIMAGE_HDRSIZE];
	struct uimage_hdr h;

	fw_printf(fw, "\n## Checking Image at %08llx ...\n", (unsigned long long)a);
	if (read_hdr(fw, "iminfo", a, hdr) == -1 || image_check(fw, "iminfo", a, hdr, &h) == -1)
		return 1;
	return 0;
}

static int
cmd_iminfo(struct fw *fw, int argc, char **argv, int depth)
{
	uint64_t a;
	int rc = 0;

	if (argc == 1)
		return env_addr(fw, "iminfo", "loadaddr", &a) == -1 ? 1 : iminfo_one(fw, a);
	for (int i = 1; i < argc; i++) {
		if (get_hex(fw, "iminfo", "address", argv[i], &a) == -1 || iminfo_one(fw, a) != 0)
			rc = 1;
	}
	return rc;
}

/* What bootm finds at an address: nothing (memory never written reads as
 * zero, and reset wipes it), a legacy image it verifies, or other bytes it
 * leaves to the node's backend (a bare cpio, gzip, bzImage...). */
enum { IMG_NONE, IMG_LEGACY, IMG_RAW };

static int
boot_image(struct fw *fw, uint64_t a, int kernel, int *kind)
{
	static const unsigned char zero[UIMAGE_HDRSIZE];
	unsigned char hdr[UIMAGE_HDRSIZE];
	struct uimage_hdr h;
	const char *what = kernel ? "Booting kernel" : "Loading init Ramdisk";

	if (read_hdr(fw, "bootm", a, hdr) == -1)
		return -1;
	if (memcmp(hdr, zero, sizeof(hdr)) == 0) {
		*kind = IMG_NONE;
		return 0;
	}
	if (get_be(hdr, 4) != UIMAGE_MAGIC) {
		fw_printf(fw, "## %s at %08llx (no uImage header) ...\n", what,
			  (unsigned long long)a);
		*kind = IMG_RAW;
		return 0;
	}
	fw_printf(fw, "## %s from Legacy Image at %08llx ...\n", what, (unsigned long long)a);
	if (image_check(fw, "bootm", a, hdr, &h) == -1)
		return -1;
	if (h.type != (kernel ? UIMAGE_TYPE_KERNEL : UIMAGE_TYPE_RAMDISK)) {
		fw_puts(fw, "Wrong Image Type for bootm command\n");
		return -1;
	}
	*kind = IMG_LEGACY;
	return 0;
}

static int
cmd_bootm(struct fw *fw, int argc, char **argv, int depth)
{
	uint64_t ka = 0, ra = 0;
	int kk = IMG_NONE, rk = IMG_NONE, kgiven = 1, rgiven = argc > 2;
	char err[256];

	if (argc < 2) {
		if (env_addr(fw, "bootm", "loadaddr", &ka) == -1)
			return 1;
	} else if (strcmp(argv[1], "-") == 0) {
		kgiven = 0;
	} else if (get_hex(fw, "bootm", "address", argv[1], &ka) == -1) {
		return 1;
	}
	if (rgiven && strcmp(argv[2], "-") == 0)
		rgiven = 0;
	else if (rgiven && get_hex(fw, "bootm", "address", argv[2], &ra) == -1)
		return 1;
	/* argv[3], the original's device tree address, means nothing here. */
	if (kgiven && boot_image(fw, ka, 1, &kk) == -1)
		return 1;
	if (rgiven && boot_image(fw, ra, 0, &rk) == -1)
		return 1;
	if (kk == IMG_NONE && rk == IMG_NONE) {
		if (kgiven && rgiven)
			fw_printf(fw, "## Nothing to boot: no image at %08llx or %08llx\n",
				  (unsigned long long)ka, (unsigned long long)ra);
		else if (kgiven || rgiven)
			fw_printf(fw, "## Nothing to boot: no image at %08llx\n",
				  (unsigned long long)(kgiven ? ka : ra));
		else
			fw_puts(fw, "## Nothing to boot\n");
		return 1;
	}
	if (fw->m.boot == NULL) {
		fw_puts(fw, "## Boot failed: this node cannot boot\n");
		return 1;
	}
	fw_puts(fw, "## Transferring control to the node ...\n");
	err[0] = '\0';
	if (fw->m.boot(fw->m.ctx, kk == IMG_NONE ? 0 : ka, rk == IMG_NONE ? 0 : ra, err,
		       sizeof(err)) == -1) {
		fw_printf(fw, "## Boot failed: %s\n", err[0] ? err : "unknown reason");
		return 1;
	}
	fw->mode = FW_MODE_BOOTED;
	fw->abort = 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Memory */

static int
cmd_md(struct fw *fw, int argc, char **argv, int depth)
{
	int w = data_size(argv[0], 4, 0);
	uint64_t a, count = 0x40, bytes;
	unsigned char buf[16];
	char line[16 * 3 + 16 + 32];

	if (w < 0) {
		fw_printf(fw, "md: bad size '%s'\n", strchr(argv[0], '.'));
		return 1;
	}
	if (argc < 2 || argc > 3)
		return usage(fw, "md");
	if (get_hex(fw, "md", "address", argv[1], &a) == -1)
		return 1;
	if (argc > 2 && get_hex(fw, "md", "count", argv[2], &count) == -1)
		return 1;
	if (count > FW_MD_MAX / (uint64_t)w) {
		fw_printf(fw, "md: at most 0x%x bytes at once\n", FW_MD_MAX);
		return 1;
	}
	bytes = count * (uint64_t)w;
	if (check_ram(fw, "md", a, bytes) == -1)
		return 1;
	while (bytes > 0) {
		size_t n = bytes < 16 ? (size_t)bytes : 16, k = 0;
		if (ram_read(fw, a, buf, n) == -1) {
			fw_printf(fw, "md: cannot read memory at %08llx\n", (unsigned long long)a);
			return 1;
		}
		k += (size_t)snprintf(line, sizeof(line), "%08llx:", (unsigned long long)a);
		for (size_t i = 0; i < n; i += (size_t)w)
			k += (size_t)snprintf(line + k, sizeof(line) - k, " %0*llx", 2 * w,
					      (unsigned long long)get_be(buf + i, w));
		memcpy(line + k, "    ", 4);
		k += 4;
		for (size_t i = 0; i < n; i++)
			line[k++] = isprint(buf[i]) && buf[i] < 0x80 ? (char)buf[i] : '.';
		line[k++] = '\n';
		fw_out(fw, line, k);
		a += n;
		bytes -= n;
	}
	return 0;
}

static int
cmd_mw(struct fw *fw, int argc, char **argv, int depth)
{
	int w = data_size(argv[0], 4, 0);
	uint64_t a, v, count = 1, bytes;
	unsigned char buf[4096];

	if (w < 0) {
		fw_printf(fw, "mw: bad size '%s'\n", strchr(argv[0], '.'));
		return 1;
	}
	if (argc < 3 || argc > 4)
		return usage(fw, "mw");
	if (get_hex(fw, "mw", "address", argv[1], &a) == -1 ||
	    get_hex(fw, "mw", "value", argv[2], &v) == -1 ||
	    (argc > 3 && get_hex(fw, "mw", "count", argv[3], &count) == -1))
		return 1;
	if (v >> (8 * w)) {
		fw_printf(fw, "mw: value %s does not fit in %d byte%s\n", argv[2], w,
			  w > 1 ? "s" : "");
		return 1;
	}
	if (count > fw->m.mem_size / (uint64_t)w) {
		fw_printf(fw, "mw: count %s is more than RAM holds\n", argv[3]);
		return 1;
	}
	bytes = count * (uint64_t)w;
	if (check_ram(fw, "mw", a, bytes) == -1)
		return 1;
	for (size_t i = 0; i < sizeof(buf); i += (size_t)w)
		put_be(buf + i, v, w);
	while (bytes > 0) {
		size_t n = bytes < sizeof(buf) ? (size_t)bytes : sizeof(buf);
		if (fw->m.write(fw->m.ctx, a, buf, n) == -1) {
			fw_printf(fw, "mw: cannot write memory at %08llx\n", (unsigned long long)a);
			return 1;
		}
		a += n;
		bytes -= n;
	}
	return 0;
}

static int
cmd_crc32(struct fw *fw, int argc, char **argv, int depth)
{
	uint64_t a, n, store;
	uint32_t crc;
	unsigned char be[4];

	if (argc < 3 || argc > 4)
		return usage(fw, "crc32");
	if (get_hex(fw, "crc32", "address", argv[1], &a) == -1 ||
	    get_hex(fw, "crc32", "count", argv[2], &n) == -1 || check_ram(fw, "crc32", a, n) == -1)
		return 1;
	if (argc > 3 && (get_hex(fw, "crc32", "address", argv[3], &store) == -1 ||
			 check_ram(fw, "crc32", store, 4) == -1))
		return 1;
	if (ram_crc(fw, a, n, &crc) == -1) {
		fw_printf(fw, "crc32: cannot read memory at %08llx\n", (unsigned long long)a);
		return 1;
	}
	fw_printf(fw, "CRC32 for %08llx ... %08llx ==> %08x\n", (unsigned long long)a,
		  (unsigned long long)(a + n - 1), crc);
	if (argc > 3) {
		put_be(be, crc, 4);
		if (fw->m.write(fw->m.ctx, store, be, 4) == -1)
			return 1;
	}
	return 0;
}

static int
cmd_mrw(struct fw *fw, int argc, char **argv, int depth)
{
	uint64_t a, n;

	if (argc != 3)
		return usage(fw, "mrw");
	if (depth > 0) {
		fw_puts(fw, "mrw: only on the console, not inside run\n");
		return 1;
	}
	if (get_hex(fw, "mrw", "address", argv[1], &a) == -1 ||
	    get_dec(fw, "mrw", "count", argv[2], UINT64_MAX, &n) == -1 ||
	    check_ram(fw, "mrw", a, n) == -1)
		return 1;
	fw_printf(fw, "Reading %llu bytes from stdin to store at 0x%llx ...", (unsigned long long)n,
		  (unsigned long long)a);
	if (n == 0) {
		fw_puts(fw, "Done.\n");
		return 0;
	}
	fw->mode = FW_MODE_DATA;
	fw->mrw_addr = a;
	fw->mrw_total = n;
	fw->mrw_got = 0;
	fw->mrw_failed = 0;
	return 0;
}

static int
cmd_bdinfo(struct fw *fw, int argc, char **argv, int depth)
{
	fw_printf(fw, "memstart    = 0x%08llx\nmemsize     = 0x%08llx\n",
		  (unsigned long long)fw->m.mem_base, (unsigned long long)fw->m.mem_size);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Environment */

static int
cmd_printenv(struct fw *fw, int argc, char **argv, int depth)
{
	uint32_t len;
	const char *env = fw_env_data(fw, &len);
	int rc = 0;

	if (argc == 1) {
		for (uint32_t i = 0; i < len;) {
			size_t n = strlen(env + i);
			fw_out(fw, env + i, n);
			fw_out(fw, "\n", 1);
			i += (uint32_t)n + 1;
		}
		fw_printf(fw, "\nEnvironment size: %u/%d bytes\n", len, FW_ENV_SIZE);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		const char *v = fw_getenv(fw, argv[i]);
		if (v == NULL) {
			fw_printf(fw, "## Error: \"%s\" not defined\n", argv[i]);
			rc = 1;
			continue;
		}
		fw_printf(fw, "%s=%s\n", argv[i], v);
	}
	return rc;
}

static int
cmd_setenv(struct fw *fw, int argc, char **argv, int depth)
{
	size_t len = 0;
	char *val;
	int rc;

	if (argc < 2)
		return usage(fw, "setenv");
	if (argc == 2)
		return fw_env_set(fw, argv[1], NULL, 0) == 0 ? 0 : 1;
	for (int i = 2; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((val = malloc(len)) == NULL) {
		fw_puts(fw, "## Error: out of memory\n");
		return 1;
	}
	val[0] = '\0';
	for (int i = 2, k = 0; i < argc; i++) {
		size_t n = strlen(argv[i]);
		if (i > 2)
			val[k++] = ' ';
		memcpy(val + k, argv[i], n + 1);
		k += (int)n;
	}
	rc = fw_env_set(fw, argv[1], val, 0);
	free(val);
	return rc == 0 ? 0 : 1;
}

/* U-Boot's rule: run stops at the first variable whose script fails. */
static int
cmd_run(struct fw *fw, int argc, char **argv, int depth)
{
	if (argc < 2)
		return usage(fw, "run");
	if (depth >= FW_RUN_DEPTH) {
		/* Runaway recursion: one message, and the line stops (a
		 * script that runs itself twice would print thousands). */
		fw_printf(fw, "## Error: run nested deeper than %d\n", FW_RUN_DEPTH);
		fw->abort = 1;
		return 1;
	}
	for (int i = 1; i < argc && !fw->abort; i++) {
		const char *v = fw_getenv(fw, argv[i]);
		if (v == NULL) {
			fw_printf(fw, "## Error: \"%s\" not defined\n", argv[i]);
			return 1;
		}
		if (*v == '\0')
			return 1;
		/* The script may change the variable it came from. */
		char *s = strdup(v);
		if (s == NULL) {
			fw_puts(fw, "## Error: out of memory\n");
			return 1;
		}
		int rc = fw_run_script(fw, s, strlen(s), depth + 1);
		free(s);
		if (rc != 0)
			return 1;
	}
	return 0;
}

static int
cmd_mketh(struct fw *fw, int argc, char **argv, int depth)
{
	uint64_t netid, idx, mtu = 0;
	char name[32];

	if (argc < 3 || argc > 5)
		return usage(fw, "mketh");
	if (get_dec(fw, "mketh", "netid", argv[1], UINT32_MAX, &netid) == -1 ||
	    get_dec(fw, "mketh", "index", argv[2], FW_MAX_ETH - 1, &idx) == -1 ||
	    (argc > 3 && get_dec(fw, "mketh", "mtu", argv[3], 65535, &mtu) == -1))
		return 1;
	if (netid == 0) {
		fw_puts(fw, "ERROR: netid=0 is reserved\n");
		return 1;
	}
	/* Only a description for the software the node boots: membership of
	 * domains is enforced below the node, by khget and khd. */
	snprintf(name, sizeof(name), "bg_eth%llu_netid", (unsigned long long)idx);
	if (fw_env_set(fw, name, argv[1], 0) == -1)
		return 1;
	if (mtu != 0) {
		snprintf(name, sizeof(name), "bg_eth%llu_mtu", (unsigned long long)idx);
		if (fw_env_set(fw, name, argv[3], 0) == -1)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests */

static int
cmd_echo(struct fw *fw, int argc, char **argv, int depth)
{
	int nl = 1, first = 1;
	size_t len = 2;
	char *buf, *p;

	for (int i = 1; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((buf = p = malloc(len)) == NULL)
		return 1;
	for (int i = 1; i < argc; i++) {
		if (i == 1 && strcmp(argv[i], "-n") == 0) {
			nl = 0;
			continue;
		}
		if (!first)
			*p++ = ' ';
		first = 0;
		for (const char *s = argv[i]; *s; s++) {
			if (s[0] == '\\' && s[1] == 'c') {
				nl = 0;
				s++;
				continue;
			}
			*p++ = *s;
		}
	}
	if (nl)
		*p++ = '\n';
	fw_out(fw, buf, (size_t)(p - buf));
	free(buf);
	return 0;
}

enum { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE };

static int
itest_op(const char *s)
{
	static const struct {
		const char *name;
		int op;
	} ops[] = {
	    {"-lt", OP_LT}, {"<", OP_LT},   {"-gt", OP_GT}, {">", OP_GT},  {"-eq", OP_EQ},
	    {"==", OP_EQ},  {"-ne", OP_NE}, {"!=", OP_NE},  {"<>", OP_NE}, {"-ge", OP_GE},
	    {">=", OP_GE},  {"-le", OP_LE}, {"<=", OP_LE},
	};

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(s, ops[i].name) == 0)
			return ops[i].op;
	return -1;
}

static int
compare(int op, int c)
{
	switch (op) {
	case OP_EQ:
		return c == 0;
	case OP_NE:
		return c != 0;
	case OP_LT:
		return c < 0;
	case OP_GT:
		return c > 0;
	case OP_LE:
		return c <= 0;
	default:
		return c >= 0;
	}
}

/* An itest operand: hex (U-Boot reads them so, and decimal ranks compare
 * the same way), or *ADDR for the w bytes at ADDR. */
static int
itest_value(struct fw *fw, const char *s, int w, uint64_t *v)
{
	unsigned char buf[4];
	uint64_t a;

	if (s[0] == '*') {
		if (get_hex(fw, "itest", "address", s + 1, &a) == -1 ||
		    check_ram(fw, "itest", a, (uint64_t)w) == -1 ||
		    ram_read(fw, a, buf, (size_t)w) == -1)
			return -1;
		*v = get_be(buf, w);
		return 0;
	}
	if (get_hex(fw, "itest", "number", s, v) == -1)
		return -1;
	*v &= w == 4 ? 0xffffffffu : (1u << (8 * w)) - 1;
	return 0;
}

/* .s operand: a literal, or *ADDR for the NUL-terminated string there. */
static char *
itest_string(struct fw *fw, const char *s)
{
	uint64_t a, n;

	if (s[0] != '*')
		return strdup(s);
	if (get_hex(fw, "itest", "address", s + 1, &a) == -1 || check_ram(fw, "itest", a, 1) == -1)
		return NULL;
	n = fw->m.mem_base + fw->m.mem_size - a;
	if (n > FW_LINE_MAX)
		n = FW_LINE_MAX;
	char *p = calloc(1, (size_t)n + 1);
	if (p != NULL && ram_read(fw, a, p, (size_t)n) == -1) {
		free(p);
		return NULL;
	}
	return p;
}

static int
cmd_itest(struct fw *fw, int argc, char **argv, int depth)
{
	int w = data_size(argv[0], 4, 1), op;

	if (argc != 4)
		return usage(fw, "itest");
	if (w == -1) {
		fw_puts(fw, "Invalid data width specifier\n");
		return 1;
	}
	if ((op = itest_op(argv[2])) == -1) {
		fw_printf(fw, "Unknown operator '%s'\n", argv[2]);
		return 1;
	}
	if (w == -2) {
		char *l = itest_string(fw, argv[1]), *r = l ? itest_string(fw, argv[3]) : NULL;
		int res = l && r ? compare(op, strcmp(l, r)) : 0;
		free(l);
		free(r);
		return !res;
	}
	uint64_t l, r;
	if (itest_value(fw, argv[1], w, &l) == -1 || itest_value(fw, argv[3], w, &r) == -1)
		return 1;
	return !compare(op, l < r ? -1 : l > r);
}

static int
test_num(struct fw *fw, const char *s, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0) {
		fw_printf(fw, "test: bad number '%s'\n", s);
		return -1;
	}
	return 0;
}

/* U-Boot's test: [!] EXPR {-a|-o EXPR}, where EXPR is -n S, -z S or
 * S1 OP S2, evaluated left to right.  Fewer than two arguments is false
 * (so "test -n $unset" is false), as is anything it cannot parse. */
static int
cmd_test(struct fw *fw, int argc, char **argv, int depth)
{
	char **ap = argv + 1;
	int left = argc - 1, neg = 0, expr = 0, join = -1;

	if (argc < 3)
		return 1;
	if (strcmp(ap[0], "!") == 0) {
		neg = 1;
		ap++;
		left--;
	}
	while (left > 0) {
		int e;
		if (strcmp(ap[0], "-a") == 0 || strcmp(ap[0], "-o") == 0) {
			if (join != -1)
				return 1;
			join = ap[0][1] == 'a';
			ap++;
			left--;
			continue;
		}
		if (strcmp(ap[0], "-n") == 0 || strcmp(ap[0], "-z") == 0) {
			if (left < 2)
				return 1;
			e = (ap[1][0] != '\0') == (ap[0][1] == 'n');
			ap += 2;
			left -= 2;
		} else {
			const char *o;
			if (left < 3)
				return 1;
			o = ap[1];
			if (strcmp(o, "=") == 0)
				e = strcmp(ap[0], ap[2]) == 0;
			else if (strcmp(o, "!=") == 0)
				e = strcmp(ap[0], ap[2]) != 0;
			else if (strcmp(o, "<") == 0)
				e = strcmp(ap[0], ap[2]) < 0;
			else if (strcmp(o, ">") == 0)
				e = strcmp(ap[0], ap[2]) > 0;
			else {
				static const char *const nops[] = {"-eq", "-ne", "-lt",
								   "-gt", "-le", "-ge"};
				static const int nop[] = {OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE};
				long long l, r;
				size_t k;
				for (k = 0; k < 6 && strcmp(o, nops[k]) != 0; k++)
					;
				if (k == 6)
					return 1;
				if (test_num(fw, ap[0], &l) == -1 || test_num(fw, ap[2], &r) == -1)
					return 1;
				e = compare(nop[k], l < r ? -1 : l > r);
			}
			ap += 3;
			left -= 3;
		}
		if (join == 0)
			expr = expr || e;
		else if (join == 1)
			expr = expr && e;
		else
			expr = e;
		join = -1;
	}
	if (join != -1)
		return 1;
	return !(neg ? !expr : expr);
}

static int
cmd_true(struct fw *fw, int argc, char **argv, int depth)
{
	return 0;
}

static int
cmd_false(struct fw *fw, int argc, char **argv, int depth)
{
	return 1;
}

/* ------------------------------------------------------------------ */
/* The monitor */

static int
cmd_silence(struct fw *fw, int argc, char **argv, int depth)
{
	fw->silent = 1;
	return 0;
}

static int
cmd_unsilence(struct fw *fw, int argc, char **argv, int depth)
{
	fw->silent = 0;
	return 0;
}

static int
cmd_issilent(struct fw *fw, int argc, char **argv, int depth)
{
	return fw->silent ? 0 : 1;
}

static int
cmd_fdt(struct fw *fw, int argc, char **argv, int depth)
{
	/* The original's tools edit Blue Gene device trees ("fdt rm
	 * /plb/ethernet@0"); our nodes have none to edit. */
	return 0;
}

static int
cmd_version(struct fw *fw, int argc, char **argv, int depth)
{
	fw_printf(fw, "\n%s\n", FW_VERSION);
	return 0;
}

static int
cmd_reset(struct fw *fw, int argc, char **argv, int depth)
{
	fw_puts(fw, "resetting ...\n");
	if (fw->m.reset != NULL)
		fw->m.reset(fw->m.ctx);
	fw_reset(fw);
	fw->abort = 1; /* the rest of the line died with the node */
	return 0;
}

static void
help_line(struct fw *fw, const struct fw_cmd *c)
{
	if (strlen(c->name) < 8)
		fw_printf(fw, "%-8s- %s\n", c->name, c->brief);
	else
		fw_printf(fw, "%s - %s\n", c->name, c->brief);
}

static int
cmd_help(struct fw *fw, int argc, char **argv, int depth)
{
	int rc = 0, amb;

	if (argc == 1) {
		for (size_t i = 0; i < fw_ncmds; i++)
			help_line(fw, &fw_cmds[i]);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		const struct fw_cmd *c = fw_cmd_find(argv[i], &amb);
		if (c == NULL) {
			fw_printf(fw,
				  "Unknown command '%s' - try 'help' without arguments for list "
				  "of all known commands\n",
				  argv[i]);
			rc = 1;
			continue;
		}
		help_line(fw, c);
		fw_printf(fw, "\nUsage:\n%s%s%s\n", c->name, c->args[0] ? " " : "", c->args);
	}
	return rc;
}

/* Sorted by name: help lists them in this order. */
const struct fw_cmd fw_cmds[] = {
    {"?", cmd_help, "[command ...]", "alias for 'help'"},
    {"bdinfo", cmd_bdinfo, "", "print Board Info structure"},
    {"bootm", cmd_bootm, "[addr [initrd|-] [fdt]]",
     "boot application image from memory ('-' for none)"},
    {"crc32", cmd_crc32, "address count [addr]",
     "checksum calculation (count in hex) [save at addr]"},
    {"echo", cmd_echo, "[-n] [args ...]", "echo args to console; \\c suppresses newline"},
    {"false", cmd_false, "", "do nothing, unsuccessfully"},
    {"fdt", cmd_fdt, "[args ...]", "flattened device tree: accepted and ignored"},
    {"help", cmd_help, "[command ...]", "print online help"},
    {"iminfo", cmd_iminfo, "[addr ...]",
     "print header information for application image (checks CRCs)"},
    {"issilent", cmd_issilent, "", "return 0 if silent and 1 if not silent"},
    {"itest", cmd_itest, "[.b, .w, .l, .s] [*]value1 <op> [*]value2",
     "return true/false on integer compare"},
    {"md", cmd_md, "[.b, .w, .l] address [# of objects]", "memory display"},
    {"mketh", cmd_mketh, "netid index [mtu] [vnic]",
     "describe an ethernet interface (bg_eth<index>_netid)"},
    {"mrw", cmd_mrw, "address count",
     "memory raw write (read count bytes, decimal, from the console)"},
    {"mw", cmd_mw, "[.b, .w, .l] address value [count]", "memory write (fill)"},
    {"printenv", cmd_printenv, "[name ...]", "print environment variables"},
    {"reset", cmd_reset, "", "reset the node: wipe memory, back to the monitor"},
    {"run", cmd_run, "var [...]", "run commands in an environment variable"},
    {"setenv", cmd_setenv, "name [value ...]", "set environment variables (no value deletes)"},
    {"silence", cmd_silence, "", "squash console output of the monitor"},
    {"test", cmd_test, "[!] expr [-a|-o expr ...]", "minimal test like /bin/sh"},
    {"true", cmd_true, "", "do nothing, successfully"},
    {"unsilence", cmd_unsilence, "", "enable console output of the monitor"},
    {"version", cmd_version, "", "print monitor version"},
};
const size_t fw_ncmds = sizeof(fw_cmds) / sizeof(fw_cmds[0]);

/* U-Boot's find_cmd: the name up to a '.' (md.b is md), exactly, or else
 * an abbreviation that fits one command only (imi is iminfo). */
const struct fw_cmd *
fw_cmd_find(const char *name, int *ambiguous)
{
	const char *dot = strchr(name, '.');
	size_t len = dot ? (size_t)(dot - name) : strlen(name);
	const struct fw_cmd *found = NULL;
	int n = 0;

	*ambiguous = 0;
	if (len == 0)
		return NULL;
	for (size_t i = 0; i < fw_ncmds; i++) {
		if (strncmp(name, fw_cmds[i].name, len) != 0)
			continue;
		if (fw_cmds[i].name[len] == '\0')
			return &fw_cmds[i];
		found = &fw_cmds[i];
		n++;
	}
	if (n == 1)
		return found;
	*ambiguous = n > 1;
	return NULL;
}
