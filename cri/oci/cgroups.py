"""The container's cgroup: where it is, reading its keyed files, removing empty parents.

cgroupfs driver only (RuntimeConfig reports CGROUPFS): a cgroupsPath like /podwire/<pod>/<ctr>
names the same directory under every mounted hierarchy.  cgroup v1 is what this node runs; the
v2 branches keep the same callers working on a unified host.  (OOM kills are conmon's to
see: it watches the cgroup's OOM events and leaves an `oom` file.)
"""
from __future__ import annotations

import errno
import functools
import os

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
    mounts = hierarchies()
    root = mounts.get("") if is_v2() else mounts.get(controller)
    if root is None:
        return None
    return os.path.join(root, cgroups_path.lstrip("/"))


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
