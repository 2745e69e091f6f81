"""The netpol test topology and policy catalogue, shared by the unit and netns tiers.

Namespaces x, y, z with pods a, b, c (as in the upstream e2e suite).  Every pod
serves TCP, UDP and SCTP on 80 and 81 and names them serve-<port>-<proto>;
pod b names them crosswise (serve-80-* is its port 81), so a named port is
visibly resolved per destination pod.  Each catalogue case is a function of
the pods' addresses (ipBlock cases need them) returning a YAML manifest.
"""
from __future__ import annotations

import ipaddress
from typing import Callable

from netpol.evaluator import Evaluator, Flow
from netpol.manifest import parse_manifest
from netpol.model import PROTOCOLS, NamedPort, Pod, World

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PORTS = (80, 81)
KEYS = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]
NS_LABELS = {ns: {"ns": ns} for ns in NAMESPACES}


def pod_labels(key: str) -> dict[str, str]:
    return {"pod": key.split("/")[1], "app": "web"}


def named_ports(key: str) -> tuple[NamedPort, ...]:
    swap = key.endswith("/b")
    return tuple(NamedPort(f"serve-{port}-{proto.lower()}", proto, (161 - port) if swap else port)
                 for port in PORTS for proto in PROTOCOLS)


def fake_ips() -> dict[str, list[str]]:
    """Addresses for the unit tier (the netns tier uses what IPAM gives)."""
    return {key: [f"10.9.{i // 3}.{10 + i % 3}", f"fd09::{i // 3}:{10 + i % 3}"] for i, key in enumerate(KEYS)}


def world(ips: dict[str, list[str]], manifest: str = "", interfaces: bool = False) -> World:
    pods = [Pod(namespace=k.split("/")[0], name=k.split("/")[1], labels=tuple(sorted(pod_labels(k).items())),
                ips=tuple(ips[k]), ports=named_ports(k), interface=f"veth-{k.replace('/', '-')}" if interfaces else "")
            for k in KEYS]
    parsed = parse_manifest(manifest) if manifest else None
    return World(pods=pods, namespaces=dict(NS_LABELS), policies=parsed.policies if parsed else [])


def _policy(ns: str, name: str, spec: str) -> str:
    body = "\n".join("  " + line for line in spec.strip("\n").splitlines())
    return f"""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: {ns}
spec:
{body}
"""


def _v4(ips: dict[str, list[str]], key: str) -> str:
    return ips[key][0]


def _subnet(ips: dict[str, list[str]], family: int, plen: int) -> str:
    addr = ips["x/a"][0 if family == 4 else 1]
    return str(ipaddress.ip_interface(f"{addr}/{plen}").network)


def _host(ips: dict[str, list[str]], key: str, family: int) -> str:
    return ips[key][0] + "/32" if family == 4 else ips[key][1] + "/128"


def case_deny_all(ips, family=4):
    return _policy("x", "deny-all", "podSelector: {}\npolicyTypes: [Ingress]")


def case_allow_same_namespace(ips, family=4):
    return _policy("x", "same-ns", "podSelector: {}\ningress:\n- from:\n  - podSelector: {}")


def case_namespace_selector(ips, family=4):
    return _policy("x", "from-y", """
podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: y}}""")


def case_pod_and_namespace(ips, family=4):
    return _policy("x", "and-or", """
podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y, z]}]}
    podSelector: {matchLabels: {pod: b}}
  - podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [a, b]}]}""")


def case_ip_block_except(ips, family=4):
    plen = 16 if family == 4 else 64
    return _policy("x", "ipblock", f"""
podSelector: {{matchLabels: {{pod: a}}}}
ingress:
- from:
  - ipBlock:
      cidr: {_subnet(ips, family, plen)}
      except: [{_host(ips, 'y/b', family)}, {_host(ips, 'z/c', family)}]
  - ipBlock: {{cidr: {_host(ips, 'z/c', family)}}}
  ports: [{{port: 80}}, {{port: 81, protocol: UDP}}]""")


