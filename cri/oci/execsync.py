"""ExecSync that returns what ran and never hangs.

A command that backgrounds a child (`sh -c 'sleep 100 & echo hi'`) leaves that child holding
our stdout pipe, so EOF never comes.  The command runs under cri.monitor.exec_helper (`runc exec
--detach` + wait as subreaper), whose exit is the command's exit; after it, like containerd's
drain_exec_sync_io_timeout, we read what is buffered for at most DRAIN_TIMEOUT and return.
On the request's timeout the exec's process group is SIGKILLed and DEADLINE_EXCEEDED returned."""
from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from cri.errors import deadline, internal, invalid
from cri.oci.runc import Runc

DRAIN_TIMEOUT = 1.0
# The helper runs with `python -S` (no site: a faster start) and finds podwire via PYTHONPATH.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_OUTPUT = 16 << 20  # per stream; the kubelet caps probe output far lower anyway


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


def exec_sync(runc: Runc, container_id: str, cmd: list[str], timeout_s: float,
              scratch_dir: str, drain_timeout: float = DRAIN_TIMEOUT) -> ExecResult:
    """Run `cmd` in the container; timeout_s <= 0 means no timeout (the CRI's 0)."""
    if not cmd:
        raise invalid("exec: empty command")
    with tempfile.TemporaryDirectory(prefix="exec-", dir=scratch_dir) as tmp:
        pid_file, log_file = os.path.join(tmp, "pid"), os.path.join(tmp, "log")
        argv = [sys.executable, "-S", "-m", "cri.monitor.exec_helper", runc.binary, runc.root,
                log_file, pid_file, container_id, *cmd]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env=dict(os.environ, PYTHONPATH=PACKAGE_ROOT))
        try:
            out, err, timed_out = _collect(proc, timeout_s, drain_timeout, pid_file)
        finally:
            _reap(proc)
        if timed_out:
            raise deadline(f"exec in {container_id}: timeout {timeout_s}s exceeded")
        failure = _runc_failure(log_file) if proc.returncode != 0 else ""
        if failure:
            raise internal(f"exec in {container_id}: {failure}")
        return ExecResult(out, err, proc.returncode)


def _collect(proc: subprocess.Popen, timeout_s: float, drain_timeout: float,
             pid_file: str) -> tuple[bytes, bytes, bool]:
    """Read both pipes until the helper exits and the pipes close, or the drain deadline passes.
    (out, err, timed out)."""
    buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    pidfd = os.pidfd_open(proc.pid)
    sel = selectors.DefaultSelector()
    try:
        for fd in buffers:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        sel.register(pidfd, selectors.EVENT_READ)  # readable once the helper has exited
        limit = time.monotonic() + timeout_s if timeout_s > 0 else None
        open_fds, exited_at, timed_out = set(buffers), None, False
        while open_fds or exited_at is None:
            now = time.monotonic()
            if exited_at is None and limit is not None and now >= limit:
                _kill_exec(pid_file, proc)
                timed_out = True
                break
            if exited_at is not None and now >= exited_at + drain_timeout:
                break
            wake = limit if exited_at is None else exited_at + drain_timeout
            for key, _ in sel.select(None if wake is None else max(0.0, wake - now)):
                if key.fd == pidfd:
                    sel.unregister(pidfd)
                    exited_at = time.monotonic()
                elif not _read_into(key.fd, buffers[key.fd]):
                    sel.unregister(key.fd)
                    open_fds.discard(key.fd)
        out, err = (bytes(buffers[s.fileno()]) for s in (proc.stdout, proc.stderr))
        return out, err, timed_out
    finally:
        sel.close()
        os.close(pidfd)


def _read_into(fd: int, buf: bytearray) -> bool:
    """Append what is readable; False at EOF."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return True
    if not data:
        return False
    buf += data[:max(0, MAX_OUTPUT - len(buf))]
    return True


def _kill_exec(pid_file: str, proc: subprocess.Popen) -> None:
    """SIGKILL the exec'd process and its process group (the helper's, which it shares unless
    it made its own); the helper then reaps it and exits."""
    try:
        with open(pid_file) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass  # not started yet, or gone
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _reap(proc: subprocess.Popen) -> None:
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _runc_failure(log_file: str) -> str:
    """runc's own error (e.g. "executable file not found"), as opposed to the command's exit."""
    try:
        with open(log_file) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    return entry.get("msg", "")
    except OSError:
        pass
    return ""
