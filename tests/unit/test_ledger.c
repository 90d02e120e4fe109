/* ledger-*: usage vectors and their units, the record chain, key files,
 * block signatures, and an export that verifies until anyone touches it, in
 * which case verify names the first record that was changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meter/ledger.h"

/* usage-1.*: vectors */

static void
usage_1_add_merge(void **state)
{
	struct usage u, v;

	usage_init(&u);
	usage_init(&v);
	assert_int_equal(usage_add(&u, "net-tx:2", 10), 0);
	assert_int_equal(usage_add(&u, "cpu", 5), 0);
	assert_int_equal(usage_add(&u, "net-tx:1", 7), 0);
	assert_int_equal(usage_add(&u, "cpu", 6), 0);
	assert_int_equal(usage_add(&u, "mem-peak", 100), 0);
	assert_int_equal(usage_add(&u, "mem-peak", 40), 0);
	assert_int_equal(u.n, 4);
	assert_string_equal(u.items[0].res, "cpu");
	assert_string_equal(u.items[1].res, "mem-peak");
	assert_string_equal(u.items[2].res, "net-tx:1");
	assert_string_equal(u.items[3].res, "net-tx:2");
	assert_int_equal(usage_get(&u, "cpu"), 11);
	assert_int_equal(usage_get(&u, "mem-peak"), 100); /* a maximum */
	assert_int_equal(usage_get(&u, "console-in"), 0);

	usage_add(&v, "mem-peak", 300);
	usage_add(&v, "cpu", UINT64_MAX - 3);
	usage_merge(&u, &v);
	assert_int_equal(usage_get(&u, "mem-peak"), 300);
	assert_true(usage_get(&u, "cpu") == UINT64_MAX); /* saturates */

	/* usage-1.2: names */
	assert_int_equal(usage_add(&u, "", 1), -1);
	assert_int_equal(usage_add(&u, "CPU", 1), -1);
	assert_int_equal(usage_add(&u, "net-tx:", 1), -1);
	assert_int_equal(usage_add(&u, "net-tx:a b", 1), -1);
	assert_int_equal(usage_add(&u, "net tx", 1), -1);
	assert_int_equal(usage_add(&u, "cpu=1", 1), -1);
	assert_int_equal(usage_add(&u, "a:b:c", 1), -1);
	assert_int_equal(usage_add(&u, "node-time:ct", 0), 0);
	assert_int_equal(
	    usage_add(&u, "x234567890123456789012345678901234567890123456789012345678901234", 1),
	    -1);
	assert_int_equal(u.n, 5);
	usage_free(&u);
	usage_free(&v);
}

static void
usage_1_rollup(void **state)
{
	struct usage u, r;
	struct sbuf b;

	usage_init(&u);
	usage_init(&r);
	sbuf_init(&b);
	usage_add(&u, "net-tx:1", 1000);
	usage_add(&u, "net-tx:2", 48576);
	usage_add(&u, "node-time:ct", 12000);
	usage_add(&u, "cpu", 3020000);
	usage_rollup(&u, &r);
	usage_format_text(&r, &b);
	assert_string_equal(b.s, "cpu 3.02 s\n"
				 "net-tx 49576 B\n"
				 "net-tx:1 1000 B\n"
				 "net-tx:2 48576 B\n"
				 "node-time 12.0 s\n"
				 "node-time:ct 12.0 s\n");
	usage_free(&u);
	usage_free(&r);
	sbuf_free(&b);
}

static void
line(const char *res, uint64_t q, const char *want)
{
	struct sbuf b;
	sbuf_init(&b);
	usage_format_line(res, q, &b);
	assert_string_equal(b.s, want);
	sbuf_free(&b);
}

/* usage-2.*: what khbill usage prints */
static void
usage_2_format(void **state)
{
	line("cpu", 3020000, "cpu 3.02 s");
	line("cpu", 3024999, "cpu 3.02 s");
	line("cpu", 3025000, "cpu 3.03 s"); /* half up */
	line("cpu", 0, "cpu 0.00 s");
	line("cpu", 999, "cpu 0.00 s");
	line("node-time:ct", 12000, "node-time:ct 12.0 s");
	line("node-time:ct", 12049, "node-time:ct 12.0 s");
	line("node-time:ct", 12050, "node-time:ct 12.1 s");
	line("mem", 1171875, "mem 1.2e9 B*s"); /* 1171875 KiB*s = 1.2e9 B*s */
	line("mem", 1000000000, "mem 1.02e12 B*s");
	line("mem", 976562, "mem 1.0e9 B*s");
	line("mem", 100, "mem 102400 B*s");
	line("mem", 977, "mem 1.0e6 B*s");
	line("mem", 975, "mem 998400 B*s");
	line("mem", 976, "mem 999424 B*s");
	line("mem-peak", 52428800, "mem-peak 52428800 B");
	line("net-tx", 1048576, "net-tx 1048576 B");
	line("net-txpk:3", 812, "net-txpk:3 812 pkt");
	line("console-out", 2048, "console-out 2048 B");
	line("gpu-time", 5, "gpu-time 5");
	line("cpu", UINT64_MAX, "cpu 18446744073709.55 s");
}

static void
usage_2_json(void **state)
{
	struct usage u;
	struct sbuf b;

	usage_init(&u);
	sbuf_init(&b);
	usage_format_json(&u, &b);
	assert_string_equal(b.s, "[]");
	sbuf_reset(&b);
	usage_add(&u, "cpu", 3020000);
	usage_add(&u, "net-tx:1", 1048576);
	usage_format_json(&u, &b);
	assert_string_equal(
	    b.s, "[{\"resource\":\"cpu\",\"quantity\":\"3.02\",\"unit\":\"s\",\"base\":3020000,"
		 "\"base_unit\":\"us\"},{\"resource\":\"net-tx:1\",\"quantity\":\"1048576\","
		 "\"unit\":\"B\",\"base\":1048576,\"base_unit\":\"B\"}]");
	usage_free(&u);
	sbuf_free(&b);
}

