/* Packet parsing: Ethernet -> IPv4 / IPv6 (with extension headers) -> ports.
 *
 * tc programs read with bpf_skb_load_bytes rather than direct packet access: it
 * copes with non-linear skbs (GRO'd veth traffic) without a pull, and we read few
 * bytes.  Netfilter programs have neither, so they read the linear head of the
 * skb with bpf_probe_read_kernel (nf_post_dnat.c); struct pkt hides which, and
 * since everything is inlined with a constant skb or NULL, each program keeps
 * only its own branch.
 */
#ifndef PW_PARSE_H
#define PW_PARSE_H

#include "lib/common.h"

#define PARSE_IP 0        /* an IP packet, flow filled in */
#define PARSE_CONTROL 1   /* ARP, IPv6 ND and MLD: always pass, or nothing works */
#define PARSE_OTHER_L3 2  /* neither IP nor ARP */
#define PARSE_MALFORMED 3

#define FLOW_REPLY_ONLY (1 << 0) /* echo reply or ICMP error: never starts a connection */
#define FLOW_FRAGMENT (1 << 1)   /* non-first fragment: no ports, matches port-less rules only */
#define FLOW_TCP_SYN (1 << 2)    /* SYN without ACK: a (possibly reused) tuple starts afresh */
#define FLOW_TCP_CLOSE (1 << 3)  /* FIN or RST: the connection is closing */

#define IPV6_MAX_EXT 6

/* Where the bytes come from: a tc skb, or (skb == NULL) kernel memory at data. */
struct pkt {
	struct __sk_buff *skb;
	__u64 data;    /* address of the network header (netfilter) */
	__u32 headlen; /* bytes readable there: the linear part */
};

static __always_inline int pkt_load(const struct pkt *p, __u32 off, void *to, __u32 len)
{
	if (p->skb)
		return bpf_skb_load_bytes(p->skb, off, to, len);
	if (off > 0xffff || off + len > p->headlen)
		return -1; /* beyond the linear head: treated as malformed */
	return bpf_probe_read_kernel(to, len, (void *)(p->data + off));
}

/* The connection a packet belongs to.  For an ICMP error it is the flow the
 * error reports on, reversed, so that the error matches as that flow's reply. */
struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host order; ICMP echo: the id (request: sport, reply: dport) */
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow {
	struct tuple t;
	__u8 src[16]; /* the packet's own source address, for the anti-spoofing check */
	__u8 family;  /* 4 or 6 */
	__u8 flags;   /* FLOW_* */
	__u16 pad;
};

static __always_inline void map_v4(__u8 *dst, __be32 addr)
{
	__u32 *w = (__u32 *)dst;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = addr;
}

/* Returns the L4 offset, or -1 if the header is not a valid IPv4 header. */
static __always_inline int load_ipv4(const struct pkt *p, __u32 off, struct tuple *t, __u8 *frag)
{
	struct {
		__u8 vihl;
		__u8 tos;
		__be16 tot_len;
		__be16 id;
		__be16 frag_off;
		__u8 ttl;
		__u8 proto;
		__be16 csum;
		__be32 saddr;
		__be32 daddr;
	} ip;

	if (pkt_load(p, off, &ip, sizeof(ip)) < 0)
		return -1;
	if ((ip.vihl >> 4) != 4 || (ip.vihl & 0xf) < 5)
		return -1;
	map_v4(t->saddr, ip.saddr);
	map_v4(t->daddr, ip.daddr);
	t->proto = ip.proto;
	*frag = (bpf_ntohs(ip.frag_off) & 0x1fff) != 0;
	return off + (ip.vihl & 0xf) * 4;
}

static __always_inline int is_ipv6_ext(__u8 nh)
{
	return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60; /* hop, route, frag, AH, dst */
}

/* Returns the L4 offset after any extension headers, or -1. */
static __always_inline int load_ipv6(const struct pkt *p, __u32 off, struct tuple *t, __u8 *frag)
{
	struct {
		__be32 vtc_flow;
		__be16 payload_len;
		__u8 nexthdr;
		__u8 hop_limit;
		__u8 saddr[16];
		__u8 daddr[16];
	} ip6;
	struct {
		__u8 nexthdr;
		__u8 len;
		__be16 frag_off;
	} ext;
	__u8 nh;

	if (pkt_load(p, off, &ip6, sizeof(ip6)) < 0)
		return -1;
	if ((bpf_ntohl(ip6.vtc_flow) >> 28) != 6)
		return -1;
	addr_copy(t->saddr, ip6.saddr);
	addr_copy(t->daddr, ip6.daddr);
	nh = ip6.nexthdr;
	off += sizeof(ip6);
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT; i++) {
		if (!is_ipv6_ext(nh))
			break;
		if (pkt_load(p, off, &ext, sizeof(ext)) < 0)
			return -1;
		if (nh == 44) {
			*frag = (bpf_ntohs(ext.frag_off) & 0xfff8) != 0;
			off += 8;
		} else if (nh == 51) {
			off += (ext.len + 2) * 4;
		} else {
			off += (ext.len + 1) * 8;
		}
		nh = ext.nexthdr;
	}
	t->proto = nh;
	return off;
}

