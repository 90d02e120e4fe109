/* vm_kvm: does /dev/kvm run guests here?  Opening it is not enough: a
 * nested or paravirtual KVM (this project's own test machine has kvm_pvm)
 * may offer /dev/kvm, run a long-mode guest, and still emulate real and
 * unpaged protected mode instruction by instruction, where a kernel's
 * setup and decompressor run: a stock kernel then takes minutes to start.
 * So a tiny guest is run the way a kernel starts: real mode, its own
 * switch to protected mode, a million-iteration loop there (timed), then
 * 64-bit long mode with paging.  It runs in a child with a deadline, so a
 * hung or crashing vCPU costs khd nothing. */
#include "nodes/vm.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MEM  (2u << 20)
#define PROBE_PORT 0xe9

/* Exit codes of the child, and what they mean. */
enum {
	P_OK,
	P_NODEV,
	P_API,
	P_VM,
	P_MEM,
	P_VCPU,
	P_REAL_RUN,
	P_REAL_EXIT,
	P_SLOW,
	P_LONG_SREGS,
	P_LONG_RUN,
	P_LONG_EXIT,
	P_LONG_REGS,
	P_N
};

static const char *const probe_why[P_N] = {
    [P_NODEV] = "no /dev/kvm (or no access to it)",
    [P_API] = "/dev/kvm speaks another API version",
    [P_VM] = "KVM_CREATE_VM failed",
    [P_MEM] = "guest memory could not be set up",
    [P_VCPU] = "KVM_CREATE_VCPU failed",
    [P_REAL_RUN] = "a real-mode guest does not run (KVM_RUN failed)",
    [P_REAL_EXIT] = "a real-mode guest does not run (unexpected exit)",
    [P_SLOW] = "unpaged protected mode is emulated (a million-step loop took over "
	       "100 ms): a "
	       "stock kernel would take minutes to start",
    [P_LONG_SREGS] = "a 64-bit guest cannot be set up (KVM_SET_SREGS failed)",
    [P_LONG_RUN] = "a 64-bit guest does not run (KVM_RUN failed)",
    [P_LONG_EXIT] = "a 64-bit guest does not run (unexpected exit)",
    [P_LONG_REGS] = "a 64-bit guest computed a wrong value",
};

/* Run the vCPU until it writes the probe byte to the port, then until it
 * halts.  Returns 0, or 1 when KVM_RUN failed, 2 on another exit. */
static int
run_to_hlt(int vcpu, struct kvm_run *run, uint8_t want)
{
	int seen = 0;

	for (int i = 0; i < 16; i++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != PROBE_PORT ||
			    run->io.size != 1 || *((uint8_t *)run + run->io.data_offset) != want)
				return 2;
			seen = 1;
			break;
		case KVM_EXIT_HLT:
			return seen ? 0 : 2;
		default:
			return 2;
		}
	}
	return 2;
}

static void
seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = (uint8_t)code64;
	s->db = (uint8_t)!code64;
}

