"""The ipcache contents (prefix -> identity, owning endpoint), maintained by difference.

Every pod address and every ipBlock prefix (cidr and excepts) is an entry.  A
policy's prefixes are counted when the policy object appears and uncounted
when it goes, and pods are diffed against the previous call, so a small
change next to a 10,000-prefix policy touches a handful of entries instead of
re-hashing ten thousand networks.
"""
from __future__ import annotations

import collections
import ipaddress

from ..model import IPNetwork, NetworkPolicy, World
from .entries import Attachment, IpcacheEntry
from .identities import IdentityAllocator


def host_prefix(ip) -> IPNetwork:
    return ipaddress.ip_network(ip)  # /32 or /128


def policy_prefixes(policy: NetworkPolicy) -> tuple[IPNetwork, ...]:
    return tuple(net for rule in policy.ingress + policy.egress for peer in rule.peers if peer.ip_block is not None
                 for net in (peer.ip_block.cidr, *peer.ip_block.excepts))


class IpcacheBuilder:
    def __init__(self, identities: IdentityAllocator):
        self.identities = identities
        self.table: dict[IPNetwork, IpcacheEntry] = {}
        self.version = 0  # bumped whenever table changes
        self._policies: dict[str, tuple[NetworkPolicy, tuple[IPNetwork, ...]]] = {}
        self._refs: collections.Counter = collections.Counter()  # prefix -> policies naming it
        self._pods: dict[IPNetwork, int] = {}                     # pod address -> owning endpoint (0: remote)

    def update(self, world: World, attachments: dict[str, Attachment]) -> dict[IPNetwork, IpcacheEntry]:
        touched: set[IPNetwork] = set()
        current = {p.key: p for p in world.policies}
        for key in [k for k, (obj, _) in self._policies.items() if current.get(k) is not obj]:
            for net in self._policies.pop(key)[1]:
                self._refs[net] -= 1
                touched.add(net)
        for key, policy in current.items():
            if key not in self._policies:
                nets = policy_prefixes(policy)
                self._policies[key] = (policy, nets)
                self._refs.update(nets)
                touched.update(nets)
        pods = {}
        for pod in world.pods:
            att = attachments.get(pod.key)
            for ip in pod.ips:
                pods[host_prefix(ip)] = att.ep_id if att else 0
        if pods != self._pods:
            touched.update(n for n in pods.keys() | self._pods.keys() if pods.get(n) != self._pods.get(n))
            self._pods = pods
        changed = False
        for net in touched:
            if self._refs.get(net, 0) <= 0:
                self._refs.pop(net, None)
            wanted = net in self._refs or net in pods
            entry = IpcacheEntry(self.identities.get(net), pods.get(net, 0)) if wanted else None
            if entry != self.table.get(net):
                changed = True
                if entry is None:
                    del self.table[net]
                    self.identities.release(net)
                else:
                    self.table[net] = entry
        if changed:
            self.table = dict(self.table)  # a new object: callers may hold the old one
            self.version += 1
        return self.table
