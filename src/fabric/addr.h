/* addr: the facility's address plan.  Every domain (netid) has its own
 * IPv4 /20 and IPv6 /64; a node's host part is its rank + 1, so an address
 * names (netid, node) and needs no allocation table. */
#ifndef KH_ADDR_H
#define KH_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define ADDR_PREFIX4 20
/* The facility's own address (gateway) in each domain: host part 4094. */
#define ADDR_GATEWAY_HOST 4094

/* IPv4 of node rank in domain netid, as text.  -1 if rank is out of plan. */
int addr_node4(int netid, int rank, char *buf, size_t len);
/* The domain's gateway address (for the external domain: the host side). */
void addr_gateway4(int netid, char *buf, size_t len);
/* The domain's network in CIDR notation. */
void addr_net4(int netid, char *buf, size_t len);
/* The domain's IPv4 network as a number (host order): node rank is at
 * this + rank + 1, with prefix ADDR_PREFIX4. */
uint32_t addr_net4_num(int netid);
/* IPv6 of node rank in domain netid. */
void addr_node6(int netid, int rank, char *buf, size_t len);
/* MAC: locally administered unicast 02:4b:NN:NN:RR:RR (netid, rank). */
void addr_mac(int netid, int rank, uint8_t mac[6]);

#endif
