/* pubkey-*: OpenSSH key lines as principals register them (khctl addkey)
 * and khd's sshd gets them back (src/admission/pubkey.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "admission/pubkey.h"

/* made by ssh-keygen -t ed25519 -C alice@host; ssh-keygen -lf prints the
 * fingerprint below */
#define KEY  "AAAAC3NzaC1lZDI1NTE5AAAAICDshwYrXgDORKLhxTSygzM8yqrXuVWZytc6/5EbT0/S"
#define LINE "ssh-ed25519 " KEY " alice@host"
#define FP   "SHA256:oX3NYSZbNV0uoxHB3dc5YHN6RE+aL3EQCG49AgxjDPE"

/* pubkey-1.1: a key line is taken, blanks made single, comment kept. */
static void
pubkey_1_1(void **state)
{
	char canon[4500];
	assert_int_equal(pubkey_valid(LINE "\n", canon, sizeof(canon)), 0);
	assert_string_equal(canon, LINE);
	assert_int_equal(pubkey_valid("ssh-ed25519\t" KEY, canon, sizeof(canon)), 0);
	assert_string_equal(canon, "ssh-ed25519 " KEY);
}

/* pubkey-1.2: what is not a key of its named type is refused. */
static void
pubkey_1_2(void **state)
{
	static const char *bad[] = {
	    "",
	    "ssh-ed25519",
	    "ssh-rsa " KEY,		    /* the blob says ssh-ed25519 */
	    "ssh-dss " KEY,		    /* not a type we take */
	    "ssh-ed25519 AAAA",		    /* too short */
	    "ssh-ed25519 not*base64",	    /* not base64 */
	    "ssh-ed25519 AAAAC3NzaC1lZDI1", /* cut inside the type */
	};
	char canon[4500];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pubkey_valid(bad[i], canon, sizeof(canon)), -1);
}

/* pubkey-2.1: the same key whatever the comment; the fingerprint is ssh's. */
static void
pubkey_2_1(void **state)
{
	char fp[100];
	assert_true(pubkey_same(LINE, "ssh-ed25519 " KEY " bob@elsewhere"));
	assert_false(pubkey_same(LINE, "ssh-rsa " KEY " alice@host"));
	assert_false(pubkey_same(LINE, "ssh-ed25519 AAAA alice@host"));
	pubkey_fingerprint(LINE, fp, sizeof(fp));
	assert_string_equal(fp, FP);
	pubkey_fingerprint("nothing", fp, sizeof(fp));
	assert_string_equal(fp, "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pubkey_1_1),
	    cmocka_unit_test(pubkey_1_2),
	    cmocka_unit_test(pubkey_2_1),
	};
	return cmocka_run_group_tests_name("pubkey", tests, NULL, NULL);
}