/* TCP/UDP/SCTP ports (all three start with them); TCP flags when flags != NULL. */
static __always_inline int load_ports(const struct pkt *p, __u32 off, struct tuple *t, __u8 *flags)
{
	struct {
		__be16 sport;
		__be16 dport;
	} ports;
	__u8 tcp_flags;

	if (pkt_load(p, off, &ports, sizeof(ports)) < 0)
		return PARSE_MALFORMED;
	t->sport = bpf_ntohs(ports.sport);
	t->dport = bpf_ntohs(ports.dport);
	if (flags && t->proto == PROTO_TCP) {
		if (pkt_load(p, off + 13, &tcp_flags, 1) < 0)
			return PARSE_MALFORMED;
		if ((tcp_flags & 0x12) == 0x02)
			*flags |= FLOW_TCP_SYN;
		if (tcp_flags & 0x05)
			*flags |= FLOW_TCP_CLOSE;
	}
	return PARSE_IP;
}

struct icmp_head {
	__u8 type;
	__u8 code;
	__be16 csum;
	__be16 id;
	__be16 seq;
};

static __always_inline int is_echo_request(__u8 family, __u8 type)
{
	return family == 4 ? type == 8 : type == 128;
}

/* An ICMP error carries the header of the packet it reports on (the flow T,
 * from the error's receiver to somewhere).  Present the error as T's reply. */
static __always_inline int parse_icmp_error(const struct pkt *p, __u32 off, struct flow *f)
{
	struct tuple inner = {};
	struct icmp_head echo;
	__u8 frag = 0;
	int l4;

	l4 = f->family == 4 ? load_ipv4(p, off, &inner, &frag) : load_ipv6(p, off, &inner, &frag);
	if (l4 < 0)
		return PARSE_MALFORMED;
	if (inner.proto == PROTO_TCP || inner.proto == PROTO_UDP || inner.proto == PROTO_SCTP) {
		if (load_ports(p, l4, &inner, NULL) != PARSE_IP)
			return PARSE_MALFORMED;
	} else if (inner.proto == PROTO_ICMP || inner.proto == PROTO_ICMPV6) {
		if (pkt_load(p, l4, &echo, sizeof(echo)) < 0)
			return PARSE_MALFORMED;
		if (is_echo_request(f->family, echo.type))
			inner.sport = bpf_ntohs(echo.id);
	}
	addr_copy(f->t.saddr, inner.daddr);
	addr_copy(f->t.daddr, inner.saddr);
	f->t.sport = inner.dport;
	f->t.dport = inner.sport;
	f->t.proto = inner.proto;
	f->flags |= FLOW_REPLY_ONLY;
	return PARSE_IP;
}

static __always_inline int parse_icmp(const struct pkt *p, __u32 off, struct flow *f)
{
	struct icmp_head icmp;
	__u8 type;

	if (pkt_load(p, off, &icmp, sizeof(icmp)) < 0)
		return PARSE_MALFORMED;
	type = icmp.type;
	if (is_echo_request(f->family, type)) {
		f->t.sport = bpf_ntohs(icmp.id);
		return PARSE_IP;
	}
	if ((f->family == 4 && type == 0) || (f->family == 6 && type == 129)) { /* echo reply */
		f->t.dport = bpf_ntohs(icmp.id);
		f->flags |= FLOW_REPLY_ONLY;
		return PARSE_IP;
	}
	if (f->family == 6 && ((type >= 130 && type <= 137) || type == 143))
		return PARSE_CONTROL; /* MLD, router/neighbour discovery, redirect */
	if ((f->family == 4 && (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)) ||
	    (f->family == 6 && type >= 1 && type <= 4))
		return parse_icmp_error(p, off + sizeof(icmp), f);
	return PARSE_IP;
}

/* From the network header at off; ethertype in network byte order. */
static __always_inline int parse_l3(const struct pkt *p, __be16 ethertype, __u32 l3, struct flow *f)
{
	__u8 frag = 0;
	int off;

	if (ethertype == bpf_htons(ETH_P_ARP_))
		return PARSE_CONTROL;
	if (ethertype == bpf_htons(ETH_P_IP_)) {
		f->family = 4;
		off = load_ipv4(p, l3, &f->t, &frag);
	} else if (ethertype == bpf_htons(ETH_P_IPV6_)) {
		f->family = 6;
		off = load_ipv6(p, l3, &f->t, &frag);
	} else {
		return PARSE_OTHER_L3;
	}
	if (off < 0)
		return PARSE_MALFORMED;
	addr_copy(f->src, f->t.saddr);
	if (frag) {
		f->flags |= FLOW_FRAGMENT;
		return PARSE_IP;
	}
	switch (f->t.proto) {
	case PROTO_TCP:
	case PROTO_UDP:
	case PROTO_SCTP:
		return load_ports(p, off, &f->t, &f->flags);
	case PROTO_ICMP:
	case PROTO_ICMPV6:
		return parse_icmp(p, off, f);
	}
	return PARSE_IP;
}

/* A tc program's frame: Ethernet first. */
static __always_inline int parse_flow(struct __sk_buff *skb, struct flow *f)
{
	struct pkt p = {.skb = skb};

	return parse_l3(&p, skb->protocol, ETH_HLEN_, f);
}

#endif /* PW_PARSE_H */
