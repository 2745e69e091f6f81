"""ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats.

The kubelet uses these for every endpoint other than CRI-O's (UsingLegacyCadvisorStats),
so they feed eviction and the summary API.  CPU and memory come from the container's
cgroup (the runtime reads it, no runc call); a pod's figures are the sum of its
containers'; the writable layer is the size of the overlay upper dir; network counters
are read from the pod's netns by a short-lived `ip -n <ns> -s -j link` child.
ListPodSandboxMetrics (sandbox_metrics.py) reads through the same functions.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..oci import cgroupdriver, cgroups
from ..oci import stats as oci_stats
from ..store import filters
from ..store.records import POD_READY, RUNNING, ContainerRecord, PodRecord, now_ns

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)


def container_stats(svc: Services, req: api.ContainerStatsRequest) -> api.ContainerStatsResponse:
    ctr = svc.containers.resolve(req.container_id)
    return api.ContainerStatsResponse(stats=of_container(svc, ctr))


def list_container_stats(svc: Services, req: api.ListContainerStatsRequest) -> api.ListContainerStatsResponse:
    f = req.filter if req.HasField("filter") else None
    ctrs = filters.containers(svc.containers.list(), svc.containers, svc.pods, f)
    # Like containerd: stats of containers that run (exited ones have no cgroup left).
    return api.ListContainerStatsResponse(stats=[of_container(svc, c) for c in ctrs if c.state == RUNNING])


def pod_sandbox_stats(svc: Services, req: api.PodSandboxStatsRequest) -> api.PodSandboxStatsResponse:
    pod = svc.pods.resolve(req.pod_sandbox_id)
    return api.PodSandboxStatsResponse(stats=_pod(svc, pod))


def list_pod_sandbox_stats(svc: Services, req: api.ListPodSandboxStatsRequest) -> api.ListPodSandboxStatsResponse:
    f = req.filter if req.HasField("filter") else None
    pods = filters.pods(svc.pods.list(), svc.pods, f)
    return api.ListPodSandboxStatsResponse(stats=[_pod(svc, p) for p in pods])


def of_container(svc: Services, ctr: ContainerRecord) -> api.ContainerStats:
    """The CRI stats of one container (cpu and memory only while it runs)."""
    st = api.ContainerStats(attributes=api.ContainerAttributes(
        id=ctr.id, metadata=ctr.config.metadata, labels=ctr.config.labels,
        annotations=ctr.config.annotations))
    cg = svc.runtime.stats(ctr.id) if ctr.state == RUNNING else None
    if cg is not None:
        _fill_cpu_mem(st.cpu, st.memory, cg.timestamp_ns, cg.cpu_usage_ns, cg)
        _fill_v2_extras(st, cg)
    used, inodes = _upper_usage(os.path.join(svc.runtime.bundle_dir(ctr.id), "upper"))
    st.writable_layer.timestamp = now_ns()
    st.writable_layer.fs_id.mountpoint = svc.config.containers_dir
    st.writable_layer.used_bytes.value = used
    st.writable_layer.inodes_used.value = inodes
    return st


def _fill_cpu_mem(cpu: api.CpuUsage, mem: api.MemoryUsage, ts: int, cpu_ns: int, cg) -> None:
    cpu.timestamp = ts
    cpu.usage_core_nano_seconds.value = cpu_ns
    mem.timestamp = ts
    mem.working_set_bytes.value = cg.memory_working_set_bytes
    mem.usage_bytes.value = cg.memory_usage_bytes
    mem.rss_bytes.value = cg.memory_rss_bytes
    mem.page_faults.value = cg.page_faults
    mem.major_page_faults.value = cg.major_page_faults
    if cg.memory_available_bytes is not None:
        mem.available_bytes.value = cg.memory_available_bytes


def _fill_v2_extras(st: api.ContainerStats, cg: oci_stats.CgroupStats) -> None:
    """What only cgroup v2 has: swap (ContainerStats only) and PSI, each only where the kernel
    has the files (containerd fills them alike)."""
    if cg.swap_usage_bytes is not None:
        st.swap.timestamp = cg.timestamp_ns
        st.swap.swap_usage_bytes.value = cg.swap_usage_bytes
        if cg.swap_available_bytes is not None:
            st.swap.swap_available_bytes.value = cg.swap_available_bytes
    fill_psi(st.cpu, st.memory, st.io, cg.psi, cg.timestamp_ns)


def fill_psi(cpu: api.CpuUsage, mem: api.MemoryUsage, io: api.IoUsage,
             psi: dict[str, dict[str, dict[str, float]]], ts: int) -> None:
    """PSI into the CRI's PsiStats: Full/Some with Total in nanoseconds (the kernel's total is in
    microseconds; api.proto: "Unit: nanoseconds") and the three averages in percent."""
    io_psi = psi.get("io")
    if io_psi:
        io.timestamp = ts
    for usage, kind in ((cpu, "cpu"), (mem, "memory"), (io, "io")):
        lines = psi.get(kind)
        if not lines:
            continue
        for line, target in (("some", usage.psi.Some), ("full", usage.psi.Full)):
            values = lines.get(line)
            if values is None:
                continue
            target.Total = int(values.get("total", 0)) * 1000
            target.Avg10 = values.get("avg10", 0.0)
            target.Avg60 = values.get("avg60", 0.0)
            target.Avg300 = values.get("avg300", 0.0)


def _pod(svc: Services, pod: PodRecord) -> api.PodSandboxStats:
    st = api.PodSandboxStats(attributes=api.PodSandboxAttributes(
        id=pod.id, metadata=pod.config.metadata, labels=pod.config.labels,
        annotations=pod.config.annotations))
    ctrs = [of_container(svc, c) for c in svc.pod_containers(pod.id) if c.state == RUNNING]
    linux = st.linux
    linux.containers.extend(ctrs)
    ts = now_ns()
    linux.cpu.timestamp = linux.memory.timestamp = ts
    for c in ctrs:
        linux.cpu.usage_core_nano_seconds.value += c.cpu.usage_core_nano_seconds.value
        linux.memory.working_set_bytes.value += c.memory.working_set_bytes.value
        linux.memory.usage_bytes.value += c.memory.usage_bytes.value
        linux.memory.rss_bytes.value += c.memory.rss_bytes.value
        linux.memory.page_faults.value += c.memory.page_faults.value
        linux.memory.major_page_faults.value += c.memory.major_page_faults.value
    linux.process.timestamp = ts
    linux.process.process_count.value = sum(process_count(svc, c.attributes.id) for c in ctrs)
    if ctrs:
        _pod_psi(svc, pod, linux, ts)
    if pod.netns_name and pod.state == POD_READY:
        _network(linux.network, pod.netns_name, ts)
    return st


def _pod_psi(svc: Services, pod: PodRecord, linux: api.LinuxPodSandboxStats, ts: int) -> None:
    """PSI of the pod's own cgroup (v2; the kubelet's cgroup_parent, or podwire's directory for a
    cgroupfs pod without one): pressure does not add up over containers as usage does."""
    if not cgroups.is_v2():
        return
    parent = pod.cgroup_parent
    if not parent and svc.config.cgroup_driver == cgroupdriver.CGROUPFS:
        parent = f"{svc.config.cgroup_parent.rstrip('/')}/{pod.id}"
    path = cgroupdriver.pod_cgroup_dir(parent, svc.config.cgroup_driver)
    d = cgroups.controller_dir("", path) if path else None
    if d is not None:
        fill_psi(linux.cpu, linux.memory, linux.io, oci_stats.read_pressure(d), ts)


def process_count(svc: Services, ctr_id: str) -> int:
    try:
        path = svc.runtime.spec(ctr_id)["linux"]["cgroupsPath"]
    except (errors.CriError, KeyError):
        return 0
    d = cgroups.controller_dir("pids", path) or cgroups.controller_dir("", path)
    if d is None:
        return 0
    try:
        with open(os.path.join(d, "pids.current")) as f:
            return int(f.read())
    except (OSError, TypeError, ValueError):
        return 0


def read_links(netns: str) -> list[dict] | None:
    """The links of the named netns but lo, as `ip -j -s link` reports them (``ifname``,
    ``stats64`` with ``rx``/``tx`` bytes, packets, errors, dropped); None if they could not be
    read.  A child enters the netns: the shim's threads never setns()."""
    try:
        out = subprocess.run(["ip", "-n", netns, "-s", "-j", "link", "show"], capture_output=True,
                             text=True, timeout=5)
        links = json.loads(out.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        log.warning("network stats of %s: %s", netns, exc)
        return None
    return [link for link in links if link.get("ifname") != "lo"]


def _network(net: api.NetworkUsage, netns: str, ts: int) -> None:
    links = read_links(netns)
    if links is None:
        return
    net.timestamp = ts
    for link in links:
        s = link.get("stats64") or {}
        iface = api.NetworkInterfaceUsage(name=link.get("ifname", ""))
        iface.rx_bytes.value = s.get("rx", {}).get("bytes", 0)
        iface.rx_errors.value = s.get("rx", {}).get("errors", 0)
        iface.tx_bytes.value = s.get("tx", {}).get("bytes", 0)
        iface.tx_errors.value = s.get("tx", {}).get("errors", 0)
        if iface.name == "eth0":
            net.default_interface.CopyFrom(iface)
        net.interfaces.append(iface)


def _upper_usage(upper: str) -> tuple[int, int]:
    """(bytes, inodes) of the container's writable layer; (0, 0) when it has none."""
    if not upper or not os.path.isdir(upper):
        return 0, 0
    used = inodes = 0
    for root, dirs, files in os.walk(upper):
        inodes += len(dirs) + len(files)
        for name in files:
            try:
                used += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return used, inodes
