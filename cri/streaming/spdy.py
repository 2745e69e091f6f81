"""SPDY/3.1 frames and header blocks, sans-IO: bytes in, frames out; frames in, bytes out.

The kubelet speaks SPDY/3.1 to the runtime through moby/spdystream, so that is the peer
this codec is shaped around (draft: chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1):

- Control frame: 1 bit set, version (15), type (16), flags (8), length (24), payload.
- Data frame: 1 bit clear, stream ID (31), flags (8, FIN = 1), length (24), payload.
- Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib-compressed with one stream per
  direction for the whole connection, seeded with DICTIONARY and sync-flushed after every
  block, so a block can only be decoded by the same context that decoded all earlier ones.

Anything malformed raises SpdyProtocolError.  spdystream drops the connection on every
framing error, and the zlib context is unusable after one, so all of them are fatal: the
reader refuses further input once it has raised.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Sequence, Union

VERSION = 3

# Control frame types.
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

# Flags.
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02          # SYN_STREAM only
FLAG_SETTINGS_CLEAR = 0x01          # SETTINGS only

# RST_STREAM status codes; SpdyProtocolError.status uses the same numbers.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9
INVALID_CREDENTIALS = 10
FRAME_TOO_LARGE = 11

# GOAWAY status codes.
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

MAX_STREAM_ID = 0x7FFFFFFF
MAX_LENGTH = 0xFFFFFF               # the 24-bit length field
HEADER_SEPARATOR = "\x00"           # joins the values of a header sent more than once

# Limits on what a peer may make us hold.  client-go copies stdin and port-forward data in
# 32 KiB reads, so real DATA frames are far below the data cap; a header block from the
# kubelet is a handful of short headers, so 1 MiB of either form is already absurd.
MAX_DATA_LENGTH = 8 << 20
MAX_CONTROL_LENGTH = 1 << 20
MAX_HEADER_BLOCK = 1 << 20

_FRAME_HEADER = struct.Struct(">II")
_U32 = struct.Struct(">I")

# The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): a fixed protocol
# constant, 1423 bytes, adler32 0xe3c6a7c2.  The first part is length-prefixed header
# names and values, the rest raw text that often appears in values.
DICTIONARY = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put"
    b"\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept"
    b"\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding"
    b"\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age"
    b"\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-control"
    b"\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base"
    b"\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language"
    b"\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location"
    b"\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\x00\x0ccontent-type"
    b"\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect"
    b"\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host"
    b"\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since"
    b"\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range"
    b"\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified"
    b"\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma"
    b"\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization"
    b"\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after"
    b"\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer"
    b"\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent"
    b"\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning"
    b"\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get"
    b"\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07version"
    b"\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public"
    b"\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin"
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502"
    b"504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Re"
    b"quest401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Impl"
    b"emented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00"
    b":00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,imag"
    b"e/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate"
    b"max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


class SpdyProtocolError(Exception):
    """The peer broke the protocol; the connection cannot continue.

    ``status`` is a RST_STREAM status code (PROTOCOL_ERROR, UNSUPPORTED_VERSION,
    FRAME_TOO_LARGE) saying what kind of breakage it was; a session answers every one of
    them with GOAWAY PROTOCOL_ERROR, since GOAWAY has no finer codes.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Header names are lowercase strings.  A value is a str; a header sent more than once
# arrives as one value with the parts joined by NUL (split on HEADER_SEPARATOR).  When
# encoding, a sequence of strings is joined the same way.
HeaderInput = Mapping[str, Union[str, Sequence[str]]]


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    associated_id: int = 0
    priority: int = 0               # 0 (highest) .. 7
    slot: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


class Setting(NamedTuple):
    id: int                         # 24 bits
    value: int
    flags: int = 0


@dataclass(frozen=True)
class Settings:
    entries: tuple[Setting, ...] = ()
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class Headers:
    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = Union[DataFrame, SynStream, SynReply, RstStream, Settings, Ping, GoAway, Headers,
              WindowUpdate]


# ---------------------------------------------------------------- header blocks


def encode_header_block(headers: HeaderInput) -> bytes:
    """The uncompressed block: u32 count, then u32-length-prefixed name and value each."""
    seen: set[str] = set()
    parts = [_U32.pack(len(headers))]
    for name, value in headers.items():
        name = name.lower()
        if not name:
            raise ValueError("empty header name")
        if name in seen:
            # Two spellings of one name ("Port", "port") would be a duplicate on the wire,
            # which spdystream rejects.
            raise ValueError(f"header {name!r} given twice")
        seen.add(name)
        if not isinstance(value, str):
            value = HEADER_SEPARATOR.join(value)
        for raw in (name.encode("latin-1"), value.encode("latin-1")):
            parts.append(_U32.pack(len(raw)))
            parts.append(raw)
    return b"".join(parts)


