"""The Kubernetes API as a source: NetworkPolicies, Namespaces, Pods and Services.

Uses the official `kubernetes` client (list, then watch from the list's
resourceVersion; relist when the watch expires).  Pods of every node are
needed as policy peers; pods of this node additionally get their host
interface from the CNI hook.  hostNetwork pods are skipped: their address is
the node's, which policies can only match through ipBlock.  Services give the
frontends whose egress check waits for kube-proxy's DNAT (netpol/services.py);
EndpointSlices are not watched: the backend is read from the DNATed packet.

The API objects are injected (`core`, `networking`, `watch_factory`), so
tests drive this with fakes and no cluster.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Optional

from ..errors import NetpolError
from ..model import NamedPort, Pod
from ..services import service_from_object

log = logging.getLogger("podwire.netpol")
SOURCE = "kubernetes"
POD_FIELDS = {"labels", "ips", "ports"}  # the interface is the CNI hook's to set


def pod_from_object(obj: dict) -> Optional[Pod]:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("hostNetwork"):
        return None
    ips = [p["ip"] for p in status.get("podIPs") or [] if p.get("ip")] or \
        ([status["podIP"]] if status.get("podIP") else [])
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    ports = [NamedPort(p["name"], p.get("protocol") or "TCP", p["containerPort"])
             for c in containers for p in c.get("ports") or [] if p.get("name")]
    return Pod(namespace=meta.get("namespace") or "default", name=meta["name"],
               labels=tuple(sorted((meta.get("labels") or {}).items())), ips=tuple(ips), ports=tuple(ports))


class KubeSource:
    def __init__(self, agent, core, networking, watch_factory: Callable[[], Any],
                 serialize: Callable[[Any], dict] = lambda o: o, relist_backoff: float = 2.0):
        self.agent, self.core, self.networking = agent, core, networking
        self.watch_factory, self.serialize, self.backoff = watch_factory, serialize, relist_backoff
        self._stop = threading.Event()
        self._watches: list = []
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_config(cls, agent, kubeconfig: Optional[str] = None, node_name: str = "") -> "KubeSource":
        from kubernetes import client, watch

        from cni.kube import api_client
        api = api_client(kubeconfig or "")
        return cls(agent, client.CoreV1Api(api), client.NetworkingV1Api(api), watch.Watch,
                   serialize=api.sanitize_for_serialization)

    # -- the four kinds --------------------------------------------------------------------------
    def kinds(self) -> list[tuple[str, Callable, Callable[[str, dict], None]]]:
        return [("namespaces", self.core.list_namespace, self._namespace),
                ("pods", self.core.list_pod_for_all_namespaces, self._pod),
                ("networkpolicies", self.networking.list_network_policy_for_all_namespaces, self._policy),
                ("services", self.core.list_service_for_all_namespaces, self._service)]

    def _namespace(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED":
            self.agent.remove_namespace(meta["name"])
        else:
            self.agent.set_namespace(meta["name"], meta.get("labels") or {})

    def _pod(self, kind: str, obj: dict) -> None:
        pod = pod_from_object(obj)
        if pod is None:
            return
        if kind == "DELETED":
            self.agent.remove_endpoint(pod.namespace, pod.name)
        else:
            self.agent.upsert_endpoint(pod, POD_FIELDS)

    def _policy(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED":
            key = f"{meta.get('namespace') or 'default'}/{meta['name']}"
            self.agent.delete_policies([key], ignore_not_found=True)
        else:
            obj.setdefault("apiVersion", "networking.k8s.io/v1")
            obj.setdefault("kind", "NetworkPolicy")
            self.agent.apply(json.dumps(obj), source=SOURCE)

    def _service(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED":
            self.agent.remove_service(meta.get("namespace") or "default", meta["name"])
        else:
            self.agent.upsert_service(service_from_object(obj), source=SOURCE)

    # -- list and watch --------------------------------------------------------------------------
    def sync(self, name: str, list_fn: Callable, handler: Callable[[str, dict], None]) -> str:
        """One full list: apply every object, and for policies drop ours that are gone.
        Returns the list's resourceVersion, to watch from."""
        listing = self.serialize(list_fn())
        items = listing.get("items") or []
        for obj in items:
            self._safely(handler, "ADDED", obj)
        listed = {f"{(o.get('metadata') or {}).get('namespace') or 'default'}/{o['metadata']['name']}" for o in items}
        if name == "networkpolicies":
            stale = [k for k in self.agent.policy_keys(source=SOURCE) if k not in listed]
            if stale:
                self.agent.delete_policies(stale, ignore_not_found=True)
        elif name == "services":  # deleted while we were not watching
            for key in [k for k in self.agent.service_keys(source=SOURCE) if k not in listed]:
                self.agent.remove_service(*key.split("/", 1))
        return (listing.get("metadata") or {}).get("resourceVersion") or ""

    def watch(self, name: str, list_fn: Callable, handler: Callable[[str, dict], None]) -> None:
        while not self._stop.is_set():
            try:
                version = self.sync(name, list_fn, handler)
                w = self.watch_factory()
                self._watches.append(w)
                for event in w.stream(list_fn, resource_version=version, timeout_seconds=300):
                    if self._stop.is_set():
                        break
                    self._safely(handler, event["type"], self.serialize(event["object"]))
            except Exception as exc:  # expired watch (410), API down: relist after a pause
                log.warning("kubernetes %s watch: %s; relisting", name, exc)
            self._stop.wait(self.backoff)

    def _safely(self, handler: Callable[[str, dict], None], kind: str, obj: dict) -> None:
        try:
            handler(kind, obj)
        except NetpolError as exc:
            log.error("kubernetes %s %s: %s", kind.lower(), (obj.get("metadata") or {}).get("name"), exc)

    def start(self) -> "KubeSource":
        for name, list_fn, handler in self.kinds():
            t = threading.Thread(target=self.watch, args=(name, list_fn, handler), name=f"netpol-kube-{name}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for w in self._watches:
            w.stop()
        for t in self._threads:
            t.join(timeout=5)
