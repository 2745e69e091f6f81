/* tc egress of a pod's host veth: everything the pod receives (its ingress).
 *
 * Two exemptions are decided here, from where the packet entered the host
 * rather than from its (spoofable) source address:
 *  - ingress_ifindex == 0: the host itself sent it (kubelet probes), always allowed;
 *  - ingress_ifindex == this veth and the source is the pod's own address: a
 *    hairpin of the pod's own traffic (a pod can always reach itself).
 * Service traffic arrives here already DNATed, so it is judged like any other.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/services.h"

static __always_inline __u8 exemption(struct __sk_buff *skb, const struct endpoint_info *ep,
				      const struct flow *f)
{
	struct ipcache_value *src;

	if (skb->ingress_ifindex == 0)
		return FWD_HOST;
	if (skb->ingress_ifindex != skb->ifindex)
		return 0;
	src = ipcache_lookup(f->src);
	return src && src->ep_id == ep->ep_id ? FWD_SELF : 0;
}

int to_pod(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = pw_endpoints.lookup(&ifindex);
	struct meta m = {.len = skb->len, .ifindex = ifindex};
	struct flow f = {};
	int parsed, verdict;

	if (!ep) {
		verdict = pw_drop(&m, 0, DIR_INGRESS, &f, WORLD_IDENTITY, DROP_UNKNOWN_ENDPOINT);
	} else if ((parsed = parse_flow(skb, &f)) != PARSE_IP) {
		verdict = pw_early_verdict(&m, ep, DIR_INGRESS, &f, parsed);
	} else if (service_bypassed(skb->mark, ep, &f)) {
		verdict = pw_drop(&m, ep->ep_id, DIR_INGRESS, &f, WORLD_IDENTITY, DROP_SERVICE_BYPASS);
	} else {
		verdict = pw_verdict(&m, ep, DIR_INGRESS, &f, exemption(skb, ep, &f), NULL);
	}
	return verdict == VERDICT_PASS ? TC_ACT_OK : TC_ACT_SHOT;
}
