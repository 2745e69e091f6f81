"""Identities: the number the datapath finds for a peer address in the ipcache trie.

Two kinds share one number space:

- a *CIDR identity* per prefix some ipBlock names (cidr or except);
- a *pod identity* per class of pod addresses that every policy treats alike:
  (namespace, labels, named ports, region).  The region is the longest policy
  prefix containing the address (None if none does).

Why the region: ipBlock membership is a function of the longest policy prefix
containing an address (for prefix P: P lies inside the cidr and inside none of
the excepts), so pods in one class are matched by exactly the same selectors,
ipBlocks and (egress) named ports, and one ipcache lookup per address stays
exact.  In a cluster whose ipBlocks do not split the pod CIDR, a class is just
(namespace, labels, named ports): every pod with the same labels shares one
identity, and a new such pod costs one ipcache entry.

The policy map is keyed by the endpoint's *subject*: (namespace, named ports, the
policies isolating it per direction).  A pod's allowed peers are a function of
those alone, so local pods selected by the same policies share their allow
entries whatever their other labels (a rollout's new pod-template-hash, say).

Identities are never reused while an agent runs (a stale entry can then never
name a new class); after a restart the pinned maps' numbers are taken as hints,
so an unchanged state compiles to unchanged maps.
"""
from __future__ import annotations

import bisect
from typing import Hashable, Iterable, NamedTuple, Optional, cast

from ..model import HostPrefix, IPNetwork, NamedPort, Pod, compact_net, prefix_value
from .entries import FIRST_IDENTITY


class PodKey(NamedTuple):
    """What policies read of a pod, its address aside."""

    namespace: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[NamedPort, ...]


class ClassKey(NamedTuple):
    pod: PodKey
    region: Optional[IPNetwork]


class SubjectKey(NamedTuple):
    """A local endpoint's allow entries are a function of the policies isolating it (per direction)
    and, for ingress named ports, of its own named ports: endpoints alike in these share them."""

    namespace: str
    ports: tuple[NamedPort, ...]
    policies: tuple[frozenset[str], frozenset[str]]  # by direction: DIR_INGRESS, DIR_EGRESS


def pod_key_of(pod: Pod) -> PodKey:
    return PodKey(pod.namespace, tuple(sorted(pod.labels)),
                  tuple(sorted(set(pod.ports), key=lambda p: (p.name, p.protocol, p.port))))


class IdentityAllocator:
    """Numbers for hashable keys (prefixes, ClassKeys, SubjectKeys), never reused."""

    def __init__(self, seed: Optional[dict[Hashable, int]] = None, floor: int = FIRST_IDENTITY):
        self._ids: dict[Hashable, int] = dict(seed or {})
        self._taken = bytearray()  # a bit per number handed out (a set of ints: ~50 bytes each)
        for ident in self._ids.values():
            self._take(ident)
        self._floor = floor
        self._next = max([floor, *(i + 1 for i in self._ids.values())])

    def get(self, key: Hashable, hint: Optional[int] = None) -> int:
        ident = self._ids.get(key)
        if ident is None:
            if hint is not None and self._floor <= hint < self._next and not self._is_taken(hint):
                ident = hint  # a number the pinned maps used before a restart
            else:
                ident = self._next
                self._next += 1
            self._ids[key] = ident
            self._take(ident)
        return ident

    def _take(self, ident: int) -> None:
        byte = ident >> 3
        if byte >= len(self._taken):
            self._taken.extend(bytes(byte + 1 - len(self._taken) + len(self._taken) // 2))
        self._taken[byte] |= 1 << (ident & 7)

    def _is_taken(self, ident: int) -> bool:
        byte = ident >> 3
        return byte < len(self._taken) and bool(self._taken[byte] & (1 << (ident & 7)))

    def release(self, key: Hashable) -> None:
        self._ids.pop(key, None)  # the number stays taken: never reused

    def retain(self, keys: Iterable[Hashable]) -> None:
        keep = set(keys)
        self._ids = {k: i for k, i in self._ids.items() if k in keep}

    def reserve_below(self, limit: int) -> None:
        """Hand out new numbers from ``limit`` on; below it only as hints."""
        self._next = max(self._next, limit)

    def snapshot(self) -> dict[Hashable, int]:
        return dict(self._ids)


class PrefixSet:
    """The policy prefixes: longest match for an address, and 'which lie inside this cidr'.
    Held as one sorted list of ints per IP version (network << 8 | length: the order of
    (network, length)), and the lengths in use; the prefixes are made again when asked for."""

    def __init__(self) -> None:
        self._lens: dict[int, dict[int, int]] = {4: {}, 6: {}}  # version -> plen -> how many
        self._sorted: dict[int, list[int]] = {4: [], 6: []}

    def add(self, net: IPNetwork) -> None:
        lens = self._lens[net.version]
        lens[net.prefixlen] = lens.get(net.prefixlen, 0) + 1
        bisect.insort(self._sorted[net.version], prefix_value(net) << 8 | net.prefixlen)

    def remove(self, net: IPNetwork) -> None:
        lens = self._lens[net.version]
        lens[net.prefixlen] -= 1
        if not lens[net.prefixlen]:
            del lens[net.prefixlen]
        rows = self._sorted[net.version]
        del rows[bisect.bisect_left(rows, prefix_value(net) << 8 | net.prefixlen)]

    def longest(self, net: IPNetwork) -> Optional[IPNetwork]:
        """The longest prefix containing ``net`` (itself included)."""
        value, top, rows = prefix_value(net), net.max_prefixlen, self._sorted[net.version]
        for plen in sorted((p for p in self._lens[net.version] if p <= net.prefixlen), reverse=True):
            base = value >> (top - plen) << (top - plen)
            row = base << 8 | plen
            i = bisect.bisect_left(rows, row)
            if i < len(rows) and rows[i] == row:
                return _network(net.version, base, plen)
        return None

    def inside(self, cidr: IPNetwork) -> list[IPNetwork]:
        """Prefixes lying inside ``cidr`` (itself included)."""
        rows = self._sorted[cidr.version]
        lo = bisect.bisect_left(rows, prefix_value(cidr) << 8)
        hi = bisect.bisect_right(rows, last_address(cidr) << 8 | 255)
        return [_network(cidr.version, row >> 8, row & 255) for row in rows[lo:hi] if row & 255 >= cidr.prefixlen]


def last_address(net: IPNetwork) -> int:
    """int(net.broadcast_address), without ipaddress caching it in the network object."""
    return int(net.network_address) | ((1 << (net.max_prefixlen - net.prefixlen)) - 1)


def net_key(net: IPNetwork) -> IPNetwork:
    """A dict key for a prefix, held compactly (an ipBlock's own cidr object if it is one)."""
    return compact_net(net)


def _network(version: int, value: int, plen: int) -> IPNetwork:
    return cast(IPNetwork, HostPrefix(version, value, plen))
