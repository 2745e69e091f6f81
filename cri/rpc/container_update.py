"""UpdateContainerResources: apply new cgroup limits to a created or running container."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api
from google.protobuf import json_format

if TYPE_CHECKING:
    from ..server.services import Services


def update_container_resources(svc: Services, req: api.UpdateContainerResourcesRequest
                               ) -> api.UpdateContainerResourcesResponse:
    ctr = svc.containers.resolve(req.container_id)
    if not req.HasField("linux"):
        # Nothing to apply (a request with only Windows resources, or none): success, as in
        # containerd, whose resource update returns early on nil Linux resources.
        return api.UpdateContainerResourcesResponse()
    with svc.containers.op_lock(ctr.id):
        svc.runtime.update_resources(ctr.id, req.linux)
        merged = dict(ctr.resources or {})
        merged.update(json_format.MessageToDict(req.linux, preserving_proto_field_name=True))
        svc.containers.update(ctr.id, resources=merged)
    return api.UpdateContainerResourcesResponse()
