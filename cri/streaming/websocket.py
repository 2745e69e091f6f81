"""The channel.k8s.io WebSocket framing (apimachinery's wsstream) over wsproto.

Every message is one channel byte followed by payload:

- binary protocols (``channel.k8s.io``, ``v4.channel.k8s.io``, ``v5.channel.k8s.io``): binary
  messages, the channel as a byte;
- base64 protocols (``base64.channel.k8s.io``, ``v4.base64.channel.k8s.io``): text messages, the
  channel as the character ``'0'+n`` and the payload base64-encoded;
- v5 only: the message ``[255, n]`` half-closes channel n (the client's stdin EOF; our stdout
  and stderr ending).

ChannelConnection owns the connection after the upgrade; the protocol layers above see only
per-channel ByteSource/ByteSink objects.  They ask for the channels they read before start():
a message on a channel nobody reads is dropped, as wsstream drops it.  Memory is bounded as in the SPDY session: each
readable channel queues a few chunks, and when one is full the read loop stops reading the
socket (TCP backpressure) until its consumer catches up.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Optional

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

log = logging.getLogger(__name__)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
BASE64 = "base64.channel.k8s.io"
V1 = "channel.k8s.io"
CLOSE_SIGNAL = 255
MAX_PAYLOAD = 32 << 10      # per message we send, like the SPDY side's DATA frames
QUEUE_CHUNKS = 64           # per readable channel; chunks are at most READ_SIZE
READ_SIZE = 64 << 10
CLOSE_TIMEOUT = 5.0         # for the peer's answer to our Close frame


def is_base64(protocol: str) -> bool:
    return "base64" in protocol


class ChannelSource:
    """What the client sends on one channel (ByteSource); b"" once it ended."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_CHUNKS)
        self._eof = False

    async def read(self) -> bytes:
        if self._eof and self._queue.empty():
            return b""
        data = await self._queue.get()
        if not data:
            self._eof = True
        return data

    async def _push(self, data: bytes) -> None:
        if data and not self._eof:
            await self._queue.put(data)

    def _end(self) -> None:
        """EOF to the reader without blocking the read loop (a full queue keeps its data: the
        reader sees it, then EOF)."""
        if self._eof:
            return
        self._eof = True
        try:
            self._queue.put_nowait(b"")
        except asyncio.QueueFull:
            pass            # read() sees _eof once it has drained the queue


class ChannelSink:
    """Our side of one channel (ByteSink)."""

    def __init__(self, conn: "ChannelConnection", channel: int) -> None:
        self._conn = conn
        self.channel = channel
        self.closed = False

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise BrokenPipeError(f"channel {self.channel} is closed for writing")
        await self._conn.send(self.channel, data)

    async def close(self) -> None:
        """The v5 close signal; older protocols cannot say it, so nothing is sent."""
        if self.closed:
            return
        self.closed = True
        if self._conn.protocol == V5:
            try:
                await self._conn.send_raw(bytes([CLOSE_SIGNAL, self.channel]))
            except ConnectionError:
                pass