static void
usage_3_encode_decode(void **state)
{
	struct usage u, v;
	struct sbuf b;
	char err[200];

	usage_init(&u);
	usage_init(&v);
	sbuf_init(&b);
	usage_add(&u, "net-rx:7", 18446744073709551615ULL);
	usage_add(&u, "cpu", 0);
	usage_encode(&u, &b);
	assert_string_equal(b.s, "cpu=0 net-rx:7=18446744073709551615");
	assert_int_equal(usage_decode(b.s, &v, err, sizeof(err)), 0);
	assert_int_equal(v.n, 2);
	assert_true(usage_get(&v, "net-rx:7") == UINT64_MAX);
	assert_int_equal(usage_decode("", &v, err, sizeof(err)), 0);
	assert_int_equal(v.n, 0);

	static const char *bad[] = {
	    "cpu=1 cpu=2",		/* repeated */
	    "net-tx=1 cpu=2",		/* unsorted */
	    "cpu=01",			/* leading zero */
	    "cpu=",			/* no number */
	    "cpu=-1",			/* sign */
	    "cpu=18446744073709551616", /* 2^64 */
	    "cpu",			/* no '=' */
	    "cpu=1  mem=2",		/* two spaces */
	    "cpu=1 ",			/* trailing space */
	    "CPU=1",			/* bad name */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(usage_decode(bad[i], &v, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
	}
	usage_free(&u);
	usage_free(&v);
	sbuf_free(&b);
}

/* ledger-1.*: records and the chain */

static void
fill(struct ledger_rec *r, const char *who, uint64_t i)
{
	usage_reset(&r->use);
	snprintf(r->principal, sizeof(r->principal), "%s", who);
	r->t0 = 1700000000000ULL + (i - 1) * 1000;
	r->t1 = r->t0 + 1000;
	usage_add(&r->use, "cpu", 1000 * i);
	usage_add(&r->use, "node-time:ct", 1000);
	usage_add(&r->use, "net-tx:1", 100 + i);
	usage_add(&r->use, "mem-peak", 4096 * i);
}

static void
ledger_1_known_hash(void **state)
{
	/* The documented formula, checked against b2sum -l 256 (see
	 * docs/metering.md "Ledger"): nobody needs our code to recompute. */
	struct ledger_rec r;
	struct sbuf b;
	char hex[LEDGER_HEX_LEN], err[200];

	ledger_rec_init(&r);
	sbuf_init(&b);
	snprintf(r.principal, sizeof(r.principal), "alice");
	r.t0 = 1700000000000ULL;
	r.t1 = 1700000001000ULL;
	usage_add(&r.use, "node-time:ct", 1000);
	usage_add(&r.use, "cpu", 1000000);
	assert_int_equal(ledger_rec_seal(&r, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(r.seq, 1);
	ledger_hex(r.hash, LEDGER_HASH_LEN, hex);
	assert_string_equal(hex,
			    "982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6");
	assert_int_equal(ledger_rec_format(&r, &b, err, sizeof(err)), 0);
	assert_string_equal(b.s,
			    "r alice 1 1700000000000 1700000001000 cpu=1000000 node-time:ct=1000 "
			    "982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6");

	/* ledger-1.2: the next record chains on, and a record may be empty */
	uint8_t prev[LEDGER_HASH_LEN];
	memcpy(prev, r.hash, sizeof(prev));
	usage_reset(&r.use);
	r.t0 = 1700000001000ULL;
	r.t1 = 1700000002000ULL;
	assert_int_equal(ledger_rec_seal(&r, 1, prev, err, sizeof(err)), 0);
	assert_int_equal(r.seq, 2);
	assert_memory_equal(r.prev, prev, LEDGER_HASH_LEN);
	ledger_hex(r.hash, LEDGER_HASH_LEN, hex);
	assert_string_equal(hex,
			    "cebfba261f69028692202d485642e637103b8a4cc3a930ad50f025ffb4cbe1c3");

	/* ledger-1.3: what cannot be a record */
	r.t1 = r.t0 - 1;
	assert_int_equal(ledger_rec_seal(&r, 2, prev, err, sizeof(err)), -1);
	r.t1 = r.t0;
	snprintf(r.principal, sizeof(r.principal), "-bad");
	assert_int_equal(ledger_rec_seal(&r, 2, prev, err, sizeof(err)), -1);
	snprintf(r.principal, sizeof(r.principal), "alice");
	assert_int_equal(ledger_rec_seal(&r, 2, NULL, err, sizeof(err)), -1);
	ledger_rec_free(&r);
	sbuf_free(&b);
}

static void
ledger_1_parse(void **state)
{
	struct ledger_rec r, p;
	struct sbuf b;
	char err[200];

	ledger_rec_init(&r);
	ledger_rec_init(&p);
	sbuf_init(&b);
	fill(&r, "bob", 3);
	assert_int_equal(ledger_rec_seal(&r, 0, NULL, err, sizeof(err)), 0);
	ledger_rec_format(&r, &b, err, sizeof(err));
	sbuf_adds(&b, "\n");
	assert_int_equal(ledger_rec_parse(b.s, &p, err, sizeof(err)), 0);
	assert_string_equal(p.principal, "bob");
	assert_int_equal(p.seq, r.seq);
	assert_int_equal(p.t0, r.t0);
	assert_int_equal(p.t1, r.t1);
	assert_int_equal(p.use.n, 4);
	assert_int_equal(usage_get(&p.use, "mem-peak"), 3 * 4096);
	assert_memory_equal(p.hash, r.hash, LEDGER_HASH_LEN);

	static const char *bad[] = {
	    "",
	    "r",
	    "x bob 1 2 3 cpu=1 " /* wrong type */
	    "982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r bob 1 2 3 cpu=1",
	    "r bob 1 2 3 cpu=1 982E58EB96AA78231F900222EF52D72CCF441FF9844F3B66537685C15B3922F6",
	    "r bob 1 2 3 cpu=1 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922",
	    "r bob 0 2 3 cpu=1 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r bob 1 3 2 cpu=1 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r bob 01 2 3 cpu=1 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r bob 1 2 cpu=1 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r -bob 1 2 3 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r bob 1 2 3 cpu=x 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r bob 1 2 3 cpu=1 cpu=1 "
	    "982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	    "r bob 1 2 3  982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (ledger_rec_parse(bad[i], &p, err, sizeof(err)) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(err[0] != '\0');
	}
	/* No items is a record too. */
	assert_int_equal(
	    ledger_rec_parse(
		"r bob 1 2 3 982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6", &p,
		err, sizeof(err)),
	    0);
	assert_int_equal(p.use.n, 0);
	ledger_rec_free(&r);
	ledger_rec_free(&p);
	sbuf_free(&b);
}

/* ledger-2.*: key files */

static char *
scratch(void)
{
	char *d = strdup("/tmp/test_ledger.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void
rm_scratch(char *d)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/ledger.key", d);
	unlink(p);
	snprintf(p, sizeof(p), "%s/ledger.pub", d);
	unlink(p);
	rmdir(d);
	free(d);
}

static void
ledger_2_keys(void **state)
{
	char *d = scratch(), kp[512], pp[512], err[300], buf[200];
	struct ledger_key k, k2;
	uint8_t pk[LEDGER_PK_LEN];
	struct stat st;

	snprintf(kp, sizeof(kp), "%s/ledger.key", d);
	snprintf(pp, sizeof(pp), "%s/ledger.pub", d);
	assert_int_equal(ledger_key_load_or_create(d, &k, err, sizeof(err)), 0);
	assert_true(k.has_sk);
	assert_int_equal(stat(kp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 129);
	assert_int_equal(stat(pp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(st.st_size, 65);
	assert_int_equal(ledger_pub_load(pp, pk, err, sizeof(err)), 0);
	assert_memory_equal(pk, k.pk, LEDGER_PK_LEN);

	/* ledger-2.2: the second start loads the same key */
	assert_int_equal(ledger_key_load_or_create(d, &k2, err, sizeof(err)), 0);
	assert_memory_equal(k2.pk, k.pk, LEDGER_PK_LEN);
	assert_memory_equal(k2.sk, k.sk, LEDGER_SK_LEN);

	/* ledger-2.3: a lost ledger.pub comes back from the key */
	unlink(pp);
	assert_int_equal(ledger_key_load_or_create(d, &k2, err, sizeof(err)), 0);
	assert_int_equal(ledger_pub_load(pp, pk, err, sizeof(err)), 0);
	assert_memory_equal(pk, k.pk, LEDGER_PK_LEN);

	/* ledger-2.4: a key others can read is refused */
	chmod(kp, 0644);
	assert_int_equal(ledger_key_load_or_create(d, &k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "readable by others"));
	assert_false(k2.has_sk);
	chmod(kp, 0600);

	/* ledger-2.5: a ledger.pub of another key is refused */
	FILE *f = fopen(pp, "w");
	fprintf(f, "%064d\n", 0);
	fclose(f);
	assert_int_equal(ledger_key_load_or_create(d, &k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not belong"));

	/* ledger-2.6: a damaged key is refused */
	ledger_hex(k.sk, LEDGER_SK_LEN, buf);
	buf[127] = buf[127] == '0' ? '1' : '0';
	f = fopen(kp, "w");
	fprintf(f, "%s\n", buf);
	fclose(f);
	unlink(pp);
	assert_int_equal(ledger_key_load_or_create(d, &k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "damaged"));

	/* ledger-2.7: a ledger.pub without its key is not silently replaced */
	unlink(kp);
	f = fopen(pp, "w");
	fprintf(f, "%064d\n", 0);
	fclose(f);
	assert_int_equal(ledger_key_load_or_create(d, &k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not"));
	assert_int_equal(access(kp, F_OK), -1);

	/* ledger-2.8: bad public key files */
	f = fopen(pp, "w");
	fprintf(f, "abc\n");
	fclose(f);
	assert_int_equal(ledger_pub_load(pp, pk, err, sizeof(err)), -1);
	assert_int_equal(ledger_pub_load("/nonexistent/ledger.pub", pk, err, sizeof(err)), -1);
	ledger_key_wipe(&k);
	ledger_key_wipe(&k2);
	rm_scratch(d);
}

/* ledger-3.*: signatures */

static void
ledger_3_sign(void **state)
{
	struct ledger_key k, other;
	struct ledger_sig s, t;
	uint8_t h[LEDGER_HASH_LEN];
	char err[200];

	crypto_sign_keypair(k.pk, k.sk);
	k.has_sk = 1;
	crypto_sign_keypair(other.pk, other.sk);
	memset(h, 7, sizeof(h));
	assert_int_equal(ledger_sign(&k, "alice", 17, h, &s, err, sizeof(err)), 0);
	assert_string_equal(s.principal, "alice");
	assert_int_equal(s.seq, 17);
	assert_true(ledger_sig_check(k.pk, &s));
	assert_false(ledger_sig_check(other.pk, &s));
	t = s;
	t.seq = 18;
	assert_false(ledger_sig_check(k.pk, &t));
	t = s;
	snprintf(t.principal, sizeof(t.principal), "bob");
	assert_false(ledger_sig_check(k.pk, &t));
	t = s;
	t.hash[31] ^= 1;
	assert_false(ledger_sig_check(k.pk, &t));
	t = s;
	t.sig[0] ^= 1;
	assert_false(ledger_sig_check(k.pk, &t));
	/* The signed message is the documented text. */
	char hex[LEDGER_HEX_LEN], msg[200];
	ledger_hex(h, sizeof(h), hex);
	snprintf(msg, sizeof(msg), "kh-ledger-v1 alice 17 %s", hex);
	assert_int_equal(crypto_sign_verify_detached(s.sig, (uint8_t *)msg, strlen(msg), k.pk), 0);
	k.has_sk = 0;
	assert_int_equal(ledger_sign(&k, "alice", 17, h, &s, err, sizeof(err)), -1);
}

/* ledger-4.*: exports */

struct fixture {
	struct ledger_key key, other;
	struct sbuf exp;
};

/* An export of alice's records 1..n with a block signed every 4 records,
 * as khd writes it; chain_from > 0 starts after that seq. */
static void
make_export(struct fixture *fx, int n, int chain_from)
{
	struct ledger_export x;
	struct ledger_rec r;
	struct ledger_sig s, made;
	uint8_t head[LEDGER_HASH_LEN];
	char err[200];

	ledger_rec_init(&r);
	sbuf_reset(&fx->exp);
	for (int i = 1; i <= n; i++) {
		fill(&r, "alice", (uint64_t)i);
		assert_int_equal(
		    ledger_rec_seal(&r, (uint64_t)i - 1, i > 1 ? head : NULL, err, sizeof(err)), 0);
		if (i == chain_from + 1)
			assert_int_equal(ledger_export_begin(
					     &x, &fx->exp, &fx->key, "alice", (uint64_t)chain_from,
					     chain_from ? head : NULL, err, sizeof(err)),
					 0);
		memcpy(head, r.hash, sizeof(head));
		if (i <= chain_from)
			continue;
		assert_int_equal(ledger_export_rec(&x, &r, err, sizeof(err)), 0);
		if (i % 4 == 0) {
			assert_int_equal(
			    ledger_sign(&fx->key, "alice", r.seq, r.hash, &s, err, sizeof(err)), 0);
			assert_int_equal(ledger_export_sig(&x, &s, err, sizeof(err)), 0);
		}
	}
	if (n == 0)
		assert_int_equal(
		    ledger_export_begin(&x, &fx->exp, &fx->key, "alice", 0, NULL, err, sizeof(err)),
		    0);
	int rc = ledger_export_end(&x, &made, err, sizeof(err));
	assert_int_equal(rc, n % 4 ? 1 : 0);
	if (rc == 1) {
		assert_int_equal(made.seq, (uint64_t)n);
		assert_true(ledger_sig_check(fx->key.pk, &made));
	}
	ledger_rec_free(&r);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	crypto_sign_keypair(fx->key.pk, fx->key.sk);
	fx->key.has_sk = 1;
	crypto_sign_keypair(fx->other.pk, fx->other.sk);
	fx->other.has_sk = 1;
	sbuf_init(&fx->exp);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	sbuf_free(&fx->exp);
	free(fx);
	return 0;
}

/* Verify text with pk; the reason ("" when good) goes to why. */
static int
verify_text(const char *text, const uint8_t *pk, struct ledger_verify_result *res)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(f);
	int rc = ledger_verify(f, pk, res);
	fclose(f);
	return rc;
}

/* Expect text to fail verification with exactly this reason. */
static void
expect_bad(const char *text, const uint8_t *pk, const char *reason, uint64_t seq)
{
	struct ledger_verify_result res;
	int rc = verify_text(text, pk, &res);
	if (rc != -1 || strcmp(res.reason, reason) != 0)
		fail_msg("got %d '%s', want '%s'\n%s", rc, res.reason, reason, text);
	assert_int_equal(res.bad_seq, seq);
	assert_true(res.bad_line > 0);
	usage_free(&res.total);
}

/* Line n (from 1) of text, for editing; *len gets its length. */
static char *
line_of(char *text, int n, size_t *len)
{
	char *p = text;
	while (--n > 0) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	*len = strcspn(p, "\n");
	return p;
}

/* A copy of text with line n replaced by repl (NULL: removed). */
static char *
replace_line(const char *text, int n, const char *repl)
{
	char *t = strdup(text);
	size_t len;
	char *p = line_of(t, n, &len);
	struct sbuf b;
	sbuf_init(&b);
	sbuf_add(&b, t, (size_t)(p - t));
	if (repl) {
		sbuf_adds(&b, repl);
		sbuf_adds(&b, "\n");
	}
	sbuf_adds(&b, p + len + (p[len] == '\n'));
	free(t);
	return b.s;
}

static char *
get_line(const char *text, int n)
{
	char *t = strdup(text);
	size_t len;
	char *p = line_of(t, n, &len);
	char *l = strndup(p, len);
	free(t);
	return l;
}

/* The layout of make_export(fx, 10, 0):
 *   1-4 header, 5-8 records 1-4, 9 s 4, 10-13 records 5-8, 14 s 8,
 *   15-16 records 9-10, 17 s 10, 18 end. */
static int
rec_line(int seq)
{
	return 4 + seq + (seq - 1) / 4;
}

static void
ledger_4_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct ledger_verify_result res;
	char fp[LEDGER_FP_LEN];

	make_export(fx, 10, 0);
	assert_int_equal(verify_text(fx->exp.s, fx->key.pk, &res), 0);
	assert_string_equal(res.reason, "");
	assert_int_equal(res.bad_line, 0);
	assert_string_equal(res.principal, "alice");
	ledger_key_fingerprint(fx->key.pk, fp);
	assert_string_equal(res.fingerprint, fp);
	assert_int_equal(strlen(fp), 36);
	assert_int_equal(res.first_seq, 1);
	assert_int_equal(res.last_seq, 10);
	assert_int_equal(res.nrec, 10);
	assert_int_equal(res.nsig, 3);
	assert_true(res.t0 == 1700000000000ULL);
	assert_true(res.t1 == 1700000010000ULL);
	assert_int_equal(usage_get(&res.total, "cpu"), 55000);
	assert_int_equal(usage_get(&res.total, "node-time:ct"), 10000);
	assert_int_equal(usage_get(&res.total, "net-tx:1"), 1055);
	assert_int_equal(usage_get(&res.total, "mem-peak"), 40960);
	usage_free(&res.total);

	/* The layout the tests below edit. */
	char *l = get_line(fx->exp.s, 1);
	assert_string_equal(l, "kh-ledger-export 1");
	free(l);
	l = get_line(fx->exp.s, 4);
	assert_string_equal(
	    l, "chain 0 0000000000000000000000000000000000000000000000000000000000000000");
	free(l);
	l = get_line(fx->exp.s, rec_line(7));
	assert_non_null(strstr(l, "r alice 7 1700000006000 1700000007000 cpu=7000 mem-peak=28672 "
				  "net-tx:1=107 node-time:ct=1000 "));
	free(l);
	l = get_line(fx->exp.s, 17);
	assert_true(strncmp(l, "s 10 ", 5) == 0);
	free(l);
	l = get_line(fx->exp.s, 18);
	assert_true(strncmp(l, "end 10 ", 7) == 0);
	free(l);

	/* ledger-4.2: through a file, and comments are ignored */
	char path[] = "/tmp/test_ledger_exp.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "# exported for the test\n", 24), 24);
	assert_int_equal(write(fd, fx->exp.s, fx->exp.len), (ssize_t)fx->exp.len);
	close(fd);
	assert_int_equal(ledger_verify_file(path, fx->key.pk, &res), 0);
	usage_free(&res.total);
	unlink(path);
	assert_int_equal(ledger_verify_file(path, fx->key.pk, &res), -1);
	assert_non_null(strstr(res.reason, "No such file"));
	usage_free(&res.total);
}

static void
ledger_4_partial_and_empty(void **state)
{
	struct fixture *fx = *state;
	struct ledger_verify_result res;

	/* An export that starts after seq 5 (e.g. khbill export --from). */
	make_export(fx, 10, 5);
	assert_int_equal(verify_text(fx->exp.s, fx->key.pk, &res), 0);
	assert_int_equal(res.first_seq, 6);
	assert_int_equal(res.last_seq, 10);
	assert_int_equal(res.nrec, 5);
	usage_free(&res.total);
	/* Its first record must follow the chain line exactly. */
	char *t = replace_line(fx->exp.s, 5, NULL);
	expect_bad(t, fx->key.pk, "line 5: seq 6 missing after 5 (dropped)", 6);
	free(t);
	/* Moving the chain line breaks the first record, and the end line. */
	char *l = get_line(fx->exp.s, 4);
	l[6] = '4';
	t = replace_line(fx->exp.s, 4, l);
	expect_bad(t, fx->key.pk, "line 5: seq 5 missing after 4 (dropped)", 5);
	free(t);
	free(l);

	/* An empty export verifies (a principal that used nothing). */
	make_export(fx, 0, 0);
	assert_int_equal(verify_text(fx->exp.s, fx->key.pk, &res), 0);
	assert_int_equal(res.nrec, 0);
	assert_int_equal(res.first_seq, 0);
	usage_free(&res.total);

	/* An export that ends on a block boundary needs no extra signature. */
	make_export(fx, 8, 0);
	assert_int_equal(verify_text(fx->exp.s, fx->key.pk, &res), 0);
	assert_int_equal(res.nsig, 2);
	usage_free(&res.total);
}

/* ledger-4.3: an export written in pages (khd sends long ones in parts) is
 * the same text as one written at once. */
static void
ledger_4_paged(void **state)
{
	struct fixture *fx = *state;
	struct ledger_export x;
	struct ledger_rec r;
	struct ledger_sig s;
	struct sbuf out;
	uint8_t head[LEDGER_HASH_LEN];
	char err[200];

	make_export(fx, 10, 0);
	ledger_rec_init(&r);
	sbuf_init(&out);
	for (int i = 1; i <= 10; i++) {
		fill(&r, "alice", (uint64_t)i);
		ledger_rec_seal(&r, (uint64_t)i - 1, i > 1 ? head : NULL, err, sizeof(err));
		if (i == 1)
			assert_int_equal(ledger_export_begin(&x, &out, &fx->key, "alice", 0, NULL,
							     err, sizeof(err)),
					 0);
		if (i == 5 || i == 7) {
			/* A new page after record i - 1 (4 was signed, 6 not). */
			assert_int_equal(ledger_export_resume(&x, &out, &fx->key, "alice", 0, NULL,
							      (uint64_t)i - 1, head, i == 5, err,
							      sizeof(err)),
					 0);
		}
		memcpy(head, r.hash, sizeof(head));
		assert_int_equal(ledger_export_rec(&x, &r, err, sizeof(err)), 0);
		if (i % 4 == 0) {
			ledger_sign(&fx->key, "alice", r.seq, r.hash, &s, err, sizeof(err));
			assert_int_equal(ledger_export_sig(&x, &s, err, sizeof(err)), 0);
		}
	}
	assert_int_equal(ledger_export_end(&x, NULL, err, sizeof(err)), 1);
	assert_string_equal(out.s, fx->exp.s);
	/* Resuming before the chain start is refused. */
	uint8_t h[LEDGER_HASH_LEN] = {0};
	assert_int_equal(
	    ledger_export_resume(&x, &out, &fx->key, "alice", 5, h, 4, h, 1, err, sizeof(err)), -1);
	ledger_rec_free(&r);
	sbuf_free(&out);
}

/* ledger-5.*: tampering is detected and named */

static void
ledger_5_altered(void **state)
{
	struct fixture *fx = *state;
	make_export(fx, 10, 0);
	char *l = get_line(fx->exp.s, rec_line(7)), *t;

	/* ledger-5.1: one quantity */
	char *q = strstr(l, "cpu=7000");
	q[4] = '6';
	t = replace_line(fx->exp.s, rec_line(7), l);
	expect_bad(t, fx->key.pk, "line 12: record 7 (seq 7): hash does not match (altered)", 7);
	free(t);
	free(l);

	/* ledger-5.2: the principal of one record */
	l = get_line(fx->exp.s, rec_line(3));
	memcpy(l + 2, "alica", 5);
	t = replace_line(fx->exp.s, rec_line(3), l);
	expect_bad(t, fx->key.pk,
		   "line 7: record 3 (seq 3): principal alica in an export of alice (altered)", 3);
	free(t);
	free(l);

	/* ledger-5.3: the header's principal */
	t = replace_line(fx->exp.s, 3, "principal alica");
	expect_bad(t, fx->key.pk,
		   "line 5: record 1 (seq 1): principal alice in an export of alica (altered)", 1);
	free(t);

	/* ledger-5.4: a time */
	l = get_line(fx->exp.s, rec_line(10));
	l[20] = l[20] == '9' ? '8' : '9';
	t = replace_line(fx->exp.s, rec_line(10), l);
	expect_bad(t, fx->key.pk, "line 16: record 10 (seq 10): hash does not match (altered)", 10);
	free(t);
	free(l);

	/* ledger-5.5: a record changed and its own hash recomputed: the next
	 * record no longer chains to it. */
	struct ledger_rec r;
	struct sbuf b;
	char err[200];
	uint8_t prev[LEDGER_HASH_LEN];
	ledger_rec_init(&r);
	sbuf_init(&b);
	l = get_line(fx->exp.s, rec_line(4));
	assert_int_equal(ledger_rec_parse(l, &r, err, sizeof(err)), 0);
	free(l);
	memcpy(prev, r.hash, sizeof(prev));
	l = get_line(fx->exp.s, rec_line(5));
	assert_int_equal(ledger_rec_parse(l, &r, err, sizeof(err)), 0);
	free(l);
	usage_add(&r.use, "cpu", 1); /* 5001 */
	assert_int_equal(ledger_rec_seal(&r, 4, prev, err, sizeof(err)), 0);
	ledger_rec_format(&r, &b, err, sizeof(err));
	t = replace_line(fx->exp.s, rec_line(5), b.s);
	expect_bad(t, fx->key.pk, "line 11: record 6 (seq 6): hash does not match (altered)", 6);
	free(t);

	/* ledger-5.6: ... and the rest of its block too: the block's signature
	 * no longer holds. */
	char *cur = replace_line(fx->exp.s, rec_line(5), b.s);
	for (int seq = 6; seq <= 8; seq++) {
		memcpy(prev, r.hash, sizeof(prev));
		l = get_line(cur, rec_line(seq));
		assert_int_equal(ledger_rec_parse(l, &r, err, sizeof(err)), 0);
		free(l);
		assert_int_equal(ledger_rec_seal(&r, (uint64_t)seq - 1, prev, err, sizeof(err)), 0);
		sbuf_reset(&b);
		ledger_rec_format(&r, &b, err, sizeof(err));
		t = replace_line(cur, rec_line(seq), b.s);
		free(cur);
		cur = t;
	}
	expect_bad(cur, fx->key.pk,
		   "line 14: signature of block ending at seq 8 is not valid (a record in seq 5-8 "
		   "altered, or the signature)",
		   5);
	free(cur);
	ledger_rec_free(&r);
	sbuf_free(&b);
}

static void
ledger_5_dropped_reordered(void **state)
{
	struct fixture *fx = *state;
	char *t, *a, *b;
	make_export(fx, 10, 0);

	/* ledger-5.7: a record dropped */
	t = replace_line(fx->exp.s, rec_line(6), NULL);
	expect_bad(t, fx->key.pk, "line 11: seq 6 missing after 5 (dropped)", 6);
	free(t);

	/* ledger-5.8: two records dropped, the first one */
	char *t1 = replace_line(fx->exp.s, rec_line(2), NULL);
	t = replace_line(t1, rec_line(1), NULL);
	expect_bad(t, fx->key.pk, "line 5: seq 1-2 missing after 0 (dropped)", 1);
	free(t);
	free(t1);

	/* ledger-5.9: two records swapped */
	a = get_line(fx->exp.s, rec_line(6));
	b = get_line(fx->exp.s, rec_line(7));
	t1 = replace_line(fx->exp.s, rec_line(6), b);
	t = replace_line(t1, rec_line(7), a);
	expect_bad(t, fx->key.pk,
		   "line 11: record 6 (seq 7) out of order: seq 6 comes later (reordered)", 7);
	free(t);
	free(t1);

	/* ledger-5.10: a record moved far down, into another block */
	t1 = replace_line(fx->exp.s, rec_line(6), NULL);
	t = replace_line(t1, rec_line(9) - 1, a); /* lines shifted up by one */
	expect_bad(t, fx->key.pk,
		   "line 11: record 6 (seq 7) out of order: seq 6 comes later (reordered)", 7);
	free(t);
	free(t1);

	/* ledger-5.11: a record repeated */
	t1 = strdup(fx->exp.s);
	t = replace_line(t1, rec_line(7), NULL);
	free(t1);
	t1 = t;
	struct sbuf s;
	sbuf_init(&s);
	size_t len;
	char *p = line_of(t1, rec_line(7), &len);
	sbuf_add(&s, t1, (size_t)(p - t1));
	sbuf_adds(&s, a);
	sbuf_adds(&s, "\n");
	sbuf_adds(&s, p);
	expect_bad(s.s, fx->key.pk, "line 12: record 7 (seq 6) repeats seq 6 (duplicated)", 6);
	sbuf_free(&s);
	free(t1);
	free(a);
	free(b);
}

static void
ledger_5_truncated(void **state)
{
	struct fixture *fx = *state;
	make_export(fx, 10, 0);
	char *t = strdup(fx->exp.s);
	size_t len;

	/* ledger-5.12: cut in the middle of a block: an unsigned tail */
	char *p = line_of(t, rec_line(7) + 1, &len);
	*p = '\0';
	expect_bad(t, fx->key.pk,
		   "line 10: records seq 5-7 are not covered by a signature (unsigned tail)", 5);

	/* ledger-5.13: cut right after a signature line: the end line is
	 * missing */
	free(t);
	t = strdup(fx->exp.s);
	p = line_of(t, 15, &len);
	*p = '\0';
	expect_bad(t, fx->key.pk, "line 15: export ends without its end line (truncated)", 0);

	/* ledger-5.14: cut inside a line */
	free(t);
	t = strdup(fx->exp.s);
	p = line_of(t, rec_line(9), &len);
	p[30] = '\0';
	expect_bad(t, fx->key.pk, "line 15: cut short, no newline (truncated)", 0);

	/* ledger-5.15: the last records and their signature removed, with the
	 * end line kept */
	char *t1 = replace_line(fx->exp.s, 17, NULL);
	char *t2 = replace_line(t1, 16, NULL);
	free(t1);
	t1 = replace_line(t2, 15, NULL);
	expect_bad(t1, fx->key.pk,
		   "line 15: end line is for seq 10 but the last record is seq 8 (dropped)", 9);
	free(t1);
	free(t2);

	/* ledger-5.16: the end line moved onto an earlier block (a forger
	 * with an old export): its signature covers another range */
	t2 = replace_line(fx->exp.s, 15, NULL);
	char *t3 = replace_line(t2, 15, NULL);
	char *t4 = replace_line(t3, 15, NULL); /* lines 15-17 gone: end follows s 8 */
	free(t2);
	free(t3);
	/* Keep the end line's signature but point it at seq 8's hash. */
	char *l8 = get_line(fx->exp.s, rec_line(8));
	char *end = get_line(t4, 15);
	char *sig = strrchr(end, ' ');
	char repl[512];
	snprintf(repl, sizeof(repl), "end 8 %.*s%s", 64, l8 + strlen(l8) - 64, sig);
	t2 = replace_line(t4, 15, repl);
	expect_bad(t2, fx->key.pk,
		   "line 15: signature of the end line is not valid (header or end line altered)",
		   0);
	free(t2);
	free(t4);
	free(l8);
	free(end);

	/* ledger-5.17: text after the end line */
	struct sbuf s;
	sbuf_init(&s);
	sbuf_adds(&s, fx->exp.s);
	sbuf_adds(&s, "r x\n");
	expect_bad(s.s, fx->key.pk, "line 19: text after the end line", 0);
	sbuf_free(&s);
	free(t);
}

static void
ledger_5_signatures(void **state)
{
	struct fixture *fx = *state;
	make_export(fx, 10, 0);
	char *l, *t;

	/* ledger-5.18: a forged block signature */
	l = get_line(fx->exp.s, 9); /* s 4 <sig> */
	l[10] = l[10] == 'a' ? 'b' : 'a';
	t = replace_line(fx->exp.s, 9, l);
	expect_bad(t, fx->key.pk,
		   "line 9: signature of block ending at seq 4 is not valid (a record in seq 1-4 "
		   "altered, or the signature)",
		   1);
	free(t);
	free(l);

	/* ledger-5.19: a signature line moved after another record */
	l = get_line(fx->exp.s, 9);
	char *t1 = replace_line(fx->exp.s, 9, NULL);
	t = replace_line(t1, 9, NULL); /* record 5 gone too */
	free(t1);
	t1 = t;
	size_t len;
	char *p = line_of(t1, 9, &len);
	struct sbuf s;
	sbuf_init(&s);
	sbuf_add(&s, t1, (size_t)(p - t1));
	char *r5 = get_line(fx->exp.s, rec_line(5));
	sbuf_adds(&s, r5);
	sbuf_adds(&s, "\n");
	free(r5);
	sbuf_adds(&s, l);
	sbuf_adds(&s, "\n");
	sbuf_adds(&s, p);
	expect_bad(s.s, fx->key.pk,
		   "line 10: signature of seq 4 is not right after record seq 4 (misplaced)", 4);
	sbuf_free(&s);
	free(t1);
	free(l);

	/* ledger-5.20: verified with another key */
	char want[300], fp[LEDGER_FP_LEN], ofp[LEDGER_FP_LEN];
	ledger_key_fingerprint(fx->key.pk, fp);
	ledger_key_fingerprint(fx->other.pk, ofp);
	snprintf(want, sizeof(want),
		 "line 2: export was signed by %s, not by the given key %s (wrong key)", fp, ofp);
	expect_bad(fx->exp.s, fx->other.pk, want, 0);

	/* ledger-5.21: ... also when the key line is changed to match it */
	char kl[100];
	snprintf(kl, sizeof(kl), "key %s", ofp);
	t = replace_line(fx->exp.s, 2, kl);
	expect_bad(t, fx->other.pk,
		   "line 9: signature of block ending at seq 4 is not valid (a record in seq 1-4 "
		   "altered, or the signature)",
		   1);
	free(t);

	/* ledger-5.22: an export made with the wrong key entirely */
	struct ledger_key k = fx->key;
	fx->key = fx->other;
	make_export(fx, 3, 0);
	fx->key = k;
	snprintf(want, sizeof(want),
		 "line 2: export was signed by %s, not by the given key %s (wrong key)", ofp, fp);
	expect_bad(fx->exp.s, fx->key.pk, want, 0);
}

static void
ledger_6_bad_input(void **state)
{
	struct fixture *fx = *state;
	make_export(fx, 5, 0);
	char *t;
	struct {
		int line;
		const char *repl;
		const char *reason;
	} cases[] = {
	    {1, "kh-ledger-export 2", "line 1: export format version 2 is not supported"},
	    {1, "hello", "line 1: not a ledger export (no 'kh-ledger-export 1' line)"},
	    {2, "key", "line 2: expected 'key <fingerprint>'"},
	    {3, "principal", "line 3: expected 'principal <name>'"},
	    {3, "principal a b", "line 3: expected 'principal <name>'"},
	    {4, "chain 0 00", "line 4: expected 'chain <seq> <hash>'"},
	    {5, "r alice", "line 5: bad record: too few fields"},
	    {5, "", "line 5: unknown line ''"},
	    {5, "x 1 2", "line 5: unknown line 'x 1 2'"},
	    {6,
	     "r alice 2 1 2 cpu=01 "
	     "982e58eb96aa78231f900222ef52d72ccf441ff9844f3b66537685c15b3922f6",
	     "line 6: bad record: bad quantity '01' of cpu"},
	    {9, "s 4 abc", "line 9: bad signature line (expected 's <seq> <signature>')"},
	    {12, "end 5", "line 12: bad end line (expected 'end <seq> <hash> <signature>')"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = replace_line(fx->exp.s, cases[i].line, cases[i].repl);
		struct ledger_verify_result res;
		int rc = verify_text(t, fx->key.pk, &res);
		if (rc != -1 || strcmp(res.reason, cases[i].reason) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, res.reason, cases[i].reason);
		usage_free(&res.total);
		free(t);
	}
	/* A signature of another seq, one before any record, and an empty
	 * file. */
	char *l = get_line(fx->exp.s, 9);
	l[2] = '3';
	t = replace_line(fx->exp.s, 9, l);
	expect_bad(t, fx->key.pk,
		   "line 9: signature of seq 3 is not right after record seq 3 (misplaced)", 3);
	free(t);
	free(l);
	l = get_line(fx->exp.s, 11);
	t = replace_line(fx->exp.s, 5, l);
	expect_bad(t, fx->key.pk,
		   "line 5: signature of seq 5 is not right after record seq 5 (misplaced)", 5);
	free(t);
	free(l);
	expect_bad("", fx->key.pk, "line 1: empty file, not a ledger export", 0);
	expect_bad("kh-ledger-export 1\n", fx->key.pk,
		   "line 2: export ends in its header (truncated)", 0);
	/* A NUL byte. */
	struct ledger_verify_result res;
	char nul[] = "kh-ledger-export 1\nkey \0x\n";
	FILE *f = fmemopen(nul, sizeof(nul) - 1, "r");
	assert_int_equal(ledger_verify(f, fx->key.pk, &res), -1);
	assert_string_equal(res.reason, "line 2: NUL byte in the text");
	fclose(f);
	usage_free(&res.total);
}

/* ledger-7: the writer refuses what would not verify */
static void
ledger_7_writer(void **state)
{
	struct fixture *fx = *state;
	struct ledger_export x;
	struct ledger_rec r;
	struct ledger_sig s;
	struct sbuf out;
	char err[200];

	memset(&s, 0, sizeof(s));
	ledger_rec_init(&r);
	sbuf_init(&out);
	assert_int_equal(
	    ledger_export_begin(&x, &out, &fx->key, "alice", 0, NULL, err, sizeof(err)), 0);
	fill(&r, "bob", 1);
	ledger_rec_seal(&r, 0, NULL, err, sizeof(err));
	assert_int_equal(ledger_export_rec(&x, &r, err, sizeof(err)), -1); /* bob's */
	fill(&r, "alice", 2);
	ledger_rec_seal(&r, 1, r.hash, err, sizeof(err));
	assert_int_equal(ledger_export_rec(&x, &r, err, sizeof(err)), -1); /* seq 2 first */
	assert_int_equal(ledger_export_sig(&x, &s, err, sizeof(err)), -1); /* nothing to sign */
	fill(&r, "alice", 1);
	ledger_rec_seal(&r, 0, NULL, err, sizeof(err));
	assert_int_equal(ledger_export_rec(&x, &r, err, sizeof(err)), 0);
	uint8_t wrong[LEDGER_HASH_LEN] = {1};
	ledger_sign(&fx->key, "alice", 1, wrong, &s, err, sizeof(err));
	assert_int_equal(ledger_export_sig(&x, &s, err, sizeof(err)), -1); /* other hash */
	ledger_sign(&fx->key, "alice", 1, r.hash, &s, err, sizeof(err));
	assert_int_equal(ledger_export_sig(&x, &s, err, sizeof(err)), 0);
	assert_int_equal(ledger_export_sig(&x, &s, err, sizeof(err)), -1); /* twice */
	fill(&r, "alice", 2);
	uint8_t prev[LEDGER_HASH_LEN] = {2};
	ledger_rec_seal(&r, 1, prev, err, sizeof(err));
	assert_int_equal(ledger_export_rec(&x, &r, err, sizeof(err)), -1); /* does not chain */
	assert_int_equal(ledger_export_end(&x, NULL, err, sizeof(err)), 0);
	struct ledger_key pub = fx->key;
	pub.has_sk = 0;
	assert_int_equal(ledger_export_begin(&x, &out, &pub, "alice", 0, NULL, err, sizeof(err)),
			 -1);
	ledger_rec_free(&r);
	sbuf_free(&out);
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(usage_1_add_merge),
	    cmocka_unit_test(usage_1_rollup),
	    cmocka_unit_test(usage_2_format),
	    cmocka_unit_test(usage_2_json),
	    cmocka_unit_test(usage_3_encode_decode),
	    cmocka_unit_test(ledger_1_known_hash),
	    cmocka_unit_test(ledger_1_parse),
	    cmocka_unit_test(ledger_2_keys),
	    cmocka_unit_test(ledger_3_sign),
	    cmocka_unit_test_setup_teardown(ledger_4_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_4_partial_and_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_4_paged, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_5_altered, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_5_dropped_reordered, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_5_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_5_signatures, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_6_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(ledger_7_writer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
