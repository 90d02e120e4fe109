/* admission: who may act.  Credentials are stored only as slow hashes
 * (libsodium crypto_pwhash); repeated failures for a principal slow down
 * every further attempt for it. */
#ifndef KH_ADMISSION_H
#define KH_ADMISSION_H

#include "allocator/facility.h"

#include <stdint.h>

#define ADM_CRED_MAX 256

struct admission {
	unsigned char key[32]; /* per-process key of the verified-credential cache */
};

void adm_init(struct admission *a);
/* A credential is 1..ADM_CRED_MAX bytes of printable text. */
int adm_valid_cred(const char *cred);
/* Hash cred into out (KH_HASH_MAX bytes).  Slow on purpose. */
int adm_hash(const char *cred, char *out);
/* Check cred against p.  Returns 0 if it matches, -1 if not.  Constant time
 * in the credential. */
int adm_verify(const struct admission *a, struct principal *p, const char *cred);
/* Check cred against a stored hash (channel credentials). */
int adm_verify_hash(const char *hash, const char *cred);
/* Remember that cred is p's credential (after creating p). */
void adm_remember(const struct admission *a, struct principal *p, const char *cred);
/* How long (ns) a request for p must wait before it is looked at. */
uint64_t adm_wait(const struct principal *p, uint64_t now);
void adm_failed(struct principal *p, uint64_t now);
void adm_succeeded(struct principal *p);

#endif
