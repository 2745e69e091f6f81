"""NetworkPolicy through Services: the verdict is the one for dialling the backend.

A node namespace holds the bridge, the pods (made by the podwire plugin), the
agent, and kube-proxy-shaped DNAT rules for ClusterIP and NodePort Services, in
iptables form and in nftables form (both parametrised).  For each policy the
matrix of probes through the Services must equal the matrix of probes to the
backend pods directly; a Service whose policy allows one of its two backends
lets exactly the connections kube-proxy sends there through; the allow-DNS
egress policy lets a UDP and a TCP query through the kube-dns ClusterIP and
nothing else.
"""
from __future__ import annotations

import sys

import pytest

from conftest import needs_root
from netpolsvc import Node, Svc, SvcPort

pytestmark = needs_root
MODES = ("iptables", "nftables")
TIMEOUT = 1.0
CLIENTS = ("x/c1", "x/c2")
BACKENDS = ("x/a", "x/b")
LABELS = {"x/c1": {"app": "client", "pod": "c1"}, "x/c2": {"app": "client", "pod": "c2"},
          "x/a": {"app": "a", "pod": "a"}, "x/b": {"app": "b", "pod": "b"},
          "kube-system/dns": {"k8s-app": "kube-dns", "pod": "dns"}}


def services() -> list[Svc]:
    """One Service per backend (kube-proxy's choice is then fixed), one with both, and kube-dns.
    Service port 8080 -> the pods' 80: a policy names the port the backend serves."""
    out = [Svc("x", f"svc-{b[-1]}", f"10.96.7.{10 + i}",
               [SvcPort("TCP", 8080, 80, 30080 + i), SvcPort("UDP", 8080, 80, 30080 + i)], [b])
           for i, b in enumerate(BACKENDS)]
    out.append(Svc("x", "web", "10.96.7.20", [SvcPort("TCP", 82, 82, 30090)], list(BACKENDS)))
    out.append(Svc("kube-system", "kube-dns", "10.96.0.10", [SvcPort("UDP", 53, 53), SvcPort("TCP", 53, 53)],
                   ["kube-system/dns"], cluster_ip6="fd00:96::a"))
    out.append(Svc("x", "not-dns", "10.96.7.53", [SvcPort("UDP", 53, 80)], ["x/a"],  # port 53 to a's 80
                   cluster_ip6="fd00:96::35"))
    return out


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from cni.install import write_wrappers

    workdir = tmp_path_factory.mktemp("netpol-services")
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    write_wrappers(str(bin_dir), sys.executable)
    n = Node(str(workdir), str(bin_dir))
    try:
        n.start()
        for ns in ("x", "kube-system"):
            n.client.set_namespace(ns, {"kubernetes.io/metadata.name": ns})
        for key in (*CLIENTS, *BACKENDS):
            n.add_pod(key, LABELS[key], responder="whoami" if key in BACKENDS else "")
        n.add_pod("kube-system/dns", LABELS["kube-system/dns"], responder="dns")
        import yaml
        n.client.apply(yaml.safe_dump_all([s.manifest() for s in services()]))
        assert n.client.stats().service_enforcement.startswith("post-dnat"), n.agent.log()
        yield n
    finally:
        n.close()


@pytest.fixture(params=MODES)
def proxied(request, node):
    node.proxy(request.param, services())
    node.client.delete(all=True)
    yield node
    node.client.delete(all=True)
    node.unproxy()


def policy(name: str, spec: str, ns: str = "x") -> str:
    body = "\n".join("  " + line for line in spec.strip("\n").splitlines())
    return f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\n" \
           f"spec:\n{body}\n"


POLICIES = {
    "allow-all": "",
    "deny-all-egress": policy("deny-egress", "podSelector: {matchLabels: {app: client}}\npolicyTypes: [Egress]"),
    "egress-to-a-only": policy("to-a", """
podSelector: {matchLabels: {app: client}}
policyTypes: [Egress]
egress:
- to: [{podSelector: {matchLabels: {app: a}}}]"""),
    "egress-to-a-tcp-80": policy("to-a-80", """
podSelector: {matchLabels: {app: client}}
policyTypes: [Egress]
egress:
- to: [{podSelector: {matchLabels: {app: a}}}]
  ports: [{protocol: TCP, port: 80}]"""),
    # the clients isolated both ways: replies arrive from the Service address, un-DNATed
    "client-isolated-both-ways": policy("client-both", """
podSelector: {matchLabels: {app: client}}
policyTypes: [Ingress, Egress]
egress:
- to: [{podSelector: {matchLabels: {app: a}}}]"""),
    "ingress-from-c1-only": policy("from-c1", """
podSelector: {matchExpressions: [{key: app, operator: In, values: [a, b]}]}
ingress:
- from: [{podSelector: {matchLabels: {pod: c1}}}]"""),
}


