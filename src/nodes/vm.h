/* vm: the parts of the QEMU node (node_vm) that can be checked without
 * QEMU: the x86 boot protocol header of a bzImage, the guest's command
 * line (bootargs and the address plan), QEMU's arguments, and the probe of
 * /dev/kvm.  docs/nodes.md describes the vm node as a user sees it. */
#ifndef KH_VM_H
#define KH_VM_H

#include "nodes/node.h"

#include <stddef.h>
#include <stdint.h>

/* Longest kernel command line we pass: x86's COMMAND_LINE_SIZE less its
 * terminator (a kernel may say less in its header: cmdline_size). */
#define VM_CMDLINE_MAX 2047

/* What a bzImage's setup header says (Documentation/arch/x86/boot.rst). */
struct vm_kernel {
	uint16_t version;	  /* boot protocol, e.g. 0x020f for 2.15 */
	uint32_t setup_len;	  /* bytes of real-mode setup, boot sector included */
	uint32_t init_size;	  /* memory the kernel needs to run, from its load address */
	uint32_t cmdline_size;	  /* longest command line, terminator excluded */
	uint32_t initrd_addr_max; /* highest address an initrd may end at */
	uint64_t sys_len;	  /* bytes of protected-mode code after the setup */
	int is64;		  /* xloadflags: it has a 64-bit entry point */
};

/* Parse the bzImage at p (len bytes): boot sector signature, "HdrS", boot
 * protocol 2.10 or later (init_size), loaded high (a bzImage, not a
 * zImage), the setup and the protected-mode code (syssize) within the
 * file.  Returns 0, or -1 with a one-line reason in err. */
int vm_kernel_parse(const void *p, size_t len, struct vm_kernel *k, char *err, size_t errlen);

/* The guest's command line into buf: bootargs as they are, then the plan,
 * for the appliance's /init (docs/nodes.md): "kh.node=NAME" and, per NIC,
 * "kh.eth<slot>=IPV4/20,IPV6/64,mac=MAC" (with ",gw=...,gw6=..." in the
 * external domain).  max: the kernel's limit.  Returns 0, or -1 with err
 * when it does not fit or bootargs holds a control character. */
int vm_cmdline(const char *bootargs, const char *name, int rank, const struct node_nic *nics,
	       int nnics, size_t max, char *buf, size_t len, char *err, size_t errlen);

/* What QEMU is asked to run. */
struct vm_qemu {
	const char *qemu;    /* the program */
	const char *bios;    /* the firmware (qboot), or NULL: QEMU's default */
	const char *name;    /* the node's name */
	int kvm;	     /* 1: -accel kvm; 0: TCG */
	int cpus;	     /* vCPUs */
	uint64_t mem;	     /* guest RAM, bytes (a multiple of 1 MiB) */
	const char *kernel;  /* path */
	const char *initrd;  /* path or NULL */
	const char *cmdline; /* the whole command line */
	const struct node_nic *nics;
	int nnics; /* NIC i's macvtap is descriptor 3+i in QEMU */
};

/* QEMU's arguments, each NUL-terminated, one after the other in buf.
 * Returns argc (argv[0] is q->qemu), or -1 with err when they do not fit. */
int vm_qemu_argv(const struct vm_qemu *q, char *buf, size_t len, char *err, size_t errlen);

/* Memory the node's cgroup allows besides the guest's RAM: QEMU itself,
 * its translation cache under TCG, the devices. */
uint64_t vm_overhead(uint64_t mem, int kvm);

/* Run a tiny guest on /dev/kvm (in a child, at most timeout_ms) the way a
 * kernel starts: real mode, its own switch to unpaged protected mode and a
 * timed loop there, then long mode with paging; each writes to an I/O port
 * and halts.  Returns 1 when it ran as it should and at native speed, 0
 * (with why) when KVM cannot be used here. */
int vm_kvm_probe(int timeout_ms, char *why, size_t whylen);

#endif
