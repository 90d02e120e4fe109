/* fuzz/ledger: ledger exports as `khbill verify` reads them
 * (src/meter/ledger_verify.c): a file anyone may hand over, checked with
 * the public key alone.  The input is the export; the key is the fixed
 * test key of fuzz/tools/seedgen.c, which signed the seeds, so mutations
 * of good exports reach every check.  Every "r " line also goes through
 * ledger_rec_parse.  Checks: a failure names its line and reason; a pass
 * says nothing is wrong; a parsed record formats to a line that parses
 * back to the same record. */
#include "fuzz.h"
#include "meter/ledger.h"

#include <sodium.h>
#include <stdio.h>

static uint8_t pk[LEDGER_PK_LEN];

static void
check_record(const char *line, size_t len)
{
	char *s = malloc(len + 1), err[256] = "";
	struct ledger_rec r, again;
	struct sbuf out;

	if (s == NULL)
		abort();
	memcpy(s, line, len);
	s[len] = '\0';
	ledger_rec_init(&r);
	ledger_rec_init(&again);
	sbuf_init(&out);
	if (ledger_rec_parse(s, &r, err, sizeof(err)) == 0) {
		FUZZ_CHECK(ledger_rec_format(&r, &out, err, sizeof(err)) == 0);
		FUZZ_CHECK(ledger_rec_parse(out.s, &again, err, sizeof(err)) == 0);
		FUZZ_CHECK(strcmp(r.principal, again.principal) == 0 && r.seq == again.seq &&
			   r.t0 == again.t0 && r.t1 == again.t1 && r.use.n == again.use.n &&
			   memcmp(r.hash, again.hash, sizeof(r.hash)) == 0);
		for (size_t i = 0; i < r.use.n; i++)
			FUZZ_CHECK(strcmp(r.use.items[i].res, again.use.items[i].res) == 0 &&
				   r.use.items[i].qty == again.use.items[i].qty);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	sbuf_free(&out);
	ledger_rec_free(&again);
	ledger_rec_free(&r);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct ledger_verify_result res;

	if (!ready) {
		uint8_t seed[32], sk[64];
		if (sodium_init() < 0)
			abort();
		memset(seed, 0x4b, sizeof(seed)); /* fuzz/tools/seedgen.c's key */
		crypto_sign_seed_keypair(pk, sk, seed);
		ready = 1;
	}
	for (size_t i = 0; i + 2 <= size;) {
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t n = nl ? (size_t)(nl - data - i) : size - i;
		if (data[i] == 'r' && data[i + 1] == ' ')
			check_record((const char *)data + i, n);
		i += n + 1;
	}
	FILE *f = fmemopen((void *)data, size, "r");
	if (f == NULL)
		return 0; /* fmemopen refuses an empty buffer */
	if (ledger_verify(f, pk, &res) == 0) {
		FUZZ_CHECK(res.reason[0] == '\0' && res.bad_line == 0);
		FUZZ_CHECK(res.nrec == 0 || res.last_seq - res.first_seq + 1 == res.nrec);
	} else {
		FUZZ_CHECK(res.reason[0] != '\0');
	}
	usage_free(&res.total);
	fclose(f);
	return 0;
}
