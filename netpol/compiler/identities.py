"""Identities: the number the datapath finds for a peer address in the ipcache trie.

Every pod address (/32, /128) and every prefix named by an ipBlock (cidr and
except) gets its own identity.  An address resolves, by longest prefix, to
exactly one of them, and ipBlock membership is a function of that prefix alone
(for prefix P: P is inside the cidr and inside none of the excepts), so each
ipBlock compiles to a set of identities.  Per-address pod identities make
ipBlocks over pod IPs and per-pod named ports exact.

Identities are never reused while an agent runs (a stale entry can then never
name a new prefix); after a restart numbering continues above every id the
pinned maps still mention.
"""
from __future__ import annotations

import bisect
from typing import Iterable, Optional

from ..model import IPBlock, IPNetwork, subnet_of
from .entries import FIRST_IDENTITY


class IdentityAllocator:
    def __init__(self, seed: Optional[dict[IPNetwork, int]] = None, floor: int = FIRST_IDENTITY):
        self._ids: dict[IPNetwork, int] = dict(seed or {})
        self._next = max([floor, *(i + 1 for i in self._ids.values())])

    def get(self, prefix: IPNetwork) -> int:
        ident = self._ids.get(prefix)
        if ident is None:
            ident = self._ids[prefix] = self._next
            self._next += 1
        return ident

    def release(self, prefix: IPNetwork) -> None:
        self._ids.pop(prefix, None)

    def retain(self, prefixes: Iterable[IPNetwork]) -> None:
        keep = set(prefixes)
        self._ids = {p: i for p, i in self._ids.items() if p in keep}

    def snapshot(self) -> dict[IPNetwork, int]:
        return dict(self._ids)


class PrefixIndex:
    """Prefixes sorted by start address, for 'which prefixes lie inside this cidr'."""

    def __init__(self, identities: dict[IPNetwork, int]):
        self._rows: dict[int, list[tuple[int, int, IPNetwork, int]]] = {4: [], 6: []}
        for net, ident in identities.items():
            self._rows[net.version].append((int(net.network_address), net.prefixlen, net, ident))
        for rows in self._rows.values():
            rows.sort()
        self._starts = {v: [r[0] for r in rows] for v, rows in self._rows.items()}

    def inside(self, block: IPBlock) -> list[tuple[IPNetwork, int]]:
        """(prefix, identity) for every indexed prefix the ipBlock matches."""
        cidr = block.cidr
        rows, starts = self._rows[cidr.version], self._starts[cidr.version]
        lo = bisect.bisect_left(starts, int(cidr.network_address))
        hi = bisect.bisect_right(starts, int(cidr.broadcast_address))
        return [(net, ident) for _, plen, net, ident in rows[lo:hi]
                if plen >= cidr.prefixlen and not any(subnet_of(net, e) for e in block.excepts)]
