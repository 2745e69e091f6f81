"""Waiting on raw file descriptors from the asyncio loop (ptys, pipes, SEQPACKET sockets).

asyncio's pipe transports would own and close the fds; the back ends keep them in their own
undo stacks instead, so they wait for readiness with add_reader/add_writer and do the I/O
themselves."""
from __future__ import annotations

import asyncio
import errno
import os

CHUNK = 64 << 10


async def wait_readable(fd: int, timeout: float | None = None) -> bool:
    """True once fd is readable (data, EOF or an error to read), False when timeout passed."""
    return await _wait(fd, timeout, write=False)


async def wait_writable(fd: int) -> None:
    await _wait(fd, None, write=True)


async def _wait(fd: int, timeout: float | None, write: bool) -> bool:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    add(fd, _resolve, ready)
    try:
        return await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        remove(fd)


def _resolve(ready: asyncio.Future) -> None:
    if not ready.done():
        ready.set_result(True)


def read_nonblocking(fd: int) -> bytes | None:
    """What fd holds now: None when it would block, b"" at EOF.  EIO is a pty master's EOF (no
    slave left open)."""
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return None
    except OSError as e:
        if e.errno == errno.EIO:
            return b""
        raise


async def write_all(fd: int, data: bytes) -> None:
    """Write every byte to a non-blocking fd, waiting while it is full (EPIPE propagates)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await wait_writable(fd)
