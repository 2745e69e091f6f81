"""PodSandboxStatus and ListPodSandbox: lock-free reads of the committed records."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from ..store import filters
from ..store.records import now_ns
from . import views

if TYPE_CHECKING:
    from ..server.services import Services


def pod_sandbox_status(svc: Services, req: api.PodSandboxStatusRequest) -> api.PodSandboxStatusResponse:
    pod = svc.pods.resolve(req.pod_sandbox_id)
    resp = api.PodSandboxStatusResponse(status=views.pod_status(pod), timestamp=now_ns())
    # Evented PLEG reads the containers' statuses from here too.
    resp.containers_statuses.extend(views.container_status(c) for c in svc.pod_containers(pod.id))
    if req.verbose:
        resp.info.update(views.pod_info(pod))
    return resp


def list_pod_sandbox(svc: Services, req: api.ListPodSandboxRequest) -> api.ListPodSandboxResponse:
    f = req.filter if req.HasField("filter") else None
    pods = filters.pods(svc.pods.list(), svc.pods, f)
    pods.sort(key=lambda p: p.created_at)
    return api.ListPodSandboxResponse(items=[views.pod_sandbox(p) for p in pods])
