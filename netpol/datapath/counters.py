"""Counter snapshots, shared by the kernel and the fake datapath."""
from __future__ import annotations

import dataclasses

Pair = tuple[int, int]  # (packets, bytes)


@dataclasses.dataclass
class EndpointCounters:
    ingress_allowed: Pair = (0, 0)
    ingress_denied: Pair = (0, 0)
    egress_allowed: Pair = (0, 0)
    egress_denied: Pair = (0, 0)


@dataclasses.dataclass
class Counters:
    endpoints: dict[int, EndpointCounters] = dataclasses.field(default_factory=dict)  # by ep_id
    policies: dict[int, Pair] = dataclasses.field(default_factory=dict)               # by cookie
    verdicts: dict[tuple[int, int], Pair] = dataclasses.field(default_factory=dict)   # (reason, dir)
    events_suppressed: int = 0  # drops not reported as events (over the per-CPU budget)
