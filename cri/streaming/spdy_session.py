"""An asyncio SPDY/3.1 session over one upgraded connection, in the server or client role.

Shaped around the peer we meet, moby/spdystream (the kubelet's and client-go's SPDY):

- Every peer-initiated stream gets an empty SYN_REPLY as soon as its SYN_STREAM arrives:
  spdystream drops DATA on a stream it has not had a reply for.
- No flow control: spdystream never sends WINDOW_UPDATE and ignores ours, so waiting for
  window credit would hang.  Memory is bounded instead by TCP backpressure: when a stream
  holds more unread data than its cap, the read loop stops reading the socket until the
  consumer catches up.  (That also stalls the connection's other streams, which is the
  price of a protocol without working flow control.)
- PINGs from the peer are echoed (client-go pings every 5 s to keep proxies from closing
  an idle connection); SETTINGS and WINDOW_UPDATE are read and ignored.
- Peer misbehaviour never raises out of run(): a framing error ends the session with
  GOAWAY PROTOCOL_ERROR, a bad stream gets RST_STREAM.

Writes are never interleaved: a frame is encoded and handed to the transport in one
synchronous step, so the event loop cannot switch to another writer in the middle of one,
and frames reach the wire in the order their header blocks were compressed.  Only the wait
for the transport to drain is asynchronous.  DATA writers also take turns (one frame, one
drain, next writer), which keeps the send buffer near one frame past the transport's
high-water mark however many streams write: the read loop, which waits only when that
buffer is far larger, is then never held up by our own data.

Errors for the caller (writing to a reset stream, opening a stream on a closed session) are
ConnectionError subclasses, as the transport's own drain() raises when the socket dies.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Optional

from .spdy import (CANCEL, GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, HEADER_SEPARATOR,
                   INVALID_STREAM, MAX_STREAM_ID, PROTOCOL_ERROR, REFUSED_STREAM,
                   STREAM_ALREADY_CLOSED, STREAM_IN_USE, DataFrame, Frame, FrameReader,
                   FrameWriter, GoAway, HeaderInput, Headers, Ping, RstStream, Settings,
                   SpdyProtocolError, SynReply, SynStream, WindowUpdate)

log = logging.getLogger(__name__)

__all__ = ["SpdySession", "SpdyStream", "MAX_DATA_FRAME", "MAX_PEER_STREAMS",
           "STREAM_BUFFER_LIMIT"]

# client-go and spdystream copy in 32 KiB pieces; larger frames gain nothing and make one
# stream hog the connection between other streams' frames.
MAX_DATA_FRAME = 32 << 10
STREAM_BUFFER_LIMIT = 4 << 20
READ_SIZE = 64 << 10
# The read loop writes its replies (SYN_REPLY, PING echoes, RST) without waiting for the
# peer to read them, so it cannot block on a peer that is itself blocked writing to us.
# Past this much unsent data it does wait, so a peer that floods PINGs and never reads
# cannot grow our send buffer without bound.
CONTROL_BACKLOG = 1 << 20
# Streams the peer may have open at once.  client-go's port-forward opens two per
# connection and resets both when it ends, so this is thousands of live connections.
MAX_PEER_STREAMS = 4096
# How long close() lets queued frames (the GOAWAY) drain before dropping the connection.
CLOSE_TIMEOUT = 5.0


class SpdyStream:
    """One SPDY stream.  Made by SpdySession, never directly."""

    def __init__(self, session: SpdySession, stream_id: int, headers: dict[str, str]) -> None:
        self.id = stream_id
        self.headers = headers                  # the SYN_STREAM's (ours or the peer's)
        self.reply_headers: dict[str, str] = {}  # the peer's SYN_REPLY, for streams we open
        self.remote_closed = False              # the peer sent FIN, or the session ended
        self.local_closed = False               # we sent FIN
        self.reset_status: Optional[int] = None  # the RST_STREAM status, sent or received
        self.buffered = 0                       # bytes received and not yet read
        self._session = session
        self._chunks: collections.deque[bytes] = collections.deque()
        self._readable = asyncio.Event()
        self._replied: Optional[asyncio.Future[None]] = None   # streams we open

    def __repr__(self) -> str:
        return (f"<SpdyStream {self.id} remote_closed={self.remote_closed} "
                f"local_closed={self.local_closed} reset={self.reset_status}>")

    @property
    def is_reset(self) -> bool:
        return self.reset_status is not None

    async def read(self) -> bytes:
        """The next chunk (one DATA frame's payload); b"" at FIN, reset or session end.

        Data that arrived before the peer's FIN, RST or GOAWAY is still returned first:
        the kubelet resets every stream right after writing the last output to it.
        """
        while not self._chunks:
            if self.remote_closed or self.is_reset:
                return b""
            await self._readable.wait()
            self._readable.clear()
        chunk = self._chunks.popleft()
        self.buffered -= len(chunk)
        self._session._room_made()
        return chunk

    async def write(self, data: bytes) -> None:
        """Send ``data`` in DATA frames of at most MAX_DATA_FRAME bytes, waiting for the
        transport to drain after each.  Raises ConnectionError once the stream is closed
        for writing: after close(), a reset either way, or the session's end."""
        view = memoryview(data)
        for start in range(0, len(view), MAX_DATA_FRAME):
            await self._session._send_data(self, bytes(view[start:start + MAX_DATA_FRAME]))

    async def close(self) -> None:
        """Half-close: FIN to the peer, which may go on sending.  Idempotent, and a no-op
        on a reset stream or a finished session."""
        if self.local_closed or self.is_reset or self._session._ended:
            return
        self.local_closed = True
        self._session._send(DataFrame(self.id, b"", fin=True))
        self._session._forget_if_done(self)
        try:
            await self._session._drain()
        except ConnectionError:
            pass        # the session is going away; run() logs why

    def reset(self, status: int = CANCEL) -> None:
        """Abort the stream both ways (RST_STREAM); unread data is dropped.  Idempotent."""
        if self.is_reset:
            return
        self._chunks.clear()
        self.buffered = 0
        self._mark_reset(status)
        self._session._send(RstStream(self.id, status))

    # -- called by the session

    def _check_writable(self) -> None:
        if self.is_reset:
            raise ConnectionResetError(f"SPDY stream {self.id} was reset ({self.reset_status})")
        if self.local_closed:
            raise BrokenPipeError(f"SPDY stream {self.id} is closed for writing")
        if self._session._ended:
            raise ConnectionResetError("SPDY session closed")

    def _push(self, data: bytes) -> None:
        self._chunks.append(data)
        self.buffered += len(data)
        self._readable.set()

    def _remote_fin(self) -> None:
        self.remote_closed = True
        self._readable.set()
        self._session._forget_if_done(self)

    def _mark_reset(self, status: int) -> None:
        self.reset_status = status
        self._readable.set()
        self._fail_open(ConnectionResetError(f"SPDY stream {self.id} reset ({status})"))
        self._session._forget(self)

    def _session_ended(self) -> None:
        self.remote_closed = True
        self._readable.set()
        self._fail_open(ConnectionResetError("SPDY session closed"))

    def _fail_open(self, err: Exception) -> None:
        if self._replied is not None and not self._replied.done():
            self._replied.set_exception(err)


class SpdySession:
    """A SPDY/3.1 connection.  Start run() as a task; it returns when the session ends.

    ``initial`` is whatever the HTTP layer read past the upgrade response's headers: the
    peer may send its first frames in the same packet.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 server: bool, initial: bytes = b"",
                 stream_buffer_limit: int = STREAM_BUFFER_LIMIT,
                 max_streams: int = MAX_PEER_STREAMS) -> None:
        self.server = server
        self.closed = asyncio.Event()           # set once the session has fully ended
        self._reader = reader
        self._writer = writer
        self._initial = initial
        self._limit = stream_buffer_limit
        self._max_streams = max_streams
        self._decoder = FrameReader()
        self._encoder = FrameWriter()
        self._streams: dict[int, SpdyStream] = {}
        self._incoming: asyncio.Queue[SpdyStream] = asyncio.Queue()
        # Our IDs (streams and pings): even for the server, odd for the client.
        self._next_stream_id = 2 if server else 1
        self._next_ping_id = 2 if server else 1
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._last_peer_stream = 0
        self._peer_streams = 0                  # how many of _streams the peer opened
        self._room = asyncio.Event()            # a consumer read, or a stream went away
        self._data_lock = asyncio.Lock()        # see _send_data
        self._goaway_sent = False
        self._ended = False                     # no more frames are read or written
        self._shutdown_started = False

    # -- public API

    async def run(self) -> None:
        """The read loop.  Returns when the peer closes the connection or sends GOAWAY,
        after a protocol error (answered with GOAWAY PROTOCOL_ERROR), or after close()."""
        try:
            await self._read_loop()
        except SpdyProtocolError as err:
            log.info("SPDY peer broke the protocol (%s): %s; closing", err.status, err.message)
            self._send_goaway(GOAWAY_PROTOCOL_ERROR)
        except OSError as err:     # ConnectionResetError and kin: the socket died
            log.debug("SPDY connection lost: %s", err)
        finally:
            await self._shutdown()

    async def accept_stream(self, timeout: Optional[float] = None) -> Optional[SpdyStream]:
        """The next stream the peer opened, already replied to; None on timeout or once
        the session has ended."""
        if self.closed.is_set():
            return None
        getter = asyncio.ensure_future(self._incoming.get())
        ended = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({getter, ended}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (getter, ended):
                task.cancel()   # a cancelled Queue.get leaves its item in the queue
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    async def open_stream(self, headers: HeaderInput, timeout: float = 30) -> SpdyStream:
        """Open a stream and wait for the peer's SYN_REPLY.

        Raises TimeoutError (after resetting the stream) if no reply comes in time, and
        ConnectionError if the peer resets the stream or the session ends first.
        """
        if self._ended or self._goaway_sent:
            raise ConnectionResetError("SPDY session closed")
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            raise ConnectionResetError("SPDY stream IDs exhausted")
        # Encoding before registering: bad headers raise ValueError and leave no trace.
        frame = SynStream(stream_id, _normalise(headers))
        self._send(frame)
        self._next_stream_id += 2
        stream = SpdyStream(self, stream_id, frame.headers)
        stream._replied = asyncio.get_running_loop().create_future()
        self._streams[stream_id] = stream
        await self._drain()
        try:
            await asyncio.wait_for(stream._replied, timeout)
        except asyncio.TimeoutError:
            stream.reset(CANCEL)
            raise
        return stream

    async def ping(self, timeout: float = 10) -> float:
        """Send a PING and return the round-trip time in seconds."""
        if self._ended:
            raise ConnectionResetError("SPDY session closed")
        loop = asyncio.get_running_loop()
        ping_id = self._next_ping_id
        self._next_ping_id = (ping_id + 2) & 0xFFFFFFFF or (2 if self.server else 1)
        reply = loop.create_future()
        self._pings[ping_id] = reply
        started = loop.time()
        try:
            self._send(Ping(ping_id))
            await self._drain()
            await asyncio.wait_for(reply, timeout)
        finally:
            self._pings.pop(ping_id, None)
        return loop.time() - started

    async def close(self) -> None:
        """GOAWAY, then close the connection.  Idempotent; run() returns soon after."""
        self._send_goaway(GOAWAY_OK)
        await self._shutdown()

    # -- reading

    async def _read_loop(self) -> None:
        data, self._initial = self._initial, b""
        while not self._ended:
            for frame in self._decoder.feed(data):
                await self._dispatch(frame)
                if self._ended:
                    return
            data = await self._reader.read(READ_SIZE)
            if not data:
                if self._decoder.buffered:
                    log.debug("SPDY peer closed mid-frame (%d bytes)", self._decoder.buffered)
                else:
                    log.debug("SPDY peer closed the connection")
                return

    async def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            await self._on_data(frame)
        elif isinstance(frame, SynStream):
            self._on_syn_stream(frame)
        elif isinstance(frame, SynReply):
            self._on_syn_reply(frame)
        elif isinstance(frame, Headers):
            self._on_headers(frame)
        elif isinstance(frame, RstStream):
            self._on_rst(frame)
        elif isinstance(frame, Ping):
            self._on_ping(frame)
        elif isinstance(frame, GoAway):
            log.debug("SPDY peer sent GOAWAY (last stream %d, status %d)",
                      frame.last_good_stream_id, frame.status)
            self._ended = True
        elif isinstance(frame, (Settings, WindowUpdate)):
            pass    # no flow control: see the module docstring
        await self._drain_backlog()

    def _on_syn_stream(self, frame: SynStream) -> None:
        if self._goaway_sent:
            self._send(RstStream(frame.stream_id, REFUSED_STREAM))
            return
        if not self._peer_may_open(frame.stream_id):
            log.info("SPDY peer opened stream %d out of order (last %d); resetting it",
                     frame.stream_id, self._last_peer_stream)
            self._send(RstStream(frame.stream_id, PROTOCOL_ERROR))
            return
        self._last_peer_stream = frame.stream_id
        if self._peer_streams >= self._max_streams:
            # Each open stream costs a SpdyStream and a place in the accept queue; a peer
            # opening streams faster than they finish gets refused, not remembered.
            log.info("SPDY peer has %d streams open; refusing stream %d",
                     self._max_streams, frame.stream_id)
            self._send(RstStream(frame.stream_id, REFUSED_STREAM))
            return
        stream = SpdyStream(self, frame.stream_id, frame.headers)
        if frame.unidirectional:
            stream.local_closed = True      # we may not send on it, so no reply either
        else:
            self._send(SynReply(frame.stream_id))
        self._streams[stream.id] = stream
        self._peer_streams += 1
        if frame.fin:
            stream._remote_fin()
        self._incoming.put_nowait(stream)

    def _on_syn_reply(self, frame: SynReply) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None or stream._replied is None:
            self._send(RstStream(frame.stream_id, INVALID_STREAM))
            return
        if stream._replied.done():
            stream.reset(STREAM_IN_USE)     # a second SYN_REPLY (spec 2.6.2)
            return
        stream.reply_headers = frame.headers
        stream._replied.set_result(None)
        if frame.fin:
            stream._remote_fin()

    def _on_headers(self, frame: Headers) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None:
            return
        # More of the peer's headers: on a stream we opened, those are its reply's.
        ours = stream._replied is not None
        (stream.reply_headers if ours else stream.headers).update(frame.headers)
        if frame.fin:
            stream._remote_fin()

    def _on_rst(self, frame: RstStream) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is not None:
            log.debug("SPDY peer reset stream %d (%d)", frame.stream_id, frame.status)
            stream._mark_reset(frame.status)

    def _on_ping(self, frame: Ping) -> None:
        if frame.ping_id % 2 == self._next_ping_id % 2:     # the answer to one of ours
            reply = self._pings.get(frame.ping_id)
            if reply is not None and not reply.done():
                reply.set_result(None)
        else:
            self._send(frame)

    async def _on_data(self, frame: DataFrame) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None:
            if self._never_opened(frame.stream_id):
                self._send(RstStream(frame.stream_id, INVALID_STREAM))
            # else a stream that has finished or was reset: late frames are dropped.
            return
        if stream.remote_closed:
            stream.reset(STREAM_ALREADY_CLOSED)     # DATA after the peer's own FIN
            return
        if frame.data:
            await self._wait_for_room(stream, len(frame.data))
            if not stream.is_reset:
                stream._push(frame.data)
        if frame.fin:
            stream._remote_fin()

    async def _wait_for_room(self, stream: SpdyStream, incoming: int) -> None:
        # An empty buffer always takes the frame, so one frame larger than the cap cannot
        # wedge the stream; otherwise a stream never holds more than its cap.
        while (stream.buffered and stream.buffered + incoming > self._limit
               and not stream.is_reset and not self._ended):
            self._room.clear()
            await self._room.wait()

    def _is_peer_id(self, stream_id: int) -> bool:
        return stream_id % 2 != self._next_stream_id % 2

    def _peer_may_open(self, stream_id: int) -> bool:
        return self._is_peer_id(stream_id) and stream_id > self._last_peer_stream

    def _never_opened(self, stream_id: int) -> bool:
        if stream_id % 2 == self._next_stream_id % 2:
            return stream_id >= self._next_stream_id
        return stream_id > self._last_peer_stream

    # -- writing

    def _send(self, frame: Frame) -> None:
        """Encode and queue one frame.  Synchronous on purpose: see the module docstring."""
        if self._ended:
            if isinstance(frame, DataFrame):
                raise ConnectionResetError("SPDY session closed")
            return      # control frames for a dead connection have no one to read them
        self._writer.write(self._encoder.encode(frame))

    async def _drain(self) -> None:
        await self._writer.drain()

    async def _send_data(self, stream: SpdyStream, chunk: bytes) -> None:
        # One writer at a time, each waiting for the drain: the send buffer then holds at
        # most one DATA frame past the transport's high-water mark however many streams
        # write, so it stays far below CONTROL_BACKLOG and the read loop never stalls on
        # our own data (two sessions that both did would each wait for the other to read).
        # The lock is FIFO, so busy streams also take turns frame by frame.
        async with self._data_lock:
            stream._check_writable()
            self._send(DataFrame(stream.id, chunk))
            await self._drain()

    async def _drain_backlog(self) -> None:
        transport = self._writer.transport
        if not self._ended and transport.get_write_buffer_size() > CONTROL_BACKLOG:
            await self._writer.drain()

    def _send_goaway(self, status: int) -> None:
        if self._goaway_sent or self._ended or self._writer.is_closing():
            return
        self._goaway_sent = True
        self._send(GoAway(self._last_peer_stream, status))

    # -- stream bookkeeping

    def _room_made(self) -> None:
        self._room.set()

    def _forget(self, stream: SpdyStream) -> None:
        # Routing only: the caller keeps the stream object and its unread data.
        if self._streams.pop(stream.id, None) is not None and self._is_peer_id(stream.id):
            self._peer_streams -= 1
        self._room.set()

    def _forget_if_done(self, stream: SpdyStream) -> None:
        if stream.local_closed and stream.remote_closed:
            self._forget(stream)

    # -- ending

    async def _shutdown(self) -> None:
        if self._shutdown_started:
            await self.closed.wait()
            return
        self._shutdown_started = True
        self._ended = True
        for stream in list(self._streams.values()):
            stream._session_ended()
        self._streams.clear()
        self._peer_streams = 0
        for reply in self._pings.values():
            if not reply.done():
                reply.set_exception(ConnectionResetError("SPDY session closed"))
        self._room.set()
        try:
            await self._close_transport()
        finally:
            self.closed.set()

    async def _close_transport(self) -> None:
        # close() sends what is queued (the GOAWAY) first; a peer that never reads would
        # hold that forever, hence the timeout and abort.
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            self._writer.transport.abort()
        except (ConnectionError, OSError):
            pass


def _normalise(headers: HeaderInput) -> dict[str, str]:
    """The headers as they go on the wire: lowercase names, multiple values NUL-joined."""
    return {name.lower(): value if isinstance(value, str) else HEADER_SEPARATOR.join(value)
            for name, value in headers.items()}
