"""What the agent reports: plain dataclasses the gRPC layer turns into messages."""
from __future__ import annotations

import dataclasses

from ..datapath.counters import EndpointCounters, Pair
from ..model import Pod
from .store import PolicyRecord


@dataclasses.dataclass
class EndpointView:
    pod: Pod
    ep_id: int
    ingress_isolated: bool
    egress_isolated: bool


@dataclasses.dataclass
class PolicyView:
    record: PolicyRecord
    selected: list[str]


@dataclasses.dataclass
class PolicyResult:
    namespace: str
    name: str
    action: str  # created, configured, unchanged, deleted
    kind: str = "networkpolicy"  # or "service"


@dataclasses.dataclass
class DropView:
    time: float
    monotonic_ns: int
    src_ip: str
    src_pod: str
    src_port: int
    dst_ip: str
    dst_pod: str
    dst_port: int
    protocol: str
    direction: str
    isolated_pod: str
    reason: str
    reason_code: int


@dataclasses.dataclass
class StatsView:
    endpoints: list[tuple[str, int, EndpointCounters]]
    policies: list[tuple[str, Pair, int]]           # policy key, allowed, entries
    verdicts: list[tuple[str, str, Pair]]           # reason, direction, counter
    policy_entries: int
    ipcache_entries: int
    events_suppressed: int = 0
    service_enforcement: str = ""
    service_frontends: int = 0
