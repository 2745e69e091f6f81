/* tc ingress of a pod's host veth: everything the pod sends (its egress).
 *
 * The endpoint is found by ifindex, never by source address, and the source
 * must be one of the endpoint's own addresses: otherwise a pod could borrow
 * another pod's identity at the receiver's ingress check.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/policy.h"

static __always_inline int source_is_own(const struct endpoint_info *ep, const struct flow *f)
{
	struct ipcache_value *owner = ipcache_lookup(f->src);

	return owner && owner->ep_id == ep->ep_id;
}

int from_pod(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = pw_endpoints.lookup(&ifindex);
	struct flow f = {};
	int parsed;

	if (!ep) /* attached but not registered: fail closed */
		return pw_drop(skb, 0, DIR_EGRESS, &f, WORLD_IDENTITY, DROP_UNKNOWN_ENDPOINT);
	parsed = parse_flow(skb, &f);
	if (parsed != PARSE_IP)
		return pw_early_verdict(skb, ep, DIR_EGRESS, &f, parsed);
	if (!source_is_own(ep, &f))
		return pw_drop(skb, ep->ep_id, DIR_EGRESS, &f, WORLD_IDENTITY, DROP_SPOOFED_SOURCE);
	return pw_verdict(skb, ep, DIR_EGRESS, &f, 0);
}
