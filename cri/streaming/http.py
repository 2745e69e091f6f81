"""The streaming server's HTTP/1.1 side (h11): routes, tokens, protocol negotiation, upgrade.

One request per connection: ``GET|POST /exec|attach|portforward/<token>`` that upgrades to
SPDY/3.1 (``Upgrade: SPDY/3.1`` + ``X-Stream-Protocol-Version``, as client-go and the
kubelet's proxy send it) or to a WebSocket (``Sec-WebSocket-Protocol``).  Anything else gets
an HTTP error and the connection is closed; the listener keeps serving.

Negotiation follows apimachinery: the first protocol the client offers that we support wins;
SPDY without a version header is 400, without a common one 403 listing ours in
``X-Accepted-Stream-Protocol-Versions``; a WebSocket without a common protocol is 403 (as
golang.org/x/net/websocket answers a failed handshake).  A WebSocket that names no protocol
gets the oldest, unversioned one, as wsstream allows.

After the 101, the bytes h11 read past the request head belong to the new protocol and are
handed on.  A session idle in both directions for ``idle_timeout`` is closed.
"""
from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

import h11
from wsproto.utilities import generate_accept_token

from . import portforward, remotecommand
from .spdy_session import SpdySession
from .tokens import TokenCache
from .websocket import V1, ChannelConnection

log = logging.getLogger(__name__)

ROUTE = re.compile(r"^/(exec|attach|portforward)/([A-Za-z0-9_-]+)$")
READ_SIZE = 64 << 10
MAX_BODY = 64 << 10             # upgrade requests have none; anything more is not a client of ours
SPDY = "spdy/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
ACCEPTED_HEADER = "X-Accepted-Stream-Protocol-Versions"


@dataclass
class Settings:
    tokens: TokenCache
    idle_timeout: float = 4 * 3600.0
    creation_timeout: float = 30.0      # for the request head, and for the client's streams
    # Sessions open now by kind (exec, attach, portforward), from a valid token to the end:
    # changed on the loop's thread only, read (copied) by the metrics scrape.
    sessions: dict[str, int] = field(default_factory=dict)


class HttpError(Exception):
    """Answered as an HTTP response, after which the connection is closed."""

    def __init__(self, status: int, message: str, headers: tuple = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class _ClientGone(Exception):
    pass


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           settings: Settings) -> None:
    """One client connection, start to end; never raises (but is cancellable)."""
    conn = h11.Connection(h11.SERVER)
    idle = _Idle(settings.idle_timeout)
    try:
        request = await asyncio.wait_for(_read_request(conn, reader), settings.creation_timeout)
        await _route(conn, request, idle.reader(reader), idle.writer(writer), settings, idle)
    except HttpError as err:
        log.info("streaming: %s %s", err.status, err.message)
        await _respond(conn, writer, err)
    except h11.RemoteProtocolError as err:
        log.info("streaming: malformed request: %s", err)
        await _respond(conn, writer, HttpError(400, f"malformed request: {err}"))
    except (asyncio.TimeoutError, _ClientGone, ConnectionError):
        pass
    except asyncio.CancelledError:
        if not idle.expired:
            raise
        log.info("streaming: session idle for %.0fs; closed", settings.idle_timeout)
    except Exception:  # noqa: BLE001 - one broken session must not take the listener down
        log.exception("streaming: session failed")
    finally:
        idle.stop()
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5)


# -- the request ---------------------------------------------------------------------------------

async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request:
    """The request, once its (empty) body was read too: only then does h11 let us switch."""
    request, body = None, 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += len(event.data)
            if body > MAX_BODY:
                raise HttpError(413, "request body too large")
        elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            # h11 (server role) yields the Request before its body's end or a pause.
            assert request is not None
            return request
        elif isinstance(event, h11.ConnectionClosed):
            raise _ClientGone()


def _headers(request: h11.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.headers:
        out.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return out


def offered(headers: dict[str, list[str]], name: str) -> list[str]:
    """A list header's values in order, however the client split them over lines."""
    return [v.strip() for line in headers.get(name.lower(), []) for v in line.split(",") if v.strip()]


def negotiate(client: list[str], ours: tuple[str, ...]) -> Optional[str]:
    return next((p for p in client if p in ours), None)


async def _route(conn, request, reader, writer, settings: Settings, idle: "_Idle") -> None:
    path, _, query = request.target.decode("latin-1").partition("?")
    match = ROUTE.match(path)
    if match is None:
        raise HttpError(404, "404 page not found")
    if request.method not in (b"GET", b"POST"):
        raise HttpError(405, "405 method not allowed", (("Allow", "GET, POST"),))
    kind, token = match.groups()
    entry = settings.tokens.consume(token)
    if entry is None or entry[0].kind != kind:
        raise HttpError(404, "404 page not found")
    req, streams = entry
    headers = _headers(request)
    upgrade = [u.lower() for u in offered(headers, "upgrade")]
    settings.sessions[kind] = settings.sessions.get(kind, 0) + 1
    try:
        if "websocket" in upgrade:
            await _websocket(conn, headers, query, reader, writer, req, streams, idle)
        elif SPDY in upgrade:
            await _spdy(conn, headers, reader, writer, req, streams, settings, idle)
        else:
            raise HttpError(400, "unable to upgrade: missing upgrade headers in request")
    finally:
        settings.sessions[kind] -= 1


async def _switch(conn: h11.Connection, writer, headers: list[tuple[str, str]]) -> bytes:
    """101 Switching Protocols; what the client sent after its request."""
    writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=headers,
                                                     reason=b"Switching Protocols")))
    await writer.drain()
    return conn.trailing_data[0]


