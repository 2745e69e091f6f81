"""Load the programs, compiled ahead of time (objects.py, compile.py), and pin their maps.

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
import logging
import os
import re
import subprocess

from ..errors import DatapathError
from ..paths import BPF_CACHE_DIR as DEFAULT_CACHE_DIR
from ..paths import PIN_DIR as DEFAULT_PIN_DIR
from . import maps as m
from . import objects, sysbpf
from .bpfmap import BpfMap

log = logging.getLogger("podwire.netpol")
CACHE_ENV = "PODWIRE_NETPOL_BPF_CACHE"  # the cache directory, for tests and odd layouts (else --bpf-cache)

BPF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bpf")
SOURCES = ("from_pod.c", "to_pod.c", "nf_post_dnat.c")  # one file per attach point
PROGRAMS = {"from_pod": "ingress", "to_pod": "egress"}  # function -> tc hook on the host veth
NF_PROGRAM = "nf_post_dnat"
BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER = 3, 32, 45
BPFFS = "/sys/fs/bpf"

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')


def expand(path: str, seen: set[str] | None = None, bpf_dir: str = BPF_DIR) -> str:
    """The file with our quoted includes inlined (each header once)."""
    seen = set() if seen is None else seen
    out = []
    with open(path) as f:
        for line in f:
            match = _INCLUDE.match(line)
            if not match:
                out.append(line)
                continue
            header = os.path.join(bpf_dir, match.group(1))
            if header not in seen:
                seen.add(header)
                out.append(expand(header, seen, bpf_dir))
    return "".join(out)


def source_text(bpf_dir: str | None = None) -> str:
    bpf_dir = bpf_dir or BPF_DIR
    seen: set[str] = set()
    return "".join(expand(os.path.join(bpf_dir, name), seen, bpf_dir) for name in SOURCES)


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


def pinned_sizes(path: str) -> tuple[int, int] | None:
    """(key size, value size) of the map pinned at ``path``, None if nothing is pinned there."""
    if not os.path.exists(path):
        return None
    try:
        fd = sysbpf.obj_get(path)
    except sysbpf.BpfError as exc:
        raise DatapathError(f"cannot open the pinned map {path}: {exc.strerror}") from None
    try:
        info = sysbpf.map_info(fd)
        return info.key_size, info.value_size
    except sysbpf.BpfError as exc:
        raise DatapathError(f"cannot read the pinned map {path}: {exc.strerror}") from None
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
    """The loaded programs and typed handles on their (pinned) maps.

    Loaded from the compile cache (objects.py) with bpf(2) alone; on a cold cache the
    programs are compiled first, by bcc in a child process.  ``compiled`` says whether
    this start had to compile."""

    def __init__(self, pin_dir: str = DEFAULT_PIN_DIR, cache_dir: str | None = None, bpf_dir: str | None = None):
        ensure_bpffs(pin_dir)
        check_pinned_layouts(pin_dir)
        self.pin_dir = pin_dir
        self.cache_dir = cache_dir or default_cache_dir()
        self.nf_fd = -1
        self._fds: list[int] = []
        self.map_fds: dict[str, int] = {}
        self.fns: dict[str, int] = {}
        try:
            obj, self.compiled = objects.ensure(self.cache_dir, source_text(bpf_dir), bpf_dir)
            self.nf_error = obj.nf_error
            try:
                self._load(obj)
            except _StaleObject as exc:
                if self.compiled:
                    raise DatapathError(str(exc)) from None
                # The kernel refused what it accepted when the object was stored (e.g. a
                # kernel with the same build string but other verifier rules): compile again.
                log.warning("%s: compiling again", exc)
                path = objects.cache_path(self.cache_dir, obj.key)
                objects.compile_in_child(path, bpf_dir)
                fresh = objects.read(path, obj.key)
                if fresh is None:
                    raise DatapathError("the compiler wrote no usable object") from None
                obj, self.compiled, self.nf_error = fresh, True, fresh.nf_error
                self._load(obj)
        except BaseException:
            self.close()
            raise
        log.info("BPF programs loaded from %s (%s)", objects.cache_path(self.cache_dir, obj.key),
                 "compiled now" if self.compiled else "cached, no compile")
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

    def _load(self, obj: objects.Objects) -> None:
        self._close_fds()
        self.map_fds = {name: self._open_map(name, spec) for name, spec in obj.maps.items()}
        self.max_entries = {name: spec.max_entries for name, spec in obj.maps.items()}
        self.fns = {name: self._load_prog(obj, name, BPF_PROG_TYPE_SCHED_CLS, 0) for name in PROGRAMS}
        if self.nf_error:
            return
        if NF_PROGRAM not in obj.programs:
            self.nf_error = "the compiled object has no netfilter program"
            return
        try:
            self.nf_fd = self._load_prog(obj, NF_PROGRAM, BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER)
        except _StaleObject as exc:  # an old kernel: no netfilter programs
            self.nf_error = f"cannot load the netfilter program: {exc}"

    def _open_map(self, name: str, spec: objects.MapSpec) -> int:
        """The pinned map (created and pinned if missing), or a new one for an unpinned map."""
        path = os.path.join(self.pin_dir, spec.pin) if spec.pin else None
        for _ in range(2):
            if path:
                try:
                    fd = sysbpf.obj_get(path)
                except sysbpf.BpfError as exc:
                    if exc.errno != errno.ENOENT:
                        raise DatapathError(f"cannot open the pinned map {path}: {exc.strerror}") from None
                else:
                    self._fds.append(fd)
                    info = sysbpf.map_info(fd)
                    found = (info.type, info.key_size, info.value_size, info.map_flags)
                    if found != (spec.type, spec.key_size, spec.value_size, spec.flags):
                        raise DatapathError(
                            f"the map pinned at {path} is not the one this build uses (type, key, value, flags "
                            f"{found}; this build: {(spec.type, spec.key_size, spec.value_size, spec.flags)}): "
                            f"run `podwire-netpol teardown` and start the agent again")
                    return fd
            try:
                fd = sysbpf.map_create(spec.type, spec.key_size, spec.value_size, spec.max_entries, spec.flags, name)
            except sysbpf.BpfError as exc:
                raise DatapathError(f"cannot create the BPF map {name}: {exc.strerror}") from None
            self._fds.append(fd)
            if not path:
                return fd
            try:
                sysbpf.obj_pin(fd, path)
                return fd
            except sysbpf.BpfError as exc:
                if exc.errno == errno.EEXIST:  # pinned meanwhile by another loader: use that one
                    continue
                raise DatapathError(f"cannot pin the BPF map {name} at {path}: {exc.strerror}") from None
        raise DatapathError(f"cannot open or pin the BPF map {name} at {path}")

    def _load_prog(self, obj: objects.Objects, name: str, prog_type: int, attach_type: int) -> int:
        spec = obj.programs[name]
        insns = objects.patch(spec, self.map_fds)
        fd, _ = sysbpf.prog_load(prog_type, insns, obj.license, name, attach_type)
        if fd < 0:  # again, with the verifier's log, to say why
            fd, verifier = sysbpf.prog_load(prog_type, insns, obj.license, name, attach_type, log_size=1 << 22)
            if fd < 0:
                tail = "\n".join(verifier.strip().splitlines()[-12:])
                raise _StaleObject(f"loading BPF program {name}: {os.strerror(-fd)}" + (f"\n{tail}" if tail else ""))
        self._fds.append(fd)
        return fd

    def _map(self, name: str, key, value, percpu: bool = False) -> BpfMap:
        return BpfMap(self.map_fds[name], name, key, value, percpu)

    def fd(self, name: str) -> int:
        return self.fns[name]

    def _close_fds(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def close(self) -> None:
        """Drop our references; pinned maps and attached programs stay in the kernel."""
        self._close_fds()


class _StaleObject(Exception):
    """The kernel refused a stored program."""


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR


def compile_cache(cache_dir: str | None = None) -> tuple[str, bool]:
    """(the object for this kernel and these sources, whether it had to be compiled):
    `podwire-netpol compile`, at install time or after a kernel upgrade."""
    cache_dir = cache_dir or default_cache_dir()
    obj, compiled = objects.ensure(cache_dir, source_text())
    return objects.cache_path(cache_dir, obj.key), compiled


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
