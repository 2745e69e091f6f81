"""IPAM in memory, written through to host-local's on-disk store (podwire-cnid).

Every change goes to disk first -- DiskStore's atomic lease files, under the
flock host-local takes too -- and to memory only once it is there, all before
the verb answers.  A daemon killed at any instant has lost nothing it
acknowledged, and a restarted one rebuilds memory from disk on first use.
Memory answers the scans (is this address free? every lease for GC) without a
syscall per address; per-attachment lookups use the disk's index, which is
O(1) and always authoritative.

Others may write the directory too: host-local, or podwire-ipam running in
process while the daemon was down.  DiskStore's fingerprint of the directory
(its mtime, the cursors) tells: memory is reloaded whenever the fingerprint
differs from the one taken after our own last change.  What a change inside
one mtime tick could hide is harmless: a stale "taken" only skips an address,
and a stale "free" is caught by the disk's atomic link(), which fails.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional

from .config import IP
from .disk import DiskStore
from .memory import MemoryStore
from .store import Attachment


class WriteThrough:
    """A :class:`~cni.ipam.store.Store`: reads from memory, writes to disk then memory."""

    def __init__(self, disk: DiskStore, memory: MemoryStore) -> None:
        self.disk = disk
        self.memory = memory
        self.diverged = False  # memory disagreed with disk: reload before the next use

    def is_reserved(self, ip: IP) -> bool:
        return self.memory.is_reserved(ip)

    def reserve(self, owner: Attachment, ip: IP, range_id: int) -> bool:
        if self.memory.is_reserved(ip):
            return False
        if not self.disk.reserve(owner, ip, range_id):
            self.diverged = True  # leased on disk behind memory's back
            return False
        self.memory.reserve(owner, ip, range_id)
        return True

    def release(self, ip: IP, owner: Optional[Attachment]) -> bool:
        released = self.disk.release(ip, owner)
        if released != self.memory.release(ip, owner):
            self.diverged = True
        return released

    def leases_of(self, owner: Attachment) -> list[IP]:
        return self.disk.leases_of(owner)

    def last_reserved(self, range_id: int) -> Optional[IP]:
        return self.memory.last_reserved(range_id)

    def all_leases(self) -> dict[IP, Optional[Attachment]]:
        return self.memory.all_leases()

    def rebuild_index(self) -> None:
        self.disk.rebuild_index()


class _Entry:
    def __init__(self) -> None:
        self.memory: Optional[MemoryStore] = None
        self.fingerprint: Optional[dict] = None


class StoreCache:
    """One in-memory store per lease directory; ``locked`` is a stores.Opener."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @contextlib.contextmanager
    def locked(self, path: str) -> Iterator[WriteThrough]:
        with DiskStore.locked(path) as disk:  # the flock serializes threads, processes, host-local
            with self._mutex:
                entry = self._entries.setdefault(path, _Entry())
            if entry.memory is None or entry.fingerprint != disk.fingerprint():
                entry.memory = load(disk)
            store = WriteThrough(disk, entry.memory)
            entry.fingerprint = None  # until we know memory matches disk again
            yield store
            if not store.diverged:
                entry.fingerprint = disk.fingerprint()


def load(disk: DiskStore) -> MemoryStore:
    memory = MemoryStore(disk.all_leases())
    range_id = 0
    while (cursor := disk.last_reserved(range_id)) is not None:
        memory.cursors[range_id] = cursor
        range_id += 1
    return memory
