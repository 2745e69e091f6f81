"""PortForward: a URL on the streaming server that connects the client to ports on the pod's
loopback (kubectl port-forward), dialled inside the pod's network namespace (or the node's for
a host-network pod) without running anything in a container."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as api

from .. import errors
from ..store.records import POD_READY
from ..streaming.requests import PortForwardRequest
from .streaming import issue_url

if TYPE_CHECKING:
    from ..server.services import Services


def port_forward(svc: Services, req: api.PortForwardRequest) -> api.PortForwardResponse:
    pod = svc.pods.resolve(req.pod_sandbox_id)
    # Kept: a stopped pod's network namespace is gone (containerd: "sandbox container is not
    # running").
    if pod.state != POD_READY:
        raise errors.precondition(f"pod sandbox {pod.id} is not ready")
    if not pod.host_network and not pod.netns:
        raise errors.precondition(f"pod sandbox {pod.id} has no network namespace")
    # Kept: the kubelet refuses these too (BuildV4Options), and a port outside 1..65535 could
    # never be dialled.
    bad = [p for p in req.port if not 0 < p < 65536]
    if bad:
        raise errors.invalid(f"invalid port {bad[0]}")
    session = PortForwardRequest(pod_id=pod.id, netns="" if pod.host_network else pod.netns,
                                 ports=tuple(req.port))
    return api.PortForwardResponse(url=issue_url(svc, session))
