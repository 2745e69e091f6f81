"""Compiler: every catalogue case and rule kind, compiled entries replayed against the evaluator."""
from __future__ import annotations

import ipaddress

import pytest

from netpol.compiler import (ANY_IDENTITY, DIR_EGRESS, DIR_INGRESS, Attachment, IdentityAllocator, PolicyKey,
                             compile_world)
from netpol.compiler.ports import range_prefixes
from netpol.compiler.simulate import Simulator, verdict
from netpol.evaluator import Evaluator, Flow
from netpol.manifest import parse_manifest
from netpoltest import CASES, KEYS, PORTS, fake_ips, world

PROTOS = ("TCP", "UDP", "SCTP", "ICMP")
IPS = fake_ips()
ATTACH = {k: Attachment(ep_id=i + 1, ifindex=100 + i) for i, k in enumerate(KEYS)}


def compile_case(manifest: str, attachments=ATTACH):
    w = world(IPS, manifest)
    cookies = {p.key: i + 1 for i, p in enumerate(w.policies)}
    return w, compile_world(w, attachments, cookies, IdentityAllocator())


def assert_agrees(w, desired, family: int, extra_peers=()):
    """Both hooks of every local pod agree with the evaluator, for every flow between the
    pods (and from/to ``extra_peers``), protocol and port."""
    ev, idx, sim = Evaluator(w), (0 if family == 4 else 1), Simulator(desired)
    hook = {IPS[k][idx]: att.ifindex for k, att in ATTACH.items()}
    ends = list(hook) + list(extra_peers)
    for src in ends:
        for dst in ends:
            for proto in PROTOS:
                for port in (PORTS if proto != "ICMP" else (0,)):
                    flow = Flow(src, dst, proto, port)
                    if src in hook:
                        assert sim.verdict(hook[src], DIR_EGRESS, flow) == ev.egress_allowed(flow), \
                            ("egress", flow)
                    if dst in hook:
                        assert sim.verdict(hook[dst], DIR_INGRESS, flow) == ev.ingress_allowed(flow), \
                            ("ingress", flow)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("case", sorted(CASES))
def test_catalogue_case_agrees_with_evaluator(case, family):
    w, desired = compile_case(CASES[case](IPS, family))
    outside = ["192.0.2.7", "10.9.200.1"] if family == 4 else ["2001:db8::7", "fd09::ff:1"]
    assert_agrees(w, desired, family, outside)


def test_no_policy_means_no_isolation_and_no_entries():
    _, desired = compile_case("")
    assert desired.policy == {}
    assert {e.flags for e in desired.endpoints.values()} == {0}
    assert len(desired.ipcache) == 18  # one identity per pod address


def test_isolating_policy_without_rules_isolates_with_no_entries():
    _, desired = compile_case(CASES["deny-all"](IPS))
    x = [ATTACH[k].ifindex for k in KEYS if k.startswith("x/")]
    assert all(desired.endpoints[i].flags == 1 for i in x)
    assert desired.policy == {}


def test_rule_without_peers_compiles_to_the_any_identity():
    _, desired = compile_case(CASES["end-port"](IPS))
    identities = {k.identity for k in desired.policy}
    assert identities == {ANY_IDENTITY}


def test_port_range_becomes_prefixes():
    assert range_prefixes(81, 90) == [(81, 16), (82, 15), (84, 14), (88, 15), (90, 16)]
    assert range_prefixes(1, 65535)[-1] == (32768, 1)
    for lo, hi in [(1, 1), (80, 81), (1000, 2000), (0, 65535), (65535, 65535)]:
        covered = set()
        for value, bits in range_prefixes(lo, hi):
            covered |= set(range(value, value + (1 << (16 - bits))))
        assert covered == set(range(lo, hi + 1))


def test_named_port_missing_on_the_pod_compiles_to_nothing():
    manifest = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: no-such-port}]}]
"""
    _, desired = compile_case(manifest)
    assert desired.policy == {}
    assert all(e.flags == 1 for i, e in desired.endpoints.items() if i < 103)


def test_ip_block_prefixes_get_identities_and_excepts_are_excluded():
    manifest = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]}]
"""
    w, desired = compile_case(manifest)
    nets = {ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("192.0.2.128/25")}
    assert nets <= set(desired.ipcache)
    allowed = {k.identity for k in desired.policy}
    assert allowed == {desired.ipcache[ipaddress.ip_network("192.0.2.0/24")].identity}
    ev = Evaluator(w)
    for ip in ("192.0.2.1", "192.0.2.127", "192.0.2.128", "192.0.2.255", "192.0.3.1"):
        flow = Flow(ip, IPS["x/a"][0], "TCP", 80)
        assert verdict(desired, ATTACH["x/a"].ifindex, DIR_INGRESS, flow) == ev.ingress_allowed(flow)


