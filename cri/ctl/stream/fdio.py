"""Local file descriptors from asyncio without changing their flags: stdin and stdout are
shared with the shell, so O_NONBLOCK (which applies to the whole open file) is off limits."""
from __future__ import annotations

import asyncio
import errno
import os
import signal

CHUNK = 32 * 1024
# Signals that end a session the way Ctrl-C does, so every finally (the terminal's mode) runs.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


async def read(fd: int, n: int = CHUNK) -> bytes:
    """The next chunk; b"" at EOF.  Waits for readiness in the loop (pipes, sockets,
    terminals); epoll refuses regular files, which never block, so those are read directly."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    try:
        loop.add_reader(fd, _resolve, ready)
    except PermissionError:
        return os.read(fd, n)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    try:
        return os.read(fd, n)
    except OSError as err:          # EIO: the terminal went away
        if err.errno == errno.EIO:
            return b""
        raise


def _resolve(ready: asyncio.Future) -> None:
    if not ready.done():
        ready.set_result(None)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def write(fd: int, data: bytes) -> None:
    """All of data, on a worker thread so a slow reader of our stdout never stalls the session."""
    await asyncio.get_running_loop().run_in_executor(None, _write_all, fd, data)


def this_task() -> asyncio.Task:
    """The task running the caller: a session runs in asyncio.run's main task."""
    task = asyncio.current_task()
    assert task is not None, "called from a coroutine run by asyncio"
    return task


class Signals:
    """While active, STOP_SIGNALS cancel ``task``; ``received`` says which one came."""

    def __init__(self, task: asyncio.Task, signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.task, self.received, self.signals = task, 0, signals

    def _stop(self, signum: int) -> None:
        self.received = signum
        self.task.cancel()

    def __enter__(self) -> "Signals":
        loop = asyncio.get_running_loop()
        for sig in self.signals:
            loop.add_signal_handler(sig, self._stop, sig)
        return self

    def __exit__(self, *exc) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.signals:
            loop.remove_signal_handler(sig)
