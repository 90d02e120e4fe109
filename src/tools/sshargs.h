/* sshargs: the words an ssh client gives after con<C>@HOST (sshd hands
 * them to khssh in SSH_ORIGINAL_COMMAND).  They are khcon's options,
 * with or without their dashes, since ssh itself takes "-n" and "--x"
 * that come before a "--":  ssh con2@host prefix ro,
 * ssh con2@host -- --prefix -n 3-5. */
#ifndef KH_SSHARGS_H
#define KH_SSHARGS_H

#include <stddef.h>
#include <stdint.h>

#define SSHARGS_MAX 4096

struct sshargs {
	int prefix;	       /* lines as "[rank] line" */
	int ro;		       /* read-only */
	const char *ranks;     /* write to these ranks only, or NULL */
	const char *until;     /* after the input ends, wait for this text */
	uint64_t count;	       /* ... this many times (default 1) */
	uint64_t timeout_s;    /* give up after this long; 0: never */
	uint64_t idle_ms;      /* after the input ends, stop when quiet this long */
	char buf[SSHARGS_MAX]; /* the words, unquoted; the pointers above point here */
};

/* Parse command (may be NULL: no words).  term is $TERM: the original's
 * TERM=KHREAD asks for a read-only attachment.  Returns 0, or -1 with a
 * one-line reason in err. */
int sshargs_parse(const char *command, const char *term, struct sshargs *a, char *err,
		  size_t errlen);

#endif
