"""Thin, privileged netlink helpers over pyroute2.

A pod's namespace is never entered by our threads: pyroute2 opens the socket
there from a forked child (see :func:`netns`), one socket per verb.

A long-lived process (podwire-cnid) calls :func:`keep_warm` so each thread
reuses one host socket instead of opening one per step.

This module is also where a kernel refusal becomes a CNI error: callers wrap a
request in :func:`about`, naming the object, and :func:`kernel_error` maps the
errno (EEXIST, ENODEV, ENOENT, EBUSY; anything else is internal) to a code.
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import threading
from typing import Iterator, Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import CniError, Code

IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
GONE = (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)

__all__ = ["NetlinkError", "GONE", "about", "kernel_error", "host", "netns", "netns_exists", "find_link",
           "index_of", "link", "delete_link", "add_address", "add_route", "addresses", "family_of", "keep_warm",
           "batch_deletions", "delete_host_link"]

# The errnos worth a code of their own (cni/errors.py documents 100 and 101).
_CODES = {errno.EEXIST: Code.EXISTS, errno.ENODEV: Code.NOT_FOUND, errno.ENOENT: Code.NOT_FOUND,
          errno.EBUSY: Code.TRY_AGAIN_LATER}

_warm: Optional[threading.local] = None
_batcher = None  # set by batch_deletions()
_socket_opener = None  # set by open_sockets_with()


def keep_warm() -> None:
    """From now on each thread keeps one host socket open between calls."""
    global _warm
    _warm = threading.local()


def batch_deletions(batcher) -> None:
    """Route :func:`delete_host_link` through ``batcher.delete(name)`` (see
    cni.daemon.reaper); None goes back to one request per link."""
    global _batcher
    _batcher = batcher


def kernel_error(exc: NetlinkError, what: str, details: str = "") -> CniError:
    """The CNI error for the kernel refusing ``what`` ("cannot add address ... to 'eth0'")."""
    reason = os.strerror(exc.code) if exc.code else str(exc)
    return CniError(_CODES.get(exc.code, Code.INTERNAL), f"{what}: {reason}", details)


@contextlib.contextmanager
def about(what: str, details: str = "") -> Iterator[None]:
    """Requests inside fail as :func:`kernel_error` for ``what``, never as a raw NetlinkError."""
    try:
        yield
    except NetlinkError as exc:
        raise kernel_error(exc, what, details) from None


@contextlib.contextmanager
def host() -> Iterator[IPRoute]:
    if _warm is None:
        ipr = IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()
        return
    # Taken while in use, so a nested host() opens its own socket.
    ipr, _warm.ipr = getattr(_warm, "ipr", None) or IPRoute(), None
    try:
        yield ipr
    except BaseException:
        ipr.close()  # an interrupted request may have left replies unread
        raise
    _warm.ipr = ipr


def open_sockets_with(opener) -> None:
    """Let ``opener.open_socket(ns_fd)`` make pod-namespace sockets (the daemon's
    single-threaded broker, cni.daemon.nsbroker); None goes back to pyroute2's fork."""
    global _socket_opener
    _socket_opener = opener


def _brokered(fd: int, path: str) -> Optional[IPRoute]:
    if _socket_opener is None:
        return None
    try:
        sock = _socket_opener.open_socket(fd)
    except OSError as exc:
        raise CniError(Code.INVALID_NETNS, "cannot open a socket in netns", f"{path}: {exc}") from None
    return IPRoute(use_socket=sock) if sock is not None else None


@contextlib.contextmanager
def netns(path: str) -> Iterator[IPRoute]:
    """An IPRoute bound to the namespace at ``path`` (which must exist).

    pyroute2 opens the socket in a forked child that does the setns() and hands
    the fd back (the daemon uses its single-threaded broker for the same), so no
    thread of ours -- in the long-lived daemon least of all -- ever switches namespace.
    Passing our own fd (not the path) pins the namespace for the call and keeps pyroute2
    from *creating* one (its default flags include O_CREAT)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CniError(Code.INVALID_NETNS, "netns does not exist", path) from None
    try:
        ipr = _brokered(fd, path) or IPRoute(netns=fd)
    finally:
        os.close(fd)
    try:
        yield ipr
    finally:
        ipr.close()


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)


def find_link(ipr: IPRoute, name: str):
    """The link called ``name`` (one RTM_GETLINK: index, MAC, kind, flags...), or None."""
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        if exc.code in GONE:
            return None
        raise kernel_error(exc, f"cannot look up link {name!r}") from None


def index_of(ipr: IPRoute, name: str) -> Optional[int]:
    found = find_link(ipr, name)
    return found["index"] if found is not None else None


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
        raise kernel_error(exc, f"cannot delete link {name!r}") from None
    return True


def delete_host_link(name: str) -> bool:
    """Delete a host link by name; False if it was already gone."""
    if _batcher is not None:
        return _batcher.delete(name)
    with host() as ipr:
        return delete_link(ipr, name)


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
