/* The verdict for an IP packet at one of the pod's two hooks.
 *
 * Order: reply of a tracked flow -> node/self exemptions -> not isolated ->
 * the flow's verdict cached at this generation -> two trie lookups (peer
 * identity, then ANY).  Every packet that is not a reply is judged by the
 * policy in force: the cached verdict is only used while pw_config.generation
 * is unchanged, and the agent bumps it after each change it writes, so
 * revoking a rule also stops established flows in the revoked direction (as in
 * Cilium) while replies keep passing until their entry ages out.  The cost is
 * the same for 1 or 100,000 rules.
 */
#ifndef PW_POLICY_H
#define PW_POLICY_H

#include "lib/conntrack.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/parse.h"

static __always_inline struct ipcache_value *ipcache_lookup(const __u8 *addr)
{
	struct ipcache_key k = {.prefixlen = 128};

	addr_copy(k.addr, addr);
	return pw_ipcache.lookup(&k);
}

static __always_inline struct policy_value *policy_lookup(__u32 subject, __u8 dir, __u32 identity,
							  __u8 proto, __u16 dport)
{
	struct policy_key k = {};
	struct policy_value *v;

	k.prefixlen = 128;
	k.subject = bpf_htonl(subject);
	k.dir = dir;
	k.identity = bpf_htonl(identity);
	k.proto = proto;
	k.dport = bpf_htons(dport);
	v = pw_policy.lookup(&k);
	if (v)
		return v;
	k.identity = bpf_htonl(ANY_IDENTITY);
	return pw_policy.lookup(&k);
}

/* ARP/ND always pass; other non-IP and malformed packets only if not isolated. */
static __always_inline int pw_early_verdict(const struct meta *m, const struct endpoint_info *ep,
					    __u8 dir, const struct flow *f, int parsed)
{
	if (parsed == PARSE_CONTROL)
		return pw_pass(m, ep->ep_id, dir, FWD_CONTROL);
	if (!(ep->flags & (1 << dir)))
		return pw_pass(m, ep->ep_id, dir, FWD_UNISOLATED);
	return pw_drop(m, ep->ep_id, dir, f, WORLD_IDENTITY,
		       parsed == PARSE_MALFORMED ? DROP_MALFORMED : DROP_UNSUPPORTED_L3);
}

static __always_inline __u32 policy_generation(void)
{
	__u32 zero = 0;
	struct config *c = pw_config.lookup(&zero);

	return c ? (__u32)c->generation : 0;
}

/* exempt: FWD_HOST / FWD_SELF decided by the attach point, or 0.  orig: for a packet
 * judged after DNAT (nf_post_dnat.c), its tuple before DNAT, or NULL: a flow let
 * through is also recorded under it, because its replies reach the client
 * un-DNATed (from the Service address) and to_pod's reply check looks for that. */
static __always_inline int pw_verdict(const struct meta *m, const struct endpoint_info *ep, __u8 dir,
				      const struct flow *f, __u8 exempt, const struct tuple *orig)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 generation = policy_generation();
	struct ipcache_value *peer;
	struct policy_value *allow;
	struct ct_key key = {};
	struct ct_value *tracked;
	__u32 cookie = 0;
	__u8 reason = exempt;

	if (ct_is_reply(ep->ep_id, dir, f, now))
		return pw_pass(m, ep->ep_id, dir, FWD_REPLY);
	if (f->flags & FLOW_REPLY_ONLY) {
		if (!(ep->flags & (1 << dir)))
			return pw_pass(m, ep->ep_id, dir, FWD_UNISOLATED);
		peer = ipcache_lookup(dir == DIR_EGRESS ? f->t.daddr : f->t.saddr);
		return pw_drop(m, ep->ep_id, dir, f, peer ? peer->identity : WORLD_IDENTITY, DROP_NO_CONNECTION);
	}
	ct_forward_key(&key, ep->ep_id, dir, f);
	tracked = ct_forward(&key, f, now);
	if (!reason && !(ep->flags & (1 << dir)))
		reason = FWD_UNISOLATED;
	if (!reason && tracked && tracked->cookie && tracked->generation == generation) {
		reason = FWD_POLICY; /* allowed by this very policy state already */
		cookie = tracked->cookie;
	}
	if (!reason) {
		peer = ipcache_lookup(dir == DIR_EGRESS ? f->t.daddr : f->t.saddr);
		if (dir == DIR_EGRESS && peer && peer->ep_id == ep->ep_id) {
			reason = FWD_SELF; /* hairpin out; it comes back through the ingress check */
		} else {
			allow = policy_lookup(ep->subject, dir, peer ? peer->identity : WORLD_IDENTITY, f->t.proto,
					      f->t.dport);
			if (!allow)
				return pw_drop(m, ep->ep_id, dir, f, peer ? peer->identity : WORLD_IDENTITY,
					       DROP_POLICY);
			reason = FWD_POLICY;
			cookie = allow->cookie; /* the agent's cookies start at 1: 0 never caches */
		}
	}
	if (reason == FWD_POLICY)
		count_policy(cookie, m->len);
	ct_track(&key, tracked, f, now, generation, cookie);
	if (orig)
		ct_track_orig(ep->ep_id, dir, f, orig, now, generation);
	return pw_pass(m, ep->ep_id, dir, reason);
}

#endif /* PW_POLICY_H */
