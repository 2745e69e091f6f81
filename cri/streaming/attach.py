"""Streaming Attach: the container's stdio through its conmon's attach socket.

conmon (started with the container, cri/monitor/conmon.py) listens on a SOCK_SEQPACKET socket
<attach_dir>/<id>/attach.  Each message it sends is one byte naming the stream (2 stdout,
3 stderr) and the payload; what we send is raw stdin.  Our SHUT_WR makes conmon close the
container's stdin unless it was started with --leave-stdin-open (the container's stdin_once
is false).  Terminal resizes go to the bundle's ctl FIFO, which conmon reads.

Only conmon's socket and FIFO are needed, so attach works the same after the shim restarted."""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket

from cri.streaming import ByteSink, StreamError, StreamIO
from cri.streaming.requests import AttachRequest

# conmon reads one message into a 32 KiB buffer (CONN_SOCK_BUF_SIZE) and drops the rest of a
# longer one; its own messages are at most 1 + 8192 bytes (STDIO_BUF_SIZE).
STDIN_MESSAGE = 8192
RECV_SIZE = 32 << 10
STDOUT, STDERR = 2, 3
RESIZE_EVENT = 1      # conmon's ctl message type: "1 <height> <width>\n"


async def run_attach(req: AttachRequest, io: StreamIO) -> None:
    """Copy between io and the container until conmon closes the socket (the container
    exited) or until cancelled (the client went away); then close io's sinks."""
    sock = await _connect(req)
    helpers: list[asyncio.Task] = []
    try:
        if req.stdin and io.stdin is not None:
            helpers.append(asyncio.create_task(_copy_in(io, sock)))
        if req.tty:
            helpers.append(asyncio.create_task(_resize(io, req.ctl_fifo)))
        await _copy_out(sock, {STDOUT: io.stdout, STDERR: io.stderr})
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        sock.close()
    for sink in (io.stdout, io.stderr):
        if sink is not None:
            await sink.close()


async def _connect(req: AttachRequest) -> socket.socket:
    """A connected, non-blocking socket to conmon.  Through /proc/self/fd/<dir>/attach, as conmon
    binds it: the full path may be longer than a unix socket address allows."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        parent = os.open(os.path.dirname(req.attach_socket), os.O_PATH | os.O_CLOEXEC)
        try:
            address = f"/proc/self/fd/{parent}/{os.path.basename(req.attach_socket)}"
            await asyncio.get_running_loop().sock_connect(sock, address)
        finally:
            os.close(parent)
    except OSError as e:
        sock.close()
        if e.errno in (errno.ENOENT, errno.ECONNREFUSED):   # no conmon: the container exited
            raise StreamError(f"attach to {req.container_id}: the container is not running") from None
        raise StreamError(f"attach to {req.container_id}: {os.strerror(e.errno) if e.errno else e}") from None
    except BaseException:
        sock.close()
        raise
    return sock


async def _copy_out(sock: socket.socket, sinks: dict[int, ByteSink | None]) -> None:
    """conmon's messages to the sinks (dropped where the client has none) until it closes."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            message = await loop.sock_recv(sock, RECV_SIZE)
        except ConnectionResetError:
            return
        if not message:
            return
        sink = sinks.get(message[0])
        if sink is not None and len(message) > 1:
            await sink.write(message[1:])


async def _copy_in(io: StreamIO, sock: socket.socket) -> None:
    """Client stdin to conmon; at its EOF, SHUT_WR (conmon then closes the container's stdin if
    the container is stdin_once).  Output keeps flowing after that."""
    loop = asyncio.get_running_loop()
    assert io.stdin is not None
    try:
        while data := await io.stdin.read():
            for start in range(0, len(data), STDIN_MESSAGE):
                await loop.sock_sendall(sock, data[start:start + STDIN_MESSAGE])
        sock.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass            # conmon is gone; _copy_out sees the end


async def _resize(io: StreamIO, ctl_fifo: str) -> None:
    while True:
        width, height = await io.resize.get()
        _send_control(ctl_fifo, f"{RESIZE_EVENT} {height} {width}\n".encode())


def _send_control(ctl_fifo: str, message: bytes) -> None:
    """One line to conmon's ctl FIFO; silently nothing when conmon no longer reads it (the
    session ends with the container anyway).  Non-blocking: an open FIFO without a reader would
    block, and a short line is written whole or not at all."""
    try:
        fd = os.open(ctl_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT):
            return
        raise
    try:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(fd, message)
    finally:
        os.close(fd)
