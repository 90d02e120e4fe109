/* khdo: the pure parts of khdo (kittyhawk-reference.md "khdo"): the control
 * block khget prints, rank lists, %placeholder% substitution, and the
 * tracker that reads the nodes' rank-prefixed answers during a load.  No
 * I/O here, so the unit tests drive all of it (tests/unit/test_khdo.c). */
#ifndef KH_KHDO_H
#define KH_KHDO_H

#include "common/sbuf.h"

#include <stddef.h>
#include <stdint.h>

struct khdo_net {
	char name[16];	 /* "External", "Internal" or a private netid */
	char ifname[16]; /* "eth<k>" */
};

struct khdo_info {
	int rank;
	char uni[40];
	char ip[64]; /* third field of "nodeinfo:" */
};

struct khdo_block {
	int chan;	/* C of con<C> */
	char con[320];	/* "con<C>@<host>", as printed */
	char host[256]; /* <host> */
	int ssh_port;	/* "ssh-port:" line, 0 when absent */
	struct khdo_net *nets;
	int nnets;
	struct khdo_info *info;
	int ninfo;
	int *ranks; /* "nodes:" line, in its order */
	int nranks;
};

/* Parse a control block (khget's output).  Lines it does not know are
 * ignored (new information comes on new lines); a missing con<C>@HOST or
 * nodes: line, a malformed known line, a rank given twice or a second
 * block is an error.  Returns 0, or -1 with a one-line reason in err. */
int khdo_block_parse(const char *s, size_t len, struct khdo_block *b, char *err, size_t errlen);
void khdo_block_free(struct khdo_block *b);
/* The nodeinfo of rank, or NULL. */
const struct khdo_info *khdo_block_info(const struct khdo_block *b, int rank);

/* Ranks as a targets list: sorted, runs as ranges, "0-3,7,9-10". */
void khdo_ranks_fmt(const int *ranks, int n, struct sbuf *out);

/* Replace each %key% of tmpl by its value, shell-quoted when it holds
 * anything but [A-Za-z0-9@%+=:,./_-]. */
void khdo_subst(const char *tmpl, const char *const *keys, const char *const *vals, int n,
		struct sbuf *out);

/* The tracker.  khdo asks every node something whose answer it can
 * recognise (lines carrying a tag unique to this run) and reads the
 * channel in rank-prefixed mode, so it knows which node said what. */
enum khdo_phase {
	KHDO_PRE,   /* "echo khdo-pre:TAG:ADDR; bdinfo; echo khdo-end:TAG" */
	KHDO_LOAD,  /* "mrw ADDR COUNT; echo khdo-ack:TAG:$?" + the bytes */
	KHDO_UNTIL, /* every node prints a text */
};
enum { KHDO_WAIT, KHDO_OK, KHDO_FAIL };

struct khdo_node {
	int rank;
	int state;
	unsigned have; /* PRE: 1 tag seen, 2 memstart, 4 memsize */
	char addr[40]; /* PRE: the address as the node expanded it */
	uint64_t memstart, memsize;
	char why[200]; /* KHDO_FAIL: what the node said, or why we think it failed */
};

struct khdo_track {
	char tag[24];
	int phase;
	const char *text;	 /* KHDO_PRE: the address as sent ("$ramfsaddr"); UNTIL: the text */
	struct khdo_node *nodes; /* sorted by rank */
	int n, waiting, failed;
};

/* Track the nodes ranks[0..n-1].  0, or -1 when out of memory or a rank
 * is given twice. */
int khdo_track_init(struct khdo_track *t, const int *ranks, int n, const char *tag);
void khdo_track_free(struct khdo_track *t);
/* Start a phase: every node waits again.  text as in struct khdo_track. */
void khdo_track_phase(struct khdo_track *t, int phase, const char *text);
/* One line of the channel in prefixed mode ("[RANK] text"), without its
 * newline.  Lines of other nodes, and lines that are not answers, are
 * ignored. */
void khdo_track_line(struct khdo_track *t, const char *line, size_t len);
/* After KHDO_PRE: fail every node whose RAM cannot hold count bytes at
 * the address it gave.  Returns how many nodes failed in all. */
int khdo_track_room(struct khdo_track *t, uint64_t count);
/* Every node still waiting fails with why. */
void khdo_track_expire(struct khdo_track *t, const char *why);
/* One line per distinct reason, "prog: node 3: why" or "prog: nodes
 * 3-5,9: why", in rank order of their first node.  Returns the number of
 * failed nodes. */
int khdo_track_report(const struct khdo_track *t, const char *prog, struct sbuf *out);

#endif
