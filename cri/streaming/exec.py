"""Streaming Exec: `runc exec` in the foreground, as CRI-O runs it (no conmon in between).

runc starts the process in the container and stays until it exits, its exit status being the
process's.  Its stdio is ours:

- tty: the slave of a pty we open.  runc makes the container's own pty, copies between the two,
  and on SIGWINCH copies our pty's size to the container's.  runc has no controlling terminal
  here (its own session), so the kernel does not signal it when we resize: we do, after
  TIOCSWINSZ on our side.
- no tty: pipes for stdout and stderr (read even without a client sink, so the process never
  blocks on a full pipe) and for stdin when the client sends one (else /dev/null).

The process's exit ends the session even while the client keeps stdin open (critest holds it
20 s).  What is still buffered is then drained, bounded: a background child that inherited the
pipes would otherwise hold the session open forever."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import tty as ttymode

from cri.monitor import conmon, files
from cri.streaming import ByteSink, ByteSource, StreamError, StreamIO
from cri.streaming.fdio import read_nonblocking, wait_readable, write_all
from cri.streaming.requests import ExecRequest

DRAIN_QUIET = 0.2     # after the exit: stop reading a stream this long silent (pty data is
                      # pushed to the master by a kernel worker, so it can lag the write a bit)
DRAIN_LIMIT = 2.0     # after the exit: stop reading altogether (a background child still writing)
REAP_GRACE = 2.0      # cancelled: for runc to reap the killed process and exit by itself
PID_FILE = "pid"
PROCESS_JSON = "process.json"


class _Fds:
    """The session's file descriptors; each closed once, by close() or at the end."""

    def __init__(self) -> None:
        self._open: set[int] = set()

    def add(self, *fds: int) -> None:
        self._open.update(fds)

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self._open):
            self.close(fd)


class _Stdio:
    """Our ends and the child's ends of the process's stdio."""

    def __init__(self) -> None:
        self.child: tuple[int | None, int, int] = (subprocess.DEVNULL, 0, 0)   # stdin, stdout, stderr
        self.child_only: list[int] = []       # closed once runc has them
        self.outputs: list[tuple[int, ByteSink | None]] = []
        self.stdin: int | None = None          # where client stdin goes
        self.pty: int | None = None            # the master, with a tty


async def run_exec(req: ExecRequest, io: StreamIO) -> int:
    """Run req.cmd in the container with io as its streams; the process's exit code.

    StreamError when runc could not start the process.  Cancelled (the client went away): the
    process and runc are killed and reaped, and every fd and the temp dir are gone on return."""
    if not req.cmd:
        raise StreamError("exec: empty command")
    async with contextlib.AsyncExitStack() as undo:
        tmp = tempfile.mkdtemp(prefix="exec-", dir=req.scratch_dir)
        undo.callback(shutil.rmtree, tmp, ignore_errors=True)
        _write_process(req, tmp)
        fds = _Fds()
        undo.callback(fds.close_all)
        stdio = _open_tty(fds, io) if req.tty else _open_pipes(fds, req, io)
        proc = await _spawn(req, tmp, stdio)
        undo.push_async_callback(_kill, proc, os.path.join(tmp, PID_FILE))
        for fd in stdio.child_only:     # runc holds its copies; EOF/EIO come once it lets go
            fds.close(fd)
        code = await _session(proc, io, stdio, fds)
        await _close_sinks(io)
        if not os.path.exists(os.path.join(tmp, PID_FILE)):
            raise StreamError(_runc_failure(req, tmp, code))
        return code


def _write_process(req: ExecRequest, tmp: str) -> None:
    # consoleSize is the container's; ours comes from the client's resize stream.
    spec = {k: v for k, v in req.process.items() if k != "consoleSize"}
    files.write_json(os.path.join(tmp, PROCESS_JSON), {**spec, "args": list(req.cmd), "terminal": req.tty})


def _open_tty(fds: _Fds, io: StreamIO) -> _Stdio:
    master, slave = os.openpty()
    fds.add(master, slave)
    os.set_blocking(master, False)
    # Raw: our pty only carries bytes; the container's pty (runc's) is the one with the line
    # discipline the process sees.  Otherwise ours would echo and turn \n into \r\n again.
    ttymode.setraw(slave)
    _apply_latest_size(io, master)      # the client's initial size, read by runc at start
    stdio = _Stdio()
    stdio.child, stdio.child_only, stdio.pty = (slave, slave, slave), [slave], master
    stdio.outputs = [(master, io.stdout)]
    stdio.stdin = master if io.stdin is not None else None
    return stdio


def _open_pipes(fds: _Fds, req: ExecRequest, io: StreamIO) -> _Stdio:
    stdio = _Stdio()
    child_in: int | None = subprocess.DEVNULL
    if req.stdin and io.stdin is not None:
        child_in, stdio.stdin = _pipe(fds)
        stdio.child_only.append(child_in)
    out_r, out_w = _pipe(fds)
    err_r, err_w = _pipe(fds)
    stdio.child_only += [out_w, err_w]
    stdio.child = (child_in, out_w, err_w)
    stdio.outputs = [(out_r, io.stdout), (err_r, io.stderr)]
    for fd in (out_r, err_r) + ((stdio.stdin,) if stdio.stdin is not None else ()):
        os.set_blocking(fd, False)      # our ends only: the process gets ordinary blocking pipes
    return stdio


def _pipe(fds: _Fds) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    fds.add(r, w)
    return r, w


