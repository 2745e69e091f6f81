"""ListMetricDescriptors: ``list_metric_descriptors(svc, req) -> ListMetricDescriptorsResponse``.

The metrics ListPodSandboxMetrics (sandbox_metrics.py) emits, under cAdvisor's names, so that a
kubelet with the PodAndContainerStatsFromCRI gate serves them on /metrics/cadvisor and
dashboards written for cAdvisor keep working.  The kubelet reads these descriptors once, when
it starts, and drops any metric whose name is not among them (pkg/kubelet/metrics/collectors/
cri_metrics.go); label values are matched to ``label_keys`` by position.

Labels are cAdvisor's container labels: ``container`` (the CRI container name, "" on a pod's
own series), ``id`` (the container's or the pod sandbox's CRI id), ``image`` (the image the
kubelet asked for, "" on a pod's series), ``name`` (the container's, or the pod's, CRI name),
``namespace`` and ``pod`` (the pod's metadata).  Values are the CRI's UInt64: seconds are
whole seconds (as CRI-O reports them).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

if TYPE_CHECKING:
    from ..server.services import Services

BASE_LABELS = ("container", "id", "image", "name", "namespace", "pod")
NETWORK_LABELS = ("interface",)


@dataclasses.dataclass(frozen=True)
class Descriptor:
    name: str
    type: api.MetricType.ValueType  # api.COUNTER or api.GAUGE
    help: str
    extra_labels: tuple[str, ...] = ()

    @property
    def label_keys(self) -> tuple[str, ...]:
        return BASE_LABELS + self.extra_labels

    def proto(self) -> api.MetricDescriptor:
        return api.MetricDescriptor(name=self.name, help=self.help, label_keys=self.label_keys)


def _net(name: str, help_: str) -> Descriptor:
    return Descriptor(name, api.COUNTER, help_, NETWORK_LABELS)


DESCRIPTORS: dict[str, Descriptor] = {d.name: d for d in (
    # From the container's cgroup (cri/oci/stats.py, as ContainerStats); a pod's own series is
    # the sum over its running containers.
    Descriptor("container_cpu_usage_seconds_total", api.COUNTER,
               "Cumulative CPU time consumed in seconds (whole seconds).", ("cpu",)),
    Descriptor("container_memory_usage_bytes", api.GAUGE,
               "Current memory usage in bytes, including all memory regardless of when it was accessed."),
    Descriptor("container_memory_working_set_bytes", api.GAUGE,
               "Current working set in bytes (usage minus inactive file cache)."),
    Descriptor("container_memory_rss", api.GAUGE, "Size of RSS (anonymous memory) in bytes."),
    Descriptor("container_memory_swap", api.GAUGE,
               "Container swap usage in bytes (cgroup v2 with swap accounting only)."),
    Descriptor("container_memory_failures_total", api.COUNTER,
               "Cumulative count of memory allocation failures (page faults).",
               ("failure_type", "scope")),
    Descriptor("container_processes", api.GAUGE, "Number of processes running inside the container."),
    Descriptor("container_fs_usage_bytes", api.GAUGE,
               "Bytes used by the container's writable layer."),
    Descriptor("container_start_time_seconds", api.GAUGE,
               "Start time of the container (a pod's own series: the sandbox's creation) since "
               "the Unix epoch in seconds."),
    # From the pod's network namespace: on the pod's own series only (its containers share it).
    _net("container_network_receive_bytes_total", "Cumulative count of bytes received."),
    _net("container_network_receive_packets_total", "Cumulative count of packets received."),
    _net("container_network_receive_packets_dropped_total",
         "Cumulative count of packets dropped while receiving."),
    _net("container_network_receive_errors_total",
         "Cumulative count of errors encountered while receiving."),
    _net("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted."),
    _net("container_network_transmit_packets_total", "Cumulative count of packets transmitted."),
    _net("container_network_transmit_packets_dropped_total",
         "Cumulative count of packets dropped while transmitting."),
    _net("container_network_transmit_errors_total",
         "Cumulative count of errors encountered while transmitting."),
)}


def list_metric_descriptors(svc: Services, req: api.ListMetricDescriptorsRequest
                            ) -> api.ListMetricDescriptorsResponse:
    return api.ListMetricDescriptorsResponse(descriptors=[d.proto() for d in DESCRIPTORS.values()])
