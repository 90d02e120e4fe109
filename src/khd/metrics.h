/* metrics: the facility's counters for standard monitoring tools, in the
 * OpenMetrics text format (Prometheus), from a minimal HTTP/1.x responder
 * in khd's event loop:  khd --metrics-port PORT [--metrics-listen ADDR]. */
#ifndef KH_METRICS_H
#define KH_METRICS_H

#include "common/sbuf.h"

#include <stddef.h>

struct khd;

#define METRICS_CTYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

struct metrics_conf {
	int port;	    /* 1..65535; 0: no endpoint */
	const char *listen; /* numeric address; NULL: 127.0.0.1 */
};

/* Listen (a port already taken fails here, before khd serves).  Returns 0,
 * or -1 with a one-line reason. */
int metrics_start(struct khd *k, const struct metrics_conf *conf, char *err, size_t errlen);
void metrics_stop(struct khd *k);

/* The exposition: node counts by type and state, every principal's usage
 * counters, the sampler's own figures, "# EOF". */
void metrics_render(struct khd *k, struct sbuf *out);

/* Pure parts (metrics_text.c), for the unit tests and fuzz/metrics.c. */
#define METRICS_HEAD_MAX 8192 /* bytes of a request head */
/* Whether buf holds a whole request head: 1 (method and path filled), 0
 * when more bytes are needed, -1 when it is not HTTP/1.x. */
int metrics_parse_request(const char *buf, size_t len, char *method, size_t mlen, char *path,
			  size_t plen);
/* A label value, escaped as OpenMetrics wants (\\, \", \n), in quotes. */
void metrics_label(struct sbuf *out, const char *v);
/* A counter in base units as a decimal of display units: base/div with
 * exactly as many decimals as div has zeros ("3.020000" for 3020000/10^6),
 * times mul first (mul 1024 for KiB). */
void metrics_value(struct sbuf *out, unsigned long long base, unsigned long long mul,
		   unsigned long long div);

#endif
