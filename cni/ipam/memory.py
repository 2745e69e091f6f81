"""An in-memory :class:`~cni.ipam.store.Store`: for allocator unit tests, and
for a daemon that keeps IPAM in memory and writes through to a DiskStore."""
from __future__ import annotations

from typing import Optional

from .config import IP
from .store import Attachment


class MemoryStore:
    def __init__(self, leases: Optional[dict[IP, Optional[Attachment]]] = None) -> None:
        self.leases: dict[IP, Optional[Attachment]] = {}
        self.cursors: dict[int, IP] = {}
        self._by_owner: dict[Attachment, list[IP]] = {}  # leases_of without a scan
        for ip, owner in (leases or {}).items():
            self._add(ip, owner)

    def _add(self, ip: IP, owner: Optional[Attachment]) -> None:
        self.leases[ip] = owner
        if owner is not None:
            self._by_owner.setdefault(owner, []).append(ip)

    def is_reserved(self, ip: IP) -> bool:
        return ip in self.leases

    def reserve(self, owner: Attachment, ip: IP, range_id: int) -> bool:
        if ip in self.leases:
            return False
        self._add(ip, owner)
        self.cursors[range_id] = ip
        return True

    def release(self, ip: IP, owner: Optional[Attachment]) -> bool:
        if ip not in self.leases or self.leases[ip] != owner:
            return False
        del self.leases[ip]
        if owner is not None:
            self._by_owner[owner].remove(ip)
            if not self._by_owner[owner]:
                del self._by_owner[owner]
        return True

    def leases_of(self, owner: Attachment) -> list[IP]:
        return list(self._by_owner.get(owner, ()))

    def last_reserved(self, range_id: int) -> Optional[IP]:
        return self.cursors.get(range_id)

    def all_leases(self) -> dict[IP, Optional[Attachment]]:
        return dict(self.leases)
