/* Every map of the netpol datapath, pinned under PIN_DIR so that enforcement
 * state survives agent restarts and a reloaded program finds the same maps.
 *
 * Key and value structs must be in sync with their ctypes mirrors in
 * netpol/datapath/maps.py: tests/unit/test_netpol_struct_layout.py compares every
 * field's offset and size, and tests/netns/test_netpol_bpf.py compares them with
 * bcc's types of the loaded program.
 */
#ifndef PW_MAPS_H
#define PW_MAPS_H

#include "lib/common.h"
#include "lib/drop_reasons.h"

#define PW_MAX_ENDPOINTS 16384
#define PW_MAX_IPCACHE 524288
#define PW_MAX_POLICY 1048576
#define PW_MAX_CT 262144
#define PW_MAX_COOKIES 65536
#define PW_MAX_SERVICES 65536
#define PW_EVENTS_PER_SEC 2000 /* drop events per CPU and second; counters see every drop */

/* pw_endpoints: host veth ifindex -> the pod behind it. */
struct endpoint_info {
	__u32 ep_id;
	__u32 flags;   /* ISOLATE_* */
	__u32 subject; /* its allow entries' key: endpoints with the same labels share them */
};

/* pw_ipcache: longest-prefix match on an address -> identity: a pod address (/32, /128)
 * -> its class identity (shared by pods alike to every policy), an ipBlock prefix -> its
 * CIDR identity (netpol/compiler/identities.py).
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d/96+len), so one trie serves both families. */
struct ipcache_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
	__u32 ep_id; /* local endpoint owning the address, 0 if none */
};

/* pw_policy: allow entries.  The data is big-endian so trie prefixes run
 * left to right: subject, dir, identity (exact: 96 bits), then protocol (104),
 * then the port by prefix (112 + k bits; pad2 is always 0).  Ranges become
 * several prefixes, so one lookup answers "is (peer, proto, port) allowed". */
struct policy_key {
	__u32 prefixlen;
	__be32 subject;
	__u8 dir;
	__u8 pad1[3];
	__be32 identity;
	__u8 proto;
	__u8 pad2;
	__be16 dport;
};

struct policy_value {
	__u32 cookie; /* index into pw_policy_stats: which policy allowed */
};

/* pw_ct: one entry per (endpoint, direction) that let a flow out or in. */
struct ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 ep_id;
	__u8 proto;
	__u8 dir;
	__u16 pad;
};

struct ct_value {
	__u64 last_seen;  /* bpf_ktime_get_ns() */
	__u32 flags;      /* CT_CLOSING */
	__u32 generation; /* pw_config.generation when policy last allowed this flow */
	__u32 cookie;     /* the allowing policy's counter (0: not allowed by a rule) */
	__u32 pad;
};

/* pw_config[0]: the agent bumps the generation after every change it writes, which
 * invalidates every verdict cached in pw_ct (see lib/policy.h). */
struct config {
	__u64 generation;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct ep_counters {
	__u64 allowed_packets;
	__u64 allowed_bytes;
	__u64 denied_packets;
	__u64 denied_bytes;
};

/* Per-CPU budget for drop events: a flood of denied packets must not turn into a
 * flood of work for the agent (the counters still count every drop). */
struct event_budget {
	__u64 window_start;
	__u64 sent;
	__u64 suppressed;
};

/* pw_ep_ids: ep_id -> its host veth and isolation flags, for the netfilter program,
 * which finds the endpoint by source address (it has no veth ifindex to go by). */
struct ep_ref {
	__u32 ifindex;
	__u32 flags; /* ISOLATE_* */
	__u32 subject;
};

/* pw_services: the Service frontends kube-proxy DNATs.  from_pod defers the egress
 * check of a packet to one of them to the netfilter program, which sees it after
 * DNAT.  addr all-zero: a NodePort, on any address. */
struct service_key {
	__u8 addr[16];
	__u16 port; /* host order */
	__u8 proto;
	__u8 pad;
};

struct service_value {
	__u32 flags; /* unused, 0 */
};

/* pw_service_config[0]: written by the agent once the netfilter hook is attached. */
struct service_config {
	__u32 mark;     /* skb->mark bit(s) that tag a deferred packet */
	__u32 deferred; /* 1: the hook is in place, defer; 0: judge by the Service address */
};

/* What `podwire-netpol drops` shows, one per dropped packet (within the budget). */
struct drop_event {
	__u64 ts_ns;
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 ep_id;
	__u32 ifindex;
	__u32 identity; /* the peer's */
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 dir;
	__u8 reason;
	__u8 family;
	__u32 pad;
};

BPF_TABLE_PINNED("hash", __u32, struct endpoint_info, pw_endpoints, PW_MAX_ENDPOINTS, PIN_DIR "/endpoints");
BPF_TABLE_PINNED("lpm_trie", struct ipcache_key, struct ipcache_value, pw_ipcache, PW_MAX_IPCACHE,
		 PIN_DIR "/ipcache", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("lpm_trie", struct policy_key, struct policy_value, pw_policy, PW_MAX_POLICY,
		 PIN_DIR "/policy", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("lru_hash", struct ct_key, struct ct_value, pw_ct, PW_MAX_CT, PIN_DIR "/ct");
BPF_TABLE_PINNED("array", __u32, struct config, pw_config, 1, PIN_DIR "/config");
BPF_TABLE_PINNED("percpu_array", __u32, struct counter, pw_metrics, REASON_MAX * 2, PIN_DIR "/metrics");
BPF_TABLE_PINNED("percpu_array", __u32, struct ep_counters, pw_ep_stats, PW_MAX_ENDPOINTS * 2,
		 PIN_DIR "/ep_stats");
BPF_TABLE_PINNED("percpu_array", __u32, struct counter, pw_policy_stats, PW_MAX_COOKIES,
		 PIN_DIR "/policy_stats");
BPF_TABLE_PINNED("percpu_array", __u32, struct event_budget, pw_event_budget, 1, PIN_DIR "/event_budget");
BPF_TABLE_PINNED("hash", __u32, struct ep_ref, pw_ep_ids, PW_MAX_ENDPOINTS, PIN_DIR "/ep_ids");
BPF_TABLE_PINNED("hash", struct service_key, struct service_value, pw_services, PW_MAX_SERVICES,
		 PIN_DIR "/services", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("array", __u32, struct service_config, pw_service_config, 1, PIN_DIR "/service_config");
BPF_RINGBUF_OUTPUT(pw_drops, 64); /* 256 KiB; the agent drains it continuously */

#endif /* PW_MAPS_H */
