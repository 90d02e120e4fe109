/* config: a small line-oriented file, parsed strictly: an unknown word or
 * a bad value stops khd with the line number, never a silent default. */
#include "khd/config.h"
#include "common/util.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
config_default_type(struct node_type *t, int count)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "ct1");
	snprintf(t->backend, sizeof(t->backend), "ct");
	t->cpu_milli = 1000;
	t->mem = 256ULL << 20;
	t->pids = 512;
	t->max_ifs = 8;
	t->count = count;
}

/* "1", "0.5", "2.25" -> thousandths. */
static int
parse_cpus(const char *s, int *milli)
{
	uint64_t whole, frac = 0;
	char buf[16];
	const char *dot = strchr(s, '.');
	size_t wl = dot ? (size_t)(dot - s) : strlen(s);

	if (wl == 0 || wl >= sizeof(buf))
		return -1;
	memcpy(buf, s, wl);
	buf[wl] = '\0';
	if (parse_uint(buf, 0, 256, &whole) < 0)
		return -1;
	if (dot) {
		size_t fl = strlen(dot + 1);
		if (fl == 0 || fl > 3 || parse_uint(dot + 1, 0, 999, &frac) < 0)
			return -1;
		for (size_t i = fl; i < 3; i++)
			frac *= 10;
	}
	*milli = (int)(whole * 1000 + frac);
	return *milli > 0 ? 0 : -1;
}

static int
parse_type(char *rest, struct node_type *t, char *why, size_t wlen)
{
	char *save = NULL, *name = strtok_r(rest, " \t", &save);
	uint64_t v;

	if (name == NULL || !valid_name(name) || strlen(name) > 16) {
		snprintf(why, wlen, "type needs a name (1-16 of A-Z a-z 0-9 _ . -)");
		return -1;
	}
	config_default_type(t, 64);
	snprintf(t->name, sizeof(t->name), "%s", name);
	for (char *kv = strtok_r(NULL, " \t", &save); kv; kv = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(kv, '=');
		if (eq == NULL) {
			snprintf(why, wlen, "expected key=value, got '%.40s'", kv);
			return -1;
		}
		*eq = '\0';
		const char *k = kv, *val = eq + 1;
		if (strcmp(k, "backend") == 0) {
			if (strcmp(val, "ct") && strcmp(val, "vm")) {
				snprintf(why, wlen, "backend must be ct or vm");
				return -1;
			}
			snprintf(t->backend, sizeof(t->backend), "%s", val);
		} else if (strcmp(k, "cpus") == 0) {
			if (parse_cpus(val, &t->cpu_milli) < 0) {
				snprintf(why, wlen, "cpus must be like 1 or 0.5");
				return -1;
			}
		} else if (strcmp(k, "mem") == 0) {
			if (parse_size(val, &v) < 0 || v < (16ULL << 20) || v > (1ULL << 40)) {
				snprintf(why, wlen, "mem must be a size from 16M to 1024G");
				return -1;
			}
			t->mem = v;
		} else if (strcmp(k, "pids") == 0) {
			if (parse_uint(val, 8, 1 << 22, &v) < 0) {
				snprintf(why, wlen, "pids must be 8..4194304");
				return -1;
			}
			t->pids = (int)v;
		} else if (strcmp(k, "ifs") == 0) {
			if (parse_uint(val, 1, KH_MAX_IFS, &v) < 0) {
				snprintf(why, wlen, "ifs must be 1..%d", KH_MAX_IFS);
				return -1;
			}
			t->max_ifs = (int)v;
		} else if (strcmp(k, "count") == 0) {
			if (parse_uint(val, 0, KH_MAX_NODES, &v) < 0) {
				snprintf(why, wlen, "count must be 0..%d", KH_MAX_NODES);
				return -1;
			}
			t->count = (int)v;
		} else {
			snprintf(why, wlen, "unknown type setting '%.32s'", k);
			return -1;
		}
	}
	return 0;
}

