/* elf: read an ELF file's program headers and dynamic section the way the
 * dynamic loader does (through PT_LOAD's address-to-offset map), so that
 * khappliance learns a program's libraries without running anything. */
#include "appliance/elf.h"
#include "common/util.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PHNUM  4096
#define MAX_DYN	   (1u << 20)  /* entries in a dynamic section */
#define MAX_STRTAB (64u << 20) /* bytes of the dynamic string table */
#define MAX_INTERP 4096	       /* PT_INTERP, terminator included */
#define MAX_LOADS  64

struct load {
	uint64_t vaddr, off, filesz;
};

struct rd {
	int fd;
	const char *name;
	uint64_t size;
	uint8_t class, data;
	char *err;
	size_t errlen;
};

static uint64_t
get(const struct rd *r, const unsigned char *p, int n)
{
	uint64_t v = 0;

	if (r->data == ELFDATA2LSB)
		for (int i = n - 1; i >= 0; i--)
			v = v << 8 | p[i];
	else
		for (int i = 0; i < n; i++)
			v = v << 8 | p[i];
	return v;
}

static int
bad(struct rd *r, const char *what)
{
	return seterr(r->err, r->errlen, "%s: broken ELF file: %s", r->name, what);
}

/* Read exactly n bytes at off, all inside the file. */
static int
rd_at(struct rd *r, uint64_t off, void *buf, size_t n, const char *what)
{
	size_t got = 0;

	if (off > r->size || n > r->size - off)
		return bad(r, what);
	while (got < n) {
		ssize_t k = pread(r->fd, (char *)buf + got, n - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return seterr(r->err, r->errlen, "%s: %s", r->name, strerror(errno));
		if (k == 0)
			return bad(r, what);
		got += (size_t)k;
	}
	return 0;
}

static char *
dupstr(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

void
elf_free(struct elf_info *ei)
{
	free(ei->interp);
	for (size_t i = 0; i < ei->nneeded; i++)
		free(ei->needed[i]);
	free(ei->needed);
	free(ei->runpath);
	free(ei->rpath);
	memset(ei, 0, sizeof(*ei));
}

/* The file offset of address v, through the PT_LOAD segments. */
static int
vtoff(const struct load *l, size_t nl, uint64_t v, uint64_t *off)
{
	for (size_t i = 0; i < nl; i++)
		if (v >= l[i].vaddr && v - l[i].vaddr < l[i].filesz) {
			*off = l[i].off + (v - l[i].vaddr);
			return 0;
		}
	return -1;
}

/* A string of the dynamic string table, checked to end inside it. */
static int
dynstr(struct rd *r, const char *tab, uint64_t tablen, uint64_t idx, char **out)
{
	if (idx >= tablen || memchr(tab + idx, '\0', tablen - idx) == NULL)
		return bad(r, "a dynamic string lies outside the string table");
	*out = dupstr(tab + idx);
	return 0;
}

static int
read_dynamic(struct rd *r, uint64_t doff, uint64_t dsz, const struct load *l, size_t nl,
	     struct elf_info *ei)
{
	size_t esz = r->class == ELFCLASS64 ? 16 : 8, w = r->class == ELFCLASS64 ? 8 : 4;
	uint64_t n = dsz / esz, strtab = 0, strsz = 0, off;
	int have_strtab = 0, rc = -1;
	unsigned char *d = NULL;
	char *tab = NULL;

	if (n > MAX_DYN)
		return bad(r, "dynamic section too large");
	if (n == 0)
		return 0;
	if ((d = malloc(n * esz)) == NULL)
		abort();
	if (rd_at(r, doff, d, n * esz, "dynamic section outside the file") < 0)
		goto out;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t tag = get(r, d + i * esz, (int)w), val = get(r, d + i * esz + w, (int)w);
		if (tag == DT_NULL) {
			n = i;
			break;
		}
		if (tag == DT_STRTAB) {
			strtab = val;
			have_strtab = 1;
		} else if (tag == DT_STRSZ)
			strsz = val;
	}
	int want = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t tag = get(r, d + i * esz, (int)w);
		want |= tag == DT_NEEDED || tag == DT_RUNPATH || tag == DT_RPATH;
	}
	if (!want) {
		rc = 0;
		goto out;
	}
	if (!have_strtab || strsz == 0 || strsz > MAX_STRTAB)
		goto broken;
	if (vtoff(l, nl, strtab, &off) < 0)
		goto broken;
	if ((tab = malloc(strsz)) == NULL)
		abort();
	if (rd_at(r, off, tab, strsz, "string table outside the file") < 0)
		goto out;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t tag = get(r, d + i * esz, (int)w), val = get(r, d + i * esz + w, (int)w);
		char *s = NULL;
		if (tag != DT_NEEDED && tag != DT_RUNPATH && tag != DT_RPATH)
			continue;
		if (dynstr(r, tab, strsz, val, &s) < 0)
			goto out;
		if (tag == DT_NEEDED) {
			char **nn = realloc(ei->needed, (ei->nneeded + 1) * sizeof(*nn));
			if (nn == NULL)
				abort();
			ei->needed = nn;
			ei->needed[ei->nneeded++] = s;
		} else if (tag == DT_RUNPATH && ei->runpath == NULL)
			ei->runpath = s;
		else if (tag == DT_RPATH && ei->rpath == NULL)
			ei->rpath = s;
		else
			free(s);
	}
	rc = 0;
	goto out;
