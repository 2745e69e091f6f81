"""What goes into the ipcache trie: every pod address (its class identity) and every
ipBlock prefix, cidr and excepts (its CIDR identity); compile.py keeps it by difference."""
from __future__ import annotations

import ipaddress

from ..model import IPNetwork, NetworkPolicy


def host_prefix(ip) -> IPNetwork:
    return ipaddress.ip_network(ip)  # /32 or /128


def policy_prefixes(policy: NetworkPolicy) -> tuple[IPNetwork, ...]:
    return tuple(net for rule in policy.ingress + policy.egress for peer in rule.peers if peer.ip_block is not None
                 for net in (peer.ip_block.cidr, *peer.ip_block.excepts))
