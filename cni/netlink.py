"""Thin, privileged netlink helpers over pyroute2.

A pod's namespace is never entered by our threads: pyroute2 opens the socket
there from a forked child (see :func:`netns`), one socket per verb.

Every function that opens a socket takes the verb's :class:`~cni.context.Context`:
podwire-cnid's keeps one host socket per thread (:class:`WarmSockets`), opens
pod-namespace sockets through its broker and batches link deletions.

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

from .context import Context
from .errors import CniError, Code
from .rtnl import Rtnl

IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
GONE = (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)

__all__ = ["NetlinkError", "GONE", "about", "kernel_error", "host", "netns", "netns_exists", "find_link",
           "index_of", "link", "delete_link", "add_address", "add_route", "addresses", "family_of", "WarmSockets",
           "delete_host_link", "fast", "set_link"]

# The errnos worth a code of their own (cni/errors.py documents 100 and 101).
_CODES = {errno.EEXIST: Code.EXISTS, errno.ENODEV: Code.NOT_FOUND, errno.ENOENT: Code.NOT_FOUND,
          errno.EBUSY: Code.TRY_AGAIN_LATER}

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


def fast(ipr) -> Rtnl:
    """The synchronous core (cni/rtnl.py) on ``ipr``'s socket, made once per IPRoute: the
    hot path's lookups and simple changes without pyroute2's event loop.  A dup of the
    socket, so its netns is the IPRoute's; closed by :func:`_close`."""
    core = ipr.__dict__.get("_rtnl")
    if core is None:
        core = ipr.__dict__["_rtnl"] = Rtnl(socket.socket(fileno=os.dup(ipr.fileno())))
    return core


def _close(ipr) -> None:
    core = ipr.__dict__.pop("_rtnl", None)
    if core is not None:
        core.close()
    ipr.close()


class _LazyIPRoute:
    """A pod-namespace socket from podwire-cnid's broker: the hot path speaks to it through
    :func:`fast` only, so the IPRoute around it (~0.3 ms to set up) is made on first use."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._ipr: Optional[IPRoute] = None
        self._rtnl = Rtnl(socket.socket(fileno=os.dup(sock.fileno())))

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str):
        if self._ipr is None:
            self._ipr = IPRoute(use_socket=self._sock)
        return getattr(self._ipr, name)

    def close(self) -> None:
        self._rtnl.close()
        if self._ipr is not None:
            self._ipr.close()
        self._sock.close()


class WarmSockets:
    """Host sockets kept open between uses, one per thread (podwire-cnid's workers): each
    verb of a burst would otherwise open and close its own."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def open(self) -> Iterator[IPRoute]:
        # Taken while in use, so a nested open() makes its own socket.
        ipr, self._local.ipr = getattr(self._local, "ipr", None) or IPRoute(), None
        try:
            yield ipr
        except BaseException:
            _close(ipr)  # an interrupted request may have left replies unread
            raise
        self._local.ipr = ipr


@contextlib.contextmanager
def host(ctx: Context) -> Iterator[IPRoute]:
    """A netlink socket in the host namespace: the context's warm one, else a fresh one."""
    if ctx.host_sockets is not None:
        with ctx.host_sockets.open() as ipr:
            yield ipr
        return
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        _close(ipr)


def _brokered(ctx: Context, fd: int, path: str):
    if ctx.ns_sockets is None:
        return None
    try:
        sock = ctx.ns_sockets.open_socket(fd)
    except OSError as exc:
        raise CniError(Code.INVALID_NETNS, "cannot open a socket in netns", f"{path}: {exc}") from None
    return _LazyIPRoute(sock) if sock is not None else None


@contextlib.contextmanager
def netns(ctx: Context, path: str) -> Iterator[IPRoute]:
    """An IPRoute bound to the namespace at ``path`` (which must exist).

    pyroute2 opens the socket in a forked child that does the setns() and hands
    the fd back (podwire-cnid's context has its single-threaded broker do the same), so
    no thread of ours -- in the long-lived daemon least of all -- ever switches namespace.
    Passing our own fd (not the path) pins the namespace for the call and keeps pyroute2
    from *creating* one (its default flags include O_CREAT)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CniError(Code.INVALID_NETNS, "netns does not exist", path) from None
    try:
        ipr = _brokered(ctx, fd, path) or IPRoute(netns=fd)
    finally:
        os.close(fd)
    try:
        yield ipr
    finally:
        if isinstance(ipr, _LazyIPRoute):
            ipr.close()
        else:
            _close(ipr)


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)


def find_link(ipr: IPRoute, name: str):
    """The link called ``name`` (one RTM_GETLINK: index, MAC, kind, flags, peer, master,
    alias: a cni.rtnl.Link), or None."""
    try:
        return _core(ipr).get_link(name=name)
    except NetlinkError as exc:
        if exc.code in GONE:
            return None
        raise kernel_error(exc, f"cannot look up link {name!r}") from None


def index_of(ipr: IPRoute, name: str) -> Optional[int]:
    found = find_link(ipr, name)
    return found["index"] if found is not None else None


def link(ipr: IPRoute, index: int):
    return _core(ipr).get_link(index=index)


_core = fast  # (a _LazyIPRoute keeps its core under the same attribute)


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


def delete_host_link(ctx: Context, name: str) -> bool:
    """Delete a host link by name (through the context's batcher, if it has one); False if
    it was already gone."""
    if ctx.link_deleter is not None:
        return ctx.link_deleter.delete(name)
    with host(ctx) as ipr:
        return delete_link(ipr, name)


def family_of(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_interface(address).version == 6 else socket.AF_INET


def add_address(ipr: IPRoute, index: int, cidr: str, *, nodad: bool = False,
                exist_ok: bool = False) -> None:
    iface = ipaddress.ip_interface(cidr)
    try:
        _core(ipr).add_address(index, cidr, flags=IFA_F_NODAD if nodad and iface.version == 6 else 0)
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
              exist_ok: bool = True, priority: int = 0, table: int = 0) -> None:
    try:
        _core(ipr).add_route(dst, gateway=gateway, index=index, scope=scope, priority=priority, table=table)
    except NetlinkError as exc:
        if not (exist_ok and exc.code == errno.EEXIST):
            raise


def set_link(ipr: IPRoute, index: int, *, up: Optional[bool] = None, ifname: str = "", alias: str = "",
             master: Optional[int] = None) -> None:
    """One RTM_SETLINK through the synchronous core: name, up/down, alias, master (0: none)."""
    _core(ipr).set_link(index, up=up, ifname=ifname, alias=alias, master=master)
