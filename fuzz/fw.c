/* fuzz/fw: the boot monitor (src/firmware/), which runs whatever a
 * principal writes to a channel before its nodes boot: command lines with
 * $variables, quotes, ;, && and ||, run scripts from the environment
 * (setenv), and mrw's raw bytes.  The input's first byte picks the
 * machine's options (bit 0: a crc callback, bit 1: kernels boot); the rest
 * is the console stream, fed as khd feeds it: line by line in command
 * mode, raw bytes while mrw waits for them; a boot is followed by a reset.
 * Node memory is 32 MiB at 0x10000000 (loadaddr and ramfsaddr inside).
 * Checks: every result is one fw.h lists; memory is touched only inside
 * RAM; the monitor's answer to a line is bounded. */
#include "firmware/fw.h"
#include "fuzz.h"

#include <stdio.h>
#include <sys/mman.h>
#include <zlib.h>

#define BASE 0x10000000ULL
#define SIZE (32ULL << 20)

static unsigned char *ram;
static uint64_t dirty_lo, dirty_hi;
static uint64_t outbytes;
static int kernels_boot;

static int
m_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	if (addr < BASE || addr - BASE > SIZE || len > SIZE - (addr - BASE))
		return -1;
	memcpy(buf, ram + (addr - BASE), len);
	return 0;
}

static int
m_write(void *ctx, uint64_t addr, const void *buf, size_t len)
{
	if (addr < BASE || addr - BASE > SIZE || len > SIZE - (addr - BASE))
		return -1;
	memcpy(ram + (addr - BASE), buf, len);
	if (addr - BASE < dirty_lo)
		dirty_lo = addr - BASE;
	if (addr - BASE + len > dirty_hi)
		dirty_hi = addr - BASE + len;
	return 0;
}

static int
m_crc(void *ctx, uint64_t addr, uint64_t len, uint32_t *crc)
{
	if (addr < BASE || addr - BASE > SIZE || len > SIZE - (addr - BASE))
		return -1;
	*crc = (uint32_t)crc32(0, ram + (addr - BASE), (uInt)len);
	return 0;
}

static int
m_boot(void *ctx, uint64_t kaddr, uint64_t rdaddr, char *err, size_t errlen)
{
	FUZZ_CHECK(kaddr == 0 || (kaddr >= BASE && kaddr - BASE < SIZE));
	FUZZ_CHECK(rdaddr == 0 || (rdaddr >= BASE && rdaddr - BASE < SIZE));
	if (kaddr != 0 && !kernels_boot) {
		snprintf(err, errlen, "a ct node boots ramdisks, not kernels");
		return -1;
	}
	return 0;
}

static void
m_reset(void *ctx)
{
}

static void
m_out(void *ctx, const char *s, size_t n)
{
	FUZZ_CHECK(n < (64u << 20));
	outbytes += n;
}

static const uint32_t netids[] = {1, 3};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ram == NULL) {
		ram = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		FUZZ_CHECK(ram != MAP_FAILED);
	}
	if (size == 0)
		return 0;
	struct fw_machine m = {.mem_base = BASE,
			       .mem_size = SIZE,
			       .read = m_read,
			       .write = m_write,
			       .boot = m_boot,
			       .reset = m_reset,
			       .out = m_out,
			       .crc = (data[0] & 1) ? m_crc : NULL};
	struct fw_node_info info = {.rank = 5,
				    .uni = "bcbc27180005",
				    .name = "node5",
				    .eth0ip = "10.0.0.5",
				    .neth = 2,
				    .netid = netids};
	kernels_boot = (data[0] & 2) != 0;
	dirty_lo = SIZE;
	dirty_hi = 0;
	struct fw *fw = fw_new(&m, &info);
	FUZZ_CHECK(fw != NULL);
	fw_prompt(fw);
	const char *p = (const char *)data + 1;
	size_t left = size - 1;
	while (left > 0) {
		enum fw_mode mode = fw_mode(fw);
		if (mode == FW_MODE_DATA) {
			size_t took = fw_input_bytes(fw, p, left);
			FUZZ_CHECK(took > 0 && took <= left);
			p += took;
			left -= took;
			continue;
		}
		if (mode == FW_MODE_BOOTED)
			fw_reset(fw);
		const char *nl = memchr(p, '\n', left);
		size_t n = nl ? (size_t)(nl - p) + 1 : left;
		outbytes = 0;
		int rc = fw_input_line(fw, p, n);
		FUZZ_CHECK(rc >= 0 && rc <= FW_BOOTED);
		FUZZ_CHECK(rc != FW_DATA || fw_mode(fw) == FW_MODE_DATA);
		FUZZ_CHECK(rc != FW_BOOTED || fw_mode(fw) == FW_MODE_BOOTED);
		p += n;
		left -= n;
	}
	if (fw_mode(fw) == FW_MODE_DATA) {
		uint64_t addr, count;
		FUZZ_CHECK(fw_mrw_pending(fw, &addr, &count) == 1);
		(void)fw_mrw_done(fw, 0, 0, "timed out");
	}
	(void)fw_getenv(fw, "bootargs");
	fw_free(fw);
	if (dirty_hi > dirty_lo)
		madvise(ram + (dirty_lo & ~4095ULL), dirty_hi - (dirty_lo & ~4095ULL),
			MADV_DONTNEED);
	return 0;
}
