"""Hook the post-DNAT check (nf_post_dnat.c) into netfilter PRE_ROUTING.

Why a BPF netfilter program: kube-proxy rewrites a Service packet's destination
in nat PREROUTING, after tc on the host veth has seen it.  Linked at
NF_IP_PRI_NAT_DST + 1 it runs right after that DNAT in both of kube-proxy's
modes (iptables' nat table and its nftables `dstnat` chain both sit at -100),
sees the backend actually picked, and needs no copy of kube-proxy's state.

The link is created with BPF_LINK_CREATE in the caller's network namespace (the
node's) and pinned next to the maps, like the tc programs it completes stay
attached: a killed agent (even kill -9) leaves the hook judging with the last
policy, and `teardown` (which unpins the directory) removes it.  A restart
links the new program first and then renames its pin over the old one, so the
old link is released only once the new one is in place.  from_pod defers
nothing until the agent has the hook (pw_service_config.deferred).
"""
from __future__ import annotations

import ctypes as ct
import os
import struct

from ..errors import DatapathError

_SYS_BPF = 321  # x86_64
_BPF_OBJ_PIN, _BPF_LINK_CREATE = 6, 28
_BPF_NETFILTER = 45
NFPROTO = {"ipv4": 2, "ipv6": 10}
NF_INET_PRE_ROUTING = 0
PRIORITY = -99  # NF_IP_PRI_NAT_DST (-100) + 1: after kube-proxy's DNAT, before filter (0)
_libc = ct.CDLL(None, use_errno=True)


class NfHookError(DatapathError):
    """The netfilter hook could not be linked or pinned."""


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    buf = ct.create_string_buffer(attr.ljust(128, b"\0"), 128)
    fd = _libc.syscall(_SYS_BPF, cmd, buf, 128)
    if fd < 0:
        code = ct.get_errno()
        raise NfHookError(f"{what}: {os.strerror(code)}")
    return fd


def link_create(prog_fd: int, family: str, priority: int = PRIORITY) -> int:
    """A netfilter link of the program in this network namespace; returns its fd."""
    attr = struct.pack("=IIII", prog_fd, 0, _BPF_NETFILTER, 0)
    attr += struct.pack("=IIiI", NFPROTO[family], NF_INET_PRE_ROUTING, priority, 0)
    return _bpf(_BPF_LINK_CREATE, attr, f"BPF_LINK_CREATE netfilter {family}")


def pin(fd: int, path: str) -> None:
    raw = ct.create_string_buffer(path.encode())
    _bpf(_BPF_OBJ_PIN, struct.pack("=QII", ct.addressof(raw), fd, 0), f"pinning {path}")


def pin_path(pin_dir: str, family: str) -> str:
    return os.path.join(pin_dir, f"nf_post_dnat_{family}")


def attach(prog_fd: int, pin_dir: str) -> None:
    """Link the program for IPv4 and IPv6 and pin the links, replacing earlier ones."""
    for family in NFPROTO:
        fd = link_create(prog_fd, family)
        staged = pin_path(pin_dir, family) + "_new"  # bpffs refuses dots in names
        try:
            try:
                os.unlink(staged)
            except FileNotFoundError:
                pass
            pin(fd, staged)
            os.rename(staged, pin_path(pin_dir, family))  # releases the previous link
        finally:
            os.close(fd)


def attached(pin_dir: str) -> bool:
    return all(os.path.exists(pin_path(pin_dir, f)) for f in NFPROTO)


def detach(pin_dir: str) -> None:
    for family in NFPROTO:
        try:
            os.unlink(pin_path(pin_dir, family))
        except FileNotFoundError:
            pass
