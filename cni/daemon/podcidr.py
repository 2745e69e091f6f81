"""Where podwire-cnid learns the node's pod CIDRs: its config, or the Kubernetes Node.

Either way it publishes them with :func:`cni.ipam.nodecidr.publish`, where
podwire-ipam finds them for ranges that say ``usePodCidr``.  The Node is read
with the official kubernetes client (in-cluster credentials, else a
kubeconfig); until the node controller has assigned ``spec.podCIDRs`` the
daemon keeps asking, and its health -- hence the plugin's STATUS -- says so.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Optional

from ..ipam import nodecidr

log = logging.getLogger("podwire-cnid")


def node_pod_cidrs(api, node_name: str) -> list[str]:
    """``spec.podCIDRs`` (dual stack) or else ``spec.podCIDR`` of the Node, validated."""
    spec = api.read_node(node_name, _request_timeout=10).spec  # never hang the daemon's stop
    cidrs = list(getattr(spec, "pod_cidrs", None) or []) or ([spec.pod_cidr] if spec.pod_cidr else [])
    return [str(ipaddress.ip_network(c)) for c in cidrs]


def kube_api(kubeconfig: str = ""):
    """A CoreV1Api; imported here so only a daemon that reads the Node loads the client."""
    from kubernetes import client

    from ..kube import api_client
    return client.CoreV1Api(api_client(kubeconfig))


class PodCidrs:
    """The node's CIDRs as the daemon knows them, and the file they are published in."""

    def __init__(self, path: str, static: Optional[list[str]] = None, node_name: str = "",
                 api_factory=None, retry_s: float = 5.0) -> None:
        self.path = path
        self.static = list(static or [])
        self.node_name = node_name
        self.api_factory = api_factory or kube_api
        self.retry_s = retry_s
        self.cidrs: list[str] = []
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self.static:
            self._learn(self.static)
        elif self.node_name:
            self._thread = threading.Thread(target=self._watch_node, name="cnid-podcidr", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)  # at most one request in flight (10 s timeout)

    def problem(self) -> Optional[str]:
        """For Health: None once known (or when no source is configured)."""
        if self.cidrs or not (self.static or self.node_name):
            return None
        why = f": {self.last_error}" if self.last_error else ""
        return f"pod CIDR of Node {self.node_name!r} not known yet{why}"

    def _learn(self, cidrs: list[str]) -> None:
        nodecidr.publish(cidrs, self.path)
        self.cidrs = [str(ipaddress.ip_network(c)) for c in cidrs]
        log.info("pod CIDRs %s published in %s", ", ".join(self.cidrs), self.path)

    def _watch_node(self) -> None:
        api = None
        while not self._stop.is_set():
            try:
                api = api or self.api_factory()
                cidrs = node_pod_cidrs(api, self.node_name)
                if cidrs:
                    self._learn(cidrs)
                    return  # a Node's podCIDRs never change once assigned
                self.last_error = "spec.podCIDRs is empty"
            except Exception as exc:  # noqa: BLE001 - API down, no credentials...: keep trying
                self.last_error = f"{type(exc).__name__}: {exc}"
            log.info("waiting for the pod CIDR of Node %s: %s", self.node_name, self.last_error)
            self._stop.wait(self.retry_s)
