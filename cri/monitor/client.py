"""The shim's side of the monitor: spawn it and wait for "created"; talk to its control socket.

(Imported by the shim only; the monitor process itself never imports this module.)
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
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

    def argv(self, sync_fd: int) -> list[str]:
        argv = [sys.executable, "-S", "-m", "cri.monitor", "--id", self.container_id,
                "--bundle", self.bundle, "--state-dir", self.state_dir, "--runc", self.runc,
                "--runc-root", self.runc_root, "--log-path", self.log_path,
                "--cgroups-path", self.cgroups_path, "--sync-fd", str(sync_fd)]
        return argv + ["--tty"] * self.tty + ["--stdin"] * self.stdin


def spawn(args: MonitorArgs, timeout: float) -> int:
    """Start the monitor, which creates the container; the container's init pid.

    The monitor double-forks: the process we start exits at once and is reaped here, so the
    monitor is never our child and survives us.  Its "created" (or error) arrives on a pipe.
    On timeout the caller's undo kills the monitor (its pid is in monitor.json)."""
    deadline_at = time.monotonic() + timeout
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    try:
        env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
        with open(os.path.join(args.state_dir, files.MONITOR_LOG), "ab") as log:
            proc = subprocess.Popen(args.argv(sync_w), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log, pass_fds=(sync_w,),
                                    start_new_session=True, cwd="/", env=env)
        os.close(sync_w)
        sync_w = -1
        _reap_first_fork(proc, deadline_at)
        message = _read_message(sync_r, deadline_at, args.state_dir)
    finally:
        os.close(sync_r)
        if sync_w >= 0:
            os.close(sync_w)
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