async def _spawn(req: ExecRequest, tmp: str, stdio: _Stdio) -> asyncio.subprocess.Process:
    argv = [req.runc, "--root", req.runc_root, "--log", os.path.join(tmp, files.RUNC_LOG),
            "--log-format", "json", "exec", "--process", os.path.join(tmp, PROCESS_JSON),
            "--pid-file", os.path.join(tmp, PID_FILE), req.container_id]
    stdin, stdout, stderr = stdio.child
    try:
        # Its own session: no signal meant for the shim's process group reaches it.
        return await asyncio.create_subprocess_exec(*argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                                    start_new_session=True)
    except OSError as e:
        raise StreamError(f"exec in {req.container_id}: cannot run {req.runc!r}: {e.strerror}") from None


async def _session(proc: asyncio.subprocess.Process, io: StreamIO, stdio: _Stdio, fds: _Fds) -> int:
    """Copy until the process exits, drain what it left; runc's exit status."""
    exited = asyncio.Event()
    tasks = [asyncio.create_task(_copy_out(fd, sink, exited)) for fd, sink in stdio.outputs]
    helpers = []
    if stdio.stdin is not None and io.stdin is not None:
        helpers.append(asyncio.create_task(_copy_in(io.stdin, stdio.stdin, fds, close_at_eof=stdio.pty is None)))
    if stdio.pty is not None:
        helpers.append(asyncio.create_task(_resize(io, stdio.pty, proc.pid)))
    try:
        code = await proc.wait()
        exited.set()
        await asyncio.wait(tasks, timeout=DRAIN_LIMIT)
        for task in tasks:
            if task.done() and not task.cancelled():
                failure = task.exception()
                if failure is not None:
                    raise failure
    finally:
        for task in tasks + helpers:
            task.cancel()
        # Awaited so that no task still watches an fd when the undo stack closes it.
        await asyncio.gather(*tasks, *helpers, return_exceptions=True)
    return code if code >= 0 else 128 - code      # runc itself killed by a signal: shell style


async def _copy_out(fd: int, sink: ByteSink | None, exited: asyncio.Event) -> None:
    """fd to sink (or nowhere) until EOF, or until quiet for DRAIN_QUIET once exited is set."""
    while True:
        data = read_nonblocking(fd)
        if data is None:
            if not await _more_output(fd, exited):
                return
            continue
        if not data:
            return
        if sink is not None:
            await sink.write(data)


async def _more_output(fd: int, exited: asyncio.Event) -> bool:
    """Wait for fd to be readable: True when it is, False once the process has exited and fd
    stayed quiet for DRAIN_QUIET."""
    if not exited.is_set():
        readable = asyncio.create_task(wait_readable(fd))
        gone = asyncio.create_task(exited.wait())
        try:
            await asyncio.wait((readable, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            readable.cancel()
            gone.cancel()
            await asyncio.gather(readable, gone, return_exceptions=True)
        if not readable.cancelled() and readable.done():
            return True
    return await wait_readable(fd, DRAIN_QUIET)


async def _copy_in(source: ByteSource, fd: int, fds: _Fds, close_at_eof: bool) -> None:
    """Client stdin to the process.  EOF closes the pipe (the process reads EOF); with a tty
    there is nothing to close, as with CRI-O.  Once the process stops reading (EPIPE), the rest
    is read and dropped, so the transport never backs up on an unread stream."""
    writable = True
    while data := await source.read():
        if writable:
            try:
                await write_all(fd, data)
            except OSError:     # EPIPE, mostly
                writable = False
    if close_at_eof:
        fds.close(fd)


async def _resize(io: StreamIO, pty: int, runc_pid: int) -> None:
    while True:
        width, height = await io.resize.get()
        _set_size(pty, width, height)
        with contextlib.suppress(ProcessLookupError):
            os.kill(runc_pid, signal.SIGWINCH)    # runc then copies the size to the container's pty


def _apply_latest_size(io: StreamIO, pty: int) -> None:
    size = None
    while not io.resize.empty():
        size = io.resize.get_nowait()
    if size is not None:
        _set_size(pty, *size)


def _set_size(pty: int, width: int, height: int) -> None:
    fcntl.ioctl(pty, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _close_sinks(io: StreamIO) -> None:
    for sink in (io.stdout, io.stderr):
        if sink is not None:
            await sink.close()


async def _kill(proc: asyncio.subprocess.Process, pid_file: str) -> None:
    """Kill and reap runc and the process it runs (a no-op once runc exited by itself).

    runc is stopped first so that it starts nothing more; its children (the process, which
    runc's nsexec clones with CLONE_PARENT, or a `runc init` still setting up) cannot exit and
    be replaced by another pid while runc, their parent, is alive and unreaped.

    Then runc is let go on to reap them and exit by itself.  Killing runc at once would orphan
    the dead process to the container's PID 1, and a PID 1 that never waits (`sleep`, most
    apps) would keep it as a zombie for the container's life."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGSTOP)
        victims = set(_children(proc.pid)) | {files.read_int(pid_file) or 0}
        for pid in victims - {0}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGCONT)
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), REAP_GRACE)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


def _children(pid: int) -> list[int]:
    """pid's child processes (/proc/<pid>/task/<tid>/children over all its threads)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(p) for p in f.read().split()]
    return found


def _runc_failure(req: ExecRequest, tmp: str, code: int) -> str:
    """Why runc exited without starting the process.

    A StreamError (the kubelet's InternalError, like containerd's "OCI runtime exec failed")
    rather than runc's exit code as the process's: runc's 1 or 255 would read as the command's
    own exit status, and `kubectl exec` would print "command terminated with exit code 1" for a
    command that never ran.  (runc also printed the error on its stderr, which the client may
    already have received on stderr or the tty, as it would from CRI-O.)"""
    reason = conmon.runc_error(tmp) or f"runc exec exited with status {code}"
    return f"exec in {req.container_id} failed: {reason}"
