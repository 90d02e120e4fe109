/* pubkey: OpenSSH public key lines, checked before khd stores them or
 * hands them to its sshd (docs/channels.md). */
#include "admission/pubkey.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* An OpenSSH public key line: "type base64 [comment]", where the decoded
 * blob starts with the same type string (RFC 4253 wire format). */
int
pubkey_valid(const char *line, char *canon, size_t len)
{
	static const char *const types[] = {"ssh-ed25519",
					    "ssh-rsa",
					    "ecdsa-sha2-nistp256",
					    "ecdsa-sha2-nistp384",
					    "ecdsa-sha2-nistp521",
					    "sk-ssh-ed25519@openssh.com",
					    "sk-ecdsa-sha2-nistp256@openssh.com",
					    NULL};
	char type[64], b64[4096], comment[256] = "";
	unsigned char blob[3072];
	size_t bloblen;

	if (strlen(line) >= PUBKEY_LINE_MAX ||
	    sscanf(line, "%63s %4095s %255[^\n]", type, b64, comment) < 2)
		return -1;
	int known = 0;
	for (int i = 0; types[i]; i++)
		known |= strcmp(types[i], type) == 0;
	if (!known ||
	    sodium_base642bin(blob, sizeof(blob), b64, strlen(b64), NULL, &bloblen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bloblen < 4)
		return -1;
	uint32_t tl =
	    (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
	if (tl != strlen(type) || bloblen < 4 + tl || memcmp(blob + 4, type, tl) != 0)
		return -1;
	snprintf(canon, len, "%s %s%s%s", type, b64, comment[0] ? " " : "", comment);
	return 0;
}

/* "type base64 [comment]": the same key whatever the comments say. */
int
pubkey_same(const char *a, const char *b)
{
	size_t la = strcspn(a, " "), lb = strcspn(b, " ");
	if (la != lb || strncmp(a, b, la) != 0 || a[la] != ' ' || b[lb] != ' ')
		return 0;
	a += la + 1;
	b += lb + 1;
	la = strcspn(a, " ");
	lb = strcspn(b, " ");
	return la > 0 && la == lb && strncmp(a, b, la) == 0;
}

/* SHA256:... as ssh prints it, for the log. */
void
pubkey_fingerprint(const char *line, char *fp, size_t len)
{
	unsigned char blob[3072], h[crypto_hash_sha256_BYTES];
	char b64[64];
	const char *p = strchr(line, ' ');
	size_t bl;

	snprintf(fp, len, "?");
	if (p == NULL || sodium_base642bin(blob, sizeof(blob), p + 1, strcspn(p + 1, " "), NULL,
					   &bl, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		return;
	crypto_hash_sha256(h, blob, bl);
	sodium_bin2base64(b64, sizeof(b64), h, sizeof(h),
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(fp, len, "SHA256:%s", b64);
}
