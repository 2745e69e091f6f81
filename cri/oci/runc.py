"""A thin wrapper of the runc CLI.  Every failure is a CriError carrying runc's stderr.

Container creation is not here: the monitor, conmon, runs `runc create` itself
(cri/monitor/conmon.py) so that it, not the shim, holds the container's stdio."""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from typing import Any, Sequence

from cri.errors import CriError, deadline, internal, not_found

DEFAULT_ROOT = "/run/podwire/runc"
TIMEOUT = 30.0
EXEC_FIFO = "exec.fifo"     # <root>/<id>/exec.fifo: a created container's init blocks writing to it
# runc's words for "no such container" / "not running" (libcontainer/error.go, kill.go).
_MISSING = ("does not exist", "not exist", "no such file or directory")
_NOT_RUNNING = ("not running", "process already finished", "container not running")


class Runc:
    def __init__(self, root: str = DEFAULT_ROOT, binary: str = "runc",
                 systemd_cgroup: bool = False) -> None:
        self.root = root
        self.binary = shutil.which(binary) or binary
        # The systemd cgroup driver: runc's global --systemd-cgroup, on every command as
        # containerd's go-runc passes it (create needs it; the others read the driver from
        # runc's state, so it is harmless there).
        self.systemd_cgroup = systemd_cgroup

    @property
    def global_args(self) -> list[str]:
        """runc's global options, for runc run by us and by conmon (--runtime-arg)."""
        return ["--root", self.root] + ["--systemd-cgroup"] * self.systemd_cgroup

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *self.global_args, *args]

    def _run(self, args: Sequence[str], *, input: bytes | None = None,
             timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.argv(*args), input=input, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise deadline(f"runc {' '.join(args)}: no answer in {timeout}s") from None
        except OSError as e:
            raise internal(f"runc {' '.join(args)}: {e}") from None

    @staticmethod
    def _error(args: Sequence[str], done: subprocess.CompletedProcess) -> CriError:
        stderr = done.stderr.decode(errors="replace").strip()
        return internal(f"runc {' '.join(args)}: {stderr or f'exit status {done.returncode}'}")

    @staticmethod
    def _says(done: subprocess.CompletedProcess, words: Sequence[str]) -> bool:
        stderr = done.stderr.decode(errors="replace").lower()
        return any(w in stderr for w in words)

    def state(self, container_id: str) -> dict[str, Any] | None:
        """runc's state (status created/running/paused/stopped, pid, ...); None if unknown."""
        done = self._run(["state", container_id])
        if done.returncode != 0:
            if self._says(done, _MISSING):
                return None
            raise self._error(["state", container_id], done)
        return json.loads(done.stdout)

    def list(self) -> list[dict[str, Any]]:
        done = self._run(["list", "--format", "json"])
        if done.returncode != 0:
            raise self._error(["list"], done)
        return json.loads(done.stdout or b"null") or []

    def start(self, container_id: str, init_pid: int = 0, timeout: float = TIMEOUT) -> None:
        """Let a created container's init exec the user's process.  What `runc start` does
        (libcontainer's exec(): open runc's exec.fifo for reading, which releases the init
        blocked writing to it, read its byte, remove the fifo -- runc then reports "running"),
        without a runc start-up; `runc start` itself when there is no fifo to open."""
        fifo = os.path.join(self.root, container_id, EXEC_FIFO)
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._start(container_id)
        try:
            data = _read_until_closed(fd, init_pid, time.monotonic() + timeout)
        finally:
            os.close(fd)
        if data is None:
            raise internal(f"runc start {container_id}: container process is already dead")
        if not data:
            raise internal(f"runc start {container_id}: cannot start an already running container")
        os.unlink(fifo)

    def _start(self, container_id: str) -> None:
        done = self._run(["start", container_id])
        if done.returncode != 0:
            if self._says(done, _MISSING):
                raise not_found(f"container {container_id} not found in runc")
            raise self._error(["start", container_id], done)

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> bool:
        """Signal the container; False when it is not running or gone (nothing to signal)."""
        args = ["kill", *(["--all"] if all_processes else []), container_id, str(sig)]
        done = self._run(args)
        if done.returncode == 0:
            return True
        if self._says(done, _MISSING + _NOT_RUNNING):
            return False
        raise self._error(args, done)

    def delete(self, container_id: str) -> None:
        """`runc delete --force`: kills what still runs, removes runc's state and the cgroup.
        Idempotent: a container runc does not know is already deleted."""
        done = self._run(["delete", "--force", container_id])
        if done.returncode != 0 and not self._says(done, _MISSING):
            raise self._error(["delete", container_id], done)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """`runc update --resources -`: the OCI linux.resources JSON on stdin."""
        args = ["update", "--resources", "-", container_id]
        done = self._run(args, input=json.dumps(resources).encode())
        if done.returncode != 0:
            if self._says(done, _MISSING):
                raise not_found(f"container {container_id} not found in runc")
            raise self._error(args, done)


def _read_until_closed(fd: int, init_pid: int, deadline_at: float) -> bytes | None:
    """What the init writes to the fifo before it execs (its writer end closes on exec); None
    when the init died without writing (runc checks every 100 ms, as here)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data = b""
    while True:
        if poller.poll(100):
            chunk = os.read(fd, 64)
            if not chunk:
                return data          # the writer closed: done
            data += chunk
            continue
        if init_pid and not _alive(init_pid):
            try:
                return os.read(fd, 64) or None
            except BlockingIOError:
                return None
        if time.monotonic() > deadline_at:
            raise deadline(f"container init {init_pid} did not take the start signal in time")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
