"""The HTTP/1.1 request that turns a streaming URL into a raw connection for SPDY/3.1.

As client-go's SPDY round tripper: POST, ``Upgrade: SPDY/3.1``, one
``X-Stream-Protocol-Version`` per protocol we speak, best first; the server answers 101 with
the one it chose.  Anything else is an error whose body (the server's reason) is shown."""
from __future__ import annotations

import asyncio
import http
import ssl
import urllib.parse
from dataclasses import dataclass

import h11

from . import StreamClientError

REMOTECOMMAND = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
PORTFORWARD = ("portforward.k8s.io",)
HANDSHAKE_TIMEOUT = 30.0


class UpgradeError(StreamClientError):
    def __init__(self, status: int, reason: str, body: bytes) -> None:
        self.status, self.reason, self.body = status, reason, body
        text = body.decode(errors="replace").strip()
        super().__init__(f"upgrade refused: {status} {reason}" + (f": {text}" if text else ""))


@dataclass
class Upgraded:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: str           # the one the server chose
    initial: bytes          # bytes that arrived behind the 101, the start of the SPDY stream


def request_bytes(url: str, protocols: tuple[str, ...]) -> tuple[h11.Connection, bytes]:
    """The upgrade request for ``url``, and the h11 connection that will read the answer."""
    u = urllib.parse.urlsplit(url)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    headers = [("Host", u.netloc), ("User-Agent", "podwire-ctl"), ("Content-Length", "0"),
               ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
               *(("X-Stream-Protocol-Version", p) for p in protocols)]
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(h11.Request(method="POST", target=target, headers=headers))
    return conn, data + conn.send(h11.EndOfMessage())


async def upgrade(url: str, protocols: tuple[str, ...], timeout: float = HANDSHAKE_TIMEOUT) -> Upgraded:
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise StreamClientError(f"cannot stream to {url!r}: want an http:// or https:// URL")
    context = None
    if u.scheme == "https":             # crictl does not verify the streaming server either
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    conn, request = request_bytes(url, protocols)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                u.hostname, u.port or (443 if context else 80), ssl=context)
            try:
                writer.write(request)
                protocol = await _response(conn, reader, protocols)
            except BaseException:
                writer.close()
                raise
    except TimeoutError:
        raise StreamClientError(f"no answer from {u.netloc} within {timeout:g} s") from None
    except OSError as err:
        raise StreamClientError(f"cannot connect to {u.netloc}: {err.strerror or err}") from None
    data, _ = conn.trailing_data
    return Upgraded(reader, writer, protocol, bytes(data))


async def _response(conn: h11.Connection, reader: asyncio.StreamReader,
                    protocols: tuple[str, ...]) -> str:
    """The chosen protocol from a 101; UpgradeError with the body for any other answer."""
    refused, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            return _chosen(event, protocols)
        elif isinstance(event, h11.Response):
            refused = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            if refused is None:
                raise StreamClientError("the streaming server closed the connection without answering")
            raise UpgradeError(refused.status_code, _reason(refused), body)


def _reason(response) -> str:
    if response.reason:
        return response.reason.decode(errors="replace")
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def _chosen(response, protocols: tuple[str, ...]) -> str:
    headers = {k.decode().lower(): v.decode() for k, v in response.headers}
    if headers.get("upgrade", "").lower() != "spdy/3.1":
        raise StreamClientError(f"the server upgraded to {headers.get('upgrade')!r}, not SPDY/3.1")
    protocol = headers.get("x-stream-protocol-version", "")
    if not protocol:                    # a server from before version negotiation: the oldest
        return protocols[-1]
    if protocol not in protocols:
        raise StreamClientError(f"the server chose protocol {protocol!r}; we offered {', '.join(protocols)}")
    return protocol
