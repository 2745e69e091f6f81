"""Compiled programs on disk: the agent's compile cache.

The programs change only when podwire is upgraded or the node boots another
kernel, so they are compiled once, by bcc in a short-lived process
(compile.py), and the long-running agent loads the stored instructions with
bpf(2) alone.  An object is valid for exactly what decides its instructions:

- the C sources (with our headers inlined),
- the kernel: its release and build string, and its BTF (nf_post_dnat.c is
  compiled with struct offsets read from it).

The key is a hash of those, so an upgrade that changes a program, or a new
kernel, misses the cache and compiles again; the compiler's own version is
not in it, because any compiler's output of the same source is correct for
that kernel.  Objects are written atomically (a kill -9 leaves the old one or
the new one) and an unreadable one is compiled again, never trusted.

In an object, each map a program uses is referenced by name at the
instructions that load its fd (BPF_LD_IMM64 with BPF_PSEUDO_MAP_FD); the
loader opens or creates the map and writes its fd there.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import struct
import subprocess
import sys
import time

from ..errors import DatapathError

FORMAT = 1
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
KEEP = 4  # objects kept per cache directory (other kernels, the previous version)
COMPILE_TIMEOUT = 600  # seconds; a cold compile takes a few seconds, far more on a slow VM
log = logging.getLogger("podwire.netpol")


@dataclasses.dataclass
class MapSpec:
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    pin: str | None  # file name under the pin directory; None: the agent's own (the ring buffer)


@dataclasses.dataclass
class ProgSpec:
    insns: bytes
    maps: list[tuple[int, str]]  # (instruction index, map name) to patch with the map's fd


@dataclasses.dataclass
class Objects:
    key: str
    license: str
    maps: dict[str, MapSpec]
    programs: dict[str, ProgSpec]
    nf_error: str = ""  # why nf_post_dnat.c is not in this object (no kernel BTF)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "key": self.key, "license": self.license, "nf_error": self.nf_error,
            "kernel": os.uname().release, "compiled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "maps": {name: dataclasses.asdict(spec) for name, spec in self.maps.items()},
            "programs": {name: {"insns": base64.b64encode(p.insns).decode(), "maps": p.maps}
                         for name, p in self.programs.items()}}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Objects":
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"not an object of format {FORMAT}")
        return cls(key=raw["key"], license=raw["license"], nf_error=raw.get("nf_error", ""),
                   maps={name: MapSpec(**spec) for name, spec in raw["maps"].items()},
                   programs={name: ProgSpec(base64.b64decode(p["insns"]), [(int(i), str(n)) for i, n in p["maps"]])
                             for name, p in raw["programs"].items()})


def map_references(insns: bytes) -> list[tuple[int, int]]:
    """(instruction index, fd) of every map fd load: BPF_LD|BPF_IMM|BPF_DW (0x18) whose source
    register field is BPF_PSEUDO_MAP_FD (1) or BPF_PSEUDO_MAP_VALUE (2)."""
    out = []
    i, n = 0, len(insns) // 8
    while i < n:
        opcode, regs, _off, imm = struct.unpack_from("=BBhi", insns, i * 8)
        if opcode == 0x18:
            if regs >> 4 in (1, 2):
                out.append((i, imm))
            i += 2  # a 16-byte instruction
            continue
        i += 1
    return out


def patch(spec: ProgSpec, fds: dict[str, int]) -> bytes:
    code = bytearray(spec.insns)
    for index, name in spec.maps:
        struct.pack_into("=i", code, index * 8 + 4, fds[name])
    return bytes(code)


def cache_key(source: str) -> str:
    h = hashlib.sha256()
    h.update(f"podwire-netpol objects {FORMAT}\0".encode())
    h.update(source.encode())
    uname = os.uname()
    h.update(f"\0{uname.release}\0{uname.version}\0{uname.machine}\0".encode())
    try:
        with open(VMLINUX_BTF, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        h.update(b"no BTF")
    return h.hexdigest()[:32]


def cache_path(cache_dir: str, key: str) -> str:
    return os.path.join(cache_dir, f"{key}.json")


def read(path: str, key: str) -> Objects | None:
    """The cached object, or None when there is none or it cannot be used (said in the log)."""
    try:
        with open(path) as f:
            obj = Objects.from_json(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("compiled BPF object %s is unreadable (%s): compiling again", path, exc)
        return None
    if obj.key != key:
        log.warning("compiled BPF object %s is for another key: compiling again", path)
        return None
    return obj


def write(path: str, obj: Objects) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(obj.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)  # a full disk leaves no half object behind (a kill -9 leaves one for prune)
        raise
    prune(os.path.dirname(path), keep=path)


def prune(cache_dir: str, keep: str) -> None:
    """Keep the newest KEEP objects (and ``keep``); remove leftovers of killed writers."""
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    objects = []
    for name in names:
        path = os.path.join(cache_dir, name)
        if name.endswith(".tmp") and time.time() - _mtime(path) > COMPILE_TIMEOUT:
            _unlink(path)
        elif name.endswith(".json") and path != keep:
            objects.append((_mtime(path), path))
    for _, path in sorted(objects, reverse=True)[KEEP - 1:]:
        _unlink(path)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def compile_in_child(path: str, bpf_dir: str | None = None) -> None:
    """Compile in a short-lived process, so that LLVM never lives in the agent."""
    cmd = [sys.executable, "-m", "netpol.datapath.compile", "--out", path]
    if bpf_dir:
        cmd += ["--bpf-dir", bpf_dir]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DatapathError(f"compiling the BPF programs took more than {COMPILE_TIMEOUT} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()
        raise DatapathError("compiling the BPF programs failed: " + "\n".join(detail[-20:]))
    log.info("compiled the BPF programs in %.1f s into %s", time.monotonic() - started, path)


def ensure(cache_dir: str, source: str, bpf_dir: str | None = None) -> tuple[Objects, bool]:
    """(the object for these sources and this kernel, whether it was compiled just now)."""
    key = cache_key(source)
    path = cache_path(cache_dir, key)
    obj = read(path, key)
    if obj is not None:
        return obj, False
    compile_in_child(path, bpf_dir)
    obj = read(path, key)
    if obj is None:
        raise DatapathError(f"the compiler wrote no usable object at {path} (does it see other sources?)")
    return obj, True