static int __attribute__((noreturn)) probe_child(void)
{
	/* real mode at 0x7000, as a kernel's setup: cli; lgdt [0x6100]; set
	 * CR0.PE; jmp dword 8:0x7016; then 32-bit code without paging, as
	 * its decompressor: mov ax, 0x10; mov ds, ax; mov ecx, 1000000;
	 * 1: add eax, ecx; dec ecx; jnz 1b; mov al, 0x4b; out 0xe9, al; hlt */
	static const uint8_t real[] = {0xfa, 0x0f, 0x01, 0x16, 0x00, 0x61,	 0x0f, 0x20, 0xc0,
				       0x0c, 0x01, 0x0f, 0x22, 0xc0, 0x66,	 0xea, 0x16, 0x70,
				       0x00, 0x00, 0x08, 0x00, 0x66, 0xb8,	 0x10, 0x00, 0x8e,
				       0xd8, 0xb9, 0x40, 0x42, 0x0f, 0x00,	 0x01, 0xc8, 0x49,
				       0x75, 0xfb, 0xb0, 0x4b, 0xe6, PROBE_PORT, 0xf4};
	/* flat 4 GiB code (0x08) and data (0x10) segments, and the GDTR */
	static const uint64_t gdt[] = {0, 0x00cf9a000000ffffULL, 0x00cf92000000ffffULL};
	static const uint8_t gdtr[] = {sizeof(gdt) - 1, 0, 0x00, 0x60, 0x00, 0x00};
	/* long mode at 0x8000: mov al, 0x6b; out 0xe9, al;
	 * mov rax, 0x1122334455667788; hlt */
	static const uint8_t lm[] = {0xb0, 0x6b, 0xe6, PROBE_PORT, 0x48, 0xb8, 0x88, 0x77,
				     0x66, 0x55, 0x44, 0x33,	   0x22, 0x11, 0xf4};
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sr;
	struct kvm_regs r;
	struct kvm_run *run;
	uint8_t *mem;
	uint64_t *pt;
	int kvm, vm, vcpu, mapsz;

	alarm(5); /* a belt to the parent's braces */
	if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		_exit(P_NODEV);
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		_exit(P_API);
	if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0)
		_exit(P_VM);
	mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		_exit(P_MEM);
	region = (struct kvm_userspace_memory_region){.slot = 0,
						      .guest_phys_addr = 0,
						      .memory_size = GUEST_MEM,
						      .userspace_addr = (uintptr_t)mem};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		_exit(P_MEM);
	ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL); /* Intel wants one; AMD ignores it */
	if ((vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0)
		_exit(P_VCPU);
	if ((mapsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) <= 0)
		_exit(P_VCPU);
	run = mmap(NULL, (size_t)mapsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		_exit(P_VCPU);

	/* Real mode, then unpaged protected mode, as a kernel starts. */
	memcpy(mem + 0x6000, gdt, sizeof(gdt));
	memcpy(mem + 0x6100, gdtr, sizeof(gdtr));
	memcpy(mem + 0x7000, real, sizeof(real));
	if (ioctl(vcpu, KVM_GET_SREGS, &sr) < 0)
		_exit(P_REAL_RUN);
	sr.cs.base = 0;
	sr.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sr) < 0)
		_exit(P_REAL_RUN);
	memset(&r, 0, sizeof(r));
	r.rip = 0x7000;
	r.rflags = 2;
	if (ioctl(vcpu, KVM_SET_REGS, &r) < 0)
		_exit(P_REAL_RUN);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	switch (run_to_hlt(vcpu, run, 0x4b)) {
	case 1:
		_exit(P_REAL_RUN);
	case 2:
		_exit(P_REAL_EXIT);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* natively about a millisecond */
	if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > 100)
		_exit(P_SLOW);

	/* Long mode with 4-level paging: identity-mapped first 2 MiB. */
	pt = (uint64_t *)(mem + 0x1000);
	pt[0] = 0x2000 | 3;	 /* PML4 -> PDPT */
	pt[512] = 0x3000 | 3;	 /* PDPT -> PD */
	pt[1024] = 0 | 0x80 | 3; /* PD: one 2 MiB page */
	memcpy(mem + 0x8000, lm, sizeof(lm));
	if (ioctl(vcpu, KVM_GET_SREGS, &sr) < 0)
		_exit(P_LONG_SREGS);
	sr.cr3 = 0x1000;
	sr.cr4 = 1u << 5;		  /* PAE */
	sr.cr0 = 0x80050033;		  /* PG WP NE ET MP PE */
	sr.efer = (1u << 8) | (1u << 10); /* LME LMA */
	seg(&sr.cs, 8, 11, 1);
	seg(&sr.ds, 16, 3, 0);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	if (ioctl(vcpu, KVM_SET_SREGS, &sr) < 0)
		_exit(P_LONG_SREGS);
	memset(&r, 0, sizeof(r));
	r.rip = 0x8000;
	r.rsp = 0x100000;
	r.rflags = 2;
	if (ioctl(vcpu, KVM_SET_REGS, &r) < 0)
		_exit(P_LONG_SREGS);
	switch (run_to_hlt(vcpu, run, 0x6b)) {
	case 1:
		_exit(P_LONG_RUN);
	case 2:
		_exit(P_LONG_EXIT);
	}
	if (ioctl(vcpu, KVM_GET_REGS, &r) < 0 || r.rax != 0x1122334455667788ULL)
		_exit(P_LONG_REGS);
	_exit(P_OK);
}

int
vm_kvm_probe(int timeout_ms, char *why, size_t whylen)
{
	int st = 0;
	pid_t pid, r;

	if (access("/dev/kvm", R_OK | W_OK) < 0)
		return seterr(why, whylen, "%s", probe_why[P_NODEV]), 0;
	if ((pid = fork()) < 0)
		return seterr(why, whylen, "probe: fork: %s", strerror(errno)), 0;
	if (pid == 0)
		probe_child();
	for (int waited = 0;; waited += 5) {
		while ((r = waitpid(pid, &st, WNOHANG)) < 0 && errno == EINTR)
			;
		if (r != 0)
			break;
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return seterr(why, whylen,
				      "a tiny guest did not finish within %d ms (unpaged protected "
				      "mode emulated?): a stock kernel would take minutes to start",
				      timeout_ms),
			       0;
		}
		poll(NULL, 0, 5);
	}
	if (r < 0)
		return seterr(why, whylen, "probe: waitpid: %s", strerror(errno)), 0;
	if (WIFSIGNALED(st))
		return seterr(why, whylen, "the probe was killed by signal %d", WTERMSIG(st)), 0;
	if (WEXITSTATUS(st) == P_OK) {
		if (whylen)
			why[0] = '\0';
		return 1;
	}
	seterr(why, whylen, "%s",
	       WEXITSTATUS(st) < P_N && probe_why[WEXITSTATUS(st)] ? probe_why[WEXITSTATUS(st)]
								   : "the probe failed");
	return 0;
}
