/* ledger: usage records hash-chained per principal and signed in blocks with
 * the facility's Ed25519 key, so anyone holding the public key can check an
 * export and find the first record that was altered, dropped or reordered. */
#ifndef KH_LEDGER_H
#define KH_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/sbuf.h"
#include "meter/usage.h"

#define LEDGER_HASH_LEN 32  /* BLAKE2b-256 (crypto_generichash) */
#define LEDGER_PK_LEN	32  /* Ed25519 public key */
#define LEDGER_SK_LEN	64  /* Ed25519 secret key (libsodium's seed||pk form) */
#define LEDGER_SIG_LEN	64  /* Ed25519 detached signature */
#define LEDGER_NAME_MAX 33  /* principal name, NUL included (see valid_name) */
#define LEDGER_FP_LEN	40  /* "kh1:" + 32 hex digits + NUL, rounded up */
#define LEDGER_HEX_LEN	129 /* enough for 64 bytes in hex + NUL */

/*
 * A record: what one principal used in [t0, t1) (unix ms), normally one
 * sample tick.  Each principal has its own chain: seq 1, 2, 3, ... and
 *
 *   hash = BLAKE2b-256(prev || canonical)
 *
 * where prev is the previous record's hash (32 zero bytes before seq 1) and
 * canonical is the ASCII text, with single spaces and no newline,
 *
 *   <principal> <seq> <t0> <t1>[ <res>=<qty>]...
 *
 * items sorted by name (usage_encode's form), numbers in decimal without
 * leading zeros.  It is text so that anyone can recompute a hash with
 * standard tools (b2sum -l 256 computes the same function).
 */
struct ledger_rec {
	char principal[LEDGER_NAME_MAX];
	uint64_t seq;
	uint64_t t0, t1;
	struct usage use;
	uint8_t prev[LEDGER_HASH_LEN];
	uint8_t hash[LEDGER_HASH_LEN];
};

/*
 * A block signature: the facility signs the head of a principal's chain, so
 * everything up to and including seq is fixed.  The signed message is the
 * ASCII text (no newline)
 *
 *   kh-ledger-v1 <principal> <seq> <hash in lower-case hex>
 *
 * Blocks are closed by khd (every so often and at every export); a block is
 * the records since the previous signature.
 */
struct ledger_sig {
	char principal[LEDGER_NAME_MAX];
	uint64_t seq;
	uint8_t hash[LEDGER_HASH_LEN];
	uint8_t sig[LEDGER_SIG_LEN];
};

/* The facility's key.  has_sk is 0 when only the public half was loaded. */
struct ledger_key {
	uint8_t pk[LEDGER_PK_LEN];
	uint8_t sk[LEDGER_SK_LEN];
	int has_sk;
};

/* Records own their usage vector. */
void ledger_rec_init(struct ledger_rec *r);
void ledger_rec_free(struct ledger_rec *r);

/* Append r->principal, seq, t0, t1 and items as the canonical text (above)
 * to out.  Returns 0, or -1 with a reason when r cannot be a record (invalid
 * principal, seq 0, t1 < t0). */
int ledger_rec_canonical(const struct ledger_rec *r, struct sbuf *out, char *err, size_t errlen);
/* Compute the hash of r from r->prev and its contents into out. */
int ledger_rec_hash(const struct ledger_rec *r, uint8_t out[LEDGER_HASH_LEN], char *err,
		    size_t errlen);
/* Make r the next record of a chain whose head is (prev_seq, prev_hash)
 * (0 and NULL for an empty chain): sets r->seq, r->prev and r->hash.  The
 * caller fills principal, t0, t1 and use first.  Returns 0, or -1. */
int ledger_rec_seal(struct ledger_rec *r, uint64_t prev_seq, const uint8_t *prev_hash, char *err,
		    size_t errlen);

/* A record as one export line, without newline:
 *   r <principal> <seq> <t0> <t1>[ <res>=<qty>]... <hash hex>
 * (the canonical text between "r " and the hash).  This is also a good form
 * for storing a record: ledger_rec_parse gives it back. */
