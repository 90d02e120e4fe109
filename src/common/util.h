/* util: small strict parsers shared by khd and the tools. */
#ifndef KH_UTIL_H
#define KH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parse a decimal integer in [min, max]; no sign, no spaces, no junk.
 * Returns 0, or -1 when s is not such a number. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Parse U-Boot's hex (an optional 0x, then 1-16 hex digits), strictly:
 * junk is an error.  Returns 0, or -1. */
int parse_hex(const char *s, uint64_t *v);
/* Parse a size such as 256M, 1G, 4096 (bytes); K/M/G are powers of 1024. */
int parse_size(const char *s, uint64_t *out);
/* Write a one-line reason into err (if err is given) and return -1, so
 * "return seterr(err, errlen, ...)" reports and fails in one statement. */
int seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Write all n bytes of p to fd, going on after short writes and EINTR.
 * Returns 0, or -1 with errno set. */
int write_all(int fd, const void *p, size_t n);
/* The same on a socket, without SIGPIPE when the peer has gone (EPIPE). */
int send_all(int fd, const void *p, size_t n);
/* Point the standard streams (0, 1, 2) at /dev/null: for a process that
 * outlives or leaves whoever started it.  Returns 0 or -1 (errno). */
int stdio_to_null(void);
/* Monotonic time in nanoseconds. */
uint64_t now_ns(void);
/* A principal's name: 1-32 of [A-Za-z0-9_.-], not starting with '-' or '.'. */
int valid_name(const char *s);

#endif
