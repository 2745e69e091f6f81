"""One lock per container ID, made on first use and dropped when nobody holds or waits.

The spec lets a runtime run requests for different containers in parallel but
never two for the same container; a runtime that retries an ADD its own
timeout gave up on must wait for the first one to finish (or be undone).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator


class KeyedLocks:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, list] = {}  # key -> [lock, holders and waiters]

    @contextlib.contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[bool]:
        """Hold ``key``'s lock; yields False (not holding it) after ``timeout`` s.

        An empty key (STATUS, GC, VERSION) names no container: nothing to serialize."""
        if not key:
            yield True
            return
        with self._mutex:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        got = entry[0].acquire(timeout=max(timeout, 0.0))
        try:
            yield got
        finally:
            if got:
                entry[0].release()
            with self._mutex:
                entry[1] -= 1
                if not entry[1]:
                    del self._locks[key]

    def __len__(self) -> int:
        with self._mutex:
            return len(self._locks)
