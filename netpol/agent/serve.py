"""`podwire-netpol serve`: run the agent until SIGTERM/SIGINT.

Stopping the agent leaves enforcement in place: programs stay attached and
maps pinned; the next agent picks up from the pinned maps and its store.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

from cni import logs, metrics, sdnotify

from .cnihook import CniHookServer
from .core import Agent
from .server import create_server, remove_stale_socket
from .sockets import bind_private
from .store import Store

log = logging.getLogger("podwire.netpol")
GC_INTERVAL = 10.0


def serve(opts) -> int:
    from ..datapath.kernel import KernelDatapath

    sdnotify.claim()     # nothing it starts may see systemd's socket

    setup_logging(opts)
    agent = Agent(KernelDatapath(opts.pin_dir, getattr(opts, "service_mark", 0x02000000),
                                 getattr(opts, "bpf_cache", None)), Store(opts.state_dir))
    metrics_server = _start_metrics(agent, getattr(opts, "metrics_address", ""))
    agent.start()
    remove_stale_socket(opts.socket)
    server, _ = bind_private(opts.socket, lambda staged: create_server(agent, f"unix:{staged}"))
    server.start()
    hook = CniHookServer(agent, opts.cni_socket).start()
    sources = _start_sources(agent, opts)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("serving on %s (CNI hook %s), maps in %s", opts.socket, opts.cni_socket, opts.pin_dir)
    sdnotify.notify("READY=1")
    try:
        while not stop.wait(GC_INTERVAL):
            for key in agent.gc():
                log.info("endpoint %s: host interface gone, removed", key, extra={"endpoint": str(key)})
    finally:
        for source in sources:
            source.stop()
        hook.stop()
        server.stop(grace=1).wait()
        try:
            os.unlink(opts.socket)
        except FileNotFoundError:
            pass
        if metrics_server is not None:
            metrics_server.close()
        agent.close()
    return 0


def _start_metrics(agent: Agent, address: str):
    """The Prometheus endpoint (None when the address is "" or cannot be bound: logged)."""
    if not address:
        return None
    import prometheus_client

    from .metrics import NetpolMetrics

    prometheus_client.disable_created_metrics()  # no *_created series: half the lines, no use here
    server, _ = metrics.serve(NetpolMetrics(agent).registry, address, log)
    return server


def setup_logging(opts, stream=None) -> None:
    """The agent's lines on stderr in --log-format at --log-level (-v: debug)."""
    level = "debug" if getattr(opts, "verbose", False) else getattr(opts, "log_level", "info")
    logs.setup("podwire-netpol", level, getattr(opts, "log_format", logs.DEFAULT_FORMAT), stream=stream)


def _start_sources(agent: Agent, opts) -> list:
    sources: list = []
    if opts.watch_dir:
        from ..sources.files import DirectorySource
        sources.append(DirectorySource(agent, opts.watch_dir).start())
    if opts.kubernetes:
        from ..sources.kube import KubeSource
        sources.append(KubeSource.from_config(agent, kubeconfig=opts.kubeconfig, node_name=opts.node_name).start())
    return sources

