"""The veth pair: host end in the host namespace, pod end named CNI_IFNAME in the pod."""
from __future__ import annotations

import dataclasses
import errno
import os

from .. import netlink
from ..errors import CniError, Code


@dataclasses.dataclass
class Pair:
    host_name: str
    host_index: int
    host_mac: str
    container_name: str
    container_index: int
    container_mac: str


def ensure_ifname_free(netns_path: str, ifname: str) -> None:
    """The spec's ADD: 'error if the name exists' — checked before any side effect."""
    with netlink.netns(netns_path) as ns:
        if netlink.index_of(ns, ifname) is not None:
            raise CniError(Code.INTERNAL, f"container interface {ifname!r} already exists",
                           f"in netns {netns_path}")


def remove_stale_host_end(host_name: str) -> None:
    """A host veth with our deterministic name but no live pod end is a leftover of a
    crashed ADD for this very attachment: remove it so the name can be reused."""
    with netlink.host() as ipr:
        netlink.delete_link(ipr, host_name)


def create(netns_path: str, host_name: str, ifname: str, *, mtu: int, mac: str, alias: str) -> Pair:
    """Create the pair in one netlink request: the peer is born inside the pod netns."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer = {"ifname": ifname, "net_ns_fd": fd}
        if mtu:
            peer["mtu"] = mtu
        if mac:
            peer["address"] = mac
        spec = {"ifname": host_name, "kind": "veth", "peer": peer}
        if mtu:
            spec["mtu"] = mtu
        with netlink.host() as ipr:
            try:
                ipr.link("add", **spec)
            except netlink.NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise CniError(Code.INTERNAL, f"interface {ifname!r} or {host_name!r} already exists") from None
                raise
            index = netlink.index_of(ipr, host_name)
            # No DAD on the host end: a tentative link-local cannot send neighbour
            # solicitations, which would stall routed-mode IPv6 for a second or more.
            disable_dad(host_name)
            ipr.link("set", index=index, ifalias=alias, state="up")
            host_mac = netlink.link(ipr, index).get("IFLA_ADDRESS")
    finally:
        os.close(fd)
    with netlink.netns(netns_path) as ns:
        cindex = netlink.index_of(ns, ifname)
        cmac = netlink.link(ns, cindex).get("IFLA_ADDRESS")
    return Pair(host_name, index, host_mac, ifname, cindex, cmac)


def disable_dad(name: str) -> None:
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/accept_dad", "w") as f:
            f.write("0")
    except FileNotFoundError:
        pass  # IPv6 disabled on this host


def delete_host_end(host_name: str) -> bool:
    """Deleting one end of a veth deletes both; a missing link is success (DEL is idempotent)."""
    with netlink.host() as ipr:
        return netlink.delete_link(ipr, host_name)
