"""ExecSync: run a command in a running container and return its output (probes, hooks).

The runtime's exec never hangs on a background child that keeps the pipes open: it
stops reading a short drain time after the command itself exited.  A timeout is
DEADLINE_EXCEEDED, which the kubelet reports as a probe timeout.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors

if TYPE_CHECKING:
    from ..server.services import Services


def exec_sync(svc: Services, req: api.ExecSyncRequest) -> api.ExecSyncResponse:
    # Kept: with no command runc fails with "args must not be empty"; say it in the CRI's words.
    if not req.cmd:
        raise errors.invalid("ExecSync needs a command")
    ctr = svc.containers.resolve(req.container_id)
    # A negative timeout means none, like 0: containerd and CRI-O only arm a timer when > 0.
    res = svc.runtime.exec_sync(ctr.id, list(req.cmd), max(0, req.timeout))
    return api.ExecSyncResponse(stdout=res.stdout, stderr=res.stderr, exit_code=res.exit_code)
