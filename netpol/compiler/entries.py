"""The shape of compiled state: one Python value per BPF map entry.

Field meanings must match netpol/bpf/lib/maps.h; the byte layouts live in
netpol/datapath/maps.py (the ctypes mirrors).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

from ..model import EGRESS, INGRESS, IPNetwork

# Directions are from the pod's point of view (must be in sync with DIR_* in lib/common.h).
DIR_INGRESS, DIR_EGRESS = 0, 1
DIRECTIONS = {INGRESS: DIR_INGRESS, EGRESS: DIR_EGRESS}
ISOLATE_INGRESS, ISOLATE_EGRESS = 1, 2  # endpoint flags (lib/common.h)
ISOLATE_BIT = {DIR_INGRESS: ISOLATE_INGRESS, DIR_EGRESS: ISOLATE_EGRESS}

ANY_IDENTITY = 0     # policy wildcard: "every peer" (a rule without from/to)
WORLD_IDENTITY = 1   # an address no ipcache prefix covers
FIRST_IDENTITY = 256  # the allocator hands out identities from here

L4_BITS = 24  # the policy key ends with protocol (8 bits) and port (16 bits), matched by prefix


class PolicyKey(NamedTuple):
    """An allow entry: (subject, direction, peer identity) plus an L4 prefix.

    The subject stands for every local endpoint with the same namespace, labels
    and named ports (compiler/identities.py): they are allowed the same peers.

    ``l4_bits`` is how many leading bits of protocol+port must match: 0 = every
    protocol, 8 = one protocol and every port, 8+k = a port prefix of k bits.
    ``proto`` and ``port`` are already masked to that prefix."""

    subject: int
    direction: int
    identity: int
    proto: int = 0
    port: int = 0
    l4_bits: int = 0


class EndpointEntry(NamedTuple):
    ep_id: int
    flags: int
    subject: int = 0  # the first field of its allow entries' keys


class IpcacheEntry(NamedTuple):
    identity: int
    ep_id: int  # the local endpoint owning this address, 0 if none


class Attachment(NamedTuple):
    """A pod on this node: its datapath id and the ifindex of its host veth."""

    ep_id: int
    ifindex: int


@dataclasses.dataclass
class Desired:
    endpoints: dict[int, EndpointEntry] = dataclasses.field(default_factory=dict)  # by ifindex
    ipcache: dict[IPNetwork, IpcacheEntry] = dataclasses.field(default_factory=dict)
    policy: dict[PolicyKey, int] = dataclasses.field(default_factory=dict)  # -> cookie
    # Service frontends (netpol/services.py Frontend) whose egress check waits for DNAT.
    services: frozenset = dataclasses.field(default_factory=frozenset)
    # ep_id -> (ifindex, flags, subject): pw_ep_ids, derived from endpoints by the sync (not the compiler).
    ep_ids: dict[int, tuple[int, int, int]] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    # Keys whose entry may differ from the previous compile's (None: unknown, diff them all).
    policy_changes: Optional[set[PolicyKey]] = dataclasses.field(default=None, compare=False, repr=False)
    # Prefixes whose ipcache entry may differ from the previous compile's (None: diff them all).
    ipcache_changes: Optional[set[IPNetwork]] = dataclasses.field(default=None, compare=False, repr=False)

    def entries_of(self, subject: int) -> dict[PolicyKey, int]:
        return {k: c for k, c in self.policy.items() if k.subject == subject}
