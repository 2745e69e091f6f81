"""Everything an RPC handler needs, built once per server: the ``svc`` argument
of every cri/rpc handler."""
from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Optional

from ..config import Config
from ..sandbox.netpol import NetpolAgent
from ..sandbox.network import PodNetwork
from ..store import atomic
from ..store.events import EventBus
from ..store.records import ContainerRecord, PodRecord
from ..store.registrar import Registrar
from ..store.store import RecordStore
from .metrics import CriMetrics, MetricsServer

if TYPE_CHECKING:     # the engines are imported where they are built (server.py), not here
    from ..images.service import ImageService
    from ..oci.runtime import ContainerRuntime
    from ..oci.watch import ExitWatcher
    from ..streaming.server import StreamingServer


class RuntimeState:
    """What UpdateRuntimeConfig sets (the node's pod CIDR), persisted so a restart
    reports the same; see README "UpdateRuntimeConfig" for what it affects."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self.pod_cidr = atomic.read_json(path).get("pod_cidr", "")
        except (OSError, ValueError):
            self.pod_cidr = ""

    def set_pod_cidr(self, cidr: str) -> None:
        with self._lock:
            atomic.write_json(self.path, {"pod_cidr": cidr})
            self.pod_cidr = cidr


@dataclasses.dataclass
class Services:
    config: Config
    pods: RecordStore[PodRecord]
    containers: RecordStore[ContainerRecord]
    pod_names: Registrar
    ctr_names: Registrar
    network: PodNetwork
    events: EventBus
    state: RuntimeState
    images: ImageService
    runtime: ContainerRuntime
    watcher: ExitWatcher      # container exits -> records, events
    netpol: NetpolAgent
    streaming: Optional[StreamingServer] = None   # Exec/Attach/PortForward URLs, once started
    metrics: CriMetrics = dataclasses.field(default_factory=CriMetrics)   # this shim's registry
    metrics_server: Optional[MetricsServer] = None   # its HTTP endpoint (metrics_address), once started

    @classmethod
    def create(cls, cfg: Config, images: ImageService, runtime: ContainerRuntime,
               watcher: ExitWatcher) -> "Services":
        os.makedirs(cfg.state_dir, mode=0o711, exist_ok=True)
        svc = cls(config=cfg,
                   pods=RecordStore(cfg.pods_dir, "pod sandbox", PodRecord.from_dict),
                   containers=RecordStore(cfg.containers_dir, "container", ContainerRecord.from_dict),
                   pod_names=Registrar(), ctr_names=Registrar(), network=PodNetwork(cfg),
                   events=EventBus(), state=RuntimeState(os.path.join(cfg.state_dir, "runtime.json")),
                   images=images, runtime=runtime, watcher=watcher,
                   netpol=NetpolAgent(cfg.netpol_socket, cfg.netpol_timeout))
        svc.metrics.watch(svc)
        return svc

    def close(self) -> None:
        """Stop background threads (the exit watcher, the streaming server and its sessions,
        the metrics endpoint); containers keep running."""
        self.watcher.close()
        if self.streaming is not None:
            self.streaming.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()

    def pod_containers(self, pod_id: str) -> list[ContainerRecord]:
        return [c for c in self.containers.list() if c.pod_id == pod_id]
