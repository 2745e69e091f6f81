"""IP forwarding and reverse-path filtering, read from /proc/sys.

The podwire plugin turns forwarding on at a gateway pod's ADD, so off is a warning: whatever
turned it off (a firewall script, networkd's IPForward=no on a reload) will cut pods off again.
rp_filter: the kernel applies max(conf/all, conf/<interface>), and new interfaces (the host
veths, the bridge) start with conf/default's value."""
from __future__ import annotations

from typing import Optional

from .node import Node
from .report import Finding, blocker, ok, unchecked, warning

IPV4_FORWARD = "/proc/sys/net/ipv4/ip_forward"
IPV6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding"
IPV4_CONF = "/proc/sys/net/ipv4/conf"
DEFAULT_BRIDGE = "podwire0"
STRICT = 1
SYSCTL_D = "/etc/sysctl.d/90-podwire.conf"


def check(node: Node) -> list[Finding]:
    return [_ipv4_forwarding(node), _ipv6_forwarding(node), _rp_filter(node)]


def _pod_families(node: Node) -> set[int]:
    """The IP versions of the podwire network's ranges (the default conflist has both)."""
    netlist = node.podwire_conflist
    if netlist is None:
        return {4, 6}
    families = set()
    for plugin in netlist.plugins:
        for range_set in (plugin.get("ipam") or {}).get("ranges") or []:
            for entry in range_set if isinstance(range_set, list) else []:
                subnet = str(entry.get("subnet", "")) if isinstance(entry, dict) else ""
                families.add(6 if ":" in subnet else 4)
    return families or {4}


def _bridge(node: Node) -> str:
    netlist = node.podwire_conflist
    for plugin in netlist.plugins if netlist else []:
        if plugin.get("type") == "podwire":
            return str(plugin.get("bridge") or DEFAULT_BRIDGE)
    return DEFAULT_BRIDGE


def _ipv4_forwarding(node: Node) -> Finding:
    value = node.read(IPV4_FORWARD)
    if value is None:
        return unchecked("sysctl.ipv4-forwarding", f"cannot read {IPV4_FORWARD}")
    if value == "1":
        return ok("sysctl.ipv4-forwarding", "net.ipv4.ip_forward = 1")
    return warning("sysctl.ipv4-forwarding", "net.ipv4.ip_forward = 0: pods cannot reach beyond the node "
                   "until a pod ADD turns it on", f"echo net.ipv4.ip_forward=1 > {SYSCTL_D}; sysctl --system")


def _ipv6_forwarding(node: Node) -> Finding:
    if 6 not in _pod_families(node):
        return ok("sysctl.ipv6-forwarding", "the podwire network has no IPv6 range")
    value = node.read(IPV6_FORWARD)
    if value is None:
        return blocker("sysctl.ipv6-forwarding", "IPv6 is disabled on this node, but the podwire network has "
                       "an IPv6 range: pods' IPv6 addresses cannot be set",
                       "remove the IPv6 range from the conflist, or boot without ipv6.disable=1")
    if value == "1":
        return ok("sysctl.ipv6-forwarding", "net.ipv6.conf.all.forwarding = 1")
    return warning("sysctl.ipv6-forwarding", "net.ipv6.conf.all.forwarding = 0: pods' IPv6 cannot reach beyond "
                   "the node until a pod ADD turns it on",
                   f"echo net.ipv6.conf.all.forwarding=1 >> {SYSCTL_D}; sysctl --system (interfaces that "
                   "take their address from router advertisements then need accept_ra=2)")


def _rp_filter_of(node: Node, interface: str) -> Optional[int]:
    value = node.read(f"{IPV4_CONF}/{interface}/rp_filter")
    return int(value) if value is not None and value.isdigit() else None


def _rp_filter(node: Node) -> Finding:
    check = "sysctl.rp-filter"
    all_value = _rp_filter_of(node, "all")
    if all_value is None:
        return unchecked(check, f"cannot read {IPV4_CONF}/all/rp_filter")
    effective = {"new interfaces (pods' host veths)": max(all_value, _rp_filter_of(node, "default") or 0)}
    bridge = _bridge(node)
    bridge_value = _rp_filter_of(node, bridge)
    if bridge_value is not None:
        effective[bridge] = max(all_value, bridge_value)
    strict = [where for where, value in effective.items() if value == STRICT]
    if strict:
        return warning(check, f"strict reverse-path filtering (rp_filter=1) on {', '.join(strict)} drops pod "
                       "packets whose source routes back through another interface: pods on multi-homed nodes, "
                       "other nodes' pods arriving on a NIC other than the route to their pod CIDR",
                       "loose mode: net.ipv4.conf.all.rp_filter=2 and net.ipv4.conf.default.rp_filter=2 in "
                       f"{SYSCTL_D}, then sysctl --system")
    shown = ", ".join(f"{where} {value}" for where, value in effective.items())
    return ok(check, f"rp_filter not strict ({shown})")
