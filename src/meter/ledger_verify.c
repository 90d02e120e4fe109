/* ledger_verify: reads an export (format in ledger.h) in one pass and checks
 * it with the public key alone, stopping at the first problem and naming it
 * the way a person comparing the export with their own records would. */
#include "meter/ledger.h"
#include "meter/ledger_int.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct vstate {
	FILE *f;
	const uint8_t *pk;
	struct ledger_verify_result *res;
	char *buf;
	size_t cap;
	uint64_t line;
	uint64_t chain_seq, seq;
	uint8_t chain[LEDGER_HASH_LEN], head[LEDGER_HASH_LEN];
	int head_signed;
	uint64_t block_first, block_line; /* first unsigned record and its line */
};

static int __attribute__((format(printf, 4, 5)))
fail(struct vstate *v, uint64_t line, uint64_t seq, const char *fmt, ...)
{
	struct ledger_verify_result *res = v->res;
	char msg[sizeof(res->reason)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		snprintf(res->reason, sizeof(res->reason), "line %" PRIu64 ": %s", line, msg);
	else
		snprintf(res->reason, sizeof(res->reason), "%s", msg);
	res->bad_line = line ? line : 1;
	res->bad_seq = seq;
	return -1;
}

/* The next line that is not a comment, without its newline: 1, or 0 at the
 * end of the file, or -1 (reported) for a last line cut short or a read
 * error. */
static int
next_line(struct vstate *v)
{
	for (;;) {
		errno = 0;
		ssize_t n = getline(&v->buf, &v->cap, v->f);
		if (n < 0) {
			if (ferror(v->f))
				return fail(v, v->line + 1, 0, "cannot read: %s", strerror(errno));
			return 0;
		}
		v->line++;
		if (n == 0 || v->buf[n - 1] != '\n')
			return fail(v, v->line, 0, "cut short, no newline (truncated)");
		v->buf[n - 1] = '\0';
		if ((size_t)(n - 1) != strlen(v->buf))
			return fail(v, v->line, 0, "NUL byte in the text");
		if (v->buf[0] != '#')
			return 1;
	}
}

/* Split the current line at single spaces into at most max fields. */
static int
split(char *s, char **f, int max)
{
	int n = 0;

	while (n < max) {
		f[n++] = s;
		s = strchr(s, ' ');
		if (s == NULL)
			return n;
		*s++ = '\0';
	}
	return max + 1; /* too many */
}

static int
header(struct vstate *v)
{
	struct ledger_verify_result *res = v->res;
	char want[LEDGER_FP_LEN], *f[4];
	int rc;

	if ((rc = next_line(v)) <= 0)
		return rc < 0 ? -1 : fail(v, 1, 0, "empty file, not a ledger export");
	if (strncmp(v->buf, "kh-ledger-export ", 17) != 0)
		return fail(v, v->line, 0, "not a ledger export (no 'kh-ledger-export 1' line)");
	if (strcmp(v->buf + 17, "1") != 0)
		return fail(v, v->line, 0, "export format version %.16s is not supported",
			    v->buf + 17);

	if ((rc = next_line(v)) <= 0)
		return rc < 0 ? -1
			      : fail(v, v->line + 1, 0, "export ends in its header (truncated)");
	if (split(v->buf, f, 2) != 2 || strcmp(f[0], "key") != 0 ||
	    strlen(f[1]) >= sizeof(res->fingerprint))
		return fail(v, v->line, 0, "expected 'key <fingerprint>'");
	snprintf(res->fingerprint, sizeof(res->fingerprint), "%s", f[1]);
	ledger_key_fingerprint(v->pk, want);
	if (strcmp(want, res->fingerprint) != 0)
		return fail(v, v->line, 0,
			    "export was signed by %s, not by the given key %s (wrong key)",
			    res->fingerprint, want);

	if ((rc = next_line(v)) <= 0)
		return rc < 0 ? -1
			      : fail(v, v->line + 1, 0, "export ends in its header (truncated)");
	if (split(v->buf, f, 2) != 2 || strcmp(f[0], "principal") != 0 ||
	    strlen(f[1]) >= sizeof(res->principal) || !valid_name(f[1]))
		return fail(v, v->line, 0, "expected 'principal <name>'");
	snprintf(res->principal, sizeof(res->principal), "%s", f[1]);

	if ((rc = next_line(v)) <= 0)
		return rc < 0 ? -1
			      : fail(v, v->line + 1, 0, "export ends in its header (truncated)");
	if (split(v->buf, f, 3) != 3 || strcmp(f[0], "chain") != 0 ||
	    ledger_strict_u64(f[1], &v->chain_seq) < 0 ||
	    ledger_unhex(f[2], v->chain, LEDGER_HASH_LEN) < 0)
		return fail(v, v->line, 0, "expected 'chain <seq> <hash>'");
	v->seq = v->chain_seq;
	memcpy(v->head, v->chain, LEDGER_HASH_LEN);
	v->head_signed = 1;
	return 0;
}

/* A record with seq s was found where e was due (s > e).  Read on: if some
 * later record has a seq in [e, s), the records were reordered; otherwise
 * e..s-1 were dropped. */
static int
gap(struct vstate *v, uint64_t idx, uint64_t s, uint64_t e)
{
	uint64_t line = v->line;
	char *f[4];
	uint64_t x;

	while (next_line(v) == 1) {
		if (strncmp(v->buf, "r ", 2) != 0 || split(v->buf + 2, f, 3) < 3)
			continue;
		if (ledger_strict_u64(f[1], &x) == 0 && x >= e && x < s)
			return fail(v, line, s,
				    "record %" PRIu64 " (seq %" PRIu64
				    ") out of order: seq %" PRIu64 " comes later (reordered)",
				    idx, s, x);
	}
	if (s - e == 1)
		return fail(v, line, e, "seq %" PRIu64 " missing after %" PRIu64 " (dropped)", e,
			    e - 1);
	return fail(v, line, e, "seq %" PRIu64 "-%" PRIu64 " missing after %" PRIu64 " (dropped)",
		    e, s - 1, e - 1);
}

static int
record(struct vstate *v, struct ledger_rec *r)
{
	struct ledger_verify_result *res = v->res;
	uint64_t idx = res->nrec + 1, e = v->seq + 1;
	uint8_t h[LEDGER_HASH_LEN];
	char why[200];

	if (ledger_rec_parse(v->buf, r, why, sizeof(why)) < 0)
		return fail(v, v->line, 0, "bad record: %s", why);
	if (r->seq > e)
		return gap(v, idx, r->seq, e);
	if (r->seq < e) {
		if (r->seq == v->seq)
			return fail(v, v->line, r->seq,
				    "record %" PRIu64 " (seq %" PRIu64 ") repeats seq %" PRIu64
				    " (duplicated)",
				    idx, r->seq, r->seq);
		return fail(v, v->line, r->seq,
			    "record %" PRIu64 " (seq %" PRIu64 ") out of order: after seq %" PRIu64
			    " (reordered)",
			    idx, r->seq, v->seq);
	}
	if (strcmp(r->principal, res->principal) != 0)
		return fail(v, v->line, r->seq,
			    "record %" PRIu64 " (seq %" PRIu64 "): principal %s in an export of %s "
			    "(altered)",
			    idx, r->seq, r->principal, res->principal);
	memcpy(r->prev, v->head, LEDGER_HASH_LEN);
	if (ledger_rec_hash(r, h, why, sizeof(why)) < 0)
		return fail(v, v->line, r->seq, "bad record: %s", why);
	if (memcmp(h, r->hash, LEDGER_HASH_LEN) != 0)
		return fail(v, v->line, r->seq,
			    "record %" PRIu64 " (seq %" PRIu64 "): hash does not match (altered)",
			    idx, r->seq);
	if (v->head_signed) {
		v->block_first = r->seq;
		v->block_line = v->line;
	}
	v->head_signed = 0;
	v->seq = r->seq;
	memcpy(v->head, h, LEDGER_HASH_LEN);
	if (res->nrec == 0) {
		res->first_seq = r->seq;
		res->t0 = r->t0;
	}
	res->last_seq = r->seq;
	res->t1 = r->t1;
	res->nrec++;
	usage_merge(&res->total, &r->use);
	return 0;
}

static int
signature(struct vstate *v)
{
	struct ledger_sig s;
	char *f[3];

	memset(&s, 0, sizeof(s));
	if (split(v->buf, f, 3) != 3 || ledger_strict_u64(f[1], &s.seq) < 0 ||
	    ledger_unhex(f[2], s.sig, LEDGER_SIG_LEN) < 0)
		return fail(v, v->line, 0, "bad signature line (expected 's <seq> <signature>')");
	if (v->head_signed || s.seq != v->seq)
		return fail(v, v->line, s.seq,
			    "signature of seq %" PRIu64 " is not right after record seq %" PRIu64
			    " (misplaced)",
			    s.seq, s.seq);
	snprintf(s.principal, sizeof(s.principal), "%s", v->res->principal);
	memcpy(s.hash, v->head, LEDGER_HASH_LEN);
	if (!ledger_sig_check(v->pk, &s)) {
		if (v->block_first == v->seq)
			return fail(v, v->line, v->block_first,
				    "signature of block ending at seq %" PRIu64
				    " is not valid (record seq %" PRIu64
				    " altered, or the signature)",
				    v->seq, v->seq);
		return fail(v, v->line, v->block_first,
			    "signature of block ending at seq %" PRIu64
			    " is not valid (a record in seq %" PRIu64 "-%" PRIu64
			    " altered, or the signature)",
			    v->seq, v->block_first, v->seq);
	}
	v->head_signed = 1;
	v->res->nsig++;
	return 0;
}

static int
unsigned_tail(struct vstate *v)
{
	if (v->block_first == v->seq)
		return fail(v, v->block_line, v->block_first,
			    "record seq %" PRIu64 " is not covered by a signature (unsigned tail)",
			    v->seq);
	return fail(v, v->block_line, v->block_first,
		    "records seq %" PRIu64 "-%" PRIu64
		    " are not covered by a signature (unsigned tail)",
		    v->block_first, v->seq);
}

static int
end(struct vstate *v)
{
	uint8_t hash[LEDGER_HASH_LEN], sig[LEDGER_SIG_LEN];
	uint64_t seq;
	char *f[4];

	if (split(v->buf, f, 4) != 4 || ledger_strict_u64(f[1], &seq) < 0 ||
	    ledger_unhex(f[2], hash, LEDGER_HASH_LEN) < 0 ||
	    ledger_unhex(f[3], sig, LEDGER_SIG_LEN) < 0)
		return fail(v, v->line, 0,
			    "bad end line (expected 'end <seq> <hash> <signature>')");
	if (!v->head_signed)
		return unsigned_tail(v);
	if (seq != v->seq)
		return fail(v, v->line, seq > v->seq ? v->seq + 1 : 0,
			    "end line is for seq %" PRIu64 " but the last record is seq %" PRIu64
			    " (%s)",
			    seq, v->seq, seq > v->seq ? "dropped" : "records added");
	if (memcmp(hash, v->head, LEDGER_HASH_LEN) != 0)
		return fail(v, v->line, seq, "end line's hash is not the last record's (altered)");
	if (!ledger_export_msg_check(v->pk, v->res->principal, v->chain_seq, v->chain, seq, hash,
				     sig))
		return fail(v, v->line, 0,
			    "signature of the end line is not valid (header or end line altered)");
	int rc = next_line(v);
	if (rc == 1)
		return fail(v, v->line, 0, "text after the end line");
	return rc;
}

int
ledger_verify(FILE *f, const uint8_t pk[LEDGER_PK_LEN], struct ledger_verify_result *res)
{
	struct vstate v;
	struct ledger_rec r;
	int rc;

	memset(res, 0, sizeof(*res));
	usage_init(&res->total);
	memset(&v, 0, sizeof(v));
	v.f = f;
	v.pk = pk;
	v.res = res;
	ledger_rec_init(&r);
	if (header(&v) < 0) {
		rc = -1;
		goto out;
	}
	for (;;) {
		rc = next_line(&v);
		if (rc < 0)
			break;
		if (rc == 0) {
			rc = v.head_signed ? fail(&v, v.line + 1, 0,
						  "export ends without its end line (truncated)")
					   : unsigned_tail(&v);
			break;
		}
		if (strncmp(v.buf, "r ", 2) == 0)
			rc = record(&v, &r);
		else if (strncmp(v.buf, "s ", 2) == 0)
			rc = signature(&v);
		else if (strncmp(v.buf, "end ", 4) == 0) {
			rc = end(&v);
			break;
		} else
			rc = fail(&v, v.line, 0, "unknown line '%.20s'", v.buf);
		if (rc < 0)
			break;
	}
out:
	ledger_rec_free(&r);
	free(v.buf);
	return rc < 0 ? -1 : 0;
}

int
ledger_verify_file(const char *path, const uint8_t pk[LEDGER_PK_LEN],
		   struct ledger_verify_result *res)
{
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		memset(res, 0, sizeof(*res));
		usage_init(&res->total);
		snprintf(res->reason, sizeof(res->reason), "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = ledger_verify(f, pk, res);
	fclose(f);
	return rc;
}
