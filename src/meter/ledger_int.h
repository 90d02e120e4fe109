/* ledger_int: what the files of src/meter share and nobody else. */
#ifndef KH_LEDGER_INT_H
#define KH_LEDGER_INT_H

#include "meter/ledger.h"

/* 1 when sig is pk's signature of the export message (see ledger.h). */
int ledger_export_msg_check(const uint8_t pk[LEDGER_PK_LEN], const char *principal, uint64_t cseq,
			    const uint8_t chash[LEDGER_HASH_LEN], uint64_t seq,
			    const uint8_t hash[LEDGER_HASH_LEN], const uint8_t sig[LEDGER_SIG_LEN]);
/* A decimal without sign or leading zeros that fits 64 bits: the string
 * s, or its first n bytes. */
int ledger_strict_u64(const char *s, uint64_t *v);
int ledger_strict_u64n(const char *s, size_t n, uint64_t *v);

#endif
