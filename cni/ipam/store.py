"""What the allocator needs from lease storage, and host-local's lease format.

The allocator only talks to a :class:`Store`; :class:`cni.ipam.disk.DiskStore`
is the host-local-compatible one on disk, :class:`cni.ipam.memory.MemoryStore`
the in-memory one (unit tests, and a daemon that writes through to disk).
Callers hold the store's lock around every sequence of calls.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Protocol

from ..skel import CONTAINER_ID_RE
from .config import IP


class Attachment(NamedTuple):
    """Who holds a lease: the spec's (containerID, ifname) key.

    ``ifname`` is "" for leases written by pre-0.7 CNI host-local, which
    recorded the container ID only.
    """

    container_id: str
    ifname: str

    def __str__(self) -> str:
        return f"{self.container_id}/{self.ifname}" if self.ifname else self.container_id


def lease_bytes(owner: Attachment) -> bytes:
    """host-local's lease file content: ``cid\\r\\nifname``, no trailing newline."""
    if not owner.ifname:
        return owner.container_id.encode()
    return f"{owner.container_id}\r\n{owner.ifname}".encode()


def parse_lease(data: bytes) -> Optional[Attachment]:
    """The owner recorded in a lease file; None when it does not parse (e.g. an
    empty file left by a host-local killed between create and write)."""
    try:
        text = data.decode().strip()  # host-local trims whitespace too
    except UnicodeDecodeError:
        return None
    cid, sep, ifname = text.partition("\r\n")
    if not CONTAINER_ID_RE.match(cid) or (sep and (not ifname or "\n" in ifname)):
        return None
    return Attachment(cid, ifname)


class Store(Protocol):
    """Lease storage.  ``reserve`` and ``release`` must be atomic per address."""

    def is_reserved(self, ip: IP) -> bool:
        """Whether any lease (parseable or not) holds ``ip``."""

    def reserve(self, owner: Attachment, ip: IP, range_id: int) -> bool:
        """Lease ``ip`` to ``owner`` and make it set ``range_id``'s round-robin
        cursor; False when ``ip`` is already leased."""

    def release(self, ip: IP, owner: Optional[Attachment]) -> bool:
        """Drop the lease on ``ip`` if ``owner`` holds it (None: if its content
        does not parse); False otherwise."""

    def leases_of(self, owner: Attachment) -> list[IP]:
        """The addresses leased to ``owner``, without scanning every lease."""

    def last_reserved(self, range_id: int) -> Optional[IP]:
        """Set ``range_id``'s cursor: the address reserved last, if known."""

    def all_leases(self) -> dict[IP, Optional[Attachment]]:
        """Every lease and its owner (None if unparseable).  A full scan: GC only."""
