"""Drop history and counters, turned into names a person can read."""
from __future__ import annotations

import collections
import functools
import queue
import threading

from ..compiler import Desired
from ..compiler.entries import DIR_INGRESS, DIRECTIONS
from ..datapath.events import DropEvent
from ..datapath.reasons import REASONS, text_of
from .store import State
from .views import DropView, StatsView

PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
DIRECTION_NAMES = {0: "ingress", 1: "egress"}


REASON_LABELS = {code: name.split("_", 1)[1].lower() for name, (code, _) in REASONS.items()}  # DROP_POLICY: policy


class Names:
    """A snapshot taken after a change: the policies behind each policy counter (cookie) and,
    computed on first need, the policies isolating an endpoint in a direction.  Replaced
    whole, so the drop thread and scrapes read it without the agent's lock."""

    def __init__(self, state: State):
        self.state = state  # a copy: records are replaced, never mutated
        self._pods_by_ep = {rec.ep_id: rec.pod for rec in state.endpoints.values() if rec.ep_id}
        self._isolating: dict[tuple[int, int], tuple[str, ...]] = {}

    @functools.cached_property
    def cookies(self) -> dict[int, str]:
        return {rec.cookie: key for key, rec in self.state.policies.items()}

    def isolating(self, ep_id: int, direction: int) -> tuple[str, ...]:
        """Keys of the policies that select the endpoint's pod for ``direction``."""
        found = self._isolating.get((ep_id, direction))
        if found is None:
            pod = self._pods_by_ep.get(ep_id)
            name = next((n for n, d in DIRECTIONS.items() if d == direction), "")
            labels = pod.label_map if pod else {}
            found = tuple(sorted(key for key, rec in self.state.policies.items()
                                 if pod is not None and rec.policy.namespace == pod.namespace
                                 and name in rec.policy.policy_types and rec.policy.pod_selector.matches(labels)))
            self._isolating[(ep_id, direction)] = found
        return found


class DropLog:
    """The last N drops plus live subscribers (each a bounded queue; slow ones lose events),
    and drop events tallied by the policies that isolated the pod (for the metrics)."""

    def __init__(self, size: int):
        self._recent: collections.deque[DropView] = collections.deque(maxlen=size)
        self._subscribers: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._pods_by_ip: dict[str, str] = {}
        self._pods_by_ep: dict[int, str] = {}
        self._names = Names(State())
        self._snapshot, self._indexed = State(), State()  # built from the snapshot when a drop needs them
        # (policy key, direction, reason label) -> drop events; a policy's entries go with it
        self._by_policy: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def index(self, state: State, desired: Desired) -> None:
        """Note the state after each change; the address and endpoint-id -> pod maps are built
        from it only when a drop arrives (with thousands of pods, not on every pod's start path)."""
        snapshot = state.copy()
        with self._lock:
            self._snapshot = snapshot
            for gone in [k for k in self._by_policy if k[0] not in state.policies]:
                del self._by_policy[gone]

    def by_policy(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._by_policy)

    @property
    def names(self) -> Names:
        self._refresh()
        return self._names

    def _refresh(self) -> None:
        with self._lock:
            state = self._snapshot
            if state is self._indexed:
                return
            self._pods_by_ip = {ip: key for key, rec in state.endpoints.items() for ip in rec.pod.ips}
            self._pods_by_ep = {rec.ep_id: key for key, rec in state.endpoints.items() if rec.ep_id}
            self._names = Names(state)
            self._indexed = state

    def add(self, event: DropEvent) -> None:
        self._refresh()
        view = DropView(time=event.time, monotonic_ns=event.monotonic_ns, src_ip=event.src,
                        src_pod=self._pods_by_ip.get(event.src, ""), src_port=event.sport, dst_ip=event.dst,
                        dst_pod=self._pods_by_ip.get(event.dst, ""), dst_port=event.dport,
                        protocol=PROTO_NAMES.get(event.proto, str(event.proto)),
                        direction=DIRECTION_NAMES.get(event.direction, "?"),
                        isolated_pod=self._pods_by_ep.get(event.ep_id, ""), reason=text_of(event.reason),
                        reason_code=event.reason)
        policies = self.names.isolating(event.ep_id, event.direction) if event.ep_id else ()
        reason = REASON_LABELS.get(event.reason, str(event.reason))
        with self._lock:
            for key in policies:
                self._by_policy[(key, view.direction, reason)] += 1
            self._recent.append(view)
            for q in self._subscribers:
                try:
                    q.put_nowait(view)
                except queue.Full:
                    pass

    def recent(self, count: int) -> list[DropView]:
        with self._lock:
            return list(self._recent)[-count:] if count else []

    def follow(self, count: int, subscribe: bool, size: int = 4096) -> tuple[list[DropView], queue.Queue | None]:
        """The last ``count`` drops and, atomically with them, a queue of all later ones."""
        with self._lock:
            recent = list(self._recent)[-count:] if count else []
            if not subscribe:
                return recent, None
            q: queue.Queue = queue.Queue(maxsize=size)
            self._subscribers.add(q)
            return recent, q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._subscribers.discard(q)


def stats_view(state: State, desired: Desired, datapath) -> StatsView:
    local = {rec.ep_id: key for key, rec in state.endpoints.items() if rec.ep_id}
    cookies = {rec.cookie: key for key, rec in state.policies.items()}
    counters = datapath.counters(local, cookies)
    entries = collections.Counter(desired.policy.values())
    names = {code: name for name, (code, _) in REASONS.items()}
    return StatsView(
        endpoints=[(local[e], e, c) for e, c in sorted(counters.endpoints.items(), key=lambda i: local[i[0]])],
        policies=[(cookies[c], pair, entries.get(c, 0)) for c, pair in sorted(counters.policies.items(),
                                                                          key=lambda i: cookies[i[0]])],
        verdicts=[(names.get(r, str(r)), "ingress" if d == DIR_INGRESS else "egress", pair)
                  for (r, d), pair in sorted(counters.verdicts.items())],
        policy_entries=len(desired.policy), ipcache_entries=len(desired.ipcache),
        events_suppressed=counters.events_suppressed,
        service_enforcement=getattr(datapath, "service_enforcement", ""), service_frontends=len(desired.services))
