/* elf: what the dynamic loader reads from an ELF file before it maps it:
 * the interpreter (PT_INTERP) and the dynamic section's DT_NEEDED,
 * DT_RUNPATH and DT_RPATH.  32- and 64-bit, either byte order. */
#ifndef KH_ELF_H
#define KH_ELF_H

#include <stddef.h>
#include <stdint.h>

struct elf_info {
	uint8_t class;	  /* ELFCLASS32 or ELFCLASS64 */
	uint8_t data;	  /* ELFDATA2LSB or ELFDATA2MSB */
	uint16_t type;	  /* ET_EXEC, ET_DYN, ... */
	uint16_t machine; /* EM_X86_64, ... */
	char *interp;	  /* PT_INTERP, or NULL */
	char **needed;	  /* DT_NEEDED in file order */
	size_t nneeded;
	char *runpath; /* DT_RUNPATH, or NULL */
	char *rpath;   /* DT_RPATH, or NULL */
};

/* Read the ELF file at path.  Returns 1 and fills ei (free it with
 * elf_free), 0 when the file is not ELF (no magic: a script, a text file),
 * or -1 with a one-line reason in err when it cannot be read or claims to
 * be ELF but its headers are broken. */
int elf_read(const char *path, struct elf_info *ei, char *err, size_t errlen);
/* The same for an open file descriptor; name is used in messages only. */
int elf_read_fd(int fd, const char *name, struct elf_info *ei, char *err, size_t errlen);
void elf_free(struct elf_info *ei);

/* Debian's multiarch directory name for class and machine
 * ("x86_64-linux-gnu"), or NULL when there is none. */
const char *elf_multiarch(uint8_t class, uint8_t data, uint16_t machine);

#endif
