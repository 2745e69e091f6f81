#!/usr/bin/env python3
"""Instruction counts of the loaded netpol programs: xlated (after the verifier's rewrites) and
verified (instructions the verifier walked: its complexity budget is 1,000,000).  Needs root.
Prints JSON {program: [xlated, verified]}; bench_netpol_scale.py puts it in its table."""
from __future__ import annotations

import ctypes as ct
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

BPF_OBJ_GET_INFO_BY_FD, SYS_BPF = 15, 321
XLATED_LEN, VERIFIED_INSNS, INFO_SIZE = 20, 216, 232


def prog_info(fd: int) -> tuple[int, int]:
    info = (ct.c_uint8 * INFO_SIZE)()
    attr = (ct.c_uint8 * 16)()
    ct.memmove(attr, ct.byref(ct.c_uint32(fd)), 4)
    ct.memmove(ct.byref(attr, 4), ct.byref(ct.c_uint32(INFO_SIZE)), 4)
    ct.memmove(ct.byref(attr, 8), ct.byref(ct.c_uint64(ct.addressof(info))), 8)
    libc = ct.CDLL(None, use_errno=True)
    if libc.syscall(SYS_BPF, BPF_OBJ_GET_INFO_BY_FD, attr, 16) != 0:
        raise OSError(ct.get_errno(), "BPF_OBJ_GET_INFO_BY_FD")
    raw = bytes(info)
    return (int.from_bytes(raw[XLATED_LEN:XLATED_LEN + 4], "little") // 8,
            int.from_bytes(raw[VERIFIED_INSNS:VERIFIED_INSNS + 4], "little"))


def main() -> int:
    from netpol.datapath.loader import NF_PROGRAM, PROGRAMS, Programs, remove_pins
    pin = f"/sys/fs/bpf/pwsize-{uuid.uuid4().hex[:8]}"
    try:
        programs = Programs(pin)
        names = list(PROGRAMS) + ([NF_PROGRAM] if not programs.nf_error else [])
        fds = {name: programs.nf_fd if name == NF_PROGRAM else programs.fd(name) for name in names}
        print(json.dumps({name: prog_info(fd) for name, fd in fds.items()}))
        programs.close()
    finally:
        remove_pins(pin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
