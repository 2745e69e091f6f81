"""GetContainerEvents (server stream) and the publishing side used by the life-cycle RPCs.

Events carry the pod's status and its containers' statuses, which is what the
kubelet's Evented PLEG reads.  Pod sandboxes publish events under their own id
as containerd does (CREATED/STARTED at run, STOPPED, DELETED).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from ..store.records import now_ns
from . import views

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)
CREATED = api.CONTAINER_CREATED_EVENT
STARTED = api.CONTAINER_STARTED_EVENT
STOPPED = api.CONTAINER_STOPPED_EVENT
DELETED = api.CONTAINER_DELETED_EVENT
POLL = 0.5   # how often a stream checks that its client is still there


def publish(svc: Services, object_id: str, pod_id: str, kind: api.ContainerEventType.ValueType) -> None:
    if not svc.events.subscribers():
        return
    ev = api.ContainerEventResponse(container_id=object_id, container_event_type=kind,
                                    created_at=now_ns())
    pod = svc.pods.get(pod_id)
    if pod is not None:
        ev.pod_sandbox_status.CopyFrom(views.pod_status(pod))
        ev.containers_statuses.extend(views.container_status(c) for c in svc.pod_containers(pod_id))
    svc.events.publish(ev)


def get_container_events(svc: Services, req: api.GetEventsRequest, context):
    sub = svc.events.subscribe()
    try:
        while context.is_active():
            try:
                ev = sub.get(timeout=POLL)
            except EOFError:
                log.info("event stream fell behind and was closed; the kubelet will relist")
                return
            if ev is not None:
                yield ev
    finally:
        sub.close()
