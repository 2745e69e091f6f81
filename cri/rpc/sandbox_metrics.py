"""ListPodSandboxMetrics: ``list_pod_sandbox_metrics(svc, req) -> ListPodSandboxMetricsResponse``.

cAdvisor-style metrics (metric_descriptors.py) for every pod sandbox: each running container's
from its cgroup and writable layer, read by the same code as ContainerStats (stats.py), and the
pod's own series: its containers' sums and its network namespace's counters per interface (a
short-lived `ip -n` child reads them; the shim's threads never setns()).  A pod without running
containers has only its start time and, while ready, its network; a figure the node cannot give
(swap without swap accounting, a cgroup already gone) is left out rather than sent as 0.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from cri_api.v1 import api_pb2 as api

from ..store.records import POD_READY, RUNNING, ContainerRecord, PodRecord, now_ns
from . import stats
from .metric_descriptors import DESCRIPTORS

if TYPE_CHECKING:
    from ..server.services import Services

NS = 1_000_000_000
# `ip -j -s link` stats64 keys -> metric names, per direction.
_NET = {"rx": ("receive", {"bytes": "bytes", "packets": "packets", "dropped": "packets_dropped",
                           "errors": "errors"}),
        "tx": ("transmit", {"bytes": "bytes", "packets": "packets", "dropped": "packets_dropped",
                            "errors": "errors"})}


def list_pod_sandbox_metrics(svc: Services, req: api.ListPodSandboxMetricsRequest
                             ) -> api.ListPodSandboxMetricsResponse:
    return api.ListPodSandboxMetricsResponse(pod_metrics=[_pod(svc, p) for p in svc.pods.list()])


class _Series:
    """Metrics sharing their base label values (container, id, image, name, namespace, pod)."""

    def __init__(self, out, labels: tuple[str, ...], ts: int) -> None:
        self.out, self.labels, self.ts = out, labels, ts

    def add(self, name: str, value: int, *extra: str) -> None:
        desc = DESCRIPTORS[name]
        m = api.Metric(name=name, timestamp=self.ts, metric_type=desc.type,
                       label_values=self.labels + extra)
        m.value.value = max(0, int(value))
        self.out.append(m)


def _pod(svc: Services, pod: PodRecord) -> api.PodSandboxMetrics:
    out = api.PodSandboxMetrics(pod_sandbox_id=pod.id)
    md = pod.config.metadata
    running = [c for c in svc.pod_containers(pod.id) if c.state == RUNNING]
    sums = {"cpu": 0, "usage": 0, "working_set": 0, "rss": 0, "processes": 0}
    measured = False
    for ctr in running:
        cm = out.container_metrics.add(container_id=ctr.id)
        labels = (ctr.config.metadata.name, ctr.id, ctr.image, ctr.config.metadata.name,
                  md.namespace, md.name)
        got = _container(svc, ctr, _Series(cm.metrics, labels, now_ns()))
        if got is not None:
            measured = True
            for key, value in got.items():
                sums[key] += value
    ts = now_ns()
    series = _Series(out.metrics, ("", pod.id, "", md.name, md.namespace, md.name), ts)
    if measured:
        series.add("container_cpu_usage_seconds_total", sums["cpu"] // NS, "total")
        series.add("container_memory_usage_bytes", sums["usage"])
        series.add("container_memory_working_set_bytes", sums["working_set"])
        series.add("container_memory_rss", sums["rss"])
        series.add("container_processes", sums["processes"])
    if pod.created_at:
        series.add("container_start_time_seconds", pod.created_at // NS)
    if pod.state == POD_READY and pod.netns_name:
        _network(series, pod.netns_name)
    return out


def _container(svc: Services, ctr: ContainerRecord, series: _Series) -> Optional[dict[str, int]]:
    """The container's series; its cpu and memory figures for the pod's sums (None when its
    cgroup could not be read)."""
    st = stats.of_container(svc, ctr)
    series.ts = st.cpu.timestamp or series.ts
    if ctr.started_at:
        series.add("container_start_time_seconds", ctr.started_at // NS)
    series.add("container_fs_usage_bytes", st.writable_layer.used_bytes.value)
    if not st.HasField("cpu"):
        return None
    mem = st.memory
    processes = stats.process_count(svc, ctr.id)
    series.add("container_cpu_usage_seconds_total", st.cpu.usage_core_nano_seconds.value // NS, "total")
    series.add("container_memory_usage_bytes", mem.usage_bytes.value)
    series.add("container_memory_working_set_bytes", mem.working_set_bytes.value)
    series.add("container_memory_rss", mem.rss_bytes.value)
    series.add("container_memory_failures_total", mem.page_faults.value, "pgfault", "hierarchy")
    series.add("container_memory_failures_total", mem.major_page_faults.value, "pgmajfault", "hierarchy")
    series.add("container_processes", processes)
    if st.HasField("swap") and st.swap.HasField("swap_usage_bytes"):
        series.add("container_memory_swap", st.swap.swap_usage_bytes.value)
    return {"cpu": st.cpu.usage_core_nano_seconds.value, "usage": mem.usage_bytes.value,
            "working_set": mem.working_set_bytes.value, "rss": mem.rss_bytes.value,
            "processes": processes}


def _network(series: _Series, netns: str) -> None:
    links = stats.read_links(netns)
    for link in links or ():
        counters = link.get("stats64") or {}
        for key, (direction, names) in _NET.items():
            values = counters.get(key) or {}
            for field, metric in names.items():
                series.add(f"container_network_{direction}_{metric}_total", values.get(field, 0),
                           link.get("ifname", ""))
