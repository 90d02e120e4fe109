/* syscheck: run inside a node, tries what a node must not do and prints
 * one line per system call: "NAME refused ERRNO" or "NAME allowed".  The
 * arguments are harmless (bad flags, null pointers): a refusal by the
 * seccomp filter shows as EPERM (ENOSYS for clone3 and the 32-bit ABI)
 * before the kernel looks at them.  Built static (tests/e2e/nodes.sh). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void
try(const char *name, long rc)
{
	if (rc < 0)
		printf("%s refused %s\n", name, strerrorname_np(errno));
	else
		printf("%s allowed\n", name);
}

int
main(void)
{
	try("unshare-user", syscall(SYS_unshare, CLONE_NEWUSER));
	try("clone3", syscall(SYS_clone3, NULL, 0));
	try("bpf", syscall(SYS_bpf, -1, NULL, 0));
	try("perf_event_open", syscall(SYS_perf_event_open, NULL, -1, -1, -1, 0));
	try("keyctl", syscall(SYS_keyctl, -1, 0, 0, 0, 0));
	try("init_module", syscall(SYS_init_module, NULL, 0, ""));
	try("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
	try("clock_settime", syscall(SYS_clock_settime, -1, NULL));
	try("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	try("userfaultfd", syscall(SYS_userfaultfd, 0));
	try("setns", syscall(SYS_setns, -1, 0));
	try("syslog", syscall(SYS_syslog, 3, NULL, 0));
	/* what nodes do need */
	try("unshare-uts", syscall(SYS_unshare, 0));
	try("getpid", syscall(SYS_getpid));
	return 0;
}
