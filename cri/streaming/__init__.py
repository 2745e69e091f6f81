"""CRI streaming: the server behind Exec, Attach and PortForward.

The three RPCs (cri/rpc/exec.py, attach.py, port_forward.py) check the request, resolve
everything the session will need into a plain request object (requests.py) while they still
hold the shim's state, and store it under a single-use token (tokens.py); they answer with
``http://<address>/<exec|attach|portforward>/<token>``.  The client (the kubelet's proxy,
crictl, podwire-ctl) then upgrades an HTTP connection on that URL.

Layers, each a module, lowest first:

- ``spdy.py``: SPDY/3.1 frames and header blocks (sans-IO: bytes in, frames out).
- ``spdy_session.py``: an asyncio SPDY session (server or client role): streams with
  headers, read/write/half-close/reset, PING echo, GOAWAY.
- ``websocket.py``: the channel.k8s.io WebSocket framing (v4, v5, base64) over wsproto.
- ``http.py``: the asyncio HTTP/1.1 listener (h11): routes, token lookup, protocol
  negotiation, the upgrade; then hands the raw connection to SPDY or WebSocket.
- ``remotecommand.py`` / ``portforward.py``: the Kubernetes protocols on either transport:
  which streams/channels exist, the status object on the error stream, resize events.
- ``exec.py``, ``attach.py``, ``dial.py``: the back ends (runc exec under a pty or with
  pipes; conmon's attach socket and ctl FIFO; a TCP connection inside the pod's netns).
- ``server.py``: the asyncio loop on its own thread inside podwire-cri, started and stopped
  with the gRPC server.

The back ends see only ``StreamIO`` (below), never the transport, so exec/attach behave the
same over SPDY and WebSocket and are tested without either.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Optional, Protocol


class ByteSource(Protocol):
    async def read(self) -> bytes:
        """The next chunk; b"" at EOF (the client closed its stdin)."""


class ByteSink(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None:
        """EOF to the client (FIN on SPDY, the close signal on WebSocket v5)."""


@dataclass
class StreamIO:
    """A session's streams as the back end sees them; None = the client did not ask for it."""
    stdin: Optional[ByteSource] = None
    stdout: Optional[ByteSink] = None
    stderr: Optional[ByteSink] = None       # always None with a tty (stderr joins stdout)
    tty: bool = False
    # Terminal sizes as (width, height), in the order the client sent them.
    resize: "asyncio.Queue[tuple[int, int]]" = field(default_factory=asyncio.Queue)


class StreamError(Exception):
    """A session failed for a reason the client should read on the error stream (the
    kubelet's InternalError status), e.g. the container is gone or runc refused the exec."""
