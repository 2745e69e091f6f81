"""ContainerState: what ContainerStatus reports, derived from the monitor's files.

No runc call on this path (ListContainers and ContainerStatus are hot): the monitor's files say
created / exited, the shim's started.json says started, /proc says whether the init and the
monitor still live (pid + start time, so a reused pid is not mistaken for them)."""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from cri.monitor import files


class State(enum.IntEnum):
    """runtime.v1 ContainerState values."""
    CREATED = 0
    RUNNING = 1
    EXITED = 2
    UNKNOWN = 3


# containerd reports an exit status it could not observe as 255 with reason "Unknown".
UNKNOWN_EXIT_CODE = 255


@dataclass(frozen=True)
class ContainerState:
    id: str
    state: State
    pid: int = 0
    created_at: int = 0      # ns since the epoch; 0 = not yet
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""         # Completed / Error / OOMKilled / Unknown
    message: str = ""


def read_state(container_id: str, state_dir: str) -> ContainerState | None:
    """The container's state from its monitor files; None when there is no state dir."""
    if not os.path.isdir(state_dir):
        return None
    created = files.read_json(os.path.join(state_dir, files.CREATED))
    started = files.read_json(os.path.join(state_dir, files.STARTED)) or {}
    exited = files.read_json(os.path.join(state_dir, files.EXIT))
    monitor = files.ProcRef.from_json(files.read_json(os.path.join(state_dir, files.MONITOR)))
    monitor_alive = monitor is not None and monitor.alive()
    if created is None:
        # Create still running, or failed.
        return ContainerState(container_id, State.CREATED if monitor_alive else State.UNKNOWN,
                              message="" if monitor_alive else "container creation failed")
    base = dict(id=container_id, pid=int(created["pid"]), created_at=int(created["created_at"]),
                started_at=int(started.get("started_at", 0)))
    if exited is not None:
        return ContainerState(state=State.EXITED, finished_at=int(exited["finished_at"]),
                              exit_code=int(exited["exit_code"]), reason=exited["reason"],
                              message=exited.get("message", ""), **base)
    init = files.ProcRef.from_json(created)
    if init is not None and init.alive():
        return ContainerState(state=State.RUNNING if base["started_at"] else State.CREATED, **base)
    if monitor_alive:
        # The init is gone and the monitor is draining its output: the exit file (and the last
        # log lines) follow within the drain timeout.  Still RUNNING, so `logs -f` keeps going.
        return ContainerState(state=State.RUNNING, **base)
    return ContainerState(state=State.EXITED, exit_code=UNKNOWN_EXIT_CODE, reason="Unknown",
                          message="the container's monitor exited without recording its exit",
                          **base)
