/* admission: credential hashing and checking.
 *
 * The stored form is crypto_pwhash_str (Argon2id, interactive limits), so a
 * stolen state.db does not give credentials away.  Checking it costs ~0.1 s
 * of CPU, which would make every khget slow; so once a credential has been
 * verified, khd keeps a keyed BLAKE2b MAC of it in memory, under a key drawn
 * at start and never stored, and checks later requests against the MAC in
 * constant time.  The MAC is worth nothing outside this process.
 *
 * Failures double a per-principal delay (100 ms up to 30 s) during which
 * requests for that principal are held, not refused: khd keeps serving
 * everyone else. */
#include "admission/admission.h"

#include <sodium.h>
#include <string.h>

#define FAIL_BASE_NS 100000000ULL   /* 100 ms */
#define FAIL_MAX_NS  30000000000ULL /* 30 s */

void
adm_init(struct admission *a)
{
	randombytes_buf(a->key, sizeof(a->key));
}

int
adm_valid_cred(const char *cred)
{
	size_t n = cred ? strlen(cred) : 0;
	if (n == 0 || n > ADM_CRED_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)cred[i] < 0x20 || cred[i] == 0x7f)
			return 0;
	return 1;
}

int
adm_hash(const char *cred, char *out)
{
	_Static_assert(crypto_pwhash_STRBYTES <= KH_HASH_MAX, "hash size");
	return crypto_pwhash_str(out, cred, strlen(cred), crypto_pwhash_OPSLIMIT_INTERACTIVE,
				 crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

static void
mac_of(const struct admission *a, const struct principal *p, const char *cred,
       unsigned char mac[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, a->key, sizeof(a->key), 32);
	crypto_generichash_update(&st, (const unsigned char *)p->name, strlen(p->name) + 1);
	crypto_generichash_update(&st, (const unsigned char *)cred, strlen(cred));
	crypto_generichash_final(&st, mac, 32);
}

void
adm_remember(const struct admission *a, struct principal *p, const char *cred)
{
	mac_of(a, p, cred, p->mac);
	p->mac_valid = 1;
}

int
adm_verify(const struct admission *a, struct principal *p, const char *cred)
{
	unsigned char mac[32];

	if (!adm_valid_cred(cred))
		return -1;
	mac_of(a, p, cred, mac);
	if (p->mac_valid)
		return sodium_memcmp(mac, p->mac, sizeof(mac)) == 0 ? 0 : -1;
	if (crypto_pwhash_str_verify(p->pwhash, cred, strlen(cred)) != 0)
		return -1;
	memcpy(p->mac, mac, sizeof(mac));
	p->mac_valid = 1;
	return 0;
}

int
adm_verify_hash(const char *hash, const char *cred)
{
	if (!adm_valid_cred(cred) || hash[0] == '\0')
		return -1;
	return crypto_pwhash_str_verify(hash, cred, strlen(cred)) == 0 ? 0 : -1;
}

uint64_t
adm_wait(const struct principal *p, uint64_t now)
{
	return p->locked_until_ns > now ? p->locked_until_ns - now : 0;
}

void
adm_failed(struct principal *p, uint64_t now)
{
	uint64_t delay = FAIL_BASE_NS;
	for (int i = 1; i < p->failures && delay < FAIL_MAX_NS; i++)
		delay *= 2;
	if (delay > FAIL_MAX_NS)
		delay = FAIL_MAX_NS;
	p->failures++;
	p->locked_until_ns = now + delay;
}

void
adm_succeeded(struct principal *p)
{
	p->failures = 0;
	p->locked_until_ns = 0;
}