/* "A.B.C.D:PORT": an IPv4 address and a port 1..65535. */
int
config_addr_check(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	char ip[INET_ADDRSTRLEN];
	struct in_addr in;
	uint64_t port;

	if (colon == NULL || (size_t)(colon - addr) >= sizeof(ip))
		return -1;
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	if (inet_pton(AF_INET, ip, &in) != 1 || parse_uint(colon + 1, 1, 65535, &port) < 0)
		return -1;
	return 0;
}

static int
valid_host_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > KH_NAME_MAX || s[0] == '-' || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

static int
nodes_per_host(const struct config *c)
{
	int per = 0;
	for (int t = 0; t < c->ntypes; t++)
		per += c->types[t].count;
	return per;
}

/* Whether the hosts and types so far fit a facility. */
static int
check_total(const struct config *c, char *why, size_t wlen)
{
	long total = (long)nodes_per_host(c) * c->nhosts;
	if (c->nhosts > 0 && total > KH_MAX_NODES) {
		snprintf(why, wlen,
			 "%d hosts of %d nodes each are %ld nodes, more than the %d a facility "
			 "holds",
			 c->nhosts, nodes_per_host(c), total, KH_MAX_NODES);
		return -1;
	}
	return 0;
}

/* host NAME ADDR: a host of the facility, its agent at ADDR. */
static int
parse_host(struct config *c, const char *name, const char *addr, int extra, char *why, size_t wlen)
{
	if (extra) {
		snprintf(why, wlen, "host NAME ADDR takes nothing more");
		return -1;
	}
	if (!valid_host_name(name)) {
		snprintf(why, wlen, "a host's name is 1-%d of A-Z a-z 0-9 . - (not first: . -)",
			 KH_NAME_MAX);
		return -1;
	}
	if (strlen(addr) >= sizeof(c->hosts[0].addr) || config_addr_check(addr) < 0) {
		snprintf(why, wlen,
			 "host takes one name, or a name and its agent's address IPv4:PORT "
			 "('%.64s' is not one)",
			 addr);
		return -1;
	}
	for (int i = 0; i < c->nhosts; i++) {
		if (strcmp(c->hosts[i].name, name) == 0) {
			snprintf(why, wlen, "host %s given twice", name);
			return -1;
		}
		if (strcmp(c->hosts[i].addr, addr) == 0) {
			snprintf(why, wlen, "hosts %s and %s have one address, %s",
				 c->hosts[i].name, name, addr);
			return -1;
		}
	}
	if (c->nhosts == KH_MAX_HOSTS) {
		snprintf(why, wlen, "at most %d hosts", KH_MAX_HOSTS);
		return -1;
	}
	struct fac_host *h = &c->hosts[c->nhosts++];
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	snprintf(h->addr, sizeof(h->addr), "%s", addr);
	h->state = HOST_DOWN;
	return check_total(c, why, wlen);
}

int
config_state_check(const char *spec, char *why, size_t len)
{
	if (strcmp(spec, "sqlite") == 0 || strncmp(spec, "postgresql:", 11) == 0 ||
	    strncmp(spec, "postgres://", 11) == 0)
		return 0;
	snprintf(why, len, "state must be sqlite or postgresql:CONNINFO (or a postgresql:// URI)");
	return -1;
}

