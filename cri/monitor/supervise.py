"""The monitor's loop: copy the container's output into the CRI log, serve the control socket,
reap the init as subreaper, then drain and record the exit."""
from __future__ import annotations

import errno
import os
import selectors
import signal
import time

from cri.monitor.control import ControlServer
from cri.monitor.create import Stdio
from cri.monitor.logfmt import LineEncoder
from cri.monitor.sink import LogSink

# After the init exits, how long to wait for the pipes' EOF.  With its own pid namespace every
# process of the container dies with the init, so EOF is immediate; with a shared or host pid
# namespace a background child may hold the pipe forever, so give up after this.
DRAIN_TIMEOUT = 2.0
READ_SIZE = 65536


class Exit:
    def __init__(self, status: int, finished_at: int) -> None:
        self.status = status              # raw wait status
        self.finished_at = finished_at    # ns since the epoch, when the init was reaped

    @property
    def exit_code(self) -> int:
        code = os.waitstatus_to_exitcode(self.status)
        return 128 - code if code < 0 else code

    @property
    def signal(self) -> int:
        code = os.waitstatus_to_exitcode(self.status)
        return -code if code < 0 else 0


class Supervisor:
    def __init__(self, init_pid: int, stdio: Stdio, sink: LogSink, control: ControlServer,
                 wakeup_fd: int) -> None:
        self.init_pid = init_pid
        self.stdio = stdio
        self.sink = sink
        self.control = control
        self.wakeup_fd = wakeup_fd
        self.encoders = {fd: LineEncoder(name) for name, fd in stdio.streams.items()}
        self.exit: Exit | None = None
        self.sel = selectors.DefaultSelector()

    def run(self) -> Exit:
        for fd in self.encoders:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, self._on_output)
        self.sel.register(self.wakeup_fd, selectors.EVENT_READ, self._on_signal)
        self.sel.register(self.control.fileno(), selectors.EVENT_READ, self._on_control)
        self._reap()  # the init may have exited before the loop started
        drain_until = None
        while self.exit is None or self.encoders:
            if self.exit is not None:
                drain_until = drain_until or time.monotonic() + DRAIN_TIMEOUT
                if time.monotonic() >= drain_until:
                    break
            timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
            for key, _ in self.sel.select(timeout):
                key.data(key.fd)
        self._finish()
        return self.exit

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: a pty whose slave side is closed = EOF
                raise
            data = b""
        if data:
            self.sink.write(self.encoders[fd].feed(data))
        else:
            self._close_stream(fd)

    def _close_stream(self, fd: int) -> None:
        self.sink.write(self.encoders.pop(fd).close())
        self.sel.unregister(fd)
        os.close(fd)

    def _on_signal(self, fd: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass
        self._reap()

    def _on_control(self, _fd: int) -> None:
        self.control.serve_one({"reopen": self.sink.reopen})

    def _reap(self) -> None:
        """Reap every child (as subreaper we also inherit the container's orphans)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid and self.exit is None:
                self.exit = Exit(status, time.time_ns())

    def _finish(self) -> None:
        """Drain deadline passed or all streams closed: flush partial lines, close everything."""
        for fd in list(self.encoders):
            self._close_stream(fd)
        if self.stdio.stdin_writer >= 0:
            os.close(self.stdio.stdin_writer)
        self.sel.close()


def install_sigchld_wakeup() -> int:
    """SIGCHLD wakes the selector through a pipe (signal.set_wakeup_fd); the read end."""
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    return r
