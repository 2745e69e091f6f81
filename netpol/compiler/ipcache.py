"""What goes into the ipcache trie: every pod address (its class identity) and every
ipBlock prefix, cidr and excepts (its CIDR identity); compile.py keeps it by difference."""
from __future__ import annotations

import ipaddress
from typing import Optional, cast

from ..model import HostPrefix, IPNetwork, NetworkPolicy, compact_net  # noqa: F401 (HostPrefix: re-exported)


def host_prefix(ip) -> IPNetwork:
    """The /32 or /128 of a pod address (text or ipaddress address)."""
    addr = ipaddress.ip_address(ip)
    return host_net(addr.version, int(addr))


def host_net(version: int, value: int, prefixlen: Optional[int] = None) -> IPNetwork:
    """The prefix (a /32 or /128 by default) as a HostPrefix, typed as the ipaddress network it
    stands in for (it has every attribute the compiler and the datapath read of one)."""
    return cast(IPNetwork, HostPrefix(version, value, prefixlen))


def policy_prefixes(policy: NetworkPolicy) -> tuple[IPNetwork, ...]:
    return tuple(net for rule in policy.ingress + policy.egress for peer in rule.peers if peer.ip_block is not None
                 for net in (peer.ip_block.cidr, *peer.ip_block.excepts))