def case_end_port(ips, family=4):
    return _policy("x", "end-port", """
podSelector: {matchLabels: {pod: a}}
ingress:
- ports:
  - {protocol: TCP, port: 81, endPort: 90}
  - {protocol: UDP, port: 70, endPort: 80}""")


def case_named_ports(ips, family=4):
    return _policy("x", "named-in", """
podSelector: {}
ingress:
- ports:
  - {port: serve-81-udp, protocol: UDP}
  - {port: serve-80-tcp}""") + _policy("y", "named-out", """
podSelector: {}
policyTypes: [Egress]
egress:
- to:
  - namespaceSelector: {matchLabels: {ns: z}}
  ports:
  - {port: serve-81-tcp}
  - {port: serve-80-sctp, protocol: SCTP}""")


def case_egress_only(ips, family=4):
    return _policy("x", "egress-only", """
podSelector: {matchLabels: {pod: a}}
policyTypes: [Egress]
egress:
- to:
  - namespaceSelector: {matchLabels: {ns: y}}""")


def case_ingress_and_egress(ips, family=4):
    return _policy("z", "both", """
podSelector: {}
policyTypes: [Ingress, Egress]
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: x}}
egress:
- to:
  - podSelector: {}
- to:
  - namespaceSelector: {matchLabels: {ns: y}}
  ports: [{port: 80, protocol: UDP}]""")


def case_sctp_only(ips, family=4):
    return _policy("x", "sctp-only", """
podSelector: {matchLabels: {pod: a}}
ingress:
- ports: [{protocol: SCTP, port: 80}]""")


def case_union(ips, family=4):
    return case_deny_all(ips) + _policy("x", "allow-yb-udp", """
podSelector: {matchLabels: {pod: a}}
ingress:
- from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
  ports: [{protocol: UDP, port: 81}]""")


CASES: dict[str, Callable[..., str]] = {
    "deny-all": case_deny_all, "allow-same-namespace": case_allow_same_namespace,
    "namespace-selector": case_namespace_selector, "pod-and-namespace": case_pod_and_namespace,
    "ip-block-except": case_ip_block_except, "end-port": case_end_port, "named-ports": case_named_ports,
    "egress-only": case_egress_only, "ingress-and-egress": case_ingress_and_egress,
    "sctp-only": case_sctp_only, "union": case_union,
}
IPV6_CASES = ("ip-block-except", "pod-and-namespace", "named-ports")


def truth_table(w: World, ips: dict[str, list[str]], family: int = 4) -> dict[tuple[str, str, str, int], bool]:
    """(from, to, protocol, port) -> connection allowed, per the reference evaluator."""
    ev = Evaluator(w)
    idx = 0 if family == 4 else 1
    return {(src, dst, proto, port): ev.allowed(Flow(ips[src][idx], ips[dst][idx], proto, port))
            for src in KEYS for dst in KEYS for proto in PROTOCOLS for port in PORTS}


def fake_agent(tmp_path=None, interfaces: dict[str, int] | None = None, datapath=None):
    """An Agent over the in-memory datapath (and a store file if tmp_path is given)."""
    from netpol.agent.core import Agent
    from netpol.agent.store import Store
    from netpol.datapath.fake import FakeDatapath

    dp = datapath or FakeDatapath(interfaces if interfaces is not None
                                  else {f"veth-{k.replace('/', '-')}": 100 + i for i, k in enumerate(KEYS)})
    agent = Agent(dp, Store(str(tmp_path / "state") if tmp_path else None))
    agent.start()
    return agent, dp


def register_all(agent, ips: dict[str, list[str]], local: bool = True) -> None:
    from netpol.model import Pod
    for key in KEYS:
        ns, name = key.split("/")
        agent.upsert_endpoint(Pod(ns, name, tuple(sorted(pod_labels(key).items())), tuple(ips[key]),
                                  named_ports(key), interface=f"veth-{ns}-{name}" if local else ""))
    for ns, labels in NS_LABELS.items():
        agent.set_namespace(ns, labels)
