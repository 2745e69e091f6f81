"""The reconciler: every change of the cluster's Nodes (and a periodic resync) makes the
kernel match :func:`.model.desired` for the configured mode, whole.

One thread does all kernel work, so no two reconciles overlap; the watcher only hands
it the latest Node set.  Each pass first removes what other modes left (a switch from
vxlan to host-gw to none leaves nothing of the old mode), then installs this mode's
state.  Everything removed is found by its tag (route protocol, device name, table name),
never by memory, so a restart after kill -9 converges the same way.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Optional

from pyroute2 import IPRoute

from ...atomic import write_bytes
from ...plugin.sysctl import enable_forwarding
from . import masquerade, routes, vxlan
from .model import DEFAULT_PORT, DEFAULT_VNI, Desired, Node, RoutingError, desired

log = logging.getLogger("podwire-cnid")


class NodeRouter:
    def __init__(self, mode: str, node_name: str, mtu_file: str, *, vni: int = DEFAULT_VNI,
                 port: int = DEFAULT_PORT, masquerade: bool = True, resync_s: float = 60.0,
                 retry_s: float = 2.0, ipr_factory: Callable[[], IPRoute] = IPRoute) -> None:
        desired(mode, node_name, [])  # an unknown mode fails at start, not in the thread
        if mode != "none" and not node_name:
            raise RoutingError(f"routing {mode!r} needs node_name (this node's Node object)")
        self.mode, self.node_name, self.mtu_file = mode, node_name, mtu_file
        self.vni, self.port, self.masquerade = vni, port, masquerade
        self.resync_s, self.retry_s, self.ipr_factory = resync_s, retry_s, ipr_factory
        self.nodes: Optional[dict[str, Node]] = None  # None until the first list
        self.state: Optional[Desired] = None         # what the last good pass installed
        self.last_error = ""
        self.reconciles = 0
        self._masq_applied: Optional[tuple] = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- fed by the watcher ----------------------------------------------------------------------
    def update(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self._dirty.set()

    # -- health and metrics ----------------------------------------------------------------------
    def problem(self) -> Optional[str]:
        if self.mode == "none":
            return None
        if self.nodes is None:
            return "routing: Node objects not listed yet" + (f": {self.last_error}" if self.last_error else "")
        if self.last_error:
            return f"routing not ready: {self.last_error}"
        if self.state is None:
            return "routing: not reconciled yet"
        return "; ".join(self.state.problems) or None

    def stats(self) -> dict:
        state = self.state
        return {"mode": self.mode, "routes": len(state.routes) if state else 0,
                "remote_nodes": state.remote_nodes if state else 0, "reconciles": self.reconciles}

    # -- the reconcile thread --------------------------------------------------------------------
    def start(self) -> "NodeRouter":
        self._dirty.set()  # mode none too: clear what an earlier run in another mode left
        self._thread = threading.Thread(target=self._run, name="cnid-routing", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(self.resync_s)
            if self._stop.is_set():
                return
            self._dirty.clear()
            if self.mode != "none" and self.nodes is None:
                continue  # nothing listed yet: what a previous run left keeps serving the pods
            try:
                self.reconcile(self.nodes or {})
                self.last_error = ""
            except Exception as exc:  # noqa: BLE001 - kernel refusal, nft missing: retry, stay visible
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("routing (%s): %s; retrying", self.mode, self.last_error)
                self._stop.wait(self.retry_s)
                self._dirty.set()
            if self.mode == "none":
                return  # cleaned once; nothing watches in mode none

    def reconcile(self, nodes: dict[str, Node]) -> Desired:
        want = desired(self.mode, self.node_name, nodes.values())
        with self.ipr_factory() as ipr:
            if self.mode == "vxlan" and want.local_underlay:
                dev = vxlan.plan(ipr, self.vni, self.port, want.local_underlay)
                index = vxlan.ensure(ipr, dev)
                vxlan.reconcile_peers(ipr, index, want.peers)
                added, removed = routes.reconcile(ipr, want.routes, index)
                self._publish_mtu(dev.mtu)
            elif self.mode == "vxlan":
                added, removed = 0, 0  # local Node not usable yet: keep what is there (problems say why)
            else:
                # host-gw or none: the overlay goes first (its onlink routes go with it).
                vxlan.remove(ipr)
                self._publish_mtu(0)
                added, removed = routes.reconcile(ipr, want.routes)
        self._masquerade(want)
        if self.mode != "none" and want.local_cidrs:
            families = {4 if ":" not in c else 6 for c in want.local_cidrs}
            enable_forwarding(4 in families, 6 in families)
        if added or removed or self.state is None:
            log.info("routing %s: %d routes (+%d -%d), %d remote nodes%s", self.mode, len(want.routes), added,
                     removed, want.remote_nodes, "".join(f"; skipped {s}" for s in want.skipped))
        self.state = want
        self.reconciles += 1
        return want

    def _masquerade(self, want: Desired) -> None:
        if self.mode != "none" and self.masquerade and want.local_cidrs:
            applied = (want.local_cidrs, want.cluster_cidrs)
            # A resync with nothing changed only checks the table is still there.
            if applied != self._masq_applied or not masquerade.exists():
                masquerade.apply(*applied)
                self._masq_applied = applied
        elif self.mode != "none" or masquerade.exists():
            masquerade.remove()
            self._masq_applied = None

    def _publish_mtu(self, mtu: int) -> None:
        """The pods' MTU for the plugin (used when the conflist sets none); 0 removes it."""
        if mtu:
            write_bytes(self.mtu_file, f'{{"mtu": {mtu}}}'.encode(), mode=0o644)
            return
        try:
            os.unlink(self.mtu_file)
        except FileNotFoundError:
            pass