int
config_parse(const char *text, struct config *c, char *err, size_t errlen)
{
	char *copy = strdup(text), *save = NULL, why[160];
	int lineno = 0, rc = 0;

	memset(c, 0, sizeof(*c));
	if (copy == NULL || (c->policy = policy_new()) == NULL) {
		free(copy);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (char *p = copy, *line; (line = strsep(&p, "\n")) != NULL;) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *word = strtok_r(line, " \t\r", &save);
		char *rest = save;
		why[0] = '\0';
		if (word == NULL)
			continue;
		if (strcmp(word, "host") == 0) {
			char *h = strtok_r(NULL, " \t\r", &save);
			char *addr = h ? strtok_r(NULL, " \t\r", &save) : NULL;
			if (addr != NULL) {
				parse_host(c, h, addr, strtok_r(NULL, " \t\r", &save) != NULL, why,
					   sizeof(why));
			} else if (h == NULL || strlen(h) > 255) {
				snprintf(
				    why, sizeof(why),
				    "host takes a name (this host's), or a name and an agent's "
				    "address IP:PORT");
			} else {
				snprintf(c->host, sizeof(c->host), "%s", h);
			}
		} else if (strcmp(word, "state") == 0) {
			/* The rest of the line: libpq's conninfo has spaces. */
			char *v = rest ? rest + strspn(rest, " \t") : (char *)"";
			size_t n = strlen(v);
			while (n > 0 && strchr(" \t\r", v[n - 1]))
				v[--n] = '\0';
			if (n == 0 || n >= sizeof(c->state))
				snprintf(why, sizeof(why),
					 "state takes sqlite or postgresql:CONNINFO");
			else if (config_state_check(v, why, sizeof(why)) == 0)
				snprintf(c->state, sizeof(c->state), "%s", v);
		} else if (strcmp(word, "cluster_key") == 0) {
			char *v = strtok_r(NULL, " \t\r", &save);
			if (v == NULL || strtok_r(NULL, " \t\r", &save) != NULL ||
			    strlen(v) >= sizeof(c->cluster_key))
				snprintf(why, sizeof(why), "cluster_key takes one file name");
			else
				snprintf(c->cluster_key, sizeof(c->cluster_key), "%s", v);
		} else if (strcmp(word, "on_stop") == 0) {
			char *v = strtok_r(NULL, " \t\r", &save);
			if (v == NULL || strtok_r(NULL, " \t\r", &save) != NULL ||
			    (strcmp(v, "keep") != 0 && strcmp(v, "stop") != 0))
				snprintf(why, sizeof(why), "on_stop takes keep or stop");
			else
				c->on_stop_keep = strcmp(v, "keep") == 0;
		} else if (strcmp(word, "type") == 0) {
			if (c->ntypes == KH_MAX_TYPES) {
				snprintf(why, sizeof(why), "at most %d types", KH_MAX_TYPES);
			} else if (parse_type(rest ? rest : (char *)"", &c->types[c->ntypes], why,
					      sizeof(why)) == 0) {
				for (int i = 0; i < c->ntypes; i++)
					if (strcmp(c->types[i].name, c->types[c->ntypes].name) == 0)
						snprintf(why, sizeof(why), "type %s defined twice",
							 c->types[i].name);
				if (why[0] == '\0') {
					c->ntypes++;
					check_total(c, why, sizeof(why));
				}
			}
		} else if (policy_conf_line(c->policy, lineno, word, rest, why, sizeof(why)) == 0) {
			/* policy MODULE..., and each module's own lines (src/policy) */
			snprintf(why, sizeof(why), "unknown setting '%.32s'", word);
		}
		if (why[0]) {
			snprintf(err, errlen, "line %d: %s", lineno, why);
			rc = -1;
			break;
		}
	}
	free(copy);
	if (rc == 0 && policy_conf_end(c->policy, err, errlen) < 0)
		rc = -1;
	if (rc < 0)
		config_free(c);
	return rc;
}

void
config_free(struct config *c)
{
	policy_free(c->policy);
	c->policy = NULL;
}

int
config_load(const char *path, struct config *c, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	char buf[65536], inner[200];
	size_t n;

	memset(c, 0, sizeof(*c));
	if (fp == NULL) {
		if (errno == ENOENT)
			return config_parse("", c, err, errlen);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	int big = !feof(fp);
	fclose(fp);
	if (big) {
		snprintf(err, errlen, "%s: file too large", path);
		return -1;
	}
	buf[n] = '\0';
	if (config_parse(buf, c, inner, sizeof(inner)) < 0) {
		snprintf(err, errlen, "%s: %s", path, inner);
		return -1;
	}
	return 0;
}
