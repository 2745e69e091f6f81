"""ContainerStatus: a lock-free read of the committed record."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from . import container_sync, views

if TYPE_CHECKING:
    from ..server.services import Services


def container_status(svc: Services, req: api.ContainerStatusRequest) -> api.ContainerStatusResponse:
    ctr = container_sync.refresh(svc, svc.containers.resolve(req.container_id))
    resp = api.ContainerStatusResponse(status=views.container_status(ctr))
    if req.verbose:
        resp.info.update(views.container_info(ctr))
    return resp
