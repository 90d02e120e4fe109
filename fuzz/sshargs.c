/* fuzz/sshargs: the words a remote principal gives after "ssh con<C>@HOST"
 * (SSH_ORIGINAL_COMMAND, which khssh reads).  The input is that command;
 * its first byte picks $TERM (odd: the original's TERM=KHREAD).  Checks: a
 * parsed command's strings lie inside the result, a read-only TERM gives a
 * read-only attachment, and a refusal says why. */
#include "fuzz.h"
#include "tools/sshargs.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sshargs a;
	char err[200] = "", *cmd;
	const char *term;

	if (size == 0)
		return 0;
	term = data[0] & 1 ? "KHREAD" : "xterm";
	cmd = fuzz_str(data + 1, size - 1);
	if (sshargs_parse((data[0] & 2) ? NULL : cmd, term, &a, err, sizeof(err)) == 0) {
		const char *lo = a.buf, *hi = a.buf + sizeof(a.buf);
		FUZZ_CHECK(a.ranks == NULL || (a.ranks >= lo && a.ranks + strlen(a.ranks) < hi));
		FUZZ_CHECK(a.until == NULL || (a.until >= lo && a.until + strlen(a.until) < hi));
		FUZZ_CHECK(!(data[0] & 1) || a.ro);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	free(cmd);
	return 0;
}
