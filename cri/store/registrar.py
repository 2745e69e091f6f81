"""Name <-> ID reservations, like containerd's internal/registrar and CRI-O's.

The kubelet retries a RunPodSandbox/CreateContainer that timed out with the same
metadata; the retry must fail with a clear "name is reserved" error (kubelet
logs and operators grep for it) until the first attempt's object is removed, and
must never create a second pod or container with the same name.
"""
from __future__ import annotations

import threading

from ..errors import CriError

import grpc


class NameReserved(CriError):
    def __init__(self, name: str, key: str) -> None:
        # Same text as containerd's registrar (ErrNameReserved) so logs read the same.
        super().__init__(grpc.StatusCode.ALREADY_EXISTS, f"name {name!r} is reserved for {key!r}")
        self.name = name
        self.key = key


class Registrar:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, str] = {}
        self._by_key: dict[str, str] = {}

    def reserve(self, name: str, key: str) -> None:
        """Reserve ``name`` for ``key``; reserving it again for the same key is a no-op."""
        if not name or not key:
            raise ValueError("name and key must be non-empty")
        with self._lock:
            holder = self._by_name.get(name)
            if holder is not None and holder != key:
                raise NameReserved(name, holder)
            if self._by_key.get(key, name) != name:
                raise NameReserved(self._by_key[key], key)
            self._by_name[name] = key
            self._by_key[key] = name

    def release(self, name: str) -> None:
        with self._lock:
            key = self._by_name.pop(name, None)
            if key is not None:
                self._by_key.pop(key, None)

    def release_key(self, key: str) -> None:
        with self._lock:
            name = self._by_key.pop(key, None)
            if name is not None:
                self._by_name.pop(name, None)

    def get(self, name: str) -> str | None:
        return self._by_name.get(name)
