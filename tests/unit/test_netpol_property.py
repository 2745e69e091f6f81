"""Property: for random pods, namespaces and policies, the compiled map entries decide
every flow exactly as the reference evaluator does (both hooks of every local pod)."""
from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpol.compiler import DIR_EGRESS, DIR_INGRESS, Attachment, IdentityAllocator, compile_world
from netpol.compiler.simulate import Simulator
from netpol.evaluator import Evaluator, Flow
from netpol.model import (EGRESS, INGRESS, IPBlock, LabelSelector, NamedPort, NetworkPolicy, Peer, Pod, PolicyPort,
                          Requirement, Rule, World)

NAMESPACES = ("n1", "n2", "n3")
LABELS = {"app": ("web", "db"), "tier": ("a", "b")}
V4_POOL = [f"10.0.{i}.{j}" for i in (0, 1) for j in (1, 2, 3, 130)]
V6_POOL = [f"fd00::{i}" for i in range(1, 9)]
OUTSIDERS = ["192.0.2.1", "10.0.0.200", "10.0.2.5", "fd00::99", "2001:db8::1"]
CIDRS = ["10.0.0.0/16", "10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/30", "10.0.0.128/25", "0.0.0.0/0",
         "fd00::/64", "fd00::/126", "::/0"]
NAMED = [NamedPort("http", "TCP", 80), NamedPort("http", "TCP", 8080), NamedPort("dns", "UDP", 53),
         NamedPort("s", "SCTP", 80), NamedPort("http", "UDP", 81)]

labels = st.dictionaries(st.sampled_from(sorted(LABELS)), st.sampled_from(["web", "db", "a", "b"]), max_size=2)
requirement = st.builds(
    lambda key, op, values: Requirement(key, op, tuple(values) if op in ("In", "NotIn") else ()),
    st.sampled_from(sorted(LABELS)), st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(st.sampled_from(["web", "db", "a", "b", "n1", "n2"]), min_size=1, max_size=2))
selector = st.builds(lambda ml, me: LabelSelector(tuple(sorted(ml.items())), tuple(me)),
                     st.dictionaries(st.sampled_from(["app", "tier", "ns"]), st.sampled_from(["web", "db", "a", "n1"]),
                                     max_size=1),
                     st.lists(requirement, max_size=2))


@st.composite
def ip_block(draw):
    cidr = ipaddress.ip_network(draw(st.sampled_from(CIDRS)))
    hosts = [a + ("/32" if "." in a else "/128") for a in V4_POOL + V6_POOL]
    inside = [n for n in map(ipaddress.ip_network, CIDRS + hosts)
              if n.version == cidr.version and n.subnet_of(cidr) and n.prefixlen > cidr.prefixlen]
    excepts = draw(st.lists(st.sampled_from(inside), max_size=2, unique=True)) if inside else []
    return IPBlock(cidr, tuple(excepts))


peer = st.one_of(
    st.builds(lambda s: Peer(pod_selector=s), selector),
    st.builds(lambda s: Peer(namespace_selector=s), selector),
    st.builds(lambda a, b: Peer(pod_selector=a, namespace_selector=b), selector, selector),
    st.builds(lambda b: Peer(ip_block=b), ip_block()))


@st.composite
def policy_port(draw):
    proto = draw(st.sampled_from(["TCP", "UDP", "SCTP"]))
    kind = draw(st.sampled_from(["all", "one", "range", "named"]))
    if kind == "all":
        return PolicyPort(proto)
    if kind == "named":  # mostly names some pods have (with their protocol), sometimes none has
        named = draw(st.sampled_from(NAMED + [NamedPort("nope", proto, 0)]))
        return PolicyPort(named.protocol, named.name)
    port = draw(st.sampled_from([53, 80, 81, 8080]))
    end = draw(st.integers(port, port + 200)) if kind == "range" else None
    return PolicyPort(proto, port, end)


rule = st.builds(lambda peers, ports: Rule(tuple(peers), tuple(ports)),
                 st.lists(peer, max_size=2), st.lists(policy_port(), max_size=2))


@st.composite
def policy(draw, index):
    types = draw(st.sampled_from([{INGRESS}, {EGRESS}, {INGRESS, EGRESS}]))
    return NetworkPolicy(namespace=draw(st.sampled_from(NAMESPACES)), name=f"p{index}",
                         pod_selector=draw(selector), policy_types=frozenset(types),
                         ingress=tuple(draw(st.lists(rule, max_size=2))),
                         egress=tuple(draw(st.lists(rule, max_size=2))))


@st.composite
def worlds(draw):
    count = draw(st.integers(1, 6))
    v4 = draw(st.lists(st.sampled_from(V4_POOL), min_size=count, max_size=count, unique=True))
    v6 = draw(st.lists(st.sampled_from(V6_POOL), min_size=count, max_size=count, unique=True))
    pods = []
    for i in range(count):
        ips = (v4[i],) + ((v6[i],) if draw(st.booleans()) else ())
        ports = draw(st.lists(st.sampled_from(NAMED), min_size=1, max_size=3, unique_by=lambda p: (p.name, p.protocol)))
        pods.append(Pod(draw(st.sampled_from(NAMESPACES)), f"pod{i}", tuple(sorted(draw(labels).items())), ips,
                        tuple(ports)))
    ns_labels = {ns: draw(st.dictionaries(st.sampled_from(["app", "ns"]), st.sampled_from(["web", "n1", "db"]),
                                          max_size=1)) for ns in NAMESPACES}
    policies = [draw(policy(i)) for i in range(draw(st.integers(0, 3)))]
    local = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    return World(pods, ns_labels, policies), {p.key: Attachment(i + 1, 100 + i) for i, p in enumerate(pods)
                                              if local[i]}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_compiled_entries_decide_like_the_evaluator(world_and_local):
    world, attachments = world_and_local
    cookies = {p.key: i + 1 for i, p in enumerate(world.policies)}
    sim = Simulator(compile_world(world, attachments, cookies, IdentityAllocator()))
    ev = Evaluator(world)
    hooks = {ip: attachments[p.key].ifindex for p in world.pods if p.key in attachments for ip in p.ips}
    ends = [ip for p in world.pods for ip in p.ips] + OUTSIDERS
    for src in ends:
        for dst in ends:
            if ipaddress.ip_address(src).version != ipaddress.ip_address(dst).version:
                continue
            for proto, port in (("TCP", 80), ("TCP", 8080), ("UDP", 53), ("UDP", 81), ("SCTP", 80), ("TCP", 281),
                                ("ICMP", 0)):
                flow = Flow(src, dst, proto, port)
                if src in hooks:
                    assert sim.verdict(hooks[src], DIR_EGRESS, flow) == ev.egress_allowed(flow), ("egress", flow)
                if dst in hooks:
                    assert sim.verdict(hooks[dst], DIR_INGRESS, flow) == ev.ingress_allowed(flow), ("ingress", flow)
