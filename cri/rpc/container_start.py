"""StartContainer: `runc start` of a created container, then watch it for its exit."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..store.records import CREATED, POD_READY
from . import container_sync, events

if TYPE_CHECKING:
    from ..server.services import Services


def start_container(svc: Services, req: api.StartContainerRequest) -> api.StartContainerResponse:
    _start(svc, svc.containers.resolve(req.container_id).id)
    return api.StartContainerResponse()


def _start(svc: Services, ctr_id: str) -> None:
    with svc.containers.op_lock(ctr_id):
        ctr = svc.containers.get(ctr_id)
        if ctr is None:
            raise errors.not_found("container was removed")
        if ctr.state != CREATED:
            raise errors.precondition(f"container {ctr.id} is {ctr.state}, not created")
        pod = svc.pods.get(ctr.pod_id)
        if pod is None or pod.state != POD_READY:
            raise errors.precondition(f"pod sandbox {ctr.pod_id} of container {ctr.id} is not ready")
        svc.runtime.start(ctr.id)
        svc.watcher.watch(ctr.id)
        events.publish(svc, ctr.id, ctr.pod_id, events.STARTED)
        container_sync.refresh(svc, ctr)
