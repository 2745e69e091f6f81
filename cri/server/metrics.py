"""podwire-cri's Prometheus metrics: the series, the collector that reads the shim's state at
scrape time, and the HTTP endpoint (cri.toml ``metrics_address``).

Each shim has its own CollectorRegistry (``Services.metrics.registry``), never
prometheus_client's global one: tests run several shims in one process, and each scrape sees
its own shim only.  Series (docs/cri.md "Metrics"):

    podwire_cri_rpc_duration_seconds{method, code}     histogram, observed in the gRPC boundary
    podwire_cri_pods{state}                              gauge, ready / notready
    podwire_cri_containers{state}                        gauge, created / running / exited / unknown
    podwire_cri_image_pulls_total{result}                counter, success / failure
    podwire_cri_image_pull_duration_seconds{result}      histogram
    podwire_cri_image_pull_bytes_total                   counter, blob bytes received from registries
    podwire_cri_streaming_sessions{kind}                 gauge, exec / attach / portforward open now
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from cni import metrics
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..store.records import CREATED, EXITED, POD_NOTREADY, POD_READY, RUNNING, UNKNOWN

if TYPE_CHECKING:
    from .services import Services

PREFIX = "podwire_cri_"
# From a cached ListContainers (ms) to RunPodSandbox with CNI and a pull through the boundary
# (minutes: the kubelet's RunPodSandbox deadline is 4 min).
RPC_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)
PULL_BUCKETS = (.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
POD_STATES = (POD_READY, POD_NOTREADY)
CONTAINER_STATES = (CREATED, RUNNING, EXITED, UNKNOWN)
SESSION_KINDS = ("exec", "attach", "portforward")
SUCCESS, FAILURE = "success", "failure"


class CriMetrics:
    """The shim's series in a registry of its own; ``watch(svc)`` adds the state gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc_seconds = Histogram(
            PREFIX + "rpc_duration_seconds",
            "Time to answer a unary CRI RPC, by method and gRPC status code.",
            ["method", "code"], buckets=RPC_BUCKETS, registry=self.registry)
        self.pulls = Counter(
            PREFIX + "image_pulls", "PullImage calls finished, by result (success, failure).",
            ["result"], registry=self.registry)
        self.pull_seconds = Histogram(
            PREFIX + "image_pull_duration_seconds", "Time a PullImage took, by result.",
            ["result"], buckets=PULL_BUCKETS, registry=self.registry)
        self.pull_bytes = Counter(
            PREFIX + "image_pull_bytes",
            "Layer bytes received from registries by pulls (retries included; a layer already "
            "in the store or downloaded by a concurrent pull is not counted again).",
            registry=self.registry)
        for result in (SUCCESS, FAILURE):     # both series exist from the start, at 0
            self.pulls.labels(result)

    def watch(self, svc: Services) -> None:
        """Gauges read from ``svc`` at each scrape (pods, containers, streaming sessions)."""
        self.registry.register(StateCollector(svc))

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpc_seconds.labels(method, code).observe(seconds)

    @contextlib.contextmanager
    def pull(self) -> Iterator[Callable[[str, int, int], None]]:
        """Around one PullImage: yields the registry Progress callback that counts the bytes
        received; on exit records the pull's result and duration (an exception is a failure
        and propagates)."""
        start, lock = time.monotonic(), threading.Lock()
        seen: dict[str, int] = {}

        def progress(digest: str, done: int, _total: int) -> None:
            # Called per chunk from the download threads; `done` restarts at 0 when the
            # download moves to the next endpoint.
            with lock:
                last = seen.get(digest, 0)
                seen[digest] = done
            self.pull_bytes.inc(done - last if done >= last else done)

        result = FAILURE
        try:
            yield progress
            result = SUCCESS
        finally:
            self.pulls.labels(result).inc()
            self.pull_seconds.labels(result).observe(time.monotonic() - start)


class StateCollector(Collector):
    """Counts of the shim's records and streaming sessions, read when scraped: nothing to keep
    in step with every state change, and a restarted shim reports its recovered state."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    def describe(self) -> list:
        return [_pods(), _containers(), _sessions()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pods = _count(p.state for p in self._svc.pods.list())
        ctrs = _count(c.state for c in self._svc.containers.list())
        streaming = self._svc.streaming
        sessions = streaming.open_sessions() if streaming is not None else {}
        yield _family(_pods(), POD_STATES, pods)
        yield _family(_containers(), CONTAINER_STATES, ctrs)
        yield _family(_sessions(), SESSION_KINDS, sessions)


def _pods() -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + "pods", "Pod sandboxes by state (ready, notready).",
                             labels=["state"])


def _containers() -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + "containers",
                             "Containers by state (created, running, exited, unknown).",
                             labels=["state"])


def _sessions() -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + "streaming_sessions",
                             "Exec, attach and port-forward sessions open on the streaming server.",
                             labels=["kind"])


def _count(values: Iterator[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _family(family: GaugeMetricFamily, keys: tuple, counts: dict[str, int]) -> GaugeMetricFamily:
    """Every known key, 0 when absent: a series that vanishes reads as "no data", not 0."""
    for key in keys:
        family.add_metric([key], counts.get(key, 0))
    return family


# -- the endpoint ---------------------------------------------------------------------------------

class MetricsServer:
    """cni.metrics' endpoint (the daemons' one server and address rules) for one registry; the
    address is checked here, bound at start() so that a port in use stops the shim at start."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        parsed = metrics.parse_address(address)
        if parsed is None:
            raise ValueError("metrics address '': metrics are off, there is nothing to serve")
        self.host, self.port = parsed
        self._registry = registry
        self._server: Optional[metrics.MetricsServer] = None

    def start(self) -> None:
        """Listen (OSError, e.g. EADDRINUSE, if the address cannot be bound)."""
        self._server = metrics.MetricsServer(self._registry, self.host, self.port)
        self.port = int(self._server.address.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
