"""The on-disk lease store, in host-local's layout plus an index of our own.

A node can switch between host-local and podwire-ipam (or run both) without
losing leases, because the files host-local reads and writes are the same::

    <dataDir>/<network>/
        10.1.0.5                    lease: "containerID\\r\\nifname", no newline
        fd00::5
        last_reserved_ip.<set>      round-robin cursor of range set <set>
        lock                        flock(LOCK_EX) around every operation;
                                    host-local flocks the same file
        .podwire-index/             ours; host-local walks it but never matches it
            attachments/<cid>@<ifname>  the IPs of one attachment (see below)
            tmp/                    files being written, then link()ed or renamed
            state                   fingerprint of the lease dir when the index
                                    was last known complete

Crash safety: a lease is written to ``tmp/`` in full and then ``link()``ed to
its IP name, which is atomic and fails if the address is taken; a killed
process leaves at worst a stale temp file (removed at the next lock).

The index makes lookups by attachment O(1) instead of host-local's walk of the
whole directory.  An entry is written BEFORE its lease and rewritten AFTER the
lease is removed, so every lease is always listed (entries may list extra IPs,
and every IP read from an entry is checked against the lease file).  Entries
start with a header line, so their content never equals ``cid\\r\\nifname`` or
``cid``: host-local's DEL deletes files with exactly that content.

Migration: leases written by host-local have no entry.  The index is rebuilt
from one full scan whenever ``state`` is missing (first open of a host-local
directory) or the lease dir no longer matches it, i.e. somebody else (host-local,
or we before a crash) changed it since: its mtime or a cursor file differs.
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from typing import Iterator, Optional

from .. import atomic
from ..errors import CniError, Code, invalid_env
from ..skel import CONTAINER_ID_RE
from .config import IP
from .store import Attachment, lease_bytes, parse_lease

INDEX_DIR = ".podwire-index"
LAST_RESERVED = "last_reserved_ip."
_ENTRY_HEADER = "podwire-index 1"
_STATE_FORMAT = 1


class DiskStore:
    """A :class:`~cni.ipam.store.Store` in one network's lease directory.

    Use it only inside :meth:`locked`, which holds the lock and makes sure
    the index is complete before handing the store out.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._index = os.path.join(path, INDEX_DIR)
        self._entries = os.path.join(self._index, "attachments")
        self._tmp = os.path.join(self._index, "tmp")

    @classmethod
    @contextlib.contextmanager
    def locked(cls, path: str) -> Iterator["DiskStore"]:
        """The store of ``path`` (created if missing), under the exclusive lock."""
        store = cls(path)
        with _io_errors(f"cannot open IPAM store {path}"):
            os.makedirs(store._entries, exist_ok=True)
            os.makedirs(store._tmp, exist_ok=True)
            fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with _io_errors(f"IPAM store {path}"):
                store._recover()
                try:
                    yield store
                finally:
                    # Best effort: a state not saved only costs the next caller a rescan.
                    with contextlib.suppress(OSError):
                        store._save_state()
        finally:
            os.close(fd)  # also drops the flock

    # --- Store protocol --------------------------------------------------------

    def is_reserved(self, ip: IP) -> bool:
        return os.path.lexists(self._lease_path(ip))

    def reserve(self, owner: Attachment, ip: IP, range_id: int) -> bool:
        if self.is_reserved(ip):
            return False
        ips = self._entry(owner)
        self._write_entry(owner, ips + [ip])  # entry BEFORE lease: the index stays complete
        tmp = self._write_tmp(f"lease-{ip}", lease_bytes(owner))
        try:
            os.link(tmp, self._lease_path(ip))  # atomic; EEXIST if taken after all
        except FileExistsError:
            self._write_entry(owner, ips)
            return False
        finally:
            os.unlink(tmp)
        self._write_file(LAST_RESERVED + str(range_id), str(ip).encode())
        return True

    def release(self, ip: IP, owner: Optional[Attachment]) -> bool:
        if self._owner(ip) != owner or not self.is_reserved(ip):
            return False
        os.unlink(self._lease_path(ip))
        if owner is not None:  # entry AFTER lease: the index stays complete
            self._write_entry(owner, [x for x in self._entry(owner) if x != ip])
        return True

    def leases_of(self, owner: Attachment) -> list[IP]:
        return [ip for ip in self._entry(owner) if self._owner(ip) == owner]

    def last_reserved(self, range_id: int) -> Optional[IP]:
        return _parse_ip(self._read(LAST_RESERVED + str(range_id)))

    def all_leases(self) -> dict[IP, Optional[Attachment]]:
        """Every lease file and its owner: a full scan (GC and migration only)."""
        out = {}
        with os.scandir(self.path) as it:
            for entry in it:
                ip = _parse_ip(entry.name)
                if ip is not None and str(ip) == entry.name and entry.is_file(follow_symlinks=False):
                    out[ip] = self._owner(ip)
        return out

    # --- lease files -------------------------------------------------------------

    def _lease_path(self, ip: IP) -> str:
        return os.path.join(self.path, str(ip))

    def _owner(self, ip: IP) -> Optional[Attachment]:
        data = self._read(str(ip))
        return None if data is None else parse_lease(data)

    def _read(self, name: str) -> Optional[bytes]:
        try:
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def _write_tmp(self, name: str, data: bytes) -> str:
        """A lease's content in full, for link() to publish (what makes a lease exclusive:
        an atomic write would replace a lease another process just took)."""
        tmp = os.path.join(self._tmp, f"{name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return tmp

    def _write_file(self, name: str, data: bytes) -> None:
        """Replace ``name`` atomically (host-local truncates in place; a reader
        never sees half a cursor from us)."""
        self._replace(os.path.join(self.path, name), data)

    def _replace(self, path: str, data: bytes) -> None:
        # The project's atomic write, temp in tmp/ (which _recover empties).  Not fsynced,
        # like host-local: a lease lives as long as the pod's netns, which a power loss
        # takes with it, and an fsync per verb would double a burst's IPAM time.
        atomic.write_bytes(path, data, 0o644, durable=False, scratch_dir=self._tmp)

    # --- the index -------------------------------------------------------------

    def _entry_path(self, owner: Attachment) -> str:
        # skel already enforces this for exec'd plugins; in-process callers may not.
        # '@' cannot occur in a container ID, so the name is unambiguous.
        cid, ifname = owner
        if not CONTAINER_ID_RE.match(cid) or "@" in cid or "/" in ifname or \
                ifname in (".", "..") or any(c.isspace() for c in ifname):
            raise invalid_env("containerID or ifname cannot name an IPAM index entry", repr(owner))
        return os.path.join(self._entries, f"{cid}@{ifname}")

    def _entry(self, owner: Attachment, heal: bool = True) -> list[IP]:
        try:
            with open(self._entry_path(owner), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        if lines[:3] != [_ENTRY_HEADER, *owner]:
            # Damaged (entries are replaced atomically, so only by hand): a lease
            # it listed could be missed, so rebuild from the lease files.
            if not heal:
                return []
            self.rebuild_index()
            return self._entry(owner, heal=False)
        return [ip for ip in map(_parse_ip, lines[3:]) if ip is not None]

    def _write_entry(self, owner: Attachment, ips: list[IP]) -> None:
        path = self._entry_path(owner)
        if not ips:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        lines = [_ENTRY_HEADER, owner.container_id, owner.ifname, *map(str, ips)]
        self._replace(path, ("\n".join(lines) + "\n").encode())

    def _recover(self) -> None:
        """Under the lock, before any use: drop what killed writers left behind
        and make sure the index lists every lease."""
        for name in os.listdir(self._tmp):  # nobody else holds the lock: all stale
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._tmp, name))
        self._state = self._read_state()
        if self._state != self.fingerprint():
            self.rebuild_index()

    def rebuild_index(self) -> None:
        """Rewrite the index from a full scan of the lease files."""
        by_owner: dict[Attachment, list[IP]] = {}
        for ip, owner in sorted(self.all_leases().items(), key=lambda kv: (kv[0].version, kv[0])):
            if owner is not None:
                by_owner.setdefault(owner, []).append(ip)
        for name in os.listdir(self._entries):
            cid, _, ifname = name.partition("@")
            if Attachment(cid, ifname) not in by_owner:
                os.unlink(os.path.join(self._entries, name))
        for owner, ips in by_owner.items():
            if self._entry(owner, heal=False) != ips:
                self._write_entry(owner, ips)

    # --- the state fingerprint -----------------------------------------------------

    def fingerprint(self) -> dict:
        """What changes whenever anybody adds or removes a lease: the lease dir's
        mtime, and the cursors (host-local rewrites one on every reservation, which
        catches a change within the same mtime tick)."""
        cursors: list[str] = []
        while (data := self._read(LAST_RESERVED + str(len(cursors)))) is not None:
            cursors.append(data.decode(errors="replace"))
        return {"format": _STATE_FORMAT, "mtime_ns": os.stat(self.path).st_mtime_ns,
                "cursors": cursors}

    def _read_state(self) -> Optional[dict]:
        try:
            with open(os.path.join(self._index, "state"), "rb") as f:
                return json.loads(f.read())
        except (FileNotFoundError, ValueError):
            return None

    def _save_state(self) -> None:
        state = self.fingerprint()
        if state != self._state:
            tmp = self._write_tmp("state", json.dumps(state).encode())
            os.replace(tmp, os.path.join(self._index, "state"))  # in the index dir: leaves mtime alone


def _parse_ip(text) -> Optional[IP]:
    if text is None:
        return None
    try:
        return ipaddress.ip_address(text.decode().strip() if isinstance(text, bytes) else text.strip())
    except (ValueError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def _io_errors(msg: str) -> Iterator[None]:
    """OSError -> the spec's I/O error (code 5), naming the file."""
    try:
        yield
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise CniError(Code.IO_FAILURE, msg, f"{where}{exc.strerror or exc}") from None