class ChannelConnection:
    """An upgraded WebSocket speaking one channel.k8s.io protocol.  Start run() as a task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: str,
                 *, initial: bytes = b"") -> None:
        self.protocol = protocol
        self.base64 = is_base64(protocol)
        self.closed = asyncio.Event()       # the connection is gone (either side)
        self._reader = reader
        self._writer = writer
        self._ws = Connection(ConnectionType.SERVER)
        self._initial = initial
        self._sources: dict[int, ChannelSource] = {}
        self._task: Optional[asyncio.Task] = None
        self._message_channel: Optional[int] = None   # of the message being received
        self._pending_text = ""                         # base64 not yet a multiple of 4

    def source(self, channel: int) -> ChannelSource:
        """The client's data on channel; ask before start()."""
        return self._sources.setdefault(channel, ChannelSource())

    def start(self) -> None:
        """Start reading (once the protocol has asked for its channels)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    def sink(self, channel: int) -> ChannelSink:
        return ChannelSink(self, channel)

    # -- writing

    async def send(self, channel: int, data: bytes) -> None:
        """data on channel, in messages of at most MAX_PAYLOAD; an empty write still sends
        one (the kubelet's "connection established" message is exactly that)."""
        view = memoryview(data)
        start = 0
        while True:
            piece = bytes(view[start:start + MAX_PAYLOAD])
            if self.base64:
                await self._send(TextMessage(chr(ord("0") + channel) + base64.b64encode(piece).decode()))
            else:
                await self._send(BytesMessage(bytes([channel]) + piece))
            start += MAX_PAYLOAD
            if start >= len(view):
                return

    async def send_raw(self, payload: bytes) -> None:
        await self._send(BytesMessage(payload))

    async def _send(self, event) -> None:
        if self._ws.state != ConnectionState.OPEN or self._writer.is_closing():
            raise ConnectionResetError("WebSocket closed")
        self._writer.write(self._ws.send(event))
        await self._writer.drain()

    async def close(self, code: int = 1000, reason: str = "", grace: float = CLOSE_TIMEOUT) -> None:
        """Close frame, then the connection once the peer answered or ``grace`` passed (0:
        at once, for a server shutting down).  Idempotent."""
        if self._ws.state == ConnectionState.OPEN and not self._writer.is_closing():
            try:
                self._writer.write(self._ws.send(CloseConnection(code=code, reason=reason)))
                if self._task is not None and grace > 0:    # else nobody reads the answer
                    await asyncio.wait_for(self.closed.wait(), grace)
            except (ConnectionError, LocalProtocolError, asyncio.TimeoutError):
                pass
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), grace or 0.1)
        except asyncio.TimeoutError:
            self._writer.transport.abort()
        except (ConnectionError, OSError):
            pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- reading

    async def run(self) -> None:
        """The read loop: until the peer closes, the connection fails or close() is called."""
        try:
            data, self._initial = self._initial, b""
            while True:
                if data:
                    self._ws.receive_data(data)
                    if not await self._dispatch():
                        return
                data = await self._reader.read(READ_SIZE)
                if not data:
                    log.debug("WebSocket peer closed the connection")
                    return
        except (RemoteProtocolError, LocalProtocolError) as err:
            log.info("WebSocket peer broke the protocol: %s; closing", err)
        except OSError as err:
            log.debug("WebSocket connection lost: %s", err)
        finally:
            self.closed.set()
            for src in self._sources.values():
                src._end()

    async def _dispatch(self) -> bool:
        """Handle the events received so far; False once the connection is closing."""
        for event in self._ws.events():
            if isinstance(event, Message):
                await self._on_message(event)
            elif isinstance(event, Ping):
                self._writer.write(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self._ws.state == ConnectionState.REMOTE_CLOSING:
                    self._writer.write(self._ws.send(event.response()))
                return False
        return True

    async def _on_message(self, event: Message) -> None:
        data = event.data
        if self._message_channel is None:        # the message's first fragment
            if not data:
                return
            if isinstance(data, str):
                self._message_channel = ord(data[0]) - ord("0")
            else:
                self._message_channel = data[0]
                if data[0] == CLOSE_SIGNAL and self.protocol == V5:
                    self._message_channel = -1
            data = data[1:]
        channel = self._message_channel
        if event.message_finished:
            self._message_channel = None
        if channel == -1:                           # v5 close: [255, channel]
            if data and data[0] in self._sources:
                self._sources[data[0]]._end()
            return
        if isinstance(data, str):
            data = self._decode(data, event.message_finished)
        src = self._sources.get(channel)
        if src is not None:                         # data for a channel nobody reads is dropped
            await src._push(data)

    def _decode(self, text: str, finished: bool) -> bytes:
        text, self._pending_text = self._pending_text + text, ""
        if not finished:
            cut = len(text) - len(text) % 4
            text, self._pending_text = text[:cut], text[cut:]
        try:
            return base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError) as err:
            raise RemoteProtocolError(f"bad base64 payload: {err}", event_hint=None) from None
