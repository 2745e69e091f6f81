"""Single-use tokens for streaming sessions, as the kubelet's request cache has them.

The RPC (a gRPC worker thread) stores the resolved session request and answers with a URL
holding the token; the HTTP handler (the streaming loop's thread) consumes it.  A token is
unguessable (secrets), good once and for one minute, and at most MAX_IN_FLIGHT wait at a
time: a flood of Exec calls whose URLs nobody opens cannot grow memory without bound.
"""
from __future__ import annotations

import collections
import secrets
import threading
import time
from typing import Any, Callable, Optional

TTL = 60.0              # the kubelet's cacheTTL
MAX_IN_FLIGHT = 1000    # the kubelet's maxInFlight
TOKEN_BYTES = 16        # 22 URL-safe characters (the kubelet uses 6 random bytes; more is free)


class TooManyInFlight(Exception):
    """MAX_IN_FLIGHT unexpired tokens are waiting; the RPC answers RESOURCE_EXHAUSTED."""


class TokenCache:
    def __init__(self, ttl: float = TTL, max_in_flight: int = MAX_IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._lock = threading.Lock()
        # token -> (expiry, request), oldest first: expiry only grows, so gc stops early.
        self._entries: collections.OrderedDict[str, tuple[float, Any]] = collections.OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            self._gc()
            return len(self._entries)

    def insert(self, request: Any) -> str:
        with self._lock:
            self._gc()
            if len(self._entries) >= self.max_in_flight:
                raise TooManyInFlight(f"maximum number of in-flight streaming requests "
                                      f"({self.max_in_flight}) exceeded")
            token = secrets.token_urlsafe(TOKEN_BYTES)
            while token in self._entries:     # 128 random bits: never, but cheap to rule out
                token = secrets.token_urlsafe(TOKEN_BYTES)
            self._entries[token] = (self._clock() + self.ttl, request)
            return token

    def consume(self, token: str) -> Optional[Any]:
        """The request stored under token, removing it; None if unknown, used or expired."""
        with self._lock:
            entry = self._entries.pop(token, None)
        if entry is None or self._clock() > entry[0]:
            return None
        return entry[1]

    def _gc(self) -> None:
        now = self._clock()
        while self._entries:
            token, (expiry, _) = next(iter(self._entries.items()))
            if expiry >= now:
                return
            del self._entries[token]
