/* fabric: communication domains as Ethernet segments below the nodes.
 * khd owns a fabric network namespace holding one Linux bridge per domain
 * ("d<netid>"); every node has its own network namespace from the moment
 * it exists, and each of its interfaces is a veth pair: eth<i> in the node,
 * "n<rank>e<i>" a port of its domain's bridge.  Nothing in a node can reach
 * a segment it has no port on.  The external domain's bridge has one more
 * port, the host's uplink "kh<facility>", with NAT beyond the host. */
#ifndef KH_FABRIC_H
#define KH_FABRIC_H

#include <stddef.h>
#include <stdint.h>

struct fabric;

/* Make the fabric namespace and the external domain's uplink in the
 * caller's namespace (facid: 8 hex digits; nat: masquerade external
 * traffic leaving the host).  Returns NULL with err. */
struct fabric *fabric_new(const char *facid, int nat, char *err, size_t errlen);
/* Tear everything down: nodes' namespaces, bridges, uplink, NAT. */
void fabric_free(struct fabric *fb);

/* Give node rank its namespace and its first interfaces ahead of need, so
 * an allocation only joins ports to bridges.  Idempotent. */
int fabric_node_prepare(struct fabric *fb, int rank, char *err, size_t errlen);

/* Make node rank's interfaces match netids[0..n) (0: no interface at that
 * position): ports join or leave bridges, interfaces appear or disappear.
 * When the node runs (fabric_node_config was called since its last
 * fabric_node_down), new interfaces are configured at once. */
int fabric_node_wire(struct fabric *fb, int rank, const int *netids, int n, char *err,
		     size_t errlen);
/* Configure the node's side: MAC, MTU, addresses, routes, up (before its
 * /init starts).  Interfaces made ahead but in no domain are removed
 * (at the next fabric_flush). */
int fabric_node_config(struct fabric *fb, int rank, char *err, size_t errlen);
/* The node stopped running: later wiring does not configure addresses. */
void fabric_node_down(struct fabric *fb, int rank);
/* The node left its principal: its namespace and interfaces are destroyed
 * (nothing the principal set survives); a new one is prepared later. */
void fabric_node_release(struct fabric *fb, int rank);
/* Delete the interfaces removed since the last flush, in one request
 * (call after each batch of wiring or releases). */
void fabric_flush(struct fabric *fb);
/* The node's network namespace (fd owned by the fabric), or -1. */
int fabric_node_netns(struct fabric *fb, int rank);

/* The host's uplink name, and counters for khctl info. */
const char *fabric_uplink(const struct fabric *fb);
void fabric_counts(const struct fabric *fb, int *prepared, int *ports, int *bridges);

#endif
