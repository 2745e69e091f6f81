"""The NetworkPolicy model: what the parser produces and the evaluator and compiler consume.

Immutable dataclasses mirroring networking.k8s.io/v1 after defaulting (protocol
TCP, policyTypes filled in), so neither consumer re-implements API defaults.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Mapping, Optional, Union, cast

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def subnet_of(inner: IPNetwork, outer: IPNetwork) -> bool:
    """inner lies inside outer; False across IP versions (ipaddress would raise).  By prefix
    arithmetic: ipaddress's subnet_of caches broadcast_address in every network it is asked
    about (~200 bytes each, for as long as the network lives)."""
    if inner.version != outer.version or inner.prefixlen < outer.prefixlen:
        return False
    shift = outer.max_prefixlen - outer.prefixlen
    return prefix_value(inner) >> shift == prefix_value(outer) >> shift


def prefix_value(net) -> int:
    """The network address as an int (a HostPrefix holds it as one)."""
    return net.value if type(net) is HostPrefix else int(net.network_address)
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


_ALL_ONES = {4: (1 << 32) - 1, 6: (1 << 128) - 1}


class HostPrefix:
    """A prefix held compactly: a pod address as a /32 or /128, or an ipBlock cidr or except.
    What ipaddress.ip_network gives, in ~64 bytes instead of ~500 (an ipaddress network carries
    a dict, an address object and, for a host prefix, a closure).  Equal to and hashing like the
    ipaddress network of the same prefix, so either finds the other in a dict (the datapath
    reads its maps back as ipaddress networks)."""

    __slots__ = ("version", "value", "prefixlen")

    def __init__(self, version: int, value: int, prefixlen: Optional[int] = None):
        self.version, self.value = version, value
        self.prefixlen = (32 if version == 4 else 128) if prefixlen is None else prefixlen

    @property
    def max_prefixlen(self) -> int:
        return 32 if self.version == 4 else 128

    _version = property(lambda self: self.version)

    @property
    def network_address(self):
        return ipaddress.IPv4Address(self.value) if self.version == 4 else ipaddress.IPv6Address(self.value)

    @property
    def broadcast_address(self):
        last = self.value | ((1 << (self.max_prefixlen - self.prefixlen)) - 1)
        return ipaddress.IPv4Address(last) if self.version == 4 else ipaddress.IPv6Address(last)

    def _mask(self) -> int:
        top = self.max_prefixlen
        return _ALL_ONES[self.version] ^ ((1 << (top - self.prefixlen)) - 1)

    @property
    def netmask(self):
        return ipaddress.IPv4Address(self._mask()) if self.version == 4 else ipaddress.IPv6Address(self._mask())

    def __hash__(self) -> int:
        return hash(self.value ^ self._mask())  # as ipaddress: address ^ netmask

    def __eq__(self, other) -> bool:
        if type(other) is HostPrefix:
            return self.value == other.value and self.version == other.version and self.prefixlen == other.prefixlen
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
        if getattr(ip, "version", None) != self.version or isinstance(ip, (ipaddress._BaseNetwork, HostPrefix)):
            return False
        shift = self.max_prefixlen - self.prefixlen
        return int(ip) >> shift == self.value >> shift


def compact_net(net: IPNetwork) -> IPNetwork:
    """``net`` (an ipaddress network or a HostPrefix) as a HostPrefix."""
    if type(net) is HostPrefix:
        return net
    return cast(IPNetwork, HostPrefix(net.version, int(net.network_address), net.prefixlen))



INGRESS, EGRESS = "Ingress", "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")
PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "ICMPv6": 58}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    """matchLabels AND matchExpressions; the empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.match_labels)
                and all(r.matches(labels) for r in self.match_expressions))


@dataclasses.dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        return (ip.version == self.cidr.version and ip in self.cidr
                and not any(ip in e for e in self.excepts))


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """One from/to item: ipBlock alone, or pod and/or namespace selectors (ANDed)."""

    pod_selector: Optional[LabelSelector] = None
    namespace_selector: Optional[LabelSelector] = None
    ip_block: Optional[IPBlock] = None


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyPort:
    protocol: str = "TCP"
    port: Union[int, str, None] = None  # None: every port of the protocol; str: a named port
    end_port: Optional[int] = None


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    peers: tuple[Peer, ...] = ()       # empty: every peer
    ports: tuple[PolicyPort, ...] = ()  # empty: every port and protocol


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[str]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    # "namespace/name", made once: the compiler holds it in every rule reference
    key: str = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.namespace}/{self.name}")

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == INGRESS else self.egress


@dataclasses.dataclass(frozen=True, slots=True)
class NamedPort:
    name: str
    protocol: str
    port: int


@dataclasses.dataclass(frozen=True, slots=True)
class Pod:
    """A pod as the policy engine sees it; ``interface`` is set for pods on this node."""

    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    ips: tuple[str, ...] = ()
    ports: tuple[NamedPort, ...] = ()
    interface: str = ""
    container_id: str = ""
    # "namespace/name", made once: the agent's and the compiler's tables share it
    key: str = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.namespace}/{self.name}")

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def addresses(self) -> list[IPAddress]:
        return [ipaddress.ip_address(ip) for ip in self.ips]

    def port_number(self, name: str, protocol: str) -> Optional[int]:
        """Resolve a named container port (name and protocol must both match)."""
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


def namespace_labels(name: str, labels: Mapping[str, str] | None) -> dict[str, str]:
    """A namespace's labels as the API server stores them (with the immutable name label)."""
    return {**(labels or {}), NAMESPACE_NAME_LABEL: name}


@dataclasses.dataclass
class World:
    """Everything policy decisions depend on: pods, namespace labels, policies."""

    pods: list[Pod] = dataclasses.field(default_factory=list)
    namespaces: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    policies: list[NetworkPolicy] = dataclasses.field(default_factory=list)

    def ns_labels(self, name: str) -> dict[str, str]:
        return namespace_labels(name, self.namespaces.get(name))

    def pod_by_ip(self) -> dict[IPAddress, Pod]:
        return {ip: pod for pod in self.pods for ip in pod.addresses()}

    def selecting(self, pod: Pod, direction: str) -> list[NetworkPolicy]:
        """Policies that isolate ``pod`` for ``direction``."""
        labels = pod.label_map
        return [p for p in self.policies if p.namespace == pod.namespace
                and direction in p.policy_types and p.pod_selector.matches(labels)]

    def peer_pods(self, policy: NetworkPolicy, peer: Peer) -> list[Pod]:
        """Pods a selector peer names (an ipBlock peer names addresses, not pods)."""
        if peer.ip_block is not None:
            return []
        out = []
        for pod in self.pods:
            if peer.namespace_selector is None:
                if pod.namespace != policy.namespace:
                    continue
            elif not peer.namespace_selector.matches(self.ns_labels(pod.namespace)):
                continue
            if peer.pod_selector is None or peer.pod_selector.matches(pod.label_map):
                out.append(pod)
        return out
