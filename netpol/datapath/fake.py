"""An in-memory datapath with the kernel datapath's interface, for tests without root."""
from __future__ import annotations

from typing import Callable, Iterable

from ..compiler import Desired
from ..errors import FailedPrecondition
from .counters import Counters, EndpointCounters
from .events import DropEvent
from .sync import SyncStats


# max_entries of the maps that can fill (netpol/bpf/lib/maps.h, PW_MAX_*)
CAPACITY = {"pw_endpoints": 16384, "pw_ipcache": 524288, "pw_policy": 1048576, "pw_ct": 262144,
            "pw_services": 65536}


class FakeDatapath:
    def __init__(self, interfaces: dict[str, int] | None = None):
        self.interfaces = dict(interfaces or {})  # name -> ifindex; missing names do not exist
        self.maps = Desired()
        self.attached_to: set[int] = set()
        self.syncs = 0
        self.fail_next_sync: Exception | None = None
        self._drop_callback: Callable[[DropEvent], None] | None = None
        self.ct_entries = 0
        self.counters_value: Counters | None = None  # what counters() returns, when a test sets it
        self.service_enforcement = "post-dnat (fake)"

    def current(self) -> Desired:
        return self.maps

    def sync(self, desired: Desired) -> SyncStats:
        if self.fail_next_sync is not None:
            exc, self.fail_next_sync = self.fail_next_sync, None
            raise exc
        self.syncs += 1
        self.maps = Desired(dict(desired.endpoints), dict(desired.ipcache), dict(desired.policy),
                            services=desired.services)
        self.last_changes = desired.policy_changes
        return SyncStats()

    def ifindex(self, interface: str) -> int:
        if interface not in self.interfaces:
            raise FailedPrecondition(f"interface {interface!r} does not exist on this node")
        return self.interfaces[interface]

    def attach(self, ifindex: int) -> None:
        self.attached_to.add(ifindex)

    def detach(self, ifindex: int) -> None:
        self.attached_to.discard(ifindex)

    def attached(self, ifindex: int) -> bool:
        return ifindex in self.attached_to

    def counters(self, ep_ids: Iterable[int], cookies: Iterable[int]) -> Counters:
        if self.counters_value is not None:
            return self.counters_value
        return Counters(endpoints={e: EndpointCounters() for e in ep_ids}, policies={c: (0, 0) for c in cookies})

    def map_fill(self) -> dict[str, tuple[int, int]]:
        sizes = {"pw_endpoints": len(self.maps.endpoints), "pw_ipcache": len(self.maps.ipcache),
                 "pw_policy": len(self.maps.policy), "pw_ct": self.ct_entries, "pw_services": len(self.maps.services)}
        return {name: (n, CAPACITY[name]) for name, n in sizes.items()}

    def reset_policy_counter(self, cookie: int) -> None:
        pass

    def start_drops(self, callback: Callable[[DropEvent], None]) -> None:
        self._drop_callback = callback

    def emit_drop(self, event: DropEvent) -> None:
        assert self._drop_callback is not None
        self._drop_callback(event)

    def close(self) -> None:
        pass
