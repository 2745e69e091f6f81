"""packaging/kubernetes/rbac.yaml grants exactly what the daemons' watchers ask the API for.

Each daemon's Kubernetes code runs against the API stub; every request it makes is turned into
(API group, resource, verb) and must be granted to its ClusterRole, and every rule of the role
must have been used, so the manifest can neither fall behind the code nor grant more than it needs.
"""
from __future__ import annotations

import os
import time
import urllib.parse

import yaml

from kubestub import KubeStub, namespace, node, pod
from netpoltest import fake_agent

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = os.path.join(ROOT, "packaging", "kubernetes", "rbac.yaml")


def granted(role: str) -> set[tuple[str, str, str]]:
    docs = list(yaml.safe_load_all(open(MANIFEST)))
    [cluster_role] = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == role]
    return {(group, resource, verb) for rule in cluster_role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def asked(requests: list[str]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of each request path the stub served."""
    out = set()
    for request in requests:
        url = urllib.parse.urlsplit(request)
        parts = url.path.strip("/").split("/")
        group = "" if parts[0] == "api" else parts[1]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if len(rest) >= 3 and rest[0] == "namespaces":
            rest = rest[2:]
        watching = "watch=" in url.query and "watch=false" not in url.query.lower()
        verb = "get" if len(rest) == 2 else ("watch" if watching else "list")
        out.add((group, rest[0], verb))
    return out


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_netpol_role_is_what_the_agents_watchers_use(tmp_path):
    from netpol.sources.kube import KubeSource
    agent, _ = fake_agent(tmp_path)
    with KubeStub() as stub:
        stub.put(namespace("x"))
        stub.put(pod("x", "a", {"app": "a"}, ["10.1.1.5"], node_name="n2"))
        source = KubeSource.from_config(agent, kubeconfig=stub.kubeconfig(str(tmp_path / "kc")))
        source.backoff = 0.1
        source.start()
        try:
            kinds = len(source.kinds())
            wait_for(lambda: sum("watch=" in r for r in stub.requests) >= kinds)
        finally:
            stub.close()  # ends the open watches, which source.stop() alone waits out
            source.stop()
        assert asked(stub.requests) == granted("podwire-netpol")


def test_the_cnid_role_is_what_its_node_readers_use(tmp_path):
    from cni.daemon.nodes.watch import NodeWatcher
    from cni.daemon.podcidr import PodCidrs, kube_api
    with KubeStub() as stub:
        stub.put(node("n1", ["10.1.1.0/24"], ["192.168.50.1"]))
        stub.put(node("n2", ["10.1.2.0/24"], ["192.168.50.2"]))
        kubeconfig = stub.kubeconfig(str(tmp_path / "kc"))
        seen: list[set] = []
        cidrs = PodCidrs(str(tmp_path / "pod-cidrs.json"), node_name="n1", api_factory=lambda: kube_api(kubeconfig))
        watcher = NodeWatcher.from_kubeconfig(kubeconfig, lambda nodes: seen.append(set(nodes)))
        cidrs.start()
        watcher.start()
        try:
            wait_for(lambda: cidrs.cidrs and any("watch=" in r for r in stub.requests))
        finally:
            stub.close()
            watcher.stop()
            cidrs.stop()
        assert seen[0] == {"n1", "n2"} and cidrs.cidrs == ["10.1.1.0/24"]
        assert asked(stub.requests) == granted("podwire-cnid")
