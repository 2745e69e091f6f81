"""The Kubernetes port-forward protocol over SPDY, client side.

One SPDY session carries every forwarded connection.  For each accepted local connection:
an ``error`` stream (our side closed at once; the server writes a failure there as text),
then a ``data`` stream; both carry ``port`` (the pod's) and ``requestid``, which counts up
from 0 across the session so the server can pair them."""
from __future__ import annotations

import asyncio
import functools
import socket
import signal
import sys
from dataclasses import dataclass

from cri.streaming.spdy_session import SpdySession

from . import StreamClientError, fdio
from .upgrade import PORTFORWARD, upgrade

ERROR_WAIT = 5.0            # after the data ends, how long the error stream may take to end


@dataclass(frozen=True)
class PortSpec:
    local: int              # 0: any free port
    remote: int


def parse_port(spec: str) -> PortSpec:
    """kubectl's forms: ``8080:80``, ``80`` (same port locally), ``:80`` (any free port)."""
    local, sep, remote = spec.rpartition(":")
    try:
        r = int(remote)
        loc = (0 if local == "" else int(local)) if sep else r
    except ValueError:
        raise StreamClientError(f"invalid port {spec!r}: want [LOCAL:]REMOTE") from None
    if not 0 < r < 65536 or not 0 <= loc < 65536:
        raise StreamClientError(f"invalid port {spec!r}: ports are 1-65535 (local 0: any)")
    return PortSpec(loc, r)


class Forwarder:
    """Listens for each PortSpec and forwards every connection over ``session``."""

    def __init__(self, session, out=sys.stdout, err=sys.stderr) -> None:
        self.session, self.out, self.err = session, out, err
        self.servers: list[asyncio.Server] = []
        self.bound: list[tuple[str, int, int]] = []      # (host, local port, remote port)
        self._next_id = 0
        self._handlers: set[asyncio.Task] = set()

    async def listen(self, spec: PortSpec) -> int:
        """Listen on 127.0.0.1 and, where the host has IPv6, [::1]; the local port."""
        port, failures = spec.local, []
        for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
            try:
                server = await asyncio.start_server(
                    functools.partial(self._accept, spec=spec), host, port, family=family,
                    reuse_address=True)
            except OSError as err:
                failures.append(f"{host}: {err.strerror or err}")
                continue
            port = server.sockets[0].getsockname()[1]
            spec = PortSpec(port, spec.remote)
            self.servers.append(server)
            self.bound.append((host, port, spec.remote))
            shown = f"[{host}]" if ":" in host else host
            print(f"Forwarding from {shown}:{port} -> {spec.remote}", file=self.out, flush=True)
        if len(failures) == 2:
            raise StreamClientError(f"unable to listen on port {spec.local}: {'; '.join(failures)}")
        return port

    def _accept(self, reader, writer, spec: PortSpec) -> None:
        task = asyncio.create_task(self.forward(reader, writer, spec))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def request_id(self) -> int:
        rid, self._next_id = self._next_id, self._next_id + 1
        return rid

    async def forward(self, reader, writer, spec: PortSpec) -> None:
        """One local connection, to its end."""
        print(f"Handling connection for {spec.local}", file=self.out, flush=True)
        headers = {"port": str(spec.remote), "requestid": str(self.request_id())}
        streams = []
        try:
            error = await self.session.open_stream({"streamtype": "error", **headers})
            streams.append(error)
            await error.close()             # we never write on it
            data = await self.session.open_stream({"streamtype": "data", **headers})
            streams.append(data)
            errors = asyncio.create_task(_read_all(error))
            await _pipe(reader, writer, data)
            try:
                message = await asyncio.wait_for(errors, ERROR_WAIT)
            except TimeoutError:
                message = b""
            if message:
                print(f"podwire-ctl port-forward: an error occurred forwarding {spec.local} -> "
                      f"{spec.remote}: {message.decode(errors='replace').strip()}", file=self.err, flush=True)
        except (ConnectionError, TimeoutError, OSError) as err:
            print(f"podwire-ctl port-forward: forwarding {spec.local} -> {spec.remote}: "
                  f"{err or type(err).__name__}", file=self.err, flush=True)
        finally:
            for stream in streams:
                stream.reset()
            writer.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


async def _read_all(stream) -> bytes:
    chunks = []
    while data := await stream.read():
        chunks.append(data)
    return b"".join(chunks)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream) -> None:
    """Both ways until the pod's side ends (as client-go: remote EOF ends the connection;
    local EOF only half-closes the stream so the answer can still come)."""
    async def up():
        while data := await reader.read(fdio.CHUNK):
            await stream.write(data)
        await stream.close()
    sending = asyncio.create_task(up())
    try:
        while data := await stream.read():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
            await writer.drain()
    finally:
        if not sending.done():
            sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)


async def run(url: str, specs: list[PortSpec], out=sys.stdout, err=sys.stderr) -> tuple[int, str]:
    """Forward until a signal (exit 0) or until the session is lost (exit 1)."""
    up = await upgrade(url, PORTFORWARD)
    session = SpdySession(up.reader, up.writer, server=False, initial=up.initial)
    reading = asyncio.create_task(session.run())
    forwarder = Forwarder(session, out, err)
    # Ctrl-C is how a forward is meant to end (kubectl and crictl exit 0 on it).
    signals = fdio.Signals(fdio.this_task(), fdio.STOP_SIGNALS + (signal.SIGINT,))
    try:
        with signals:
            for spec in specs:
                await forwarder.listen(spec)
            await session.closed.wait()
        return 1, "lost connection to the pod"
    except asyncio.CancelledError:
        if signals.received:
            return 0, ""
        raise
    finally:
        await forwarder.close()
        await session.close()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
