"""podwire-netpol's metrics over the in-memory datapath (docs/netpol.md, "Metrics"): verdict
counters by reason, drop events attributed to the policies isolating the pod, the update
latency and failures, map fill levels, and the --metrics-address flag."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netpol import cli
from netpol.agent.metrics import NetpolMetrics
from netpol.datapath import reasons
from netpol.datapath.counters import Counters
from netpol.datapath.events import DropEvent
from netpol.errors import DatapathError
from netpoltest import fake_agent, fake_ips, register_all


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(registry: CollectorRegistry, name: str, **labels) -> float | None:
    return samples(registry).get((name, tuple(sorted(labels.items()))))


def policy(ns: str, name: str, spec: str) -> str:
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec: {spec}\n")


DENY_X = policy("x", "deny", "{podSelector: {}, policyTypes: [Ingress]}")
ONLY_A = policy("x", "only-a", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress, Egress]}")


@pytest.fixture
def agent():
    agent, dp = fake_agent()
    metrics = NetpolMetrics(agent)
    register_all(agent, fake_ips())
    yield agent, dp, metrics.registry
    agent.close()


def drop(agent, pod: str, direction: int, reason: int = reasons.DROP_POLICY) -> None:
    ep_id = agent.endpoint(pod).ep_id
    agent.datapath.emit_drop(DropEvent(time=0.0, monotonic_ns=0, src="10.9.0.1", dst="10.9.0.2", sport=1, dport=80,
                                       proto=6, direction=direction, reason=reason, ep_id=ep_id, ifindex=0,
                                       identity=0))


def test_drop_events_count_against_every_policy_isolating_the_pod(agent):
    agent, dp, reg = agent
    agent.apply(DENY_X + "---\n" + ONLY_A)
    for _ in range(3):
        drop(agent, "x/a", 0)
    drop(agent, "x/a", 1, reasons.DROP_NO_CONNECTION)  # egress: only-a isolates x/a, deny does not
    drop(agent, "x/b", 0)
    drop(agent, "y/a", 0)  # isolated by nothing: no policy to blame
    got = {k: v for k, v in samples(reg).items() if k[0] == "podwire_netpol_policy_drops_total"}
    labels = lambda pol, d, r: ("podwire_netpol_policy_drops_total",  # noqa: E731
                                (("direction", d), ("namespace", "x"), ("policy", pol), ("reason", r)))
    assert got == {labels("deny", "ingress", "policy"): 4, labels("only-a", "ingress", "policy"): 3,
                   labels("only-a", "egress", "no_connection"): 1}


def test_a_deleted_policy_takes_its_drop_series_along(agent):
    agent, dp, reg = agent
    agent.apply(DENY_X + "---\n" + ONLY_A)
    drop(agent, "x/a", 0)
    agent.delete("x", ["only-a"])
    assert value(reg, "podwire_netpol_policy_drops_total", namespace="x", policy="only-a", direction="ingress",
                 reason="policy") is None
    assert value(reg, "podwire_netpol_policy_drops_total", namespace="x", policy="deny", direction="ingress",
                 reason="policy") == 1
    drop(agent, "x/a", 0)  # after the change, attribution follows the policies now in force
    assert value(reg, "podwire_netpol_policy_drops_total", namespace="x", policy="deny", direction="ingress",
                 reason="policy") == 2


def test_verdict_counters_split_into_drops_and_forwards_by_reason(agent):
    agent, dp, reg = agent
    agent.apply(DENY_X)
    cookie = agent.policies("x")[0].record.cookie
    dp.counters_value = Counters(verdicts={(reasons.DROP_POLICY, 0): (5, 300), (reasons.FWD_REPLY, 1): (7, 700),
                                           (reasons.DROP_SPOOFED_SOURCE, 1): (1, 60)},
                                 policies={cookie: (2, 120)}, events_suppressed=4)
    assert value(reg, "podwire_netpol_drops_total", reason="policy", direction="ingress") == 5
    assert value(reg, "podwire_netpol_drop_bytes_total", reason="policy", direction="ingress") == 300
    assert value(reg, "podwire_netpol_drops_total", reason="spoofed_source", direction="egress") == 1
    assert value(reg, "podwire_netpol_forwards_total", reason="reply", direction="egress") == 7
    assert value(reg, "podwire_netpol_forward_bytes_total", reason="reply", direction="egress") == 700
    assert value(reg, "podwire_netpol_policy_allowed_packets_total", namespace="x", policy="deny") == 2
    assert value(reg, "podwire_netpol_policy_allowed_bytes_total", namespace="x", policy="deny") == 120
    assert value(reg, "podwire_netpol_drop_events_suppressed_total") == 4


def test_every_reason_of_the_header_has_a_label():
    from netpol.agent.drops import REASON_LABELS
    assert sorted(REASON_LABELS) == sorted(code for code, _ in reasons.REASONS.values())
    assert REASON_LABELS[reasons.DROP_POLICY] == "policy"
    assert REASON_LABELS[reasons.FWD_UNISOLATED] == "unisolated"


def test_each_change_is_timed_and_a_failed_one_counted(agent):
    agent, dp, reg = agent
    before = value(reg, "podwire_netpol_policy_update_duration_seconds_count", change="endpoint")
    assert before == len(fake_ips())  # register_all: one upsert per pod
    assert value(reg, "podwire_netpol_policy_update_duration_seconds_count", change="policy") is None
    agent.apply(DENY_X)
    assert value(reg, "podwire_netpol_policy_update_duration_seconds_count", change="policy") == 1
    agent.apply(DENY_X, dry_run=True)  # nothing reaches the maps
    assert value(reg, "podwire_netpol_policy_update_duration_seconds_count", change="policy") == 1
    dp.fail_next_sync = DatapathError("map full")
    with pytest.raises(DatapathError):
        agent.apply(ONLY_A)
    assert value(reg, "podwire_netpol_policy_update_duration_seconds_count", change="policy") == 1
    assert value(reg, "podwire_netpol_policy_update_failures_total", change="policy") == 1
    agent.set_namespace("z", {"a": "b"})
    assert value(reg, "podwire_netpol_policy_update_duration_seconds_count", change="namespace") >= 1


def test_map_fill_follows_the_maps(agent):
    agent, dp, reg = agent
    assert value(reg, "podwire_netpol_map_entries", map="pw_endpoints") == len(fake_ips())
    assert value(reg, "podwire_netpol_map_entries", map="pw_policy") == 0
    agent.apply(policy("x", "b-to-a", "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: "
                                      "{matchLabels: {pod: b}}}]}]}"))
    assert value(reg, "podwire_netpol_map_entries", map="pw_policy") == len(dp.maps.policy) > 0
    assert value(reg, "podwire_netpol_map_entries", map="pw_ipcache") == len(dp.maps.ipcache) > 0
    for name in ("pw_endpoints", "pw_ipcache", "pw_policy", "pw_ct"):
        assert value(reg, "podwire_netpol_map_max_entries", map=name) > 0
    assert value(reg, "podwire_netpol_policies") == 1
    assert value(reg, "podwire_netpol_endpoints") == len(fake_ips())


def test_the_metrics_address_flag():
    parse = cli._parser().parse_args
    assert parse(["serve"]).metrics_address == "127.0.0.1:9742"
    assert parse(["serve", "--metrics-address", ""]).metrics_address == ""
    assert parse(["serve", "--metrics-address", "[::1]:19742"]).metrics_address == "[::1]:19742"
    with pytest.raises(SystemExit):
        parse(["serve", "--metrics-address", "somehost:1"])
