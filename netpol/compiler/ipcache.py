"""What goes into the ipcache trie: every pod address (its class identity) and every
ipBlock prefix, cidr and excepts (its CIDR identity); compile.py keeps it by difference."""
from __future__ import annotations

import ipaddress
from typing import cast

from ..model import IPNetwork, NetworkPolicy


_ALL_ONES = {4: (1 << 32) - 1, 6: (1 << 128) - 1}


class HostPrefix:
    """A pod address as a /32 or /128 prefix: what ipaddress.ip_network(ip) gives, in ~60 bytes
    instead of ~500 (an ipaddress network carries a dict, an address object and, for a host
    prefix, a closure).  Equal to and hashing like the ipaddress network of the same prefix, so
    either finds the other in a dict (the datapath reads its maps back as ipaddress networks)."""

    __slots__ = ("version", "value")

    def __init__(self, version: int, value: int):
        self.version, self.value = version, value

    @property
    def prefixlen(self) -> int:
        return 32 if self.version == 4 else 128

    max_prefixlen = prefixlen
    _version = property(lambda self: self.version)

    @property
    def network_address(self):
        return ipaddress.IPv4Address(self.value) if self.version == 4 else ipaddress.IPv6Address(self.value)

    broadcast_address = network_address

    @property
    def netmask(self):
        return ipaddress.IPv4Address(_ALL_ONES[4]) if self.version == 4 else ipaddress.IPv6Address(_ALL_ONES[6])

    def __hash__(self) -> int:
        return hash(self.value ^ _ALL_ONES[self.version])  # as ipaddress: address ^ netmask

    def __eq__(self, other) -> bool:
        if type(other) is HostPrefix:
            return self.value == other.value and self.version == other.version
        try:
            return (other.version == self.version and other.prefixlen == self.prefixlen
                    and int(other.network_address) == self.value)
        except AttributeError:
            return NotImplemented

    def _sort_key(self, other) -> tuple:
        try:
            return ((self.version, self.value, self.prefixlen),
                    (other.version, int(other.network_address), other.prefixlen))
        except AttributeError:
            raise TypeError(f"'<' not supported between HostPrefix and {type(other).__name__}") from None

    def __lt__(self, other) -> bool:
        a, b = self._sort_key(other)
        return a < b

    def __gt__(self, other) -> bool:
        a, b = self._sort_key(other)
        return a > b

    def __le__(self, other) -> bool:
        return not self > other

    def __ge__(self, other) -> bool:
        return not self < other

    def __str__(self) -> str:
        return f"{self.network_address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"IPv{self.version}Network('{self}')"

    @property
    def with_prefixlen(self) -> str:
        return str(self)

    def __contains__(self, ip) -> bool:
        return getattr(ip, "version", None) == self.version and int(ip) == self.value


def host_prefix(ip) -> IPNetwork:
    """The /32 or /128 of a pod address (text or ipaddress address)."""
    addr = ipaddress.ip_address(ip)
    return host_net(addr.version, int(addr))


def host_net(version: int, value: int) -> IPNetwork:
    # typed as the ipaddress network it stands in for (it has every attribute the compiler
    # and the datapath read of one)
    return cast(IPNetwork, HostPrefix(version, value))


def policy_prefixes(policy: NetworkPolicy) -> tuple[IPNetwork, ...]:
    return tuple(net for rule in policy.ingress + policy.egress for peer in rule.peers if peer.ip_block is not None
                 for net in (peer.ip_block.cidr, *peer.ip_block.excepts))
