/* Verdict reasons: why a packet was dropped (DROP_*) or passed (FWD_*).
 *
 * They index pw_metrics (reason * 2 + direction) and travel in drop events.
 * These are shared with netpol/datapath/reasons.py, which gives each a name and
 * a text; tests/unit/test_netpol_reasons.py checks the two agree.  When modifying
 * any of the below, update that file too.
 */
#ifndef PW_DROP_REASONS_H
#define PW_DROP_REASONS_H

#define FWD_UNISOLATED 1 /* no policy isolates the pod in this direction */
#define FWD_POLICY 2     /* a rule of a selecting policy allows the flow */
#define FWD_REPLY 3      /* reply (or ICMP error) of a tracked connection */
#define FWD_HOST 4       /* from the pod's own node (kubelet probes) */
#define FWD_SELF 5       /* the pod reaching itself */
#define FWD_CONTROL 6    /* ARP, IPv6 neighbour discovery and MLD */
#define FWD_DEFERRED 7   /* to a Service frontend: judged after DNAT (nf_post_dnat.c) */

#define DROP_POLICY 16          /* isolated, and no rule allows the flow */
#define DROP_SPOOFED_SOURCE 17  /* the pod sent from an address that is not its own */
#define DROP_UNKNOWN_ENDPOINT 18 /* program on an interface with no endpoint entry */
#define DROP_MALFORMED 19       /* truncated or invalid IP header, isolated pod */
#define DROP_UNSUPPORTED_L3 20  /* neither IP nor ARP (e.g. VLAN-tagged), isolated pod */
#define DROP_NO_CONNECTION 21   /* a reply-only packet (echo reply, ICMP error) with no tracked flow */
#define DROP_SERVICE_BYPASS 22  /* deferred to the post-DNAT check, but reached a pod without passing it */

#define REASON_MAX 32

#endif /* PW_DROP_REASONS_H */
