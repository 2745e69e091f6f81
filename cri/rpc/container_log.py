"""ReopenContainerLog: the kubelet renamed the log file (rotation); the monitor opens a new one."""
from __future__ import annotations

from cri_api.v1 import api_pb2 as api


def reopen_container_log(svc, req: api.ReopenContainerLogRequest) -> api.ReopenContainerLogResponse:
    ctr = svc.containers.resolve(req.container_id)
    # FAILED_PRECONDITION unless running, as containerd: the kubelet renames the file back.
    svc.runtime.reopen_log(ctr.id)
    return api.ReopenContainerLogResponse()
