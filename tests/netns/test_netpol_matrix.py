"""The upstream e2e topology on real veths: 3 namespaces x 3 pods made by the podwire
CNI plugin, the agent running, every pod serving TCP, UDP and SCTP on 80 and 81.

For each catalogue policy set, all 81 pod pairs are probed for each protocol and
port, and the result must equal the reference evaluator's truth table.  A probe
succeeds only when the reply comes back, so every allowed cell also proves that
replies pass.  SCTP probes are real associations where the kernel has SCTP sockets
(the VM of `make vm-test`), else real INIT/INIT-ACK packets on raw sockets (the
development host has no SCTP module); TCP is a connect, UDP an echo.
"""
from __future__ import annotations

import os

import pytest

from conftest import needs_root
from netpol.model import PROTOCOLS
from netpoltest import (CASES, IPV6_CASES, KEYS, NS_LABELS, PORTS, named_ports, pod_labels, truth_table,
                        world)

pytestmark = needs_root
TIMEOUT = 1.0        # a dropped probe costs this; every batch runs in parallel
RETRY_TIMEOUT = 3.0  # expected-allowed probes that failed get one slower retry (a loaded 2-core box)


@pytest.fixture(scope="module")
def topo(cni_bin, tmp_path_factory):
    from netpolnet import Topology

    topology = Topology(cni_bin, str(tmp_path_factory.mktemp("netpol-matrix")))
    try:
        topology.start()
        for ns, labels in NS_LABELS.items():
            topology.client.set_namespace(ns, labels)
        for key in KEYS:
            topology.add_pod(key, pod_labels(key), ports=tuple((p.name, p.protocol, p.port) for p in named_ports(key)))
        yield topology
    finally:
        topology.close()


@pytest.fixture
def ips(topo):
    return {key: pod.ips for key, pod in topo.pods.items()}


@pytest.fixture(autouse=True)
def no_policies(topo):
    topo.client.delete(all=True)
    yield
    topo.client.delete(all=True)


def probe_matrix(topo, ips, family: int, expected: dict) -> dict:
    idx = 0 if family == 4 else 1
    cells = {f"{s}|{d}|{proto}|{port}": (s, d, proto, port)
             for s in KEYS for d in KEYS for proto in PROTOCOLS for port in PORTS}
    batches = {s: [(cid, ips[c[1]][idx], c[2], c[3]) for cid, c in cells.items() if c[0] == s] for s in KEYS}
    got = topo.probe(batches, TIMEOUT)
    retry = {s: [p for p in batch if expected[cells[p[0]]] and not got[p[0]]] for s, batch in batches.items()}
    if any(retry.values()):
        got.update(topo.probe({s: b for s, b in retry.items() if b}, RETRY_TIMEOUT))
    return {cells[cid]: ok for cid, ok in got.items()}


def render(expected: dict, got: dict) -> str:
    """Mismatching (protocol, port) tables in the e2e suite's style: X = wrong cell."""
    out = []
    for proto in PROTOCOLS:
        for port in PORTS:
            bad = [(s, d) for s in KEYS for d in KEYS if expected[(s, d, proto, port)] != got[(s, d, proto, port)]]
            if not bad:
                continue
            out.append(f"{proto}/{port}: expected(.=allowed, -=denied) / X where the datapath differs")
            out.append("      " + " ".join(f"{d:>4}" for d in KEYS))
            for s in KEYS:
                row = []
                for d in KEYS:
                    cell = "." if expected[(s, d, proto, port)] else "-"
                    row.append(f"{'X' + cell if (s, d) in bad else cell:>4}")
                out.append(f"{s:>5} " + " ".join(row))
    return "\n".join(out)


def check(topo, ips, manifest: str, family: int = 4) -> None:
    if manifest:
        topo.client.apply(manifest)
    expected = truth_table(world(ips, manifest), ips, family)
    got = probe_matrix(topo, ips, family, expected)
    assert got == expected, "\n" + render(expected, got) + "\n" + topo.agent.log()[-1500:]


def test_sctp_is_probed_with_what_the_kernel_offers(topo):
    from netpol_pod import sctp_sockets
    want = "sockets" if sctp_sockets() else "raw"
    assert {pod.sctp for pod in topo.pods.values()} == {want}
    if os.environ.get("PODWIRE_IN_VM") == "1":
        assert want == "sockets", "the VM's stock kernel has SCTP: the matrix must use real associations"


def test_without_policies_everything_is_reachable(topo, ips):
    check(topo, ips, "")


@pytest.mark.parametrize("case", list(CASES))
def test_matrix_ipv4(topo, ips, case):
    check(topo, ips, CASES[case](ips, 4))


@pytest.mark.parametrize("case", IPV6_CASES)
def test_matrix_ipv6(topo, ips, case):
    check(topo, ips, CASES[case](ips, 6), family=6)
