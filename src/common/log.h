/* log: one logging API for khd and the tools (after OpenBSD's log.c).
 * log_warn appends strerror(errno), log_warnx does not; fatal* exit. */
#ifndef KH_LOG_H
#define KH_LOG_H

#include <stdarg.h>

void log_init(const char *progname, const char *path, int verbose);
void log_close(void);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
