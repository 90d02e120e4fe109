/* vm_qemu: what a vm node's QEMU is told: the guest's command line (the
 * principal's bootargs, then the node's address plan for its /init) and
 * QEMU's own arguments.  Pure functions, so tests see exactly what runs. */
#include "nodes/vm.h"
#include "common/util.h"
#include "fabric/addr.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The machine QEMU emulates.  q35 (PCIe, ACPI for power off, HPET and the
 * ACPI PM timer): QEMU's microvm boots faster when it boots, but under TCG
 * on a loaded host its kernel often fails to calibrate the TSC against the
 * PIT and hangs (no HPET, no PM timer to fall back on).  No SATA, SMBus or
 * USB: nothing a node uses. */
#define VM_MACHINE "q35,sata=off,smbus=off,usb=off"

/* QEMU's seccomp filter, every optional part of it denied. */
#define VM_SANDBOX "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

struct out {
	char *buf;
	size_t len, used;
	int over;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used)
		o->over = 1;
	else
		o->used += (size_t)n;
}

int
vm_cmdline(const char *bootargs, const char *name, int rank, const struct node_nic *nics, int nnics,
	   size_t max, char *buf, size_t len, char *err, size_t errlen)
{
	struct out o = {buf, len < max + 1 ? len : max + 1, 0, 0};
	const char *sep = "";

	if (len == 0)
		return seterr(err, errlen, "no room for the command line");
	buf[0] = '\0';
	if (bootargs) {
		for (const char *c = bootargs; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return seterr(err, errlen,
					      "bootargs holds a control character (0x%02x)",
					      (unsigned char)*c);
		/* Leading and trailing blanks mean nothing to the kernel. */
		while (*bootargs == ' ')
			bootargs++;
		size_t n = strlen(bootargs);
		while (n > 0 && bootargs[n - 1] == ' ')
			n--;
		if (n > 0) {
			put(&o, "%.*s", (int)n, bootargs);
			sep = " ";
		}
	}
	put(&o, "%skh.node=%s", sep, name);
	for (int i = 0; i < nnics; i++) {
		const struct node_nic *c = &nics[i];
		const uint8_t *m = c->mac;
		char a4[32], a6[64], gw[32];
		if (addr_node4(c->netid, rank, a4, sizeof(a4)) < 0)
			return seterr(err, errlen, "node %d is outside the address plan", rank);
		addr_node6(c->netid, rank, a6, sizeof(a6));
		put(&o, " kh.eth%d=%s/%d,%s/64,mac=%02x:%02x:%02x:%02x:%02x:%02x", c->slot, a4,
		    ADDR_PREFIX4, a6, m[0], m[1], m[2], m[3], m[4], m[5]);
		/* The external domain routes through the host (docs/fabric.md). */
		if (c->netid == 1) {
			addr_gateway4(c->netid, gw, sizeof(gw));
			put(&o, ",gw=%s,gw6=fd4b:6b68:%x::%x", gw, c->netid, ADDR_GATEWAY_HOST);
		}
	}
	if (o.over)
		return seterr(err, errlen,
			      "the kernel command line (bootargs and %d interfaces) is longer "
			      "than %zu bytes",
			      nnics, max);
	return 0;
}

/* One argument: formatted, with its terminator. */
static void arg(struct out *o, int *argc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
arg(struct out *o, int *argc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n + 1 > o->len - o->used) {
		o->over = 1;
		return;
	}
	o->used += (size_t)n + 1;
	(*argc)++;
}

int
vm_qemu_argv(const struct vm_qemu *q, char *buf, size_t len, char *err, size_t errlen)
{
	struct out o = {buf, len, 0, 0};
	int argc = 0;

	arg(&o, &argc, "%s", q->qemu);
	arg(&o, &argc, "-name");
	arg(&o, &argc, "%s", q->name);
	/* Nothing but what is asked for: no default devices, no user
	 * configuration files, no display, no monitor. */
	arg(&o, &argc, "-nodefaults");
	arg(&o, &argc, "-no-user-config");
	arg(&o, &argc, "-nographic");
	/* A guest that reboots (or panics, with panic=-1) ends QEMU: the node
	 * is back in its monitor. */
	arg(&o, &argc, "-no-reboot");
	/* QEMU's own seccomp filter (docs/hardening.md): no obsolete system
	 * calls, no setuid and the like, no fork or exec, no scheduler or
	 * affinity changes.  A guest that breaks out of the device model
	 * lands in a process that can do no more than QEMU needs. */
	arg(&o, &argc, "-sandbox");
	arg(&o, &argc, "%s", VM_SANDBOX);
	arg(&o, &argc, "-machine");
	arg(&o, &argc, "%s", VM_MACHINE);
	/* qboot: a firmware that only loads the kernel, silently, in
	 * milliseconds (SeaBIOS prints on the serial port). */
	if (q->bios) {
		arg(&o, &argc, "-bios");
		arg(&o, &argc, "%s", q->bios);
	}
	arg(&o, &argc, "-accel");
	arg(&o, &argc, "%s", q->kvm ? "kvm" : "tcg");
	arg(&o, &argc, "-cpu");
	arg(&o, &argc, "%s", q->kvm ? "host" : "max");
	arg(&o, &argc, "-smp");
	arg(&o, &argc, "%d", q->cpus > 0 ? q->cpus : 1);
	arg(&o, &argc, "-m");
	arg(&o, &argc, "%" PRIu64 "M", q->mem >> 20);
	arg(&o, &argc, "-kernel");
	arg(&o, &argc, "%s", q->kernel);
	if (q->initrd) {
		arg(&o, &argc, "-initrd");
		arg(&o, &argc, "%s", q->initrd);
	}
	arg(&o, &argc, "-append");
	arg(&o, &argc, "%s", q->cmdline);
	/* The serial port is QEMU's standard input and output, the node's
	 * console pty: every byte passes, ^C included (signal=off). */
	arg(&o, &argc, "-chardev");
	arg(&o, &argc, "stdio,id=con,signal=off");
	arg(&o, &argc, "-serial");
	arg(&o, &argc, "chardev:con");
	for (int i = 0; i < q->nnics; i++) {
		const struct node_nic *c = &q->nics[i];
		const uint8_t *m = c->mac;
		arg(&o, &argc, "-netdev");
		arg(&o, &argc, "tap,id=eth%d,fd=%d", c->slot, 3 + i);
		arg(&o, &argc, "-device");
		arg(&o, &argc,
		    "virtio-net-pci,netdev=eth%d,mac=%02x:%02x:%02x:%02x:%02x:%02x,host_mtu=%d",
		    c->slot, m[0], m[1], m[2], m[3], m[4], m[5], c->mtu > 0 ? c->mtu : 1500);
	}
	arg(&o, &argc, "-msg");
	arg(&o, &argc, "timestamp=off");
	if (o.over)
		return seterr(err, errlen, "QEMU's arguments are longer than %zu bytes", len);
	return argc;
}

uint64_t
vm_overhead(uint64_t mem, int kvm)
{
	/* QEMU's own pages (~40 MiB), page tables and device buffers that
	 * grow with the guest, and under TCG its translated code. */
	return (64ULL << 20) + mem / 16 + (kvm ? 0 : (32ULL << 20));
}
