/* ledger: records, their hash chain, block signatures, key files and the
 * export writer.  The reader and verifier are in ledger_verify.c.  Formats
 * are specified in ledger.h and docs/metering.md "Ledger". */
#include "meter/ledger.h"
#include "meter/ledger_int.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t zero_hash[LEDGER_HASH_LEN];

void
ledger_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
ledger_unhex(const char *s, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval((unsigned char)s[2 * i]);
		int lo = hi < 0 ? -1 : hexval((unsigned char)s[2 * i + 1]);
		if (lo < 0)
			return -1;
		p[i] = (uint8_t)(hi << 4 | lo);
	}
	return s[2 * n] == '\0' ? 0 : -1;
}

void
ledger_rec_init(struct ledger_rec *r)
{
	memset(r, 0, sizeof(*r));
	usage_init(&r->use);
}

void
ledger_rec_free(struct ledger_rec *r)
{
	usage_free(&r->use);
}

int
ledger_rec_canonical(const struct ledger_rec *r, struct sbuf *out, char *err, size_t errlen)
{
	if (!valid_name(r->principal))
		return seterr(err, errlen, "bad principal name '%s'", r->principal);
	if (r->seq == 0)
		return seterr(err, errlen, "seq 0 (seqs start at 1)");
	if (r->t1 < r->t0)
		return seterr(err, errlen,
			      "interval ends (%" PRIu64 ") before it starts (%" PRIu64 ")", r->t1,
			      r->t0);
	sbuf_printf(out, "%s %" PRIu64 " %" PRIu64 " %" PRIu64, r->principal, r->seq, r->t0, r->t1);
	if (r->use.n)
		sbuf_adds(out, " ");
	usage_encode(&r->use, out);
	return 0;
}

int
ledger_rec_hash(const struct ledger_rec *r, uint8_t out[LEDGER_HASH_LEN], char *err, size_t errlen)
{
	crypto_generichash_state st;
	struct sbuf b;

	sbuf_init(&b);
	if (ledger_rec_canonical(r, &b, err, errlen) < 0) {
		sbuf_free(&b);
		return -1;
	}
	crypto_generichash_init(&st, NULL, 0, LEDGER_HASH_LEN);
	crypto_generichash_update(&st, r->prev, LEDGER_HASH_LEN);
	crypto_generichash_update(&st, (const uint8_t *)b.s, b.len);
	crypto_generichash_final(&st, out, LEDGER_HASH_LEN);
	sbuf_free(&b);
	return 0;
}

int
ledger_rec_seal(struct ledger_rec *r, uint64_t prev_seq, const uint8_t *prev_hash, char *err,
		size_t errlen)
{
	if (prev_seq == UINT64_MAX)
		return seterr(err, errlen, "chain is full");
	if ((prev_seq == 0) != (prev_hash == NULL))
		return seterr(err, errlen, "chain head seq %" PRIu64 " without its hash", prev_seq);
	r->seq = prev_seq + 1;
	memcpy(r->prev, prev_hash ? prev_hash : zero_hash, LEDGER_HASH_LEN);
	return ledger_rec_hash(r, r->hash, err, errlen);
}

int
ledger_rec_format(const struct ledger_rec *r, struct sbuf *out, char *err, size_t errlen)
{
	char hex[LEDGER_HEX_LEN];
	size_t len = out->len;

	sbuf_adds(out, "r ");
	if (ledger_rec_canonical(r, out, err, errlen) < 0) {
		out->len = len;
		out->s[len] = '\0';
		return -1;
	}
	ledger_hex(r->hash, LEDGER_HASH_LEN, hex);
	sbuf_printf(out, " %s", hex);
	return 0;
}

int
ledger_strict_u64(const char *s, uint64_t *v)
{
	return ledger_strict_u64n(s, strlen(s), v);
}

