"""Deletion of retired veths, off the CNI verbs' path.

DEL renames both ends of a pod's veth to a reserved name (cni/plugin/veth.py:
the pod cut off, CNI_IFNAME and the host name free again) and hands the name
here.  One thread deletes what has queued up, in a single link-group request
(cni/daemon/reaper.py): the kernel's 15-20 ms of RCU waits per veth are paid
once per batch, and by no caller.

Nothing here needs to survive a crash: a retired link is recognisable by its
name alone, so :meth:`RetiredLinks.sweep` at the daemon's start (and GC) deletes
every one that is left, whoever retired it.
"""
from __future__ import annotations

import logging
import threading
import time

from .. import netlink
from ..plugin.naming import is_retired
from .reaper import delete_many

log = logging.getLogger("podwire-cnid")


class RetiredLinks:
    """The context's link_reaper (cni/context.py).  ``delay``: seconds a retired link
    waits before deletion (0: at once; a longer wait gathers bigger batches)."""

    def __init__(self, sockets: netlink.WarmSockets, delay: float = 0.0) -> None:
        self._sockets = sockets
        self._delay = delay
        self._queue: list[tuple[float, str]] = []  # (due, name), in order of retirement
        self._cond = threading.Condition()
        self._closed = False
        self._deleting = 0  # taken off the queue, deletion in progress
        self.reaped = 0
        self._thread = threading.Thread(target=self._run, name="cnid-reaper", daemon=True)

    def defer(self, name: str) -> None:
        with self._cond:
            self._queue.append((time.monotonic() + self._delay, name))
            self._cond.notify()

    def pending(self) -> int:
        """Retired links not deleted yet: queued, or in the batch being deleted."""
        with self._cond:
            return len(self._queue) + self._deleting

    def sweep(self) -> int:
        """Delete every retired link on the host (left by a crash, or another daemon's
        pending ones: deleting those early is harmless); how many there were."""
        with self._sockets.open() as ipr:
            names = [m.get("IFLA_IFNAME") for m in ipr.link("dump")]
            found = [n for n in names if n and is_retired(n)]
            if found:
                delete_many(ipr, found)
        return len(found)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Delete what is queued now (a clean stop leaves nothing behind), then stop."""
        with self._cond:
            self._closed = True
            self._queue = [(0.0, name) for _, name in self._queue]
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._due()
                if not batch:
                    if self._closed:
                        return
                    self._cond.wait(self._wait())
                    continue
                self._deleting = len(batch)
            try:
                with self._sockets.open() as ipr:
                    delete_many(ipr, batch)
                self.reaped += len(batch)
            except Exception:  # noqa: BLE001 - the thread must outlive one failure; sweep retries
                log.exception("could not delete retired links %s", " ".join(batch))
            finally:
                with self._cond:
                    self._deleting = 0

    def _due(self) -> list[str]:
        now = time.monotonic()
        due = [name for when, name in self._queue if when <= now]
        self._queue = self._queue[len(due):]  # FIFO with one delay: the due ones lead
        return due

    def _wait(self) -> float | None:
        return max(self._queue[0][0] - time.monotonic(), 0.0) if self._queue else None
