"""Enforcement over a pod's and the agent's life, on real veths: isolation from the
first packet, node traffic, established connections, agent restarts, bad input,
and what `podwire-netpol drops` / `stats` report."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import needs_root

pytestmark = needs_root

PODS = {"x/a": {"pod": "a"}, "x/b": {"pod": "b"}, "y/a": {"pod": "a"}}


def policy(ns: str, name: str, spec: str) -> str:
    body = "\n".join("  " + line for line in spec.strip("\n").splitlines())
    return (f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, "
            f"namespace: {ns}}}\nspec:\n{body}\n")


DENY_X = policy("x", "deny", "podSelector: {}\npolicyTypes: [Ingress]")
ALLOW_B_TO_A = policy("x", "b-to-a", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]")


@pytest.fixture(scope="module")
def topo(cni_bin, tmp_path_factory):
    from netpolnet import Topology

    topology = Topology(cni_bin, str(tmp_path_factory.mktemp("netpol-life")))
    try:
        topology.start()
        for ns in ("x", "y"):
            topology.client.set_namespace(ns, {"ns": ns})
        for key, labels in PODS.items():
            topology.add_pod(key, labels)
        yield topology
    finally:
        topology.close()


@pytest.fixture(autouse=True)
def clean(topo):
    topo.client.delete(all=True)
    yield
    topo.client.delete(all=True)


def reach(topo, src: str, dst: str, proto: str = "TCP", port: int = 80, timeout: float = 1.0) -> bool:
    return topo.probe({src: [("p", topo.pods[dst].ips[0], proto, port)]}, timeout)["p"]


def cli(topo, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpol.cli", "--socket", topo.agent.socket, *args],
                          capture_output=True, text=True, timeout=60)


def in_pod(netns: str, code: str) -> str:
    return subprocess.run(["ip", "netns", "exec", os.path.basename(netns), sys.executable, "-S", "-c", code],
                          capture_output=True, text=True, timeout=30).stdout


def wait_drop(topo, predicate, timeout: float = 5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ev in topo.client.drops(recent=500):
            if predicate(ev):
                return ev
        time.sleep(0.1)
    return None


def test_the_node_always_reaches_its_pods(topo):
    topo.client.apply(policy("x", "deny-both", "podSelector: {}\npolicyTypes: [Ingress, Egress]"))
    assert not reach(topo, "y/a", "x/a")
    with socket.create_connection((topo.pods["x/a"].ips[0], 80), timeout=3) as conn:  # like a kubelet probe
        conn.sendall(b"ok")
        assert conn.recv(2) == b"ok"  # the reply passes x/a's egress isolation too


def test_new_pod_selected_by_an_existing_policy_drops_its_first_packet(topo):
    topo.client.apply(policy("x", "quarantine", "podSelector: {matchLabels: {role: new}}\n"
                                                "policyTypes: [Ingress, Egress]"))
    target = topo.pods["y/a"].ips[0]
    new = topo.add_pod("x/new", {"role": "new"}, workload=False)
    # The very first thing the pod does: one datagram to a server that would echo it.
    out = in_pod(new["netns"], f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 41234)); s.settimeout(1.5)
s.sendto(b"first", ("{target}", 80))
try:
    print("reply", s.recvfrom(64)[0])
except OSError:
    print("no reply")
""")
    assert out.strip() == "no reply"
    ev = wait_drop(topo, lambda e: e.src_ip == new["ips"][0] and e.src_port == 41234)
    assert ev is not None and (ev.isolated_pod, ev.direction, ev.protocol, ev.dst_port, ev.dst_pod) == \
        ("x/new", "egress", "UDP", 80, "y/a")
    # ... and nothing gets in either
    topo.probe({"y/a": [("p", new["ips"][0], "TCP", 80)]}, 1.0)
    assert wait_drop(topo, lambda e: e.dst_ip == new["ips"][0] and e.isolated_pod == "x/new"
                     and e.direction == "ingress" and e.protocol == "TCP")
    stats = {e.pod: e for e in topo.client.stats().endpoints}
    assert stats["x/new"].egress_denied.packets >= 1 and stats["x/new"].ingress_denied.packets >= 1


