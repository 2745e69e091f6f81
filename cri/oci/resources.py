"""LinuxContainerResources -> OCI linux.resources (cgroup v1 semantics), and the OOM score."""
from __future__ import annotations

from typing import Any

OOM_SCORE_ADJ_MAX = 1000


def linux_resources(r) -> dict[str, Any]:
    """OCI resources for a CRI LinuxContainerResources (None/empty = no limits).  Zero means
    "not set" in the CRI, so zero fields are left out; runc leaves those files untouched."""
    out: dict[str, Any] = {}
    if r is None:
        return out
    cpu = {k: v for k, v in (("shares", r.cpu_shares), ("quota", r.cpu_quota),
                             ("period", r.cpu_period), ("cpus", r.cpuset_cpus),
                             ("mems", r.cpuset_mems)) if v}
    if cpu:
        out["cpu"] = cpu
    memory = {}
    if r.memory_limit_in_bytes:
        memory["limit"] = r.memory_limit_in_bytes
    if r.memory_swap_limit_in_bytes:
        # The kubelet sets swap = limit on nodes without swap (cgroup v1 memsw), i.e. no swap.
        memory["swap"] = r.memory_swap_limit_in_bytes
    if memory:
        out["memory"] = memory
    hugepages = [{"pageSize": h.page_size, "limit": h.limit} for h in r.hugepage_limits]
    if hugepages:
        out["hugepageLimits"] = hugepages
    # r.unified is cgroup v2 only; a v1 node has nowhere to write it.
    return out


def current_oom_score_adj() -> int:
    with open("/proc/self/oom_score_adj") as f:
        return int(f.read())


def clamp_oom_score_adj(requested: int, floor: int | None = None) -> int:
    """containerd's restrict_oom_score_adj: never below the shim's own score.  Lowering a score
    needs CAP_SYS_RESOURCE, which this node lacks (runc fails on a negative value), and a
    container must never be less likely to be OOM-killed than the runtime that manages it."""
    floor = current_oom_score_adj() if floor is None else floor
    return max(floor, min(requested, OOM_SCORE_ADJ_MAX))
