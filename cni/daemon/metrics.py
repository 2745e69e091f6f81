"""podwire-cnid's Prometheus series (each one documented in docs/cni.md, "Metrics").

Requests are counted and timed as the handler answers them; the in-flight gauge and
the IPAM leases are read when Prometheus scrapes, by custom collectors: the leases from
the host-local-compatible lease directories themselves (one ``scandir`` per network),
so they are right whoever wrote them -- the daemon, podwire-ipam in process, host-local.

Free addresses need a network's ranges, which live in its config, not in its lease
directory.  :class:`Networks` learns them from the CNI configs on the node at start-up and
from every request the daemon serves successfully; a directory whose ranges are unknown
still has its leases counted, under ``range="unknown"``.
"""
from __future__ import annotations

import ipaddress
import json
import os
import threading
from typing import Iterable, Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import CniError
from ..ipam import config as ipam_config
from ..ipam.config import Range
from ..metrics import LATENCY_BUCKETS
from .handler import Answer, Request
from .health import Health

VERBS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")  # anything else counts as "other"
IPAM_TYPES = ("podwire-ipam", "host-local")                # the same lease layout
DEFAULT_CONF_DIR = "/etc/cni/net.d"
UNKNOWN_RANGE = "unknown"


def result_of(answer: Answer) -> str:
    """"success", or the CNI error code of a failed answer ("7", "11", ...)."""
    if answer.code == 0:
        return "success"
    try:
        return str(int(json.loads(answer.stdout)["code"]))
    except (ValueError, KeyError, TypeError):
        return "999"  # no parseable error: the spec's "internal"


