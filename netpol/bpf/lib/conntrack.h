/* Our own connection tracking, so replies of allowed flows pass.
 *
 * Entries are per (endpoint, direction) that let a flow through: the check at
 * the client's egress and the one at the server's ingress each record their
 * own, so a flow allowed on one side never skips the other side's check.  A
 * packet is a reply if the *other* direction of the same endpoint recorded
 * the reversed tuple.  Entries age out by idle time (checked on lookup; the
 * LRU map evicts under pressure), so no garbage collector is needed.
 */
#ifndef PW_CONNTRACK_H
#define PW_CONNTRACK_H

#include "lib/maps.h"
#include "lib/parse.h"

#define CT_CLOSING 1
#define NSEC_PER_SEC 1000000000ULL

static __always_inline __u64 ct_lifetime(__u8 proto, __u32 flags)
{
	if (flags & CT_CLOSING)
		return 10 * NSEC_PER_SEC;
	if (proto == PROTO_TCP || proto == PROTO_SCTP)
		return 6 * 3600 * NSEC_PER_SEC;
	if (proto == PROTO_UDP)
		return 120 * NSEC_PER_SEC;
	return 30 * NSEC_PER_SEC;
}

/* Is this packet the reply of a flow the endpoint let through the other way? */
static __always_inline int ct_is_reply(__u32 ep_id, __u8 dir, const struct flow *f, __u64 now)
{
	struct ct_key k = {};
	struct ct_value *v;

	addr_copy(k.saddr, f->t.daddr);
	addr_copy(k.daddr, f->t.saddr);
	k.sport = f->t.dport;
	k.dport = f->t.sport;
	k.ep_id = ep_id;
	k.proto = f->t.proto;
	k.dir = !dir;
	v = pw_ct.lookup(&k);
	if (!v || now - v->last_seen > ct_lifetime(k.proto, v->flags))
		return 0;
	if (f->flags & FLOW_TCP_CLOSE)
		v->flags |= CT_CLOSING;
	if (now - v->last_seen > NSEC_PER_SEC) /* second granularity keeps writes rare */
		v->last_seen = now;
	return 1;
}

static __always_inline void ct_forward_key(struct ct_key *k, __u32 ep_id, __u8 dir, const struct flow *f)
{
	addr_copy(k->saddr, f->t.saddr);
	addr_copy(k->daddr, f->t.daddr);
	k->sport = f->t.sport;
	k->dport = f->t.dport;
	k->ep_id = ep_id;
	k->proto = f->t.proto;
	k->dir = dir;
}

/* This flow's own entry at this hook, if alive (and not a reply-only packet). */
static __always_inline struct ct_value *ct_forward(const struct ct_key *k, const struct flow *f, __u64 now)
{
	struct ct_value *v;

	if (f->flags & (FLOW_REPLY_ONLY | FLOW_FRAGMENT))
		return NULL;
	v = pw_ct.lookup((struct ct_key *)k);
	if (!v || now - v->last_seen > ct_lifetime(k->proto, v->flags))
		return NULL;
	return v;
}

/* Record (or refresh) a flow the endpoint just let through, with the verdict's generation. */
static __always_inline void ct_track(const struct ct_key *k, struct ct_value *v, const struct flow *f,
				     __u64 now, __u32 generation, __u32 cookie)
{
	struct ct_value fresh = {};

	if (f->flags & (FLOW_REPLY_ONLY | FLOW_FRAGMENT))
		return;
	if (v) {
		if (f->flags & FLOW_TCP_SYN)
			v->flags = 0; /* the tuple starts a new connection */
		if (f->flags & FLOW_TCP_CLOSE)
			v->flags |= CT_CLOSING;
		if (v->generation != generation || v->cookie != cookie) {
			v->generation = generation;
			v->cookie = cookie;
		}
		if (now - v->last_seen > NSEC_PER_SEC || (f->flags & FLOW_TCP_SYN))
			v->last_seen = now;
		return;
	}
	fresh.last_seen = now;
	fresh.flags = (f->flags & FLOW_TCP_CLOSE) ? CT_CLOSING : 0;
	fresh.generation = generation;
	fresh.cookie = cookie;
	pw_ct.update((struct ct_key *)k, &fresh);
}

/* The same flow under its pre-DNAT tuple (the Service address), for the reply check. */
static __always_inline void ct_track_orig(__u32 ep_id, __u8 dir, const struct flow *f, const struct tuple *orig,
					  __u64 now, __u32 generation)
{
	struct ct_key k = {};

	ct_forward_key(&k, ep_id, dir, f);
	addr_copy(k.daddr, orig->daddr);
	k.dport = orig->dport;
	if (addr_equal(k.daddr, f->t.daddr) && k.dport == f->t.dport)
		return; /* not DNATed: the entry just written is the one */
	ct_track(&k, ct_forward(&k, f, now), f, now, generation, 0);
}

#endif /* PW_CONNTRACK_H */