def probe(node: Node, targets: dict) -> dict:
    """targets: cell -> (client, dst, proto, port); cell -> answered."""
    batches: dict[str, list] = {}
    for cell, (client, dst, proto, port) in targets.items():
        batches.setdefault(client, []).append(("|".join(map(str, cell)), dst, proto, port))
    for key, batch in batches.items():
        node.pods[key].send({"op": "probe", "timeout": TIMEOUT, "probes": batch})
    got = {}
    for key in batches:
        got.update(node.pods[key].receive()["results"])
    return {cell: got["|".join(map(str, cell))] for cell in targets}


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_matrix_through_services_equals_direct(proxied, name):
    node = proxied
    if POLICIES[name]:
        node.client.apply(POLICIES[name])
    svcs = {s.backends[0]: s for s in services() if s.name.startswith("svc-")}
    targets = {}
    for c in CLIENTS:
        for b in BACKENDS:
            for proto in ("TCP", "UDP"):
                svc = svcs[b]
                node_port = next(p.node_port for p in svc.ports if p.proto == proto)
                targets[(c, b, proto, "direct")] = (c, node.ips[b], proto, 80)
                targets[(c, b, proto, "cluster-ip")] = (c, svc.cluster_ip, proto, 8080)
                targets[(c, b, proto, "node-port")] = (c, node.gateway, proto, node_port)
    got = probe(node, targets)
    direct = {k[:3]: v for k, v in got.items() if k[3] == "direct"}
    for path in ("cluster-ip", "node-port"):
        through = {k[:3]: v for k, v in got.items() if k[3] == path}
        assert through == direct, f"{name} via {path}: {through} != direct {direct}\n{node.agent.log()}"
    if name == "allow-all":
        assert all(direct.values())
    elif name == "deny-all-egress":
        assert not any(direct.values())
    else:
        assert any(direct.values()) and not all(direct.values()), direct


def test_only_connections_landing_on_an_allowed_backend_pass(proxied):
    """Service web has backends a and b, kube-proxy picks at random; egress allows a only."""
    node = proxied
    node.client.apply(POLICIES["egress-to-a-only"])
    answers = []
    for _ in range(3):  # both outcomes are all but certain in 24 tries; a few rounds make sure
        answers += node.run_in("x/c1", "connect", "10.96.7.20", "82", "24", "0.7")["answers"]
        answers += node.run_in("x/c1", "connect", node.gateway, "30090", "8", "0.7")["answers"]
        if "x/a" in answers and None in answers:
            break
    assert set(answers) <= {"x/a", None}, answers  # never b
    assert "x/a" in answers and None in answers, answers
    drops = [d for d in node.client.drops(recent=500) if d.src_pod == "x/c1" and d.dst_port == 82]
    assert drops, "the dropped connections were not reported"
    assert {d.dst_ip for d in drops} == {node.ips["x/b"]}, "a drop must name the backend, not the Service"
    assert {(d.direction, d.reason_code) for d in drops} == {("egress", 16)}
    assert {d.dst_pod for d in drops} == {"x/b"}


@pytest.mark.parametrize("family", (4, 6))
def test_allow_dns_egress(proxied, family):
    node = proxied
    dns_ip, not_dns_ip = ("10.96.0.10", "10.96.7.53") if family == 4 else ("fd00:96::a", "fd00:96::35")
    node.client.apply(policy("allow-dns", """
podSelector: {}
policyTypes: [Egress]
egress:
- to:
  - namespaceSelector: {}
    podSelector: {matchLabels: {k8s-app: kube-dns}}
  ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]"""))
    for proto in ("UDP", "TCP"):
        got = node.run_in("x/c1", "query", dns_ip, "53", proto, "2")["answer"]
        assert got == "kube-system/dns", (proto, got, node.agent.log())
    # nothing else: port 53 of a Service whose backend is another pod, another port of the DNS pod,
    # another Service
    assert node.run_in("x/c1", "query", not_dns_ip, "53", "UDP", "1")["answer"] is None
    dns_pod = node.ips["kube-system/dns"] if family == 4 else node.ips6["kube-system/dns"]
    got = probe(node, {("dns-80",): ("x/c1", dns_pod, "TCP", 80),
                       ("web",): ("x/c1", "10.96.7.10", "TCP", 8080),
                       ("web-udp",): ("x/c1", "10.96.7.10", "UDP", 8080)})
    assert not any(got.values()), got
    # and without the policy the same probes pass (they were refused by policy, not by the bed)
    node.client.delete(all=True, namespace="x")
    assert node.run_in("x/c1", "query", not_dns_ip, "53", "UDP", "1")["answer"] is not None  # a's 80 echoes
    got = probe(node, {("web",): ("x/c1", "10.96.7.10", "TCP", 8080)})
    assert all(got.values())
