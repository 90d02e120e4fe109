/* vm_kernel: the setup header of an x86 bzImage, read the way a boot loader
 * reads it (Documentation/arch/x86/boot.rst), so that a vm node refuses a
 * broken or foreign kernel with one line before QEMU is started. */
#include "nodes/vm.h"
#include "common/util.h"

#include <string.h>

static uint32_t
le(const unsigned char *p, int n)
{
	uint32_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int
vm_kernel_parse(const void *data, size_t len, struct vm_kernel *k, char *err, size_t errlen)
{
	const unsigned char *p = data;
	uint32_t sects;
	uint64_t end;

	memset(k, 0, sizeof(*k));
	if (len < 0x264)
		return seterr(err, errlen, "%zu bytes: too short for an x86 bzImage", len);
	if (memcmp(p + 0x202, "HdrS", 4) != 0 || le(p + 0x1fe, 2) != 0xaa55)
		return seterr(err, errlen, "not an x86 bzImage (no boot protocol header)");
	k->version = (uint16_t)le(p + 0x206, 2);
	if (k->version < 0x020a)
		return seterr(err, errlen,
			      "boot protocol %u.%02u is too old (2.10, Linux 2.6.31, or later)",
			      k->version >> 8, k->version & 0xff);
	if (!(p[0x211] & 1))
		return seterr(err, errlen, "a zImage, not a bzImage (not loaded high)");
	sects = p[0x1f1] ? p[0x1f1] : 4;
	k->setup_len = (sects + 1) * 512;
	if (k->setup_len >= len)
		return seterr(err, errlen, "truncated: the setup alone needs %u of its %zu bytes",
			      k->setup_len, len);
	k->initrd_addr_max = le(p + 0x22c, 4);
	k->cmdline_size = le(p + 0x238, 4);
	k->init_size = le(p + 0x260, 4);
	k->is64 = k->version >= 0x020c && (le(p + 0x236, 2) & 1);
	/* syssize: the protected-mode part, in 16-byte units.  A file shorter
	 * than setup and syssize together lost its tail.  (The CRC-32 a
	 * kernel's build appends is no test: a signed kernel, as Debian's,
	 * carries a signature after it, and recent kernels have none.) */
	k->sys_len = le(p + 0x1f4, 4) * 16ULL;
	end = k->setup_len + k->sys_len;
	if (k->sys_len == 0 || end > len)
		return seterr(err, errlen,
			      "truncated: its header says %llu bytes, the file has %zu",
			      (unsigned long long)end, len);
	return 0;
}
