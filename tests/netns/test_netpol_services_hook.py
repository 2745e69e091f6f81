"""The post-DNAT hook's life: it outlives the agent (also kill -9), a restart replaces
it without leaving the old link behind, and removing the pins removes it.

Judged by what a pod sees (DNS through the kube-dns ClusterIP allowed, another
Service refused) and by the kernel's link ids.
"""
from __future__ import annotations

import signal
import sys

import pytest

from conftest import needs_root
from netpolsvc import Node, Svc, SvcPort

pytestmark = needs_root
ALLOW_DNS = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{protocol: UDP, port: 53}]
"""
SERVICES = [Svc("kube-system", "kube-dns", "10.96.0.10", [SvcPort("UDP", 53, 53)], ["kube-system/dns"]),
            Svc("x", "web", "10.96.7.10", [SvcPort("UDP", 8080, 80)], ["x/web"])]


@pytest.fixture
def node(tmp_path):
    from cni.install import write_wrappers

    (tmp_path / "bin").mkdir()
    write_wrappers(str(tmp_path / "bin"), sys.executable)
    n = Node(str(tmp_path), str(tmp_path / "bin"))
    try:
        n.start()
        n.add_pod("x/c", {"app": "client"})
        n.add_pod("x/web", {"app": "web"})
        n.add_pod("kube-system/dns", {"k8s-app": "kube-dns"}, responder="dns")
        import yaml
        n.client.apply(yaml.safe_dump_all([s.manifest() for s in SERVICES]) + "---\n" + ALLOW_DNS)
        n.proxy("iptables", SERVICES)
        yield n
    finally:
        n.close()


def enforced(node: Node) -> bool:
    """DNS through its Service answered, and another Service refused."""
    dns = node.run_in("x/c", "query", "10.96.0.10", "53", "UDP", "2")["answer"] == "kube-system/dns"
    node.pods["x/c"].send({"op": "probe", "timeout": 1.0, "probes": [["web", "10.96.7.10", "UDP", 8080]]})
    web = node.pods["x/c"].receive()["results"]["web"]
    return dns and not web


def test_hook_outlives_the_agent_and_restarts_replace_it(node):
    from netpol.datapath import nfhook
    from netpol.datapath.loader import remove_pins

    pin_dir = node.agent.pin_dir
    first = nfhook.link_ids(pin_dir)
    assert set(first) == {"ipv4", "ipv6"} and all(map(nfhook.link_exists, first.values()))
    assert enforced(node)

    node.agent.stop()  # a clean stop leaves enforcement in place
    assert nfhook.link_ids(pin_dir) == first and enforced(node)

    node.agent.start()  # the new program's links replace the old ones; none is left behind
    second = nfhook.link_ids(pin_dir)
    assert set(second) == set(first) and not set(second.values()) & set(first.values())
    assert not any(map(nfhook.link_exists, first.values()))
    assert enforced(node)

    node.agent.stop(signal.SIGKILL)
    assert nfhook.link_ids(pin_dir) == second and enforced(node)
    node.agent.start()
    third = nfhook.link_ids(pin_dir)
    assert not any(map(nfhook.link_exists, second.values())) and enforced(node)

    node.agent.stop()
    remove_pins(pin_dir)  # what `podwire-netpol teardown` ends with
    assert not any(map(nfhook.link_exists, third.values()))
