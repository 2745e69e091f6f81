"""The container state dir's layout (see the package docstring) and atomic JSON files."""
from __future__ import annotations

import json
import os
from typing import Any

from cni import atomic

CONMON_PID = "conmon.pid"
INIT_PID = "init.pid"
CREATED = "created.json"
STARTED = "started.json"
RUNTIME = "runtime.json"
EXIT = "exit"
OOM = "oom"
CONMON_LOG = "conmon.log"
RUNC_LOG = "runc.log"
CONTROL_FIFO = "ctl"   # in the bundle dir


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write-to-temp + fsync + rename: a reader (maybe a restarted shim) sees all or nothing."""
    atomic.write_bytes(path, json.dumps(data, sort_keys=True).encode())


def read_json(path: str) -> dict[str, Any] | None:
    """The file's object, or None when it does not exist (yet)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None
    except ValueError:
        # Only a crash mid-write by something other than write_json could leave this.
        return None


def read_int(path: str) -> int | None:
    """A file holding one integer (pid files, conmon's exit file); None if absent or partial."""
    try:
        with open(path, "rb") as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), None if gone or a zombie.

    A pid plus its start time names a process unambiguously across pid reuse.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parens: split after its last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class ProcRef:
    """A process named by pid + start time."""

    __slots__ = ("pid", "start_time")

    def __init__(self, pid: int, start_time: int) -> None:
        self.pid = pid
        self.start_time = start_time

    def __repr__(self) -> str:
        return f"ProcRef(pid={self.pid}, start_time={self.start_time})"

    @classmethod
    def of(cls, pid: int) -> "ProcRef | None":
        start = proc_start_time(pid)
        return None if start is None else cls(pid, start)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "ProcRef | None":
        if not data or not data.get("pid"):
            return None
        return cls(int(data["pid"]), int(data.get("start_time", 0)))

    def alive(self) -> bool:
        return self.pid > 0 and proc_start_time(self.pid) == self.start_time

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_time": self.start_time}
