"""`python -m cri.streaming.netns_dialer <netns path> <fd>`: port-forward's dialer (dial.py).

Enters the network namespace first thing in its single-threaded main, where setns() is safe,
then serves connect requests on the SOCK_SEQPACKET socket <fd> until the shim closes it.  The
protocol is in dial.py's docstring."""
from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import sys
from collections.abc import Sequence

from cri.streaming.dial import MESSAGE, connect_localhost
from cri.streaming.fdio import wait_readable, wait_writable


CLONE_NEWNET = 0x40000000


def enter_netns(path: str) -> None:
    """setns() through libc: os.setns() is Python 3.12's."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)


async def serve(sock: socket.socket) -> None:
    """Answer requests until EOF; each connect runs as its own task, so they overlap."""
    tasks: set[asyncio.Task] = set()
    sending = asyncio.Lock()        # one writability waiter per fd (add_writer replaces)
    while True:
        try:
            request = sock.recv(MESSAGE)
        except BlockingIOError:
            await wait_readable(sock.fileno())
            continue
        if not request:
            break
        task = asyncio.create_task(answer(sock, request, sending))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for task in tasks:
        task.cancel()


async def answer(sock: socket.socket, request: bytes, sending: asyncio.Lock) -> None:
    rid, _, port = request.decode(errors="replace").partition(" ")
    try:
        conn = await connect_localhost(int(port))
    except (OSError, ValueError) as e:
        reply, fds = f"{rid} err {e.strerror if isinstance(e, OSError) else e}".encode(), []
    else:
        reply, fds = f"{rid} ok".encode(), [conn.fileno()]
    try:
        async with sending:
            await send(sock, reply, fds)
    except OSError:
        pass            # the shim went away: serve() sees EOF next
    finally:
        if fds:
            conn.close()    # the shim has its own copy once sent


async def send(sock: socket.socket, message: bytes, fds: Sequence[int] = ()) -> None:
    while True:
        try:
            socket.send_fds(sock, [message], list(fds))
            return
        except BlockingIOError:
            await wait_writable(sock.fileno())


def main(argv: list[str]) -> int:
    netns, fd = argv[0], int(argv[1])
    sock = socket.socket(fileno=fd)
    try:
        enter_netns(netns)
    except OSError as e:
        sock.send(f"error {e.strerror or e}".encode())
        return 1
    sock.send(b"ready")
    sock.setblocking(False)
    asyncio.run(serve(sock))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
