"""RemoveContainer: kill what still runs, remove bundle, rootfs and monitor state, forget it."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..sandbox import netpol
from ..store.records import POD_READY, ContainerRecord
from . import events
from .container_create import other_containers

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)


def remove_container(svc: Services, req: api.RemoveContainerRequest) -> api.RemoveContainerResponse:
    # "RemoveContainer removes the container. If the container is running, the
    # container must be forcibly removed. This call is idempotent, and must not
    # return an error if the container has already been removed." (api.proto)
    ctr = svc.containers.find(req.container_id)
    if ctr is not None:
        remove(svc, ctr)
        _withdraw_ports(svc, ctr)
    return api.RemoveContainerResponse()


def _withdraw_ports(svc: Services, ctr: ContainerRecord) -> None:
    """A removed container's named ports stop resolving in policies: the pod's ports are sent
    again without them.  Only for a ready pod (a pod being removed is unregistered whole, and
    sending would bring its endpoint back), and best effort: an agent that is down must not
    make RemoveContainer fail (it reads the ports afresh when the pod is registered again)."""
    pod = svc.pods.get(ctr.pod_id)
    if pod is None or pod.state != POD_READY or pod.host_network or not netpol.named_ports([ctr.config]):
        return
    try:
        svc.netpol.set_ports(pod.config, netpol.named_ports(other_containers(svc, pod.id, ctr.id)))
    except errors.CriError as exc:
        log.warning("container %s: named ports not withdrawn from the netpol agent: %s", ctr.id[:12], exc)


def remove(svc: Services, ctr: ContainerRecord) -> None:
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
