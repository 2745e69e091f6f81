"""Compile and load the programs with bcc; the maps they declare are pinned.

bcc rewrites map method calls (``pw_ct.lookup(&k)``) only in the main source
file, not in included headers, so we inline our own ``#include "lib/..."``
lines before handing the text over; both attach points are loaded from one
text so they share one set of maps (and one drop ring buffer).

The netfilter program (nf_post_dnat.c) needs struct offsets of the running
kernel (btf.py); without BTF, or on a kernel that cannot load
BPF_PROG_TYPE_NETFILTER, it is left out and `nf_error` says why: the agent
then keeps judging Service traffic by the Service address (see nfhook.py).
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
import re
import subprocess

from ..errors import DatapathError
from ..paths import PIN_DIR as DEFAULT_PIN_DIR
from . import btf
from . import maps as m
from .bpfmap import BpfMap

BPF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bpf")
SOURCES = ("from_pod.c", "to_pod.c", "nf_post_dnat.c")  # one file per attach point
PROGRAMS = {"from_pod": "ingress", "to_pod": "egress"}  # function -> tc hook on the host veth
NF_PROGRAM = "nf_post_dnat"
BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER = 32, 45
BPFFS = "/sys/fs/bpf"

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')


def expand(path: str, seen: set[str] | None = None) -> str:
    """The file with our quoted includes inlined (each header once)."""
    seen = set() if seen is None else seen
    out = []
    with open(path) as f:
        for line in f:
            match = _INCLUDE.match(line)
            if not match:
                out.append(line)
                continue
            header = os.path.join(BPF_DIR, match.group(1))
            if header not in seen:
                seen.add(header)
                out.append(expand(header, seen))
    return "".join(out)


def source_text() -> str:
    seen: set[str] = set()
    return "".join(expand(os.path.join(BPF_DIR, name), seen) for name in SOURCES)


def ensure_bpffs(pin_dir: str) -> None:
    """Pins need a bpf filesystem; mount it at /sys/fs/bpf if the node has none."""
    if not os.path.ismount(BPFFS):
        os.makedirs(BPFFS, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "bpf", "bpf", BPFFS], capture_output=True, text=True)
        if proc.returncode != 0:
            raise DatapathError(f"cannot mount bpffs at {BPFFS}: {proc.stderr.strip()}")
    os.makedirs(pin_dir, mode=0o700, exist_ok=True)


# Pinned maps whose layout a build may change: pin name -> (key, value) mirror (maps.h).
PINNED_LAYOUTS = {"endpoints": (ct.c_uint32, m.EndpointInfo), "ipcache": (m.IpcacheKey, m.IpcacheValue),
                  "policy": (m.PolicyKeyC, m.PolicyValue), "ct": (m.CtKey, m.CtValue),
                  "config": (ct.c_uint32, m.Config), "ep_ids": (ct.c_uint32, m.EpRef),
                  "services": (m.ServiceKey, m.ServiceValue), "service_config": (ct.c_uint32, m.ServiceConfig)}
_SYS_BPF, _BPF_OBJ_GET, _BPF_OBJ_GET_INFO_BY_FD = 321, 7, 15


def pinned_sizes(path: str) -> tuple[int, int] | None:
    """(key size, value size) of the map pinned at ``path``, None if nothing is pinned there."""
    if not os.path.exists(path):
        return None
    libc = ct.CDLL(None, use_errno=True)
    name = ct.create_string_buffer(path.encode())
    attr = (ct.c_uint8 * 16)()
    ct.memmove(attr, ct.byref(ct.c_uint64(ct.addressof(name))), 8)
    fd = libc.syscall(_SYS_BPF, _BPF_OBJ_GET, attr, 16)
    if fd < 0:
        raise DatapathError(f"cannot open the pinned map {path}: {os.strerror(ct.get_errno())}")
    try:
        info = (ct.c_uint8 * 80)()
        attr = (ct.c_uint8 * 16)()
        ct.memmove(attr, ct.byref(ct.c_uint32(fd)), 4)
        ct.memmove(ct.byref(attr, 4), ct.byref(ct.c_uint32(len(info))), 4)
        ct.memmove(ct.byref(attr, 8), ct.byref(ct.c_uint64(ct.addressof(info))), 8)
        if libc.syscall(_SYS_BPF, _BPF_OBJ_GET_INFO_BY_FD, attr, 16) != 0:
            raise DatapathError(f"cannot read the pinned map {path}: {os.strerror(ct.get_errno())}")
        raw = bytes(info)  # struct bpf_map_info: type, id, key_size, value_size, ...
        return int.from_bytes(raw[8:12], "little"), int.from_bytes(raw[12:16], "little")
    finally:
        os.close(fd)


def check_pinned_layouts(pin_dir: str) -> None:
    """Maps pinned by a build with other layouts would be reused as they are, and the programs
    then fail the verifier with a bare EACCES: say what is wrong and what to do instead."""
    for name, (key, value) in PINNED_LAYOUTS.items():
        found = pinned_sizes(os.path.join(pin_dir, name))
        if found is not None and found != (ct.sizeof(key), ct.sizeof(value)):
            raise DatapathError(
                f"the map pinned at {os.path.join(pin_dir, name)} has another layout (key {found[0]}, value "
                f"{found[1]} bytes; this build: {ct.sizeof(key)}, {ct.sizeof(value)}): it was left by an older "
                f"podwire-netpol; run `podwire-netpol teardown` (it detaches the programs and unpins the maps) "
                f"and start the agent again")


class Programs:
    """The loaded programs and typed handles on their (pinned) maps."""

    def __init__(self, pin_dir: str = DEFAULT_PIN_DIR):
        from bcc import BPF  # deferred: importing bcc costs ~0.4 s

        ensure_bpffs(pin_dir)
        check_pinned_layouts(pin_dir)
        self.pin_dir = pin_dir
        self.nf_fd = -1
        self.nf_error = ""
        cflags = [f'-DPIN_DIR="{pin_dir}"', "-Wno-unused-function"]
        try:
            cflags += [f"-D{name}={value}" for name, value in btf.nf_defines().items()]
        except btf.BtfError as exc:
            self.nf_error = f"no kernel BTF for the post-DNAT check: {exc}"
        try:
            self.bpf = BPF(text=source_text().encode(), cflags=cflags)
            self.fns = {name: self.bpf.load_func(name.encode(), BPF.SCHED_CLS) for name in PROGRAMS}
        except Exception as exc:  # bcc raises bare Exception for compile and verifier errors
            raise DatapathError(f"loading BPF programs: {exc}") from exc
        if not self.nf_error:
            try:
                fn = self.bpf.load_func(NF_PROGRAM.encode(), BPF_PROG_TYPE_NETFILTER, attach_type=BPF_NETFILTER)
                self.nf_fd = fn.fd
            except Exception as exc:  # an old kernel: no netfilter programs
                self.nf_error = f"cannot load the netfilter program: {exc}"
        self.endpoints = self._map("pw_endpoints", ct.c_uint32, m.EndpointInfo)
        self.ipcache = self._map("pw_ipcache", m.IpcacheKey, m.IpcacheValue)
        self.policy = self._map("pw_policy", m.PolicyKeyC, m.PolicyValue)
        self.ct = self._map("pw_ct", m.CtKey, m.CtValue)
        self.config = self._map("pw_config", ct.c_uint32, m.Config)
        self.metrics = self._map("pw_metrics", ct.c_uint32, m.Counter, percpu=True)
        self.ep_stats = self._map("pw_ep_stats", ct.c_uint32, m.EpCounters, percpu=True)
        self.policy_stats = self._map("pw_policy_stats", ct.c_uint32, m.Counter, percpu=True)
        self.event_budget = self._map("pw_event_budget", ct.c_uint32, m.EventBudget, percpu=True)
        self.ep_ids = self._map("pw_ep_ids", ct.c_uint32, m.EpRef)
        self.services = self._map("pw_services", m.ServiceKey, m.ServiceValue)
        self.service_config = self._map("pw_service_config", ct.c_uint32, m.ServiceConfig)

    def _map(self, name: str, key, value, percpu: bool = False) -> BpfMap:
        return BpfMap(self.table(name).map_fd, name, key, value, percpu)

    def fd(self, name: str) -> int:
        return self.fns[name].fd

    def table(self, name: str):
        return self.bpf[name.encode()]

    def close(self) -> None:
        """Drop our references; pinned maps and attached programs stay in the kernel."""
        self.bpf.cleanup()


def remove_pins(pin_dir: str) -> None:
    """Unpin every map (tests and `uninstall`); attached programs keep their references."""
    if not os.path.isdir(pin_dir):
        return
    for name in os.listdir(pin_dir):
        try:
            os.unlink(os.path.join(pin_dir, name))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
    try:
        os.rmdir(pin_dir)
    except OSError:
        pass
