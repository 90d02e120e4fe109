/* fuzz/uimage: what a principal loads into a node's memory, as khd and the
 * monitor first look at it (src/image/): the legacy U-Boot header
 * (uimage_parse, uimage_verify) and image_classify, which tells a kernel, a
 * ramdisk (newc cpio, gzip'd or not, bare or in a uImage) and anything else
 * apart.  The input is the loaded bytes.  Checks: a refusal or description
 * says something; a ramdisk's payload lies inside the input. */
#include "fuzz.h"
#include "image/ramdisk.h"
#include "image/uimage.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uimage_hdr h;
	char err[256] = "";
	enum img_kind kind;
	size_t off, len;

	if (uimage_parse(data, size, &h, err, sizeof(err)) == 0) {
		FUZZ_CHECK(size >= UIMAGE_HDRSIZE && strlen(h.name) <= 32);
		(void)uimage_type_name(h.type);
		(void)uimage_comp_name(h.comp);
		(void)uimage_os_name(h.os);
		(void)uimage_arch_name(h.arch);
		err[0] = '\0';
		if (uimage_verify(data, size, &h, err, sizeof(err)) == 0)
			FUZZ_CHECK(h.size <= size - UIMAGE_HDRSIZE);
		else
			FUZZ_CHECK(err[0] != '\0');
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	err[0] = '\0';
	if (image_classify(data, size, &kind, &off, &len, err, sizeof(err)) == 0) {
		if (kind == IMG_RAMDISK)
			FUZZ_CHECK(off <= size && len <= size - off && len > 0);
		else
			FUZZ_CHECK(err[0] != '\0');
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	return 0;
}
