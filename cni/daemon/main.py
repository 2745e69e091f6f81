"""``podwire-cnid``: the CNI node daemon (``serve``, the default) and ``status``.

Settings come from flags, else ``/etc/podwire/cnid.toml`` (same names, with
underscores), else the defaults below.  ``serve`` runs in the foreground until
SIGINT or SIGTERM, then stops taking connections and finishes those it took.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import tomllib

from .. import logs, netlink, sdnotify
from ..metrics import CNID_ADDRESS, parse_address
from ..context import Context
from ..ipam import nodecidr
from ..ipam.cached import StoreCache
from . import wire
from .wire import DEFAULT_SOCKET
from .handler import HEALTH, Handler
from .registry import PLUGINS
from .health import Health
from .nodes.model import DEFAULT_PORT, DEFAULT_VNI, MODES
from .nsbroker import NsBroker
from .podcidr import PodCidrs
from .reaper import Reaper
from .retired import RetiredLinks
from .server import Server

DEFAULT_CONFIG = "/etc/podwire/cnid.toml"
log = logging.getLogger("podwire-cnid")
DEFAULTS = {"socket": DEFAULT_SOCKET, "workers": 32, "request_timeout": 120.0, "pod_cidrs": [],
            "node_name": "", "kubeconfig": "", "pod_cidrs_file": nodecidr.DEFAULT_PATH, "log_level": "info",
            "log_format": logs.DEFAULT_FORMAT, "metrics_address": CNID_ADDRESS,
            "routing": "none", "vxlan_vni": DEFAULT_VNI, "vxlan_port": DEFAULT_PORT, "masquerade": True,
            "routing_resync": 60.0, "reap_delay": 0.0}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="podwire-cnid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "status"])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="TOML settings (a missing file is fine)")
    parser.add_argument("--socket", help=f"unix socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--workers", type=int, help="requests served at once (default 32)")
    parser.add_argument("--request-timeout", type=float, help="deadline of a request whose client sets none, s")
    parser.add_argument("--pod-cidr", dest="pod_cidrs", action="append", help="the node's pod CIDR (repeatable)")
    parser.add_argument("--node-name", help="read spec.podCIDRs from this Kubernetes Node")
    parser.add_argument("--kubeconfig", help="for --node-name outside a cluster")
    parser.add_argument("--pod-cidrs-file", help=f"where podwire-ipam finds them (default {nodecidr.DEFAULT_PATH})")
    parser.add_argument("--log-level", help="debug, info, warning, error (default info)")
    parser.add_argument("--log-format", help=f"{', '.join(logs.FORMATS)}: logfmt or JSON lines (default text)")
    parser.add_argument("--metrics-address", help=f"Prometheus /metrics on HOST:PORT, '' for none "
                                                  f"(default {CNID_ADDRESS})")
    parser.add_argument("--routing", choices=MODES, help="pod routing between nodes, from the Node objects "
                                                         "of the cluster (default none)")
    parser.add_argument("--vxlan-vni", type=int, help=f"the overlay's VNI (default {DEFAULT_VNI})")
    parser.add_argument("--vxlan-port", type=int, help=f"the overlay's UDP port (default {DEFAULT_PORT})")
    parser.add_argument("--masquerade", action=argparse.BooleanOptionalAction,
                        help="with routing: masquerade pod traffic leaving the cluster's pod CIDRs (default on)")
    parser.add_argument("--routing-resync", type=float, help="with routing: seconds between full reconciles "
                                                              "without any Node change (default 60)")
    parser.add_argument("--reap-delay", type=float, help="seconds a veth retired by DEL waits before "
                                                          "the kernel deletes it (default 0)")
    opts = parser.parse_args(argv)
    settings = {**DEFAULTS, **_load_config(opts.config)}
    for key in DEFAULTS:
        if getattr(opts, key) is None:
            setattr(opts, key, settings[key])
    try:
        opts.log_level = logs.check_level(opts.log_level)
        logs.check_format(opts.log_format)
        parse_address(opts.metrics_address)
        if opts.routing not in MODES:
            raise ValueError(f"routing must be one of {', '.join(MODES)}, not {opts.routing!r}")
        if opts.routing != "none" and not opts.node_name:
            raise ValueError(f"routing {opts.routing!r} needs node_name (this node's Node object)")
        resync = opts.routing_resync
        if isinstance(resync, bool) or not isinstance(resync, (int, float)) or not resync > 0:
            raise ValueError(f"routing_resync must be a positive number of seconds, not {opts.routing_resync!r}")
        if not 1 <= opts.vxlan_vni < 1 << 24 or not 1 <= opts.vxlan_port <= 65535:
            raise ValueError("vxlan_vni must be 1..16777215 and vxlan_port 1..65535")
    except ValueError as exc:
        parser.error(str(exc))
    return opts


def _load_config(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise SystemExit(f"podwire-cnid: unknown settings in {path}: {', '.join(sorted(unknown))}")
    return data


def serve(opts: argparse.Namespace) -> int:
    sdnotify.claim()     # the plugins it execs must not see systemd's socket
    # Our logger at the chosen level; libraries (pyroute2 is chatty at debug) at warning.
    logs.setup("podwire-cnid", opts.log_level, opts.log_format, loggers=("podwire-cnid",))
    # The podwire-ipam verbs we run in process read the CIDRs from the same file we publish.
    os.environ[nodecidr.PATH_ENV] = opts.pod_cidrs_file
    # A burst is many threads, each mostly waiting on the kernel, briefly needing the GIL --
    # often while holding an IPAM flock others queue on.  A short switch interval (default
    # 5 ms) hands the GIL over sooner; measured: 50 concurrent ADDs ~25% faster.
    sys.setswitchinterval(0.0005)
    sockets = netlink.WarmSockets()
    broker = NsBroker()  # started before any thread of ours exists
    # Every request's verbs run in this context (cni/context.py): the executables' defaults
    # are a fresh socket per use, pyroute2's fork, deletions in line and the disk store.
    retired = RetiredLinks(sockets, opts.reap_delay)
    # Retired veths a previous daemon left (kill -9 with deletions pending): before serving.
    swept = retired.sweep()
    if swept:
        log.info("deleted %d retired veths left from before", swept)
    retired.start()
    context = Context(host_sockets=sockets, ns_sockets=broker, link_deleter=Reaper(sockets),
                      link_reaper=retired, open_store=StoreCache().locked)
    _import_verbs()
    health = Health()
    cidrs = PodCidrs(opts.pod_cidrs_file, opts.pod_cidrs, opts.node_name,
                     api_factory=lambda: _kube_api(opts.kubeconfig))
    health.checks.append(cidrs.problem)
    health.retired = lambda: {"pending": retired.pending(), "deleted": retired.reaped}
    router, watcher = _routing(opts)
    health.checks.append(router.problem)
    health.routing = router.stats
    observer, metrics_server = _start_metrics(opts.metrics_address, health)
    server = Server(opts.socket, Handler(health, PLUGINS, context, opts.request_timeout, observer), opts.workers)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    cidrs.start()
    router.start()
    if watcher is not None:
        watcher.start()
    sdnotify.notify("READY=1")
    stop.wait()
    sdnotify.notify("STOPPING=1")
    server.stop()
    cidrs.stop()
    if watcher is not None:
        watcher.stop()
    retired.close()  # no retired veth outlives a clean stop
    router.stop()  # routes stay: pods keep talking across nodes while the daemon restarts
    if metrics_server is not None:
        metrics_server.close()
    broker.close()
    return 0


def _start_metrics(address: str, health: Health):
    """The metrics (None when the address is ""): the handler's observer and the HTTP server.
    prometheus_client is imported here only, never on the CNI executables' path."""
    if not address:
        return None, None
    import prometheus_client

    from .. import metrics
    from .metrics import CnidMetrics

    prometheus_client.disable_created_metrics()  # no *_created series: half the lines, no use here
    cnid_metrics = CnidMetrics(health)
    server, problem = metrics.serve(cnid_metrics.registry, address, logging.getLogger("podwire-cnid"))
    health.metrics = server.url if server else problem
    return cnid_metrics, server


