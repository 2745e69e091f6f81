"""The overlay: one vxlan device, ``podwire.vxlan``, and its FDB and neighbour entries.

Everything on the device is podwire's (learning is off: no entry appears by itself),
so reconciling is "make the device's entries exactly these", and leaving vxlan mode is
deleting the device, which takes its FDB, neighbours and onlink routes with it.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import socket
from typing import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ...netlink import GONE
from .model import DEVICE, Peer, RoutingError, overlay_mac, overlay_mtu

NUD_PERMANENT = 0x80


@dataclasses.dataclass(frozen=True)
class Device:
    vni: int
    port: int
    local: str     # this node's underlay address; the MAC derives from it
    mtu: int


def underlay_mtu(ipr: IPRoute, local: str) -> int:
    """The MTU of the link holding the local underlay address."""
    for addr in ipr.get_addr(address=local):
        return int(ipr.link("get", index=addr["index"])[0].get("IFLA_MTU"))
    raise RoutingError(f"vxlan: this node's InternalIP {local} is on none of its links")


def plan(ipr: IPRoute, vni: int, port: int, local: str) -> Device:
    family = ipaddress.ip_address(local).version
    return Device(vni, port, local, overlay_mtu(underlay_mtu(ipr, local), family))


def ensure(ipr: IPRoute, dev: Device) -> int:
    """The device as ``dev`` says (recreated when VNI, port or local address differ); its index."""
    found = ipr.link_lookup(ifname=DEVICE)
    if found and not _matches(ipr, found[0], dev):
        ipr.link("del", index=found[0])
        found = []
    if not found:
        local_key = "vxlan_local" if ipaddress.ip_address(dev.local).version == 4 else "vxlan_local6"
        try:
            ipr.link("add", ifname=DEVICE, kind="vxlan", vxlan_id=dev.vni, vxlan_port=dev.port,
                     vxlan_learning=0, address=overlay_mac(dev.local), mtu=dev.mtu, **{local_key: dev.local})
        except NetlinkError as exc:
            raise RoutingError(f"cannot create {DEVICE} (VNI {dev.vni}, port {dev.port}): {exc}") from None
        found = ipr.link_lookup(ifname=DEVICE)
    index = found[0]
    ipr.link("set", index=index, mtu=dev.mtu, state="up")  # the underlay's MTU may have changed
    return index


def _matches(ipr: IPRoute, index: int, dev: Device) -> bool:
    link = ipr.link("get", index=index)[0]
    info = (link.get("IFLA_LINKINFO") or {}).get("IFLA_INFO_DATA") or {}
    local = info.get("IFLA_VXLAN_LOCAL") or info.get("IFLA_VXLAN_LOCAL6")
    return (info.get("IFLA_VXLAN_ID") == dev.vni and info.get("IFLA_VXLAN_PORT") == dev.port
            and local == dev.local and link.get("IFLA_ADDRESS") == overlay_mac(dev.local))


def remove(ipr: IPRoute) -> bool:
    """Delete the device (with its entries and routes); False when there was none."""
    try:
        ipr.link("del", ifname=DEVICE)
        return True
    except NetlinkError as exc:
        if exc.code in GONE:
            return False
        raise RoutingError(f"cannot remove {DEVICE}: {exc}") from None


def reconcile_peers(ipr: IPRoute, index: int, peers: Iterable[Peer]) -> None:
    """FDB (peer MAC -> underlay address) and permanent neighbours (gateway -> peer MAC)."""
    peers = list(peers)
    fdb = {p.mac: p.underlay for p in peers}
    kept = set()
    for entry in ipr.fdb("dump", ifindex=index):
        mac, dst = entry.get("lladdr"), entry.get("dst")
        if entry["ifindex"] != index:
            continue
        if fdb.get(mac) == dst:
            kept.add(mac)
        else:
            _quietly(ipr.fdb, "del", ifindex=index, lladdr=mac, dst=dst)
    for mac, dst in fdb.items():
        if mac not in kept:  # "append": the vxlan driver refuses a netlink replace of an FDB entry
            ipr.fdb("append", ifindex=index, lladdr=mac, dst=dst)
    neigh = {gw: p.mac for p in peers for gw in p.gateways}
    for family in (socket.AF_INET, socket.AF_INET6):
        for entry in ipr.neigh("dump", ifindex=index, family=family):
            dst = entry.get("dst")
            # Only permanent ones are ours: IPv6 may resolve link-local neighbours by itself.
            if entry["ifindex"] == index and entry["state"] & NUD_PERMANENT \
                    and neigh.get(dst) != entry.get("lladdr"):
                _quietly(ipr.neigh, "del", ifindex=index, dst=dst, family=family)
    for gw, mac in neigh.items():
        ipr.neigh("replace", ifindex=index, dst=gw, lladdr=mac, state=NUD_PERMANENT)


def _quietly(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except NetlinkError as exc:
        if exc.code not in GONE:
            raise
