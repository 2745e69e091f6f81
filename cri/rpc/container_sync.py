"""Keeping container records in step with what the runtime's monitors recorded.

The monitor is the truth for a container's life (it outlives the shim); the
record is what List/Status serve.  A record is refreshed when an operation
finishes, when the exit watcher sees an exit, and when List/Status find a
record that still says CREATED/RUNNING (a few file reads, no runc call), so an
exit is visible at once and published exactly once as a STOPPED event.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING

from ..oci.state import UNKNOWN_EXIT_CODE, State
from ..store.records import CREATED, EXITED, RUNNING, UNKNOWN, ContainerRecord, now_ns
from . import events

if TYPE_CHECKING:
    from ..server.services import Services

log = logging.getLogger(__name__)
_STATES = {State.CREATED: CREATED, State.RUNNING: RUNNING, State.EXITED: EXITED, State.UNKNOWN: UNKNOWN}
_LIVE = (CREATED, RUNNING)
_lock = threading.Lock()      # check-and-commit of an exit: published once even if raced


def with_state(svc: Services, rec: ContainerRecord, **changes) -> ContainerRecord:
    """``rec`` with the runtime's view of it applied (not persisted)."""
    st = svc.runtime.lookup(rec.id)
    if st is None:
        if rec.state in _LIVE:
            # Gone from the runtime while we thought it lived (e.g. a reboot cleared /run).
            changes.update(state=EXITED, exit_code=UNKNOWN_EXIT_CODE, reason="Unknown",
                           message="container state was lost", finished_at=rec.finished_at or now_ns())
        return dataclasses.replace(rec, **changes)
    if st.state == State.UNKNOWN and rec.state in _LIVE:
        return dataclasses.replace(rec, **{"state": UNKNOWN, "message": st.message, **changes})
    live = dict(state=_STATES[st.state], created_at=st.created_at or rec.created_at,
                started_at=st.started_at or rec.started_at, finished_at=st.finished_at or rec.finished_at,
                exit_code=st.exit_code, reason=st.reason, message=st.message, pid=st.pid or rec.pid)
    return dataclasses.replace(rec, **{**live, **changes})


def refresh(svc: Services, rec: ContainerRecord) -> ContainerRecord:
    """Commit a state change the runtime knows about; publish STOPPED for a new exit."""
    if rec.state not in _LIVE:
        return rec
    with _lock:
        cur = svc.containers.get(rec.id)
        if cur is None:
            return rec
        new = with_state(svc, cur)
        if (new.state, new.started_at, new.finished_at) == (cur.state, cur.started_at, cur.finished_at):
            return cur
        if svc.containers.replace(new) is None:
            return new                       # removed meanwhile
    if new.state == EXITED and cur.state != EXITED:
        svc.watcher.unwatch(rec.id)
        events.publish(svc, rec.id, rec.pod_id, events.STOPPED)
    return new


def refresh_all(svc: Services, recs: list[ContainerRecord]) -> list[ContainerRecord]:
    return [refresh(svc, r) if r.state in _LIVE else r for r in recs]


def on_exit(svc: Services, state) -> None:
    """ExitWatcher callback."""
    rec = svc.containers.get(state.id)
    if rec is not None:
        refresh(svc, rec)


def reconcile_all(svc: Services) -> None:
    """Start-up: bring every record up to date, watch the running ones, and remove
    runtime containers the shim has no record of (a crash inside CreateContainer)."""
    for rec in svc.containers.list():
        rec = refresh(svc, rec)
        if rec.state == RUNNING:
            svc.watcher.watch(rec.id)
    known = set(svc.containers.ids())
    for st in svc.runtime.recover():
        if st.id not in known:
            log.warning("container %s: known to the runtime but not to the shim; removing it", st.id[:12])
            try:
                svc.runtime.remove(st.id)
                svc.images.release(st.id)
            except Exception:  # noqa: BLE001 - keep starting
                log.exception("removing orphaned container %s", st.id[:12])
