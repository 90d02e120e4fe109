/* uimage: parse and check legacy U-Boot image headers (mkimage's 64-byte,
 * big-endian header) and name their fields the way U-Boot's imi prints them,
 * so that a node's monitor answers like the original firmware did. */
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "image/uimage.h"

struct uimage_name {
	uint8_t id;
	const char *name;
};

/* Descriptions as U-Boot's image tables give them (IH_OS_*, IH_ARCH_*,
 * IH_TYPE_*, IH_COMP_* numbering, which mkimage fixes forever). */
static const struct uimage_name os_names[] = {
    {0, "Invalid OS"},
    {1, "OpenBSD"},
    {2, "NetBSD"},
    {3, "FreeBSD"},
    {4, "4_4BSD"},
    {5, "Linux"},
    {6, "SVR4"},
    {7, "Esix"},
    {8, "Solaris"},
    {9, "Irix"},
    {10, "SCO"},
    {11, "Dell"},
    {12, "NCR"},
    {13, "LynxOS"},
    {14, "VxWorks"},
    {15, "pSOS"},
    {16, "QNX"},
    {17, "U-Boot"},
    {18, "RTEMS"},
    {19, "ARTOS"},
    {20, "Unity OS"},
    {21, "INTEGRITY"},
    {22, "Enea OSE"},
    {23, "Plan 9"},
    {24, "OpenRTOS"},
    {25, "ARM Trusted Firmware"},
    {26, "Trusted Execution Environment"},
    {27, "RISC-V OpenSBI"},
    {28, "EFI Firmware"},
};

static const struct uimage_name arch_names[] = {
    {0, "Invalid ARCH"}, {1, "Alpha"},		{2, "ARM"},	    {3, "Intel x86"},
    {4, "IA64"},	 {5, "MIPS"},		{6, "MIPS 64 Bit"}, {7, "PowerPC"},
    {8, "IBM S390"},	 {9, "SuperH"},		{10, "SPARC"},	    {11, "SPARC 64 Bit"},
    {12, "M68K"},	 {13, "Nios-32"},	{14, "MicroBlaze"}, {15, "NIOS II"},
    {16, "Blackfin"},	 {17, "AVR32"},		{18, "ST200"},	    {19, "Sandbox"},
    {20, "NDS32"},	 {21, "OpenRISC 1000"}, {22, "AArch64"},    {23, "ARC"},
    {24, "AMD x86_64"},	 {25, "Xtensa"},	{26, "RISC-V"},
};

static const struct uimage_name type_names[] = {
    {0, "Invalid Image"},    {1, "Standalone Program"},
    {2, "Kernel Image"},     {3, "RAMDisk Image"},
    {4, "Multi-File Image"}, {5, "Firmware"},
    {6, "Script"},	     {7, "Filesystem Image"},
    {8, "Flat Device Tree"}, {14, "Kernel Image (no loading done)"},
};

static const struct uimage_name comp_names[] = {
    {0, "uncompressed"},   {1, "gzip compressed"}, {2, "bzip2 compressed"}, {3, "lzma compressed"},
    {4, "lzo compressed"}, {5, "lz4 compressed"},  {6, "zstd compressed"},
};

static const char *
lookup(const struct uimage_name *t, size_t n, uint8_t id, const char *unknown)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].id == id)
			return t[i].name;
	return unknown;
}

#define LOOKUP(t, id, unknown) lookup(t, sizeof(t) / sizeof((t)[0]), id, unknown)

const char *
uimage_type_name(uint8_t type)
{
	return LOOKUP(type_names, type, "Unknown Image");
}

const char *
uimage_comp_name(uint8_t comp)
{
	return LOOKUP(comp_names, comp, "Unknown Compression");
}

const char *
uimage_os_name(uint8_t os)
{
	return LOOKUP(os_names, os, "Unknown OS");
}

const char *
uimage_arch_name(uint8_t arch)
{
	return LOOKUP(arch_names, arch, "Unknown Architecture");
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* zlib's crc32 takes a uInt length; feed it in pieces so any size_t works. */
static uint32_t
crc_bytes(uint32_t crc, const unsigned char *p, size_t n)
{
	while (n > 0) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		crc = (uint32_t)crc32(crc, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return crc;
}

/* Errors use U-Boot's words ("Bad Magic Number", ...) because the monitor
 * shows them to principals whose scripts came from the original. */
int
uimage_parse(const void *hdr, size_t len, struct uimage_hdr *out, char *err, size_t errlen)
{
	const unsigned char *p = hdr;
	unsigned char copy[UIMAGE_HDRSIZE];

	if (len < UIMAGE_HDRSIZE) {
		snprintf(err, errlen, "image too short: %zu bytes, a header needs %d", len,
			 UIMAGE_HDRSIZE);
		return -1;
	}
	if (be32(p) != UIMAGE_MAGIC) {
		snprintf(err, errlen, "Bad Magic Number");
		return -1;
	}
	memcpy(copy, p, sizeof(copy));
	memset(copy + 4, 0, 4);
	if (crc_bytes(0, copy, sizeof(copy)) != be32(p + 4)) {
		snprintf(err, errlen, "Bad Header Checksum");
		return -1;
	}
	out->hcrc = be32(p + 4);
	out->time = be32(p + 8);
	out->size = be32(p + 12);
	out->load = be32(p + 16);
	out->ep = be32(p + 20);
	out->dcrc = be32(p + 24);
	out->os = p[28];
	out->arch = p[29];
	out->type = p[30];
	out->comp = p[31];
	memcpy(out->name, p + 32, 32);
	out->name[32] = '\0';
	return 0;
}

int
uimage_verify(const void *img, size_t len, struct uimage_hdr *out, char *err, size_t errlen)
{
	const unsigned char *p = img;

	if (uimage_parse(img, len, out, err, errlen) == -1)
		return -1;
	if (len - UIMAGE_HDRSIZE < out->size) {
		snprintf(err, errlen, "image truncated: header says %u data bytes, %zu present",
			 out->size, len - UIMAGE_HDRSIZE);
		return -1;
	}
	if (crc_bytes(0, p + UIMAGE_HDRSIZE, out->size) != out->dcrc) {
		snprintf(err, errlen, "Bad Data CRC");
		return -1;
	}
	return 0;
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

void
uimage_header(unsigned char out[UIMAGE_HDRSIZE], const struct uimage_hdr *h)
{
	memset(out, 0, UIMAGE_HDRSIZE);
	put_be32(out, UIMAGE_MAGIC);
	put_be32(out + 8, h->time);
	put_be32(out + 12, h->size);
	put_be32(out + 16, h->load);
	put_be32(out + 20, h->ep);
	put_be32(out + 24, h->dcrc);
	out[28] = h->os;
	out[29] = h->arch;
	out[30] = h->type;
	out[31] = h->comp;
	memcpy(out + 32, h->name, strnlen(h->name, 32));
	put_be32(out + 4, crc_bytes(0, out, UIMAGE_HDRSIZE));
}

uint8_t
uimage_host_arch(void)
{
#if defined(__x86_64__)
	return 24;
#elif defined(__i386__)
	return 3;
#elif defined(__aarch64__)
	return 22;
#elif defined(__arm__)
	return 2;
#elif defined(__powerpc__) || defined(__powerpc64__)
	return 7;
#elif defined(__riscv)
	return 26;
#elif defined(__s390__)
	return 8;
#elif defined(__mips__)
	return 5;
#else
	return 0;
#endif
}