def decode_header_block(block: bytes) -> dict[str, str]:
    """Parse an uncompressed block; every length is checked against what is left."""
    view = memoryview(block)
    count, pos = _read_u32(view, 0, "header count")
    # Each header needs at least its two length fields: a count larger than the block
    # could hold is a lie we refuse before looping on it.
    if count * 8 > len(view) - pos:
        raise SpdyProtocolError(PROTOCOL_ERROR, f"header count {count} larger than the block")
    headers: dict[str, str] = {}
    for _ in range(count):
        name, pos = _read_string(view, pos, "header name")
        value, pos = _read_string(view, pos, "header value")
        _check_name(name, headers)
        headers[name] = value
    if pos != len(view):
        raise SpdyProtocolError(PROTOCOL_ERROR, f"{len(view) - pos} bytes after the headers")
    return headers


def _read_u32(view: memoryview, pos: int, what: str) -> tuple[int, int]:
    if pos + 4 > len(view):
        raise SpdyProtocolError(PROTOCOL_ERROR, f"header block truncated in the {what}")
    return _U32.unpack_from(view, pos)[0], pos + 4


def _read_string(view: memoryview, pos: int, what: str) -> tuple[str, int]:
    length, pos = _read_u32(view, pos, f"{what} length")
    if pos + length > len(view):
        raise SpdyProtocolError(PROTOCOL_ERROR, f"{what} runs past the header block")
    # latin-1 maps every byte to one character, so any value round-trips unchanged.
    return bytes(view[pos:pos + length]).decode("latin-1"), pos + length


def _check_name(name: str, seen: dict[str, str]) -> None:
    # The three rules spdystream enforces (and fails the connection on).
    if not name:
        raise SpdyProtocolError(PROTOCOL_ERROR, "empty header name")
    if name != name.lower():
        raise SpdyProtocolError(PROTOCOL_ERROR, f"header name {name!r} is not lowercase")
    if name in seen:
        raise SpdyProtocolError(PROTOCOL_ERROR, f"header {name!r} sent twice")


# ---------------------------------------------------------------- reading


