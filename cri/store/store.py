"""An in-memory map of records backed by one JSON file per record.

Concurrency (the lesson of containerd#9770 and kubernetes#93886: List RPCs
stuck behind per-container locks make PLEG unhealthy):

* Readers (List/Status) call :meth:`get`/:meth:`list`; they take no lock at all
  and see the latest committed record.
* Operations on one object (run/stop/remove a pod, start/stop a container)
  serialise on that object's op lock (:meth:`op_lock`), which is held across
  slow work such as CNI calls or runc, and which readers never take.
* :meth:`put`/:meth:`update` persist the new record (atomic write) and then
  swap it in under a short commit lock, so the file on disk and the map agree.
"""
from __future__ import annotations

import builtins
import dataclasses
import logging
import os
import shutil
import threading
from typing import Any, Callable, ClassVar, Generic, Iterable, Optional, Protocol, TypeVar

from .. import errors
from . import atomic

log = logging.getLogger(__name__)



class Record(Protocol):
    """What the store needs of a record: a frozen dataclass with an id that serialises."""
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def id(self) -> str: ...

    def to_dict(self) -> dict: ...


R = TypeVar("R", bound=Record)
RECORD_FILE = "record.json"


class RecordStore(Generic[R]):
    def __init__(self, root: str, kind: str, from_dict: Callable[[dict], R]) -> None:
        self.root = root
        self.kind = kind                 # "pod sandbox" / "container": used in error messages
        self._from_dict = from_dict
        self._items: dict[str, R] = {}
        self._commit = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        os.makedirs(root, mode=0o700, exist_ok=True)

    # --- directories --------------------------------------------------------

    def dir_of(self, id_: str) -> str:
        """<root>/<id>; ids are generated hex, but check anyway: a path must never escape."""
        if not id_ or "/" in id_ or id_ in (".", "..") or "\0" in id_:
            raise errors.invalid(f"invalid {self.kind} id {id_!r}")
        return os.path.join(self.root, id_)

    # --- reads (lock-free) --------------------------------------------------

    def get(self, id_: str) -> Optional[R]:
        return self._items.get(id_)

    def list(self) -> list[R]:
        return list(self._items.values())

    def resolve(self, id_or_prefix: str) -> R:
        """The record with this id, or the only one whose id starts with it (truncindex)."""
        # Kept: an empty prefix would match every record (containerd's truncindex refuses it too).
        if not id_or_prefix:
            raise errors.invalid(f"{self.kind} id must not be empty")
        rec = self._items.get(id_or_prefix)
        if rec is not None:
            return rec
        matches = [r for k, r in list(self._items.items()) if k.startswith(id_or_prefix)]
        if len(matches) == 1:
            return matches[0]
        # Kept: acting on one of several matches would act on the wrong pod or container.
        if matches:
            raise errors.invalid(f"{self.kind} id prefix {id_or_prefix!r} is ambiguous")
        raise errors.not_found(f"{self.kind} {id_or_prefix!r} not found")

    def find(self, id_or_prefix: str) -> Optional[R]:
        """Like :meth:`resolve` but None when nothing (or more than one) matches."""
        try:
            return self.resolve(id_or_prefix)
        except errors.CriError:
            return None

    # --- writes -------------------------------------------------------------

    def put(self, rec: R, visible: bool = True) -> R:
        """Persist ``rec``; ``visible=False`` only writes it (an object still being
        created is recoverable after a crash of the shim but not yet seen by List/Status).
        That first write is not fsync'd: a shim crash keeps the page cache, and after a
        power loss nothing it guards (mounts, namespaces, monitors) exists any more."""
        d = self.dir_of(rec.id)
        os.makedirs(d, mode=0o711, exist_ok=True)
        with self._commit:
            atomic.write_json(os.path.join(d, RECORD_FILE), rec.to_dict(), durable=visible)
            if visible:
                self._items[rec.id] = rec
        return rec

    def replace(self, rec: R) -> Optional[R]:
        """Persist and swap in ``rec`` only if its id is still stored: a refresh racing
        with a delete must not bring the record back.  None if it was deleted."""
        with self._commit:
            if rec.id not in self._items:
                return None
            atomic.write_json(os.path.join(self.dir_of(rec.id), RECORD_FILE), rec.to_dict())
            self._items[rec.id] = rec
        return rec

    def update(self, id_: str, **changes) -> R:
        """Persist and swap in a changed copy of the current record."""
        with self._commit:
            cur = self._items.get(id_)
            if cur is None:
                raise errors.not_found(f"{self.kind} {id_!r} not found")
            new = dataclasses.replace(cur, **changes)
            atomic.write_json(os.path.join(self.dir_of(id_), RECORD_FILE), new.to_dict())
            self._items[id_] = new
        return new

    def delete(self, id_: str) -> None:
        """Forget the record and remove its directory (idempotent)."""
        with self._commit:
            self._items.pop(id_, None)
            shutil.rmtree(self.dir_of(id_), ignore_errors=True)
        with self._locks_guard:
            self._locks.pop(id_, None)

    def op_lock(self, id_: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(id_)
            if lock is None:
                lock = self._locks[id_] = threading.Lock()
            return lock

    # --- recovery -----------------------------------------------------------

    def load(self) -> builtins.list[str]:
        """Read every record from disk.  A directory without a readable record is
        debris of a crash between mkdir and the first write: it is returned (ids)
        so the caller can clean up what else that object may have left."""
        broken = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            try:
                rec = self._from_dict(atomic.read_json(os.path.join(entry.path, RECORD_FILE)))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("%s %s: unreadable record (%s); cleaning up", self.kind, entry.name, exc)
                broken.append(entry.name)
                continue
            self._items[rec.id] = rec
        return broken

    def ids(self) -> Iterable[str]:
        return list(self._items)
