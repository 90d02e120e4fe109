/* addr: IPv4 10.0.0.0/8 is cut into 4096 /20s, one per netid modulo 4096
 * (netid n: 10.(n>>4).((n&15)<<4).0/20); IPv6 is fd4b:6b68:<netid>::/64. */
#include "fabric/addr.h"
#include "allocator/facility.h"

#include <stdio.h>

static void
v4(int netid, int host, char *buf, size_t len)
{
	unsigned n = (unsigned)netid & 0xfff, h = (unsigned)host & 0xfff;
	snprintf(buf, len, "10.%u.%u.%u", n >> 4, ((n & 15) << 4) | (h >> 8), h & 255);
}

int
addr_node4(int netid, int rank, char *buf, size_t len)
{
	if (rank < 0 || rank >= KH_MAX_NODES)
		return -1;
	v4(netid, rank + 1, buf, len);
	return 0;
}

void
addr_gateway4(int netid, char *buf, size_t len)
{
	v4(netid, ADDR_GATEWAY_HOST, buf, len);
}

void
addr_net4(int netid, char *buf, size_t len)
{
	char a[32];
	v4(netid, 0, a, sizeof(a));
	snprintf(buf, len, "%s/%d", a, ADDR_PREFIX4);
}

uint32_t
addr_net4_num(int netid)
{
	return (10u << 24) | (((uint32_t)netid & 0xfff) << 12);
}

void
addr_node6(int netid, int rank, char *buf, size_t len)
{
	snprintf(buf, len, "fd4b:6b68:%x::%x", (unsigned)netid & 0xffff, (unsigned)rank + 1);
}

void
addr_mac(int netid, int rank, uint8_t mac[6])
{
	mac[0] = 0x02;
	mac[1] = 0x4b;
	mac[2] = (uint8_t)(netid >> 8);
	mac[3] = (uint8_t)netid;
	mac[4] = (uint8_t)(rank >> 8);
	mac[5] = (uint8_t)rank;
}
