/* vm-*: the vm node's parts that need no QEMU: a bzImage's setup header
 * (vm-1), the guest's command line with the address plan (vm-2), QEMU's
 * arguments (vm-3), the cgroup's allowance beyond the guest's RAM (vm-4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/vm.h"

static void
put_le(unsigned char *p, uint32_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* A made-up bzImage of len bytes: 4 setup sectors and the boot sector,
 * protocol version, init_size 40 MiB, 64-bit, syssize the rest. */
static unsigned char *
bzimage(size_t len, uint16_t version)
{
	unsigned char *p = calloc(1, len);
	assert_non_null(p);
	for (size_t i = 0x300; i < len; i++)
		p[i] = (unsigned char)(i * 7);
	p[0x1f1] = 4;
	put_le(p + 0x1fe, 0xaa55, 2);
	memcpy(p + 0x202, "HdrS", 4);
	put_le(p + 0x206, version, 2);
	p[0x211] = 1; /* LOADED_HIGH */
	put_le(p + 0x22c, 0x7fffffff, 4);
	put_le(p + 0x236, 3, 2); /* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
	put_le(p + 0x238, 2047, 4);
	put_le(p + 0x260, 40u << 20, 4);
	put_le(p + 0x1f4, (uint32_t)((len - 5 * 512) / 16), 4); /* syssize */
	return p;
}

/* vm-1.1: a well-formed bzImage: what its header says. */
static void
vm_1_1(void **state)
{
	struct vm_kernel k;
	char err[200];
	unsigned char *p = bzimage(65536, 0x020f);

	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), 0);
	assert_int_equal(k.version, 0x020f);
	assert_int_equal(k.setup_len, 5 * 512);
	assert_int_equal(k.init_size, 40u << 20);
	assert_int_equal(k.cmdline_size, 2047);
	assert_int_equal(k.initrd_addr_max, 0x7fffffff);
	assert_int_equal(k.is64, 1);
	free(p);
}

/* vm-1.2: a kernel that lost its tail (the header's syssize says how
 * long it is) is refused; bytes after it (a signature) are fine. */
static void
vm_1_2(void **state)
{
	struct vm_kernel k;
	char err[200];
	unsigned char *p = bzimage(65536, 0x020f);

	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), 0);
	assert_int_equal(k.sys_len, 65536 - 5 * 512);
	assert_int_equal(vm_kernel_parse(p, 60000, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	assert_non_null(strstr(err, "65536"));
	/* a shorter syssize: the rest is a trailer the kernel ignores */
	p[0x1f4] = 0;
	p[0x1f5] = 0x0e; /* 0xe00 paragraphs: 57344 bytes */
	p[0x1f6] = p[0x1f7] = 0;
	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), 0);
	p[0x1f5] = 0;
	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), -1);
	free(p);
}

/* vm-1.3: what is not a bootable bzImage says what it is. */
static void
vm_1_3(void **state)
{
	struct vm_kernel k;
	char err[200];
	unsigned char *p = bzimage(65536, 0x020f);

	assert_int_equal(vm_kernel_parse(p, 100, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too short"));
	p[0x203] = 'x';
	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an x86 bzImage"));
	free(p);
	p = bzimage(65536, 0x0209);
	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "boot protocol 2.09 is too old"));
	free(p);
	p = bzimage(65536, 0x020f);
	p[0x211] = 0;
	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "zImage"));
	p[0x211] = 1;
	p[0x1f1] = 200; /* 201 sectors of setup in a 64 KiB file */
	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	p[0x1f1] = 0; /* 0 means 4 */
	assert_int_equal(vm_kernel_parse(p, 65536, &k, err, sizeof(err)), 0);
	assert_int_equal(k.setup_len, 5 * 512);
	free(p);
}

static const struct node_nic nics[] = {
    {.slot = 0, .netid = 1, .fd = 7, .mac = {0x02, 0x4b, 0, 1, 0, 5}, .mtu = 1500},
    {.slot = 2, .netid = 3, .fd = 8, .mac = {0x02, 0x4b, 0, 3, 0, 5}, .mtu = 9000},
};

