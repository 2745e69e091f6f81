"""StopPodSandbox: stop every container, CNI DEL (always attempted), drop the netns, netpol unregister."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import background
from ..sandbox import namespaces, netpol
from ..store.records import POD_NOTREADY, PodRecord
from . import container_stop, events

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)


def stop_pod_sandbox(svc: Services, req: api.StopPodSandboxRequest) -> api.StopPodSandboxResponse:
    # "StopPodSandbox ... This call is idempotent, and must not return an error if
    # all relevant resources have already been reclaimed." (api.proto, RuntimeService):
    # a pod we do not know is such a pod.
    pod = svc.pods.find(req.pod_sandbox_id)
    if pod is not None:
        stop(svc, pod)
    return api.StopPodSandboxResponse()


def stop(svc: Services, pod: PodRecord) -> PodRecord:
    with svc.pods.op_lock(pod.id):
        pod = svc.pods.get(pod.id) or pod
        # "If there are any running containers in the sandbox, they must be forcibly terminated."
        for ctr in svc.pod_containers(pod.id):
            container_stop.stop(svc, ctr, timeout=0)
        was_ready = pod.state != POD_NOTREADY
        changes = {"state": POD_NOTREADY} if was_ready else {}
        pending = bool(pod.network or pod.netns) and not pod.host_network
        # The agent forgets the pod while CNI DEL runs (both wait on other processes; the
        # CNI hook's DEL usually removes the endpoint too, and both are idempotent).  Not again
        # once an earlier Stop finished: RemovePodSandbox calls this for a stopped pod.
        forget = background.call(_unregister, svc, pod) if (was_ready or pending) else None
        try:
            if pending:
                _teardown_network(svc, pod)
                changes.update(network="", netns="")
        finally:
            # One record write: the new state, and the network's absence once torn down.  A DEL
            # that failed leaves the network named, so the kubelet's next Stop retries it.
            if changes:
                pod = svc.pods.update(pod.id, **changes)
            if forget is not None:
                forget.result()
    if was_ready:
        events.publish(svc, pod.id, pod.id, events.STOPPED)
    return pod


def _unregister(svc: Services, pod: PodRecord) -> None:
    """Forget the pod in the netpol agent (best effort, idempotent; the CNI hook's DEL has
    usually removed it already) -- unless a newer sandbox of the same pod is running:
    the endpoint, keyed by namespace/name, is that one's now."""
    if pod.host_network or netpol.other_live_sandbox(svc, pod) is not None:
        return
    svc.netpol.unregister(pod.config)


def _teardown_network(svc: Services, pod: PodRecord) -> None:
    """DEL even when the netns is already gone (reboot, crash): the plugins must still
    release the pod's IPs (containerd/cri#948).  On failure the netns and the record's
    network stay, so the kubelet's next StopPodSandbox retries the DEL."""
    netns = pod.netns if namespaces.netns_exists(pod.netns) else ""
    svc.network.teardown(pod.id, netns, pod.config, pod.network)
    if pod.netns_name:
        namespaces.remove_netns(pod.netns_name)
