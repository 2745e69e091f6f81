"""Thin, privileged netlink helpers over pyroute2.

Sockets for a pod's namespace are opened *in* that namespace by pyroute2 (a
forked child does the setns and hands the fd back), so no thread of ours ever
switches namespace.  We open the netns file ourselves and pass the fd, which
both pins the namespace for the call and stops pyroute2 from *creating* a
namespace at a path that does not exist (its default flags include O_CREAT).
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from typing import Iterator, Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import CniError, Code

IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
GONE = (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)

__all__ = ["NetlinkError", "GONE", "host", "netns", "netns_exists", "index_of", "link",
           "delete_link", "add_address", "add_route", "addresses", "family_of"]


@contextlib.contextmanager
def host() -> Iterator[IPRoute]:
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


@contextlib.contextmanager
def netns(path: str) -> Iterator[IPRoute]:
    """An IPRoute bound to the namespace at ``path`` (which must exist)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CniError(Code.INVALID_NETNS, "netns does not exist", path) from None
    try:
        ipr = IPRoute(netns=fd)
    finally:
        os.close(fd)
    try:
        yield ipr
    finally:
        ipr.close()


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)


def index_of(ipr: IPRoute, name: str) -> Optional[int]:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def link(ipr: IPRoute, index: int):
    return ipr.link("get", index=index)[0]


def delete_link(ipr: IPRoute, name: str) -> bool:
    """Delete a link by name; a link that is already gone is success."""
    index = index_of(ipr, name)
    if index is None:
        return False
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code in GONE:
            return False
        raise
    return True


def family_of(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_interface(address).version == 6 else socket.AF_INET


def add_address(ipr: IPRoute, index: int, cidr: str, *, nodad: bool = False,
                exist_ok: bool = False) -> None:
    iface = ipaddress.ip_interface(cidr)
    extra = {"flags": IFA_F_NODAD} if nodad and iface.version == 6 else {}
    try:
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen, **extra)
    except NetlinkError as exc:
        if not (exist_ok and exc.code == errno.EEXIST):
            raise


def addresses(ipr: IPRoute, index: int) -> list[str]:
    """The interface's addresses as CIDR strings (ip/prefixlen)."""
    out = []
    for msg in ipr.addr("dump", index=index):
        out.append(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
    return out


def add_route(ipr: IPRoute, dst: str, *, gateway: str = "", index: int = 0, scope: int = 0,
              exist_ok: bool = True, **extra) -> None:
    network = ipaddress.ip_network(dst, strict=False)
    spec = {"dst": str(network.network_address), "dst_len": network.prefixlen,
            "family": socket.AF_INET6 if network.version == 6 else socket.AF_INET, **extra}
    if gateway:
        spec["gateway"] = gateway
    if index:
        spec["oif"] = index
    if scope:
        spec["scope"] = scope
    try:
        ipr.route("add", **spec)
    except NetlinkError as exc:
        if not (exist_ok and exc.code == errno.EEXIST):
            raise
