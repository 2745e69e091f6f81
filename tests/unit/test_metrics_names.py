"""Every series podwire-cnid and podwire-netpol expose follows Prometheus's conventions and is
documented, with its type and labels, in docs/cni.md and docs/netpol.md -- and every documented
series exists.  The registries are filled so that each series has samples."""
from __future__ import annotations

import os
import re

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from cni.daemon.handler import Answer, Request
from cni.daemon.health import Health
from cni.daemon.metrics import CnidMetrics
from netpol.agent.metrics import NetpolMetrics
from netpol.datapath import reasons
from netpol.datapath.counters import Counters
from netpol.datapath.events import DropEvent
from netpol.errors import DatapathError
from netpoltest import fake_agent, fake_ips, register_all

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs")
BASE_UNITS = ("seconds", "bytes")
NOT_BASE = re.compile(r"_(milliseconds|microseconds|nanoseconds|ms|us|ns|secs?|minutes?|hours?|days?|second)(_|$)"
                      r"|_(bits?|kb|mb|gb|kib|mib|gib|kilobytes|megabytes|gigabytes|byte)(_|$)")
LABEL = re.compile(r"^[a-z][a-z0-9_]*$")


def cnid_registry(tmp_path) -> CollectorRegistry:
    data = tmp_path / "networks"
    (data / "net1").mkdir(parents=True)
    (data / "net1" / "10.1.0.2").write_text("c\r\neth0")
    cnid = CnidMetrics(Health(), data_dirs=(str(data),), conf_dir="")
    conf = b'{"name": "net1", "type": "podwire", "ipam": {"type": "podwire-ipam", "subnet": "10.1.0.0/24", ' \
           b'"dataDir": "' + str(data).encode() + b'"}}'
    cnid.observe(Request("podwire", {"CNI_COMMAND": "ADD"}, conf), Answer(0, b"{}"), 0.01)
    return cnid.registry


def netpol_registry() -> CollectorRegistry:
    agent, dp = fake_agent()
    registry = NetpolMetrics(agent).registry
    register_all(agent, fake_ips())
    agent.apply("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\n"
                "spec: {podSelector: {}, policyTypes: [Ingress]}\n")
    dp.emit_drop(DropEvent(0.0, 0, "10.9.0.1", "10.9.0.2", 1, 80, 6, 0, reasons.DROP_POLICY,
                           agent.endpoint("x/a").ep_id, 0, 0))
    dp.fail_next_sync = DatapathError("full")
    with pytest.raises(DatapathError):
        agent.set_namespace("x", {"new": "labels"})
    cookie = agent.policies("x")[0].record.cookie
    dp.counters_value = Counters(verdicts={(reasons.DROP_POLICY, 0): (1, 60), (reasons.FWD_POLICY, 0): (1, 60)},
                                 policies={cookie: (1, 60)})
    return registry


def exposed(registry: CollectorRegistry) -> dict[str, tuple[str, frozenset[str], set[str]]]:
    """Series name as scraped (counters with _total) -> (type, labels, sample names)."""
    out = {}
    for family in registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        out[name] = (family.type, frozenset(labels), {s.name for s in family.samples})
    return out


def documented(doc: str) -> dict[str, tuple[str, frozenset[str]]]:
    with open(os.path.join(DOCS, doc)) as f:
        rows = [line for line in f if line.startswith("| `podwire_")]
    out = {}
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        out[cells[0].strip("`")] = (cells[1], frozenset(re.findall(r"`([a-z_]+)`", cells[2])))
    return out


@pytest.fixture(params=["cni.md", "netpol.md"])
def daemon(request, tmp_path):
    prometheus_client.disable_created_metrics()  # as both daemons do at start
    try:
        registry = cnid_registry(tmp_path) if request.param == "cni.md" else netpol_registry()
        yield request.param, exposed(registry)
    finally:
        prometheus_client.enable_created_metrics()


def test_every_series_follows_the_conventions(daemon):
    _, series = daemon
    assert series
    for name, (kind, labels, sample_names) in series.items():
        assert name.startswith("podwire_"), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert not NOT_BASE.search(name), f"{name}: not in a base unit (seconds, bytes)"
        assert not name.endswith("_created"), f"{name}: *_created series are off"
        assert all(LABEL.match(label) for label in labels), (name, labels)
        assert sample_names, f"{name}: no samples (the fixture should move every series)"
        if kind == "counter":
            assert name.endswith("_total") and sample_names == {name}, (name, sample_names)
        elif kind == "histogram":
            assert name.endswith("_seconds"), f"{name}: a latency histogram is in seconds"
            assert sample_names == {f"{name}_bucket", f"{name}_count", f"{name}_sum"}, sample_names
        else:
            assert kind == "gauge", (name, kind)
            assert not name.endswith("_total") and sample_names == {name}, name
        if any(unit in name for unit in BASE_UNITS):
            assert name.removesuffix("_total").rsplit("_", 1)[-1] in BASE_UNITS, \
                f"{name}: the unit goes last (before _total)"


def test_the_docs_list_every_series_with_its_type_and_labels(daemon):
    doc, series = daemon
    docs = documented(doc)
    assert set(docs) == set(series), f"{doc}: documented but not exposed: {set(docs) - set(series)}; " \
                                     f"exposed but not documented: {set(series) - set(docs)}"
    for name, (kind, labels, _) in series.items():
        assert docs[name] == (kind, labels), (name, docs[name], (kind, labels))
