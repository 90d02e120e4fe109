/* admission: who may act.  Credentials are stored only as slow hashes
 * (libsodium crypto_pwhash); repeated failures for a principal slow down
 * every further attempt for it. */
#ifndef KH_ADMISSION_H
#define KH_ADMISSION_H

#include "allocator/facility.h"

#include <stdint.h>

#define ADM_CRED_MAX 256

struct adm_worker;

struct admission {
	unsigned char key[32]; /* per-process key of the verified-credential cache */
	struct adm_worker *w;  /* the slow work's thread, when started */
};

/* ADM_PENDING: the answer is being computed off the caller's thread; ask
 * again (with the same arguments) once adm_fd() was readable. */
#define ADM_PENDING 1
/* How long a caller holds a pending request before asking again anyway
 * (adm_fd normally wakes it much sooner). */
#define ADM_HOLD_NS 1000000000ull

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

/* The slow work (Argon2id: ~0.1 s of CPU each) on a thread of its own, so
 * that a crowd of new principals or first logins never stalls khd's loop.
 * Without a started worker the calls below work synchronously. */
int adm_worker_start(struct admission *a);
void adm_worker_stop(struct admission *a);
/* Readable when some pending answer is ready; adm_drain() clears it. */
int adm_fd(const struct admission *a);
void adm_drain(struct admission *a);
/* As adm_verify, or ADM_PENDING; -1 with errno EBUSY when too many checks
 * wait already. */
int adm_verify_async(struct admission *a, struct principal *p, const char *cred);
/* As adm_verify_hash, or ADM_PENDING (or -1, EBUSY). */
int adm_check_async(struct admission *a, const char *hash, const char *cred);
/* A new hash of cred into out for the thing named tag (a principal to be
 * created): 0, ADM_PENDING, or -1 (EBUSY, or ENOMEM). */
int adm_hash_async(struct admission *a, const char *tag, const char *cred, char *out);

#endif
