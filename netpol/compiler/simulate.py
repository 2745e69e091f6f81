"""The datapath's decision, replayed in Python over compiled entries.

A line-by-line model of the programs (from_pod.c, to_pod.c and
lib/policy.h, minus conntrack): the property tests run it against the
reference evaluator, and the root tests check the real programs agree with it.
"""
from __future__ import annotations

from typing import Generic, Optional, TypeVar

from ..evaluator import Flow
from ..model import PROTO_NUMBERS, IPAddress, IPNetwork
from .entries import (ANY_IDENTITY, DIR_EGRESS, ISOLATE_BIT, L4_BITS, WORLD_IDENTITY, Desired, IpcacheEntry,
                      PolicyKey)

T = TypeVar("T")
PORTED = (6, 17, 132)  # TCP, UDP, SCTP


class Trie(Generic[T]):
    """Longest-prefix match over a {network: value} dict (what BPF_MAP_TYPE_LPM_TRIE does)."""

    def __init__(self, table: dict[IPNetwork, T]):
        self._rows: dict[tuple[int, int, int], T] = {}
        lens: dict[int, set[int]] = {4: set(), 6: set()}
        for net, value in table.items():
            shift = net.max_prefixlen - net.prefixlen
            self._rows[(net.version, net.prefixlen, int(net.network_address) >> shift)] = value
            lens[net.version].add(net.prefixlen)
        self._lens = {v: sorted(ls, reverse=True) for v, ls in lens.items()}

    def lookup(self, ip: IPAddress) -> Optional[T]:
        value = int(ip)
        for plen in self._lens[ip.version]:
            hit = self._rows.get((ip.version, plen, value >> (ip.max_prefixlen - plen)))
            if hit is not None:
                return hit
        return None


class Simulator:
    def __init__(self, desired: Desired):
        self.desired = desired
        self.ipcache: Trie[IpcacheEntry] = Trie(desired.ipcache)

    def policy_allows(self, subject: int, direction: int, identity: int, proto: int, port: int) -> bool:
        value = proto << 16 | port
        for ident in (identity, ANY_IDENTITY):
            for bits in range(L4_BITS, -1, -1):
                masked = value >> (L4_BITS - bits) << (L4_BITS - bits)
                if PolicyKey(subject, direction, ident, masked >> 16, masked & 0xFFFF, bits) in self.desired.policy:
                    return True
        return False

    def verdict(self, ifindex: int, direction: int, flow: Flow) -> bool:
        """Would the program on ``ifindex`` pass the first packet of ``flow``?"""
        ep = self.desired.endpoints.get(ifindex)
        if ep is None:
            return False  # DROP_UNKNOWN_ENDPOINT
        if direction == DIR_EGRESS:
            src = self.ipcache.lookup(flow.src_ip)
            if src is None or src.ep_id != ep.ep_id:
                return False  # DROP_SPOOFED_SOURCE
        elif flow.from_node:
            return True  # FWD_HOST
        peer = self.ipcache.lookup(flow.dst_ip if direction == DIR_EGRESS else flow.src_ip)
        if peer is not None and peer.ep_id == ep.ep_id:
            return True  # FWD_SELF
        if not ep.flags & ISOLATE_BIT[direction]:
            return True  # FWD_UNISOLATED
        proto = PROTO_NUMBERS.get(flow.protocol, 0)
        port = flow.port if proto in PORTED else 0
        identity = peer.identity if peer else WORLD_IDENTITY
        return self.policy_allows(ep.subject, direction, identity, proto, port)


def verdict(desired: Desired, ifindex: int, direction: int, flow: Flow) -> bool:
    return Simulator(desired).verdict(ifindex, direction, flow)
