"""The daemons' Prometheus endpoint: an address to parse, a server on a thread.

Each daemon builds its own ``CollectorRegistry`` (never the process-global one),
so tests can run several daemons in one process and see only their own series.
The HTTP server is prometheus_client's own (``start_http_server``): GET
/metrics, plain text exposition, nothing else.

Standard library at import time (the address and the constants serve the daemons'
argument parsing); prometheus_client is imported only when a server starts, so it
stays off the CNI executables' start-up path whatever imports this.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


# One port per daemon, next to each other so a node's firewall rule is one range.
CNID_ADDRESS = "127.0.0.1:9741"
NETPOL_ADDRESS = "127.0.0.1:9742"
CRI_ADDRESS = "127.0.0.1:9743"  # podwire-cri's (docs/cri.md); listed here so the three do not clash

# Latency buckets, seconds: from a CHECK or a map update (~1 ms) to a slow ADD or a policy of
# 10,000 rules (tens of seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0)


def parse_address(text: str) -> Optional[tuple[str, int]]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port); "" -> None (metrics off).

    The host must be an IP address: a name could resolve to anything.  Port 0 picks a free port
    (tests), which :attr:`MetricsServer.address` then tells."""
    if not isinstance(text, str):
        raise ValueError(f"metrics address {text!r}: a string, HOST:PORT")
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics address {text!r}: expected HOST:PORT, e.g. {CNID_ADDRESS} or [::1]:9741")
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:
        raise ValueError(f"metrics address {text!r}: an IPv6 address goes in brackets, e.g. [::1]:9741")
    host = host[1:-1] if bracketed else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"metrics address {text!r}: {host!r} is not an IP address") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


class MetricsServer:
    """GET /metrics of ``registry`` on ``host:port``, served on a daemon thread."""

    def __init__(self, registry: "CollectorRegistry", host: str, port: int) -> None:
        from prometheus_client import start_http_server

        self.registry = registry
        self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        bound_host, bound_port = (str(x) for x in self._httpd.server_address[:2])
        self.address = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve(registry: "CollectorRegistry", address: str, log: logging.Logger) -> tuple[Optional[MetricsServer], str]:
    """Start the endpoint if ``address`` is set: (server, "") or (None, why not).

    A port that is taken does not stop the daemon: its job (wiring pods, enforcing policy)
    matters more than its metrics.  The failure is logged (``log``: the daemon's own logger)
    at error level and reported by the daemon's status."""
    where = parse_address(address)
    if where is None:
        return None, "off"
    host, port = where
    if not is_loopback(host):
        log.warning("metrics on %s: reachable from the network (series name networks and policies)",
                    address, extra={"metrics_address": address})
    try:
        server = MetricsServer(registry, host, port)
    except OSError as exc:
        log.error("metrics: cannot listen on %s: %s", address, exc.strerror or exc,
                  extra={"metrics_address": address})
        return None, f"cannot listen on {address}: {exc.strerror or exc}"
    log.info("metrics on %s", server.url, extra={"metrics_url": server.url})
    return server, ""

