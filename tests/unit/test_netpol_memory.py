"""Memory of the agent's policy state, per rule and per pod (issue 16: the agent's RSS with 5,000 pods
and 10,000 rules must stay within 1.2x the same agent with none).

Measured with tracemalloc (what stays allocated after the change, cyclic garbage collected), which is
deterministic, unlike RSS.  The rules are bench_netpol_scale.py's kind: two policies of ipBlock /32
rules with one port each, both selecting a pod on the node; the pods are remote pods of 50 label sets.
On Python 3.11 the state takes ~930 bytes per rule and ~610 per pod on this measure (the fake
datapath's copy of the maps included); before it was made compact, ~3,100 and ~1,500, then ~1,700
and ~700.  The apply's transient peak matters too (what the allocator keeps of it stays in RSS):
~1,070 bytes per rule above what was there before (was ~1,930, when a manifest's documents were
all loaded, and their specs copied, before any was parsed).  The bounds are generous (~1.4x now)
and below the old figures, so only a substantial regression fails.
"""
from __future__ import annotations

import gc
import tracemalloc

from netpol.agent.core import Agent
from netpol.agent.store import Store
from netpol.datapath.fake import FakeDatapath
from netpol.model import NamedPort, Pod
from netpol.validation import parse_cidr

RULES = 1500  # per policy: 3,000 rules
PODS = 2000
MAX_BYTES_PER_RULE = 1300
MAX_BYTES_PER_POD = 850
MAX_PEAK_BYTES_PER_RULE = 1500


def rules_manifest(count: int) -> str:
    def policy(name: str, role: str, direction: str, peer_key: str) -> str:
        rules = "".join(f"\n  - {peer_key}: [{{ipBlock: {{cidr: 172.16.{i // 256}.{i % 256}/32}}}}]\n"
                        f"    ports: [{{port: 5201}}]" for i in range(count))
        return (f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                f"metadata: {{name: {name}, namespace: bench}}\n"
                f"spec:\n  podSelector: {{matchLabels: {{role: {role}}}}}\n  policyTypes: [{direction.title()}]\n"
                f"  {direction}:{rules}\n")
    return policy("rules-in", "server", "ingress", "from") + policy("rules-out", "client", "egress", "to")


def remote_pod(i: int) -> Pod:
    # labels and ports built per pod, as a decoder hands them over (not shared by the caller)
    return Pod("bench", f"r{i}", (("app", f"a{i % 50}"), ("role", "peer")), (f"10.100.{i // 256}.{i % 256}",),
               (NamedPort("http", "TCP", 8080),))


def agent() -> Agent:
    a = Agent(FakeDatapath({"veth-s": 10, "veth-c": 11}), Store(None))
    for role, link, address in (("server", "veth-s", "10.99.2.1"), ("client", "veth-c", "10.99.2.2")):
        a.upsert_endpoint(Pod("bench", role, (("role", role),), (address,), interface=link))
    return a


def retained(change) -> int:
    """Bytes still allocated after ``change()``, garbage collected."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        change()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def bytes_per_rule() -> float:
    a = agent()
    text = rules_manifest(RULES)
    parse_cidr.cache_clear()  # the cidrs as a manifest never seen (the cache's entries count too)
    grown = retained(lambda: a.apply(text))
    assert len(a._desired.policy) >= 2 * RULES
    return grown / (2 * RULES)


def peak_bytes_per_rule() -> float:
    """The apply's peak, above what was allocated before it (the manifest's text included)."""
    a = agent()
    text = rules_manifest(RULES)
    parse_cidr.cache_clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        a.apply(text)
        return (tracemalloc.get_traced_memory()[1] - before) / (2 * RULES)
    finally:
        tracemalloc.stop()


def bytes_per_pod() -> float:
    a = agent()
    a.apply(rules_manifest(10))
    pods = [remote_pod(i) for i in range(PODS)]  # the caller's objects are not the agent's state

    def add() -> None:
        for pod in pods:
            a.upsert_endpoint(pod)
    grown = retained(add)
    assert len(a._desired.ipcache) >= PODS
    return grown / PODS


def test_memory_per_rule():
    assert bytes_per_rule() <= MAX_BYTES_PER_RULE


def test_memory_per_pod():
    assert bytes_per_pod() <= MAX_BYTES_PER_POD


def test_apply_peak_per_rule():
    assert peak_bytes_per_rule() <= MAX_PEAK_BYTES_PER_RULE


if __name__ == "__main__":
    print(f"{bytes_per_rule():.0f} bytes per rule, {bytes_per_pod():.0f} bytes per pod, "
          f"apply's peak {peak_bytes_per_rule():.0f} bytes per rule")
