"""The shim's side of the monitor: spawn it and wait for "created"; talk to its control socket.

(Imported by the shim only; the monitor process itself never imports this module.)
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import cri
from cri.errors import deadline, internal, precondition
from cri.monitor import control, files

# The directory holding the `cri` package: the monitor runs with `python -S` (no site: faster
# start, fewer modules resident per container) and finds podwire through PYTHONPATH.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(cri.__file__)))


@dataclass(frozen=True)
class MonitorArgs:
    container_id: str
    bundle: str
    state_dir: str
    runc: str
    runc_root: str
    log_path: str
    cgroups_path: str
    tty: bool = False
    stdin: bool = False

    def options(self, sync_fd: int) -> list[str]:
        argv = ["--id", self.container_id,
                "--bundle", self.bundle, "--state-dir", self.state_dir, "--runc", self.runc,
                "--runc-root", self.runc_root, "--log-path", self.log_path,
                "--cgroups-path", self.cgroups_path, "--sync-fd", str(sync_fd)]
        return argv + ["--tty"] * self.tty + ["--stdin"] * self.stdin


class Standby:
    """A monitor started before it is needed: Python's start-up and imports (~25 ms) are
    paid while no CreateContainer waits.  It is detached like any monitor and waits for its
    job on a pipe; when the shim goes away the pipe reaches EOF and the standby exits."""

    def __init__(self, root: str) -> None:
        job_r, self.job_w = os.pipe2(os.O_CLOEXEC)
        self.sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        try:
            env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
            # --root only labels the process (ps shows whose standby it is).
            argv = [sys.executable, "-S", "-m", "cri.monitor", "--standby", str(job_r), "--root", root]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, pass_fds=(job_r, sync_w),
                                    start_new_session=True, cwd="/", env=env)
            self.sync_fd = sync_w  # pass_fds keeps the number in the child
            _reap_first_fork(proc, time.monotonic() + 30)
        except BaseException:
            for fd in (self.job_w, self.sync_r):
                os.close(fd)
            raise
        finally:
            os.close(job_r)
            os.close(sync_w)

    def dismiss(self) -> None:
        """Not needed after all: EOF on its job pipe makes it exit."""
        os.close(self.job_w)
        os.close(self.sync_r)

    def assign(self, args: "MonitorArgs") -> int:
        """Hand over the job; returns the fd the monitor reports "created" on (ours to close)."""
        try:
            os.write(self.job_w, json.dumps(args.options(self.sync_fd)).encode() + b"\n")
        finally:
            os.close(self.job_w)
        return self.sync_r


class _Spare:
    """At most one standby monitor per monitors root, refilled in the background after use
    and let go after IDLE_S without a CreateContainer, so an idle node keeps no spare."""

    IDLE_S = 60.0

    def __init__(self, root: str) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._ready: Standby | None = None

    def take(self) -> Standby:
        with self._lock:
            standby, self._ready = self._ready, None
        threading.Thread(target=self._refill, name="monitor-standby", daemon=True).start()
        return standby or Standby(self._root)

    def _refill(self) -> None:
        try:
            standby = Standby(self._root)
        except Exception:
            return  # the next take() starts one itself
        with self._lock:
            if self._ready is None:
                self._ready, standby = standby, None
                expiry = threading.Timer(self.IDLE_S, self._expire, [self._ready])
                expiry.daemon = True
                expiry.start()
        if standby is not None:  # lost a race: one spare is enough
            standby.dismiss()

    def _expire(self, standby: Standby) -> None:
        with self._lock:
            if self._ready is not standby:
                return  # taken meanwhile
            self._ready = None
        standby.dismiss()


_spares: dict[str, _Spare] = {}
_spares_lock = threading.Lock()


def _spare(root: str) -> _Spare:
    with _spares_lock:
        return _spares.setdefault(root, _Spare(root))


def spawn(args: MonitorArgs, timeout: float) -> int:
    """Start the monitor, which creates the container; the container's init pid.

    The monitor is a standby started ahead of time (see Standby): it double-forked, so it is
    never our child and survives us.  Its "created" (or error) arrives on a pipe.
    On timeout the caller's undo kills the monitor (its pid is in monitor.json)."""
    deadline_at = time.monotonic() + timeout
    sync_r = _spare(os.path.dirname(os.path.abspath(args.state_dir))).take().assign(args)
    try:
        message = _read_message(sync_r, deadline_at, args.state_dir)
    finally:
        os.close(sync_r)
    if "pid" not in message:
        raise internal(f"create container {args.container_id}: {message.get('error')}")
    return int(message["pid"])


def _reap_first_fork(proc: subprocess.Popen, deadline_at: float) -> None:
    try:
        proc.wait(timeout=max(0.1, deadline_at - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise deadline("the container monitor did not start in time")


def _read_message(fd: int, deadline_at: float, state_dir: str) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline_at - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise deadline(f"monitor in {state_dir} did not report the container created in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            return {"error": "monitor exited: " + _tail(os.path.join(state_dir, files.MONITOR_LOG))}
        data += chunk
    try:
        return json.loads(data)
    except ValueError:
        return {"error": f"garbled monitor report {data[:200]!r}"}


def _tail(path: str, size: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return "(no monitor log)"


def reopen_log(container_id: str, state_dir: str) -> None:
    """Ask the monitor to reopen the log file; FailedPrecondition when it is not running."""
    try:
        reply = control.request(state_dir, files.CONTROL, "reopen")
    except (FileNotFoundError, ConnectionRefusedError):
        raise precondition(f"container {container_id} is not running")
    except OSError as e:
        raise internal(f"reopen log of {container_id}: {e}")
    if reply != control.REPLY_OK:
        raise internal(f"reopen log of {container_id}: {reply}")
