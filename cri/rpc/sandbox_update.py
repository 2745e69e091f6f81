"""UpdatePodSandboxResources: the pod's new resources after an in-place resize.

api.proto: "UpdatePodSandboxResources synchronously updates the PodSandboxConfig with the pod-level
resource configuration. This method is called _after_ the kubelet reconfigures the pod-level
cgroups. This request is treated as best effort, and failure will not block the kubelet with
proceeding with a resize."

containerd (internal/cri/server/sandbox_update_resources.go) writes no cgroup: it passes the
request to NRI plugins and records overhead and resources on the sandbox.  podwire has no NRI; it
records them on the pod record likewise and sizes the pod's cgroup where it exists, writing only
what differs (cri/sandbox/cgroup.py), so the kubelet's own values are never rewritten.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api
from google.protobuf import json_format

from ..sandbox import cgroup

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)


def update_pod_sandbox_resources(svc: Services, req: api.UpdatePodSandboxResourcesRequest
                                 ) -> api.UpdatePodSandboxResourcesResponse:
    pod = svc.pods.resolve(req.pod_sandbox_id)
    overhead = req.overhead if req.HasField("overhead") else None
    resources = req.resources if req.HasField("resources") else None
    with svc.pods.op_lock(pod.id):
        # Under the pod's lock: a concurrent RemovePodSandbox either ran first (update() then
        # says NotFound) or waits until this is recorded.
        written = cgroup.apply(pod.cgroup_parent, cgroup.pod_totals(overhead, resources),
                               svc.config.cgroup_driver)
        # What the kubelet sent, as containerd keeps it (not the summed cgroup values).
        svc.pods.update(pod.id, overhead=_dict(overhead), resources=_dict(resources))
    log.info("pod %s resources updated; pod cgroup files written: %s", pod.id[:12],
             ", ".join(written) or "none")
    return api.UpdatePodSandboxResourcesResponse()


def _dict(msg) -> dict | None:
    return None if msg is None else json_format.MessageToDict(msg, preserving_proto_field_name=True)
