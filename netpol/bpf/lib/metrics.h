/* Counters and drop events: every verdict is counted, every drop reported.
 *
 * Hook-independent: the tc programs and the netfilter program describe their
 * packet by a struct meta and turn VERDICT_* into their own return codes.
 */
#ifndef PW_METRICS_H
#define PW_METRICS_H

#include "lib/maps.h"
#include "lib/parse.h"

#define VERDICT_PASS 0
#define VERDICT_DROP 1

struct meta {
	__u32 len;     /* bytes counted */
	__u32 ifindex; /* the endpoint's host veth, reported in drop events */
};

static __always_inline void counter_add(struct counter *c, __u32 len)
{
	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

static __always_inline void count_verdict(__u32 ep_id, __u8 dir, __u8 reason, __u32 len)
{
	__u32 idx = reason * 2 + dir;
	struct ep_counters *ep;

	counter_add(pw_metrics.lookup(&idx), len);
	if (!ep_id)
		return;
	idx = ep_id * 2 + dir;
	ep = pw_ep_stats.lookup(&idx);
	if (!ep)
		return;
	if (reason < DROP_POLICY) {
		ep->allowed_packets++;
		ep->allowed_bytes += len;
	} else {
		ep->denied_packets++;
		ep->denied_bytes += len;
	}
}

static __always_inline void count_policy(__u32 cookie, __u32 len)
{
	counter_add(pw_policy_stats.lookup(&cookie), len);
}

static __always_inline int pw_pass(const struct meta *m, __u32 ep_id, __u8 dir, __u8 reason)
{
	count_verdict(ep_id, dir, reason, m->len);
	return VERDICT_PASS;
}

static __always_inline int event_allowed(__u64 now)
{
	__u32 zero = 0;
	struct event_budget *b = pw_event_budget.lookup(&zero);

	if (!b)
		return 0;
	if (now - b->window_start > 1000000000ULL) {
		b->window_start = now;
		b->sent = 0;
	}
	if (b->sent >= PW_EVENTS_PER_SEC) {
		b->suppressed++;
		return 0;
	}
	b->sent++;
	return 1;
}

/* The single exit for every drop: count it, then tell the agent (within the budget). */
static __always_inline int pw_drop(const struct meta *m, __u32 ep_id, __u8 dir, const struct flow *f,
				   __u32 identity, __u8 reason)
{
	struct drop_event ev = {};

	count_verdict(ep_id, dir, reason, m->len);
	ev.ts_ns = bpf_ktime_get_ns();
	if (!event_allowed(ev.ts_ns))
		return VERDICT_DROP;
	addr_copy(ev.saddr, f->src);
	addr_copy(ev.daddr, f->t.daddr);
	ev.ep_id = ep_id;
	ev.ifindex = m->ifindex;
	ev.identity = identity;
	ev.sport = f->t.sport;
	ev.dport = f->t.dport;
	ev.proto = f->t.proto;
	ev.dir = dir;
	ev.reason = reason;
	ev.family = f->family;
	pw_drops.ringbuf_output(&ev, sizeof(ev), 0);
	return VERDICT_DROP;
}

#endif /* PW_METRICS_H */
