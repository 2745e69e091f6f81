"""SPDY session over real loopback TCP: against itself (client role vs server role) and
against a raw peer that sends hand-made, sometimes malformed, frames."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import socket

import pytest

from cri.streaming import spdy
from cri.streaming.spdy import (DataFrame, FrameReader, FrameWriter, GoAway, Ping, RstStream,
                                Settings, Setting, SynReply, SynStream, WindowUpdate)
from cri.streaming.spdy_session import MAX_DATA_FRAME, SpdySession, SpdyStream

from test_spdy_frames import MALFORMED


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 60))
    return wrapper


class Server:
    """A loopback listener whose every connection becomes a server-role SpdySession."""

    def __init__(self, **session_kwargs) -> None:
        self.kwargs = session_kwargs
        self.sessions: asyncio.Queue[tuple[SpdySession, asyncio.Task]] = asyncio.Queue()

    async def __aenter__(self) -> Server:
        self.listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.listener.close()
        await self.listener.wait_closed()

    async def _serve(self, reader, writer) -> None:
        session = SpdySession(reader, writer, server=True, **self.kwargs)
        task = asyncio.ensure_future(session.run())
        await self.sessions.put((session, task))
        await task

    async def session(self) -> tuple[SpdySession, asyncio.Task]:
        return await asyncio.wait_for(self.sessions.get(), 5)


@contextlib.asynccontextmanager
async def session_pair(**server_kwargs):
    """(client session, server session), each with its read loop running."""
    async with Server(**server_kwargs) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = SpdySession(reader, writer, server=False)
        client_task = asyncio.ensure_future(client.run())
        srv, srv_task = await server.session()
        try:
            yield client, srv
        finally:
            await client.close()
            await srv.close()
            # run() must end without raising in every test.
            assert await asyncio.wait_for(client_task, 5) is None
            assert await asyncio.wait_for(srv_task, 5) is None


class RawPeer:
    """A hand-driven SPDY client: sends frames or bytes, reads back decoded frames."""

    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer
        self.encoder, self.decoder = FrameWriter(), FrameReader()
        self.pending: list = []

    def send(self, *frames) -> None:
        for frame in frames:
            self.writer.write(self.encoder.encode(frame))

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    async def next_frame(self, timeout: float = 5):
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    async def frames_until_eof(self, timeout: float = 5) -> list:
        frames = []
        while (frame := await self.next_frame(timeout)) is not None:
            frames.append(frame)
        return frames


@contextlib.asynccontextmanager
async def raw_pair(**server_kwargs):
    """(raw client peer, server session, its run() task)."""
    async with Server(**server_kwargs) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        srv, task = await server.session()
        try:
            yield RawPeer(reader, writer), srv, task
        finally:
            writer.close()
            await srv.close()
            assert await asyncio.wait_for(task, 5) is None


async def read_all(stream: SpdyStream) -> bytes:
    chunks = []
    while chunk := await stream.read():
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- client role vs server role


@async_test
async def test_open_accept_and_talk_both_ways():
    async with session_pair() as (client, server):
        stream = await client.open_stream({"StreamType": "stdin", "port": ["1", "2"]})
        assert stream.id == 1
        accepted = await server.accept_stream(timeout=5)
        assert accepted.id == 1
        assert accepted.headers == {"streamtype": "stdin", "port": "1\x002"}

        await stream.write(b"ping")
        assert await accepted.read() == b"ping"
        await accepted.write(b"pong")
        assert await stream.read() == b"pong"

        await stream.close()
        assert await accepted.read() == b""
        assert accepted.remote_closed and not accepted.local_closed
        # Half-closed: the other direction still works.
        await accepted.write(b"after fin")
        assert await stream.read() == b"after fin"
        await accepted.close()
        await accepted.close()      # idempotent
        assert await stream.read() == b""
        with pytest.raises(ConnectionError):
            await stream.write(b"closed")


@async_test
async def test_server_role_opens_even_streams():
    async with session_pair() as (client, server):
        stream = await server.open_stream({"streamtype": "push"})
        assert stream.id == 2
        accepted = await client.accept_stream(timeout=5)
        assert (accepted.id, accepted.headers) == (2, {"streamtype": "push"})
        await accepted.write(b"x")
        assert await stream.read() == b"x"


@async_test
async def test_many_streams_opened_concurrently_all_succeed():
    # IDs must reach the wire in increasing order, or the peer resets the laggards.
    async with session_pair() as (client, server):
        streams = await asyncio.gather(*(client.open_stream({"n": str(i)}) for i in range(50)))
        assert sorted(s.id for s in streams) == list(range(1, 100, 2))
        accepted = [await server.accept_stream(timeout=5) for _ in range(50)]
        assert [s.id for s in accepted] == list(range(1, 100, 2))
        assert not any(s.is_reset for s in streams + accepted)


@async_test
async def test_ten_mib_through_one_stream():
    payload = os.urandom(10 << 20)
    async with session_pair() as (client, server):
        stream = await client.open_stream({"streamtype": "stdin"})
        accepted = await server.accept_stream(timeout=5)

        async def send():
            await stream.write(payload)
            await stream.close()

        received, _ = await asyncio.gather(read_all(accepted), send())
        assert len(received) == len(payload)
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


@async_test
async def test_writes_split_into_data_frames_of_at_most_32k():
    async with raw_pair() as (peer, server, _):
        peer.send(SynStream(1, {}))
        assert isinstance(await peer.next_frame(), SynReply)
        stream = await server.accept_stream(timeout=5)
        await stream.write(b"y" * (MAX_DATA_FRAME * 2 + 1))
        sizes = [len((await peer.next_frame()).data) for _ in range(3)]
        assert sizes == [MAX_DATA_FRAME, MAX_DATA_FRAME, 1]


@async_test
async def test_concurrent_writers_never_interleave_frames():
    payloads = {i: os.urandom(1 << 20) for i in range(6)}
    async with session_pair() as (client, server):
        opened = [await client.open_stream({"n": str(i)}) for i in payloads]
        accepted = {}
        for _ in payloads:
            s = await server.accept_stream(timeout=5)
            accepted[int(s.headers["n"])] = s

        async def send(i):
            await accepted[i].write(payloads[i])
            await accepted[i].close()

        results = await asyncio.gather(*(read_all(s) for s in opened),
                                       *(send(i) for i in payloads))
        assert results[:len(payloads)] == [payloads[i] for i in payloads]


@async_test
async def test_reset_either_way():
    async with session_pair() as (client, server):
        stream = await client.open_stream({})
        accepted = await server.accept_stream(timeout=5)
        stream.reset()
        stream.reset()              # idempotent
        assert await accepted.read() == b""
        assert accepted.reset_status == spdy.CANCEL
        with pytest.raises(ConnectionResetError):
            await accepted.write(b"x")
        assert await stream.read() == b""
        with pytest.raises(ConnectionResetError):
            await stream.write(b"x")
        # The session itself carries on.
        assert await client.ping() >= 0


@async_test
async def test_data_before_peer_reset_is_still_read():
    # The kubelet writes the last output and then resets every stream at once.
    async with session_pair() as (client, server):
        stream = await client.open_stream({})
        accepted = await server.accept_stream(timeout=5)
        await accepted.write(b"last words")
        accepted.reset()
        await asyncio.sleep(0.1)
        assert stream.is_reset
        assert await stream.read() == b"last words"
        assert await stream.read() == b""


@async_test
async def test_ping_echoed_both_ways():
    async with session_pair() as (client, server):
        assert 0 <= await client.ping(timeout=5) < 5
        assert 0 <= await server.ping(timeout=5) < 5


@async_test
async def test_session_end_releases_everyone():
    async with session_pair() as (client, server):
        stream = await client.open_stream({})
        accepted = await server.accept_stream(timeout=5)
        await accepted.write(b"buffered")
        waiting_accept = asyncio.ensure_future(client.accept_stream())
        await asyncio.sleep(0.05)
        await server.close()
        await asyncio.wait_for(client.closed.wait(), 5)
        assert await asyncio.wait_for(waiting_accept, 5) is None
        assert await client.accept_stream() is None
        # Data already received stays readable, then EOF.
        assert await stream.read() == b"buffered"
        assert await stream.read() == b""
        assert await accepted.read() == b""
        with pytest.raises(ConnectionError):
            await client.open_stream({})
        with pytest.raises(ConnectionError):
            await stream.write(b"x")


@async_test
async def test_accept_times_out_with_none():
    async with session_pair() as (client, server):
        assert await server.accept_stream(timeout=0.05) is None


# ---------------------------------------------------------------- backpressure


@async_test
async def test_slow_consumer_bounds_the_buffer():
    limit = 256 << 10
    payload = os.urandom(32 << 20)
    async with session_pair(stream_buffer_limit=limit) as (client, server):
        stream = await client.open_stream({})
        accepted = await server.accept_stream(timeout=5)
        high_water = 0
        push = accepted._push

        def recording_push(data: bytes) -> None:
            nonlocal high_water
            push(data)
            high_water = max(high_water, accepted.buffered)

        accepted._push = recording_push
        sender = asyncio.ensure_future(stream.write(payload))
        await asyncio.sleep(0.5)
        # Nobody reads: the server stops reading the socket, the socket buffers fill, and
        # the sender is held back rather than the server buffering 32 MiB.
        assert not sender.done()
        assert limit - MAX_DATA_FRAME < accepted.buffered <= limit
        received = bytearray()
        while len(received) < len(payload):
            received += await accepted.read()
            await asyncio.sleep(0)
        await sender
        assert high_water <= limit
        assert bytes(received) == payload


@async_test
async def test_one_frame_larger_than_the_cap_still_gets_through():
    async with raw_pair(stream_buffer_limit=1024) as (peer, server, _):
        peer.send(SynStream(1, {}), DataFrame(1, b"z" * 4096, fin=True))
        stream = await server.accept_stream(timeout=5)
        assert await read_all(stream) == b"z" * 4096


# ---------------------------------------------------------------- against a raw peer


@async_test
async def test_syn_reply_sent_before_anyone_accepts():
    async with raw_pair() as (peer, server, _):
        peer.send(SynStream(1, {"streamtype": "error"}))
        assert await peer.next_frame() == SynReply(1, {})


@async_test
async def test_initial_bytes_are_the_first_input():
    # The HTTP layer may have read the client's first frames along with the upgrade.
    a, b = socket.socketpair()
    a_reader, a_writer = await asyncio.open_connection(sock=a)
    b_reader, b_writer = await asyncio.open_connection(sock=b)
    session = SpdySession(a_reader, a_writer, server=True,
                          initial=FrameWriter().encode(Ping(5)))
    task = asyncio.ensure_future(session.run())
    peer = RawPeer(b_reader, b_writer)
    assert await peer.next_frame() == Ping(5)
    await session.close()
    assert await asyncio.wait_for(task, 5) is None
    assert await peer.frames_until_eof() == [GoAway(0, spdy.GOAWAY_OK)]
    b_writer.close()


@async_test
async def test_ping_echo_and_ignored_flow_control():
    async with raw_pair() as (peer, server, _):
        peer.send(Settings((Setting(7, 1),)), WindowUpdate(0, 1000), Ping(9))
        assert await peer.next_frame() == Ping(9)
        # Our own-parity ping ids are answers, not requests: not echoed.
        peer.send(Ping(2), Ping(11))
        assert await peer.next_frame() == Ping(11)


@async_test
async def test_truncated_frame_waits():
    async with raw_pair() as (peer, server, task):
        wire = FrameWriter().encode(Ping(3))
        peer.send_bytes(wire[:5])
        with pytest.raises(asyncio.TimeoutError):
            await peer.next_frame(timeout=0.2)
        assert not task.done()
        peer.send_bytes(wire[5:])
        assert await peer.next_frame() == Ping(3)


@async_test
async def test_out_of_order_and_wrong_parity_streams_are_reset():
    async with raw_pair() as (peer, server, _):
        peer.send(SynStream(5, {}))
        assert await peer.next_frame() == SynReply(5, {})
        peer.send(SynStream(3, {}))         # lower than the last
        assert await peer.next_frame() == RstStream(3, spdy.PROTOCOL_ERROR)
        peer.send(SynStream(8, {}))         # a server ID, from the client
        assert await peer.next_frame() == RstStream(8, spdy.PROTOCOL_ERROR)
        peer.send(SynStream(7, {}))         # the session still works
        assert await peer.next_frame() == SynReply(7, {})
        assert [(await server.accept_stream(timeout=1)).id for _ in range(2)] == [5, 7]
        assert await server.accept_stream(timeout=0.05) is None


@async_test
async def test_data_for_unknown_stream_is_reset():
    async with raw_pair() as (peer, server, _):
        peer.send(DataFrame(99, b"who?"))
        assert await peer.next_frame() == RstStream(99, spdy.INVALID_STREAM)
        # A stream that existed and finished: late frames are dropped silently.
        peer.send(SynStream(101, {}))
        assert await peer.next_frame() == SynReply(101, {})
        stream = await server.accept_stream(timeout=5)
        stream.reset()
        assert await peer.next_frame() == RstStream(101, spdy.CANCEL)
        peer.send(DataFrame(101, b"late"), Ping(1))
        assert await peer.next_frame() == Ping(1)


@async_test
async def test_open_stream_times_out_without_reply():
    async with raw_pair() as (peer, server, _):
        with pytest.raises(asyncio.TimeoutError):
            await server.open_stream({"a": "b"}, timeout=0.1)
        syn = await peer.next_frame()
        assert isinstance(syn, SynStream) and syn.headers == {"a": "b"}
        assert await peer.next_frame() == RstStream(syn.stream_id, spdy.CANCEL)


@async_test
async def test_peer_goaway_ends_the_session():
    async with raw_pair() as (peer, server, task):
        peer.send(SynStream(1, {}), DataFrame(1, b"tail"), GoAway(1))
        stream = await server.accept_stream(timeout=5)
        assert await asyncio.wait_for(task, 5) is None
        assert server.closed.is_set()
        assert await read_all(stream) == b"tail"


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
@async_test
async def test_malformed_input_gets_goaway_and_close(wire):
    async with raw_pair() as (peer, server, task):
        peer.send(SynStream(1, {}))
        assert await peer.next_frame() == SynReply(1, {})
        stream = await server.accept_stream(timeout=5)
        peer.send_bytes(wire)
        frames = await peer.frames_until_eof()      # the server closed the connection
        assert frames[-1:] == [GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)]
        assert await asyncio.wait_for(task, 5) is None
        assert await stream.read() == b""


@async_test
async def test_peer_vanishing_mid_session_is_not_an_error():
    async with raw_pair() as (peer, server, task):
        peer.send(SynStream(1, {}))
        stream = await server.accept_stream(timeout=5)
        peer.writer.transport.abort()
        assert await asyncio.wait_for(task, 5) is None
        assert await stream.read() == b""
        with pytest.raises(ConnectionError):
            await stream.write(b"x" * (1 << 20))


@async_test
async def test_local_reset_drops_unread_data_and_unblocks_the_read_loop():
    limit = 64 << 10
    async with session_pair(stream_buffer_limit=limit) as (client, server):
        stream = await client.open_stream({})
        accepted = await server.accept_stream(timeout=5)
        sender = asyncio.ensure_future(stream.write(os.urandom(16 << 20)))
        await asyncio.sleep(0.3)
        assert accepted.buffered > 0 and not sender.done()
        accepted.reset()
        assert accepted.buffered == 0
        assert await accepted.read() == b""
        # The read loop, held back by that stream, moves on: the sender learns of the
        # reset and the session still answers.
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(sender, 10)
        assert await client.ping(timeout=5) >= 0


# ---------------------------------------------------------------- limits


@async_test
async def test_many_writers_keep_the_send_buffer_near_one_frame():
    # Unserialised, each blocked writer would add its 32 KiB frame the moment the
    # transport resumes: 40 of them is 1.25 MiB queued, past the point where the read
    # loop itself waits for the peer to read.
    async with raw_pair() as (peer, server, _):
        peer.send(*(SynStream(i, {}) for i in range(1, 81, 2)))
        streams = [await server.accept_stream(timeout=5) for _ in range(40)]
        transport = server._writer.transport
        high_water = 0
        send = server._send

        def recording_send(frame) -> None:
            nonlocal high_water
            send(frame)
            high_water = max(high_water, transport.get_write_buffer_size())

        server._send = recording_send
        writers = asyncio.gather(*(s.write(b"w" * (256 << 10)) for s in streams))
        await asyncio.sleep(0.3)        # the peer reads nothing yet: the buffers fill
        assert not writers.done()
        received = 0
        while received < 40 * (256 << 10):
            frame = await peer.next_frame()
            if isinstance(frame, DataFrame):
                received += len(frame.data)
        await writers
        limit = transport.get_write_buffer_limits()[1]
        assert high_water <= limit + MAX_DATA_FRAME + 1024


@async_test
async def test_many_streams_both_ways_at_once_complete():
    # 80 writers a side, both sides at once.  Unserialised, each side's send buffer grew
    # past CONTROL_BACKLOG, both read loops stopped to wait for the other to read, and
    # this hung every time.
    streams = 80
    payload = os.urandom(512 << 10)
    async with session_pair() as (client, server):
        opened = [await client.open_stream({"n": str(i)}) for i in range(streams)]
        accepted = [await server.accept_stream(timeout=5) for _ in range(streams)]

        async def send_and_close(stream):
            await stream.write(payload)
            await stream.close()

        results = await asyncio.wait_for(asyncio.gather(
            *(send_and_close(s) for s in opened + accepted),
            *(read_all(s) for s in opened + accepted)), 20)
        digest = hashlib.sha256(payload).digest()
        received = results[2 * streams:]
        assert [hashlib.sha256(r).digest() for r in received] == [digest] * 2 * streams


@async_test
async def test_streams_past_the_cap_are_refused_until_one_ends():
    async with raw_pair(max_streams=2) as (peer, server, _):
        peer.send(SynStream(1, {}), SynStream(3, {}), SynStream(5, {}))
        assert await peer.next_frame() == SynReply(1, {})
        assert await peer.next_frame() == SynReply(3, {})
        assert await peer.next_frame() == RstStream(5, spdy.REFUSED_STREAM)
        first = await server.accept_stream(timeout=5)
        assert first.id == 1
        peer.send(RstStream(1, spdy.CANCEL), SynStream(7, {}))
        assert await peer.next_frame() == SynReply(7, {})
        assert [(await server.accept_stream(timeout=1)).id for _ in range(2)] == [3, 7]
        # A stream finished both ways also frees its place.
        peer.send(DataFrame(3, b"", fin=True), SynStream(9, {}))
        assert await peer.next_frame() == RstStream(9, spdy.REFUSED_STREAM)
        await server._streams[3].close()
        peer.send(SynStream(11, {}))
        frames = [await peer.next_frame() for _ in range(2)]
        assert frames == [DataFrame(3, b"", fin=True), SynReply(11, {})]


@async_test
async def test_headers_frame_on_our_stream_extends_the_reply():
    async with raw_pair() as (peer, server, _):
        opening = asyncio.ensure_future(server.open_stream({"streamtype": "push"}))
        syn = await peer.next_frame()
        peer.send(SynReply(syn.stream_id, {"a": "1"}))
        stream = await opening
        peer.send(spdy.Headers(syn.stream_id, {"b": "2"}), Ping(1))
        assert await peer.next_frame() == Ping(1)
        assert stream.reply_headers == {"a": "1", "b": "2"}
        assert stream.headers == {"streamtype": "push"}
