/* tc ingress of a pod's host veth: everything the pod sends (its egress).
 *
 * The endpoint is found by ifindex, never by source address, and the source
 * must be one of the endpoint's own addresses: otherwise a pod could borrow
 * another pod's identity at the receiver's ingress check (and at the post-DNAT
 * check, which finds the endpoint by source address).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/services.h"

static __always_inline int source_is_own(const struct endpoint_info *ep, const struct flow *f)
{
	struct ipcache_value *owner = ipcache_lookup(f->src);

	return owner && owner->ep_id == ep->ep_id;
}

static __always_inline int tc_action(int verdict)
{
	return verdict == VERDICT_PASS ? TC_ACT_OK : TC_ACT_SHOT;
}

int from_pod(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex, idx = FWD_DEFERRED * 2 + DIR_EGRESS;
	struct endpoint_info *ep = pw_endpoints.lookup(&ifindex);
	struct meta m = {.len = skb->len, .ifindex = ifindex};
	struct service_config *cfg;
	struct flow f = {};
	int parsed;

	if (!ep) /* attached but not registered: fail closed */
		return tc_action(pw_drop(&m, 0, DIR_EGRESS, &f, WORLD_IDENTITY, DROP_UNKNOWN_ENDPOINT));
	parsed = parse_flow(skb, &f);
	if (parsed != PARSE_IP)
		return tc_action(pw_early_verdict(&m, ep, DIR_EGRESS, &f, parsed));
	if (!source_is_own(ep, &f))
		return tc_action(pw_drop(&m, ep->ep_id, DIR_EGRESS, &f, WORLD_IDENTITY, DROP_SPOOFED_SOURCE));
	cfg = service_config();
	if (cfg && service_deferred(ep, &f, cfg)) {
		skb->mark |= cfg->mark;
		/* counted once more where it is judged, so only the node-wide counter here */
		counter_add(pw_metrics.lookup(&idx), skb->len);
		return TC_ACT_OK;
	}
	return tc_action(pw_verdict(&m, ep, DIR_EGRESS, &f, 0, NULL));
}
