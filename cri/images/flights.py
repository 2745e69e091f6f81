"""In-flight deduplication: concurrent callers asking for the same key share one run.

Used so that concurrent pulls of the same image (or of images sharing layers) resolve
and download each thing once; the others wait for the first and take its outcome.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class Flights:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future] = {}

    def do(self, key: Hashable, fn: Callable[[], T]) -> T:
        with self._lock:
            running = self._running.get(key)
            if running is None:
                future: Future = Future()
                self._running[key] = future
        if running is not None:
            return running.result()
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                del self._running[key]

    def running(self) -> int:
        with self._lock:
            return len(self._running)
