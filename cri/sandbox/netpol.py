"""Pods -> the podwire NetworkPolicy agent, when one runs on this node.

Speaks the agent's gRPC API (proto/netpol.proto) through the generated stubs;
cri/ imports nothing from netpol/ (layering: the two share only proto/).

* No socket file (or ``netpol_socket = ""``): no agent on this node; nothing to do.
* RunPodSandbox registers the pod's identity (namespace, name, labels) *before*
  CNI ADD.  The podwire CNI plugin's hook then sets the host veth, IPs and
  container ID on that same endpoint (the agent merges by namespace/name: both
  use an update mask), and the agent attaches the programs before ADD returns,
  with the labels already known: a pod a policy selects is isolated from its
  first packet.  Fails closed: an agent whose socket exists but that does not
  answer fails RunPodSandbox with UNAVAILABLE.
* CreateContainer adds the container's named ports (the kubelet's
  ``io.kubernetes.container.ports`` annotation), merged over the pod's containers.
* Stop/RemovePodSandbox remove the endpoint, best effort (never fail the RPC).
"""
from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Iterable, Optional

import grpc
from cri_api.v1 import api_pb2 as api

from .. import errors
from ..store.records import POD_READY, PodRecord

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)
PORTS_ANNOTATION = "io.kubernetes.container.ports"
# The kubelet adds these to the pod's own labels in PodSandboxConfig.labels
# (kuberuntime newPodLabels); they are not labels of the Pod object, which is
# what NetworkPolicy selectors (and the agent's Kubernetes source) match.
KUBELET_LABELS = ("io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid")
_PROTOCOLS = {"TCP", "UDP", "SCTP"}


def pod_labels(config: api.PodSandboxConfig) -> dict[str, str]:
    return {k: v for k, v in config.labels.items() if k not in KUBELET_LABELS}


def named_ports(configs: Iterable[api.ContainerConfig]) -> list[tuple[str, str, int]]:
    """(name, protocol, port) of every named port in the containers' port annotations,
    de-duplicated in order; malformed annotations are ignored (logged)."""
    out: dict[tuple[str, str, int], None] = {}
    for config in configs:
        text = config.annotations.get(PORTS_ANNOTATION, "")
        if not text:
            continue
        try:
            ports = json.loads(text)
            for p in ports:
                name, port = p.get("name") or "", int(p.get("containerPort") or 0)
                protocol = (p.get("protocol") or "TCP").upper()
                if name and 0 < port < 65536 and protocol in _PROTOCOLS:
                    out[(name, protocol, port)] = None
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("container %s: ignoring malformed %s annotation: %s", config.metadata.name,
                        PORTS_ANNOTATION, exc)
    return list(out)


def _stubs():
    """The agent API's generated modules, imported on first use: a node without an agent
    (or a shim configured with netpol_socket = "") never keeps them resident."""
    from google.protobuf import field_mask_pb2
    from proto import netpol_pb2, netpol_pb2_grpc
    return netpol_pb2, netpol_pb2_grpc, field_mask_pb2


class NetpolAgent:
    def __init__(self, socket_path: str, timeout: float) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def present(self) -> bool:
        return bool(self.socket_path) and os.path.exists(self.socket_path)

    def _call(self, method: str, request, what: str):
        # A channel per call: a cached one would sit in reconnect back-off for a while
        # after an agent restart.  wait_for_ready: a restarting agent gets `timeout`.
        with grpc.insecure_channel(f"unix:{self.socket_path}") as channel:
            stub = _stubs()[1].NetpolAgentStub(channel)
            try:
                return getattr(stub, method)(request, timeout=self.timeout, wait_for_ready=True)
            except grpc.RpcError as exc:
                code = exc.code()
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise errors.unavailable(f"netpol agent at {self.socket_path} unavailable ({what}): "
                                             f"{exc.details()}") from None
                raise errors.CriError(code, f"netpol agent refused {what}: {exc.details()}") from None

    def _upsert(self, config: api.PodSandboxConfig, fields: list[str], ports=(), what: str = "") -> None:
        md = config.metadata
        pb, _, field_mask_pb2 = _stubs()
        ep = pb.Endpoint(namespace=md.namespace, name=md.name, labels=pod_labels(config),
                         ports=[pb.NamedPort(name=n, protocol=p, port=num) for n, p, num in ports])
        self._call("UpsertEndpoint",
                   pb.UpsertEndpointRequest(endpoint=ep, update_mask=field_mask_pb2.FieldMask(paths=fields)),
                   what or f"pod {md.namespace}/{md.name}")

    def register(self, config: api.PodSandboxConfig) -> bool:
        """The pod's identity before its network exists; True if an agent was told."""
        if not self.present():
            return False
        # Only the labels: the interface, IPs and container ID are the CNI hook's to set.
        self._upsert(config, ["labels"])
        return True

    def set_ports(self, config: api.PodSandboxConfig, ports: list[tuple[str, str, int]]) -> None:
        """The pod's named container ports (labels again: the endpoint may be new to an agent
        started after the pod)."""
        if self.present():
            self._upsert(config, ["labels", "ports"], ports)

    def unregister(self, config: api.PodSandboxConfig) -> None:
        """Best effort and idempotent: never raises."""
        if not self.present():
            return
        md, pb = config.metadata, _stubs()[0]
        try:
            self._call("RemoveEndpoint", pb.RemoveEndpointRequest(namespace=md.namespace, name=md.name),
                       f"removing pod {md.namespace}/{md.name}")
        except errors.CriError as exc:
            log.warning("pod %s/%s: not removed from the netpol agent: %s", md.namespace, md.name, exc)


def other_live_sandbox(svc: Services, pod: PodRecord) -> Optional[str]:
    """Another ready sandbox of the same Kubernetes pod (a newer attempt): the endpoint,
    keyed by namespace/name, is then that sandbox's and must stay."""
    md = pod.config.metadata
    for other in svc.pods.list():
        omd = other.config.metadata
        if other.id != pod.id and other.state == POD_READY and (omd.namespace, omd.name) == (md.namespace, md.name):
            return other.id
    return None