def test_revoking_a_rule_stops_established_connections_unrelated_changes_do_not(topo):
    topo.client.apply(DENY_X + ALLOW_B_TO_A)
    b = topo.pods["x/b"]
    assert b.call({"op": "open", "id": "c1", "dst": topo.pods["x/a"].ips[0], "port": 80})["ok"]
    assert b.call({"op": "echo", "id": "c1"})["ok"]
    for i in range(5):  # unrelated churn: never cuts an allowed flow
        topo.client.apply(policy("y", f"churn-{i}", "podSelector: {}\ningress: [{}]"))
        assert b.call({"op": "echo", "id": "c1"})["ok"]
    topo.client.delete("x", ("b-to-a",))
    assert not b.call({"op": "echo", "id": "c1", "timeout": 1.0})["ok"]  # documented choice: revoked = cut
    topo.client.apply(ALLOW_B_TO_A)
    assert b.call({"op": "echo", "id": "c1", "timeout": 5.0})["ok"]  # TCP retransmits get through again


def test_enforcement_survives_agent_restarts(topo):
    topo.client.apply(DENY_X + ALLOW_B_TO_A)
    before = {(e.namespace, e.name): (e.endpoint_id, e.ingress_isolated) for e in topo.client.endpoints()}
    assert reach(topo, "x/b", "x/a") and not reach(topo, "y/a", "x/a")
    topo.agent.stop(signal.SIGKILL)  # a crash: nothing is cleaned up
    assert reach(topo, "x/b", "x/a") and not reach(topo, "y/a", "x/a")  # enforced with no agent at all
    topo.agent.start()
    after = {(e.namespace, e.name): (e.endpoint_id, e.ingress_isolated) for e in topo.client.endpoints()}
    assert after == before
    assert [p.name for p in topo.client.policies("x")] == ["b-to-a", "deny"]
    assert reach(topo, "x/b", "x/a") and not reach(topo, "y/a", "x/a")
    topo.client.delete("x", ("deny", "b-to-a"))  # and the restarted agent still changes the datapath
    assert reach(topo, "y/a", "x/a")


@pytest.mark.parametrize("bad, message", [
    ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: m\n", "error converting YAML to JSON"),
    (policy("x", "cidr", "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.300/8}}]}]"),
     "must be a valid CIDR value"),
    (policy("x", "except", "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.9.0.0/24]}}]}]"),
     "must be a strict subset of `cidr`"),
    (policy("x", "endport", "podSelector: {}\ningress: [{ports: [{endPort: 90}]}]"),
     "may not be specified when `port` is not specified"),
    (policy("x", "proto", "podSelector: {}\ningress: [{ports: [{protocol: ICMP, port: 8}]}]"),
     'Unsupported value: "ICMP"'),
])
def test_bad_input_is_rejected_and_changes_nothing(topo, tmp_path, bad, message):
    topo.client.apply(DENY_X + ALLOW_B_TO_A)
    entries = topo.client.stats().policy_entries
    path = tmp_path / "bad.yaml"
    path.write_text(DENY_X.replace("name: deny", "name: also-valid") + bad)
    proc = cli(topo, "apply", "-f", str(path))
    assert proc.returncode == 1 and message in proc.stderr and proc.stdout == ""
    assert topo.client.stats().policy_entries == entries
    assert [p.name for p in topo.client.policies("x")] == ["b-to-a", "deny"]
    assert reach(topo, "x/b", "x/a") and not reach(topo, "y/a", "x/a")


def test_drops_and_stats_on_the_command_line(topo, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(DENY_X + ALLOW_B_TO_A)
    assert cli(topo, "apply", "-f", str(path)).stdout.splitlines() == [
        "networkpolicy.networking.k8s.io/deny created", "networkpolicy.networking.k8s.io/b-to-a created"]
    assert reach(topo, "x/b", "x/a") and not reach(topo, "y/a", "x/a", "UDP", 81)
    proc = cli(topo, "drops", "-o", "json", "--recent", "500")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(r["src_pod"] == "y/a" and r["dst_pod"] == "x/a" and r["protocol"] == "UDP" and r["dst_port"] == 81
               and r["direction"] == "ingress" and r["isolated_pod"] == "x/a" and r["reason"] == "Policy denied"
               for r in rows), proc.stdout
    table = cli(topo, "drops").stdout
    assert "ISOLATED-POD" in table and "y/a (" in table
    stats = json.loads(cli(topo, "stats", "-o", "json").stdout)
    allowed = {f"{p['namespace']}/{p['name']}": int(p.get("allowed", {}).get("packets", 0)) for p in stats["policies"]}
    assert allowed["x/b-to-a"] > 0 and allowed["x/deny"] == 0
    assert "x/a" in cli(topo, "stats").stdout