int ledger_rec_format(const struct ledger_rec *r, struct sbuf *out, char *err, size_t errlen);
/* Parse one such line (a trailing '\n' is allowed) into r (which must be
 * initialised).  Sets everything but r->prev, which the line does not hold;
 * does NOT check the hash (ledger_verify does).  Returns 0, or -1. */
int ledger_rec_parse(const char *line, struct ledger_rec *r, char *err, size_t errlen);

/*
 * Keys.  DIR/ledger.key holds the 64-byte secret key as 128 lower-case hex
 * digits and a newline, mode 0600; DIR/ledger.pub the 32-byte public key as
 * 64 hex digits and a newline (mode 0644), which is all a verifier needs.
 * The fingerprint names a key in exports and messages:
 * "kh1:" + the first 16 bytes of BLAKE2b-256(public key) in hex.
 */
/* Load DIR/ledger.key, or create both files when neither exists (atomically:
 * written to temporary names, then renamed).  Rewrites a missing ledger.pub
 * from the secret key; refuses a ledger.pub that does not match it, a key file
 * readable by others, or a ledger.pub without its ledger.key.  Returns 0, or
 * -1 with a reason. */
int ledger_key_load_or_create(const char *dir, struct ledger_key *k, char *err, size_t errlen);
/* Read a public key file (ledger.pub's format) into pk. */
int ledger_pub_load(const char *path, uint8_t pk[LEDGER_PK_LEN], char *err, size_t errlen);
void ledger_key_fingerprint(const uint8_t pk[LEDGER_PK_LEN], char out[LEDGER_FP_LEN]);
/* Zero the secret half. */
void ledger_key_wipe(struct ledger_key *k);

/* Sign the head (principal, seq, hash) of a chain into s (which also gets
 * principal, seq and hash).  Returns 0, or -1 without a secret key. */
int ledger_sign(const struct ledger_key *k, const char *principal, uint64_t seq,
		const uint8_t hash[LEDGER_HASH_LEN], struct ledger_sig *s, char *err,
		size_t errlen);
/* 1 when s is a valid signature of its (principal, seq, hash) by pk, else 0. */
int ledger_sig_check(const uint8_t pk[LEDGER_PK_LEN], const struct ledger_sig *s);

/*
 * Export format: UTF-8 text, one item per line, '\n' line ends, fields
 * separated by single spaces, hashes and signatures in lower-case hex.
 *
 *   kh-ledger-export 1
 *   key <fingerprint of the signing key>
 *   principal <name>
 *   chain <seq> <hash>          the head before the first record: 0 and 64
 *                               zeros for an export from the start
 *   r <principal> <seq> <t0> <t1> <res>=<qty>... <hash>    one per record
 *   s <seq> <signature>         block signature of the record just above
 *   end <seq> <hash> <signature>
 *
 * Records appear in seq order, each followed by its block's signature line
 * when a block ends there; the last record always has one.  The end line
 * signs, with the same key, the ASCII text
 *
 *   kh-ledger-export-v1 <principal> <chain seq> <chain hash> <seq> <hash>
 *
 * fixing both ends of the export, so a file cut short (even right after a
 * signature line) or one whose first records were removed does not verify.
 * Lines starting with '#' are comments; empty lines are not allowed.
 */
struct ledger_export {
	struct sbuf *out;
	const struct ledger_key *key;
	char principal[LEDGER_NAME_MAX];
	uint64_t seq;
	uint8_t chain[LEDGER_HASH_LEN];
	uint64_t chain_seq;
	uint8_t head[LEDGER_HASH_LEN];
	uint64_t nrec;
	int head_signed; /* the last record has its signature line */
};

/* Start an export of principal's chain after the head (chain_seq,
 * chain_hash) (0 and NULL from the beginning) into out; the header lines are
 * written at once.  key needs its secret half (for the end line). */
int ledger_export_begin(struct ledger_export *x, struct sbuf *out, const struct ledger_key *key,
			const char *principal, uint64_t chain_seq, const uint8_t *chain_hash,
			char *err, size_t errlen);
/* Continue an export whose earlier part (header included) was written
 * before, e.g. one page of a long export after another: no header is
 * written; (chain_seq, chain_hash) must be what that part began with, and
 * (seq, hash) its last record; head_signed says whether that record's
 * signature line went out too.  The end line then covers the whole. */
