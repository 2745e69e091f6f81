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
old link is released only once the new one is in place.  The kernel allows one
BPF netfilter link per (family, hook, priority), so links alternate between
PRIORITIES: for that moment both run (a deferred packet is judged twice, by
the same maps).  from_pod defers nothing until the agent has the hook
(pw_service_config.deferred).
"""
from __future__ import annotations

import ctypes as ct
import os
import struct

from ..errors import DatapathError

_SYS_BPF = 321  # x86_64
_BPF_OBJ_PIN, _BPF_OBJ_GET, _BPF_OBJ_GET_INFO_BY_FD, _BPF_LINK_GET_FD_BY_ID, _BPF_LINK_CREATE = 6, 7, 15, 30, 28
_BPF_NETFILTER = 45
NFPROTO = {"ipv4": 2, "ipv6": 10}
NF_INET_PRE_ROUTING = 0
# After kube-proxy's DNAT (NF_IP_PRI_NAT_DST, -100), before filter (0): -99, or -98 while replacing.
PRIORITIES = (-99, -98)
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


def link_create(prog_fd: int, family: str, priority: int) -> int:
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
    current = link_info(pin_dir)
    for family in NFPROTO:
        in_use = current.get(family, (0, 0))[1]
        fd = link_create(prog_fd, family, PRIORITIES[1] if in_use == PRIORITIES[0] else PRIORITIES[0])
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


def link_ids(pin_dir: str) -> dict[str, int]:
    """family -> kernel id of the pinned link (what `bpftool link` lists), for checks."""
    return {family: ids[0] for family, ids in link_info(pin_dir).items()}


def link_info(pin_dir: str) -> dict[str, tuple[int, int]]:
    """family -> (link id, priority) of the pinned links."""
    out = {}
    for family in NFPROTO:
        path = pin_path(pin_dir, family)
        if not os.path.exists(path):
            continue
        raw = ct.create_string_buffer(path.encode())
        fd = _bpf(_BPF_OBJ_GET, struct.pack("=QII", ct.addressof(raw), 0, 0), f"opening {path}")
        try:
            info = ct.create_string_buffer(64)
            _bpf(_BPF_OBJ_GET_INFO_BY_FD, struct.pack("=IIQ", fd, 64, ct.addressof(info)), "link info")
            # struct bpf_link_info: type, id, prog_id, then (8-aligned) netfilter: pf, hooknum, priority
            out[family] = (struct.unpack_from("=I", info.raw, 4)[0], struct.unpack_from("=i", info.raw, 24)[0])
        finally:
            os.close(fd)
    return out


def link_exists(link_id: int) -> bool:
    try:
        os.close(_bpf(_BPF_LINK_GET_FD_BY_ID, struct.pack("=I", link_id), "BPF_LINK_GET_FD_BY_ID"))
        return True
    except NfHookError:
        return False


def detach(pin_dir: str) -> None:
    for family in NFPROTO:
        try:
            os.unlink(pin_path(pin_dir, family))
        except FileNotFoundError:
            pass
