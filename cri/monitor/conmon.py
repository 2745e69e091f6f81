"""Spawning conmon for a container, asking it to reopen the log, and telling whether it lives.

conmon's contract (api version 1; Debian's conmon 2.1): the first process forks and exits at once
(its child carries on detached, in its own session), the sync pipe named by $_OCI_SYNCPIPE gets
one JSON line -- {"data": <init pid>} once `runc create` succeeded, {"data": -1, "message": ...}
when it failed -- and early failures (a log file it cannot open) exit the first process non-zero
with the reason on stderr, which we keep in conmon.log."""
from __future__ import annotations

import errno
import json
import os
import select
import subprocess
import time
from dataclasses import dataclass

from cri.errors import CriError, deadline, internal, precondition
from cri.monitor import files

# conmon's own verbosity: "warning" keeps its stderr (conmon.log) to what matters.
LOG_LEVEL = "warning"
# ReopenContainerLog waits this long for conmon to have created the new log file.
REOPEN_WAIT = 5.0
REOPEN_LOGS = b"2 0 0\n"   # conmon's control message type 2 (the two numbers are unused)


def runtime_options(conmon_binary: str, container_id: str, runc: str, runc_root: str,
                    work_dir: str, systemd_cgroup: bool = False) -> list[str]:
    """What every conmon of ours is told, for a container or for an exec: which container,
    which runc and runc root (and runc's --systemd-cgroup under the systemd driver), and runc's
    json log in work_dir (its errors, in its own words)."""
    return [conmon_binary, "--api-version", "1", "--cid", container_id, "--name", container_id,
            "--runtime", runc, "--runtime-arg", f"--root={runc_root}",
            *(["--runtime-arg", "--systemd-cgroup"] if systemd_cgroup else []),
            "--runtime-arg", f"--log={os.path.join(work_dir, files.RUNC_LOG)}",
            "--runtime-arg", "--log-format=json", "--log-level", LOG_LEVEL]


@dataclass(frozen=True)
class ConmonArgs:
    container_id: str
    bundle: str
    state_dir: str
    attach_dir: str      # conmon links <attach_dir>/<id> -> bundle (keeps socket paths short)
    conmon: str
    runc: str
    runc_root: str
    log_path: str        # "" = output is read and dropped, as the CRI says without log_path
    tty: bool = False
    stdin: bool = False
    # The container has stdin and not stdin_once: an attach client's EOF must not close it.
    leave_stdin_open: bool = False
    systemd_cgroup: bool = False     # runc --systemd-cgroup (the systemd cgroup driver)
    # A command prefix conmon is started under: the systemd driver's `systemd-run --scope ...`
    # (cgroupdriver.conmon_scope_argv); empty with cgroupfs, where conmon starts as it always did.
    scope: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        state = lambda name: os.path.join(self.state_dir, name)   # noqa: E731
        log = f"k8s-file:{self.log_path}" if self.log_path else "none:"
        argv = [*self.scope, *runtime_options(self.conmon, self.container_id, self.runc,
                                              self.runc_root, self.state_dir, self.systemd_cgroup)]
        argv += ["--cuuid", self.container_id, "--bundle", self.bundle,
                 "--container-pidfile", state(files.INIT_PID), "--conmon-pidfile", state(files.CONMON_PID),
                 "--persist-dir", self.state_dir, "--exit-dir", self.state_dir,
                 "--socket-dir-path", self.attach_dir, "--log-path", log]
        return (argv + ["--terminal"] * self.tty + ["--stdin"] * self.stdin
                + ["--leave-stdin-open"] * self.leave_stdin_open)


