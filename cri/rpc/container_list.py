"""ListContainers: a lock-free read of the committed records, with containerd's filters."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from ..store import filters
from . import container_sync, views

if TYPE_CHECKING:
    from ..server.services import Services


def list_containers(svc: Services, req: api.ListContainersRequest) -> api.ListContainersResponse:
    f = req.filter if req.HasField("filter") else None
    # Refresh first so a state filter sees exits that just happened.
    items = filters.containers(container_sync.refresh_all(svc, svc.containers.list()), svc.containers,
                               svc.pods, f)
    items.sort(key=lambda c: c.created_at)
    return api.ListContainersResponse(containers=[views.container(c) for c in items])
