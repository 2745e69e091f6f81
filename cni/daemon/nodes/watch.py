"""Node objects, listed then watched through the official kubernetes client.

A full list replaces what is known (a Node deleted while the daemon was down, or
while its watch was broken, is gone after the relist); watch events then update
it.  An expired watch (410 Gone), a dropped connection or an API outage relist
after a pause.  Nothing is reported before the first list succeeds: until then the
kernel state a previous run left keeps serving the pods.

The API objects are injected (``list_nodes``, ``watch_factory``), so unit tests
drive this with fakes and no cluster.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from .model import Node, node_from_object

log = logging.getLogger("podwire-cnid")


class NodeWatcher:
    def __init__(self, list_nodes: Callable, watch_factory: Callable[[], Any],
                 on_change: Callable[[dict[str, Node]], None],
                 serialize: Callable[[Any], dict] = lambda o: o, backoff_s: float = 2.0,
                 timeout_s: int = 300) -> None:
        self.list_nodes, self.watch_factory, self.on_change = list_nodes, watch_factory, on_change
        self.serialize, self.backoff_s, self.timeout_s = serialize, backoff_s, timeout_s
        self.nodes: dict[str, Node] = {}
        self.last_error = ""
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str, on_change: Callable[[dict[str, Node]], None]) -> "NodeWatcher":
        """Imports the client here: only a daemon that routes loads it."""
        from kubernetes import client, watch

        from ...kube import api_client
        api = api_client(kubeconfig)
        return cls(client.CoreV1Api(api).list_node, watch.Watch, on_change,
                   serialize=api.sanitize_for_serialization)

    def sync(self) -> str:
        """One full list; returns its resourceVersion, to watch from."""
        listing = self.serialize(self.list_nodes(_request_timeout=30))
        nodes = {n.name: n for n in map(node_from_object, listing.get("items") or []) if n.name}
        self.nodes = nodes
        self.last_error = ""
        self.on_change(dict(nodes))
        return (listing.get("metadata") or {}).get("resourceVersion") or ""

    def apply(self, kind: str, obj: dict) -> None:
        node = node_from_object(obj)
        if not node.name:
            return
        if kind == "DELETED":
            if self.nodes.pop(node.name, None) is None:
                return
        elif kind in ("ADDED", "MODIFIED"):
            if self.nodes.get(node.name) == node:
                return  # a heartbeat (status.conditions): nothing routing reads changed
            self.nodes[node.name] = node
        else:
            return  # BOOKMARK, or ERROR handled by the client raising
        self.on_change(dict(self.nodes))

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self.sync()
                self._watch = self.watch_factory()
                for event in self._watch.stream(self.list_nodes, resource_version=version,
                                                timeout_seconds=self.timeout_s):
                    if self._stop.is_set():
                        return
                    self.apply(event["type"], self.serialize(event["object"]))
                self._stop.wait(0.1)  # the server ended the watch (its timeout): relist soon
                continue
            except Exception as exc:  # noqa: BLE001 - 410 Gone, API down, no credentials: relist
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("Node watch: %s; relisting in %.0f s", self.last_error, self.backoff_s)
            self._stop.wait(self.backoff_s)

    def start(self) -> "NodeWatcher":
        self._thread = threading.Thread(target=self.run, name="cnid-nodes", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(5)
