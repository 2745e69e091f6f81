"""Free space and inodes where podwire keeps state.

Warnings follow the kubelet's default hard eviction thresholds (imagefs.available < 15% for the
shim's images, nodefs.available < 10% elsewhere): below them the kubelet starts evicting pods
anyway.  Blockers are floors below which podwire's own writes fail: a pull needs room for a
layer and its extraction, IPAM one file per lease, the shim one record per pod and container."""
from __future__ import annotations

import dataclasses
import os

from .node import Node
from .report import Finding, blocker, ok, unchecked, warning

MiB = 1 << 20
GiB = 1 << 30
MIN_FREE_INODES = 1000
INODE_WARN_FRACTION = 0.05


@dataclasses.dataclass(frozen=True)
class StateDir:
    check: str
    path: str
    holds: str
    min_free: int            # bytes: a blocker below
    warn_fraction: float     # free share: a warning below


def state_dirs(node: Node) -> list[StateDir]:
    cfg = node.cri_or_default
    return [StateDir("disk.state", cfg.state_dir, "pod and container records, images", GiB, 0.15),
            StateDir("disk.cni", "/var/lib/cni", "IPAM leases, libcni's result cache", 64 * MiB, 0.10),
            StateDir("disk.run", cfg.run_dir, "sockets, runc and monitor state", 16 * MiB, 0.10)]


def check(node: Node) -> list[Finding]:
    return [_state_dir(node, d) for d in state_dirs(node)]


def _existing(path: str) -> str:
    """The directory itself, or the nearest ancestor that exists (where it will be made)."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _state_dir(node: Node, d: StateDir) -> Finding:
    try:
        st = node.statvfs(_existing(node.path(d.path)))
    except OSError as exc:
        return unchecked(d.check, f"statvfs {d.path}: {exc.strerror or exc}")
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    shown = f"{d.path} ({d.holds}): {_human(free)} free of {_human(total)}"
    fix = f"free space on the filesystem holding {d.path}"
    if free < d.min_free:
        return blocker(d.check, f"{shown}, below {_human(d.min_free)}", fix)
    if st.f_files and st.f_favail < MIN_FREE_INODES:
        return blocker(d.check, f"{d.path}: {st.f_favail} inodes free",
                       f"free inodes on the filesystem holding {d.path}")
    if total and free < d.warn_fraction * total:
        return warning(d.check, f"{shown}, below {d.warn_fraction:.0%}: the kubelet evicts pods there", fix)
    if st.f_files and st.f_favail < INODE_WARN_FRACTION * st.f_files:
        return warning(d.check, f"{d.path}: {st.f_favail} of {st.f_files} inodes free",
                       f"free inodes on the filesystem holding {d.path}")
    return ok(d.check, shown)