/* vm-2.1: bootargs as they are, then the plan: the node's name, each
 * interface at its slot, the external domain's gateways. */
static void
vm_2_1(void **state)
{
	char buf[VM_CMDLINE_MAX + 1], err[200];

	assert_int_equal(vm_cmdline("  console=ttyS0 panic=-1  ", "kh0000002a-n5", 5, nics, 2,
				    VM_CMDLINE_MAX, buf, sizeof(buf), err, sizeof(err)),
			 0);
	assert_string_equal(buf, "console=ttyS0 panic=-1 kh.node=kh0000002a-n5 "
				 "kh.eth0=10.0.16.6/20,fd4b:6b68:1::6/64,mac=02:4b:00:01:00:05,"
				 "gw=10.0.31.254,gw6=fd4b:6b68:1::ffe "
				 "kh.eth2=10.0.48.6/20,fd4b:6b68:3::6/64,mac=02:4b:00:03:00:05");
	/* no bootargs, no interfaces */
	assert_int_equal(
	    vm_cmdline(NULL, "n", 0, NULL, 0, VM_CMDLINE_MAX, buf, sizeof(buf), err, sizeof(err)),
	    0);
	assert_string_equal(buf, "kh.node=n");
	assert_int_equal(
	    vm_cmdline("", "n", 0, NULL, 0, VM_CMDLINE_MAX, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, "kh.node=n");
}

/* vm-2.2: what cannot be passed is refused with a reason. */
static void
vm_2_2(void **state)
{
	char buf[VM_CMDLINE_MAX + 1], err[200], *big = malloc(3000);

	assert_int_equal(
	    vm_cmdline("a\nb", "n", 0, NULL, 0, VM_CMDLINE_MAX, buf, sizeof(buf), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "control character (0x0a)"));
	memset(big, 'x', 2999);
	big[2999] = '\0';
	assert_int_equal(
	    vm_cmdline(big, "n", 0, NULL, 0, VM_CMDLINE_MAX, buf, sizeof(buf), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "longer than 2047 bytes"));
	/* exactly at the limit fits; one more does not */
	big[2047 - 10] = '\0'; /* + " kh.node=n" is 10 */
	assert_int_equal(
	    vm_cmdline(big, "n", 0, NULL, 0, VM_CMDLINE_MAX, buf, sizeof(buf), err, sizeof(err)),
	    0);
	assert_int_equal(strlen(buf), 2047);
	big[2047 - 10] = 'x';
	big[2047 - 9] = '\0';
	assert_int_equal(
	    vm_cmdline(big, "n", 0, NULL, 0, VM_CMDLINE_MAX, buf, sizeof(buf), err, sizeof(err)),
	    -1);
	/* a kernel that takes less */
	assert_int_equal(
	    vm_cmdline("console=ttyS0", "n", 0, NULL, 0, 16, buf, sizeof(buf), err, sizeof(err)),
	    -1);
	free(big);
}

/* Split QEMU's packed arguments. */
static int
unpack(const char *buf, int argc, const char **argv)
{
	for (int i = 0; i < argc; i++) {
		argv[i] = buf;
		buf += strlen(buf) + 1;
	}
	return argc;
}

static int
find(const char **argv, int argc, const char *opt)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], opt) == 0)
			return i;
	return -1;
}

/* vm-3.1: QEMU's arguments: nothing by default, the node's size, the
 * kernel and ramdisk, the console on standard input and output, one
 * virtio-net per NIC on its descriptor (3, 4, ...). */
