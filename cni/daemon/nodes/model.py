"""Nodes as podwire reads them, and what each routing mode wants in the kernel.

Pure functions of the Node objects: the watcher feeds them, the kernel modules
apply what they return, and the unit tests check them without a kernel.

Choices, and why:

- **MAC of a node's overlay device, derived from its underlay address.**  Every node
  computes every peer's MAC from the Node object alone, so no annotation has to be
  written back (no write RBAC, no race between a node's first start and its peers).
  IPv4: ``02:77:`` + the four address bytes (readable in ``bridge fdb``, no collision);
  IPv6: ``02:76:`` + 4 bytes of SHA-256 of the address (32 bits: a collision becomes
  likely only near 2^16 IPv6-underlay nodes).
- **One vxlan device for both pod families.**  Inner packets of either family ride the
  same tunnel; the outer (underlay) family is this node's: IPv4 when it has an IPv4
  InternalIP, else IPv6.  A second device would double FDB and neighbour entries for
  nothing; the kernel's vxlan socket is per underlay family anyway.
- **The overlay next hop of a remote node is its pod CIDR's network address**
  (10.244.2.0 for 10.244.2.0/24, fd00:2:: for fd00:2::/64), as flannel does: unique per
  node, computable by everyone, and never a pod's address.
"""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from typing import Iterable, Optional

MODES = ("none", "host-gw", "vxlan")
VXLAN_OVERHEAD = {4: 50, 6: 70}  # outer IP + UDP (8) + VXLAN (8) + inner Ethernet (14)
DEFAULT_VNI = 1
# Linux's and flannel's default, not IANA's 4789: no clash with another overlay (OVS, NSX)
# that the same hosts may run on 4789.
DEFAULT_PORT = 8472
DEVICE = "podwire.vxlan"


class RoutingError(Exception):
    """Routing cannot be set up as configured (the one error type of this package)."""


@dataclasses.dataclass(frozen=True)
class Node:
    name: str
    pod_cidrs: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()  # InternalIPs, in the Node's order

    def address(self, family: int) -> Optional[str]:
        return next((a for a in self.addresses if ipaddress.ip_address(a).version == family), None)

    def cidr(self, family: int) -> Optional[str]:
        return next((c for c in self.pod_cidrs if ipaddress.ip_network(c).version == family), None)


def node_from_object(obj: dict) -> Node:
    """From a Node as the API serves it (a dict: the client's sanitised form).  Invalid
    CIDRs or addresses are dropped, not fatal: one bad Node must not stop the others."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    raw = list(spec.get("podCIDRs") or []) or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    cidrs = tuple(c for c in (_network(r) for r in raw) if c)
    internal = (a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP")
    addresses = tuple(a for a in (_address(r) for r in internal) if a)
    return Node(meta.get("name") or "", cidrs, addresses)


def _network(text: str) -> Optional[str]:
    try:
        return str(ipaddress.ip_network(text))
    except (TypeError, ValueError):
        return None


def _address(text) -> Optional[str]:
    try:
        return str(ipaddress.ip_address(text))
    except (TypeError, ValueError):
        return None


def overlay_mac(address: str) -> str:
    ip = ipaddress.ip_address(address)
    tail = ip.packed if ip.version == 4 else hashlib.sha256(ip.packed).digest()[:4]
    return ":".join(f"{b:02x}" for b in bytes([0x02, 0x77 if ip.version == 4 else 0x76]) + tail)


def overlay_gateway(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr).network_address)


def overlay_mtu(underlay_mtu: int, underlay_family: int) -> int:
    return underlay_mtu - VXLAN_OVERHEAD[underlay_family]


@dataclasses.dataclass(frozen=True)
class Route:
    dst: str
    gateway: str
    onlink: bool = False  # vxlan: the gateway is reached through the overlay device


@dataclasses.dataclass(frozen=True)
class Peer:
    """A remote node on the overlay: its FDB entry (mac -> underlay) and neighbours."""
    mac: str
    underlay: str
    gateways: tuple[str, ...]


@dataclasses.dataclass
class Desired:
    mode: str
    routes: set[Route] = dataclasses.field(default_factory=set)
    peers: set[Peer] = dataclasses.field(default_factory=set)
    local_underlay: str = ""  # vxlan: the device's local address; its MAC derives from it
    cluster_cidrs: tuple[str, ...] = ()  # every node's pod CIDRs (masquerade's "inside")
    local_cidrs: tuple[str, ...] = ()
    problems: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)  # remote nodes we cannot reach
    remotes: set[str] = dataclasses.field(default_factory=set)    # remote nodes routed to

    @property
    def remote_nodes(self) -> int:
        return len(self.remotes)


def desired(mode: str, local_name: str, nodes: Iterable[Node]) -> Desired:
    """What ``mode`` wants for this node, given every Node of the cluster."""
    if mode not in MODES:
        raise RoutingError(f"unknown routing mode {mode!r} (one of {', '.join(MODES)})")
    nodes = sorted(nodes, key=lambda n: n.name)
    local = next((n for n in nodes if n.name == local_name), None)
    out = Desired(mode, cluster_cidrs=_collapse(c for n in nodes for c in n.pod_cidrs))
    if mode == "none":
        return out
    if local is None:
        out.problems.append(f"routing: Node {local_name!r} not seen yet")
        return out
    out.local_cidrs = local.pod_cidrs
    if not local.addresses:
        out.problems.append(f"routing: Node {local_name!r} has no InternalIP")
        return out
    remotes = [n for n in nodes if n.name != local_name]
    if mode == "host-gw":
        for node in remotes:
            _host_gw(out, node)
    else:
        family = 4 if local.address(4) else 6
        out.local_underlay = local.address(family) or ""
        for node in remotes:
            _vxlan(out, node, family)
    return out


def _host_gw(out: Desired, node: Node) -> None:
    for cidr in node.pod_cidrs:
        via = node.address(ipaddress.ip_network(cidr).version)
        if via is None:
            out.skipped.append(f"{node.name}: no InternalIP of the family of {cidr}")
            continue
        out.routes.add(Route(cidr, via))
        out.remotes.add(node.name)


def _vxlan(out: Desired, node: Node, family: int) -> None:
    underlay = node.address(family)
    if underlay is None or not node.pod_cidrs:
        out.skipped.append(f"{node.name}: no IPv{family} InternalIP" if underlay is None
                           else f"{node.name}: no pod CIDR")
        return
    gateways = tuple(overlay_gateway(c) for c in node.pod_cidrs)
    out.peers.add(Peer(overlay_mac(underlay), underlay, gateways))
    out.remotes.add(node.name)
    for cidr, gw in zip(node.pod_cidrs, gateways, strict=True):
        out.routes.add(Route(cidr, gw, onlink=True))


def _collapse(cidrs: Iterable[str]) -> tuple[str, ...]:
    """Sorted, overlaps merged: an nft interval set refuses overlapping elements."""
    nets = [ipaddress.ip_network(c) for c in cidrs]
    v4 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv4Network))
    v6 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv6Network))
    return tuple(str(n) for n in [*v4, *v6])
