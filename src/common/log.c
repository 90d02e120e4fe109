/* log: messages go to a log file (khd) or to stderr (tools), one line each,
 * with a timestamp in the file.  The only state is the sink chosen once. */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	FILE *fp;
	const char *prog;
	int verbose;
} lg = {NULL, "kh", 0};

void
log_init(const char *progname, const char *path, int verbose)
{
	lg.prog = progname;
	lg.verbose = verbose;
	if (path != NULL) {
		FILE *fp = fopen(path, "ae");
		if (fp != NULL) {
			setvbuf(fp, NULL, _IOLBF, 0);
			lg.fp = fp;
		}
	}
}

void
log_close(void)
{
	if (lg.fp != NULL)
		fclose(lg.fp);
	lg.fp = NULL;
}

static void
vlog(const char *level, int with_errno, const char *fmt, va_list ap)
{
	char msg[2048];
	int saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	if (lg.fp != NULL) {
		struct timespec ts;
		struct tm tm;
		char when[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(lg.fp, "%s.%03ldZ %s %s\n", when, ts.tv_nsec / 1000000, level, msg);
		if (lg.verbose)
			fprintf(stderr, "%s: %s\n", lg.prog, msg);
	} else {
		fprintf(stderr, "%s: %s\n", lg.prog, msg);
	}
	errno = saved;
}

void
log_info(const char *fmt, ...)
{
	va_list ap;
	if (lg.fp == NULL && !lg.verbose)
		return;
	va_start(ap, fmt);
	vlog("info", 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;
	if (lg.verbose < 2)
		return;
	va_start(ap, fmt);
	vlog("debug", 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("warn", 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("warn", 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("fatal", 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
