"""The bpf(2) commands the long-running agent needs, with ctypes on libc alone.

The agent loads programs that were compiled ahead of time (objects.py) and
works on maps by fd, so it needs neither bcc nor libbpf in its address space:
libbcc.so carries LLVM, and merely loading it made the agent's resident set
several times that of the rest of the node stack.
"""
from __future__ import annotations

import ctypes as ct
import os
import struct

_SYS_BPF = 321  # x86_64
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM, MAP_GET_NEXT_KEY = 0, 1, 2, 3, 4
PROG_LOAD, OBJ_PIN, OBJ_GET, OBJ_GET_INFO_BY_FD, MAP_LOOKUP_BATCH = 5, 6, 7, 15, 24
MAP_TYPE_RINGBUF = 27
_ATTR_SIZE = 128  # zero-filled beyond what a command reads; the kernel accepts any size >= its own

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


class BpfError(OSError):
    """A bpf(2) command failed; ``errno`` is the kernel's, the message says which command."""


def call(cmd: int, attr, size: int) -> int:
    """bpf(cmd, attr, size); raises BpfError (errno set) on failure."""
    res = _libc.syscall(_SYS_BPF, cmd, attr, size)
    if res < 0:
        code = ct.get_errno()
        raise BpfError(code, os.strerror(code))
    return res


def _attr(data: bytes):
    return ct.create_string_buffer(data.ljust(_ATTR_SIZE, b"\0"), _ATTR_SIZE)


def obj_get(path: str) -> int:
    raw = ct.create_string_buffer(path.encode())
    return call(OBJ_GET, _attr(struct.pack("=QII", ct.addressof(raw), 0, 0)), _ATTR_SIZE)


def obj_pin(fd: int, path: str) -> None:
    raw = ct.create_string_buffer(path.encode())
    call(OBJ_PIN, _attr(struct.pack("=QII", ct.addressof(raw), fd, 0)), _ATTR_SIZE)


class MapInfo(ct.Structure):
    """The head of struct bpf_map_info."""

    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
                ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32), ("map_flags", ct.c_uint32),
                ("name", ct.c_char * 16)]


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    call(OBJ_GET_INFO_BY_FD, _attr(struct.pack("=IIQ", fd, ct.sizeof(info), ct.addressof(info))), _ATTR_SIZE)
    return info


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, flags: int, name: str) -> int:
    head = struct.pack("=7I", map_type, key_size, value_size, max_entries, flags, 0, 0)
    return call(MAP_CREATE, _attr(head + name.encode()[:15].ljust(16, b"\0")), _ATTR_SIZE)


def prog_load(prog_type: int, insns: bytes, license: str, name: str, expected_attach_type: int = 0,
              log_size: int = 0) -> tuple[int, str]:
    """(fd, "") or (-errno, verifier log); the log is asked for only when ``log_size`` is set,
    because a log buffer makes the verifier slower and is only needed to explain a failure."""
    code = ct.create_string_buffer(insns, len(insns))
    lic = ct.create_string_buffer(license.encode())
    log = ct.create_string_buffer(log_size) if log_size else None
    attr = struct.pack("=IIQQIIQII16sII", prog_type, len(insns) // 8, ct.addressof(code), ct.addressof(lic),
                       1 if log else 0, log_size, ct.addressof(log) if log else 0, 0, 0,
                       name.encode()[:15], 0, expected_attach_type)
    try:
        return call(PROG_LOAD, _attr(attr), _ATTR_SIZE), ""
    except BpfError as exc:
        return -(exc.errno or 1), (log.value.decode(errors="replace") if log else "")


class ElemAttr(ct.Structure):
    """The attr of the MAP_*_ELEM commands; one per map, reused for every call."""

    _fields_ = [("map_fd", ct.c_uint32), ("pad", ct.c_uint32), ("key", ct.c_uint64),
                ("value", ct.c_uint64), ("flags", ct.c_uint64)]


class BatchAttr(ct.Structure):
    _fields_ = [("in_batch", ct.c_uint64), ("out_batch", ct.c_uint64), ("keys", ct.c_uint64),
                ("values", ct.c_uint64), ("count", ct.c_uint32), ("map_fd", ct.c_uint32),
                ("elem_flags", ct.c_uint64), ("flags", ct.c_uint64)]


def elem(cmd: int, attr: ElemAttr) -> int:
    """A MAP_*_ELEM command; 0 or -errno (the callers decide which errnos are errors)."""
    if _libc.syscall(_SYS_BPF, cmd, ct.byref(attr), ct.sizeof(attr)) < 0:
        return -ct.get_errno()
    return 0


def possible_cpus() -> int:
    """The number of possible CPUs (per-CPU map values come in that many slots)."""
    with open("/sys/devices/system/cpu/possible") as f:
        total = 0
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            total += int(hi or lo) - int(lo) + 1
        return total
