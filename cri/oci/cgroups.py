"""The container's cgroup: where it is, reading its keyed files, removing empty parents.

A cgroupsPath names the same directory under every mounted hierarchy: a cgroupfs one such as
/podwire/<pod>/<ctr> as it is, a systemd one ("slice:prefix:name") as the scope systemd makes
(cgroupdriver.cgroup_dir).  On cgroup v1 (and hybrid) each controller has its hierarchy; on v2
there is one.  OOM kills: conmon watches the cgroup's OOM events and leaves an `oom` file; on
v2 memory.events' oom_kill says it too (oom_killed()).
"""
from __future__ import annotations

import errno
import functools
import os

from cri.oci import cgroupdriver

V1_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                  "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"}


@functools.lru_cache(maxsize=1)
def hierarchies() -> dict[str, str]:
    """{controller or "name=x" or "unified": mountpoint} on v1/hybrid; {"": mountpoint} on v2."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _source, opts = post.split()[:3]
            mountpoint = pre.split()[4]
            if fstype == "cgroup":
                for opt in opts.split(","):
                    if opt in V1_CONTROLLERS or opt.startswith("name="):
                        found.setdefault(opt, mountpoint)
            elif fstype == "cgroup2":
                # A hybrid host's v2 tree (/sys/fs/cgroup/unified) only gets runc's empty dirs.
                found["" if mountpoint == "/sys/fs/cgroup" else "unified"] = mountpoint
    return found


def is_v2() -> bool:
    return "" in hierarchies()


def controller_dir(controller: str, cgroups_path: str) -> str | None:
    """The directory of `cgroups_path` (either driver's form) holding `controller`'s files; None
    when that controller has no hierarchy or the path is no valid systemd one."""
    mounts = hierarchies()
    root = mounts.get("") if is_v2() else mounts.get(controller)
    if root is None:
        return None
    try:
        relative = cgroupdriver.cgroup_dir(cgroups_path)
    except ValueError:
        return None
    return os.path.join(root, relative.lstrip("/"))


def v2_root() -> str | None:
    return hierarchies().get("") if is_v2() else None


def v2_controllers(root: str | None = None) -> frozenset[str]:
    """The controllers a v2 host has (the root's cgroup.controllers); empty on v1."""
    root = root or v2_root()
    if root is None:
        return frozenset()
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


def own_v2_dir(root: str | None = None, proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """This process's own cgroup directory on a v2 host ("0::<path>" in /proc/self/cgroup)."""
    root = root or v2_root()
    if root is None:
        return None
    try:
        with open(proc_cgroup) as f:
            for line in f:
                if line.startswith("0::"):
                    return os.path.join(root, line[3:].strip().lstrip("/"))
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def swap_controller_available() -> bool:
    """Can a container's swap be limited on this v2 host?  memory.swap.max exists in every
    non-root cgroup when the kernel accounts swap; the root has none, so look at our own
    cgroup, as containerd's SwapControllerAvailable does."""
    own = own_v2_dir()
    return own is not None and os.path.exists(os.path.join(own, "memory.swap.max"))


def read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_keyed(path: str) -> dict[str, int]:
    """`key value` files (memory.stat, memory.oom_control, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if value.strip().lstrip("-").isdigit():
                    out[key] = int(value)
    except OSError:
        pass
    return out


def read_psi(path: str) -> dict[str, dict[str, float]]:
    """A pressure file (cpu.pressure, memory.pressure, io.pressure):
        some avg10=0.00 avg60=0.00 avg300=0.00 total=12345
        full avg10=0.00 avg60=0.00 avg300=0.00 total=0
    as {"some": {"avg10": 0.0, ..., "total": 12345.0}, "full": {...}}; {} when the file is
    missing (a kernel without PSI, or psi=0) or unreadable.  total is in microseconds."""
    out: dict[str, dict[str, float]] = {}
    try:
        with open(path) as f:
            for line in f:
                kind, *fields = line.split()
                values = {}
                for field in fields:
                    key, _, value = field.partition("=")
                    try:
                        values[key] = float(value)
                    except ValueError:
                        continue
                if kind in ("some", "full"):
                    out[kind] = values
    except OSError:
        return {}
    return out


def oom_killed(cgroups_path: str) -> bool:
    """Did the kernel OOM-kill a process of this cgroup?  v2 memory.events' oom_kill counter
    (not `oom`, which counts reaching the limit, also without a kill).  False on v1 and when
    the cgroup is gone."""
    if not is_v2():
        return False
    d = controller_dir("memory", cgroups_path)
    return d is not None and read_keyed(os.path.join(d, "memory.events")).get("oom_kill", 0) > 0


def remove_empty(cgroups_path: str) -> None:
    """rmdir the directory in every hierarchy; a missing, busy or non-empty one is left alone
    (another container of the pod may still live there)."""
    roots = set(hierarchies().values())
    for root in roots:
        try:
            os.rmdir(os.path.join(root, cgroups_path.lstrip("/")))
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                raise
