/* uimage: legacy U-Boot image headers (64 bytes, big-endian, magic
 * 0x27051956, as mkimage makes) and the ramdisk formats a node boots. */
#ifndef KH_UIMAGE_H
#define KH_UIMAGE_H

#include <stddef.h>
#include <stdint.h>

#define UIMAGE_MAGIC   0x27051956u
#define UIMAGE_HDRSIZE 64

/* IH_TYPE_* and IH_COMP_* values used by mkimage. */
enum {
	UIMAGE_TYPE_STANDALONE = 1,
	UIMAGE_TYPE_KERNEL = 2,
	UIMAGE_TYPE_RAMDISK = 3,
	UIMAGE_TYPE_MULTI = 4,
	UIMAGE_TYPE_FIRMWARE = 5,
	UIMAGE_TYPE_SCRIPT = 6
};
enum { UIMAGE_COMP_NONE = 0, UIMAGE_COMP_GZIP = 1, UIMAGE_COMP_BZIP2 = 2 };

struct uimage_hdr {
	uint32_t hcrc, time, size, load, ep, dcrc;
	uint8_t os, arch, type, comp;
	char name[33];
};

/* Parse and check a header (magic, header CRC).  len is how many bytes are
 * available at hdr.  Returns 0, or -1 with a one-line reason in err. */
int uimage_parse(const void *hdr, size_t len, struct uimage_hdr *out, char *err, size_t errlen);
/* Parse the header and check the data CRC: img holds len bytes. */
int uimage_verify(const void *img, size_t len, struct uimage_hdr *out, char *err, size_t errlen);
/* Write the 64-byte header for h into out: every field from h (name cut
 * to 32 bytes, NUL-padded), the header CRC computed here, as mkimage does.
 * h->size and h->dcrc must already describe the data that follows. */
void uimage_header(unsigned char out[UIMAGE_HDRSIZE], const struct uimage_hdr *h);
/* U-Boot's architecture number for the machine this program was built for
 * (IH_ARCH_*: AMD x86_64 is 24), 0 when unknown. */
uint8_t uimage_host_arch(void);
/* Names as U-Boot prints them ("Kernel Image", "RAMDisk Image",
 * "gzip compressed", "PowerPC", "Linux"; "Unknown ..." otherwise). */
const char *uimage_type_name(uint8_t type);
const char *uimage_comp_name(uint8_t comp);
const char *uimage_os_name(uint8_t os);
const char *uimage_arch_name(uint8_t arch);

#endif