broken:
	bad(r, "no usable dynamic string table");
out:
	free(tab);
	free(d);
	return rc;
}

int
elf_read_fd(int fd, const char *name, struct elf_info *ei, char *err, size_t errlen)
{
	unsigned char id[EI_NIDENT], eh[64], ph[56];
	struct load loads[MAX_LOADS];
	size_t nl = 0;
	uint64_t doff = 0, dsz = 0, ioff = 0, isz = 0;
	int have_dyn = 0, have_interp = 0;
	struct stat st;
	struct rd r = {.fd = fd, .name = name, .err = err, .errlen = errlen};

	memset(ei, 0, sizeof(*ei));
	if (fstat(fd, &st) < 0)
		return seterr(err, errlen, "%s: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size < EI_NIDENT)
		return 0;
	r.size = (uint64_t)st.st_size;
	if (rd_at(&r, 0, id, sizeof(id), "short read") < 0)
		return -1;
	if (memcmp(id, ELFMAG, SELFMAG) != 0)
		return 0;
	r.class = id[EI_CLASS];
	r.data = id[EI_DATA];
	if ((r.class != ELFCLASS32 && r.class != ELFCLASS64) ||
	    (r.data != ELFDATA2LSB && r.data != ELFDATA2MSB))
		return bad(&r, "unknown class or byte order");
	int is64 = r.class == ELFCLASS64;
	size_t ehsz = is64 ? 64 : 52, phsz = is64 ? 56 : 32;
	if (rd_at(&r, 0, eh, ehsz, "header truncated") < 0)
		return -1;
	ei->class = r.class;
	ei->data = r.data;
	ei->type = (uint16_t)get(&r, eh + 16, 2);
	ei->machine = (uint16_t)get(&r, eh + 18, 2);
	uint64_t phoff = is64 ? get(&r, eh + 32, 8) : get(&r, eh + 28, 4);
	uint64_t phentsize = get(&r, eh + (is64 ? 54 : 42), 2);
	uint64_t phnum = get(&r, eh + (is64 ? 56 : 44), 2);
	if (phnum == 0)
		return 1; /* an object file: nothing for the loader */
	if (phentsize < phsz || phnum > MAX_PHNUM)
		return bad(&r, "bad program header table");
	for (uint64_t i = 0; i < phnum; i++) {
		if (rd_at(&r, phoff + i * phentsize, ph, phsz, "program headers outside the file") <
		    0)
			return -1;
		uint64_t type = get(&r, ph, 4), off, vaddr, filesz;
		if (is64) {
			off = get(&r, ph + 8, 8);
			vaddr = get(&r, ph + 16, 8);
			filesz = get(&r, ph + 32, 8);
		} else {
			off = get(&r, ph + 4, 4);
			vaddr = get(&r, ph + 8, 4);
			filesz = get(&r, ph + 16, 4);
		}
		if (type == PT_LOAD && nl < MAX_LOADS)
			loads[nl++] = (struct load){vaddr, off, filesz};
		else if (type == PT_DYNAMIC && !have_dyn) {
			have_dyn = 1;
			doff = off;
			dsz = filesz;
		} else if (type == PT_INTERP && !have_interp) {
			have_interp = 1;
			ioff = off;
			isz = filesz;
		}
	}
	if (have_interp) {
		char buf[MAX_INTERP];
		if (isz == 0 || isz > sizeof(buf))
			return bad(&r, "bad PT_INTERP");
		if (rd_at(&r, ioff, buf, isz, "PT_INTERP outside the file") < 0)
			return -1;
		if (buf[isz - 1] != '\0' || strlen(buf) != isz - 1 || buf[0] == '\0') {
			return bad(&r, "PT_INTERP is not a string");
		}
		ei->interp = dupstr(buf);
	}
	if (have_dyn && read_dynamic(&r, doff, dsz, loads, nl, ei) < 0) {
		elf_free(ei);
		return -1;
	}
	return 1;
}

int
elf_read(const char *path, struct elf_info *ei, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(ei, 0, sizeof(*ei));
	if (fd < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	int rc = elf_read_fd(fd, path, ei, err, errlen);
	close(fd);
	return rc;
}

const char *
elf_multiarch(uint8_t class, uint8_t data, uint16_t machine)
{
	int le = data == ELFDATA2LSB, is64 = class == ELFCLASS64;

	switch (machine) {
	case EM_X86_64:
		return is64 ? "x86_64-linux-gnu" : "x86_64-linux-gnux32";
	case EM_386:
		return "i386-linux-gnu";
	case EM_AARCH64:
		return "aarch64-linux-gnu";
	case EM_ARM:
		return "arm-linux-gnueabihf";
	case EM_PPC64:
		return le ? "powerpc64le-linux-gnu" : "powerpc64-linux-gnu";
	case EM_PPC:
		return "powerpc-linux-gnu";
	case EM_S390:
		return is64 ? "s390x-linux-gnu" : NULL;
	case EM_RISCV:
		return is64 ? "riscv64-linux-gnu" : NULL;
	case EM_MIPS:
		return is64 ? (le ? "mips64el-linux-gnuabi64" : "mips64-linux-gnuabi64")
			    : (le ? "mipsel-linux-gnu" : "mips-linux-gnu");
	default:
		return NULL;
	}
}
