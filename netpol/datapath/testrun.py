"""BPF_PROG_TEST_RUN for the programs: run one crafted packet, get the verdict.

Used by the root tests to check the programs on exact packets (every protocol,
fragments, ICMP errors, spoofed sources) without building namespaces.
"""
from __future__ import annotations

import ctypes as ct
import os

_SYS_BPF = 321  # x86_64
_BPF_PROG_TEST_RUN = 10
_libc = ct.CDLL(None, use_errno=True)

TC_ACT_OK, TC_ACT_SHOT = 0, 2


class _TestAttr(ct.Structure):
    _fields_ = [("prog_fd", ct.c_uint32), ("retval", ct.c_uint32), ("data_size_in", ct.c_uint32),
                ("data_size_out", ct.c_uint32), ("data_in", ct.c_uint64), ("data_out", ct.c_uint64),
                ("repeat", ct.c_uint32), ("duration", ct.c_uint32), ("ctx_size_in", ct.c_uint32),
                ("ctx_size_out", ct.c_uint32), ("ctx_in", ct.c_uint64), ("ctx_out", ct.c_uint64),
                ("flags", ct.c_uint32), ("cpu", ct.c_uint32), ("batch_size", ct.c_uint32)]


class _SkbCtx(ct.Structure):
    """The head of struct __sk_buff, up to the fields a test may set."""

    _fields_ = [("len", ct.c_uint32), ("pkt_type", ct.c_uint32), ("mark", ct.c_uint32),
                ("queue_mapping", ct.c_uint32), ("protocol", ct.c_uint32), ("vlan_present", ct.c_uint32),
                ("vlan_tci", ct.c_uint32), ("vlan_proto", ct.c_uint32), ("priority", ct.c_uint32),
                ("ingress_ifindex", ct.c_uint32), ("ifindex", ct.c_uint32)]


def run(prog_fd: int, frame: bytes, ifindex: int, ingress_ifindex: int = 0) -> int:
    """The program's return code for ``frame`` (an Ethernet frame) seen on ``ifindex``."""
    return run_timed(prog_fd, frame, ifindex, ingress_ifindex)[0]


def run_timed(prog_fd: int, frame: bytes, ifindex: int, ingress_ifindex: int = 0,
              repeat: int = 1) -> tuple[int, int]:
    """(return code, mean nanoseconds per run) over ``repeat`` runs in the kernel."""
    retval, duration, _ = _run(prog_fd, frame, _SkbCtx(ifindex=ifindex, ingress_ifindex=ingress_ifindex), repeat)
    return retval, duration


def run_marked(prog_fd: int, frame: bytes, ifindex: int, ingress_ifindex: int = 0, mark: int = 0) -> tuple[int, int]:
    """(return code, skb->mark afterwards) for a tc program given a packet with ``mark``."""
    ctx = _SkbCtx(ifindex=ifindex, ingress_ifindex=ingress_ifindex, mark=mark)
    retval, _, out = _run(prog_fd, frame, ctx, 1)
    return retval, out.mark


def run_netfilter(prog_fd: int, frame: bytes) -> int:
    """A netfilter program's verdict (0 NF_DROP, 1 NF_ACCEPT) for an Ethernet frame; the
    kernel builds the skb (mark 0) and hook state itself (supported since Linux 6.4)."""
    return _run(prog_fd, frame, None, 1)[0]


def _run(prog_fd: int, frame: bytes, ctx, repeat: int):
    data_in = ct.create_string_buffer(frame, len(frame))
    data_out = ct.create_string_buffer(len(frame) + 256)
    attr = _TestAttr(prog_fd=prog_fd, data_size_in=len(frame), data_in=ct.addressof(data_in),
                     data_size_out=len(data_out), data_out=ct.addressof(data_out), repeat=repeat)
    out = ct.create_string_buffer(512)  # the whole struct __sk_buff comes back, or ENOSPC
    if ctx is not None:
        attr.ctx_size_in, attr.ctx_in = ct.sizeof(ctx), ct.addressof(ctx)
        attr.ctx_size_out, attr.ctx_out = len(out), ct.addressof(out)
    if _libc.syscall(_SYS_BPF, _BPF_PROG_TEST_RUN, ct.byref(attr), ct.sizeof(attr)) < 0:
        code = ct.get_errno()
        raise OSError(code, f"BPF_PROG_TEST_RUN: {os.strerror(code)}")
    return attr.retval, attr.duration, _SkbCtx.from_buffer_copy(out.raw[:ct.sizeof(_SkbCtx)])
