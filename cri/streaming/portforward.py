"""Port forwarding on either transport (the kubelet's portforward server).

- SPDY ``portforward.k8s.io``: per forwarded connection the client opens an ``error`` and a
  ``data`` stream carrying the same ``requestid`` and the pod's ``port``; once both are there
  (within 30 s) we dial the port and copy.  A failure is written as text on ``error``.
- WebSocket (``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io``, ``portforward.k8s.io``): one
  connection per port named in the URL (``?port=``) or, failing that, in the RPC; port i has
  data channel 2i and error channel 2i+1, and the first message on each is the port, two bytes
  little-endian.

Connections are made by PodDialer inside the pod's network namespace (the shim never enters
one itself); nothing runs in the container.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Optional

from . import ByteSink, ByteSource, StreamError
from .dial import PodDialer
from .requests import PortForwardRequest
from .websocket import V4, V4_BASE64, ChannelConnection

if TYPE_CHECKING:
    from .spdy_session import SpdyStream

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
SPDY_PROTOCOLS = (PROTOCOL,)
WEBSOCKET_PROTOCOLS = (V4, V4_BASE64, PROTOCOL)
PAIR_TIMEOUT = 30.0
CHUNK = 32 << 10


async def copy_both_ways(sock: socket.socket, source: ByteSource, sink: ByteSink,
                         *, half_close: bool = True) -> None:
    """client -> pod and pod -> client until both directions ended, each end's EOF passed on
    as a half-close; without half_close (a transport that cannot say EOF on one channel) the
    pod's EOF ends the connection.  OSError if the pod's side failed."""
    loop = asyncio.get_running_loop()

    async def upstream() -> None:
        while data := await source.read():
            await loop.sock_sendall(sock, data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    async def downstream() -> None:
        while data := await loop.sock_recv(sock, CHUNK):
            await sink.write(data)
        await sink.close()

    tasks = [asyncio.create_task(downstream()), asyncio.create_task(upstream())]
    try:
        await (asyncio.gather(*tasks) if half_close else tasks[0])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def forward(dialer: PodDialer, port: int, source: ByteSource, sink: ByteSink,
                  *, half_close: bool = True) -> None:
    sock = await dialer.connect(port)
    try:
        await copy_both_ways(sock, source, sink, half_close=half_close)
    except OSError as err:
        raise StreamError(f"connection to port {port} failed: {err.strerror or err}") from None
    finally:
        sock.close()


def failure_text(req: PortForwardRequest, port, err: Exception) -> bytes:
    # The kubelet's wording (its pod name is our sandbox id; the uid it never knows).
    return f"error forwarding port {port} to pod {req.pod_id}, uid : {err}".encode()


# -- SPDY ----------------------------------------------------------------------------------------

class _Pair:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.error: Optional[SpdyStream] = None
        self.data: Optional[SpdyStream] = None
        self.timer: Optional[asyncio.TimerHandle] = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


async def serve_spdy(session, req: PortForwardRequest, pair_timeout: float = PAIR_TIMEOUT) -> None:
    dialer = PodDialer(req.netns)
    pairs: dict[str, _Pair] = {}
    tasks: set[asyncio.Task] = set()

    def start(task_coro) -> None:
        task = asyncio.create_task(task_coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def expire(pair: _Pair) -> None:
        if pairs.get(pair.request_id) is pair:
            del pairs[pair.request_id]
            start(_fail_pair(pair, "timed out waiting for the client to create the "
                             f"{'data' if pair.data is None else 'error'} stream"))
    try:
        while (stream := await session.accept_stream()) is not None:
            kind = stream.headers.get("streamtype", "")
            if kind not in ("error", "data"):
                log.info("port-forward: unexpected stream type %r; resetting it", kind)
                stream.reset()
                continue
            rid = _request_id(stream, kind)
            pair = pairs.get(rid)
            if pair is None:
                pair = pairs[rid] = _Pair(rid)
                pair.timer = asyncio.get_running_loop().call_later(pair_timeout, expire, pair)
            if getattr(pair, kind) is not None:
                log.info("port-forward: a second %s stream for request %s; resetting it", kind, rid)
                stream.reset()
                continue
            setattr(pair, kind, stream)
            if pair.error is not None and pair.data is not None:
                del pairs[rid]
                pair.cancel_timer()
                start(_forward_pair(dialer, req, pair.data, pair.error))
    finally:
        for pair in pairs.values():
            pair.cancel_timer()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dialer.close()


def _request_id(stream, kind: str) -> str:
    rid = stream.headers.get("requestid", "")
    if rid:
        return rid
    # Clients older than the header (as the kubelet guesses): a connection's error and data
    # streams are consecutive client stream ids, error first.
    return str(stream.id if kind == "error" else stream.id - 2)


async def _forward_pair(dialer: PodDialer, req: PortForwardRequest, data: SpdyStream,
                        error: SpdyStream) -> None:
    header = data.headers.get("port", "")
    try:
        try:
            port = int(header)
        except ValueError:
            raise StreamError(f"invalid port {header!r}") from None
        await forward(dialer, port, data, data)
    except StreamError as err:
        log.info("port-forward %s: %s", req.pod_id, err)
        with contextlib.suppress(ConnectionError):
            await error.write(failure_text(req, header, err))
    finally:
        for stream in (data, error):
            await stream.close()


async def _fail_pair(pair: _Pair, text: str) -> None:
    log.info("port-forward request %s: %s", pair.request_id, text)
    if pair.error is not None:
        with contextlib.suppress(ConnectionError):
            await pair.error.write(text.encode())
    for stream in (pair.error, pair.data):
        if stream is not None:
            stream.reset()


# -- WebSocket -----------------------------------------------------------------------------------

async def serve_websocket(conn: ChannelConnection, req: PortForwardRequest, ports: tuple[int, ...]) -> None:
    sources = [conn.source(2 * i) for i in range(len(ports))]
    conn.start()
    dialer = PodDialer(req.netns)
    tasks = [asyncio.create_task(_forward_channel(conn, dialer, req, i, port, sources[i]))
             for i, port in enumerate(ports)]
    every = asyncio.gather(*tasks, return_exceptions=True)
    gone = asyncio.create_task(conn.closed.wait())
    ends: set[asyncio.Future] = {every, gone}
    try:
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        every.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dialer.close()


async def _forward_channel(conn: ChannelConnection, dialer: PodDialer, req: PortForwardRequest,
                           index: int, port: int, source: ByteSource) -> None:
    data, error = conn.sink(2 * index), conn.sink(2 * index + 1)
    prefix = port.to_bytes(2, "little")
    try:
        await data.write(prefix)
        await error.write(prefix)
        # v4 has no close signal: the pod's EOF can only be told by ending the connection.
        await forward(dialer, port, source, data, half_close=False)
    except StreamError as err:
        log.info("port-forward %s: %s", req.pod_id, err)
        with contextlib.suppress(ConnectionError):
            await error.write(failure_text(req, port, err))
    except ConnectionError:
        pass                    # the client went away
    finally:
        await data.close()
        await error.close()
