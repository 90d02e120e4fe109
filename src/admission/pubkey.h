/* pubkey: OpenSSH public key lines ("type base64 [comment]") as principals
 * register them (khctl addkey) and khd's sshd asks for them: a strict
 * check of their shape, their identity without comments, and the
 * fingerprint ssh prints.  Pure functions on strings. */
#ifndef KH_PUBKEY_H
#define KH_PUBKEY_H

#include <stddef.h>

/* Longest line pubkey_valid accepts, terminator included. */
#define PUBKEY_LINE_MAX 4096

/* Check line: a known key type, base64 whose blob starts with the same
 * type (RFC 4253 wire format), an optional comment up to the newline.
 * Writes the canonical line (single spaces, comment at most 255 bytes)
 * into canon.  Returns 0, or -1 when line is not such a key. */
int pubkey_valid(const char *line, char *canon, size_t len);
/* 1 when two canonical lines hold the same key, whatever their comments. */
int pubkey_same(const char *a, const char *b);
/* "SHA256:..." as ssh prints it, or "?" when line holds no key. */
void pubkey_fingerprint(const char *line, char *fp, size_t len);

#endif
