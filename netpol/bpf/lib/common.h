/* Constants shared by every podwire netpol program.
 *
 * Directions are the pod's: DIR_EGRESS is what the pod sends (tc ingress of its
 * host veth), DIR_INGRESS what it receives (tc egress of its host veth).
 * Must be in sync with netpol/compiler/entries.py.
 */
#ifndef PW_COMMON_H
#define PW_COMMON_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

#define DIR_INGRESS 0
#define DIR_EGRESS 1

/* endpoint_info.flags: isolated for a direction (some policy selects the pod for it) */
#define ISOLATE_INGRESS (1 << DIR_INGRESS)
#define ISOLATE_EGRESS (1 << DIR_EGRESS)

#define ANY_IDENTITY 0   /* policy wildcard: every peer */
#define WORLD_IDENTITY 1 /* no ipcache prefix covers the address */

#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define ETH_P_ARP_ 0x0806
#define ETH_P_IPV6_ 0x86DD

#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define PROTO_SCTP 132

#ifndef PIN_DIR
#error "PIN_DIR must be defined by the loader (netpol/datapath/loader.py)"
#endif

static __always_inline void addr_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, 16);
}

static __always_inline int addr_equal(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

#endif /* PW_COMMON_H */