async def _respond(conn: h11.Connection, writer, err: HttpError) -> None:
    body = (err.message + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
               ("Connection", "close"), *err.headers]
    try:
        data = conn.send(h11.Response(status_code=err.status, headers=headers,
                                      reason=http.HTTPStatus(err.status).phrase.encode()))
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return              # too late for a response (h11 knows best): just close
    with contextlib.suppress(ConnectionError):
        writer.write(data)
        await writer.drain()


# -- SPDY ----------------------------------------------------------------------------------------

async def _spdy(conn, headers, reader, writer, req, streams, settings: Settings, idle) -> None:
    ours = portforward.SPDY_PROTOCOLS if req.kind == "portforward" else remotecommand.SPDY_PROTOCOLS
    client = offered(headers, PROTOCOL_HEADER)
    if not client:
        raise HttpError(400, f"unable to upgrade: {PROTOCOL_HEADER} is required")
    protocol = negotiate(client, ours)
    if protocol is None:
        raise HttpError(403, f"unable to upgrade: unable to negotiate protocol: client supports "
                             f"{client}, server accepts {list(ours)}",
                        tuple((ACCEPTED_HEADER, p) for p in ours))
    initial = await _switch(conn, writer, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                           (PROTOCOL_HEADER, protocol)])
    idle.start()
    session = SpdySession(reader, writer, server=True, initial=initial)
    await _run_spdy(session, protocol, req, streams, settings.creation_timeout)


async def _run_spdy(session: SpdySession, protocol: str, req, streams, creation_timeout: float) -> None:
    running = asyncio.create_task(session.run())
    try:
        if req.kind == "portforward":
            await portforward.serve_spdy(session, req, creation_timeout)
        else:
            await remotecommand.serve_spdy(session, protocol, req, streams, creation_timeout)
    finally:
        await session.close()
        await asyncio.gather(running, return_exceptions=True)


# -- WebSocket -----------------------------------------------------------------------------------

async def _websocket(conn, headers, query: str, reader, writer, req, streams, idle) -> None:
    if offered(headers, "sec-websocket-version") != ["13"]:
        raise HttpError(426, "unsupported WebSocket version", (("Sec-WebSocket-Version", "13"),))
    key = offered(headers, "sec-websocket-key")
    if len(key) != 1:
        raise HttpError(400, "missing Sec-WebSocket-Key")
    ports = _ports(query, req) if req.kind == "portforward" else ()
    ours = portforward.WEBSOCKET_PROTOCOLS if req.kind == "portforward" else remotecommand.WEBSOCKET_PROTOCOLS
    client = offered(headers, "sec-websocket-protocol")
    protocol = negotiate(client, ours) if client else ""
    if protocol is None:
        raise HttpError(403, f"requested protocol(s) are not supported: {client}; supports {list(ours)}")
    reply = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
             ("Sec-WebSocket-Accept", generate_accept_token(key[0].encode()).decode())]
    if protocol:
        reply.append(("Sec-WebSocket-Protocol", protocol))
    initial = await _switch(conn, writer, reply)
    idle.start()
    ws = ChannelConnection(reader, writer, protocol or V1, initial=initial)
    try:
        if req.kind == "portforward":
            await portforward.serve_websocket(ws, req, ports)
        else:
            await remotecommand.serve_websocket(ws, req, streams)
    except asyncio.CancelledError:
        await ws.close(1001, "going away", grace=0)     # shutdown or idle: no waiting on the peer
        raise
    finally:
        await ws.close()


def _ports(query: str, req) -> tuple[int, ...]:
    """The URL's ``port`` (the kubelet's name) or ``ports`` (the API's) values, else the RPC's."""
    values = [v for name, v in urllib.parse.parse_qsl(query) if name in ("port", "ports")]
    given = []
    for text in (p.strip() for v in values for p in v.split(",")):
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise HttpError(400, f"invalid port {text!r}")
        given.append(int(text))
    ports = tuple(given) or tuple(req.ports)
    if not ports:
        raise HttpError(400, "at least one port must be specified")
    return ports


# -- idle sessions -------------------------------------------------------------------------------

class _Idle:
    """Cancels the session task once nothing was read or written for ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.expired = False
        self.last = time.monotonic()
        self._watch: Optional[asyncio.Task] = None

    def reader(self, reader):
        return _Watched(reader, self)

    def writer(self, writer):
        return _Watched(writer, self)

    def start(self) -> None:
        session = asyncio.current_task()
        assert session is not None, "started from the session's task"
        self._watch = asyncio.create_task(self._run(session))

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    async def _run(self, session: asyncio.Task) -> None:
        while True:
            left = self.last + self.timeout - time.monotonic()
            if left <= 0:
                self.expired = True
                session.cancel()
                return
            await asyncio.sleep(left)


class _Watched:
    """A StreamReader/StreamWriter whose read()/write() count as activity."""

    def __init__(self, inner, idle: _Idle) -> None:
        self._inner = inner
        self._idle = idle

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def read(self, n: int = -1) -> bytes:
        data = await self._inner.read(n)
        self._idle.last = time.monotonic()
        return data

    def write(self, data) -> None:
        self._idle.last = time.monotonic()
        self._inner.write(data)
