"""The gRPC server factory: building the server is separate from running it, so
tests bind a temporary socket, talk to it over a real channel and stop it.

    server, svc = create_server(cfg)          # recovered state, socket bound
    server.start(); ...; server.stop(grace)
"""
from __future__ import annotations

import concurrent.futures
import grp
import logging
import os
from typing import TYPE_CHECKING, Optional

import grpc
from cri_api.v1 import api_pb2_grpc

from cni import unixsock

from ..config import Config
from ..oci.watch import ExitWatcher
from ..rpc import container_sync
from ..streaming.server import StreamingServer
from . import recovery
from .image_service import ImageService
from .metrics import MetricsServer
from .runtime_service import RuntimeService
from .services import Services

if TYPE_CHECKING:
    from ..images.service import ImageService as ImageEngine
    from ..oci.runtime import ContainerRuntime

log = logging.getLogger(__name__)
MAX_WORKERS = 64            # event streams hold a worker each; leave plenty for the kubelet
MAX_MESSAGE = 16 << 20      # like containerd: large ExecSync output and List responses


def create_server(cfg: Config, *, images: Optional[ImageEngine] = None,
                  runtime: Optional[ContainerRuntime] = None,
                  socket_path: Optional[str] = None) -> tuple[grpc.Server, Services]:
    """A ready-to-start server on ``socket_path`` (default: the config's) with the
    shim's state recovered.  ``images``/``runtime`` override the engines (tests)."""
    # The cgroup driver detected and the default parent filled in, once: RuntimeConfig must
    # report the same driver for the kubelet's lifetime.
    cfg = cfg.resolved()
    path = socket_path or cfg.socket_path
    if images is None:
        images = _image_engine(cfg)
    if runtime is None:
        runtime = _container_engine(cfg)
    # The watcher reports exits to the Services it belongs to; it runs once started below.
    watcher = ExitWatcher(runtime, lambda st: container_sync.on_exit(svc, st))
    svc = Services.create(cfg, images=images, runtime=runtime, watcher=watcher)
    recovery.recover(svc)
    svc.watcher.start()
    if cfg.metrics_address:
        _start_metrics(svc)     # before the socket: a failure leaves nothing bound
    try:
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="cri"),
                             options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE)])
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(RuntimeService(svc), server)
        api_pb2_grpc.add_ImageServiceServicer_to_server(ImageService(svc), server)
        _prepare_socket(path)
        server.add_insecure_port(f"unix:{path}")
        # Listening from here on, like the gRPC socket: Exec's URLs must name a bound port.
        # Stopped by svc.close(), which every user of create_server calls after server.stop().
        svc.streaming = StreamingServer.from_config(cfg)
        svc.streaming.start()
    except BaseException:
        svc.close()             # the watcher and the metrics endpoint
        raise
    return server, svc


def _start_metrics(svc: Services) -> None:
    """The metrics endpoint on metrics_address; a port in use stops the shim at start (like its
    socket), rather than leaving a node whose Prometheus target silently went missing."""
    metrics = MetricsServer(svc.config.metrics_address, svc.metrics.registry)
    try:
        metrics.start()
    except OSError as exc:
        svc.close()
        raise RuntimeError(f"metrics_address {svc.config.metrics_address}: {exc.strerror or exc}; "
                           f"another podwire-cri? (\"\" in cri.toml turns metrics off)") from None
    svc.metrics_server = metrics
    log.info("metrics on %s", metrics.url)


def secure_socket(path: str, mode: int, group: str) -> None:
    """0660 root:<group> once the socket exists (call after start)."""
    gid = grp.getgrnam(group).gr_gid if group else -1
    os.chown(path, 0 if os.geteuid() == 0 else -1, gid if os.geteuid() == 0 else -1)
    os.chmod(path, mode)


def _prepare_socket(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        unixsock.clear_stale(path)   # the socket of a shim that died
    except unixsock.SocketInUse:
        raise RuntimeError(f"{path} is in use: is another podwire-cri running?") from None


def _image_engine(cfg: Config) -> ImageEngine:
    from ..images.service import ImageService as Engine
    return Engine.from_config(cfg)


def _container_engine(cfg: Config) -> ContainerRuntime:
    from ..oci.runtime import ContainerRuntime
    # Bundles (with the writable layers) on disk beside the records; monitor state per boot.
    return ContainerRuntime(root_dir=os.path.join(cfg.state_dir, "bundles"), runc_root=cfg.runc_root,
                            state_dir=os.path.join(cfg.run_dir, "monitors"), runc_binary=cfg.runc,
                            conmon_binary=cfg.conmon, cgroup_driver=cfg.cgroup_driver)
