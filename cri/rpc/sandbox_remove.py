"""RemovePodSandbox: stop if needed, remove the containers, unpin the namespaces, forget it."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from ..sandbox import files, namespaces
from ..store.records import PodRecord
from . import container_remove, events, sandbox_stop

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)


def remove_pod_sandbox(svc: Services, req: api.RemovePodSandboxRequest) -> api.RemovePodSandboxResponse:
    # "RemovePodSandbox removes the sandbox. If there are any running containers
    # in the sandbox, they must be forcibly terminated and removed.
    # This call is idempotent, and must not return an error if the sandbox has
    # already been removed." (api.proto, RuntimeService)
    pod = svc.pods.find(req.pod_sandbox_id)
    if pod is not None:
        _remove(svc, pod)
    return api.RemovePodSandboxResponse()


def _remove(svc: Services, pod: PodRecord) -> None:
    pod = sandbox_stop.stop(svc, pod)          # no-op for a stopped pod, except a pending DEL
    with svc.pods.op_lock(pod.id):
        if svc.pods.get(pod.id) is None:
            return                              # a concurrent Remove won
        for ctr in svc.pod_containers(pod.id):
            container_remove.remove(svc, ctr)
        namespaces.stop_pid_holder(pod.pid_holder)
        namespaces.unpin(pod.ipc_ns)
        namespaces.unpin(pod.uts_ns)
        files.unmount_shm(pod.shm)
        svc.pods.delete(pod.id)
        _rmdir(svc.config.ns_dir, pod.id)
        svc.pod_names.release(pod.name)
    events.publish(svc, pod.id, pod.id, events.DELETED)
    log.info("pod %s (%s) removed", pod.id[:12], pod.name)


def _rmdir(parent: str, name: str) -> None:
    try:
        os.rmdir(os.path.join(parent, name))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("pod namespace dir %s/%s not removed: %s", parent, name, exc)
