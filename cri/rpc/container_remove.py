"""RemoveContainer: kill what still runs, remove bundle, rootfs and monitor state, forget it."""
from __future__ import annotations

import logging

from cri_api.v1 import api_pb2 as api

from . import events

log = logging.getLogger(__name__)


def remove_container(svc, req: api.RemoveContainerRequest) -> api.RemoveContainerResponse:
    # "RemoveContainer removes the container. If the container is running, the
    # container must be forcibly removed. This call is idempotent, and must not
    # return an error if the container has already been removed." (api.proto)
    ctr = svc.containers.find(req.container_id)
    if ctr is not None:
        remove(svc, ctr)
    return api.RemoveContainerResponse()


def remove(svc, ctr) -> None:
    with svc.containers.op_lock(ctr.id):
        if svc.containers.get(ctr.id) is None:
            return                       # a concurrent Remove won
        svc.watcher.unwatch(ctr.id)
        svc.runtime.remove(ctr.id)       # kills a running container first
        svc.images.release(ctr.id)
        svc.containers.delete(ctr.id)
        svc.ctr_names.release(ctr.name)
    events.publish(svc, ctr.id, ctr.pod_id, events.DELETED)
    log.info("container %s (%s) removed", ctr.id[:12], ctr.name)
