/* khfs query paths (docs/khfs.md "Query paths"): query/KEY=VALUE/... names
 * the nodes whose line of khd's nodes listing matches every term.  Pure
 * parsing and matching, so unit tests drive them without FUSE or khd. */
#ifndef KH_KHFS_QUERY_H
#define KH_KHFS_QUERY_H

#include <stddef.h>

enum { KQ_TYPE, KQ_USER, KQ_STATE, KQ_DOMAIN, KQ_CON, KQ_HOST };

#define KQ_MAXTERMS 16
#define KQ_MAXNET   16

struct kq_term {
	int key;
	char val[48];
	long num; /* domain, con */
};

struct kq {
	struct kq_term t[KQ_MAXTERMS];
	int n;
};

/* One line of khd's nodes listing: RANK STATE OWNER CHANNEL NETIDS TYPE
 * HOST (a khd before hosts lists no HOST: host is ""). */
struct kq_node {
	int rank;
	int chan; /* 0: none */
	char state[12];
	char owner[40];
	char type[32];
	char host[33];
	int netids[KQ_MAXNET];
	int nnet;
	const char *line; /* the line in the listing, with its newline */
	size_t len;
};

struct kq_list {
	struct kq_node *v;
	int n;
};

/* "KEY=VALUE" into t.  Returns 0, or -1 for an unknown key or a value the
 * key cannot take (state other than free/monitor/running/lost, domain not a
 * number, con not N or conN, user not a principal's name or "-"). */
int kq_term_parse(const char *word, struct kq_term *t);
/* Append a term to q; -1 when q is full. */
int kq_add(struct kq *q, const struct kq_term *t);
/* Does node n match every term of q?  host is the facility's host name,
 * what host=H compares with when the listing names no host. */
int kq_match(const struct kq *q, const struct kq_node *n, const char *host);
/* Parse the body of khd's nodes reply (text).  The nodes point into body,
 * which must outlive l.  Lines that do not parse are skipped.  Returns 0,
 * -1 when out of memory. */
int kq_parse_nodes(const char *body, size_t len, struct kq_list *l);
void kq_list_free(struct kq_list *l);
/* Split a ctl line into words in place: blanks separate, '...' and "..."
 * quote (no expansion), as a user types it to a shell.  Returns the count,
 * or -1 for an unterminated quote or more than max words. */
int kq_split_words(char *s, char **w, int max);
/* The ranks as khd's targets list, consecutive ones as ranges A-B. */
struct sbuf;
void kq_targets(const int *ranks, int n, struct sbuf *out);

#endif
