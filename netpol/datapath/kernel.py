"""The real datapath: programs compiled ahead (bcc, in a child) and loaded, maps pinned, tc on host veths,
and the post-DNAT check for Service traffic on netfilter PRE_ROUTING (nfhook.py)."""
from __future__ import annotations

import ctypes as ct
from typing import Callable, Iterable

from ..compiler import Desired
import logging

from . import maps as m
from . import nfhook, sync, tc
from .counters import Counters, EndpointCounters
from .events import DropEvent, DropReader
from .loader import DEFAULT_PIN_DIR, PROGRAMS, Programs
from .reasons import REASON_MAX


log = logging.getLogger("podwire.netpol")
DEFAULT_SERVICE_MARK = 0x02000000


class KernelDatapath:
    def __init__(self, pin_dir: str = DEFAULT_PIN_DIR, service_mark: int = DEFAULT_SERVICE_MARK,
                 cache_dir: str | None = None):
        self.programs = Programs(pin_dir, cache_dir)
        self.service_enforcement = self._hook_services(service_mark)
        self._current = sync.read_current(self.programs)
        self._reader: DropReader | None = None
        self._compare_all = False  # after a failed sync: diff everything once, not just the changes

    def _hook_services(self, mark: int) -> str:
        """Link the post-DNAT check and tell from_pod to defer to it; or, where it cannot be
        linked, keep judging Service traffic by the Service address (and say so: health)."""
        p, error = self.programs, self.programs.nf_error
        if not error and mark:
            try:
                nfhook.attach(p.nf_fd, p.pin_dir)
            except nfhook.NfHookError as exc:
                error = str(exc)
        elif not mark:
            error = "disabled (--service-mark 0)"
        p.service_config.update(ct.c_uint32(0), m.ServiceConfig(mark=mark if not error else 0,
                                                                deferred=0 if error else 1))
        if error:
            nfhook.detach(p.pin_dir)  # after from_pod stopped deferring to it
            log.warning("Service traffic is judged before DNAT, by the Service address: %s", error)
            return f"pre-dnat ({error})"
        return f"post-dnat (mark {mark:#x})"

    def current(self) -> Desired:
        return self._current

    def sync(self, desired: Desired) -> sync.SyncStats:
        if self._compare_all:
            desired.policy_changes = desired.ipcache_changes = None
        try:
            stats = sync.apply(self.programs, self._current, desired)
        except BaseException:
            self._compare_all = True
            sync.bump_generation(self.programs)  # even a partial change must not keep old verdicts
            raise
        self._compare_all = False
        if stats.added or stats.updated or stats.removed:
            sync.bump_generation(self.programs)
        return stats

    def ifindex(self, interface: str) -> int:
        return tc.interface_index(interface)

    def attach(self, ifindex: int) -> None:
        tc.attach(ifindex, {hook: (self.programs.fd(fn), fn) for fn, hook in PROGRAMS.items()})

    def detach(self, ifindex: int) -> None:
        tc.detach(ifindex)

    def attached(self, ifindex: int) -> bool:
        return set(tc.attached(ifindex).values()) >= set(PROGRAMS)

    def counters(self, ep_ids: Iterable[int], cookies: Iterable[int]) -> Counters:
        p, out = self.programs, Counters()
        for ep_id in ep_ids:
            ing, eg = p.ep_stats.sum(ct.c_uint32(ep_id * 2)), p.ep_stats.sum(ct.c_uint32(ep_id * 2 + 1))
            out.endpoints[ep_id] = EndpointCounters(
                (ing.allowed_packets, ing.allowed_bytes), (ing.denied_packets, ing.denied_bytes),
                (eg.allowed_packets, eg.allowed_bytes), (eg.denied_packets, eg.denied_bytes))
        for cookie in cookies:
            c = p.policy_stats.sum(ct.c_uint32(cookie))
            out.policies[cookie] = (c.packets, c.bytes)
        for reason in range(1, REASON_MAX):
            for direction in (0, 1):
                c = p.metrics.sum(ct.c_uint32(reason * 2 + direction))
                if c.packets:
                    out.verdicts[(reason, direction)] = (c.packets, c.bytes)
        out.events_suppressed = p.event_budget.sum(ct.c_uint32(0)).suppressed
        return out

    def map_fill(self) -> dict[str, tuple[int, int]]:
        """Map name -> (entries, max_entries) of the maps that can fill up.  The agent's own maps
        hold exactly what it last wrote (self._current); pw_ct, which the datapath fills, is
        counted.  The array maps are preallocated and always "full": not listed."""
        p, cur = self.programs, self._current
        sizes = {"pw_endpoints": len(cur.endpoints), "pw_ipcache": len(cur.ipcache), "pw_policy": len(cur.policy),
                 "pw_ct": p.ct.count(), "pw_services": len(cur.services)}
        return {name: (n, self._max_entries(name)) for name, n in sizes.items()}

    def _max_entries(self, name: str) -> int:
        return self.programs.max_entries[name]

    def reset_policy_counter(self, cookie: int) -> None:
        sync.reset_policy_stats(self.programs, cookie)

    def start_drops(self, callback: Callable[[DropEvent], None]) -> None:
        self._reader = DropReader(self.programs, callback).start()

    def close(self) -> None:
        """Stop reading drops; what is attached and pinned keeps enforcing."""
        if self._reader:
            self._reader.stop()
        self.programs.close()