class Networks:
    """Lease directory -> (network name, its configured ranges); learned, never guessed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str, tuple[Range, ...]]] = {}
        self._seen: dict[str, dict] = {}  # network name -> the ipam section last parsed

    def learn(self, config: dict) -> None:
        """From a network config (stdin of a request, or a plugin of a conflist)."""
        ipam = config.get("ipam")
        if not isinstance(ipam, dict) or ipam.get("type") not in IPAM_TYPES:
            return
        name = config.get("name")
        if not isinstance(name, str) or self._seen.get(name) == ipam:
            return  # the common case: the same network again, nothing to parse
        try:
            store_dir, sets = ipam_config.configured_ranges({"name": name, "ipam": ipam})
        except CniError:
            return  # e.g. ranges only in runtimeConfig: its leases still count as "unknown"
        with self._lock:
            self._known[os.path.realpath(store_dir)] = (name, tuple(r for s in sets for r in s.ranges))
            self._seen[name] = ipam

    def learn_request(self, stdin: bytes) -> None:
        try:
            config = json.loads(stdin)
        except ValueError:
            return
        if isinstance(config, dict):
            self.learn(config)

    def learn_conf_dir(self, directory: str) -> None:
        """The networks configured on the node (what containerd or CRI-O would run)."""
        from ..libcni import conf
        try:
            paths = conf.conf_files(directory)
        except CniError:
            return
        for path in paths:
            try:
                netlist = conf.load_conflist(path)
            except CniError:
                continue  # libcni skips a broken file too
            for plugin in netlist.plugins:
                self.learn({"name": netlist.name, "ipam": plugin.get("ipam")})

    def directories(self, data_dirs: Iterable[str]) -> dict[str, tuple[str, tuple[Range, ...]]]:
        """Every lease directory to count: the learned ones, and any under ``data_dirs``."""
        with self._lock:
            found = dict(self._known)
        for data_dir in data_dirs:
            try:
                entries = list(os.scandir(data_dir))
            except OSError:
                continue
            for entry in entries:
                path = os.path.realpath(entry.path)
                if entry.is_dir() and path not in found:
                    found[path] = (entry.name, ())
        return found


def count_leases(store_dir: str, ranges: tuple[Range, ...]) -> Optional[dict[str, tuple[int, int]]]:
    """Range label -> (leases in use, addresses free) of one lease directory; None if it is gone.

    A lease is a file named by its address; ``lock``, ``last_reserved_ip.N`` and our index do not
    parse as addresses.  Free is the range's allocatable addresses (the gateway is never handed
    out) less those in use."""
    try:
        names = [e.name for e in os.scandir(store_dir)]
    except OSError:
        return None
    used = {str(r): 0 for r in ranges}
    unknown = 0
    for name in names:
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            continue
        owner = next((r for r in ranges if ip in r), None)
        if owner is None:
            unknown += 1
        else:
            used[str(owner)] += 1
    out = {str(r): (used[str(r)], max(0, _allocatable(r) - used[str(r)])) for r in ranges}
    if unknown or not ranges:
        out[UNKNOWN_RANGE] = (unknown, -1)
    return out


def _allocatable(r: Range) -> int:
    size = int(r.end) - int(r.start) + 1
    return size - (1 if r.gateway in r else 0)


class LeaseCollector(Collector):
    def __init__(self, networks: Networks, data_dirs: Iterable[str]) -> None:
        self.networks = networks
        self.data_dirs = tuple(data_dirs)

    def collect(self) -> Iterator[Metric]:
        in_use = GaugeMetricFamily("podwire_cni_ipam_leases_in_use",
                                   "Addresses leased in the network's lease directory, by range",
                                   labels=["network", "range"])
        free = GaugeMetricFamily("podwire_cni_ipam_addresses_free",
                                 "Addresses of the range not leased (gateway excluded)", labels=["network", "range"])
        done: set[tuple[str, str]] = set()
        for store_dir, (network, ranges) in sorted(self.networks.directories(self.data_dirs).items()):
            counts = count_leases(store_dir, ranges)
            for label, (used, left) in (counts or {}).items():
                if (network, label) in done:
                    continue  # one network name in two data dirs: the first one found is shown
                done.add((network, label))
                in_use.add_metric([network, label], used)
                if left >= 0:
                    free.add_metric([network, label], left)
        yield in_use
        yield free


class DaemonCollector(Collector):
    """What the daemon's Health knows, read at scrape time."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("podwire_cni_requests_in_flight",
                                "Connections podwire-cnid is serving right now", value=self.health.in_flight)
        stats = self.health.routing() if self.health.routing else {}
        routes = GaugeMetricFamily("podwire_cni_node_routes", "Inter-node pod routes podwire-cnid "
                                   "installed, by routing mode", labels=["mode"])
        routes.add_metric([str(stats.get("mode", "none"))], float(stats.get("routes", 0)))
        yield routes
        yield GaugeMetricFamily("podwire_cni_remote_nodes", "Remote nodes routed to (their pod CIDRs "
                                "have routes)", value=float(stats.get("remote_nodes", 0)))


class CnidMetrics:
    """The daemon's registry (its own, not prometheus_client's global one) and the
    Handler's observer."""

    def __init__(self, health: Health, data_dirs: Iterable[str] = (ipam_config.DEFAULT_DATA_DIR,),
                 conf_dir: str = DEFAULT_CONF_DIR) -> None:
        self.registry = CollectorRegistry()
        self.operations = Counter("podwire_cni_operations", "CNI operations answered by podwire-cnid, "
                                  "by plugin, verb and result (success or the CNI error code)",
                                  ["plugin", "verb", "result"], registry=self.registry)
        self.duration = Histogram("podwire_cni_operation_duration_seconds",
                                  "Time from taking a request to answering it, by plugin and verb",
                                  ["plugin", "verb"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.networks = Networks()
        if conf_dir:
            self.networks.learn_conf_dir(conf_dir)
        self.registry.register(DaemonCollector(health))
        self.registry.register(LeaseCollector(self.networks, data_dirs))

    def observe(self, req: Request, answer: Answer, seconds: float) -> None:
        verb = req.command if req.command in VERBS else "other"
        self.operations.labels(req.plugin, verb, result_of(answer)).inc()
        self.duration.labels(req.plugin, verb).observe(seconds)
        if answer.code == 0 and verb == "ADD":
            self.networks.learn_request(req.stdin)
