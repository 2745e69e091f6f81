"""compile_world: pods, namespaces and policies -> the entries of every datapath map.

For each pod on this node and each direction some policy isolates, every rule
of every selecting policy becomes allow entries keyed (endpoint, direction,
peer identity, L4 prefix).  A packet then costs two trie lookups whatever the
number of rules: (peer identity, proto, port) and (ANY, proto, port).
"""
from __future__ import annotations

from typing import Iterable, Optional

from ..model import PROTO_NUMBERS, IPNetwork, NetworkPolicy, Peer, Pod, PolicyPort, Rule, World
from .entries import ANY_IDENTITY, DIRECTIONS, ISOLATE_BIT, Attachment, Desired, EndpointEntry, PolicyKey
from .identities import IdentityAllocator, PrefixIndex
from .ipcache import IpcacheBuilder, host_prefix
from .merge import EntrySet
from .ports import range_prefixes

L4Prefix = tuple[int, int, int]  # (proto, port, l4_bits)
ALL_L4: list[L4Prefix] = [(0, 0, 0)]


def compile_world(world: World, attachments: dict[str, Attachment], cookies: dict[str, int],
                  identities: IdentityAllocator) -> Desired:
    """``attachments``: pod key -> (ep_id, ifindex) for pods on this node;
    ``cookies``: policy key -> counter index, carried in the entries it produces."""
    return Compiler(identities).compile(world, attachments, cookies)


class Compiler:
    """compile_world with a memory, for the agent: the entries one policy yields for one
    pod are recomputed only if that policy or pod changed, or the peer universe did
    (pods, namespace labels, ipcache prefixes), so a small change next to a
    10,000-rule policy costs milliseconds, not a full recompile."""

    def __init__(self, identities: IdentityAllocator):
        self.identities = identities
        self._ipcache = IpcacheBuilder(identities)
        self._universe: Optional[tuple] = None
        self._memo: dict[tuple[str, str, int, int], tuple[NetworkPolicy, Pod, list[PolicyKey]]] = {}
        self._entries = EntrySet()
        self._first = True

    def compile(self, world: World, attachments: dict[str, Attachment], cookies: dict[str, int]) -> Desired:
        desired = Desired(ipcache=self._ipcache.update(world, attachments))
        universe = ({p.key: p for p in world.pods}, dict(world.namespaces), self._ipcache.version)
        if universe != self._universe:  # peers may resolve differently: start afresh
            self._memo.clear()
            self._universe = universe
        ctx: Optional[_Context] = None
        used = set()
        for pod in world.pods:
            att = attachments.get(pod.key)
            if att is None:
                continue
            flags = 0
            for name, direction in DIRECTIONS.items():
                policies = world.selecting(pod, name)
                if policies:
                    flags |= ISOLATE_BIT[direction]
                for policy in policies:
                    memo_key = (policy.key, pod.key, direction, att.ep_id)
                    used.add(memo_key)
                    hit = self._memo.get(memo_key)
                    if hit is None or hit[0] is not policy or hit[1] != pod:
                        ctx = ctx or _Context(world, {n: e.identity for n, e in desired.ipcache.items()})
                        hit = self._memo[memo_key] = (policy, pod, [
                            k for rule in policy.rules(name)
                            for k in ctx.rule_keys(pod, att.ep_id, direction, policy, rule)])
                    self._entries.set(memo_key, hit[2], cookies.get(policy.key, 0))
            desired.endpoints[att.ifindex] = EndpointEntry(att.ep_id, flags)
        for stale in set(self._memo) - used:
            del self._memo[stale]
        self._entries.retain(used)
        desired.policy = self._entries.entries  # the compiler's own dict: read it, never change it
        changes = self._entries.take_changes()
        desired.policy_changes = None if self._first else changes  # None: compare everything
        self._first = False
        return desired


class _Context:
    """Peer resolution for one compile run (memoised per policy and peer)."""

    def __init__(self, world: World, identity_of: dict[IPNetwork, int]):
        self.world = world
        self.identity_of = identity_of
        self.index = PrefixIndex(identity_of)
        self.pod_of = {host_prefix(ip): pod for pod in world.pods for ip in pod.ips}
        self._memo: dict[tuple[str, Peer], list[tuple[int, Optional[Pod]]]] = {}

    def rule_keys(self, pod: Pod, ep_id: int, direction: int, policy: NetworkPolicy,
                  rule: Rule) -> Iterable[PolicyKey]:
        for port in rule.ports or (None,):
            if port is not None and isinstance(port.port, str) and direction == DIRECTIONS["Egress"]:
                # Egress named ports resolve on each destination pod separately.
                for identity, dst in self.targets(policy, rule.peers):
                    number = dst.port_number(port.port, port.protocol) if dst else None
                    if number is not None:
                        yield from _keys(ep_id, direction, [identity], _l4(port, number))
                continue
            number = pod.port_number(port.port, port.protocol) if port and isinstance(port.port, str) else None
            l4 = _l4(port, number)
            if l4:
                peers = [ANY_IDENTITY] if not rule.peers else [i for i, _ in self.targets(policy, rule.peers)]
                yield from _keys(ep_id, direction, peers, l4)

    def targets(self, policy: NetworkPolicy, peers: tuple[Peer, ...]) -> list[tuple[int, Optional[Pod]]]:
        """(identity, pod or None) for everything the peers match; all pod addresses if no peers."""
        if not peers:
            return [(self.identity_of[net], pod) for net, pod in self.pod_of.items()]
        out: dict[int, Optional[Pod]] = {}
        for peer in peers:
            out.update(self._peer(policy, peer))
        return list(out.items())

    def _peer(self, policy: NetworkPolicy, peer: Peer) -> list[tuple[int, Optional[Pod]]]:
        key = (policy.namespace, peer)
        if key not in self._memo:
            if peer.ip_block is not None:
                found = [(i, self.pod_of.get(net)) for net, i in self.index.inside(peer.ip_block)]
            else:
                found = [(self.identity_of[host_prefix(ip)], pod)
                         for pod in self.world.peer_pods(policy, peer) for ip in pod.ips]
            self._memo[key] = found
        return self._memo[key]


def _l4(port: Optional[PolicyPort], named_number: Optional[int]) -> list[L4Prefix]:
    if port is None:
        return ALL_L4
    proto = PROTO_NUMBERS[port.protocol]
    if port.port is None:
        return [(proto, 0, 8)]
    if isinstance(port.port, str):
        if named_number is None:
            return []  # the pod has no such named port: the rule matches nothing here
        lo = hi = named_number
    else:
        lo, hi = port.port, port.end_port if port.end_port is not None else port.port
    return [(proto, value, 8 + bits) for value, bits in range_prefixes(lo, hi)]


def _keys(ep_id: int, direction: int, identities: Iterable[int], l4: list[L4Prefix]) -> Iterable[PolicyKey]:
    for identity in identities:
        for proto, port, bits in l4:
            yield PolicyKey(ep_id, direction, identity, proto, port, bits)
