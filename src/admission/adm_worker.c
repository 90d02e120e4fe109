/* adm_worker: Argon2id off khd's loop.  A request that needs a slow hash
 * or check leaves a job here and is held; one thread computes jobs oldest
 * first and signals an eventfd; the request, run again, finds its answer.
 *
 * Jobs and answers live in one small table of slots named by a keyed MAC
 * of what was asked (the credential never is a name), so the same
 * question asked twice is computed once.  An answer is taken once; one
 * nobody came back for is dropped after ANSWER_TTL_NS.  When every slot is
 * waiting, the caller is told EBUSY: memory stays bounded whatever the
 * crowd. */
#include "admission/admission.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SLOTS	      256
#define ANSWER_TTL_NS (60ull * 1000000000ull)

enum slot_state { FREE, QUEUED, RUNNING, DONE };
enum job_kind { CHECK, HASH };

struct slot {
	enum slot_state st;
	enum job_kind kind;
	unsigned char name[32];
	uint64_t seq, done_ns;
	char cred[ADM_CRED_MAX + 1];
	char hash[KH_HASH_MAX]; /* CHECK: the stored hash; HASH: the answer */
	int ok;
};

struct adm_worker {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd, stop;
	uint64_t seq;
	struct slot s[SLOTS];
};

static void
name_of(const struct admission *a, enum job_kind kind, const char *what, const char *cred,
	unsigned char out[32])
{
	crypto_generichash_state st;
	unsigned char k = (unsigned char)kind;
	crypto_generichash_init(&st, a->key, sizeof(a->key), 32);
	crypto_generichash_update(&st, &k, 1);
	crypto_generichash_update(&st, (const unsigned char *)what, strlen(what) + 1);
	crypto_generichash_update(&st, (const unsigned char *)cred, strlen(cred));
	crypto_generichash_final(&st, out, 32);
}

static void
slot_free(struct slot *s)
{
	sodium_memzero(s->cred, sizeof(s->cred));
	s->st = FREE;
}

static void *
worker_main(void *arg)
{
	struct adm_worker *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct slot *job = NULL;
		while (!w->stop) {
			for (int i = 0; i < SLOTS; i++)
				if (w->s[i].st == QUEUED && (job == NULL || w->s[i].seq < job->seq))
					job = &w->s[i];
			if (job)
				break;
			pthread_cond_wait(&w->cv, &w->mu);
		}
		if (w->stop)
			break;
		job->st = RUNNING;
		/* The slot is ours while RUNNING: copy out, work unlocked. */
		enum job_kind kind = job->kind;
		char cred[ADM_CRED_MAX + 1], hash[KH_HASH_MAX];
		memcpy(cred, job->cred, sizeof(cred));
		memcpy(hash, job->hash, sizeof(hash));
		pthread_mutex_unlock(&w->mu);
		int ok;
		if (kind == CHECK)
			ok = adm_verify_hash(hash, cred) == 0;
		else
			ok = adm_hash(cred, hash) == 0;
		sodium_memzero(cred, sizeof(cred));
		pthread_mutex_lock(&w->mu);
		job->ok = ok;
		if (kind == HASH)
			memcpy(job->hash, hash, sizeof(hash));
		sodium_memzero(job->cred, sizeof(job->cred));
		job->st = DONE;
		job->done_ns = now_ns();
		uint64_t one = 1;
		(void)!write(w->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
adm_worker_start(struct admission *a)
{
	struct adm_worker *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0) {
		free(w);
		return -1;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
		close(w->efd);
		free(w);
		errno = EAGAIN;
		return -1;
	}
	a->w = w;
	return 0;
}

void
adm_worker_stop(struct admission *a)
{
	struct adm_worker *w = a->w;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	for (int i = 0; i < SLOTS; i++)
		slot_free(&w->s[i]);
	close(w->efd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	a->w = NULL;
}

int
adm_fd(const struct admission *a)
{
	return a->w ? a->w->efd : -1;
}

void
adm_drain(struct admission *a)
{
	uint64_t n;
	if (a->w)
		(void)!read(a->w->efd, &n, sizeof(n));
}

/* Ask: the answer if it is there (taken), else queue the job once.
 * Returns DONE's ok (1/0) in *ok and 0, ADM_PENDING, or -1 (EBUSY). */
static int
ask(struct admission *a, enum job_kind kind, const char *what, const char *hashin, const char *cred,
    int *ok, char *hashout)
{
	struct adm_worker *w = a->w;
	unsigned char name[32];
	struct slot *freeslot = NULL;
	uint64_t now = now_ns();
	int rc = ADM_PENDING;

	name_of(a, kind, what, cred, name);
	pthread_mutex_lock(&w->mu);
	for (int i = 0; i < SLOTS; i++) {
		struct slot *s = &w->s[i];
		if (s->st == DONE && now - s->done_ns > ANSWER_TTL_NS)
			slot_free(s); /* nobody came back for it */
		if (s->st == FREE) {
			if (freeslot == NULL)
				freeslot = s;
			continue;
		}
		if (sodium_memcmp(s->name, name, sizeof(name)) != 0)
			continue;
		if (s->st == DONE) {
			*ok = s->ok;
			if (hashout)
				memcpy(hashout, s->hash, KH_HASH_MAX);
			slot_free(s);
			rc = 0;
		}
		goto out; /* answered, or still pending */
	}
	if (freeslot == NULL) {
		errno = EBUSY;
		rc = -1;
		goto out;
	}
	freeslot->st = QUEUED;
	freeslot->kind = kind;
	memcpy(freeslot->name, name, sizeof(name));
	freeslot->seq = ++w->seq;
	snprintf(freeslot->cred, sizeof(freeslot->cred), "%s", cred);
	snprintf(freeslot->hash, sizeof(freeslot->hash), "%s", hashin ? hashin : "");
	pthread_cond_signal(&w->cv);
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int
adm_check_async(struct admission *a, const char *hash, const char *cred)
{
	int ok = 0;
	if (!adm_valid_cred(cred) || hash == NULL || hash[0] == '\0')
		return -1;
	if (a->w == NULL)
		return adm_verify_hash(hash, cred);
	int rc = ask(a, CHECK, hash, hash, cred, &ok, NULL);
	if (rc != 0)
		return rc;
	return ok ? 0 : -1;
}

int
adm_verify_async(struct admission *a, struct principal *p, const char *cred)
{
	if (p->mac_valid || a->w == NULL || !adm_valid_cred(cred))
		return adm_verify(a, p, cred); /* fast, or synchronous */
	int rc = adm_check_async(a, p->pwhash, cred);
	if (rc == 0)
		adm_remember(a, p, cred);
	else if (rc < 0 && errno != EBUSY)
		errno = 0;
	return rc;
}

int
adm_hash_async(struct admission *a, const char *tag, const char *cred, char *out)
{
	int ok = 0;
	if (a->w == NULL)
		return adm_hash(cred, out);
	int rc = ask(a, HASH, tag, NULL, cred, &ok, out);
	if (rc != 0)
		return rc;
	if (!ok) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}
