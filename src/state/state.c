/* state: picking a backend from its spec, and the text forms both
 * backends keep in their text columns. */
#include "state/state.h"
#include "state/state_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
state_spec_check(const char *spec, char *why, size_t len)
{
	if (spec == NULL || strcmp(spec, "sqlite") == 0)
		return STATE_SQLITE;
	if (strncmp(spec, "postgresql:", 11) == 0 || strncmp(spec, "postgres://", 11) == 0)
		return STATE_PG;
	snprintf(why, len, "state must be sqlite or postgresql:CONNINFO (or a postgresql:// URI)");
	return -1;
}

/* libpq takes a postgresql:// or postgres:// URI whole; after
 * "postgresql:" anything else is its key=value string. */
static const char *
pg_conninfo(const char *spec)
{
	if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)
		return spec;
	return spec + 11;
}

struct state *
state_open(const char *spec, const char *dir, int sync_full, char *err, size_t errlen)
{
	switch (state_spec_check(spec, err, errlen)) {
	case STATE_SQLITE:
		return state_sqlite_open(dir, sync_full, err, errlen);
	case STATE_PG:
		return state_pg_open(pg_conninfo(spec), err, errlen);
	default:
		return NULL;
	}
}

void
state_ints_text(char *buf, size_t len, const int *v, int n)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? "," : "", v[i]);
}

int
state_text_ints(const char *s, int *v, int max)
{
	int n = 0;
	if (s == NULL || *s == '\0')
		return 0;
	while (*s && n < max) {
		char *end;
		v[n++] = (int)strtol(s, &end, 10);
		s = *end == ',' ? end + 1 : end;
		if (*end != ',' && *end != '\0')
			break;
	}
	return n;
}

/* One "slot:netid:rxB:txB:rxP:txP" per interface, separated by spaces
 * (slots without one are left out). */
void
state_ports_encode(const struct state_meter_node *mn, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < KH_MAX_IFS && n < len; i++) {
		const struct state_meter_port *p = &mn->port[i];
		if (p->netid == 0)
			continue;
		int w = snprintf(buf + n, len - n, "%s%d:%u:%llu:%llu:%llu:%llu", n ? " " : "", i,
				 p->netid, (unsigned long long)p->rx_bytes,
				 (unsigned long long)p->tx_bytes, (unsigned long long)p->rx_packets,
				 (unsigned long long)p->tx_packets);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

/* A damaged entry is left out (that slot then has no baseline: its next
 * reading counts from zero); returns -1 when one was. */
int
state_ports_decode(const char *text, struct state_meter_node *mn)
{
	const char *s = text ? text : "";
	int bad = 0;
	while (*s) {
		unsigned long long v[6];
		int used = 0;
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		if (sscanf(s, "%llu:%llu:%llu:%llu:%llu:%llu%n", &v[0], &v[1], &v[2], &v[3], &v[4],
			   &v[5], &used) != 6 ||
		    (s[used] != ' ' && s[used] != '\0') || v[0] >= KH_MAX_IFS || v[1] == 0 ||
		    v[1] > UINT32_MAX) {
			bad = 1;
			s += strcspn(s, " ");
			continue;
		}
		mn->port[v[0]] = (struct state_meter_port){.netid = (uint32_t)v[1],
							   .rx_bytes = v[2],
							   .tx_bytes = v[3],
							   .rx_packets = v[4],
							   .tx_packets = v[5]};
		s += used;
	}
	return bad ? -1 : 0;
}
