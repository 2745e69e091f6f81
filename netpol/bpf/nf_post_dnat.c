/* netfilter PRE_ROUTING, right after the DNAT priority: the egress check of
 * packets from_pod deferred because they went to a Service frontend.
 *
 * kube-proxy's DNAT (iptables or nftables mode) runs at NF_IP_PRI_NAT_DST (-100);
 * this program is linked at -99, so it sees the backend kube-proxy picked, or
 * the frontend itself when there was nothing to DNAT to (no endpoints): either
 * way the packet is judged, never passed unjudged.  The verdict is pw_verdict's,
 * for the endpoint that owns the source address (from_pod checked the source is
 * the sending pod's own), so drops are counted and reported as any other, with
 * the backend as the peer.
 *
 * Netfilter programs have no direct packet access and no skb helpers: sk_buff
 * and nf_conn are read with bpf_probe_read_kernel at offsets from the running
 * kernel's BTF (netpol/datapath/btf.py passes them as -D defines).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/services.h"

#ifdef SKB_MARK_OFF

#define NF_DROP_ 0
#define NF_ACCEPT_ 1
#define NFCT_INFOMASK 7
#define IP_CT_IS_REPLY_ 3

struct pw_nf_ctx { /* struct bpf_nf_ctx */
	void *state;
	void *skb;
};

static __always_inline __u32 kread32(void *base, __u32 off)
{
	__u32 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), base + off);
	return v;
}

static __always_inline __u64 kread64(void *base, __u32 off)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), base + off);
	return v;
}

/* The tuple before DNAT: the packet's, with the destination of the conntrack
 * entry's original direction (NAT rewrites the packet, never that tuple). */
static __always_inline void pre_dnat(void *skb, const struct flow *f, struct tuple *orig)
{
	__u64 nfct = kread64(skb, SKB_NFCT_OFF);
	void *ct = (void *)(nfct & ~(__u64)NFCT_INFOMASK);
	__u32 base = CT_TUPLEHASH_OFF + CT_TUPLE_OFF; /* tuplehash[IP_CT_DIR_ORIGINAL].tuple */
	__be16 port = 0;
	__be32 v4 = 0;

	*orig = f->t;
	if (!ct || (nfct & NFCT_INFOMASK) >= IP_CT_IS_REPLY_)
		return;
	if (f->family == 4) {
		bpf_probe_read_kernel(&v4, sizeof(v4), ct + base + TUPLE_DST_ADDR_OFF);
		map_v4(orig->daddr, v4);
	} else {
		bpf_probe_read_kernel(orig->daddr, 16, ct + base + TUPLE_DST_ADDR_OFF);
	}
	bpf_probe_read_kernel(&port, sizeof(port), ct + base + TUPLE_DST_PORT_OFF);
	orig->dport = bpf_ntohs(port);
}

int nf_post_dnat(struct pw_nf_ctx *ctx)
{
	void *skb = ctx->skb;
	struct service_config *cfg = service_config();
	struct ipcache_value *owner;
	struct endpoint_info ep = {};
	struct ep_ref *ref;
	struct tuple orig = {};
	struct flow f = {};
	struct meta m = {};
	struct pkt p = {};
	__u8 version = 0;
	int parsed;

	if (!cfg || !(kread32(skb, SKB_MARK_OFF) & cfg->mark) || !cfg->mark)
		return NF_ACCEPT_; /* not deferred: judged at tc already */
	p.data = kread64(skb, SKB_DATA_OFF);
	m.len = kread32(skb, SKB_LEN_OFF);
	p.headlen = m.len - kread32(skb, SKB_DATA_LEN_OFF);
	bpf_probe_read_kernel(&version, 1, (void *)p.data);
	parsed = parse_l3(&p, bpf_htons((version >> 4) == 6 ? ETH_P_IPV6_ : ETH_P_IP_), 0, &f);
	owner = ipcache_lookup(f.t.saddr);
	ref = owner && owner->ep_id ? pw_ep_ids.lookup(&owner->ep_id) : NULL;
	if (!ref) /* the pod went away since from_pod saw the packet: fail closed */
		return pw_drop(&m, 0, DIR_EGRESS, &f, WORLD_IDENTITY, DROP_UNKNOWN_ENDPOINT) == VERDICT_PASS ?
			NF_ACCEPT_ : NF_DROP_;
	ep.ep_id = owner->ep_id;
	ep.flags = ref->flags;
	ep.subject = ref->subject;
	m.ifindex = ref->ifindex;
	if (parsed != PARSE_IP)
		return pw_early_verdict(&m, &ep, DIR_EGRESS, &f, parsed) == VERDICT_PASS ? NF_ACCEPT_ : NF_DROP_;
	pre_dnat(skb, &f, &orig);
	return pw_verdict(&m, &ep, DIR_EGRESS, &f, 0, &orig) == VERDICT_PASS ? NF_ACCEPT_ : NF_DROP_;
}

#endif /* SKB_MARK_OFF */
