"""Container CPU and memory statistics from cgroup files (ContainerStats)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from cri.oci.cgroups import controller_dir, is_v2, read_int, read_keyed


@dataclass(frozen=True)
class CgroupStats:
    timestamp_ns: int
    cpu_usage_ns: int
    memory_usage_bytes: int
    memory_working_set_bytes: int
    memory_rss_bytes: int
    page_faults: int
    major_page_faults: int


def read_stats(cgroups_path: str) -> CgroupStats | None:
    """None when the cgroup is gone (container removed)."""
    return _stats_v2(cgroups_path) if is_v2() else _stats_v1(cgroups_path)


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


def _stats_v2(cgroups_path: str) -> CgroupStats | None:
    d = controller_dir("", cgroups_path)
    if d is None:
        return None
    usage = read_int(os.path.join(d, "memory.current"))
    cpu = read_keyed(os.path.join(d, "cpu.stat")).get("usage_usec")
    if usage is None or cpu is None:
        return None
    stat = read_keyed(os.path.join(d, "memory.stat"))
    working_set = max(0, usage - stat.get("inactive_file", 0))
    return CgroupStats(time.time_ns(), cpu * 1000, usage, working_set, stat.get("anon", 0),
                       stat.get("pgfault", 0), stat.get("pgmajfault", 0))
