"""podwire-netpol's metrics, scraped from a real agent enforcing on real veths: a policy
applied, denied datagrams sent, and the drop counters, the update latency histogram and the
map fill gauges read what happened."""
from __future__ import annotations

import time

import pytest

from conftest import needs_root
from metricstest import get, scrape, url_in_log

pytestmark = needs_root

SENT = 3


def policy(ns: str, name: str, spec: str) -> str:
    return (f"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, "
            f"namespace: {ns}}}\nspec: {spec}\n")


# x/a takes TCP 81 from x/b, nothing else: UDP 80 from x/b is dropped, and "deny" and "b-to-a"
# both isolate x/a for ingress.
POLICIES = (policy("x", "deny", "{podSelector: {}, policyTypes: [Ingress]}")
            + policy("x", "b-to-a", "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: "
                                    "{matchLabels: {pod: b}}}], ports: [{protocol: TCP, port: 81}]}]}"))


@pytest.fixture(scope="module")
def topo(cni_bin, tmp_path_factory):
    from netpolnet import Topology

    topology = Topology(cni_bin, str(tmp_path_factory.mktemp("netpol-metrics")))
    topology.agent.extra += ("--metrics-address", "127.0.0.1:0")
    try:
        topology.start()
        topology.client.set_namespace("x", {"ns": "x"})
        for key in ("x/a", "x/b"):
            topology.add_pod(key, {"pod": key.split("/")[1]})
        yield topology
    finally:
        topology.close()


def test_a_denied_datagram_moves_the_drop_counters_of_its_policies(topo):
    url = url_in_log(lambda: open(f"{topo.workdir}/agent.log", errors="replace").read())
    before = scrape(url)
    assert get(before, "podwire_netpol_policy_update_duration_seconds_count", change="policy") is None
    topo.client.apply(POLICIES)
    try:
        a, b = topo.pods["x/a"], topo.pods["x/b"]
        assert topo.probe({"x/b": [("ok", a.ips[0], "TCP", 81)]}, 2.0)["ok"]  # allowed: a conntrack entry
        for sport in range(40001, 40001 + SENT):
            b.call({"op": "send_udp", "dst": a.ips[0], "port": 80, "sport": sport})
        labels = {"namespace": "x", "direction": "ingress", "reason": "policy"}
        deadline = time.monotonic() + 10
        while True:  # drop events arrive through the ring buffer, a moment later
            m = scrape(url)
            if get(m, "podwire_netpol_policy_drops_total", policy="deny", **labels) == SENT \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert get(m, "podwire_netpol_policy_drops_total", policy="deny", **labels) == SENT
        assert get(m, "podwire_netpol_policy_drops_total", policy="b-to-a", **labels) == SENT
        assert get(m, "podwire_netpol_drops_total", reason="policy", direction="ingress") == SENT
        assert get(m, "podwire_netpol_drop_bytes_total", reason="policy", direction="ingress") > 0
        assert get(m, "podwire_netpol_forwards_total", reason="policy", direction="ingress") >= 1  # the SYN
        assert get(m, "podwire_netpol_policy_allowed_packets_total", namespace="x", policy="b-to-a") >= 1
        events = [e for e in topo.client.drops(recent=500) if e.dst_pod == "x/a" and e.protocol == "UDP"]
        assert len(events) == SENT  # what `podwire-netpol drops` shows agrees
        assert get(m, "podwire_netpol_policy_update_duration_seconds_count", change="policy") == 1
        assert 0 < get(m, "podwire_netpol_policy_update_duration_seconds_sum", change="policy") < 10
        for name in ("pw_endpoints", "pw_ipcache", "pw_policy", "pw_ct"):
            entries = get(m, "podwire_netpol_map_entries", map=name)
            capacity = get(m, "podwire_netpol_map_max_entries", map=name)
            assert 0 < entries <= capacity, (name, entries, capacity)
        assert get(m, "podwire_netpol_map_max_entries", map="pw_ct") == 262144  # PW_MAX_CT, from the kernel
        assert get(m, "podwire_netpol_policies") == 2
    finally:
        topo.client.delete("x", all=True)
    m = scrape(url)
    assert get(m, "podwire_netpol_policy_update_duration_seconds_count", change="policy") == 2
    assert get(m, "podwire_netpol_policy_drops_total", policy="deny", namespace="x", direction="ingress",
               reason="policy") is None  # gone with its policy


@pytest.mark.parametrize("entries", [0, 1, 5000])
def test_counting_a_map_in_batches_agrees_with_walking_it(entries):
    """pw_ct's fill level is counted with BPF_MAP_LOOKUP_BATCH (several batches here)."""
    import uuid

    from netpol.datapath import maps as m
    from netpol.datapath.loader import Programs, remove_pins

    pin_dir = f"/sys/fs/bpf/pwtest-{uuid.uuid4().hex[:8]}"
    programs = None
    try:
        programs = Programs(pin_dir)
        for i in range(entries):
            key = m.CtKey(sport=i % 65536, dport=80, ep_id=i // 65536 + 1, proto=6)
            programs.ct.update(key, m.CtValue(last_seen=1))
        assert programs.ct.count(batch=1024) == sum(1 for _ in programs.ct.keys()) == entries
        assert programs.ct.count() == entries
        assert programs.max_entries["pw_ct"] == 262144
    finally:
        if programs is not None:
            programs.close()
        remove_pins(pin_dir)
