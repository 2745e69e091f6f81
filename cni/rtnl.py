"""A synchronous rtnetlink socket for the few requests on the CNI hot path.

pyroute2 0.9's IPRoute runs every request through an asyncio event loop and decodes
every attribute of every answer (a link carries ~50, stats included): ~0.3 ms of
Python per request, against ~0.05 ms of kernel work for most of ours.  ADD and DEL
need eight simple requests -- look a link up, change a link's name, state, master or
alias, add an address or a route -- so those are written here by hand: one send, one
blocking recv of the answer and its ack, only the attributes we read decoded.
Everything else (creating a veth pair, dumps, tc, neighbours) stays with pyroute2.

Kernel refusals raise pyroute2's ``NetlinkError(errno)``, the error type cni/netlink.py
already maps to CNI codes, so callers cannot tell which core answered.
"""
from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import select
import socket
import struct
from typing import Optional

from pyroute2.netlink.exceptions import NetlinkError

_NLMSG_ERROR = 2
_RTM_NEWLINK, _RTM_GETLINK, _RTM_SETLINK = 16, 18, 19
_RTM_NEWADDR, _RTM_NEWROUTE = 20, 24
_F_REQUEST, _F_ACK, _F_EXCL, _F_CREATE = 0x1, 0x4, 0x200, 0x400
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_LINK, _IFLA_MASTER = 1, 3, 5, 10
_IFLA_LINKINFO, _IFLA_IFALIAS, _IFLA_EXT_MASK, _IFLA_INFO_KIND = 18, 20, 29, 1
_RTEXT_FILTER_SKIP_STATS = 1 << 3
_IFA_ADDRESS, _IFA_LOCAL, _IFA_FLAGS = 1, 2, 8
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_PRIORITY, _RTA_TABLE = 1, 4, 5, 6, 15
_RTPROT_STATIC, _RTN_UNICAST, _RT_TABLE_MAIN = 4, 1, 254
_IFF_UP = 0x1
_HDR = struct.Struct("=IHHII")       # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")   # ifinfomsg
_IFADDR = struct.Struct("=BBBBi")    # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_seq = itertools.count(1)


class Link(dict):
    """The fields of a link we use, read like pyroute2's message: ``link["index"]``,
    ``link["flags"]``, ``link.get("IFLA_ADDRESS")``, ``link.get(("IFLA_LINKINFO",
    "IFLA_INFO_KIND"))``."""

    def get(self, key, default=None):
        if isinstance(key, tuple):
            key = "/".join(key)
        return super().get(key, default)


def _attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


def _attrs(data: bytes):
    offset = 0
    while offset + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, offset)
        if size < 4:
            return
        yield kind & 0x3FFF, data[offset + 4:offset + size]
        offset += (size + 3) & ~3


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _parse_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
    link = Link(index=index, flags=flags)
    for kind, value in _attrs(body[_IFINFO.size:]):
        if kind == _IFLA_IFNAME:
            link["IFLA_IFNAME"] = value.rstrip(b"\0").decode()
        elif kind == _IFLA_ADDRESS:
            link["IFLA_ADDRESS"] = _mac(value)
        elif kind in (_IFLA_LINK, _IFLA_MASTER):
            link["IFLA_LINK" if kind == _IFLA_LINK else "IFLA_MASTER"] = struct.unpack("=I", value[:4])[0]
        elif kind == _IFLA_IFALIAS:
            link["IFLA_IFALIAS"] = value.rstrip(b"\0").decode(errors="replace")
        elif kind == _IFLA_LINKINFO:
            for sub, subvalue in _attrs(value):
                if sub == _IFLA_INFO_KIND:
                    link["IFLA_LINKINFO/IFLA_INFO_KIND"] = subvalue.rstrip(b"\0").decode()
    return link


