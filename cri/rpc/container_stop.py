"""StopContainer: the stop signal (request, else the image's STOPSIGNAL, else SIGTERM),
then SIGKILL once the timeout has passed."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from ..oci import signals
from ..store.records import CREATED, RUNNING, ContainerRecord
from . import container_sync

if TYPE_CHECKING:
    from ..server.services import Services


def stop_container(svc: Services, req: api.StopContainerRequest) -> api.StopContainerResponse:
    # "StopContainer stops a running container with a grace period (i.e., timeout).
    # This call is idempotent, and must not return an error if the container has
    # already been stopped." (api.proto, RuntimeService); a container we do not
    # know any more has been stopped and removed.
    ctr = svc.containers.find(req.container_id)
    if ctr is not None:
        stop(svc, ctr, req.timeout)
    return api.StopContainerResponse()


def stop(svc: Services, ctr: ContainerRecord, timeout: int) -> None:
    """Deliberately without the container's op lock: the kubelet follows a graceful stop
    with a forced one (timeout 0) when its own deadline runs out, and that one must not
    wait behind the first (stuck-Terminating reports: containerd#8847, #10755)."""
    ctr = container_sync.refresh(svc, svc.containers.get(ctr.id) or ctr)
    if ctr.state not in (CREATED, RUNNING):
        return
    svc.runtime.stop(ctr.id, signals.parse_signal(ctr.stop_signal), max(0, timeout))
    container_sync.refresh(svc, ctr)