static void
vm_3_1(void **state)
{
	char buf[8192], err[200];
	const char *argv[128];
	struct vm_qemu q = {.qemu = "/usr/bin/qemu-system-x86_64",
			    .bios = "/usr/share/qemu/qboot.rom",
			    .name = "kh0000002a-n5",
			    .kvm = 0,
			    .cpus = 2,
			    .mem = 256ULL << 20,
			    .kernel = "/d/run/n5/kernel",
			    .initrd = "/d/run/n5/initrd",
			    .cmdline = "console=ttyS0 kh.node=kh0000002a-n5",
			    .nics = nics,
			    .nnics = 2};
	int argc = vm_qemu_argv(&q, buf, sizeof(buf), err, sizeof(err)), i;

	assert_true(argc > 20 && argc < 128);
	unpack(buf, argc, argv);
	assert_string_equal(argv[0], "/usr/bin/qemu-system-x86_64");
	for (const char *const *o = (const char *const[]){"-nodefaults", "-no-user-config",
							  "-nographic", "-no-reboot", NULL};
	     *o; o++)
		assert_true(find(argv, argc, *o) > 0);
	assert_string_equal(
	    argv[find(argv, argc, "-sandbox") + 1],
	    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	assert_string_equal(argv[find(argv, argc, "-accel") + 1], "tcg");
	assert_string_equal(argv[find(argv, argc, "-bios") + 1], "/usr/share/qemu/qboot.rom");
	assert_string_equal(argv[find(argv, argc, "-smp") + 1], "2");
	assert_string_equal(argv[find(argv, argc, "-m") + 1], "256M");
	assert_string_equal(argv[find(argv, argc, "-kernel") + 1], "/d/run/n5/kernel");
	assert_string_equal(argv[find(argv, argc, "-initrd") + 1], "/d/run/n5/initrd");
	assert_string_equal(argv[find(argv, argc, "-append") + 1],
			    "console=ttyS0 kh.node=kh0000002a-n5");
	assert_string_equal(argv[find(argv, argc, "-chardev") + 1], "stdio,id=con,signal=off");
	assert_string_equal(argv[find(argv, argc, "-serial") + 1], "chardev:con");
	i = find(argv, argc, "-netdev");
	assert_string_equal(argv[i + 1], "tap,id=eth0,fd=3");
	assert_string_equal(argv[i + 3],
			    "virtio-net-pci,netdev=eth0,mac=02:4b:00:01:00:05,host_mtu=1500");
	assert_string_equal(argv[i + 5], "tap,id=eth2,fd=4");
	assert_string_equal(argv[i + 7],
			    "virtio-net-pci,netdev=eth2,mac=02:4b:00:03:00:05,host_mtu=9000");
	/* KVM, no ramdisk */
	q.kvm = 1;
	q.initrd = NULL;
	q.bios = NULL;
	argc = vm_qemu_argv(&q, buf, sizeof(buf), err, sizeof(err));
	unpack(buf, argc, argv);
	assert_string_equal(argv[find(argv, argc, "-accel") + 1], "kvm");
	assert_string_equal(argv[find(argv, argc, "-cpu") + 1], "host");
	assert_int_equal(find(argv, argc, "-initrd"), -1);
	assert_int_equal(find(argv, argc, "-bios"), -1);
	/* too small a buffer */
	assert_int_equal(vm_qemu_argv(&q, buf, 100, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 100 bytes"));
}

/* vm-4.1: the cgroup allows QEMU's own memory besides the guest's, more
 * under TCG (its translation cache), growing with the guest. */
static void
vm_4_1(void **state)
{
	uint64_t small = vm_overhead(256ULL << 20, 0), big = vm_overhead(4ULL << 30, 0);

	assert_true(small >= 64ULL << 20);
	assert_true(big > small);
	assert_true(vm_overhead(256ULL << 20, 1) < small);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(vm_1_1), cmocka_unit_test(vm_1_2),
					   cmocka_unit_test(vm_1_3), cmocka_unit_test(vm_2_1),
					   cmocka_unit_test(vm_2_2), cmocka_unit_test(vm_3_1),
					   cmocka_unit_test(vm_4_1)};
	return cmocka_run_group_tests_name("vm", tests, NULL, NULL);
}
