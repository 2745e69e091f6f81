"""The pod's own cgroup (the kubelet's cgroup_parent) and what UpdatePodSandboxResources writes there.

With the cgroupfs driver the kubelet creates the pod cgroup and resizes it itself, *before* it calls
UpdatePodSandboxResources (api.proto: "This method is called _after_ the kubelet reconfigures the
pod-level cgroups").  So a file is written only when its value differs from what it holds: for the
kubelet every value is normally in place already and nothing is written at all, and a limit the
kubelet just applied is never written again (where a second write could only fail or race it).
Callers that did not resize the cgroup (crictl, tests) get the values applied.

Only cgroups that exist are touched, never created: one missing (a pod without cgroup_parent, a
hierarchy the kubelet did not use) is skipped, as the call is best effort (api.proto).
Applied: cpu shares/quota/period, the memory limit and cpuset cpus/mems: what the kubelet sends for
a pod (kuberuntime convertResourceConfigToLinuxContainerResources).  Not applied: swap and hugepage
limits (never sent for a pod), `unified` (cgroup v2 only and free-form; the kubelet already wrote
it), oom_score_adj (a process property, not a cgroup one).
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..oci import cgroupdriver, cgroups
from ..oci import resources as oci_resources

log = logging.getLogger(__name__)

MIN_SHARES, MAX_SHARES = 2, 262144      # the kernel's (and kubelet's) cpu.shares bounds
UNLIMITED = "unlimited"                  # a normalised "no limit", whatever a file spells it as
_HUGE = 1 << 62                          # v1 reads an unlimited memory limit as PAGE_COUNTER_MAX pages


@dataclasses.dataclass(frozen=True)
class Setting:
    controller: str     # the v1 hierarchy holding `file`; ignored on v2 (one unified directory)
    file: str
    value: str


# --- pure: what the pod cgroup should hold ---------------------------------------------------

def pod_totals(overhead, resources) -> api.LinuxContainerResources | None:
    """The pod cgroup's values.  The kubelet sizes the pod cgroup as the containers' sum plus the
    RuntimeClass overhead, and sends the two apart, having subtracted the overhead from its own
    values (kuberuntime subtractOverheadFromResourceConfig): add it back the same way.  No
    `resources` means nothing to apply (the overhead alone is not the pod's size)."""
    if resources is None:
        return None
    total = api.LinuxContainerResources()
    total.CopyFrom(resources)
    if total.cpu_quota < 0:
        # Unlimited stays unlimited; a kubelet before the fix subtracted the overhead from -1.
        total.cpu_quota = -1
    if overhead is None:
        return total
    if total.cpu_shares and overhead.cpu_shares:
        total.cpu_shares = _milli_to_shares(_shares_to_milli(total.cpu_shares)
                                            + _shares_to_milli(overhead.cpu_shares))
    if total.cpu_quota > 0 and overhead.cpu_quota > 0:
        total.cpu_quota += overhead.cpu_quota
    if total.memory_limit_in_bytes > 0 and overhead.memory_limit_in_bytes > 0:
        total.memory_limit_in_bytes += overhead.memory_limit_in_bytes
    return total


def _shares_to_milli(shares: int) -> int:
    """The kubelet's SharesToMilliCPU, except that the minimum stands for "no request": the kubelet
    clamps a zero request to 2 shares, so 2 must add nothing or the sum drifts off its value."""
    return 0 if shares <= MIN_SHARES else -(-shares * 1000 // 1024)


def _milli_to_shares(milli: int) -> int:
    """The kubelet's MilliCPUToShares."""
    return min(max(milli * 1024 // 1000, MIN_SHARES), MAX_SHARES)


def settings(total, v2: bool) -> list[Setting]:
    """The files and values for `total`.  What is set is decided as for a container (zero = not
    set; oci/resources.py); a v1 period comes before its quota (see _write_cfs)."""
    # v2=False: the plain field mapping (what is set), without v2's swap defaults and unified.
    oci = oci_resources.linux_resources(total, v2=False)
    cpu, memory = oci.get("cpu", {}), oci.get("memory", {})
    return _v2_settings(cpu, memory) if v2 else _v1_settings(cpu, memory)


def _v1_settings(cpu: dict, memory: dict) -> list[Setting]:
    out = [Setting("cpu", f"cpu.{name}", str(cpu[key]))
           for key, name in (("shares", "shares"), ("period", "cfs_period_us"), ("quota", "cfs_quota_us"))
           if key in cpu]
    out += _cpuset(cpu)
    if "limit" in memory:
        out.append(Setting("memory", "memory.limit_in_bytes", str(memory["limit"])))
    return out


def _v2_settings(cpu: dict, memory: dict) -> list[Setting]:
    out = []
    if "shares" in cpu:
        out.append(Setting("cpu", "cpu.weight", str(shares_to_weight(cpu["shares"]))))
    if "quota" in cpu:
        # cpu.max takes a period only together with a quota ("$MAX $PERIOD"); the kubelet always
        # sends both, so a lone period is left alone rather than guessed at.
        quota = "max" if cpu["quota"] < 0 else str(cpu["quota"])
        out.append(Setting("cpu", "cpu.max", f"{quota} {cpu['period']}" if "period" in cpu else quota))
    out += _cpuset(cpu)
    if "limit" in memory:
        out.append(Setting("memory", "memory.max", "max" if memory["limit"] < 0 else str(memory["limit"])))
    return out


def _cpuset(cpu: dict) -> list[Setting]:
    return [Setting("cpuset", f"cpuset.{key}", cpu[key]) for key in ("cpus", "mems") if key in cpu]


def shares_to_weight(shares: int) -> int:
    """cgroup v2 cpu.weight for v1 shares: the linear mapping of runc 1.1 (this node's runc), so a
    pod's weight and its containers' agree."""
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def same(setting: Setting, current: str, page_size: int) -> bool:
    """Does the file already hold the value?  Compared as the kernel reports it back: memory limits
    rounded down to pages, "unlimited" spelt -1, max or a huge number, cpu lists as sets."""
    want, have = setting.value.strip(), current.strip()
    if setting.file in ("memory.limit_in_bytes", "memory.max"):
        return _memory(want, page_size) == _memory(have, page_size)
    if setting.file == "cpu.cfs_quota_us":
        return _quota(want) == _quota(have)
    if setting.file == "cpu.max":
        # A value without a period leaves the period as it is.
        return have.split()[:len(want.split())] == want.split()
    if setting.file.startswith("cpuset."):
        return _cpu_list(want) == _cpu_list(have)
    return want == have


def _memory(value: str, page_size: int):
    if value == "max":
        return UNLIMITED
    n = int(value)
    return UNLIMITED if n < 0 or n >= _HUGE else n // page_size * page_size


def _quota(value: str):
    return UNLIMITED if int(value) < 0 else int(value)


def _cpu_list(value: str) -> frozenset[int]:
    """"0-2,4" -> {0, 1, 2, 4}; the kernel reads back "0,1,2" as "0-2"."""
    out: set[int] = set()
    for part in filter(None, value.replace(" ", "").split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


def pod_cgroup_path(cgroup_parent: str, driver: str = cgroupdriver.CGROUPFS) -> str | None:
    """The pod cgroup's path under each hierarchy, None when there is none to touch: no parent
    given, the root cgroup, a path that would leave the hierarchy, a parent of the other driver.
    With systemd the parent is a slice, whose directory is its expansion
    (kubepods-burstable-pod1.slice -> /kubepods.slice/kubepods-burstable.slice/...); the kubelet
    sends that expanded path itself and has set the slice's properties through systemd, so here,
    too, normally nothing differs and nothing is written."""
    return cgroupdriver.pod_cgroup_dir(cgroup_parent, driver)


# --- I/O: apply to the cgroup that exists -----------------------------------------------------

def apply(cgroup_parent: str, total, driver: str = cgroupdriver.CGROUPFS) -> list[str]:
    """Write what differs; returns the files written.  Checks before writing anything, so a refused
    memory limit leaves the cgroup as it was."""
    path = pod_cgroup_path(cgroup_parent, driver)
    if path is None or total is None:
        return []
    changes = _changes(path, settings(total, cgroups.is_v2()))
    _check_memory(changes)
    return _write_all(changes)


def _changes(path: str, wanted: list[Setting]) -> list[tuple[Setting, str]]:
    page_size = os.sysconf("SC_PAGE_SIZE")
    out = []
    for s in wanted:
        directory = cgroups.controller_dir(s.controller, path)
        current = _read(os.path.join(directory, s.file)) if directory else None
        if not directory or current is None:
            continue        # no such cgroup (or file) in this hierarchy: nothing of the pod's to set
        if not same(s, current, page_size):
            out.append((s, os.path.join(directory, s.file)))
    return out


def _check_memory(changes: list[tuple[Setting, str]]) -> None:
    """Refuse a memory limit at or below what the pod uses, the kubelet's own rule before it
    lowers a pod's limit ("Aborting attempt to set pod memory limit less than current memory
    usage", kuberuntime doPodResizeAction).  containerd never writes the pod cgroup, so never
    hits this; podwire does, and must not do worse than the kubelet: v1 would refuse the write
    with EBUSY only after reclaiming the pod's page cache, and v2 would OOM-kill the pod."""
    for s, file in changes:
        if s.file not in ("memory.limit_in_bytes", "memory.max") or s.value in ("-1", "max"):
            continue
        usage_file = "memory.usage_in_bytes" if s.file == "memory.limit_in_bytes" else "memory.current"
        usage = cgroups.read_int(os.path.join(os.path.dirname(file), usage_file))
        if usage is not None and usage >= int(s.value):
            raise errors.precondition(
                f"pod memory limit {s.value} is not above the pod's current usage {usage} "
                f"({os.path.dirname(file)}); not lowering it")


def _write_all(changes: list[tuple[Setting, str]]) -> list[str]:
    pending = list(changes)
    while pending:
        s, file = pending.pop(0)
        if s.file == "cpu.cfs_period_us" and pending and pending[0][0].file == "cpu.cfs_quota_us":
            _write_cfs((s, file), pending.pop(0))
        else:
            _write(file, s.value)
    return [file for _, file in changes]


def _write_cfs(period: tuple[Setting, str], quota: tuple[Setting, str]) -> None:
    """The kernel checks quota/period after each write (on v1 also against the parent's and the
    children's ratios), so a new period can be refused next to the old quota while both new ones
    together are fine: then the quota goes first (runc orders its cfs writes the same way)."""
    try:
        _write(period[1], period[0].value)
    except errors.CriError:
        _write(quota[1], quota[0].value)
        _write(period[1], period[0].value)
        return
    _write(quota[1], quota[0].value)


def _read(file: str) -> str | None:
    try:
        with open(file) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write(file: str, value: str) -> None:
    try:
        with open(file, "w") as f:
            f.write(value)
    except FileNotFoundError:
        return      # the cgroup went away meanwhile (the pod being removed): nothing left to size
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.EINVAL):
            raise errors.precondition(f"the kernel refused {value} for {file}: {exc.strerror}") from exc
        raise errors.internal(f"writing {value} to {file}: {exc}") from exc
    log.debug("pod cgroup: %s = %s", file, value)
