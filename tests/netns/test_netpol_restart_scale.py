"""Issue 16: a restart with 10,000 rules and 1,000 pods restores the maps without rewriting
them, and says how long it takes before serving.

The agent runs in this process on the kernel datapath (programs from the session's compile
cache, maps pinned in a private directory), with a real store: the restart is a new Agent on
the same store and pins, as after `systemctl restart` or a kill -9."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from cnitest import needs_root

pytestmark = needs_root

RULES_PER_POLICY = 5_000  # two policies: 10,000 rules
PODS = 1_000


def _manifest() -> str:
    def policy(name: str, role: str, kind: str, peer: str) -> str:
        rules = "".join(f"\n  - {peer}: [{{ipBlock: {{cidr: 172.{16 + i // 65536}.{i // 256 % 256}.{i % 256}/32}}}}]"
                        f"\n    ports: [{{port: 5201}}]" for i in range(RULES_PER_POLICY))
        return (f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, "
                f"namespace: scale}}\nspec:\n  podSelector: {{matchLabels: {{role: {role}}}}}\n"
                f"  policyTypes: [{kind}]\n  {kind.lower()}:{rules}\n")
    return policy("rules-in", "server", "Ingress", "from") + policy("rules-out", "client", "Egress", "to")


@pytest.fixture
def node(tmp_path):
    from netpol.datapath.loader import remove_pins
    pin_dir = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:8]}"
    links = [f"pwr{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for link in links:
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", link + "p"], check=True)
    try:
        yield pin_dir, str(tmp_path / "state"), links
    finally:
        for link in links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        remove_pins(pin_dir)


class CountingDatapath:
    """The kernel datapath, with the entries each sync wrote."""

    def __new__(cls, pin_dir: str):
        from netpol.datapath.kernel import KernelDatapath

        class Counting(KernelDatapath):
            def sync(self, desired):
                stats = super().sync(desired)
                self.written.append(stats.added + stats.updated + stats.removed)
                return stats
        dp = Counting(pin_dir, 0)
        dp.written = []
        return dp


def test_a_restart_with_10k_rules_and_1000_pods_rewrites_no_map_entry(node, capsys):
    from netpol.agent.core import Agent
    from netpol.agent.store import Store
    from netpol.datapath import sync
    from netpol.model import Pod

    pin_dir, state_dir, links = node
    first = Agent(CountingDatapath(pin_dir), Store(state_dir))
    first.start()
    first.apply(_manifest())
    for role, link, address in zip(("server", "client"), links, ("10.98.0.1", "10.98.0.2"), strict=True):
        first.upsert_endpoint(Pod("scale", role, (("role", role),), (address,), interface=link))
    for i in range(PODS):
        first.upsert_endpoint(Pod("scale", f"p{i}", (("app", f"a{i % 20}"), ("role", "peer")),
                                  (f"10.97.{i // 256}.{i % 256}",)))
    before = sync.read_current(first.datapath.programs)
    assert len(before.policy) >= 2 * RULES_PER_POLICY and len(before.ipcache) > PODS
    first.close()  # what the process leaves behind: pinned maps, attached programs, the store

    started = time.perf_counter()
    second = Agent(CountingDatapath(pin_dir), Store(state_dir))
    second.start()
    seconds = time.perf_counter() - started
    try:
        assert second.datapath.written == [0], "the restart rewrote map entries"
        after = sync.read_current(second.datapath.programs)
        assert (after.endpoints, after.ipcache, after.policy) == (before.endpoints, before.ipcache, before.policy)
        assert {v.pod.key for v in second.endpoints()} >= {"scale/server", "scale/client"}
    finally:
        second.close()
    with capsys.disabled():
        print(f"\n  restart with {2 * RULES_PER_POLICY} rules and {PODS} pods: {seconds:.2f} s before serving "
              f"(full compile in memory, no map writes)", file=sys.stderr)
