"""The reference evaluator, rule by rule (networking/v1 semantics, as the API reference documents them)."""
from __future__ import annotations

import pytest

from netpol.evaluator import Evaluator, Flow
from netpol.manifest import parse_manifest
from netpol.model import NamedPort, Pod, World

A1, A2, B1, C1 = "10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.2.1"
OUTSIDE = "192.0.2.9"


def pods():
    return [
        Pod("a", "one", (("app", "web"), ("tier", "front")), (A1, "fd00::1"),
            (NamedPort("http", "TCP", 8080), NamedPort("dns", "UDP", 5353))),
        Pod("a", "two", (("app", "db"),), (A2,), (NamedPort("http", "TCP", 9090),)),
        Pod("b", "one", (("app", "web"),), (B1,)),
        Pod("c", "one", (), (C1,)),
    ]


def evaluator(*specs: str, namespaces=None) -> Evaluator:
    docs = "".join(f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{s}\n" for s in specs)
    policies = parse_manifest(docs).policies if specs else []
    return Evaluator(World(pods(), namespaces or {"a": {"team": "red"}, "b": {"team": "blue"}, "c": {}},
                           policies))


def pol(ns: str, name: str, spec: str) -> str:
    return f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n" + "\n".join("  " + l for l in spec.splitlines())


def ok(ev: Evaluator, src: str, dst: str, proto: str = "TCP", port: int = 80, **kw) -> bool:
    return ev.allowed(Flow(src, dst, proto, port, **kw))


def test_pods_no_policy_selects_are_unrestricted():
    ev = evaluator(pol("a", "p", "podSelector: {matchLabels: {app: db}}"))
    assert ok(ev, B1, A1) and ok(ev, A2, B1) and not ok(ev, B1, A2)


def test_isolation_is_per_direction_and_defaults_from_policy_types():
    ingress_only = evaluator(pol("a", "p", "podSelector: {}"))
    assert not ok(ingress_only, B1, A1) and ok(ingress_only, A1, B1)
    egress_section = evaluator(pol("a", "p", "podSelector: {}\negress: [{to: [{podSelector: {}}]}]"))
    assert not ok(egress_section, A1, B1)
    assert not ok(egress_section, A1, A2)  # egress allows it, but A2 is ingress-isolated by the same policy
    assert egress_section.egress_allowed(Flow(A1, A2, "TCP", 80))
    empty_egress = evaluator(pol("a", "p", "podSelector: {}\negress: []"))  # len(egress)==0: no Egress type
    assert ok(empty_egress, A1, B1)
    egress_only = evaluator(pol("a", "p", "podSelector: {}\npolicyTypes: [Egress]"))
    assert ok(egress_only, B1, A1) and not ok(egress_only, A1, B1)


def test_policies_are_additive():
    ev = evaluator(pol("a", "p1", "podSelector: {}\ningress: [{from: [{podSelector: {}}]}]"),
                   pol("a", "p2", "podSelector: {matchLabels: {app: web}}\ningress: [{ports: [{port: 443}]}]"))
    assert ok(ev, A2, A1) and ok(ev, B1, A1, port=443) and not ok(ev, B1, A1) and not ok(ev, B1, A2, port=443)


def test_connection_needs_source_egress_and_destination_ingress():
    ev = evaluator(pol("a", "out", "podSelector: {}\npolicyTypes: [Egress]\negress: [{to: [{namespaceSelector: {}}]}]"),
                   pol("b", "in", "podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {app: db}}}]}]"))
    assert not ok(ev, A1, B1)  # A1 may send, but B1 only admits its own namespace's db pods
    assert ok(ev, A1, C1) and not ok(ev, A1, OUTSIDE)  # namespaceSelector {} is pods only


def test_pod_selector_alone_means_the_policys_namespace():
    ev = evaluator(pol("a", "p", "podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]"))
    assert ok(ev, A1, A2) and not ok(ev, B1, A2)


def test_namespace_selector_alone_matches_all_pods_of_those_namespaces():
    ev = evaluator(pol("a", "p", "podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]"))
    assert ok(ev, B1, A1) and not ok(ev, C1, A1) and not ok(ev, A2, A1)


def test_namespace_name_label_is_always_there():
    ev = evaluator(pol("a", "p", "podSelector: {}\ningress: [{from: [{namespaceSelector: "
                                 "{matchLabels: {kubernetes.io/metadata.name: c}}}]}]"))
    assert ok(ev, C1, A1) and not ok(ev, B1, A1)


def test_selectors_in_one_peer_are_anded_and_peers_are_ored():
    anded = evaluator(pol("a", "p", "podSelector: {}\ningress: [{from: [{namespaceSelector: {}, "
                                    "podSelector: {matchLabels: {app: web}}}]}]"))
    assert ok(anded, B1, A2) and ok(anded, A1, A2) and not ok(anded, C1, A2)
    ored = evaluator(pol("a", "p", "podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}, "
                                   "{podSelector: {matchLabels: {app: web}}}]}]"))
    assert ok(ored, B1, A2) and ok(ored, A1, A2) and not ok(ored, C1, A2)


@pytest.mark.parametrize("expr, allowed", [
    ("{key: app, operator: In, values: [web, x]}", {A1}),
    ("{key: app, operator: NotIn, values: [web]}", {A2}),
    ("{key: tier, operator: Exists}", {A1}),
    ("{key: tier, operator: DoesNotExist}", {A2}),
])
def test_match_expressions(expr, allowed):
    ev = evaluator(pol("b", "p", f"podSelector: {{}}\ningress: [{{from: [{{namespaceSelector: {{}}, "
                                 f"podSelector: {{matchExpressions: [{expr}]}}}}]}}]"))
    assert {src for src in (A1, A2) if ok(ev, src, B1)} == allowed


def test_empty_selector_and_empty_rule_match_everything():
    ev = evaluator(pol("a", "p", "podSelector: {}\ningress: [{}]"))
    assert ok(ev, OUTSIDE, A1) and ok(ev, C1, A1, "UDP", 53) and ok(ev, B1, A1, "ICMP", 0)


def test_ip_block_with_except_and_another_peer_readmitting():
    ev = evaluator(pol("a", "p", "podSelector: {}\ningress: [{from: ["
                                 "{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24, 10.0.2.1/32]}}, "
                                 "{ipBlock: {cidr: 10.0.2.0/24}}]}]"))
    assert ok(ev, A2, A1)            # a pod address inside the cidr
    assert not ok(ev, B1, A1)         # excepted
    assert ok(ev, C1, A1)             # excepted by the first peer, allowed by the second
    assert not ok(ev, OUTSIDE, A1)


def test_ports_never_confuse_protocols():
    ev = evaluator(pol("a", "p", "podSelector: {}\ningress: [{ports: [{protocol: SCTP, port: 80}, {port: 81}]}]"))
    assert ok(ev, B1, A1, "SCTP", 80) and not ok(ev, B1, A1, "TCP", 80) and not ok(ev, B1, A1, "UDP", 80)
    assert ok(ev, B1, A1, "TCP", 81) and not ok(ev, B1, A1, "SCTP", 81)
    assert not ok(ev, B1, A1, "ICMP", 0)


def test_end_port_is_inclusive_and_missing_port_means_all_ports_of_the_protocol():
    ev = evaluator(pol("a", "p", "podSelector: {}\ningress: [{ports: [{port: 1000, endPort: 1002}, {protocol: UDP}]}]"))
    assert [ok(ev, B1, A1, "TCP", p) for p in (999, 1000, 1002, 1003)] == [False, True, True, False]
    assert ok(ev, B1, A1, "UDP", 1) and ok(ev, B1, A1, "UDP", 65535) and not ok(ev, B1, A1, "SCTP", 1)


def test_named_ports_resolve_per_destination_pod_and_protocol():
    ingress = evaluator(pol("a", "p", "podSelector: {}\ningress: [{ports: [{port: http}]}]"))
    assert ok(ingress, B1, A1, port=8080) and ok(ingress, B1, A2, port=9090)
    assert not ok(ingress, B1, A1, port=9090) and not ok(ingress, B1, A1, "UDP", 8080)
    udp = evaluator(pol("a", "p", "podSelector: {}\ningress: [{ports: [{port: dns}]}]"))  # dns is UDP: TCP never matches
    assert not ok(udp, B1, A1, "TCP", 5353) and not ok(udp, B1, A1, "UDP", 5353)
    egress = evaluator(pol("b", "p", "podSelector: {}\npolicyTypes: [Egress]\negress: [{ports: [{port: http}]}]"))
    assert ok(egress, B1, A1, port=8080) and ok(egress, B1, A2, port=9090) and not ok(egress, B1, A2, port=8080)
    assert not ok(egress, B1, OUTSIDE, port=8080)  # a non-pod has no named ports


def test_node_traffic_and_self_are_always_allowed():
    ev = evaluator(pol("a", "p", "podSelector: {}\npolicyTypes: [Ingress, Egress]"))
    assert ok(ev, "10.0.0.254", A1, from_node=True) and not ok(ev, "10.0.0.254", A1)
    assert ok(ev, A1, A1) and ok(ev, A1, A1, "UDP", 9) and ok(ev, "fd00::1", "fd00::1", "SCTP", 1)
    assert not ok(ev, A1, A2)


def test_ipv6():
    ev = evaluator(pol("a", "p", "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{ipBlock: {cidr: 'fd00::/64'}}]}]"))
    assert ok(ev, "fd00::5", "fd00::1") and not ok(ev, "fd01::5", "fd00::1")
    assert not ok(ev, B1, A1)  # an IPv4 peer is never inside an IPv6 block
