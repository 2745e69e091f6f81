"""Drop history and counters, turned into names a person can read."""
from __future__ import annotations

import collections
import queue
import threading

from ..compiler import Desired
from ..compiler.entries import DIR_INGRESS
from ..datapath.events import DropEvent
from ..datapath.reasons import REASONS, text_of
from .store import State
from .views import DropView, StatsView

PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
DIRECTION_NAMES = {0: "ingress", 1: "egress"}


class DropLog:
    """The last N drops plus live subscribers (each a bounded queue; slow ones lose events)."""

    def __init__(self, size: int):
        self._recent: collections.deque[DropView] = collections.deque(maxlen=size)
        self._subscribers: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._pods_by_ip: dict[str, str] = {}
        self._pods_by_ep: dict[int, str] = {}

    def index(self, state: State, desired: Desired) -> None:
        """Refresh the address and endpoint-id -> pod maps (after each change)."""
        self._pods_by_ip = {ip: key for key, rec in state.endpoints.items() for ip in rec.pod.ips}
        self._pods_by_ep = {rec.ep_id: key for key, rec in state.endpoints.items() if rec.ep_id}

    def add(self, event: DropEvent) -> None:
        view = DropView(time=event.time, monotonic_ns=event.monotonic_ns, src_ip=event.src,
                        src_pod=self._pods_by_ip.get(event.src, ""), src_port=event.sport, dst_ip=event.dst,
                        dst_pod=self._pods_by_ip.get(event.dst, ""), dst_port=event.dport,
                        protocol=PROTO_NAMES.get(event.proto, str(event.proto)),
                        direction=DIRECTION_NAMES.get(event.direction, "?"),
                        isolated_pod=self._pods_by_ep.get(event.ep_id, ""), reason=text_of(event.reason),
                        reason_code=event.reason)
        with self._lock:
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
        events_suppressed=counters.events_suppressed)
