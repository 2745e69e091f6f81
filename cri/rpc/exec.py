"""Exec: a URL on the streaming server where the client runs a command in the container with
its stdio attached (kubectl exec, crictl exec -it).

The session runs ``runc exec`` with the container's own OCI process (user, env, cwd,
capabilities...) and the command replaced, as ExecSync does; everything it needs is resolved
here, while we look at the container's state."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..streaming.remotecommand import Streams
from ..streaming.requests import ExecRequest
from .streaming import check_streams, issue_url, require_running

if TYPE_CHECKING:
    from ..server.services import Services


def exec_(svc: Services, req: api.ExecRequest) -> api.ExecResponse:
    check_streams(req.tty, req.stdin, req.stdout, req.stderr)
    # Kept: runc refuses an empty command ("args must not be empty"); say it in the CRI's words.
    if not req.cmd:
        raise errors.invalid("Exec needs a command")
    ctr = svc.containers.resolve(req.container_id)
    require_running(svc, ctr.id)
    runtime = svc.runtime
    session = ExecRequest(container_id=ctr.id, cmd=tuple(req.cmd), process=runtime.spec(ctr.id)["process"],
                          runc=runtime.runc.binary, runc_root=runtime.runc.root,
                          scratch_dir=runtime.monitor_dir(ctr.id),
                          tty=req.tty, stdin=req.stdin, stdout=req.stdout, stderr=req.stderr)
    streams = Streams(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr, tty=req.tty)
    return api.ExecResponse(url=issue_url(svc, session, streams))
