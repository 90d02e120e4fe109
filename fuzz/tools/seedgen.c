/* seedgen: writes the binary seeds of fuzz/corpus/ (docs/fuzzing.md), which
 * are kept in the tree; run it again after a format changes:
 *	make build/fuzz/seedgen && build/fuzz/seedgen fuzz/corpus
 * ledger/: exports signed with the fixed key the ledger harness checks
 * with; uimage/, ramdisk/: newc archives, gzip'd, in uImages, with names
 * and links aimed outside the tree; elf/: small ELF files; rdma/: engine
 * scripts (the format is in fuzz/rdma.c); fw/: an mrw of a uImage;
 * link/: frames of every type of the many-hosts link, as each side sends
 * them, and the hostile ones tests/tools/fakeagent.py and fakefront.py
 * send (the format is in fuzz/link.c). */
#include "agent/linkmsg.h"
#include "image/uimage.h"
#include "meter/ledger.h"
#include "rdma/khrdma.h"
#include "rdma/ring.h"

#include <elf.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *top;

static void
put(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", top, dir);
	if (mkdir(path, 0755) == -1 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", top, dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- ledger exports ---- */

static void export(const struct ledger_key *k, const char *name, int nrec, int sig_every,
		   int tamper)
{
	struct sbuf out;
	struct ledger_export x;
	struct ledger_rec r;
	uint8_t prev[LEDGER_HASH_LEN] = {0};
	char err[256];

	sbuf_init(&out);
	if (ledger_export_begin(&x, &out, k, "alice", 0, NULL, err, sizeof(err)) < 0)
		goto fail;
	for (int i = 1; i <= nrec; i++) {
		ledger_rec_init(&r);
		snprintf(r.principal, sizeof(r.principal), "alice");
		r.t0 = 1700000000000ULL + (uint64_t)i * 1000;
		r.t1 = r.t0 + 1000;
		usage_add(&r.use, "cpu", 12345 * (uint64_t)i);
		usage_add(&r.use, "node-time:ct1", 1000);
		usage_add(&r.use, "net-tx:3", (uint64_t)i << 20);
		if (i == 2)
			usage_add(&r.use, "mem-peak", 268435456);
		if (ledger_rec_seal(&r, (uint64_t)i - 1, i > 1 ? prev : NULL, err, sizeof(err)) <
			0 ||
		    ledger_export_rec(&x, &r, err, sizeof(err)) < 0)
			goto fail;
		memcpy(prev, r.hash, sizeof(prev));
		if (sig_every && i % sig_every == 0 && i < nrec) {
			struct ledger_sig s;
			if (ledger_sign(k, "alice", r.seq, r.hash, &s, err, sizeof(err)) < 0 ||
			    ledger_export_sig(&x, &s, err, sizeof(err)) < 0)
				goto fail;
		}
		ledger_rec_free(&r);
	}
	if (ledger_export_end(&x, NULL, err, sizeof(err)) < 0)
		goto fail;
	if (tamper) {
		char *p = strstr(out.s, "cpu=24690");
		if (p)
			p[4] = '3';
	}
	put("ledger", name, out.s, out.len);
	sbuf_free(&out);
	return;
fail:
	fprintf(stderr, "seedgen: ledger: %s\n", err);
	exit(1);
}

static void
ledger_seeds(void)
{
	struct ledger_key k;
	uint8_t seed[32];

	memset(seed, 0x4b, sizeof(seed)); /* fuzz/ledger.c's key */
	crypto_sign_seed_keypair(k.pk, k.sk, seed);
	k.has_sk = 1;
	export(&k, "three", 3, 0, 0);
	export(&k, "blocks", 5, 2, 0);
	export(&k, "empty", 0, 0, 0);
	export(&k, "altered", 3, 0, 1);
}

/* ---- archives ---- */

struct buf {
	unsigned char *p;
	size_t n, cap;
};

static void
add(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 256;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			exit(1);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void
pad4(struct buf *b)
{
	static const unsigned char z[4];
	add(b, z, (4 - b->n % 4) % 4);
}

struct ent {
	const char *name;
	unsigned mode;
	const char *data;
	unsigned ino, nlink, rmaj, rmin;
};

static void
newc(struct buf *b, const struct ent *e, unsigned auto_ino)
{
	char h[128];
	size_t len = e->data ? strlen(e->data) : 0;
	snprintf(h, sizeof(h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 e->ino ? e->ino : auto_ino, e->mode, 0, 0, e->nlink ? e->nlink : 1, 1700000000,
		 (unsigned)len, 8, 1, e->rmaj, e->rmin, (unsigned)strlen(e->name) + 1, 0);
	add(b, h, 110);
	add(b, e->name, strlen(e->name) + 1);
	pad4(b);
	if (len)
		add(b, e->data, len);
	pad4(b);
}

static struct buf
archive(const struct ent *es, size_t n)
{
	struct buf b = {0};
	struct ent t = {.name = "TRAILER!!!"};
	for (size_t i = 0; i < n; i++)
		newc(&b, &es[i], 100 + (unsigned)i);
	newc(&b, &t, 0);
	return b;
}

static struct buf
gzip(const struct buf *in)
{
	struct buf out = {0};
	z_stream z = {0};
	if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		exit(1);
	out.cap = deflateBound(&z, in->n) + 64;
	out.p = malloc(out.cap);
	z.next_in = in->p;
	z.avail_in = (uInt)in->n;
	z.next_out = out.p;
	z.avail_out = (uInt)out.cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		exit(1);
	out.n = out.cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static struct buf
uimage(const struct buf *in, uint8_t type, uint8_t comp, const char *name)
{
	struct buf out = {0};
	unsigned char h[UIMAGE_HDRSIZE];
	struct uimage_hdr u = {.time = 1700000000,
			       .size = (uint32_t)in->n,
			       .load = 0x11000000,
			       .ep = 0x11000000,
			       .dcrc = (uint32_t)crc32(0, in->p, (uInt)in->n),
			       .os = 5,
			       .arch = 24,
			       .type = type,
			       .comp = comp};
	snprintf(u.name, sizeof(u.name), "%s", name);
	uimage_header(h, &u);
	add(&out, h, sizeof(h));
	add(&out, in->p, in->n);
	return out;
}

static void
put2(const char *name, const struct buf *b)
{
	put("ramdisk", name, b->p, b->n);
	put("uimage", name, b->p, b->n);
}

static void
archive_seeds(void)
{
	static const struct ent tree[] = {
	    {.name = ".", .mode = 040755},
	    {.name = "etc", .mode = 040755},
	    {.name = "etc/hosts", .mode = 0100644, .data = "127.0.0.1 localhost\n"},
	    {.name = "bin/busybox", .mode = 0104755, .data = "#!busybox\n"},
	    {.name = "bin/sh", .mode = 0120777, .data = "busybox"},
	    {.name = "h1", .mode = 0100644, .data = "", .ino = 77, .nlink = 2},
	    {.name = "h2", .mode = 0100644, .data = "linked\n", .ino = 77, .nlink = 2},
	    {.name = "dev/null", .mode = 020666, .rmaj = 1, .rmin = 3},
	    {.name = "run/fifo", .mode = 010644},
	    {.name = "./tmp/", .mode = 041777},
	    {.name = "init", .mode = 0100755, .data = "#!/bin/sh\necho appliance up\n"},
	};
	/* What a hostile node's principal might try (fuzz/ramdisk.c's
	 * sandbox has ../out and ../victim beside the tree). */
	static const struct ent hostile[] = {
	    {.name = "esc", .mode = 0120777, .data = "../out"},
	    {.name = "esc/x", .mode = 0100644, .data = "escaped\n"},
	    {.name = "v", .mode = 0120777, .data = "../victim"},
	    {.name = "v", .mode = 0100644, .data = "replaced\n"},
	    {.name = "../out/y", .mode = 0100644, .data = "dotdot\n"},
	    {.name = "/abs/z", .mode = 0100644, .data = "absolute\n"},
	    {.name = "a/../../out/w", .mode = 0100644, .data = "inner dotdot\n"},
	    {.name = "l", .mode = 0120777, .data = "../victim"},
	    {.name = "h", .mode = 0100644, .data = "", .ino = 5, .nlink = 2},
	    {.name = "l", .mode = 0100600, .data = "linked\n", .ino = 5, .nlink = 2},
	};
	/* tests/unit/test_image.c hostile-1.5: a link to a name that is now a
	 * fifo (hung) or a device (written through) */
	static const struct ent relink[] = {
	    {.name = "a", .mode = 0100644, .data = "", .ino = 9, .nlink = 2},
	    {.name = "a", .mode = 010644},
	    {.name = "b", .mode = 0100644, .data = "payload\n", .ino = 9, .nlink = 2},
	};
	static const struct ent redev[] = {
	    {.name = "a", .mode = 0100644, .data = "", .ino = 9, .nlink = 2},
	    {.name = "a", .mode = 020666, .rmaj = 1, .rmin = 3},
	    {.name = "b", .mode = 0100644, .data = "payload\n", .ino = 9, .nlink = 2},
	};
	struct buf t = archive(tree, sizeof(tree) / sizeof(tree[0]));
	struct buf g = gzip(&t);
	struct buf h = archive(hostile, sizeof(hostile) / sizeof(hostile[0]));
	struct buf r = archive(relink, sizeof(relink) / sizeof(relink[0]));
	struct buf d = archive(redev, sizeof(redev) / sizeof(redev[0]));
	put2("tree.cpio", &t);
	put2("tree.cpio.gz", &g);
	put2("hostile.cpio", &h);
	put2("relink_fifo.cpio", &r);
	put2("relink_dev.cpio", &d);
	struct buf u = uimage(&g, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_GZIP, "tree");
	put2("tree.uimg", &u);
	struct buf u2 = uimage(&t, UIMAGE_TYPE_RAMDISK, UIMAGE_COMP_NONE, "plain tree");
	put2("plain.uimg", &u2);
	struct buf k = {0};
	add(&k,
	    "\x7f"
	    "ELF fake kernel",
	    16);
	struct buf ku = uimage(&k, UIMAGE_TYPE_KERNEL, UIMAGE_COMP_NONE, "kernel");
	put("uimage", "kernel.uimg", ku.p, ku.n);
	struct buf mu =
	    uimage(&k, UIMAGE_TYPE_MULTI, UIMAGE_COMP_BZIP2, "a name of 32 bytes, exactly....");
	put("uimage", "multi_bzip2.uimg", mu.p, mu.n);
	/* fw: load the ramdisk uImage, check and boot it */
	struct buf fw = {0};
	char line[128];
	add(&fw, "\x01", 1);
	snprintf(line, sizeof(line), "mrw $ramfsaddr %zu\n", u.n);
	add(&fw, line, strlen(line));
	add(&fw, u.p, u.n);
	snprintf(line, sizeof(line), "imi $ramfsaddr\ncrc32 $ramfsaddr %zx\nrun kboot\n", u.n);
	add(&fw, line, strlen(line));
	put("fw", "mrw_uimage", fw.p, fw.n);
	free(t.p);
	free(g.p);
	free(h.p);
	free(r.p);
	free(d.p);
	free(u.p);
	free(u2.p);
	free(k.p);
	free(ku.p);
	free(mu.p);
	free(fw.p);
}

/* ---- ELF ---- */

static void
elf_seed(const char *name, int with_runpath)
{
	/* ehdr, 3 phdrs (PT_LOAD of the whole file, PT_INTERP, PT_DYNAMIC),
	 * the interpreter, the dynamic section, the strings */
	static const char strs[] = "\0libc.so.6\0libkh.so.1\0$ORIGIN/../lib\0";
	static const char interp[] = "/lib64/ld-linux-x86-64.so.2";
	unsigned char f[1024] = {0};
	Elf64_Ehdr *e = (Elf64_Ehdr *)f;
	Elf64_Phdr *ph = (Elf64_Phdr *)(f + sizeof(*e));
	size_t ioff = sizeof(*e) + 3 * sizeof(*ph), doff = ioff + 32, soff = doff + 6 * 16;

	memcpy(e->e_ident, ELFMAG, SELFMAG);
	e->e_ident[EI_CLASS] = ELFCLASS64;
	e->e_ident[EI_DATA] = ELFDATA2LSB;
	e->e_ident[EI_VERSION] = EV_CURRENT;
	e->e_type = ET_DYN;
	e->e_machine = EM_X86_64;
	e->e_version = EV_CURRENT;
	e->e_phoff = sizeof(*e);
	e->e_ehsize = sizeof(*e);
	e->e_phentsize = sizeof(*ph);
	e->e_phnum = 3;
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
			     .p_offset = 0,
			     .p_vaddr = 0x400000,
			     .p_filesz = sizeof(f),
			     .p_memsz = sizeof(f)};
	ph[1] = (Elf64_Phdr){.p_type = PT_INTERP, .p_offset = ioff, .p_filesz = sizeof(interp)};
	ph[2] = (Elf64_Phdr){.p_type = PT_DYNAMIC, .p_offset = doff, .p_filesz = 6 * 16};
	memcpy(f + ioff, interp, sizeof(interp));
	Elf64_Dyn *d = (Elf64_Dyn *)(f + doff);
	d[0] = (Elf64_Dyn){.d_tag = DT_NEEDED, .d_un.d_val = 1};
	d[1] = (Elf64_Dyn){.d_tag = DT_NEEDED, .d_un.d_val = 11};
	d[2] = (Elf64_Dyn){.d_tag = with_runpath ? DT_RUNPATH : DT_RPATH, .d_un.d_val = 22};
	d[3] = (Elf64_Dyn){.d_tag = DT_STRTAB, .d_un.d_ptr = 0x400000 + soff};
	d[4] = (Elf64_Dyn){.d_tag = DT_STRSZ, .d_un.d_val = sizeof(strs)};
	d[5] = (Elf64_Dyn){.d_tag = DT_NULL};
	memcpy(f + soff, strs, sizeof(strs));
	put("elf", name, f, soff + sizeof(strs));
}

/* ---- RDMA scripts (fuzz/rdma.c) ---- */

static void
sqe(struct buf *b, uint8_t cmd, uint8_t op, uint32_t rank, uint64_t rkey_idx, uint64_t roff,
    uint32_t len, uint64_t arg0, uint64_t arg1)
{
	struct khr_sqe d = {.op = op,
			    .rank = rank,
			    .wr_id = b->n,
			    .rkey = rkey_idx,
			    .roff = roff,
			    .loff = 128,
			    .lkey = 0,
			    .len = len,
			    .arg0 = arg0,
			    .arg1 = arg1};
	add(b, &cmd, 1);
	add(b, &d, sizeof(d));
}

static void
cmd(struct buf *b, const void *p, size_t n)
{
	add(b, p, n);
}

static void
rdma_seeds(void)
{
	/* keys: 0 A's local, 1 B's local, 2 B rw, 3 B ro, 4 B atomic, 5 C rw */
	struct buf a = {0};
	sqe(&a, 0x03, KHRDMA_WRITE, 2, 2, 0, 64, 0, 0);
	sqe(&a, 0x03, KHRDMA_READ, 2, 2, 0, 64, 0, 0);
	sqe(&a, 0x03, KHRDMA_CAS, 2, 4, 8, 8, 0, 42);
	sqe(&a, 0x03, KHRDMA_FADD, 2, 4, 8, 8, 5, 0);
	cmd(&a, "\x06\x04\x07", 3);
	put("rdma", "ops", a.p, a.n);

	struct buf d = {0};
	sqe(&d, 0x03, KHRDMA_WRITE, 2, 3, 0, 16, 0, 0);	       /* read-only: E_PERM */
	sqe(&d, 0x03, KHRDMA_READ, 2, 2, 4090, 16, 0, 0);      /* past the end: E_RANGE */
	sqe(&d, 0x03, KHRDMA_WRITE, 3, 5, 0, 16, 0, 0);	       /* C: not in the domain */
	sqe(&d, 0x03, KHRDMA_CAS, 2, 4, 3, 8, 0, 1);	       /* unaligned */
	sqe(&d, 0x03, 9, 2, 2, 0, 16, 0, 0);		       /* unknown opcode */
	sqe(&d, 0x01, KHRDMA_READ, 2, 2, 0, 16, 0, 0);	       /* a made-up lkey */
	sqe(&d, 0x03, KHRDMA_READ, 2, 2, 0, 0x7fffffff, 0, 0); /* too long */
	cmd(&d, "\x06\x00\x07", 3);
	put("rdma", "denied", d.p, d.n);

	struct buf r = {0};
	sqe(&r, 0x03, KHRDMA_WRITE, 2, 2, 0, 4096, 0, 0);
	cmd(&r, "\x0a\x02", 2); /* B's rw key revoked by A? (A's ep: refused) */
	cmd(&r, "\x1a\x02", 2); /* by B */
	sqe(&r, 0x03, KHRDMA_WRITE, 2, 2, 0, 16, 0, 0);
	cmd(&r, "\x1b\x01", 2); /* B moves to domain 8 */
	sqe(&r, 0x03, KHRDMA_READ, 2, 4, 0, 16, 0, 0);
	cmd(&r, "\x0f\x1c\x06\x10\x07", 5); /* fence, B dropped */
	put("rdma", "revoke", r.p, r.n);

	struct buf h = {0};
	uint32_t v = 0xfffffff0;
	sqe(&h, 0x03, KHRDMA_READ, 2, 2, 0, 8, 0, 0);
	cmd(&h, "\x08", 1);
	cmd(&h, &v, 4); /* sq_tail far ahead: a broken ring */
	cmd(&h, "\x06\x01\x09", 3);
	cmd(&h, &v, 4); /* cq_head likewise */
	cmd(&h,
	    "\x06\x01\x0e"
	    "eth1"
	    "\x0e"
	    "eth0\x0e"
	    "lo\0\0\x1d",
	    17);
	uint64_t off = 4096, len = 4096;
	cmd(&h, &off, 8);
	cmd(&h, &len, 8);
	cmd(&h, "\x03", 1);
	put("rdma", "hostile_ring", h.p, h.n);

	/* A registers other kinds of fd (fuzz/rdma.c, command 13, bit 7) */
	struct buf f = {0};
	uint64_t ranges[][2] = {{0, 3 * 4096}, {4096, 8192}, {8192, 8192}, {UINT64_MAX, 2}};
	for (int kind = 0; kind < 4; kind++)
		for (int i = 0; i < 4; i++) {
			uint8_t access = (uint8_t)(0x80 | kind << 5 | 3);
			cmd(&f, "\x0d", 1);
			cmd(&f, &ranges[i][0], 8);
			cmd(&f, &ranges[i][1], 8);
			cmd(&f, &access, 1);
		}
	put("rdma", "fd_kinds", f.p, f.n);
	free(f.p);
	free(a.p);
	free(d.p);
	free(r.p);
	free(h.p);
}

/* ---- the many-hosts link (fuzz/link.c) ---- */

/* A seed of fuzz/link: 3 bytes (split in the middle, nothing refused;
 * refuse < 32: the reader refuses that frame), then the frames in l. */
static void
link_put(const char *name, struct link *l, int refuse)
{
	struct sbuf b;
	unsigned char h[3] = {128, 128, (unsigned char)(refuse < 0 ? 255 : refuse)};
	sbuf_init(&b);
	sbuf_add(&b, h, 3);
	sbuf_add(&b, l->out.s, l->out.len);
	put("link", name, b.s, b.len);
	sbuf_free(&b);
	sbuf_reset(&l->out);
}

static void
link_seeds(void)
{
	struct link l;
	struct linkmsg m;
	unsigned char nodes[2 * LINK_NODE_WIRE], blobs[2 * 32], ranks[3 * 4];
	struct linkmsg_node nd = {.rank = 5, .gen = 2};

	link_init(&l, -1);
	/* the front end's frames, in the order of a session */
	m = (struct linkmsg){.type = L_PROOF};
	memset(m.u.proof.mac, 0xa5, 32);
	memset(m.u.proof.nonce, 0x5a, LINK_NONCE);
	linkmsg_put(&l, &m);
	link_put("proof", &l, -1);
	m = (struct linkmsg){.type = L_HELLO, .u.hello = {0x1234abcd, 0, 4}};
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_BLOB, .u.blob = {.total = 5, .off = 0, .len = 5}};
	memset(m.u.blob.hash, 0x11, 32);
	m.u.blob.bytes = (const unsigned char *)"07070";
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_BOOT, .rank = 2};
	m.u.boot.gen = 1;
	m.u.boot.cpu_milli = 500;
	m.u.boot.mem = 64 << 20;
	m.u.boot.pids = 128;
	memset(m.u.boot.hash, 0x11, 32);
	snprintf(m.u.boot.name, sizeof(m.u.boot.name), "alice-2");
	snprintf(m.u.boot.env, sizeof(m.u.boot.env), "KH_ROLE=web");
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_WIRE, .rank = 2, .u.wire = {.n = 2, .netid = {7, 0}}};
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_SPAN, .u.span = {.netid = 7, .n = 2}};
	snprintf(m.u.span.peer[0], LINK_ADDR_LEN, "10.77.0.2");
	snprintf(m.u.span.peer[1], LINK_ADDR_LEN, "10.77.0.3");
	linkmsg_put(&l, &m);
	link_set32(ranks, 0);
	link_set32(ranks + 4, 2);
	link_set32(ranks + 8, 3);
	m = (struct linkmsg){.type = L_INPUT, .u.input = {.len = 8, .nranks = 3}};
	m.u.input.bytes = (const unsigned char *)"uptime\r\n";
	m.u.input.ranks = ranks;
	linkmsg_put(&l, &m);
	linkmsg_put(&l, &(struct linkmsg){.type = L_PING});
	linkmsg_put(&l, &(struct linkmsg){.type = L_PONG});
	m = (struct linkmsg){.type = L_KILL, .rank = 2, .u.kill = {1}};
	linkmsg_put(&l, &m);
	linkmsg_put(&l, &(struct linkmsg){.type = L_RELEASE, .rank = 2});
	m = (struct linkmsg){.type = L_ERROR};
	snprintf(m.u.error.why, sizeof(m.u.error.why), "stopping");
	linkmsg_put(&l, &m);
	link_put("front_session", &l, -1);

	/* the agent's */
	m = (struct linkmsg){.type = L_CHALLENGE};
	memset(m.u.challenge.nonce, 0x3c, LINK_NONCE);
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_PROVEN};
	memset(m.u.proven.mac, 0xc3, 32);
	linkmsg_put(&l, &m);
	link_put("handshake", &l, -1);
	linkmsg_node_wire(nodes, &nd);
	nd.rank = 4091;
	linkmsg_node_wire(nodes + LINK_NODE_WIRE, &nd);
	memset(blobs, 0x11, sizeof(blobs));
	m = (struct linkmsg){.type = L_WELCOME, .u.welcome = {.nnodes = 2, .nblobs = 2}};
	snprintf(m.u.welcome.name, sizeof(m.u.welcome.name), "h2");
	m.u.welcome.nodes = nodes;
	m.u.welcome.blobs = blobs;
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_HAVE};
	memset(m.u.have.hash, 0x11, 32);
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_BOOTED, .rank = 2, .u.booted = {1, 4242}};
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_OUT, .rank = 2, .u.out = {.gen = 1, .len = 9}};
	m.u.out.bytes = (const unsigned char *)"login: \r\n";
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_STATS, .rank = 2, .u.stats = {.gen = 1, .nifs = 1}};
	m.u.stats.cpu_ns = 123456789;
	m.u.stats.mem = 5 << 20;
	m.u.stats.mem_peak = 6 << 20;
	m.u.stats.ifs[0] = (struct linkmsg_if){.slot = 0, .netid = 7, .rx_bytes = 1500};
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_EXIT, .rank = 2, .u.exit = {1, 0x100}};
	linkmsg_put(&l, &m);
	m = (struct linkmsg){.type = L_FAILED, .rank = 3, .u.failed = {.gen = 1}};
	snprintf(m.u.failed.why, sizeof(m.u.failed.why), "the ramdisk did not reach this host");
	linkmsg_put(&l, &m);
	link_put("agent_session", &l, -1);
	/* the same, its reader refusing the third frame */
	m = (struct linkmsg){.type = L_BOOTED, .rank = 2, .u.booted = {1, 4242}};
	for (int i = 0; i < 5; i++)
		linkmsg_put(&l, &m);
	link_put("refused", &l, 2);

	/* hostile (tests/tools/fakeagent.py, fakefront.py) */
	unsigned char h[LINK_HDR];
	link_set32(h, 0x7fffffff);
	link_set32(h + 4, L_OUT);
	link_set32(h + 8, 0);
	linkmsg_put(&l, &(struct linkmsg){.type = L_PING});
	put_bytes(&l, h, sizeof(h));
	link_put("too_long", &l, -1);
	link_end(&l, link_begin(&l, 250, 0));
	link_put("no_type", &l, -1);
	size_t at = link_begin(&l, L_WELCOME, 0);
	put_str(&l, "h2");
	put_u32(&l, 0x80000000);
	put_u32(&l, 0);
	link_end(&l, at);
	link_put("welcome_2e31", &l, -1);
	at = link_begin(&l, L_STATS, 0);
	put_bytes(&l, blobs, 36);
	put_u32(&l, 1000);
	link_end(&l, at);
	link_put("stats_1000", &l, -1);
	at = link_begin(&l, L_INPUT, 0);
	put_u32(&l, 2);
	put_bytes(&l, "hi\0\0", 4);
	link_end(&l, at);
	link_put("input_half_rank", &l, -1);
	at = link_begin(&l, L_SPAN, 0);
	put_u32(&l, 3);
	put_u32(&l, 1);
	put_str(&l, "not-an-ip");
	link_end(&l, at);
	link_put("span_no_ip", &l, -1);
	link_free(&l);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seedgen CORPUSDIR\n");
		return 2;
	}
	top = argv[1];
	if (sodium_init() < 0)
		return 1;
	ledger_seeds();
	archive_seeds();
	elf_seed("runpath", 1);
	elf_seed("rpath", 0);
	rdma_seeds();
	link_seeds();
	return 0;
}
