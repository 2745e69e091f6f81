/* Service traffic: judge egress after kube-proxy's DNAT, not before.
 *
 * tc ingress of the host veth runs before nat PREROUTING, so a packet to a
 * ClusterIP still carries the ClusterIP there.  Judging that address would make
 * "egress to the kube-dns pods" block DNS through the kube-dns Service.  So
 * from_pod tags such a packet with the service mark and lets it go on; the
 * netfilter program (nf_post_dnat.c), hooked into PREROUTING right after the
 * DNAT priority, judges it for the same endpoint against the backend kube-proxy
 * picked, with the same verdict code (lib/policy.h).  Only packets that will go
 * through the IP stack are deferred (see service_deferred), and to_pod drops a
 * tagged packet that reached a pod other than its DNAT target (a forged MAC on
 * a bridge without br_netfilter), so a deferred packet is never unjudged.
 */
#ifndef PW_SERVICES_H
#define PW_SERVICES_H

#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/policy.h"

static __always_inline struct service_config *service_config(void)
{
	__u32 zero = 0;

	return pw_service_config.lookup(&zero);
}

/* Should from_pod leave this packet's egress check to the netfilter program? */
static __always_inline int service_deferred(const struct endpoint_info *ep, const struct flow *f,
					    const struct service_config *cfg)
{
	struct service_key k = {};
	struct ipcache_value *dst;

	if (!cfg || !cfg->deferred || !cfg->mark || !(ep->flags & ISOLATE_EGRESS))
		return 0; /* unisolated: the verdict is the same wherever it is made */
	if (f->flags & (FLOW_REPLY_ONLY | FLOW_FRAGMENT))
		return 0;
	if (f->t.proto != PROTO_TCP && f->t.proto != PROTO_UDP && f->t.proto != PROTO_SCTP)
		return 0;
	addr_copy(k.addr, f->t.daddr);
	k.port = f->t.dport;
	k.proto = f->t.proto;
	if (pw_services.lookup(&k))
		return 1;
	/* NodePorts match any address, but not a pod on this node: kube-proxy DNATs only
	 * the node's own addresses, and a bridge may switch pod traffic past PREROUTING. */
	dst = ipcache_lookup(f->t.daddr);
	if (dst && dst->ep_id)
		return 0;
	__builtin_memset(k.addr, 0, sizeof(k.addr));
	return pw_services.lookup(&k) != NULL;
}

/* to_pod: a deferred packet arrives only as what DNAT made of it, addressed to this pod. */
static __always_inline int service_bypassed(__u32 mark, const struct endpoint_info *ep, const struct flow *f)
{
	struct service_config *cfg;
	struct ipcache_value *dst;

	if (!mark)
		return 0;
	cfg = service_config();
	if (!cfg || !cfg->deferred || !(mark & cfg->mark))
		return 0;
	dst = ipcache_lookup(f->t.daddr);
	return !dst || dst->ep_id != ep->ep_id;
}

#endif /* PW_SERVICES_H */