def _routing(opts: argparse.Namespace):
    """The reconciler, and the Node watcher feeding it (None in mode none: it only cleans up)."""
    from ..ipam import nodecidr
    from .nodes.router import NodeRouter
    from .nodes.watch import NodeWatcher

    router = NodeRouter(opts.routing, opts.node_name, nodecidr.mtu_path(opts.pod_cidrs_file),
                        vni=opts.vxlan_vni, port=opts.vxlan_port, masquerade=opts.masquerade,
                        resync_s=opts.routing_resync)
    if opts.routing == "none":
        return router, None
    return router, NodeWatcher.from_kubeconfig(opts.kubeconfig, router.update)


def _kube_api(kubeconfig: str):
    from .podcidr import kube_api
    return kube_api(kubeconfig)


def _import_verbs() -> None:
    """Load every verb module now, so the first request pays no imports."""
    from ..plugin import add, check, delete, gc, status  # noqa: F401



def status(opts: argparse.Namespace) -> int:
    """Print the daemon's health; exit 0 when it is ready."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(opts.socket)
            sock.sendall(wire.encode_request(HEALTH.encode(), b"", b"", 0))
            _, _, out, _ = wire.recv_answer(sock)
    except (OSError, EOFError, ValueError) as exc:
        print(f"podwire-cnid is not answering on {opts.socket}: {exc}", file=sys.stderr)
        return 1
    report = json.loads(out)
    print(json.dumps(report, indent=2))
    return 0 if report["ready"] else 1


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    return serve(opts) if opts.command == "serve" else status(opts)


if __name__ == "__main__":
    sys.exit(main())