def test_identities_are_stable_and_never_reused():
    ids = IdentityAllocator()
    a, b = ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("10.1.0.0/16")
    first = ids.get(a)
    assert ids.get(a) == first
    ids.retain([b])
    assert ids.get(a) != first  # a came back: it gets a new number
    seeded = IdentityAllocator({a: 900}, floor=1000)
    assert seeded.get(a) == 900 and seeded.get(b) == 1000


def test_duplicate_entries_keep_the_lowest_cookie():
    same = CASES["allow-same-namespace"](IPS)
    manifest = same + same.replace("name: same-ns", "name: same-ns-2")
    w = world(IPS, manifest)
    cookies = {p.key: i + 10 for i, p in enumerate(w.policies)}
    desired = compile_world(w, ATTACH, cookies, IdentityAllocator())
    assert set(desired.policy.values()) == {cookies["x/same-ns"]}


def test_only_local_pods_get_endpoints_and_entries():
    attachments = {"x/a": ATTACH["x/a"]}
    _, desired = compile_case(CASES["allow-same-namespace"](IPS), attachments)
    assert list(desired.endpoints) == [ATTACH["x/a"].ifindex]
    assert {k.subject for k in desired.policy} == {desired.endpoints[ATTACH["x/a"].ifindex].subject}
    owners = {e.ep_id for e in desired.ipcache.values()}
    assert owners == {0, ATTACH["x/a"].ep_id}


def test_policy_types_without_egress_rules_ignore_egress():
    manifest = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  egress: [{}]
"""
    _, desired = compile_case(manifest)
    assert all(k.direction == DIR_INGRESS for k in desired.policy)
    assert {desired.endpoints[ATTACH[k].ifindex].flags for k in KEYS if k.startswith("x/")} == {1}


def test_policy_key_is_hashable_tuple():
    key = PolicyKey(1, 0, 300, 6, 80, 24)
    assert key == (1, 0, 300, 6, 80, 24) and parse_manifest("").policies == []


def canonical(desired, compiler):
    """Desired with identity and subject numbers replaced by what they stand for."""
    names = compiler.names()
    ident, subj = names["identity"], names["subject"]
    live = {e.subject for e in desired.endpoints.values()}  # idle subjects' entries: a rebuild has none
    policy = {(subj[k.subject], k.direction, ident.get(k.identity, k.identity), k.proto, k.port, k.l4_bits): c
              for k, c in desired.policy.items() if k.subject in live}
    endpoints = {i: (e.ep_id, e.flags, subj[e.subject]) for i, e in desired.endpoints.items()}
    return endpoints, {n: (ident[e.identity], e.ep_id) for n, e in desired.ipcache.items()}, policy


def test_incremental_compiler_always_equals_a_fresh_compile():
    from dataclasses import replace

    from netpol.compiler import Compiler
    compiler = Compiler(IdentityAllocator())
    w = world(IPS)
    steps = [CASES[c](IPS, f) for c in ("ip-block-except", "named-ports", "union", "ingress-and-egress")
             for f in (4, 6)]
    policies = []
    for i, manifest in enumerate(steps):
        policies = [p for p in policies if i % 3 != 0] + parse_manifest(manifest).policies  # add and drop
        w = replace(w, policies=list({p.key: p for p in policies}.values()))
        if i == 4:  # a pod changes labels, another goes away
            w = replace(w, pods=[replace(p, labels=(("pod", "q"),)) if p.key == "y/b" else p
                                 for p in w.pods if p.key != "z/c"])
        cookies = {p.key: n + 1 for n, p in enumerate(w.policies)}
        attachments = {k: a for k, a in ATTACH.items() if k != "z/c"}
        incremental = compiler.compile(w, attachments, cookies)
        rebuild = Compiler(IdentityAllocator())
        assert canonical(incremental, compiler) == canonical(rebuild.compile(w, attachments, cookies), rebuild), i
