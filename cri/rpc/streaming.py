"""What Exec, Attach and PortForward share: the kubelet's request checks and the URL.

The checks are the kubelet streaming library's (containerd and CRI-O answer through it), in
its words; the URL comes from the streaming server, which keeps the resolved request under a
single-use token."""
from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from .. import errors
from ..oci.state import State
from ..streaming.tokens import TooManyInFlight

if TYPE_CHECKING:
    from ..server.services import Services


def check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
    # Kept: with a tty there is one output stream, so a separate stderr cannot be honoured.
    if tty and stderr:
        raise errors.invalid("tty and stderr cannot both be true")
    # Kept: a session with no stream at all could never be observed or ended by the client.
    if not (stdin or stdout or stderr):
        raise errors.invalid("one of stdin, stdout, or stderr must be set")


def require_running(svc: Services, container_id: str) -> None:
    """containerd's check and wording; FAILED_PRECONDITION, as our other RPCs on a container
    in the wrong state (containerd's plain error reaches the kubelet as UNKNOWN)."""
    state = svc.runtime.status(container_id).state
    if state != State.RUNNING:
        raise errors.precondition(f"container is in CONTAINER_{state.name} state")


def issue_url(svc: Services, request, streams=None) -> str:
    if svc.streaming is None:
        raise errors.unavailable("the streaming server is not running")
    try:
        return svc.streaming.issue(request, streams)
    except TooManyInFlight as err:
        # The kubelet's answer when its request cache is full.
        raise errors.CriError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err)) from None
