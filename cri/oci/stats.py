"""Container CPU and memory statistics from cgroup files (ContainerStats)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from cri.oci.cgroups import controller_dir, is_v2, read_int, read_keyed, read_psi

# PSI files of a v2 cgroup, by the CRI stats field they feed.
PSI_FILES = {"cpu": "cpu.pressure", "memory": "memory.pressure", "io": "io.pressure"}
# A v2 limit file holding "max" reads as this (no limit).
NO_LIMIT = None


@dataclass(frozen=True)
class CgroupStats:
    timestamp_ns: int
    cpu_usage_ns: int
    memory_usage_bytes: int
    memory_working_set_bytes: int
    memory_rss_bytes: int
    page_faults: int
    major_page_faults: int
    # v2 only (None / {} on v1, where podwire reports what it always did):
    memory_available_bytes: int | None = None      # memory.max - working set, when limited
    swap_usage_bytes: int | None = None            # memory.swap.current
    swap_available_bytes: int | None = None        # memory.swap.max - swap usage, when limited
    # {"cpu"|"memory"|"io": {"some"|"full": {"avg10", "avg60", "avg300", "total" (us)}}}, only
    # for the files the kernel has.
    psi: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def read_stats(cgroups_path: str) -> CgroupStats | None:
    """None when the cgroup is gone (container removed)."""
    if is_v2():
        d = controller_dir("", cgroups_path)
        return None if d is None else stats_v2(d)
    return _stats_v1(cgroups_path)


def _stats_v1(cgroups_path: str) -> CgroupStats | None:
    cpu_dir = controller_dir("cpuacct", cgroups_path)
    mem_dir = controller_dir("memory", cgroups_path)
    if cpu_dir is None or mem_dir is None:
        return None
    cpu = read_int(os.path.join(cpu_dir, "cpuacct.usage"))
    usage = read_int(os.path.join(mem_dir, "memory.usage_in_bytes"))
    if cpu is None or usage is None:
        return None
    stat = read_keyed(os.path.join(mem_dir, "memory.stat"))
    # The kubelet's (cadvisor's) working set: usage minus inactive file cache.
    working_set = max(0, usage - stat.get("total_inactive_file", 0))
    return CgroupStats(time.time_ns(), cpu, usage, working_set, stat.get("total_rss", 0),
                       stat.get("total_pgfault", 0), stat.get("total_pgmajfault", 0))


def stats_v2(d: str) -> CgroupStats | None:
    """The stats of the v2 cgroup directory `d`, as containerd and cAdvisor compute them:
    cpu.stat usage_usec, memory.current, working set = current - memory.stat inactive_file,
    rss = anon, faults from pgfault/pgmajfault, available = memory.max - working set."""
    usage = read_int(os.path.join(d, "memory.current"))
    cpu = read_keyed(os.path.join(d, "cpu.stat")).get("usage_usec")
    if usage is None or cpu is None:
        return None
    stat = read_keyed(os.path.join(d, "memory.stat"))
    working_set = max(0, usage - stat.get("inactive_file", 0))
    limit = read_limit(os.path.join(d, "memory.max"))
    swap_usage = read_int(os.path.join(d, "memory.swap.current"))
    swap_limit = read_limit(os.path.join(d, "memory.swap.max"))
    return CgroupStats(
        time.time_ns(), cpu * 1000, usage, working_set, stat.get("anon", 0),
        stat.get("pgfault", 0), stat.get("pgmajfault", 0),
        memory_available_bytes=None if limit is None else max(0, limit - working_set),
        swap_usage_bytes=swap_usage,
        swap_available_bytes=(None if swap_limit is None or swap_usage is None
                              else max(0, swap_limit - swap_usage)),
        psi=read_pressure(d))


def read_pressure(d: str) -> dict[str, dict[str, dict[str, float]]]:
    """The PSI files of the v2 cgroup directory `d` that exist (CONFIG_PSI, not psi=0)."""
    out = {}
    for kind, name in PSI_FILES.items():
        psi = read_psi(os.path.join(d, name))
        if psi:
            out[kind] = psi
    return out


def read_limit(path: str) -> int | None:
    """A v2 limit file: its number, None for "max" or no file."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return NO_LIMIT
    return int(text) if text.isdigit() else NO_LIMIT
