"""ExecSync through conmon (`conmon --exec`, as CRI-O runs it): returns what ran, never hangs.

conmon runs `runc exec --detach --process <spec>`, waits for the process as its subreaper, copies
stdout/stderr into a CRI-format log file and reports on its sync pipe: {"data": <pid>} once the
process started (or {"data": -1, "message": ...} when runc failed), then {"data": <exit code>}.
When the process exits conmon drains what its pipes hold without waiting for EOF, so a command
that backgrounds a child (`sh -c 'sleep 100 & echo hi'`) returns at once.  The request's timeout
is ours to keep (conmon's own -T fires on whole-second ticks, up to a second early): at the
deadline the process is SIGKILLed and DEADLINE_EXCEEDED returned."""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from dataclasses import dataclass

from cri.errors import deadline, internal, invalid
from cri.monitor import conmon, files
from cri.oci.runc import Runc

MAX_OUTPUT = 16 << 20      # per stream; the kubelet caps probe output far lower anyway
START_TIMEOUT = 30.0       # conmon + `runc exec` starting the process
KILL_GRACE = 10.0          # after SIGKILL at the deadline, for conmon to report the exit
OUTPUT_LOG = "output.log"


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


def exec_sync(runc: Runc, conmon_binary: str, container_id: str, process: dict, cmd: list[str],
              timeout_s: float, scratch_dir: str) -> ExecResult:
    """Run `cmd` in the container with the container's own process settings (user, env, cwd,
    capabilities...) from `process`; timeout_s <= 0 means no timeout (the CRI's 0)."""
    if not cmd:
        raise invalid("exec: empty command")
    with tempfile.TemporaryDirectory(prefix="exec-", dir=scratch_dir) as tmp:
        spec = {k: v for k, v in process.items() if k != "consoleSize"}
        files.write_json(os.path.join(tmp, "process.json"), {**spec, "args": list(cmd), "terminal": False})
        pipe = conmon.run_first_stage(_argv(runc, conmon_binary, container_id, tmp), tmp,
                                      os.path.join(tmp, files.CONMON_LOG), time.monotonic() + START_TIMEOUT)
        try:
            exit_code = _wait(pipe, timeout_s, container_id, tmp)
        finally:
            os.close(pipe.fd)
        return ExecResult(*_output(os.path.join(tmp, OUTPUT_LOG)), exit_code)


def _argv(runc: Runc, conmon_binary: str, container_id: str, tmp: str) -> list[str]:
    # No --bundle: conmon would make its control FIFOs there, and the bundle's are the
    # container's own conmon's.  --cuuid names the (unused) attach link in tmp.
    return conmon.runtime_options(conmon_binary, container_id, runc.binary, runc.root, tmp,
                                  runc.systemd_cgroup) + [
        "--cuuid", os.path.basename(tmp), "--exec", "--exec-process-spec", os.path.join(tmp, "process.json"),
        "--container-pidfile", os.path.join(tmp, "pid"), "--log-path", f"k8s-file:{os.path.join(tmp, OUTPUT_LOG)}",
        "--exit-dir", tmp, "--socket-dir-path", tmp]


def _wait(pipe: conmon.SyncPipe, timeout_s: float, container_id: str, tmp: str) -> int:
    """The command's exit code, from conmon's two reports."""
    started = pipe.next(time.monotonic() + START_TIMEOUT)
    if started is None:
        raise deadline(f"exec in {container_id}: the process did not start in time")
    pid = started.get("data", -1)
    if not isinstance(pid, int) or pid <= 0:
        reason = (conmon.runc_error(tmp) or started.get("message", "").strip()
                  or "conmon exited: " + conmon.log_tail(os.path.join(tmp, files.CONMON_LOG)))
        raise internal(f"exec in {container_id}: {reason}")
    limit = time.monotonic() + timeout_s if timeout_s > 0 else None
    exited = pipe.next(limit)
    if exited is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        pipe.next(time.monotonic() + KILL_GRACE)   # conmon reaps it and reports; then it is gone
        raise deadline(f"exec in {container_id}: timeout {timeout_s}s exceeded")
    code = exited.get("data")
    if not isinstance(code, int) or code < 0:
        raise internal(f"exec in {container_id}: {exited.get('message') or 'no exit status from conmon'}")
    return code


def _output(log_path: str) -> tuple[bytes, bytes]:
    """stdout and stderr from the CRI log conmon wrote: P chunks joined, F ends a line."""
    streams = {b"stdout": bytearray(), b"stderr": bytearray()}
    try:
        with open(log_path, "rb") as f:
            for line in f:
                parts = line.rstrip(b"\n").split(b" ", 3)
                if len(parts) < 3 or parts[1] not in streams:
                    continue
                buf = streams[parts[1]]
                chunk = (parts[3] if len(parts) == 4 else b"") + (b"\n" if parts[2] == b"F" else b"")
                buf += chunk[:max(0, MAX_OUTPUT - len(buf))]
    except FileNotFoundError:
        pass            # the command wrote nothing
    return bytes(streams[b"stdout"]), bytes(streams[b"stderr"])

