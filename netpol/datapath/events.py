"""Drain the drop ring buffer on a thread and hand each event to a callback."""
from __future__ import annotations

import ctypes as ct
import dataclasses
import threading
import time
from typing import Callable

from . import maps as m
from .ringbuf import RingBuffer


@dataclasses.dataclass(frozen=True)
class DropEvent:
    time: float        # wall clock, seconds
    monotonic_ns: int  # bpf_ktime_get_ns() (CLOCK_MONOTONIC), for latency measurements
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    direction: int
    reason: int
    ep_id: int
    ifindex: int
    identity: int


def decode(raw: m.DropEventC) -> DropEvent:
    family = raw.family or 0
    wall = time.time() - (time.monotonic_ns() - raw.ts_ns) / 1e9
    return DropEvent(time=wall, monotonic_ns=raw.ts_ns, src=str(m.unmapped(bytes(raw.saddr), family)),
                     dst=str(m.unmapped(bytes(raw.daddr), family)), sport=raw.sport, dport=raw.dport,
                     proto=raw.proto, direction=raw.dir, reason=raw.reason, ep_id=raw.ep_id,
                     ifindex=raw.ifindex, identity=raw.identity)


class DropReader:
    def __init__(self, programs, callback: Callable[[DropEvent], None]):
        self._callback = callback
        self._stop = threading.Event()
        self._ring = RingBuffer(programs.map_fds["pw_drops"], self._on_event)
        self._thread = threading.Thread(target=self._run, name="netpol-drops", daemon=True)

    def start(self) -> "DropReader":
        self._thread.start()
        return self

    def _on_event(self, data: memoryview) -> None:
        raw = m.DropEventC.from_buffer_copy(data[:ct.sizeof(m.DropEventC)])
        self._callback(decode(raw))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._ring.poll(100)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            self._ring.close()