int ledger_export_resume(struct ledger_export *x, struct sbuf *out, const struct ledger_key *key,
			 const char *principal, uint64_t chain_seq, const uint8_t *chain_hash,
			 uint64_t seq, const uint8_t hash[LEDGER_HASH_LEN], int head_signed,
			 char *err, size_t errlen);
/* Add the next record (seq must follow; its prev must be the head). */
int ledger_export_rec(struct ledger_export *x, const struct ledger_rec *r, char *err,
		      size_t errlen);
/* Add a stored block signature of the record just added (s->seq must be the
 * head's seq).  Signatures of other seqs are an error. */
int ledger_export_sig(struct ledger_export *x, const struct ledger_sig *s, char *err,
		      size_t errlen);
/* Sign the head when the last record has no signature line yet, writing
 * that line, then write the end line.  Returns 1 when it made a block
 * signature (copied to *made when made is given: khd should store it, as the
 * block now ends there), 0 when none was needed, -1 on error.  An export of
 * no records is allowed (header and end line only). */
int ledger_export_end(struct ledger_export *x, struct ledger_sig *made, char *err, size_t errlen);

/* What ledger_verify found. */
struct ledger_verify_result {
	char principal[LEDGER_NAME_MAX];
	char fingerprint[LEDGER_FP_LEN]; /* from the key line */
	uint64_t first_seq, last_seq;	 /* 0, 0 when there are no records */
	uint64_t nrec, nsig;
	uint64_t t0, t1;    /* first record's t0, last record's t1 */
	uint64_t bad_line;  /* 0 when good; else the line of the first problem */
	uint64_t bad_seq;   /* the seq named in reason, 0 when none */
	char reason[256];   /* one line, no newline; "" when good */
	struct usage total; /* sum of all records' usage (initialised by verify) */
};

/*
 * Check an export with the public key alone, reading f to its end: the
 * header, that the key line names pk, every record's syntax and principal,
 * that seqs go 1 by 1 from the chain line, that each record's hash is
 * BLAKE2b-256(previous hash || canonical text), every block signature, that
 * the last record is covered by one, and the end line's signature.
 * Returns 0 when all is well; else -1 with res->reason naming the FIRST
 * problem, prefixed by its line ("line 9: "), for example:
 *   record 7 (seq 7): hash does not match (altered)
 *   record 3 (seq 3): principal bob in an export of alice (altered)
 *   seq 7 missing after 6 (dropped)
 *   record 7 (seq 8) out of order: seq 7 comes later (reordered)
 *   record 8 (seq 7) repeats seq 7 (duplicated)
 *   signature of block ending at seq 9 is not valid (a record in seq 5-9
 *     altered, or the signature)
 *   records seq 10-11 are not covered by a signature (unsigned tail)
 *   export ends without its end line (truncated)
 *   end line is for seq 10 but the last record is seq 8 (dropped)
 *   cut short, no newline (truncated)
 *   export was signed by kh1:..., not by the given key kh1:... (wrong key)
 *   bad record: <why>
 * "record N" counts records in the file from 1; res->bad_line and
 * res->bad_seq (0 when none applies) say the same as numbers.  Whoever
 * changes a record and recomputes its hash moves the first mismatch to the
 * record after it (or, recomputing the rest of the block too, to the
 * block's signature): the export still fails.  res is always filled
 * (res->total holds the records good up to the problem); free res->total
 * with usage_free.
 */
int ledger_verify(FILE *f, const uint8_t pk[LEDGER_PK_LEN], struct ledger_verify_result *res);
/* The same on a file name; a file that cannot be read is reported in
 * res->reason too. */
int ledger_verify_file(const char *path, const uint8_t pk[LEDGER_PK_LEN],
		       struct ledger_verify_result *res);

/* Lower-case hex of n bytes into out (2n+1 bytes), and back (exactly 2n hex
 * digits; returns 0 or -1). */
void ledger_hex(const uint8_t *p, size_t n, char *out);
int ledger_unhex(const char *s, uint8_t *p, size_t n);

#endif