class Rtnl:
    """One NETLINK_ROUTE socket: ``sock``, typically a dup of an IPRoute's (cni/netlink.py),
    which may be non-blocking; one request at a time -- callers give each thread its own."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request, return the bodies of the answers before the kernel's ack;
        a refusal raises NetlinkError."""
        seq = next(_seq) & 0xFFFFFFFF
        self.sock.send(_HDR.pack(_HDR.size + len(body), kind, flags | _F_REQUEST | _F_ACK, seq, 0) + body)
        answers: list[bytes] = []
        while True:
            self._poll.poll()  # the socket may be non-blocking (shared with pyroute2)
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                size, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
                if size < _HDR.size:
                    raise NetlinkError(errno.EPROTO, "malformed netlink answer")
                payload = data[offset + _HDR.size:offset + size]
                offset += (size + 3) & ~3
                if mseq != seq:
                    continue  # an answer to a request an interrupted caller left unread
                if mtype == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return answers
                answers.append(payload)

    def get_link(self, name: str = "", index: int = 0) -> Link:
        """The link by name or index; NetlinkError(ENODEV) if there is none."""
        body = _IFINFO.pack(0, 0, index, 0, 0)
        if name:
            body += _attr(_IFLA_IFNAME, name.encode() + b"\0")
        body += _attr(_IFLA_EXT_MASK, struct.pack("=I", _RTEXT_FILTER_SKIP_STATS))
        for answer in self.request(_RTM_GETLINK, 0, body):
            return _parse_link(answer)
        raise NetlinkError(errno.ENODEV, "no answer")

    def set_link(self, index: int, *, up: Optional[bool] = None, ifname: str = "", alias: str = "",
                 master: Optional[int] = None) -> None:
        """Change a link in one request: name, up/down, alias, master (0: none)."""
        flags, change = (0, 0) if up is None else (_IFF_UP if up else 0, _IFF_UP)
        body = _IFINFO.pack(0, 0, index, flags, change)
        if ifname:
            body += _attr(_IFLA_IFNAME, ifname.encode() + b"\0")
        if alias:
            body += _attr(_IFLA_IFALIAS, alias.encode())
        if master is not None:
            body += _attr(_IFLA_MASTER, struct.pack("=I", master))
        self.request(_RTM_SETLINK, 0, body)

    def add_address(self, index: int, cidr: str, *, flags: int = 0) -> None:
        """Add ``cidr`` (ip/prefixlen) to the link; EEXIST if it is there."""
        iface = ipaddress.ip_interface(cidr)
        family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
        packed = iface.ip.packed
        body = _IFADDR.pack(family, iface.network.prefixlen, flags & 0xFF, 0, index)
        body += _attr(_IFA_LOCAL, packed) + _attr(_IFA_ADDRESS, packed)
        if flags:
            body += _attr(_IFA_FLAGS, struct.pack("=I", flags))
        self.request(_RTM_NEWADDR, _F_CREATE | _F_EXCL, body)

    def add_route(self, dst: str, *, gateway: str = "", index: int = 0, scope: int = 0, priority: int = 0,
                  table: int = 0) -> None:
        """Add a unicast route (proto static, main table unless ``table``), as pyroute2's
        ``route("add", ...)`` does; EEXIST if it is there."""
        network = ipaddress.ip_network(dst, strict=False)
        family = socket.AF_INET6 if network.version == 6 else socket.AF_INET
        body = _RTMSG.pack(family, network.prefixlen, 0, 0, table if 0 < table < 256 else _RT_TABLE_MAIN,
                           _RTPROT_STATIC, scope, _RTN_UNICAST, 0)
        if network.prefixlen:
            body += _attr(_RTA_DST, network.network_address.packed)
        if gateway:
            body += _attr(_RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
        if index:
            body += _attr(_RTA_OIF, struct.pack("=I", index))
        if priority:
            body += _attr(_RTA_PRIORITY, struct.pack("=I", priority))
        if table >= 256:
            body += _attr(_RTA_TABLE, struct.pack("=I", table))
        self.request(_RTM_NEWROUTE, _F_CREATE | _F_EXCL, body)
