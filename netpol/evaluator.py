"""Reference evaluator: the NetworkPolicy semantics in plain Python, one flow at a time.

This is the oracle the compiler and the datapath are tested against, written
for obviousness rather than speed; it follows networking/v1/types.go and the
documented semantics (the NetworkPolicy API reference):

- a pod is isolated for a direction iff a policy selecting it lists that direction;
- allowed traffic is the union of the rules of all selecting policies;
- a connection needs the source's egress AND the destination's ingress;
- ingress from the pod's own node is always allowed, a pod may always reach itself;
- ipBlock matches addresses, including pod addresses (as the upstream e2e suite expects);
- named ports resolve on the destination pod (name and protocol must match);
- only TCP, UDP and SCTP have ports: a rule with ports never matches other protocols.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Optional

from .model import EGRESS, INGRESS, IPAddress, NetworkPolicy, Peer, Pod, PolicyPort, Rule, World


@dataclasses.dataclass(frozen=True)
class Flow:
    """The first packet of a connection: addresses, protocol name and destination port."""

    src: str
    dst: str
    protocol: str = "TCP"  # TCP, UDP, SCTP, ICMP, ...
    port: int = 0
    from_node: bool = False  # sent by the host of the destination pod (kubelet probes)

    @property
    def src_ip(self) -> IPAddress:
        return ipaddress.ip_address(self.src)

    @property
    def dst_ip(self) -> IPAddress:
        return ipaddress.ip_address(self.dst)


class Evaluator:
    def __init__(self, world: World):
        self.world = world
        self.pods = world.pod_by_ip()

    def allowed(self, flow: Flow) -> bool:
        return self.egress_allowed(flow) and self.ingress_allowed(flow)

    def egress_allowed(self, flow: Flow) -> bool:
        """The source pod's verdict (True if the source is not a pod)."""
        src, dst = self.pods.get(flow.src_ip), self.pods.get(flow.dst_ip)
        if src is None or src is dst:
            return True
        return self._direction_allows(src, EGRESS, flow.dst_ip, dst, flow, dst)

    def ingress_allowed(self, flow: Flow) -> bool:
        """The destination pod's verdict (True if the destination is not a pod)."""
        src, dst = self.pods.get(flow.src_ip), self.pods.get(flow.dst_ip)
        if dst is None or src is dst or flow.from_node:
            return True
        return self._direction_allows(dst, INGRESS, flow.src_ip, src, flow, dst)

    def _direction_allows(self, pod: Pod, direction: str, peer_ip: IPAddress, peer: Optional[Pod],
                          flow: Flow, dst: Optional[Pod]) -> bool:
        policies = self.world.selecting(pod, direction)
        if not policies:
            return True  # not isolated in this direction
        return any(self._rule_allows(p, r, peer_ip, peer, flow, dst)
                   for p in policies for r in p.rules(direction))

    def _rule_allows(self, policy: NetworkPolicy, rule: Rule, peer_ip: IPAddress, peer: Optional[Pod],
                     flow: Flow, dst: Optional[Pod]) -> bool:
        peer_ok = not rule.peers or any(self._peer_matches(policy, p, peer_ip, peer) for p in rule.peers)
        port_ok = not rule.ports or any(_port_matches(p, flow, dst) for p in rule.ports)
        return peer_ok and port_ok

    def _peer_matches(self, policy: NetworkPolicy, peer: Peer, ip: IPAddress, pod: Optional[Pod]) -> bool:
        if peer.ip_block is not None:
            return peer.ip_block.contains(ip)
        if pod is None:
            return False
        if peer.namespace_selector is None:
            ns_ok = pod.namespace == policy.namespace
        else:
            ns_ok = peer.namespace_selector.matches(self.world.ns_labels(pod.namespace))
        return ns_ok and (peer.pod_selector is None or peer.pod_selector.matches(pod.label_map))


def _port_matches(port: PolicyPort, flow: Flow, dst: Optional[Pod]) -> bool:
    if port.protocol != flow.protocol:
        return False
    if port.port is None:
        return True
    if isinstance(port.port, str):
        number = dst.port_number(port.port, port.protocol) if dst is not None else None
        return number is not None and number == flow.port
    return port.port <= flow.port <= (port.end_port if port.end_port is not None else port.port)
