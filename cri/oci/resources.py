"""LinuxContainerResources -> OCI linux.resources, for cgroup v1 and v2, and the OOM score.

The OCI fields are cgroup v1's; on a v2 host runc converts them itself (libcontainer fs2 and
systemd v2): shares -> cpu.weight, quota/period -> cpu.max "<quota|max> <period>", cpus/mems ->
cpuset.cpus/cpuset.mems, limit -> memory.max, swap (memory+swap, as on v1) -> memory.swap.max =
swap - limit (ConvertMemorySwapToCgroupV2Value), hugepageLimits -> hugetlb.<size>.max.  So the
shim passes OCI fields on both versions and never writes v2 file names for them: the same
config.json works with either driver, and runc's --systemd-cgroup turns them into unit
properties.  What has no OCI field goes through `unified` as the kubelet sent it (v2 only):
memory.oom.group, memory.swap.max under NoSwap/LimitedSwap, memory.min/high under MemoryQoS, and
pids.max (the CRI has no pids field; the kubelet limits pids on the pod cgroup).  runc writes
the unified files after the OCI-derived ones, so a unified key wins over the field it overlaps.

v1 output is exactly what it was before v2 support: unified is left out (the kubelet never sends
it to a v1 node; containerd would copy it and runc refuse the container), swap is passed only
when the request sets it.
"""
from __future__ import annotations

from typing import Any

from cri.errors import invalid
from cri.oci import cgroups

OOM_SCORE_ADJ_MAX = 1000


def linux_resources(r, *, v2: bool | None = None, swap_controller: bool | None = None,
                    controllers: frozenset[str] | None = None) -> dict[str, Any]:
    """OCI resources for a CRI LinuxContainerResources (None/empty = no limits).  Zero means
    "not set" in the CRI, so zero fields are left out; runc leaves those files untouched.

    v2 (default: this host's), swap_controller (default: memory.swap.max exists) and
    controllers (default: the v2 root's cgroup.controllers) are there for tests."""
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
    if v2 is None:
        v2 = cgroups.is_v2()
    if not v2:
        # r.unified is cgroup v2 only; a v1 node has nowhere to write it.
        return out
    if controllers is None:
        controllers = cgroups.v2_controllers()
    if swap_controller is None:
        swap_controller = cgroups.swap_controller_available()
    _v2_memory(out, r, swap_controller)
    if hugepages and controllers and "hugetlb" not in controllers:
        # containerd's tolerate_missing_hugetlb_controller (default true): the kubelet sends a
        # limit (usually 0) for every page size, on kernels without hugetlb too.
        del out["hugepageLimits"]
    unified = dict(r.unified)
    if unified:
        check_unified(unified, controllers)
        out["unified"] = unified
    return out


def _v2_memory(out: dict[str, Any], r, swap_controller: bool) -> None:
    """Swap on v2, as containerd sets it (WithResources): with a memory limit and no swap
    limit, swap = limit, i.e. memory.swap.max 0 -- a limited container does not swap -- unless
    the kernel has no swap accounting, in which case no swap value at all (runc would fail
    writing a memory.swap.max that does not exist).  A swap limit runc would refuse is refused
    here with its reason, as INVALID_ARGUMENT rather than a failed runc create."""
    limit, swap = r.memory_limit_in_bytes, r.memory_swap_limit_in_bytes
    if swap > 0 and limit <= 0:
        raise invalid(f"memory_swap_limit_in_bytes {swap} without memory_limit_in_bytes: the "
                      f"swap limit is memory+swap, so it needs a memory limit")
    if swap > 0 and swap < limit:
        raise invalid(f"memory_swap_limit_in_bytes {swap} is below memory_limit_in_bytes "
                      f"{limit}: the swap limit is memory+swap, at least the memory limit")
    if not swap_controller:
        out.get("memory", {}).pop("swap", None)
    elif limit > 0 and not swap:
        out["memory"]["swap"] = limit


def check_unified(unified: dict[str, str], controllers: frozenset[str]) -> None:
    """The checks runc makes on unified keys (fs2 setUnified), up front with a clear
    INVALID_ARGUMENT: a file name in the form <controller>.<parameter>, of a controller this
    host has ("cgroup." files are the core's).  An empty controller list means unknown."""
    for key in sorted(unified):
        controller, dot, param = key.partition(".")
        if "/" in key or not dot or not controller or not param:
            raise invalid(f"unified resource {key!r} must be a cgroup v2 file name, "
                          f"<controller>.<parameter>")
        if controllers and controller != "cgroup" and controller not in controllers:
            raise invalid(f"unified resource {key!r}: this node has no {controller!r} controller "
                          f"(it has {', '.join(sorted(controllers))})")


def current_oom_score_adj() -> int:
    with open("/proc/self/oom_score_adj") as f:
        return int(f.read())


def clamp_oom_score_adj(requested: int, floor: int | None = None) -> int:
    """containerd's restrict_oom_score_adj: never below the shim's own score.  Lowering a score
    needs CAP_SYS_RESOURCE, which this node lacks (runc fails on a negative value), and a
    container must never be less likely to be OOM-killed than the runtime that manages it."""
    floor = current_oom_score_adj() if floor is None else floor
    return max(floor, min(requested, OOM_SCORE_ADJ_MAX))
