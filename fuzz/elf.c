/* fuzz/elf: the ELF reader of khappliance (src/appliance/elf.c), which
 * reads the program headers and dynamic section of every program and
 * library it puts into an appliance, from whatever root it is given.  The
 * input is the file (in a memfd, read through elf_read_fd).  Checks: a
 * refusal says why; an accepted file gives NUL-terminated names. */
#include "appliance/elf.h"
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct elf_info ei;
	char err[256] = "";

	if (fd < 0)
		fd = memfd_create("fuzz-elf", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0 && ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size);
	int r = elf_read_fd(fd, "fuzz", &ei, err, sizeof(err));
	FUZZ_CHECK(r >= -1 && r <= 1);
	if (r == 1) {
		size_t total = ei.interp ? strlen(ei.interp) : 0;
		for (size_t i = 0; i < ei.nneeded; i++)
			total += strlen(ei.needed[i]);
		total += ei.runpath ? strlen(ei.runpath) : 0;
		total += ei.rpath ? strlen(ei.rpath) : 0;
		(void)total;
		(void)elf_multiarch(ei.class, ei.data, ei.machine);
		elf_free(&ei);
	} else if (r == -1) {
		FUZZ_CHECK(err[0] != '\0');
	}
	return 0;
}
