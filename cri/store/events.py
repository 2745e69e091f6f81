"""Container life-cycle events for GetContainerEvents (the Evented PLEG).

Publishers never block: each subscriber has a bounded queue, and a subscriber
that falls behind is dropped (its stream ends) rather than slowing down
container operations; the kubelet then relists, as it does after any stream error.
"""
from __future__ import annotations

import queue
import threading
from typing import Optional

QUEUE_SIZE = 1024
_CLOSED = object()


class Subscription:
    def __init__(self, bus: "EventBus") -> None:
        self._bus = bus
        self._q: queue.Queue = queue.Queue(QUEUE_SIZE)
        self.closed = False

    def get(self, timeout: float) -> Optional[object]:
        """The next event, None on timeout; raises EOFError once closed."""
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            if self.closed:      # closed while the queue was full: no marker got in
                raise EOFError from None
            return None
        if item is _CLOSED:
            self.closed = True
            raise EOFError
        return item

    def _offer(self, event) -> bool:
        try:
            self._q.put_nowait(event)
            return True
        except queue.Full:
            return False

    def close(self) -> None:
        self._bus._remove(self)
        try:
            self._q.put_nowait(_CLOSED)
        except queue.Full:
            pass
        self.closed = True


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        with self._lock:
            self._subs.append(sub)
        return sub

    def publish(self, event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if not sub._offer(event):
                sub.close()      # too slow: end its stream rather than block

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def subscribers(self) -> int:
        return len(self._subs)
