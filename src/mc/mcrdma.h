/* mcrdma: khmcd's arena exposed through the nodes' one-sided memory device
 * (docs/mc.md, "One-sided gets").  In every domain it is exposed in, three
 * read-only regions: the header page, the current table and the item area;
 * their keys are in the header's rdma slots.  Clients read items without
 * the server's CPU; a set's value comes the other way, read by the server
 * from the client's buffer (two-phase set). */
#ifndef KH_MC_MCRDMA_H
#define KH_MC_MCRDMA_H

#include <stddef.h>
#include <stdint.h>

struct mc_cache;
struct mc_rdma;

/* Expose c's arena in the domain of ifname, or of every domain interface
 * the node has (ifname NULL).  The item area is allocated in full (the
 * device lends only memory the node has).  nthreads: the workers that will
 * call mc_rdma_fetch.  NULL with err when there is no device (or none of
 * the interfaces opens). */
struct mc_rdma *mc_rdma_open(struct mc_cache *c, const char *ifname, int nthreads, char *err,
			     size_t errlen);
void mc_rdma_close(struct mc_rdma *r);
/* How many domains the arena is exposed in, and a line naming them. */
int mc_rdma_domains(const struct mc_rdma *r, char *buf, size_t len);

/* The "rdma" command's answer for a connection whose local IPv4 address is
 * local4 (host order): "RDMA NETID RANK HOST HEADERKEY".  -1 when the arena
 * is not exposed in that address's domain. */
int mc_rdma_describe(struct mc_rdma *r, uint32_t local4, char *buf, size_t len);

/* Worker t: read len bytes at roff of region rkey of node rank in domain
 * netid into dst, which lies in the item area.  0, or -1 with a reason. */
int mc_rdma_fetch(struct mc_rdma *r, int t, uint32_t netid, uint32_t rank, uint64_t rkey,
		  uint64_t roff, void *dst, uint32_t len, char *err, size_t errlen);

#endif
