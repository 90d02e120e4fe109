/* machine: allocated nodes as khd runs them.  The boot monitor (firmware/)
 * reaches the node's memory and boot path through the callbacks here.  A
 * node's type says its backend: a ct boot unpacks the ramdisk once per
 * content (image cache) and asks nodes/ct.c for a container over it; a vm
 * boot hands the kernel and ramdisk bytes, bootargs and the node's opened
 * macvtaps to nodes/vm.c, which starts QEMU.  When everything in the node
 * has exited (the VM stopped), the node is back in the monitor and says so. */
#include "khd/machine.h"
#include "allocator/alloc.h"
#include "common/log.h"
#include "common/util.h"
#include "conhold/conhold.h"
#include "console/console.h"
#include "fabric/fabric.h"
#include "firmware/fw.h"
#include "image/cache.h"
#include "image/ramdisk.h"
#include "image/uimage.h"
#include "khd/hosts.h"
#include "khd/khd.h"
#include "khd/meter.h"
#include "memory/mem.h"
#include "nodes/cgroup.h"
#include "nodes/exits.h"
#include "nodes/userns.h"
#include "nodes/vm.h"
#include "rdma/rdma.h"
#include "state/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

struct machine *
machine_of(struct khd *k, int rank)
{
	if (k->mach == NULL || rank < 0 || rank >= KH_MAX_NODES)
		return NULL;
	return k->mach[rank];
}

static void
m_out(void *ctx, const char *s, size_t n)
{
	struct machine *m = ctx;
	console_output(m->k, m->rank, s, n);
}

static int
m_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct machine *m = ctx;
	return mem_read(m->mem, addr, buf, len);
}

static int
m_write(void *ctx, uint64_t addr, const void *buf, size_t len)
{
	struct machine *m = ctx;
	return mem_write(m->mem, addr, buf, len);
}

static void machine_stop(struct machine *m, int wait_ms);

static void
m_reset(void *ctx)
{
	struct machine *m = ctx;
	machine_stop(m, 200);
	mem_wipe(m->mem);
}

static void console_event(struct ev *ev, int fd, int events, void *arg);
static void prep_later(struct khd *k);
static void exit_event(struct ev *ev, int fd, int events, void *arg);

/* The blob holding the image at addr: the mapped blob when the image is
 * exactly what one mrw loaded, else a copy of the uImage's bytes. */
static struct blob *
image_blob(struct machine *m, uint64_t addr, char *err, size_t errlen)
{
	unsigned char hdr[UIMAGE_HDRSIZE];
	struct uimage_hdr uh;
	size_t avail = 0;
	struct blob *b = mem_blob_at(m->mem, addr, &avail);

	if (b && avail == blob_len(b)) {
		blob_ref(b);
		return b;
	}
	if (mem_read(m->mem, addr, hdr, sizeof(hdr)) == 0 &&
	    uimage_parse(hdr, sizeof(hdr), &uh, err, errlen) == 0 &&
	    (b = mem_blob_get(m->mem, addr, UIMAGE_HDRSIZE + (size_t)uh.size)) != NULL)
		return b;
	if (b) { /* part of a blob: from addr to its end */
		b = mem_blob_get(m->mem, addr, avail);
		if (b)
			return b;
	}
	snprintf(err, errlen, "no image loaded at 0x%llx", (unsigned long long)addr);
	return NULL;
}

static void
settle_tick(struct ev *ev, void *arg)
{
	struct khd *k = arg;
	(void)ev;
	k->settle_timer = 0;
	machines_settle(k);
}

/* Boots come from console lines, many nodes at once: the fabric's batched
 * work is finished when the loop comes round, once for all of them. */
static void
settle_later(struct khd *k)
{
	if ((k->fab || k->rdma) && k->settle_timer == 0)
		k->settle_timer = ev_after(k->ev, 0, settle_tick, k);
}

/* What the next khd needs to find a running node again (state meta
 * "run.n<rank>"): its first process and when that started, and the
 * ramdisk content it runs ("-" when none); "-" alone once it ended. */
static void
record_run(struct machine *m, int running)
{
	char key[32], val[128];
	int n;

	snprintf(key, sizeof(key), "run.n%d", m->rank);
	if (!running) {
		snprintf(val, sizeof(val), "-");
	} else {
		n = snprintf(val, sizeof(val), "%d %llu ", (int)m->h.pid,
			     (unsigned long long)m->start);
		for (int i = 0; i < 32 && m->holds_image; i++)
			n += snprintf(val + n, sizeof(val) - (size_t)n, "%02x", m->image[i]);
		if (!m->holds_image)
			snprintf(val + n, sizeof(val) - (size_t)n, "-");
	}
	if (state_put_meta(m->k->fac.st, key, val) < 0)
		log_warnx("node %d: cannot store its process (a restart of khd would stop it)",
			  m->rank);
}

/* Watch a running node's console and its end. */
static void
m_watch(struct machine *m)
{
	struct khd *k = m->k;

	m->running = 1;
	ev_watch(k->ev, m->h.console, EV_READ, console_event, m);
	if (m->h.pidfd >= 0 && ev_watch(k->ev, m->h.pidfd, EV_READ, exit_event, m) == 0)
		m->watched_pidfd = m->h.pidfd;
}

/* The node is booting: watch it, and let its console outlive khd. */
static void
m_started(struct machine *m)
{
	struct khd *k = m->k;

	m->heard = 0;
	m->boot_ns = now_ns();
	m->start = m->h.start ? m->h.start : node_pid_start(m->h.pid);
	m_watch(m);
	alloc_set_state(&k->fac, fac_node(&k->fac, m->rank), NODE_RUNNING);
	if (k->hold && conhold_hold(k->hold, m->rank, m->h.console) < 0)
		log_warn("node %d: the console holder did not take its console (the node stops "
			 "if khd dies)",
			 m->rank);
	record_run(m, 1);
}

/* The ramdisk a ct node boots (a kernel image is refused: it runs the
 * host's), with a reference for the caller; or NULL with err. */