class SyncPipe:
    """conmon's reports, one JSON line each, read as they arrive."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def next(self, deadline_at: float | None) -> dict | None:
        """The next report; {} when conmon closed the pipe without one (it died: its log
        says why), None when deadline_at passed first."""
        while b"\n" not in self._buffer:
            remaining = None if deadline_at is None else deadline_at - time.monotonic()
            if remaining is not None and (remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]):
                return None
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return {}
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {"message": f"garbled report from conmon {line[:200]!r}"}


def run_first_stage(argv: list[str], cwd: str, log_path: str, deadline_at: float) -> SyncPipe:
    """Start conmon and wait for its first process, which forks the long-lived one and exits;
    the pipe conmon reports on (the caller closes its fd)."""
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("_OCI_")}
        env["_OCI_SYNCPIPE"] = str(sync_w)   # pass_fds keeps the number in the child
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        pass_fds=(sync_w,), cwd=cwd, env=env, start_new_session=True)
            except OSError as e:   # e.g. not installed: say so in the CRI's words
                raise internal(f"cannot run the container monitor {argv[0]!r}: {e.strerror}") from None
        try:
            code = _wait(proc, max(0.1, deadline_at - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise deadline("conmon did not start in time") from None
        if code != 0:
            raise internal(f"conmon failed: {log_tail(log_path)}")
    except BaseException:
        os.close(sync_r)
        raise
    finally:
        os.close(sync_w)
    return SyncPipe(sync_r)


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    """Popen.wait(timeout), woken by the exit itself: Popen's own timed wait sleeps in growing
    steps (up to 50 ms) and so oversleeps a first process that exits within a few ms."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:                 # already reaped, or no pidfd: Popen's own wait
        return proc.wait(timeout=timeout)
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()


def spawn(args: ConmonArgs, timeout: float) -> int:
    """Start conmon, which creates the container; the init's pid.

    On failure or timeout the caller's undo kills conmon (conmon.pid) and deletes the container."""
    deadline_at = time.monotonic() + timeout
    os.makedirs(args.attach_dir, mode=0o700, exist_ok=True)
    try:
        pipe = run_first_stage(args.argv(), args.state_dir,
                               os.path.join(args.state_dir, files.CONMON_LOG), deadline_at)
    except CriError as e:
        raise CriError(e.code, f"create container {args.container_id}: {e.message}") from None
    try:
        message = pipe.next(deadline_at)
    finally:
        os.close(pipe.fd)
    if message is None:
        raise deadline(f"container {args.container_id} was not created in time")
    pid = message.get("data", -1)
    if not isinstance(pid, int) or pid <= 0:
        reason = (runc_error(args.state_dir) or message.get("message", "").strip()
                  or log_tail(os.path.join(args.state_dir, files.CONMON_LOG)))
        raise internal(f"create container {args.container_id}: {reason}")
    return pid


def runc_error(state_dir: str) -> str:
    """runc's own words from its json --log: the error and fatal entries."""
    errors = []
    try:
        with open(os.path.join(state_dir, files.RUNC_LOG)) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    errors.append(entry.get("msg", ""))
    except OSError:
        pass
    return "; ".join(errors)


def log_tail(path: str, size: int = 2000) -> str:
    """The end of conmon's own log (its stderr): why it failed, when it did."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace").strip() or "(conmon said nothing)"
    except OSError:
        return "(no conmon log)"


def alive(state_dir: str, container_id: str) -> bool:
    """Whether this container's conmon still runs: the pid in conmon.pid is a live process whose
    command line is conmon's for this container id (so a reused pid is never mistaken for it)."""
    pid = files.read_int(os.path.join(state_dir, files.CONMON_PID))
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    try:
        return argv[argv.index(b"--cid") + 1] == container_id.encode()
    except (ValueError, IndexError):
        return False   # a zombie (empty cmdline) or another program


def conmon_pid(state_dir: str, container_id: str) -> int:
    """conmon's pid while it lives, else 0."""
    if not alive(state_dir, container_id):
        return 0
    return files.read_int(os.path.join(state_dir, files.CONMON_PID)) or 0


def reopen_log(container_id: str, bundle: str, log_path: str) -> None:
    """Ask conmon to reopen the log file (after the kubelet renamed it away) and wait until the
    new file exists; FailedPrecondition when no conmon listens (the container has exited)."""
    try:
        fd = os.open(os.path.join(bundle, files.CONTROL_FIFO), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT):   # no reader: conmon is gone
            raise precondition(f"container {container_id} is not running") from None
        raise internal(f"reopen log of {container_id}: {e}") from None
    try:
        os.write(fd, REOPEN_LOGS)
    finally:
        os.close(fd)
    end = time.monotonic() + REOPEN_WAIT
    while log_path and not os.path.exists(log_path):
        if time.monotonic() >= end:
            raise internal(f"reopen log of {container_id}: conmon did not reopen {log_path}")
        time.sleep(0.01)
