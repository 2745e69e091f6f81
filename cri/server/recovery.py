"""Start-up: rebuild the shim's state from disk and reconcile it with the host
(containerd's restart.go, CRI-O's restore).

* Records are read back; names are reserved again so the kubelet's retries still
  get "name is reserved" and never a duplicate.
* A pod whose netns vanished (reboot) is NOTREADY; its record keeps the network
  name so the kubelet's StopPodSandbox still runs CNI DEL and frees its IPs.
* A pod whose RunPodSandbox never finished (persisted but never READY) is kept
  as NOTREADY too: the kubelet does not know it and garbage-collects it, and that
  Stop/Remove undoes whatever the crashed call had made.
* Containers are reconciled with what the runtime's monitors recorded
  (``runtime.recover``): running ones stay running (monitors outlive the shim),
  exits that happened while the shim was down are picked up with their codes.
* Directories without a readable record are debris of a crash and are removed.
"""
from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from ..rpc import container_sync
from ..sandbox import namespaces
from ..store.records import POD_NOTREADY, ContainerRecord

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)


def recover(svc: Services) -> None:
    for broken in svc.pods.load():
        shutil.rmtree(svc.pods.dir_of(broken), ignore_errors=True)
    for broken in svc.containers.load():
        shutil.rmtree(svc.containers.dir_of(broken), ignore_errors=True)
    for pod in svc.pods.list():
        svc.pod_names.reserve(pod.name, pod.id)
        if pod.state != POD_NOTREADY and pod.netns and not namespaces.netns_exists(pod.netns):
            log.warning("pod %s: network namespace %s is gone; marking it not ready", pod.id[:12], pod.netns)
            svc.pods.update(pod.id, state=POD_NOTREADY)
    for ctr in svc.containers.list():
        if svc.pods.get(ctr.pod_id) is None:
            log.warning("container %s: its pod %s is gone; removing it", ctr.id[:12], ctr.pod_id[:12])
            _remove_orphan(svc, ctr)
            continue
        svc.ctr_names.reserve(ctr.name, ctr.id)
    container_sync.reconcile_all(svc)
    log.info("recovered %d pods and %d containers", len(svc.pods.list()), len(svc.containers.list()))


def _remove_orphan(svc: Services, ctr: ContainerRecord) -> None:
    from ..rpc import container_remove
    try:
        container_remove.remove(svc, ctr)
    except Exception:  # noqa: BLE001 - keep starting; the record stays for a later attempt
        log.exception("removing orphaned container %s", ctr.id[:12])