int
ledger_rec_parse(const char *line, struct ledger_rec *r, char *err, size_t errlen)
{
	char *buf, *tok[4], *p, *items, *hash;
	size_t n = strlen(line);
	int rc = -1;

	if (n && line[n - 1] == '\n')
		n--;
	if (n < 2 || memcmp(line, "r ", 2) != 0)
		return seterr(err, errlen, "not a record line");
	buf = strndup(line + 2, n - 2);
	if (buf == NULL)
		return seterr(err, errlen, "out of memory");
	/* The hash is the last field; items are everything between t1 and it. */
	hash = strrchr(buf, ' ');
	if (hash == NULL) {
		seterr(err, errlen, "too few fields");
		goto out;
	}
	*hash++ = '\0';
	p = buf;
	for (int i = 0; i < 4; i++) {
		tok[i] = p;
		if (p == NULL) {
			seterr(err, errlen, "too few fields");
			goto out;
		}
		p = strchr(p, ' ');
		if (p)
			*p++ = '\0';
	}
	if (p && *p == '\0') {
		seterr(err, errlen, "extra space before the hash");
		goto out;
	}
	items = p ? p : "";
	if (strlen(tok[0]) >= sizeof(r->principal) || !valid_name(tok[0])) {
		seterr(err, errlen, "bad principal name '%.40s'", tok[0]);
		goto out;
	}
	snprintf(r->principal, sizeof(r->principal), "%s", tok[0]);
	if (ledger_strict_u64(tok[1], &r->seq) < 0 || r->seq == 0) {
		seterr(err, errlen, "bad seq '%.24s'", tok[1]);
		goto out;
	}
	if (ledger_strict_u64(tok[2], &r->t0) < 0 || ledger_strict_u64(tok[3], &r->t1) < 0) {
		seterr(err, errlen, "bad time '%.24s %.24s'", tok[2], tok[3]);
		goto out;
	}
	if (r->t1 < r->t0) {
		seterr(err, errlen, "interval ends before it starts");
		goto out;
	}
	if (usage_decode(items, &r->use, err, errlen) < 0)
		goto out;
	if (strlen(hash) != 2 * LEDGER_HASH_LEN ||
	    ledger_unhex(hash, r->hash, LEDGER_HASH_LEN) < 0) {
		seterr(err, errlen, "hash is not %d lower-case hex digits", 2 * LEDGER_HASH_LEN);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Keys. */

void
ledger_key_fingerprint(const uint8_t pk[LEDGER_PK_LEN], char out[LEDGER_FP_LEN])
{
	uint8_t h[LEDGER_HASH_LEN];

	crypto_generichash(h, sizeof(h), pk, LEDGER_PK_LEN, NULL, 0);
	memcpy(out, "kh1:", 4);
	ledger_hex(h, 16, out + 4);
}

void
ledger_key_wipe(struct ledger_key *k)
{
	sodium_memzero(k->sk, sizeof(k->sk));
	k->has_sk = 0;
}

/* Read a file of exactly 2n hex digits and an optional newline into p. */
static int
read_hex_file(const char *path, uint8_t *p, size_t n, int secret, char *err, size_t errlen)
{
	char buf[2 * LEDGER_SK_LEN + 4];
	struct stat st;
	ssize_t len;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return seterr(err, errlen, "%s: not a regular file", path);
	}
	if (secret && (st.st_mode & 077)) {
		close(fd);
		return seterr(err, errlen, "%s: readable by others (mode %03o; chmod 600 it)", path,
			      (unsigned)(st.st_mode & 0777));
	}
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	buf[len] = '\0';
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	int rc = (size_t)len == 2 * n && ledger_unhex(buf, p, n) == 0 ? 0 : -1;
	sodium_memzero(buf, sizeof(buf));
	if (rc < 0)
		return seterr(err, errlen, "%s: not %zu lower-case hex digits", path, 2 * n);
	return 0;
}

/* Write 2n hex digits and a newline to path, atomically, with mode. */
static int
write_hex_file(const char *path, const uint8_t *p, size_t n, mode_t mode, char *err, size_t errlen)
{
	char tmp[4096], buf[2 * LEDGER_SK_LEN + 2];
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return seterr(err, errlen, "%s: path too long", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return seterr(err, errlen, "%s: %s", tmp, strerror(errno));
	ledger_hex(p, n, buf);
	buf[2 * n] = '\n';
	int rc = write_all(fd, buf, 2 * n + 1);
	sodium_memzero(buf, sizeof(buf));
	if (rc == 0)
		rc = fchmod(fd, mode);
	if (rc == 0)
		rc = fsync(fd);
	if (close(fd) < 0)
		rc = -1;
	if (rc == 0)
		rc = rename(tmp, path);
	if (rc < 0) {
		int e = errno;
		unlink(tmp);
		return seterr(err, errlen, "%s: %s", path, strerror(e));
	}
	return 0;
}

static void
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int
ledger_pub_load(const char *path, uint8_t pk[LEDGER_PK_LEN], char *err, size_t errlen)
{
	return read_hex_file(path, pk, LEDGER_PK_LEN, 0, err, errlen);
}

int
ledger_key_load_or_create(const char *dir, struct ledger_key *k, char *err, size_t errlen)
{
	char kpath[4096], ppath[4096];
	uint8_t pk[LEDGER_PK_LEN];
	int have_key, have_pub;

	memset(k, 0, sizeof(*k));
	if (sodium_init() < 0)
		return seterr(err, errlen, "libsodium cannot start");
	if ((size_t)snprintf(kpath, sizeof(kpath), "%s/ledger.key", dir) >= sizeof(kpath) - 8 ||
	    (size_t)snprintf(ppath, sizeof(ppath), "%s/ledger.pub", dir) >= sizeof(ppath) - 8)
		return seterr(err, errlen, "%s: path too long", dir);
	have_key = access(kpath, F_OK) == 0;
	have_pub = access(ppath, F_OK) == 0;
	if (!have_key) {
		/* A lost secret key must not be silently replaced: exports
		 * signed by it would stop verifying against ledger.pub. */
		if (have_pub)
			return seterr(err, errlen,
				      "%s exists but %s does not (restore the key, or move both "
				      "away to start a new one)",
				      ppath, kpath);
		crypto_sign_keypair(k->pk, k->sk);
		if (write_hex_file(kpath, k->sk, LEDGER_SK_LEN, 0600, err, errlen) < 0)
			goto fail;
		if (write_hex_file(ppath, k->pk, LEDGER_PK_LEN, 0644, err, errlen) < 0)
			goto fail;
		fsync_dir(dir);
		k->has_sk = 1;
		return 0;
	}
	if (read_hex_file(kpath, k->sk, LEDGER_SK_LEN, 1, err, errlen) < 0)
		goto fail;
	/* libsodium's secret key carries the public key in its second half;
	 * check it is the one the seed gives, so a damaged file is caught. */
	uint8_t seedpk[LEDGER_PK_LEN], seedsk[LEDGER_SK_LEN];
	crypto_sign_seed_keypair(seedpk, seedsk, k->sk);
	int same = sodium_memcmp(seedsk, k->sk, LEDGER_SK_LEN) == 0;
	sodium_memzero(seedsk, sizeof(seedsk));
	if (!same) {
		seterr(err, errlen, "%s: damaged (its two halves do not match)", kpath);
		goto fail;
	}
	memcpy(k->pk, seedpk, LEDGER_PK_LEN);
	if (have_pub) {
		if (ledger_pub_load(ppath, pk, err, errlen) < 0)
			goto fail;
		if (memcmp(pk, k->pk, LEDGER_PK_LEN) != 0) {
			seterr(err, errlen, "%s does not belong to %s", ppath, kpath);
			goto fail;
		}
	} else {
		if (write_hex_file(ppath, k->pk, LEDGER_PK_LEN, 0644, err, errlen) < 0)
			goto fail;
		fsync_dir(dir);
	}
	k->has_sk = 1;
	return 0;
fail:
	ledger_key_wipe(k);
	return -1;
}

/* Signatures. */

static void
block_msg(const char *principal, uint64_t seq, const uint8_t hash[LEDGER_HASH_LEN], struct sbuf *m)
{
	char hex[LEDGER_HEX_LEN];

	ledger_hex(hash, LEDGER_HASH_LEN, hex);
	sbuf_printf(m, "kh-ledger-v1 %s %" PRIu64 " %s", principal, seq, hex);
}

static void
export_msg(const char *principal, uint64_t cseq, const uint8_t chash[LEDGER_HASH_LEN], uint64_t seq,
	   const uint8_t hash[LEDGER_HASH_LEN], struct sbuf *m)
{
	char ch[LEDGER_HEX_LEN], hh[LEDGER_HEX_LEN];

	ledger_hex(chash, LEDGER_HASH_LEN, ch);
	ledger_hex(hash, LEDGER_HASH_LEN, hh);
	sbuf_printf(m, "kh-ledger-export-v1 %s %" PRIu64 " %s %" PRIu64 " %s", principal, cseq, ch,
		    seq, hh);
}

int
ledger_sign(const struct ledger_key *k, const char *principal, uint64_t seq,
	    const uint8_t hash[LEDGER_HASH_LEN], struct ledger_sig *s, char *err, size_t errlen)
{
	struct sbuf m;

	if (!k->has_sk)
		return seterr(err, errlen, "no secret ledger key to sign with");
	if (!valid_name(principal))
		return seterr(err, errlen, "bad principal name '%s'", principal);
	memset(s, 0, sizeof(*s));
	snprintf(s->principal, sizeof(s->principal), "%s", principal);
	s->seq = seq;
	memcpy(s->hash, hash, LEDGER_HASH_LEN);
	sbuf_init(&m);
	block_msg(principal, seq, hash, &m);
	crypto_sign_detached(s->sig, NULL, (const uint8_t *)m.s, m.len, k->sk);
	sbuf_free(&m);
	return 0;
}

int
ledger_sig_check(const uint8_t pk[LEDGER_PK_LEN], const struct ledger_sig *s)
{
	struct sbuf m;

	if (!valid_name(s->principal))
		return 0;
	sbuf_init(&m);
	block_msg(s->principal, s->seq, s->hash, &m);
	int ok = crypto_sign_verify_detached(s->sig, (const uint8_t *)m.s, m.len, pk) == 0;
	sbuf_free(&m);
	return ok;
}

int
ledger_export_msg_check(const uint8_t pk[LEDGER_PK_LEN], const char *principal, uint64_t cseq,
			const uint8_t chash[LEDGER_HASH_LEN], uint64_t seq,
			const uint8_t hash[LEDGER_HASH_LEN], const uint8_t sig[LEDGER_SIG_LEN])
{
	struct sbuf m;

	sbuf_init(&m);
	export_msg(principal, cseq, chash, seq, hash, &m);
	int ok = crypto_sign_verify_detached(sig, (const uint8_t *)m.s, m.len, pk) == 0;
	sbuf_free(&m);
	return ok;
}

/* Export writer. */

int
ledger_export_begin(struct ledger_export *x, struct sbuf *out, const struct ledger_key *key,
		    const char *principal, uint64_t chain_seq, const uint8_t *chain_hash, char *err,
		    size_t errlen)
{
	char fp[LEDGER_FP_LEN], hex[LEDGER_HEX_LEN];

	memset(x, 0, sizeof(*x));
	if (!key->has_sk)
		return seterr(err, errlen, "no secret ledger key to sign the export with");
	if (!valid_name(principal))
		return seterr(err, errlen, "bad principal name '%s'", principal);
	if ((chain_seq == 0) != (chain_hash == NULL))
		return seterr(err, errlen, "chain head seq %" PRIu64 " without its hash",
			      chain_seq);
	x->out = out;
	x->key = key;
	snprintf(x->principal, sizeof(x->principal), "%s", principal);
	x->chain_seq = x->seq = chain_seq;
	memcpy(x->chain, chain_hash ? chain_hash : zero_hash, LEDGER_HASH_LEN);
	memcpy(x->head, x->chain, LEDGER_HASH_LEN);
	x->head_signed = 1;
	ledger_key_fingerprint(key->pk, fp);
	ledger_hex(x->chain, LEDGER_HASH_LEN, hex);
	sbuf_printf(out, "kh-ledger-export 1\nkey %s\nprincipal %s\nchain %" PRIu64 " %s\n", fp,
		    principal, chain_seq, hex);
	return 0;
}

int
ledger_export_resume(struct ledger_export *x, struct sbuf *out, const struct ledger_key *key,
		     const char *principal, uint64_t chain_seq, const uint8_t *chain_hash,
		     uint64_t seq, const uint8_t hash[LEDGER_HASH_LEN], int head_signed, char *err,
		     size_t errlen)
{
	struct sbuf scratch;

	if (seq < chain_seq)
		return seterr(err, errlen,
			      "resuming at seq %" PRIu64 " before the chain start %" PRIu64, seq,
			      chain_seq);
	sbuf_init(&scratch);
	int rc =
	    ledger_export_begin(x, &scratch, key, principal, chain_seq, chain_hash, err, errlen);
	sbuf_free(&scratch);
	if (rc < 0)
		return -1;
	x->out = out;
	x->seq = seq;
	memcpy(x->head, hash, LEDGER_HASH_LEN);
	x->head_signed = seq == chain_seq || head_signed;
	return 0;
}

int
ledger_export_rec(struct ledger_export *x, const struct ledger_rec *r, char *err, size_t errlen)
{
	if (strcmp(r->principal, x->principal) != 0)
		return seterr(err, errlen, "record of %s in an export of %s", r->principal,
			      x->principal);
	if (r->seq != x->seq + 1)
		return seterr(err, errlen, "record seq %" PRIu64 " does not follow seq %" PRIu64,
			      r->seq, x->seq);
	if (memcmp(r->prev, x->head, LEDGER_HASH_LEN) != 0)
		return seterr(err, errlen, "record seq %" PRIu64 " does not chain to seq %" PRIu64,
			      r->seq, x->seq);
	if (ledger_rec_format(r, x->out, err, errlen) < 0)
		return -1;
	sbuf_adds(x->out, "\n");
	x->seq = r->seq;
	memcpy(x->head, r->hash, LEDGER_HASH_LEN);
	x->nrec++;
	x->head_signed = 0;
	return 0;
}

int
ledger_export_sig(struct ledger_export *x, const struct ledger_sig *s, char *err, size_t errlen)
{
	char hex[LEDGER_HEX_LEN];

	if (x->head_signed || s->seq != x->seq || strcmp(s->principal, x->principal) != 0)
		return seterr(err, errlen,
			      "signature of %s seq %" PRIu64 " does not belong after "
			      "the last record",
			      s->principal, s->seq);
	if (memcmp(s->hash, x->head, LEDGER_HASH_LEN) != 0)
		return seterr(err, errlen, "signature of seq %" PRIu64 " is for another hash",
			      s->seq);
	ledger_hex(s->sig, LEDGER_SIG_LEN, hex);
	sbuf_printf(x->out, "s %" PRIu64 " %s\n", s->seq, hex);
	x->head_signed = 1;
	return 0;
}

int
ledger_export_end(struct ledger_export *x, struct ledger_sig *made, char *err, size_t errlen)
{
	char hex[LEDGER_HEX_LEN], sh[LEDGER_HEX_LEN];
	uint8_t sig[LEDGER_SIG_LEN];
	struct ledger_sig s;
	struct sbuf m;
	int rc = 0;

	if (!x->head_signed) {
		if (ledger_sign(x->key, x->principal, x->seq, x->head, &s, err, errlen) < 0)
			return -1;
		if (ledger_export_sig(x, &s, err, errlen) < 0)
			return -1;
		if (made)
			*made = s;
		rc = 1;
	}
	sbuf_init(&m);
	export_msg(x->principal, x->chain_seq, x->chain, x->seq, x->head, &m);
	crypto_sign_detached(sig, NULL, (const uint8_t *)m.s, m.len, x->key->sk);
	sbuf_free(&m);
	ledger_hex(x->head, LEDGER_HASH_LEN, hex);
	ledger_hex(sig, LEDGER_SIG_LEN, sh);
	sbuf_printf(x->out, "end %" PRIu64 " %s %s\n", x->seq, hex, sh);
	return rc;
}
