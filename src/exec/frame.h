/* frame: the framing of an exec stream (docs/protocol.md "exec"), both
 * ways.  khd sends "o RANK LEN", "e RANK LEN" (each followed by LEN bytes),
 * "x RANK STATUS USER_MS SYS_MS REAL_MS" and "d"; a client sends
 * "i RANK|* LEN" (then LEN bytes), "c RANK|*" and "k SIG [RANK]".  Pure parsing:
 * khd, khctl and khfs share it and the unit tests drive it. */
#ifndef KH_EXEC_FRAME_H
#define KH_EXEC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define XF_ALL	   (-1)	      /* "*": every process of the stream */
#define XF_MAXDATA (1u << 20) /* most bytes one frame carries */
#define XF_MAXLINE 96	      /* longest header line, newline included */

struct xframe {
	char kind;  /* 'o' 'e' 'x' 'd' (from khd), 'i' 'c' 'k' (from a client) */
	int rank;   /* o e x i c k; XF_ALL for "*" (i c) or no RANK (k) */
	size_t len; /* o e i: the bytes that follow */
	int sig;    /* k: 1..64 */
	int status; /* x: exit status, 128+N when killed by signal N */
	uint64_t user_ms, sys_ms, real_ms; /* x */
};

/* Parse one header line (n bytes, without its newline).  from_khd: accept
 * the frames khd sends; else those a client sends.  Returns 0, or -1 with
 * a one-line reason in err. */
int xframe_parse(const char *line, size_t n, int from_khd, struct xframe *f, char *err,
		 size_t errlen);

#endif
