/* fuzz/pubkey: OpenSSH public key lines that principals register
 * (khctl addkey, src/admission/pubkey.c); khd stores the canonical line
 * and later hands it to its sshd as an authorized key.  The input is the
 * line.  Checks: a canonical line is one line (it cannot smuggle a second
 * authorized key), is itself valid and canonical, and is the same key as
 * the line it came from. */
#include "admission/pubkey.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char canon[4500], again[4500], fp[128];
	char *line = fuzz_str(data, size);

	if (pubkey_valid(line, canon, sizeof(canon)) == 0) {
		FUZZ_CHECK(strchr(canon, '\n') == NULL);
		FUZZ_CHECK(pubkey_valid(canon, again, sizeof(again)) == 0);
		FUZZ_CHECK(strcmp(canon, again) == 0);
		FUZZ_CHECK(pubkey_same(canon, again));
		pubkey_fingerprint(canon, fp, sizeof(fp));
		FUZZ_CHECK(strncmp(fp, "SHA256:", 7) == 0);
	}
	pubkey_fingerprint(line, fp, sizeof(fp));
	(void)pubkey_same(line, line);
	free(line);
	return 0;
}
