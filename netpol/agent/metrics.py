"""`podwire-netpol serve`'s Prometheus series (each one documented in docs/netpol.md, "Metrics").

Read when Prometheus scrapes, from what `podwire-netpol stats` and `drops` read too:

* the datapath's per-CPU counters (pw_metrics: every verdict by reason and direction;
  pw_policy_stats: packets each policy allowed; pw_event_budget: drop events not sent);
* the drop events of the ring buffer, tallied by the policies that isolated the dropped
  packet's pod (agent/drops.py);
* the maps' fill levels (KernelDatapath.map_fill).

The one series observed as things happen is the update latency, told by the agent
after each change (Agent.update_listeners).  Nothing here takes the agent's lock: a
scrape never waits behind a big policy change.
"""
from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cni.metrics import LATENCY_BUCKETS

from ..datapath.reasons import is_drop
from .core import Agent
from .drops import DIRECTION_NAMES, REASON_LABELS


class AgentCollector(Collector):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        names = self.agent.drops.names  # one snapshot for the whole scrape
        cookies = names.cookies
        counters = self.agent.datapath.counters((), list(cookies))
        yield from self._verdicts(counters.verdicts)
        allowed = CounterMetricFamily("podwire_netpol_policy_allowed_packets",
                                      "Packets a policy allowed (replies excluded: they pass as reply)",
                                      labels=["namespace", "policy"])
        allowed_bytes = CounterMetricFamily("podwire_netpol_policy_allowed_bytes",
                                            "Bytes of the packets a policy allowed", labels=["namespace", "policy"])
        for cookie, (packets, size) in counters.policies.items():
            if cookie in cookies:
                labels = cookies[cookie].split("/", 1)
                allowed.add_metric(labels, packets)
                allowed_bytes.add_metric(labels, size)
        yield allowed
        yield allowed_bytes
        drops = CounterMetricFamily("podwire_netpol_policy_drops",
                                    "Drop events of pods a policy isolates, by policy, direction and reason",
                                    labels=["namespace", "policy", "direction", "reason"])
        for (key, direction, reason), count in sorted(self.agent.drops.by_policy().items()):
            drops.add_metric([*key.split("/", 1), direction, reason], count)
        yield drops
        yield CounterMetricFamily("podwire_netpol_drop_events_suppressed",
                                  "Drops counted but not sent as events (over the per-CPU budget)",
                                  value=counters.events_suppressed)
        yield GaugeMetricFamily("podwire_netpol_policies", "NetworkPolicies the agent enforces",
                                value=len(names.state.policies))
        yield GaugeMetricFamily("podwire_netpol_endpoints", "Pods the agent knows (local or not)",
                                value=len(names.state.endpoints))
        yield from self._maps()

    @staticmethod
    def _verdicts(verdicts: dict[tuple[int, int], tuple[int, int]]) -> Iterator[Metric]:
        """Every packet judged at a pod's veth, forwarded or dropped, by reason and direction
        (ingress: to the pod).  Counters of the datapath: complete, never sampled."""
        labels = ["reason", "direction"]
        families = {
            verdict: (CounterMetricFamily(f"podwire_netpol_{verdict}s", f"Packets {past} at pods' veths, by reason "
                                          "and direction (ingress: to the pod)", labels=labels),
                      CounterMetricFamily(f"podwire_netpol_{verdict}_bytes",
                                          f"Bytes of the packets {past}, by reason and direction", labels=labels))
            for verdict, past in (("drop", "dropped"), ("forward", "forwarded"))}
        for (reason, direction), (n, b) in sorted(verdicts.items()):
            packets, size = families["drop" if is_drop(reason) else "forward"]
            values = [REASON_LABELS.get(reason, str(reason)), DIRECTION_NAMES.get(direction, str(direction))]
            packets.add_metric(values, n)
            size.add_metric(values, b)
        for pair in families.values():
            yield from pair

    def _maps(self) -> Iterator[Metric]:
        entries = GaugeMetricFamily("podwire_netpol_map_entries", "Entries in a BPF map", labels=["map"])
        capacity = GaugeMetricFamily("podwire_netpol_map_max_entries", "Capacity of a BPF map (max_entries)",
                                     labels=["map"])
        for name, (n, most) in sorted(self.agent.datapath.map_fill().items()):
            entries.add_metric([name], n)
            capacity.add_metric([name], most)
        yield entries
        yield capacity


class NetpolMetrics:
    """The agent's registry (its own, not prometheus_client's global one)."""

    def __init__(self, agent: Agent) -> None:
        self.registry = CollectorRegistry()
        self.update_seconds = Histogram(
            "podwire_netpol_policy_update_duration_seconds",
            "Time from a change (policy, namespace labels, pod) reaching the agent to the BPF maps holding it",
            ["change"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.update_failures = Counter("podwire_netpol_policy_update_failures",
                                       "Changes that failed and were rolled back", ["change"], registry=self.registry)
        self.registry.register(AgentCollector(agent))
        agent.update_listeners.append(self.updated)

    def updated(self, change: str, seconds: float, ok: bool) -> None:
        if ok:
            self.update_seconds.labels(change).observe(seconds)
        else:
            self.update_failures.labels(change).inc()