static struct blob *
ct_ramdisk(struct machine *m, uint64_t kaddr, uint64_t rdaddr, char *err, size_t errlen)
{
	struct khd *k = m->k;
	struct node *n = fac_node(&k->fac, m->rank);
	const struct node_type *t = &k->fac.types[n->type];
	char why[256];
	enum img_kind kind;
	size_t off, len;
	struct blob *b;

	if (kaddr) {
		if ((b = image_blob(m, kaddr, why, sizeof(why))) == NULL) {
			snprintf(err, errlen, "%s", why);
			return NULL;
		}
		int rc =
		    image_classify(blob_data(b), blob_len(b), &kind, &off, &len, why, sizeof(why));
		blob_unref(b);
		if (rc == 0 && kind == IMG_KERNEL) {
			snprintf(err, errlen,
				 "kernel image at 0x%llx: %s nodes run the host kernel "
				 "(boot a ramdisk alone: bootm - $ramfsaddr)",
				 (unsigned long long)kaddr, t->backend);
			return NULL;
		}
		if (rc == 0 && kind != IMG_EMPTY) {
			snprintf(err, errlen, "no kernel image at 0x%llx",
				 (unsigned long long)kaddr);
			return NULL;
		}
	}
	if (rdaddr == 0) {
		snprintf(err, errlen, "no ramdisk to boot");
		return NULL;
	}
	if ((b = image_blob(m, rdaddr, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	if (image_classify(blob_data(b), blob_len(b), &kind, &off, &len, why, sizeof(why)) < 0 ||
	    kind != IMG_RAMDISK) {
		snprintf(err, errlen, "%s",
			 kind == IMG_KERNEL ? "kernel image where the ramdisk should be"
			 : why[0]	    ? why
					    : "not a ramdisk (gzip'd or plain newc cpio)");
		blob_unref(b);
		return NULL;
	}
	return b;
}

/* A node on an agent's host: the ramdisk goes there (once per content),
 * and the node is running from now on as far as its channel is concerned;
 * the agent says if the boot fails. */
static int
m_boot_remote(struct machine *m, uint64_t kaddr, uint64_t rdaddr, char *err, size_t errlen)
{
	struct khd *k = m->k;
	struct blob *b = ct_ramdisk(m, kaddr, rdaddr, err, errlen);
	if (b == NULL)
		return -1;
	int rc = hosts_boot(m, b, err, errlen);
	blob_unref(b);
	if (rc < 0)
		return -1;
	m->heard = 0;
	m->boot_ns = now_ns();
	m->running = 1;
	alloc_set_state(&k->fac, fac_node(&k->fac, m->rank), NODE_RUNNING);
	return 0;
}

/* A ct node: the ramdisk becomes its root file system over the image
 * cache. */
static int
m_boot_ct(struct machine *m, uint64_t kaddr, uint64_t rdaddr, char *err, size_t errlen)
{
	struct khd *k = m->k;
	struct node *n = fac_node(&k->fac, m->rank);
	const struct node_type *t = &k->fac.types[n->type];
	char why[256], lower[PATH_MAX], scratch[PATH_MAX], facid[16], device[PATH_MAX + 32];
	struct blob *b;

	if ((b = ct_ramdisk(m, kaddr, rdaddr, err, errlen)) == NULL)
		return -1;
	if (imgcache_rootfs(k->images, blob_hash(b), blob_data(b), blob_len(b), lower,
			    sizeof(lower), why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		blob_unref(b);
		return -1;
	}
	memcpy(m->image, blob_hash(b), sizeof(m->image));
	m->holds_image = 1;
	blob_unref(b);

	snprintf(scratch, sizeof(scratch), "%s/run/n%d", k->dir, m->rank);
	if (mkdir(scratch, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", scratch, strerror(errno));
		goto fail;
	}
	snprintf(facid, sizeof(facid), "%08x", k->fac.id);
	/* The node's interfaces are up and addressed before its /init runs. */
	if (k->fab && fabric_node_config(k->fab, m->rank, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "network: %s", why);
		goto fail;
	}
	settle_later(k);
	/* Its RDMA device: a node without one still boots (and is told so
	 * by the library when it tries). */
	if (k->rdma && rdma_node_boot(k->rdma, m->rank, n->ifs, n->nifs, t->mem, device,
				      sizeof(device), why, sizeof(why)) < 0) {
		log_warnx("node %d: %s", m->rank, why);
		device[0] = '\0';
	} else if (k->rdma == NULL) {
		device[0] = '\0';
	}
	char images[PATH_MAX], devices[PATH_MAX];
	snprintf(images, sizeof(images), "%s/images", k->dir);
	snprintf(devices, sizeof(devices), "%s/run/rdma", k->dir);
	struct node_spec spec = {.name = m->name,
				 .facility = facid,
				 .rank = m->rank,
				 .cpu_milli = t->cpu_milli,
				 .mem = t->mem,
				 .pids = t->pids,
				 .lower = lower,
				 .scratch = scratch,
				 .images = images,
				 .devices = k->rdma ? devices : NULL,
				 .netns_fd = k->fab ? fabric_node_netns(k->fab, m->rank) : -1,
				 .device = device[0] ? device : NULL,
				 .env = NULL};
	/* a node in the public domain learns where the service interface is */
	for (int i = 0; k->srv != NULL && i < n->nifs; i++)
		if (n->ifs[i] == NETID_PUBLIC)
			spec.env = k->srv_env;
	if (!k->host_ok) {
		snprintf(err, errlen, "this host cannot run %s nodes (see khd.log)", t->backend);
		goto fail;
	}
	if (m->be->boot(&k->host, &spec, &m->h, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	m_started(m);
	return 0;
fail:
	rdma_node_end(k->rdma, m->rank);
	imgcache_put(k->images, m->image);
	m->holds_image = 0;
	return -1;
}

/* The bytes of a kernel or ramdisk for a vm node: the payload of what is
 * at addr (without its uImage header), and an id naming that content. */
static struct blob *
vm_payload(struct machine *m, uint64_t addr, int kernel, const void **p, size_t *len, char *id,
	   size_t idlen, char *err, size_t errlen)
{
	char why[256];
	enum img_kind kind;
	size_t off;
	struct blob *b = image_blob(m, addr, why, sizeof(why));

	if (b == NULL) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	int rc = image_classify(blob_data(b), blob_len(b), &kind, &off, len, why, sizeof(why));
	/* Not a kernel: what a bzImage's header says of it is the clearest
	 * reason (or it is a ramdisk). */
	if (kernel && (rc < 0 || kind != IMG_KERNEL)) {
		struct vm_kernel vk;
		if (rc == 0 && kind == IMG_RAMDISK)
			snprintf(why, sizeof(why), "a ramdisk, not a kernel");
		else if (vm_kernel_parse(blob_data(b), blob_len(b), &vk, why, sizeof(why)) == 0)
			snprintf(why, sizeof(why), "not a kernel image");
		rc = -1;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s at 0x%llx: %s", kernel ? "kernel" : "ramdisk",
			 (unsigned long long)addr, why);
		blob_unref(b);
		return NULL;
	}
	/* A uImage's kernel is a bzImage as it is (mkimage -C none): a bzImage
	 * decompresses itself. */
	struct uimage_hdr uh;
	if (kernel && off == UIMAGE_HDRSIZE &&
	    uimage_parse(blob_data(b), blob_len(b), &uh, why, sizeof(why)) == 0 &&
	    uh.comp != UIMAGE_COMP_NONE) {
		snprintf(err, errlen,
			 "kernel at 0x%llx: a %s uImage (vm nodes take a bzImage as it is: "
			 "mkimage -C none)",
			 (unsigned long long)addr, uimage_comp_name(uh.comp));
		blob_unref(b);
		return NULL;
	}
	/* The kernel unpacks what it can (gzip, xz, zstd ... cpio); a kernel
	 * image is not a ramdisk. */
	if (!kernel && kind == IMG_KERNEL) {
		snprintf(err, errlen, "kernel image where the ramdisk should be (0x%llx)",
			 (unsigned long long)addr);
		blob_unref(b);
		return NULL;
	}
	*p = (const unsigned char *)blob_data(b) + off;
	int n = 0;
	for (int i = 0; i < 32 && (size_t)n + 3 < idlen; i++)
		n += snprintf(id + n, idlen - (size_t)n, "%02x", blob_hash(b)[i]);
	snprintf(id + n, idlen - (size_t)n, "-%zu", off);
	return b;
}

/* Nothing from a booted vm node's console: say so once (the usual cause
 * is a command line without console=ttyS0). */
static void
quiet_tick(struct ev *ev, void *arg)
{
	struct machine *m = arg;
	char msg[200];
	(void)ev;
	m->quiet_timer = 0;
	if (!m->running || m->heard)
		return;
	snprintf(msg, sizeof(msg),
		 "\n## node %d: nothing from the VM's console in %d s (does bootargs have "
		 "console=ttyS0?); reset returns to the monitor\n",
		 m->rank, m->k->vm_quiet_s);
	console_output(m->k, m->rank, msg, strlen(msg));
}

/* A vm node: QEMU boots the kernel (a bzImage, bare or in a uImage) with
 * the ramdisk, bootargs and the node's address plan on its command line;
 * each domain a virtio-net NIC on the node's macvtap. */
static int
m_boot_vm(struct machine *m, uint64_t kaddr, uint64_t rdaddr, char *err, size_t errlen)
{
	struct khd *k = m->k;
	struct node *n = fac_node(&k->fac, m->rank);
	const struct node_type *t = &k->fac.types[n->type];
	char why[256], scratch[PATH_MAX], shared[PATH_MAX], facid[16], kid[96], rid[96];
	struct fabric_tap taps[KH_MAX_IFS];
	struct node_nic nics[KH_MAX_IFS];
	struct blob *kb = NULL, *rb = NULL;
	const void *kp = NULL, *rp = NULL;
	size_t klen = 0, rlen = 0;
	struct vm_kernel vk;
	uint64_t t0 = now_ns();
	int ntaps = 0, rc = -1;

	if (!k->host_ok || !k->host.vm_ok) {
		snprintf(err, errlen, "this host cannot run vm nodes: %s",
			 !k->host_ok ? "no cgroups (see khd.log)" : k->host.vm_why);
		return -1;
	}
	/* Nothing loaded there (bootm - ADDR, or only a ramdisk loaded). */
	unsigned char probe[8] = {0};
	size_t avail = 0;
	if (kaddr == 0 || (mem_blob_at(m->mem, kaddr, &avail) == NULL &&
			   (mem_read(m->mem, kaddr, probe, sizeof(probe)) < 0 ||
			    memcmp(probe, (unsigned char[8]){0}, sizeof(probe)) == 0))) {
		snprintf(err, errlen,
			 "vm nodes boot a kernel: none loaded (khdo loadkernel FILE, or "
			 "bootm KERNEL-ADDR RAMDISK-ADDR)");
		return -1;
	}
	if ((kb = vm_payload(m, kaddr, 1, &kp, &klen, kid, sizeof(kid), err, errlen)) == NULL)
		return -1;
	if (vm_kernel_parse(kp, klen, &vk, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "kernel at 0x%llx: %s", (unsigned long long)kaddr, why);
		goto out;
	}
	if (rdaddr &&
	    (rb = vm_payload(m, rdaddr, 0, &rp, &rlen, rid, sizeof(rid), err, errlen)) == NULL)
		goto out;
	if ((uint64_t)vk.init_size + rlen > t->mem) {
		snprintf(err, errlen,
			 "the kernel (%u MiB to run) and the ramdisk (%zu MiB) do not fit in the "
			 "node's %llu MiB",
			 (vk.init_size + (1u << 20) - 1) >> 20, (rlen + (1u << 20) - 1) >> 20,
			 (unsigned long long)(t->mem >> 20));
		goto out;
	}
	if (k->fab) {
		if (fabric_node_config(k->fab, m->rank, why, sizeof(why)) < 0 ||
		    (ntaps = fabric_node_taps(k->fab, m->rank, taps, KH_MAX_IFS, why,
					      sizeof(why))) < 0) {
			ntaps = 0;
			snprintf(err, errlen, "network: %s", why);
			goto out;
		}
		settle_later(k);
	}
	for (int i = 0; i < ntaps; i++) {
		nics[i] = (struct node_nic){.slot = taps[i].slot,
					    .netid = taps[i].netid,
					    .fd = taps[i].fd,
					    .mtu = taps[i].mtu};
		memcpy(nics[i].mac, taps[i].mac, 6);
	}
	snprintf(scratch, sizeof(scratch), "%s/run/n%d", k->dir, m->rank);
	snprintf(shared, sizeof(shared), "%s/run/vm", k->dir);
	snprintf(facid, sizeof(facid), "%08x", k->fac.id);
	size_t cpus = (size_t)((t->cpu_milli + 999) / 1000);
	struct node_spec spec = {.name = m->name,
				 .facility = facid,
				 .rank = m->rank,
				 .cpu_milli = t->cpu_milli,
				 .mem = t->mem,
				 .pids = t->pids,
				 .scratch = scratch,
				 .netns_fd = k->fab ? fabric_node_netns(k->fab, m->rank) : -1,
				 .kernel = kp,
				 .kernel_len = klen,
				 .kernel_id = kid,
				 .initrd = rp,
				 .initrd_len = rlen,
				 .initrd_id = rp ? rid : NULL,
				 .shared = shared,
				 .cmdline = fw_getenv(m->fw, "bootargs"),
				 .cpus = cpus > 0 ? (int)cpus : 1,
				 .nics = nics,
				 .nnics = ntaps};
	if (m->be->boot(&k->host, &spec, &m->h, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		goto out;
	}
	m_started(m);
	m->quiet_timer = ev_after(k->ev, (uint64_t)k->vm_quiet_s * 1000, quiet_tick, m);
	snprintf(why, sizeof(why), "## Starting the kernel in QEMU (%s, %d vCPU%s, %llu MiB)\n",
		 k->host.kvm ? "KVM" : "TCG: software emulation", spec.cpus,
		 spec.cpus > 1 ? "s" : "", (unsigned long long)(t->mem >> 20));
	console_output(k, m->rank, why, strlen(why));
	log_info("node %d: vm boot: %.2f ms in khd (kernel %zu B, ramdisk %zu B, %d NICs)", m->rank,
		 (double)(now_ns() - t0) / 1e6, klen, rlen, ntaps);
	rc = 0;
out:
	for (int i = 0; i < ntaps; i++)
		close(taps[i].fd);
	if (kb)
		blob_unref(kb);
	if (rb)
		blob_unref(rb);
	return rc;
}

static int
m_boot(void *ctx, uint64_t kaddr, uint64_t rdaddr, char *err, size_t errlen)
{
	struct machine *m = ctx;
	if (hosts_remote(m->k, m->rank) >= 0)
		return m_boot_remote(m, kaddr, rdaddr, err, errlen);
	if (m->be == &node_vm)
		return m_boot_vm(m, kaddr, rdaddr, err, errlen);
	return m_boot_ct(m, kaddr, rdaddr, err, errlen);
}

void
machine_console_write(struct machine *m, const void *p, size_t n)
{
	if (m->running && hosts_remote(m->k, m->rank) >= 0) {
		hosts_input(m, p, n);
		meter_console(m->k, m->rank, (uint64_t)n, 0);
		return;
	}
	if (!m->running || m->h.console < 0)
		return;
	/* A node that does not read its console loses input, like a serial
	 * line without flow control; khd never blocks on it. */
	ssize_t w = write(m->h.console, p, n);
	if (w > 0)
		meter_console(m->k, m->rank, (uint64_t)w, 0);
}

static void
drain_console(struct machine *m)
{
	char buf[8192];
	ssize_t n;
	while (m->h.console >= 0 && (n = read(m->h.console, buf, sizeof(buf))) > 0)
		console_output(m->k, m->rank, buf, (size_t)n);
}

/* What a vm node's end says: QEMU ends with status 0 when the guest
 * powers off, reboots or panics (-no-reboot, panic=-1); otherwise its own
 * last complaint (its log) says why. */
static void
vm_ended_msg(struct khd *k, int rank, int status, char *msg, size_t len)
{
	char path[PATH_MAX + 32], buf[4096], *line = NULL;
	ssize_t n = 0;
	int fd;

	if (WIFSIGNALED(status)) {
		snprintf(msg, len,
			 "\n## node %d: QEMU was killed by signal %d; back in the monitor\n", rank,
			 WTERMSIG(status));
		return;
	}
	if (WEXITSTATUS(status) == 0) {
		snprintf(
		    msg, len,
		    "\n## node %d: the VM stopped (powered off, rebooted or panicked); back in "
		    "the monitor\n",
		    rank);
		return;
	}
	snprintf(path, sizeof(path), "%s/run/n%d/qemu.log", k->dir, rank);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		off_t end = lseek(fd, 0, SEEK_END);
		if (end > 0 &&
		    lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0,
			  SEEK_SET) >= 0)
			n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n > 0) {
		buf[n] = '\0';
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			buf[--n] = '\0';
		line = strrchr(buf, '\n');
		line = line ? line + 1 : buf;
	}
	snprintf(msg, len, "\n## node %d: QEMU failed (status %d): %.300s; back in the monitor\n",
		 rank, WEXITSTATUS(status), line && *line ? line : "no message");
}

/* An adopted node's first process is not khd's child: its exit code is
 * what the kernel's taskstats said of it (exits.h), when it said. */
static void
exits_event(struct ev *ev, int fd, int events, void *arg)
{
	struct khd *k = arg;
	(void)ev;
	(void)fd;
	(void)events;
	exits_drain(k->exits);
}

static void
exits_done(struct khd *k)
{
	if (k->exits_watched >= 0)
		ev_unwatch(k->ev, k->exits_watched);
	k->exits_watched = -1;
	if (k->exits && exits_lost(k->exits))
		log_warnx("exits: %lu messages about ended processes were dropped (unread in time)",
			  exits_lost(k->exits));
	exits_close(k->exits);
	k->exits = NULL;
}

/* Keep the exit code of adopted node m's first process.  Listening costs
 * khd a message per process that ends on the host, so only while some
 * adopted node runs. */
static void
exits_adopt(struct machine *m)
{
	struct khd *k = m->k;
	char why[256];

	if (k->exits == NULL) {
		if ((k->exits = exits_open(why, sizeof(why))) == NULL) {
			log_warnx("%s: adopted nodes end with their status unknown", why);
			return;
		}
		k->exits_watched = exits_fd(k->exits);
		if (ev_watch(k->ev, k->exits_watched, EV_READ, exits_event, k) < 0) {
			k->exits_watched = -1;
			exits_done(k);
			return;
		}
	}
	if (exits_watch(k->exits, m->h.pid) == 0)
		m->adopted_pid = m->h.pid;
}

/* Its exit code, and the listener let go with the last adopted node. */
static int
exits_forget(struct machine *m, int *status)
{
	struct khd *k = m->k;
	int known = 0;

	if (m->adopted_pid <= 0)
		return 0;
	known = exits_status(k->exits, m->adopted_pid, status);
	exits_unwatch(k->exits, m->adopted_pid);
	m->adopted_pid = 0;
	if (exits_watching(k->exits) == 0)
		exits_done(k);
	return known;
}

/* The node ended (everything in it exited, or it was killed): back to the
 * monitor. */
static void
node_ended(struct machine *m, int status, int quiet)
{
	struct khd *k = m->k;
	char msg[512];
	int adopted = m->h.adopted;

	if (adopted && exits_forget(m, &status))
		adopted = 0; /* its status is known after all */

	drain_console(m);
	if (m->h.console >= 0) {
		ev_unwatch(k->ev, m->h.console);
		close(m->h.console);
		m->h.console = -1;
	}
	conhold_drop(k->hold, m->rank);
	record_run(m, 0);
	/* By number: reap and kill close the pidfd and forget it, and a
	 * handler left behind would meet the next file with that number
	 * (the node's next console) and keep it from being watched. */
	if (m->watched_pidfd >= 0)
		ev_unwatch(k->ev, m->watched_pidfd);
	m->watched_pidfd = -1;
	if (m->holds_image)
		imgcache_put(k->images, m->image);
	m->holds_image = 0;
	m->running = 0;
	m->dying = 0;
	/* Its device contexts and regions are revoked (in effect once
	 * machines_settle has run: at the latest when the loop comes round). */
	rdma_node_end(k->rdma, m->rank);
	settle_later(k);
	prep_later(k); /* its next cgroup */
	meter_node_ended(k, m->rank);
	if (k->fab)
		fabric_node_down(k->fab, m->rank);
	struct node *n = fac_node(&k->fac, m->rank);
	/* A node being released is written free by the release itself: a
	 * "monitor" row now, after its commit, would name its old owner and
	 * a deleted channel (and a restart would refuse the state). */
	if (n && n->state == NODE_RUNNING && !m->releasing)
		alloc_set_state(&k->fac, n, NODE_MONITOR);
	if (m->quiet_timer)
		ev_cancel(k->ev, m->quiet_timer);
	m->quiet_timer = 0;
	if (!quiet && m->be == &node_vm) {
		vm_ended_msg(k, m->rank, status, msg, sizeof(msg));
		console_output(k, m->rank, msg, strlen(msg));
	} else if (!quiet && adopted) {
		snprintf(msg, sizeof(msg),
			 "\n## node %d: everything in the node exited (status unknown: it was "
			 "started by an earlier khd); back in the monitor\n",
			 m->rank);
		console_output(k, m->rank, msg, strlen(msg));
	} else if (!quiet) {
		if (WIFSIGNALED(status))
			snprintf(
			    msg, sizeof(msg),
			    "\n## node %d: everything in the node exited (killed by signal %d); "
			    "back in the monitor\n",
			    m->rank, WTERMSIG(status));
		else
			snprintf(msg, sizeof(msg),
				 "\n## node %d: everything in the node exited (status %d); back in "
				 "the monitor\n",
				 m->rank, WEXITSTATUS(status));
		console_output(k, m->rank, msg, strlen(msg));
	}
	/* Like a power cycle: the monitor starts afresh (memory is kept, so
	 * "run kboot" boots the same appliance again). */
	fw_reset(m->fw);
	if (!quiet)
		fw_prompt(m->fw);
}

void
machine_ended(struct machine *m, int status, int quiet)
{
	node_ended(m, status, quiet);
}

static void
console_event(struct ev *ev, int fd, int events, void *arg)
{
	struct machine *m = arg;
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof(buf));
	(void)events;
	if (n > 0) {
		m->heard = 1;
		console_output(m->k, m->rank, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EIO: no process holds the console any more; the exit event follows. */
	ev_unwatch(ev, fd);
}

static void
exit_event(struct ev *ev, int fd, int events, void *arg)
{
	struct machine *m = arg;
	int status = 0;
	(void)ev;
	(void)fd;
	(void)events;
	/* Its cgroup's last figures, before reaping removes it. */
	meter_node_sync(m->k, m->rank);
	if (m->be->reap(&m->k->host, &m->h, &status) == 1) {
		int quiet = m->dying;
		node_ended(m, status, quiet);
	}
}

/* Kill everything in the node (reset, release). */
static void
machine_stop(struct machine *m, int wait_ms)
{
	if (!m->running)
		return;
	meter_node_sync(m->k, m->rank); /* usage stops here: the kill reaps the cgroup */
	if (hosts_remote(m->k, m->rank) >= 0) {
		hosts_stop(m); /* its end there is not waited for: a new boot is a new gen */
		node_ended(m, 0, 1);
		return;
	}
	int rc = m->be->kill(&m->k->host, &m->h, wait_ms);
	if (rc == 1)
		node_ended(m, m->h.status, 1);
	else
		m->dying = 1; /* the pidfd event finishes it */
}

static void
node_info(struct khd *k, struct machine *m, struct node *n, struct fw_node_info *fi)
{
	alloc_uni(&k->fac, n, m->uni, sizeof(m->uni));
	alloc_node_addr(n, m->eth0ip, sizeof(m->eth0ip));
	snprintf(m->name, sizeof(m->name), "kh%08x-n%d", k->fac.id, n->rank);
	for (int i = 0; i < n->nifs && i < 16; i++)
		m->netids[i] = (uint32_t)n->ifs[i];
	*fi = (struct fw_node_info){.rank = (uint64_t)n->rank,
				    .uni = m->uni,
				    .name = m->name,
				    .eth0ip = m->eth0ip,
				    .neth = (unsigned)(n->nifs < 16 ? n->nifs : 16),
				    .netid = m->netids,
				    .bootargs = m->be == &node_vm ? KH_VM_BOOTARGS : NULL};
}

static struct machine *
machine_new(struct khd *k, struct node *n)
{
	struct machine *m = calloc(1, sizeof(*m));
	const struct node_type *t = &k->fac.types[n->type];
	struct fw_node_info fi;

	if (m == NULL)
		fatal("machine");
	m->k = k;
	m->rank = n->rank;
	/* config.c accepts ct and vm only */
	m->be = node_backend(t->backend) ? node_backend(t->backend) : &node_ct;
	m->h.console = -1;
	m->h.pidfd = -1;
	m->watched_pidfd = -1;
	sbuf_init(&m->outline);
	m->mem = mem_new(k->blobs, MEM_BASE, t->mem);
	if (m->mem == NULL)
		fatal("machine memory");
	node_info(k, m, n, &fi);
	struct fw_machine fm = {.ctx = m,
				.mem_base = MEM_BASE,
				.mem_size = t->mem,
				.read = m_read,
				.write = m_write,
				.boot = m_boot,
				.reset = m_reset,
				.out = m_out};
	m->fw = fw_new(&fm, &fi);
	if (m->fw == NULL)
		fatal("monitor");
	k->mach[n->rank] = m;
	return m;
}

/* khd stops and leaves the node running: let go of its handle (the
 * console holder keeps the console, the state says where it is). */
static void
machine_leave(struct machine *m)
{
	struct khd *k = m->k;

	if (m->h.console >= 0) {
		ev_unwatch(k->ev, m->h.console);
		close(m->h.console);
		m->h.console = -1;
	}
	if (m->watched_pidfd >= 0)
		ev_unwatch(k->ev, m->watched_pidfd);
	m->watched_pidfd = -1;
	if (m->h.pidfd >= 0)
		close(m->h.pidfd);
	m->h.pidfd = -1;
	free(m->h.dir);
	m->h.dir = NULL;
	if (m->quiet_timer)
		ev_cancel(k->ev, m->quiet_timer);
	m->quiet_timer = 0;
	m->running = 0;
}

static void
machine_free(struct khd *k, struct machine *m)
{
	if (m->running && k->keep_nodes && !m->releasing)
		machine_leave(m);
	machine_stop(m, 1000);
	if (m->running) { /* still dying after 1 s: leave it to the cgroup kill */
		log_warnx("node %d did not die within 1 s of SIGKILL", m->rank);
		node_ended(m, 0, 1);
	}
	console_forget(k, m->rank);
	k->mach[m->rank] = NULL;
	fw_free(m->fw);
	mem_free(m->mem);
	sbuf_free(&m->outline);
	free(m);
}

/* The node's interfaces into its domains.  The allocation is committed
 * already; a fabric that cannot follow is logged loudly (the node then
 * lacks an interface, it never gains a wrong one). */
static void
wire(struct khd *k, struct node *n)
{
	char why[256];
	if (hosts_remote(k, n->rank) >= 0)
		hosts_wire(k, n);
	else if (k->fab && fabric_node_wire(k->fab, n->rank, n->ifs, n->nifs, why, sizeof(why)) < 0)
		log_warnx("node %d: network: %s", n->rank, why);
}

/* Nodes that do not run get ready for their next boot in khd's idle time,
 * a few per turn of the event loop: a ct node's cgroup with its limits
 * (node_ct_prepare, cgroup v1), and a free node's network namespace, so allocations
 * find it ready; then as many namespaces with eth0 already in the
 * external domain, for `khget -x`. */
static void
prep_tick(struct ev *ev, void *arg)
{
	struct khd *k = arg;
	char why[256], facid[16];
	int done = 0, left = 0, nfree = 0;

	k->prep_timer = 0;
	snprintf(facid, sizeof(facid), "%08x", k->fac.id);
	for (int i = 0;
	     k->host_ok && k->host.cg.version == 1 && !k->prep_cg_off && i < k->fac.nnodes; i++) {
		struct node *n = &k->fac.nodes[i];
		const struct node_type *t = &k->fac.types[n->type];
		struct machine *m = machine_of(k, n->rank);
		if ((m && m->running) || node_ct_prepared(&k->host, n->rank) ||
		    strcmp(t->backend, "ct") != 0 || hosts_remote(k, n->rank) >= 0)
			continue;
		if (done == 16) {
			left = 1;
			break;
		}
		struct cgroup_limits lim = {
		    .cpu_milli = t->cpu_milli, .mem = t->mem, .pids = t->pids};
		if (node_ct_prepare(&k->host, facid, n->rank, &lim, why, sizeof(why)) < 0) {
			/* Boots make their own and say what is wrong. */
			log_warnx("node %d: %s (cgroups are no longer made ahead)", n->rank, why);
			k->prep_cg_off = 1;
			break;
		}
		done++;
	}
	done = 0;
	for (int i = 0; k->fab && i < k->fac.nnodes; i++) {
		struct node *n = &k->fac.nodes[i];
		if (n->state != NODE_FREE)
			continue;
		nfree++;
		if (left || fabric_node_netns(k->fab, n->rank) >= 0)
			continue;
		if (done == 16) {
			left = 1;
			continue;
		}
		if (fabric_node_prepare(k->fab, n->rank, why, sizeof(why)) < 0) {
			log_warnx("node %d: network: %s", n->rank, why);
			return; /* tried again after the next release */
		}
		done++;
	}
	if (k->fab && !left && done < 16) {
		int rc = fabric_pool_fill(k->fab, nfree, 16 - done, why, sizeof(why));
		if (rc < 0) {
			log_warnx("network: %s", why);
			return;
		}
		left = rc;
	}
	/* Then a waiting process for each ct node that does not run, once
	 * its cgroup and network namespace are there (node_ct_warm). */
	done = 0;
	for (int i = 0; k->host_ok && !k->prep_warm_off && i < k->fac.nnodes; i++) {
		struct node *n = &k->fac.nodes[i];
		const struct node_type *t = &k->fac.types[n->type];
		struct machine *m = machine_of(k, n->rank);
		int ns = k->fab ? fabric_node_netns(k->fab, n->rank) : -1;
		char scratch[PATH_MAX];
		if ((m && m->running) || strcmp(t->backend, "ct") != 0 ||
		    hosts_remote(k, n->rank) >= 0 || !node_ct_prepared(&k->host, n->rank) ||
		    (k->fab && ns < 0) || node_ct_warmed(&k->host, n->rank, ns))
			continue;
		if (done == 16) {
			left = 1;
			break;
		}
		snprintf(scratch, sizeof(scratch), "%s/run/n%d", k->dir, n->rank);
		if (mkdir(scratch, 0700) < 0 && errno != EEXIST) {
			log_warn("%s (free nodes no longer wait ready)", scratch);
			k->prep_warm_off = 1;
			break;
		}
		char images[PATH_MAX], devices[PATH_MAX];
		snprintf(images, sizeof(images), "%s/images", k->dir);
		snprintf(devices, sizeof(devices), "%s/run/rdma", k->dir);
		struct node_spec spec = {.facility = facid,
					 .rank = n->rank,
					 .mem = t->mem,
					 .scratch = scratch,
					 .images = images,
					 .devices = k->rdma ? devices : NULL,
					 .netns_fd = ns};
		if (node_ct_warm(&k->host, &spec, why, sizeof(why)) < 0) {
			/* Tried again when nodes are next made ready (a node
			 * ends, one is released); three in a row and boots set
			 * their nodes up from the start. */
			if (++k->prep_warm_fails >= 3) {
				log_warnx("node %d: %s (free nodes no longer wait ready)", n->rank,
					  why);
				k->prep_warm_off = 1;
			} else {
				log_warnx("node %d: %s", n->rank, why);
			}
			break;
		}
		k->prep_warm_fails = 0;
		done++;
	}
	if (left)
		k->prep_timer = ev_after(ev, 1, prep_tick, k);
}

static void
prep_later(struct khd *k)
{
	if ((k->fab || k->host_ok) && k->prep_timer == 0)
		k->prep_timer = ev_after(k->ev, 1, prep_tick, k);
}

static void
h_allocated(void *arg, struct node *n)
{
	struct khd *k = arg;
	if (k->mach[n->rank] == NULL)
		machine_new(k, n);
	meter_node_allocated(k, n);
	wire(k, n);
	prep_later(k); /* what the allocation took from the fabric's pool */
}

static int
h_releasing(void *arg, struct node *const *nodes, int n)
{
	return meter_releasing(arg, nodes, n);
}

static void
h_released(void *arg, struct node *n)
{
	struct khd *k = arg;
	struct machine *m = machine_of(k, n->rank);
	/* Charged up to the release, in its transaction: nothing after. */
	meter_node_released(k, n);
	/* Nothing of this principal's node survives: processes, memory. */
	if (m) {
		m->releasing = 1;
		machine_free(k, m);
	}
	rdma_node_discard(k->rdma, n->rank); /* what it moved after the release is not billed */
	if (hosts_remote(k, n->rank) >= 0) {
		hosts_released(k, n->rank);
	} else if (k->fab) {
		fabric_node_release(k->fab, n->rank);
		prep_later(k);
	}
}

static void
h_reset(void *arg, struct node *n)
{
	struct khd *k = arg;
	struct machine *m = machine_of(k, n->rank);
	static const char msg[] = "\nresetting ...\n";
	if (m == NULL)
		return;
	machine_stop(m, 200);
	mem_wipe(m->mem);
	fw_reset(m->fw);
	console_output(k, m->rank, msg, sizeof(msg) - 1);
	fw_prompt(m->fw);
}

static void
h_netchanged(void *arg, struct node *n)
{
	struct khd *k = arg;
	struct machine *m = machine_of(k, n->rank);
	struct fw_node_info fi;
	if (m == NULL)
		return;
	node_info(k, m, n, &fi);
	fw_set_info(m->fw, &fi);
	rdma_node_set(k->rdma, n->rank, n->ifs, n->nifs); /* what it left is revoked */
	wire(k, n);
}

/* DIR/images and DIR/run are tmpfs (dir_tmpfs; one left by a khd that died
 * is reused).  Unpacked ramdisks live in RAM, as the ramdisks they are: on
 * a disk file system, unpacking a busybox appliance's hundreds of links
 * costs more than booting a hundred nodes from it.  DIR/run holds each
 * booted node's directory and sockets (its RDMA device, the console
 * holder's): made on ext4, their inodes cost more of khd's time than the
 * rest of a node's boot in khd.
 *
 * DIR/run as a tmpfs, unless a console holder of an earlier khd that kept
 * it on the disk listens there (its nodes run on: the tmpfs would hide
 * them from us). */
static int
run_tmpfs(const char *path, char *err, size_t errlen)
{
	char sock[PATH_MAX + 32];
	struct statfs sf;
	struct stat st;

	snprintf(sock, sizeof(sock), "%s/conhold.sock", path);
	if (statfs(path, &sf) == 0 && sf.f_type != TMPFS_MAGIC && lstat(sock, &st) == 0) {
		log_info("%s: an earlier khd's console holder is there: kept on the disk", path);
		return 0;
	}
	return dir_tmpfs(path, "kh-run", err, errlen);
}

static void rdma_watch(struct khd *k);

/* The engine's descriptor turned readable outside a request: it died (it
 * is replaced, with every device context) or answered late. */
static void
rdma_event(struct ev *ev, int fd, int events, void *arg)
{
	struct khd *k = arg;
	(void)ev;
	(void)fd;
	(void)events;
	rdma_sync(k->rdma);
	rdma_watch(k);
}

static void
rdma_watch(struct khd *k)
{
	int fd = rdma_fd(k->rdma);
	if (fd == k->rdma_watched)
		return;
	if (k->rdma_watched >= 0)
		ev_unwatch(k->ev, k->rdma_watched);
	k->rdma_watched = -1;
	if (fd >= 0 && ev_watch(k->ev, fd, EV_READ, rdma_event, k) == 0)
		k->rdma_watched = fd;
}

void
machines_settle(struct khd *k)
{
	fabric_flush(k->fab);
	/* Revocations are in effect before the request that made them is
	 * answered. */
	rdma_sync(k->rdma);
	rdma_watch(k);
}

static void hold_watch(struct khd *k);

/* The console holder went away (killed?): without one, the nodes would
 * not outlive khd.  A new holder gets every running node's console. */
static void
hold_event(struct ev *ev, int fd, int events, void *arg)
{
	struct khd *k = arg;
	struct conhold_held *held = NULL;
	char path[PATH_MAX + 16], why[256];
	int nheld = 0, n = 0;

	(void)events;
	ev_unwatch(ev, fd);
	conhold_close(k->hold);
	snprintf(path, sizeof(path), "%s/run", k->dir);
	conhold_forget(path); /* it is dead: whatever else listens there is not it */
	if ((k->hold = conhold_open(path, &held, &nheld, why, sizeof(why))) == NULL) {
		log_warnx("the console holder is gone, and %s: nodes will stop if khd dies", why);
		return;
	}
	for (int i = 0; i < nheld; i++)
		close(held[i].fd);
	free(held);
	for (int r = 0; r < KH_MAX_NODES; r++) {
		struct machine *m = machine_of(k, r);
		if (m && m->running && m->h.console >= 0 &&
		    conhold_hold(k->hold, r, m->h.console) == 0)
			n++;
	}
	log_warnx("the console holder was gone: a new one holds the consoles of %d running nodes",
		  n);
	hold_watch(k);
}

static void
hold_watch(struct khd *k)
{
	if (k->hold && ev_watch(k->ev, conhold_fd(k->hold), EV_READ, hold_event, k) < 0)
		log_warnx("cannot watch the console holder");
}

/* A node an earlier khd left running, found again. */
struct adoptee {
	int ok;
	struct node_handle h;	 /* console from the holder */
	unsigned char image[32]; /* ct: the ramdisk content it runs */
	int has_image;
	uint64_t start, lost;
	int con;       /* the console the holder gave back, or -1 */
	char why[160]; /* why it was not adopted */
};

static int
adoptee_kept(void *arg, int rank)
{
	const struct adoptee *ad = arg;
	return rank >= 0 && rank < KH_MAX_NODES && ad[rank].ok;
}

static int
unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Which running nodes of the state are still there: their first process
 * (state "run.n<rank>") is the one that started then, in the node's
 * cgroup, and the console holder has their console.  The consoles of the
 * others are let go. */
static void
find_adoptees(struct khd *k, const char *facid, struct adoptee *ad)
{
	struct conhold_held *held = NULL;
	int nheld = 0;
	char path[PATH_MAX + 16], why[256];

	snprintf(path, sizeof(path), "%s/run", k->dir);
	if ((k->hold = conhold_open(path, &held, &nheld, why, sizeof(why))) == NULL)
		log_warnx("%s: nodes will stop if khd dies", why);
	for (int i = 0; i < KH_MAX_NODES; i++)
		ad[i].con = -1;
	for (int i = 0; i < nheld; i++)
		if (held[i].rank >= 0 && held[i].rank < KH_MAX_NODES && ad[held[i].rank].con < 0) {
			ad[held[i].rank].con = held[i].fd;
			ad[held[i].rank].lost = held[i].lost;
			held[i].fd = -1;
		}
	for (int i = 0; i < k->fac.nnodes; i++) {
		struct node *n = &k->fac.nodes[i];
		struct adoptee *a = &ad[n->rank];
		char key[32], val[160], img[80] = "";
		int pid = 0, console = a->con;
		unsigned long long start = 0;
		const struct node_type *t = &k->fac.types[n->type];
		const struct node_backend *be = node_backend(t->backend);

		a->con = -1;
		if (n->state != NODE_RUNNING) {
			if (console >= 0)
				close(console);
			continue;
		}
		snprintf(key, sizeof(key), "run.n%d", n->rank);
		if (state_get_meta(k->fac.st, key, val, sizeof(val)) != 1 ||
		    sscanf(val, "%d %llu %79s", &pid, &start, img) < 2) {
			snprintf(a->why, sizeof(a->why), "where it ran is not known");
		} else if (console < 0) {
			snprintf(a->why, sizeof(a->why), "its console was not held");
		} else if (!k->host_ok) {
			snprintf(a->why, sizeof(a->why), "no cgroups");
		} else {
			char dir[PATH_MAX];
			snprintf(dir, sizeof(dir), "%s/run/n%d", k->dir, n->rank);
			if (node_adopt(&k->host, facid, n->rank, be == &node_vm ? dir : NULL,
				       (pid_t)pid, (uint64_t)start, &a->h, why, sizeof(why)) < 0) {
				snprintf(a->why, sizeof(a->why), "%s", why);
			} else {
				a->ok = 1;
				a->start = start;
				a->h.console = console;
				console = -1;
				a->has_image = strlen(img) == 64 && unhex(img, a->image, 32) == 0;
				k->adopted++;
			}
		}
		if (console >= 0)
			close(console);
	}
	/* Consoles of nodes that are gone, or free, or unknown. */
	for (int i = 0; i < nheld; i++) {
		if (held[i].fd >= 0)
			close(held[i].fd);
		if (held[i].rank >= 0 && (held[i].rank >= KH_MAX_NODES || !ad[held[i].rank].ok))
			conhold_drop(k->hold, held[i].rank);
	}
	free(held);
}

/* Take over the running node of a (found by find_adoptees): its
 * processes, console, network and root file system go on as they were. */
static void
adopt(struct machine *m, struct adoptee *a)
{
	struct khd *k = m->k;
	struct node *n = fac_node(&k->fac, m->rank);
	char why[256], path[PATH_MAX + 16];

	m->h = a->h;
	m->start = a->start;
	m->boot_ns = now_ns();
	m->heard = 1;
	if (k->fab) {
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)m->h.pid);
		int ns = open(path, O_RDONLY | O_CLOEXEC);
		/* Its uid range stays its own: no new node may get it. */
		if (ns >= 0 && k->host.uns.on && userns_adopt(&k->host, ns, (int)m->h.pid) < 0)
			log_warnx("node %d: its uid range is not one of this facility's", m->rank);
		if (ns < 0 ||
		    fabric_node_adopt(k->fab, m->rank, ns, n->ifs, n->nifs, why, sizeof(why)) < 0)
			log_warnx("node %d: its interfaces were not taken over: %s", m->rank,
				  ns < 0 ? strerror(errno) : why);
		if (ns >= 0)
			close(ns);
	}
	/* The tree under its root stays while it runs (imgcache_gc spares it). */
	if (a->has_image && imgcache_hold(k->images, a->image, path, sizeof(path)) == 0) {
		memcpy(m->image, a->image, sizeof(m->image));
		m->holds_image = 1;
	}
	/* Its RDMA device, contexts and regions were kept by the engine. */
	if (k->rdma && rdma_node_adopt(k->rdma, m->rank, n->ifs, n->nifs) < 0 && m->be != &node_vm)
		log_warnx("node %d: its RDMA device was not kept (its programs see it fail)",
			  m->rank);
	m_watch(m);
	exits_adopt(m);
	k->console_lost += a->lost;
	log_info("node %d: adopted from an earlier khd (pid %d, %s); %llu bytes of console "
		 "output were lost while no khd ran",
		 m->rank, (int)m->h.pid, m->be->name, (unsigned long long)a->lost);
}

int
machines_init(struct khd *k, char *err, size_t errlen)
{
	char path[PATH_MAX + 16], why[256], facid[16];

	k->mach = calloc(KH_MAX_NODES, sizeof(*k->mach));
	k->blobs = blobstore_new();
	if (k->mach == NULL || k->blobs == NULL)
		fatal("machines");
	snprintf(path, sizeof(path), "%s/images", k->dir);
	if (dir_tmpfs(path, "kh-images", err, errlen) < 0 ||
	    (k->images = imgcache_new(path, err, errlen)) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/run", k->dir);
	if (run_tmpfs(path, err, errlen) < 0)
		return -1;
	/* The front end of several hosts runs no nodes itself: no fabric here. */
	if (k->fac.nhosts > 1 || (k->fac.nhosts == 1 && k->fac.hosts[0].state != HOST_LOCAL)) {
		k->no_fabric = 1;
		k->no_rdma = 1;
	}
	if (node_host_init(&k->host, 0, NULL, why, sizeof(why)) < 0)
		log_warnx("container nodes cannot boot on this host: %s", why);
	else
		k->host_ok = 1;
	/* KH_WARM=off: free ct nodes do not wait ready (every boot sets its
	 * node up from the start, as before node_ct_warm). */
	const char *wm = getenv("KH_WARM");
	k->prep_warm_off = (wm != NULL && strcmp(wm, "off") == 0) || k->host.ctnode_fd < 0;
	const char *qs = getenv("KH_VM_QUIET_S");
	k->vm_quiet_s = qs && atoi(qs) > 0 ? atoi(qs) : KH_VM_QUIET_S;
	int vms = 0;
	for (int t = 0; t < k->fac.ntypes; t++)
		vms |= strcmp(k->fac.types[t].backend, "vm") == 0;
	if (vms && k->host_ok) {
		node_vm_init(&k->host);
		if (!k->host.vm_ok)
			log_warnx("vm nodes cannot boot on this host: %s", k->host.vm_why);
		else
			log_info("vm nodes: %s with %s%s%s (probe %.1f ms)", k->host.qemu,
				 k->host.kvm ? "KVM" : "TCG", k->host.kvm ? "" : ": ",
				 k->host.kvm_why, (double)k->host.kvm_probe_us / 1000);
	}
	snprintf(path, sizeof(path), "%s/khd.log", k->dir);
	k->rdma_watched = -1;
	if (!k->no_rdma && (k->rdma = rdma_start(k->dir, path, why, sizeof(why))) == NULL)
		log_warnx("no RDMA device in nodes: %s", why);
	rdma_watch(k);
	snprintf(facid, sizeof(facid), "%08x", k->fac.id);
	/* What nodes left running by an earlier khd used since its last
	 * sample is charged first (and their counters become the baselines
	 * of the adopted ones). */
	meter_recover(k);
	struct adoptee *ad = calloc(KH_MAX_NODES, sizeof(*ad));
	if (ad == NULL)
		fatal("machines");
	find_adoptees(k, facid, ad);
	/* The rest of what they left is cleared: their processes, and the
	 * files QEMUs had loaded. */
	if (k->host_ok)
		/* (a front end of agents' hosts runs no nodes: any here are theirs) */
		if (k->fac.nhosts <= 1 && k->fac.hosts[0].state == HOST_LOCAL)
			cgroup_facility_clear_but(&k->host.cg, facid, adoptee_kept, ad);
	snprintf(path, sizeof(path), "%s/run", k->dir);
	node_vm_clear(path, adoptee_kept, ad);
	snprintf(path, sizeof(path), "%s/run/fabric.net", k->dir);
	if (k->adopted == 0)
		fabric_unpin(path); /* a dead khd's: its nodes were read and stopped above */
	if (!k->no_fabric &&
	    (k->fab = k->adopted ? fabric_adopt(facid, 1, path, why, sizeof(why))
				 : fabric_new(facid, 1, path, why, sizeof(why))) == NULL)
		log_warnx("no communication domains on this host (nodes get loopback only): %s",
			  why);
	/* Each node's network namespace is owned by its user namespace. */
	if (k->fab && k->host_ok && k->host.uns.on)
		fabric_set_netns_maker(k->fab, userns_fabric_make, userns_fabric_drop, &k->host);
	/* A vm node's interfaces are macvtaps, for its QEMU. */
	for (int i = 0; k->fab && i < k->fac.nnodes; i++) {
		const struct node *n = &k->fac.nodes[i];
		if (strcmp(k->fac.types[n->type].backend, "vm") == 0)
			fabric_node_set_tap(k->fab, n->rank, 1);
	}
	for (int i = 0; i < k->fac.nnodes; i++) {
		struct node *n = &k->fac.nodes[i];
		if (n->state == NODE_FREE)
			continue;
		struct machine *m = machine_new(k, n);
		if (ad[n->rank].ok)
			adopt(m, &ad[n->rank]);
		wire(k, n);
		/* its agent says whether it still runs (hosts.c) */
		if (n->state == NODE_RUNNING && !m->running && hosts_remote(k, n->rank) < 0) {
			alloc_set_state(&k->fac, n, NODE_MONITOR);
			record_run(m, 0);
			log_info("node %d was running when khd stopped: reset to the monitor (%s)",
				 n->rank, ad[n->rank].why[0] ? ad[n->rank].why : "not adopted");
		}
	}
	free(ad);
	int dropped = rdma_adopt_done(k->rdma);
	if (dropped > 0)
		log_info("rdma: %d devices of nodes not adopted were removed", dropped);
	hold_watch(k);
	imgcache_gc(k->images, why, sizeof(why));
	k->hooks = (struct alloc_hooks){.arg = k,
					.allocated = h_allocated,
					.released = h_released,
					.reset = h_reset,
					.netchanged = h_netchanged,
					.releasing = h_releasing};
	k->fac.hooks = &k->hooks;
	prep_later(k);
	return 0;
}

void
machines_close(struct khd *k)
{
	int left = 0;
	for (int i = 0; k->keep_nodes && k->mach && i < KH_MAX_NODES; i++)
		left += k->mach[i] && k->mach[i]->running;
	/* Without the holder their consoles would hang up with us, and the
	 * next khd could not adopt them: they stop. */
	if (left > 0 && k->hold == NULL)
		log_warnx("no console holder: the %d running nodes stop with khd", left);
	k->keep_nodes = left > 0 && k->hold != NULL;
	if (k->mach) {
		for (int i = 0; i < KH_MAX_NODES; i++)
			if (k->mach[i])
				machine_free(k, k->mach[i]);
		free(k->mach);
	}
	if (k->prep_timer)
		ev_cancel(k->ev, k->prep_timer);
	if (k->settle_timer)
		ev_cancel(k->ev, k->settle_timer);
	/* Nodes left running keep their domains (and the next khd its
	 * fabric), and their root file systems their image trees. */
	if (k->keep_nodes)
		fabric_leave(k->fab);
	else
		fabric_free(k->fab);
	k->fab = NULL;
	if (k->hold)
		ev_unwatch(k->ev, conhold_fd(k->hold));
	conhold_close(k->hold);
	k->hold = NULL;
	if (k->keep_nodes)
		log_info("khd stops and leaves %d nodes running (their consoles with the console "
			 "holder)",
			 left);
	exits_done(k);
	if (k->rdma_watched >= 0)
		ev_unwatch(k->ev, k->rdma_watched);
	k->rdma_watched = -1;
	if (k->keep_nodes)
		rdma_leave(k->rdma);
	else
		rdma_stop(k->rdma);
	k->rdma = NULL;
	if (k->images)
		imgcache_free(k->images);
	if (k->blobs)
		blobstore_free(k->blobs);
	if (k->host_ok) {
		char facid[16];
		snprintf(facid, sizeof(facid), "%08x", k->fac.id);
		node_ct_unwarm_all(&k->host);
		for (int r = 0; r < NODE_PREP_RANKS; r++)
			node_ct_unprepare(&k->host, facid, r);
		node_host_close(&k->host);
	}
	char path[PATH_MAX + 16];
	/* With no node left running, nothing of ours stays mounted (a state
	 * directory removed after us leaves no mount behind). */
	snprintf(path, sizeof(path), "%s/images", k->dir);
	if (!k->keep_nodes)
		umount2(path, MNT_DETACH);
	snprintf(path, sizeof(path), "%s/run", k->dir);
	if (!k->keep_nodes)
		umount2(path, MNT_DETACH);
}
