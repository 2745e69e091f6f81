"""RuntimeService: one line per RPC, delegating to cri/rpc (the boundary wraps each)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from cri_api.v1 import api_pb2_grpc

from ..errors import CriError
from ..rpc import (attach, container_create, container_list, container_log, container_remove,
                   container_start, container_status, container_stop, container_update, events, exec,
                   exec_sync, metric_descriptors, port_forward, runtime_info, sandbox_metrics,
                   sandbox_remove, sandbox_run, sandbox_status, sandbox_stop, sandbox_update, stats)
from . import boundary

if TYPE_CHECKING:
    from .services import Services


def _unimplemented(what: str) -> CriError:
    return CriError(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not implemented by podwire-cri")


@boundary.servicer(api_pb2_grpc.RuntimeServiceServicer)
class RuntimeService(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    # --- runtime info -------------------------------------------------------
    def Version(self, req, ctx):
        return runtime_info.version(self.svc, req)

    def Status(self, req, ctx):
        return runtime_info.status(self.svc, req)

    def RuntimeConfig(self, req, ctx):
        return runtime_info.runtime_config(self.svc, req)

    def UpdateRuntimeConfig(self, req, ctx):
        return runtime_info.update_runtime_config(self.svc, req)

    # --- pod sandboxes ------------------------------------------------------
    def RunPodSandbox(self, req, ctx):
        return sandbox_run.run_pod_sandbox(self.svc, req)

    def StopPodSandbox(self, req, ctx):
        return sandbox_stop.stop_pod_sandbox(self.svc, req)

    def RemovePodSandbox(self, req, ctx):
        return sandbox_remove.remove_pod_sandbox(self.svc, req)

    def PodSandboxStatus(self, req, ctx):
        return sandbox_status.pod_sandbox_status(self.svc, req)

    def ListPodSandbox(self, req, ctx):
        return sandbox_status.list_pod_sandbox(self.svc, req)

    def UpdatePodSandboxResources(self, req, ctx):
        return sandbox_update.update_pod_sandbox_resources(self.svc, req)

    # --- containers ---------------------------------------------------------
    def CreateContainer(self, req, ctx):
        return container_create.create_container(self.svc, req)

    def StartContainer(self, req, ctx):
        return container_start.start_container(self.svc, req)

    def StopContainer(self, req, ctx):
        return container_stop.stop_container(self.svc, req)

    def RemoveContainer(self, req, ctx):
        return container_remove.remove_container(self.svc, req)

    def ListContainers(self, req, ctx):
        return container_list.list_containers(self.svc, req)

    def ContainerStatus(self, req, ctx):
        return container_status.container_status(self.svc, req)

    def UpdateContainerResources(self, req, ctx):
        return container_update.update_container_resources(self.svc, req)

    def ReopenContainerLog(self, req, ctx):
        return container_log.reopen_container_log(self.svc, req)

    def ExecSync(self, req, ctx):
        return exec_sync.exec_sync(self.svc, req)

    # --- streaming: URLs on the streaming server (cri/streaming) ---
    def Exec(self, req, ctx):
        return exec.exec_(self.svc, req)

    def Attach(self, req, ctx):
        return attach.attach(self.svc, req)

    def PortForward(self, req, ctx):
        return port_forward.port_forward(self.svc, req)

    # --- stats and events ---------------------------------------------------
    def ContainerStats(self, req, ctx):
        return stats.container_stats(self.svc, req)

    def ListContainerStats(self, req, ctx):
        return stats.list_container_stats(self.svc, req)

    def PodSandboxStats(self, req, ctx):
        return stats.pod_sandbox_stats(self.svc, req)

    def ListPodSandboxStats(self, req, ctx):
        return stats.list_pod_sandbox_stats(self.svc, req)

    # cAdvisor-style metrics for a kubelet with PodAndContainerStatsFromCRI
    def ListMetricDescriptors(self, req, ctx):
        return metric_descriptors.list_metric_descriptors(self.svc, req)

    def ListPodSandboxMetrics(self, req, ctx):
        return sandbox_metrics.list_pod_sandbox_metrics(self.svc, req)

    def GetContainerEvents(self, req, ctx):
        yield from events.get_container_events(self.svc, req, ctx)

    def CheckpointContainer(self, req, ctx):
        raise _unimplemented("CheckpointContainer")
