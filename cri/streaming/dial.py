"""Port-forward's connections: TCP to localhost:<port> inside a pod's network namespace.

The shim is multi-threaded (gRPC, the streaming loop), and setns() changes only the calling
thread, which then serves other work in the wrong namespace.  So the shim never enters a netns:
one dialer process per port-forward session (netns_dialer.py) enters it in its single-threaded
main, connects on request and hands each connected socket back over a unix socketpair
(SCM_RIGHTS).  A socket keeps the namespace it was made in, so the shim then uses it as its own.

Wire (SOCK_SEQPACKET, one message each): the dialer first says b"ready" or b"error <text>";
then request b"<id> <port>" -> reply b"<id> ok" with one fd, or b"<id> err <text>".  Ids let
concurrent connects share the one dialer (a slow connect does not hold up the others)."""
from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import socket
import subprocess
import sys

from cri.streaming import StreamError
from cri.streaming.fdio import wait_readable, wait_writable

CONNECT_TIMEOUT = 10.0      # per address; a full listen backlog drops SYNs instead of refusing
START_TIMEOUT = 10.0        # the dialer process to enter the netns and say ready
STOP_TIMEOUT = 5.0          # the dialer exits on EOF of its socket; then it is killed
MESSAGE = 4096


async def connect_localhost(port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A non-blocking TCP socket connected to 127.0.0.1:port or, if that fails, [::1]:port (the
    order containerd dials "localhost" in); OSError naming both failures otherwise."""
    try:
        return await _connect(socket.AF_INET, ("127.0.0.1", port), timeout)
    except OSError as v4:
        try:
            return await _connect(socket.AF_INET6, ("::1", port), timeout)
        except OSError as v6:
            raise OSError(v4.errno, f"IPv4: {_reason(v4)}; IPv6: {_reason(v6)}") from None


async def _connect(family: int, address: tuple, timeout: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        try:
            # Numeric addresses: sock_connect resolves nothing, so no executor thread either.
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, address), timeout)
        except TimeoutError:
            raise OSError(errno.ETIMEDOUT, f"no answer in {timeout:g}s") from None
        except OSError as e:
            if e.errno:     # asyncio's text is "Connect call failed <address>": say why instead
                raise OSError(e.errno, os.strerror(e.errno)) from None
            raise
    except BaseException:
        sock.close()
        raise
    return sock


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


class PodDialer:
    """Connections to localhost ports inside one netns ("" = the shim's own) for one session.

    async with PodDialer(netns) as dialer: sock = await dialer.connect(port)"""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self._reader: asyncio.Task | None = None
        self._started = asyncio.Lock()
        self._sending = asyncio.Lock()     # one writability waiter per fd (add_writer replaces)
        self._closed = False

    async def __aenter__(self) -> "PodDialer":
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self, port: int) -> socket.socket:
        """A connected, non-blocking socket to localhost:port in the netns; StreamError saying
        why not (containerd's wording)."""
        if not 0 < port < 65536:
            raise StreamError(f"invalid port {port}")
        try:
            if not self.netns:
                return await connect_localhost(port)
            await self._start()
            return await self._ask(port)
        except OSError as e:
            where = self.netns or "host"
            raise StreamError(f"failed to connect to localhost:{port} inside namespace "
                              f"{where!r}: {_reason(e)}") from None

    async def close(self) -> None:
        """Stop the dialer (it exits when its socket closes) and fail pending connects."""
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        self._fail_pending(StreamError("port-forward session closed"))
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            await _stop(self._proc)
            self._proc = None

    # -- the dialer process ------------------------------------------------------------------

    async def _start(self) -> None:
        """Start the dialer once (no-op for the host netns) and wait for it to be in the netns."""
        if not self.netns:
            return
        async with self._started:
            if self._closed:
                raise StreamError("port-forward session closed")
            if self._proc is not None:
                return
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            self._sock = ours
            try:
                ours.setblocking(False)
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "cri.streaming.netns_dialer", self.netns, str(theirs.fileno()),
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True)
            finally:
                theirs.close()
            try:
                hello = await asyncio.wait_for(self._recv(), START_TIMEOUT)
            except TimeoutError:
                raise StreamError(f"cannot enter network namespace {self.netns}: "
                                  f"the dialer did not start in {START_TIMEOUT:g}s") from None
            if hello is None or hello[0] != b"ready":
                text = b"dialer exited" if hello is None else hello[0]
                raise StreamError(f"cannot enter network namespace {self.netns}: "
                                  f"{text.decode(errors='replace').removeprefix('error ')}")
            self._reader = asyncio.create_task(self._read_replies())

    async def _ask(self, port: int) -> socket.socket:
        rid = next(self._ids)
        reply = asyncio.get_running_loop().create_future()
        self._pending[rid] = reply
        try:
            await self._send(f"{rid} {port}".encode())
            return await reply
        except asyncio.CancelledError:
            # Cancelled just after the socket arrived: nobody else will close it.
            if reply.done() and not reply.cancelled() and reply.exception() is None:
                reply.result().close()
            raise
        finally:
            self._pending.pop(rid, None)

    async def _send(self, message: bytes) -> None:
        assert self._sock is not None
        async with self._sending:
            while True:
                try:
                    self._sock.send(message)
                    return
                except BlockingIOError:
                    await wait_writable(self._sock.fileno())

    async def _recv(self) -> tuple[bytes, list[int]] | None:
        """The next message and the fds it carried; None at EOF (the dialer died)."""
        assert self._sock is not None
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._sock, MESSAGE, 1, socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                await wait_readable(self._sock.fileno())
                continue
            return (data, fds) if data else None

    async def _read_replies(self) -> None:
        try:
            while (message := await self._recv()) is not None:
                self._deliver(*message)
        finally:
            self._fail_pending(OSError(errno.EPIPE, "the netns dialer exited"))

    def _deliver(self, data: bytes, fds: list[int]) -> None:
        rid, _, rest = data.partition(b" ")
        status, _, text = rest.partition(b" ")
        reply = self._pending.get(int(rid)) if rid.isdigit() else None
        if reply is None or reply.done():
            for fd in fds:
                os.close(fd)       # the asker gave up (cancelled)
            return
        if status == b"ok" and len(fds) == 1:
            reply.set_result(socket.socket(fileno=fds[0]))
            reply.result().setblocking(False)
            return
        for fd in fds:
            os.close(fd)
        reply.set_exception(OSError(errno.ECONNREFUSED, text.decode(errors="replace") or "no socket"))

    def _fail_pending(self, error: BaseException) -> None:
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(error)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """The dialer exits by itself once its socket is closed; kill it if it does not (or if we
    are cancelled meanwhile), and reap it either way."""
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        await _kill(proc)
    except asyncio.CancelledError:
        await _kill(proc)
        raise


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