class FrameReader:
    """Incremental decoder for one connection's incoming bytes.

    Owns the connection's decompression context: feed it every byte the peer sends, in
    order, and nothing else.
    """

    def __init__(self, *, max_data_length: int = MAX_DATA_LENGTH,
                 max_control_length: int = MAX_CONTROL_LENGTH,
                 max_header_block: int = MAX_HEADER_BLOCK) -> None:
        self._max_data_length = max_data_length
        self._max_control_length = max_control_length
        self._max_header_block = max_header_block
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._failed: SpdyProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Every frame completed by ``data``; a partial frame waits for the next call.

        Raises SpdyProtocolError on the first malformed frame, and again on every later
        call.  Frames completed earlier in the same call are dropped with it: the
        connection is going away anyway.
        """
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        try:
            return self._drain()
        except SpdyProtocolError as err:
            self._failed = err
            self._buffer.clear()
            raise

    def _drain(self) -> list[Frame]:
        frames: list[Frame] = []
        pos = 0
        buf = self._buffer
        while len(buf) - pos >= 8:
            first, second = _FRAME_HEADER.unpack_from(buf, pos)
            length = second & MAX_LENGTH
            # Check the length before waiting for the payload, so a peer cannot make us
            # buffer 16 MiB by declaring it.
            self._check_length(first, length)
            if len(buf) - pos - 8 < length:
                break
            payload = bytes(buf[pos + 8:pos + 8 + length])
            frames.append(self._decode(first, second >> 24, payload))
            pos += 8 + length
        del buf[:pos]
        return frames

    def _check_length(self, first: int, length: int) -> None:
        if first & 0x80000000:
            version = (first >> 16) & 0x7FFF
            if version != VERSION:
                raise SpdyProtocolError(UNSUPPORTED_VERSION, f"SPDY version {version}")
            limit = self._max_control_length
        else:
            limit = self._max_data_length
        if length > limit:
            raise SpdyProtocolError(FRAME_TOO_LARGE, f"frame of {length} bytes (limit {limit})")

    def _decode(self, first: int, flags: int, payload: bytes) -> Frame:
        if not first & 0x80000000:
            return _decode_data(first & MAX_STREAM_ID, flags, payload)
        kind = first & 0xFFFF
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            return self._decode_with_headers(kind, flags, payload)
        decoder = _FIXED_DECODERS.get(kind)
        if decoder is None:
            # spdystream fails the connection on types it does not know (including
            # CREDENTIAL, 10), so a peer can rely on nothing else.
            raise SpdyProtocolError(PROTOCOL_ERROR, f"unknown control frame type {kind}")
        return decoder(flags, payload)

    def _decode_with_headers(self, kind: int, flags: int, payload: bytes) -> Frame:
        fixed = 10 if kind == SYN_STREAM else 4
        if len(payload) < fixed:
            raise SpdyProtocolError(PROTOCOL_ERROR,
                                    f"control frame {kind} of {len(payload)} bytes")
        stream_id = _stream_id(payload, 0)
        headers = decode_header_block(self._inflate_block(payload[fixed:]))
        fin = bool(flags & FLAG_FIN)
        if kind == SYN_REPLY:
            return SynReply(stream_id, headers, fin)
        if kind == HEADERS:
            return Headers(stream_id, headers, fin)
        return SynStream(stream_id, headers,
                         associated_id=_U32.unpack_from(payload, 4)[0] & MAX_STREAM_ID,
                         priority=payload[8] >> 5, slot=payload[9], fin=fin,
                         unidirectional=bool(flags & FLAG_UNIDIRECTIONAL))

    def _inflate_block(self, block: bytes) -> bytes:
        # max_length bounds the output: a zlib bomb stops at the cap plus one byte instead
        # of expanding in memory, and the leftover input proves it was over.
        try:
            out = self._inflate.decompress(block, self._max_header_block + 1)
        except zlib.error as err:
            raise SpdyProtocolError(PROTOCOL_ERROR, f"header block does not decompress: {err}") from None
        if len(out) > self._max_header_block or self._inflate.unconsumed_tail:
            raise SpdyProtocolError(
                PROTOCOL_ERROR, f"header block over {self._max_header_block} bytes")
        if self._inflate.eof:
            # The peer ended its zlib stream; no later block could be decoded.
            raise SpdyProtocolError(PROTOCOL_ERROR, "header compression stream ended")
        return out


def _stream_id(payload: bytes, pos: int) -> int:
    stream_id = _U32.unpack_from(payload, pos)[0] & MAX_STREAM_ID
    if stream_id == 0:
        raise SpdyProtocolError(PROTOCOL_ERROR, "stream ID 0")
    return stream_id


def _expect_length(kind: str, payload: bytes, length: int) -> None:
    if len(payload) != length:
        raise SpdyProtocolError(PROTOCOL_ERROR, f"{kind} of {len(payload)} bytes, not {length}")


def _decode_data(stream_id: int, flags: int, payload: bytes) -> DataFrame:
    if stream_id == 0:
        raise SpdyProtocolError(PROTOCOL_ERROR, "DATA on stream 0")
    return DataFrame(stream_id, payload, bool(flags & FLAG_FIN))


def _decode_rst(flags: int, payload: bytes) -> RstStream:
    _expect_length("RST_STREAM", payload, 8)
    status = _U32.unpack_from(payload, 4)[0]
    if status == 0:
        raise SpdyProtocolError(PROTOCOL_ERROR, "RST_STREAM with status 0")
    return RstStream(_stream_id(payload, 0), status)


def _decode_settings(flags: int, payload: bytes) -> Settings:
    if len(payload) < 4:
        raise SpdyProtocolError(PROTOCOL_ERROR, f"SETTINGS of {len(payload)} bytes")
    count = _U32.unpack_from(payload, 0)[0]
    _expect_length("SETTINGS", payload, 4 + 8 * count)
    entries = []
    for pos in range(4, len(payload), 8):
        flags_and_id, value = _FRAME_HEADER.unpack_from(payload, pos)
        entries.append(Setting(flags_and_id & 0xFFFFFF, value, flags_and_id >> 24))
    return Settings(tuple(entries), clear=bool(flags & FLAG_SETTINGS_CLEAR))


def _decode_ping(flags: int, payload: bytes) -> Ping:
    _expect_length("PING", payload, 4)
    return Ping(_U32.unpack(payload)[0])


def _decode_goaway(flags: int, payload: bytes) -> GoAway:
    _expect_length("GOAWAY", payload, 8)
    last_good, status = _FRAME_HEADER.unpack(payload)
    return GoAway(last_good & MAX_STREAM_ID, status)


def _decode_window_update(flags: int, payload: bytes) -> WindowUpdate:
    _expect_length("WINDOW_UPDATE", payload, 8)
    stream_id, delta = _FRAME_HEADER.unpack(payload)
    # Stream 0 is the session window in SPDY/3.1, so it is allowed here.
    return WindowUpdate(stream_id & MAX_STREAM_ID, delta & MAX_STREAM_ID)


_FIXED_DECODERS: dict[int, Callable[[int, bytes], Frame]] = {
    RST_STREAM: _decode_rst,
    SETTINGS: _decode_settings,
    PING: _decode_ping,
    GOAWAY: _decode_goaway,
    WINDOW_UPDATE: _decode_window_update,
}


# ---------------------------------------------------------------- writing


class FrameWriter:
    """Encoder for one connection's outgoing frames.

    Owns the connection's compression context, so frames must reach the wire in the order
    they were encoded.
    """

    def __init__(self) -> None:
        # The parameters spdystream's Go zlib writer uses (best compression, 32 KiB
        # window, default memLevel and strategy); any would decode, these match sizes.
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         zdict=DICTIONARY)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            return _encode_data(frame)
        if isinstance(frame, SynStream):
            return self._encode_syn_stream(frame)
        if isinstance(frame, SynReply):
            return self._encode_with_block(SYN_REPLY, _fin(frame.fin), frame.stream_id,
                                           frame.headers)
        if isinstance(frame, Headers):
            return self._encode_with_block(HEADERS, _fin(frame.fin), frame.stream_id,
                                           frame.headers)
        return _encode_fixed(frame)

    def compress_headers(self, headers: HeaderInput) -> bytes:
        # Z_SYNC_FLUSH ends each block on a byte boundary with everything emitted, which
        # is what lets the peer decode it now while keeping the shared history.
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def _encode_syn_stream(self, frame: SynStream) -> bytes:
        if not 0 <= frame.priority <= 7:
            raise ValueError(f"priority {frame.priority} is not 0..7")
        flags = _fin(frame.fin) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
        fixed = (_U32.pack(_check_id(frame.stream_id))
                 + _U32.pack(_check_id(frame.associated_id, zero_ok=True))
                 + bytes([frame.priority << 5, frame.slot]))
        return _control(SYN_STREAM, flags, fixed + self.compress_headers(frame.headers))

    def _encode_with_block(self, kind: int, flags: int, stream_id: int,
                           headers: HeaderInput) -> bytes:
        payload = _U32.pack(_check_id(stream_id)) + self.compress_headers(headers)
        return _control(kind, flags, payload)


def _fin(fin: bool) -> int:
    return FLAG_FIN if fin else 0


def _check_id(stream_id: int, zero_ok: bool = False) -> int:
    if not (0 if zero_ok else 1) <= stream_id <= MAX_STREAM_ID:
        raise ValueError(f"stream ID {stream_id} out of range")
    return stream_id


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"control frame payload of {len(payload)} bytes")
    return _FRAME_HEADER.pack(0x80000000 | VERSION << 16 | kind,
                              flags << 24 | len(payload)) + payload


def _encode_data(frame: DataFrame) -> bytes:
    if len(frame.data) > MAX_LENGTH:
        raise ValueError(f"DATA payload of {len(frame.data)} bytes")
    return _FRAME_HEADER.pack(_check_id(frame.stream_id),
                              _fin(frame.fin) << 24 | len(frame.data)) + frame.data


def _encode_fixed(frame: Frame) -> bytes:
    if isinstance(frame, RstStream):
        return _control(RST_STREAM, 0, _FRAME_HEADER.pack(_check_id(frame.stream_id),
                                                          frame.status))
    if isinstance(frame, Settings):
        entries = b"".join(_FRAME_HEADER.pack(e.flags << 24 | e.id, e.value)
                           for e in frame.entries)
        flags = FLAG_SETTINGS_CLEAR if frame.clear else 0
        return _control(SETTINGS, flags, _U32.pack(len(frame.entries)) + entries)
    if isinstance(frame, Ping):
        return _control(PING, 0, _U32.pack(frame.ping_id))
    if isinstance(frame, GoAway):
        return _control(GOAWAY, 0, _FRAME_HEADER.pack(
            _check_id(frame.last_good_stream_id, zero_ok=True), frame.status))
    if isinstance(frame, WindowUpdate):
        return _control(WINDOW_UPDATE, 0, _FRAME_HEADER.pack(
            _check_id(frame.stream_id, zero_ok=True), frame.delta))
    raise TypeError(f"not a SPDY frame: {frame!r}")
