/* facility: the in-memory model of one facility (hosts, node types, nodes,
 * principals, domains, channels).  khd owns exactly one; the state layer
 * persists it and the allocator is the only code that changes it. */
#ifndef KH_FACILITY_H
#define KH_FACILITY_H

#include <stddef.h>
#include <stdint.h>

struct alloc_hooks;

#define KH_MAX_IFS    16   /* hard bound on interfaces per node */
#define KH_MAX_NODES  4092 /* the address plan gives each node one host part */
#define KH_MAX_TYPES  16
#define KH_NAME_MAX   32
#define KH_HASH_MAX   128 /* crypto_pwhash_STRBYTES */
#define KH_FIRST_CHAN 2	  /* as the original: con0 system, con1 unused */
#define KH_MAX_HOSTS  64  /* host lines in khd.conf (placement's per_host) */

enum { NETID_RESERVED = 0, NETID_EXTERNAL = 1, NETID_PUBLIC = 2, NETID_FIRST_PRIVATE = 3 };

enum node_state {
	NODE_FREE = 0, /* in the free pool */
	NODE_MONITOR,  /* allocated, in the boot monitor */
	NODE_RUNNING,  /* booted */
};

struct node_type {
	char name[KH_NAME_MAX + 1];
	char backend[8]; /* "ct" or "vm" */
	int cpu_milli;	 /* CPU quota, thousandths of a CPU */
	uint64_t mem;	 /* bytes */
	int pids;	 /* pids limit */
	int max_ifs;	 /* domain interfaces per node */
	int count;	 /* nodes of this type */
};

/* A host of the facility (docs/policy.md "Placement across hosts").
 * Without host lines in khd.conf the facility is one host, HOST_LOCAL:
 * khd itself runs every node.  With them, each host is an agent at addr
 * that runs its own nodes; the front end holds none.  Usable for
 * allocation: HOST_LOCAL and HOST_UP (fac_host_usable). */
enum host_state { HOST_LOCAL = 0, HOST_DOWN, HOST_UP, HOST_LOST };

struct fac_host {
	char name[KH_NAME_MAX + 1]; /* [A-Za-z0-9.-], unique */
	char addr[128];		    /* the agent's "IP:PORT" from khd.conf; "" for the local host */
	int state;	  /* enum host_state; not persisted: HOST_DOWN until the agent connects */
	int first, count; /* its nodes are ranks first .. first+count-1 */
	int64_t lost_ms;  /* when it was lost (wall clock ms), 0 */
};

struct node {
	int rank;
	int type;	     /* index into facility.types */
	int state;	     /* enum node_state */
	int owner;	     /* principal index, -1 when free */
	int chan;	     /* channel id, 0 when free */
	int nifs;	     /* interfaces eth0..eth(nifs-1) */
	int ifs[KH_MAX_IFS]; /* netid of eth<i>; 0 marks a removed interface */
	uint64_t resets;
	int host; /* index into facility.hosts; not persisted (derived from rank) */
};

struct principal {
	char name[KH_NAME_MAX + 1];
	char pwhash[KH_HASH_MAX];
	int64_t created;
	/* Not persisted: see admission.c. */
	unsigned char mac[32];
	int mac_valid;
	int failures;
	uint64_t locked_until_ns;
};

enum domain_kind { DOM_EXTERNAL = 1, DOM_PUBLIC = 2, DOM_PRIVATE = 3 };

struct domain {
	int netid;
	int kind;
	int owner; /* principal index; -1 for external and public */
	int64_t created;
	int members; /* not persisted: derived from nodes */
};

struct channel {
	int id;
	int owner; /* principal billed for the channel's nodes */
	int type;
	int64_t created;
	char credhash[KH_HASH_MAX]; /* empty: the owner's credential opens it */
	char netdesc[KH_MAX_IFS];   /* netid kinds of the control block, in eth order */
	int nets[KH_MAX_IFS];	    /* netids, in eth order */
	int nnets;
	int nnodes; /* not persisted: derived */
};

/* An SSH key that opens channels over ssh (docs/channels.md): chan 0, a
 * key of principal owner, good for its channels until it transfers them;
 * chan > 0, a key registered by whoever holds that channel's transferred
 * credential (owner -1), dropped when the channel goes or moves again. */
struct sshkey {
	int owner;
	int chan;
	char *line; /* "type base64 [comment]" */
};

struct facility {
	char host[256];
	uint32_t id;		/* random per facility, used in kernel object names */
	struct fac_host *hosts; /* always >= 1 once the pool is made (alloc_pool) */
	int nhosts;
	struct node_type types[KH_MAX_TYPES];
	int ntypes;
	struct node *nodes;
	int nnodes;
	struct principal *principals;
	int nprincipals, capprincipals;
	struct domain *domains; /* sorted by netid */
	int ndomains, capdomains;
	struct channel *channels; /* sorted by id */
	int nchannels, capchannels;
	struct sshkey *keys;
	int nkeys, capkeys;
	int next_netid;
	int next_chan;
	int ssh_port; /* khd's sshd, for the control block; 0: none (not persisted) */
	struct state *st;
	const struct alloc_hooks *hooks; /* see alloc.h; may be NULL */
};

struct principal *fac_principal(struct facility *f, const char *name, int *idx);
struct domain *fac_domain(struct facility *f, int netid);
struct channel *fac_channel(struct facility *f, int id);
int fac_type(struct facility *f, const char *name);
/* The host that holds node rank; NULL when there is no such node. */
const struct fac_host *fac_host_of(const struct facility *f, int rank);
/* The index of the host called name, or -1. */
int fac_host_find(const struct facility *f, const char *name);
/* Whether the host's free nodes can be given: HOST_LOCAL or HOST_UP. */
int fac_host_usable(const struct fac_host *h);
/* "local", "down", "up", "lost" (khctl info); "?" for anything else. */
const char *fac_host_state_name(int state);
/* Change host h's state (the front end, as its agent comes and goes):
 * lost_ms becomes now_ms for HOST_LOST, 0 otherwise.  Memory only: host
 * states are not persisted.  -1 for a bad h or state. */
int fac_host_set_state(struct facility *f, int h, int state, int64_t now_ms);
/* Grow an array of elements of size sz: *cap doubles as needed. */
void *fac_grow(void *arr, int *cap, int need, size_t sz);
void fac_free(struct facility *f);

#endif
