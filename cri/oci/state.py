"""ContainerState: what ContainerStatus reports, derived from the container's state dir.

No runc call on this path (ListContainers and ContainerStatus are hot): the shim's created.json
and started.json say created / started, conmon's exit file says exited (its mtime is the finish
time, its oom file -- or on cgroup v2 memory.events' oom_kill -- the reason), /proc says whether
the init (pid + start time, so a reused pid is not mistaken for it) and conmon still live."""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass, replace

from cri.monitor import conmon, files
from cri.oci import cgroups


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
    """The container's state from its state dir; None when there is no state dir."""
    if not os.path.isdir(state_dir):
        return None
    monitor_alive = conmon.alive(state_dir, container_id)
    created = _created(state_dir)
    if created is None:
        # Create still running, or failed.
        return ContainerState(container_id, State.CREATED if monitor_alive else State.UNKNOWN,
                              message="" if monitor_alive else "container creation failed")
    started = files.read_json(os.path.join(state_dir, files.STARTED)) or {}
    base = ContainerState(container_id, State.CREATED, pid=int(created["pid"]),
                          created_at=int(created["created_at"]),
                          started_at=int(started.get("started_at", 0)))
    exit_path = os.path.join(state_dir, files.EXIT)
    exit_code = files.read_int(exit_path)
    if exit_code is not None:
        oom = os.path.exists(os.path.join(state_dir, files.OOM)) or _cgroup_oom_killed(state_dir)
        # File times come from the kernel's coarse clock, up to a tick (~4 ms) behind
        # time_ns(): a container that ran for less than that must not end before it started.
        finished_at = max(files.mtime_ns(exit_path), base.started_at, base.created_at)
        return replace(base, state=State.EXITED, finished_at=finished_at,
                       exit_code=exit_code if exit_code >= 0 else UNKNOWN_EXIT_CODE,
                       reason=_reason(exit_code, oom))
    init = files.ProcRef.from_json(created)
    if init is not None and init.alive():
        return replace(base, state=State.RUNNING if base.started_at else State.CREATED)
    if monitor_alive:
        # The init is gone and conmon is draining its output: the exit file (after the last
        # log lines) follows at once.  Still RUNNING, so `logs -f` keeps going.
        return replace(base, state=State.RUNNING)
    return replace(base, state=State.EXITED, exit_code=UNKNOWN_EXIT_CODE, reason="Unknown",
                   message="the container's monitor exited without recording its exit")


def _cgroup_oom_killed(state_dir: str) -> bool:
    """cgroup v2: the container's memory.events counts an OOM kill (oom_kill > 0) that conmon's
    `oom` file does not show -- conmon watches the `oom` counter through inotify and can miss a
    kill at the very end.  Read while the cgroup still exists (until RemoveContainer with
    cgroupfs; systemd removes an emptied scope at once, leaving conmon's file as the witness),
    and then written down as conmon would, in the `oom` file, so the reason never changes back.
    v1: nothing read, as before."""
    if not cgroups.is_v2():
        return False
    info = files.read_json(os.path.join(state_dir, files.RUNTIME)) or {}
    path = info.get("cgroups_path") or ""
    if not path or not cgroups.oom_killed(path):
        return False
    try:
        with open(os.path.join(state_dir, files.OOM), "a"):
            pass
    except OSError:
        pass
    return True


def _created(state_dir: str) -> dict | None:
    """created.json, which the shim writes once conmon reported the init's pid; else -- a shim
    killed in between -- the pid runc wrote, with the pid file's mtime as created_at."""
    created = files.read_json(os.path.join(state_dir, files.CREATED))
    if created is not None:
        return created
    pid_path = os.path.join(state_dir, files.INIT_PID)
    pid = files.read_int(pid_path)
    if not pid:
        return None
    ref = files.ProcRef.of(pid) or files.ProcRef(pid, 0)   # start time 0: never "alive" again
    return {**ref.to_json(), "created_at": files.mtime_ns(pid_path)}


def _reason(exit_code: int, oom: bool) -> str:
    if oom:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"
