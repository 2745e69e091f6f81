"""Attach: a URL on the streaming server where the client joins the container's own stdio
(kubectl attach, kubectl run -it) through conmon's attach socket.

The back end follows the container's tty, not the request's: a container with a terminal
has one output, and its size is set through conmon's control FIFO.  The client still opens
the streams its request names; the session maps one onto the other."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from ..streaming.remotecommand import Streams
from ..streaming.requests import AttachRequest
from .streaming import check_streams, issue_url, require_running

if TYPE_CHECKING:
    from ..server.services import Services


def attach(svc: Services, req: api.AttachRequest) -> api.AttachResponse:
    check_streams(req.tty, req.stdin, req.stdout, req.stderr)
    ctr = svc.containers.resolve(req.container_id)
    require_running(svc, ctr.id)
    runtime = svc.runtime
    tty = bool(runtime.spec(ctr.id)["process"].get("terminal"))
    session = AttachRequest(container_id=ctr.id,
                            # conmon's socket under its link <attach_dir>/<id> -> bundle, which
                            # keeps the path short enough for sun_path; it survives a shim restart.
                            attach_socket=os.path.join(runtime.attach_dir, ctr.id, "attach"),
                            ctl_fifo=os.path.join(runtime.bundle_dir(ctr.id), "ctl"),
                            tty=tty, stdin=req.stdin, stdout=req.stdout, stderr=req.stderr and not tty)
    streams = Streams(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr, tty=req.tty)
    return api.AttachResponse(url=issue_url(svc, session, streams))
