"""ReopenContainerLog: the kubelet renamed the log file (rotation); the monitor opens a new one."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

if TYPE_CHECKING:
    from ..server.services import Services


def reopen_container_log(svc: Services, req: api.ReopenContainerLogRequest) -> api.ReopenContainerLogResponse:
    ctr = svc.containers.resolve(req.container_id)
    # FAILED_PRECONDITION unless running, as containerd: the kubelet renames the file back.
    svc.runtime.reopen_log(ctr.id)
    return api.ReopenContainerLogResponse()
