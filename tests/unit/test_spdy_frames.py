"""SPDY/3.1 codec: wire layout, header compression, and refusal of malformed input."""
import struct
import tracemalloc
import zlib

import pytest

from cri.streaming import spdy
from cri.streaming.spdy import (DICTIONARY, DataFrame, FrameReader, FrameWriter, GoAway,
                                Headers, Ping, RstStream, Setting, Settings, SpdyProtocolError,
                                SynReply, SynStream, WindowUpdate)


def control(kind: int, payload: bytes, flags: int = 0, version: int = 3) -> bytes:
    """A control frame built by hand, independent of FrameWriter."""
    return struct.pack(">HHI", 0x8000 | version, kind, flags << 24 | len(payload)) + payload


def block(*pairs: tuple[bytes, bytes], count: int | None = None) -> bytes:
    """An uncompressed header block built by hand."""
    out = struct.pack(">I", len(pairs) if count is None else count)
    for name, value in pairs:
        out += struct.pack(">I", len(name)) + name + struct.pack(">I", len(value)) + value
    return out


def fresh_deflate():
    return zlib.compressobj(9, zlib.DEFLATED, 15, 8, 0, zdict=DICTIONARY)


def syn_stream_with(compressed: bytes, stream_id: int = 1) -> bytes:
    return control(spdy.SYN_STREAM, struct.pack(">IIBB", stream_id, 0, 0, 0) + compressed)


def decode_all(data: bytes) -> list:
    return FrameReader().feed(data)


# ---------------------------------------------------------------- the dictionary


def test_dictionary_is_the_spdy3_constant():
    assert len(DICTIONARY) == 1423
    assert zlib.adler32(DICTIONARY) == 0xE3C6A7C2


def test_first_header_block_names_the_dictionary():
    # A zlib stream with a preset dictionary carries FDICT and the dictionary's adler32
    # right after its 2-byte header; this is what a Go peer checks before inflating.
    frame = FrameWriter().encode(SynStream(1, {"streamtype": "error"}))
    compressed = frame[8 + 10:]
    assert compressed[1] & 0x20
    assert struct.unpack(">I", compressed[2:6])[0] == 0xE3C6A7C2


def test_header_block_needs_the_dictionary():
    frame = FrameWriter().encode(SynStream(1, {"streamtype": "stdout"}))
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(frame[8 + 10:])


# ---------------------------------------------------------------- wire layout


def test_data_frame_bytes():
    assert FrameWriter().encode(DataFrame(5, b"hi", fin=True)) == (
        b"\x00\x00\x00\x05" b"\x01\x00\x00\x02" b"hi")


def test_rst_stream_bytes():
    assert FrameWriter().encode(RstStream(1, spdy.CANCEL)) == (
        b"\x80\x03\x00\x03" b"\x00\x00\x00\x08" b"\x00\x00\x00\x01" b"\x00\x00\x00\x05")


def test_ping_and_goaway_bytes():
    assert FrameWriter().encode(Ping(7)) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x07"
    assert FrameWriter().encode(GoAway(3, spdy.GOAWAY_PROTOCOL_ERROR)) == (
        b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x01")


def test_syn_stream_fixed_fields():
    frame = FrameWriter().encode(SynStream(3, {}, associated_id=1, priority=7, slot=2,
                                           fin=True, unidirectional=True))
    kind, flags_length = struct.unpack(">II", frame[:8])
    assert kind == 0x80030001
    assert flags_length >> 24 == spdy.FLAG_FIN | spdy.FLAG_UNIDIRECTIONAL
    assert flags_length & 0xFFFFFF == len(frame) - 8
    assert frame[8:18] == b"\x00\x00\x00\x03\x00\x00\x00\x01\xe0\x02"


ALL_FRAMES = [
    DataFrame(1, b"payload"),
    DataFrame(0x7FFFFFFF, b"", fin=True),
    SynStream(1, {"streamtype": "error"}),
    SynStream(3, {"streamtype": "data", "port": "80", "requestid": "0"}, associated_id=1,
              priority=3, slot=9, fin=True, unidirectional=True),
    SynReply(2, {}),
    SynReply(5, {"x": "y"}, fin=True),
    RstStream(7, spdy.PROTOCOL_ERROR),
    Settings((Setting(7, 65536, flags=1), Setting(4, 100)), clear=True),
    Settings(),
    Ping(1),
    Ping(0xFFFFFFFE),
    GoAway(0),
    GoAway(9, spdy.GOAWAY_INTERNAL_ERROR),
    Headers(1, {"a": "b"}, fin=True),
    WindowUpdate(0, 0x7FFFFFFF),
    WindowUpdate(3, 1),
]


@pytest.mark.parametrize("frame", ALL_FRAMES, ids=lambda f: type(f).__name__)
def test_round_trip(frame):
    assert decode_all(FrameWriter().encode(frame)) == [frame]


def test_round_trip_all_in_one_stream_fed_byte_by_byte():
    writer = FrameWriter()
    wire = b"".join(writer.encode(f) for f in ALL_FRAMES)
    reader = FrameReader()
    frames = []
    for i in range(len(wire)):
        frames += reader.feed(wire[i:i + 1])
    assert frames == ALL_FRAMES
    assert reader.buffered == 0


def test_truncated_frame_waits_for_the_rest():
    wire = FrameWriter().encode(DataFrame(1, b"x" * 100))
    reader = FrameReader()
    assert reader.feed(wire[:4]) == []
    assert reader.feed(wire[4:50]) == []
    assert reader.buffered == 50
    assert reader.feed(wire[50:]) == [DataFrame(1, b"x" * 100)]


# ---------------------------------------------------------------- header blocks


def test_names_lowercased_and_values_nul_joined():
    frame = FrameWriter().encode(SynStream(1, {"StreamType": "error", "Accept": ["a", "b"]}))
    (decoded,) = decode_all(frame)
    assert decoded.headers == {"streamtype": "error", "accept": "a\x00b"}
    assert decoded.headers["accept"].split(spdy.HEADER_SEPARATOR) == ["a", "b"]


def test_header_blocks_share_one_context_per_direction():
    writer = FrameWriter()
    headers = {"streamtype": "stdout", "port": "8080", "requestid": "17"}
    frames = [writer.encode(SynStream(i, headers)) for i in (1, 3, 5)]
    # The second block is mostly back-references into the first: proof of shared history.
    assert len(frames[1]) < len(frames[0])
    reader = FrameReader()
    assert [f.headers for f in reader.feed(b"".join(frames))] == [headers] * 3
    # ...and so it cannot be decoded by a context that has not seen the first.
    with pytest.raises(SpdyProtocolError):
        FrameReader().feed(frames[1])


def test_decodes_blocks_from_an_independent_compressor():
    deflate = fresh_deflate()
    wire = b""
    for i, value in ((1, b"error"), (3, b"stdin")):
        raw = block((b"streamtype", value))
        wire += syn_stream_with(deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH), i)
    assert [f.headers["streamtype"] for f in decode_all(wire)] == ["error", "stdin"]


def test_encoder_refuses_what_the_peer_would():
    with pytest.raises(ValueError):
        FrameWriter().encode(SynStream(1, {"Port": "1", "port": "2"}))
    with pytest.raises(ValueError):
        FrameWriter().encode(DataFrame(0x80000000, b""))
    with pytest.raises(ValueError):
        FrameWriter().encode(SynStream(0, {}))


# ---------------------------------------------------------------- malformed input


def compressed(raw: bytes) -> bytes:
    deflate = fresh_deflate()
    return deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)


MALFORMED = {
    "oversized data": struct.pack(">II", 1, spdy.MAX_DATA_LENGTH + 1),
    "oversized control": struct.pack(">HHI", 0x8003, spdy.PING, spdy.MAX_CONTROL_LENGTH + 1),
    "unknown type 5": control(5, b"\x00" * 4),
    "credential type 10": control(10, b"\x00" * 4),
    "unknown type 0xffff": control(0xFFFF, b""),
    "version 2": control(spdy.PING, b"\x00\x00\x00\x01", version=2),
    "version 4": control(spdy.RST_STREAM, b"\x00\x00\x00\x01\x00\x00\x00\x05", version=4),
    "garbage header block": syn_stream_with(b"\xde\xad\xbe\xef" * 8),
    "empty header block": syn_stream_with(b""),
    "header count larger than block": syn_stream_with(compressed(
        block((b"a", b"b"), count=1_000_000))),
    "name runs past block": syn_stream_with(compressed(
        struct.pack(">II", 1, 1000) + b"abc")),
    "trailing bytes after headers": syn_stream_with(compressed(block((b"a", b"b")) + b"xx")),
    "uppercase name": syn_stream_with(compressed(block((b"Port", b"80")))),
    "duplicate name": syn_stream_with(compressed(block((b"a", b"1"), (b"a", b"2")))),
    "empty name": syn_stream_with(compressed(block((b"", b"1")))),
    "syn_stream too short": control(spdy.SYN_STREAM, b"\x00\x00\x00\x01\x00"),
    "syn_reply too short": control(spdy.SYN_REPLY, b"\x00\x01"),
    "rst too short": control(spdy.RST_STREAM, b"\x00\x00\x00\x01"),
    "rst status 0": control(spdy.RST_STREAM, b"\x00\x00\x00\x01\x00\x00\x00\x00"),
    "rst stream 0": control(spdy.RST_STREAM, b"\x00\x00\x00\x00\x00\x00\x00\x05"),
    "ping too long": control(spdy.PING, b"\x00" * 8),
    "goaway too short": control(spdy.GOAWAY, b"\x00" * 4),
    "window_update too short": control(spdy.WINDOW_UPDATE, b"\x00" * 4),
    "settings count mismatch": control(spdy.SETTINGS, struct.pack(">III", 2, 1, 1)),
    "settings too short": control(spdy.SETTINGS, b"\x00"),
    "syn_stream on stream 0": syn_stream_with(compressed(block()), stream_id=0),
    "data on stream 0": struct.pack(">II", 0, 1) + b"x",
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_raises(wire):
    with pytest.raises(SpdyProtocolError):
        decode_all(wire)


def test_oversized_frame_refused_from_its_header_alone():
    # Only the 8-byte header arrives: we must not wait to buffer the declared megabytes.
    with pytest.raises(SpdyProtocolError) as err:
        FrameReader(max_data_length=1024).feed(struct.pack(">II", 1, 1025))
    assert err.value.status == spdy.FRAME_TOO_LARGE


def test_wrong_version_status():
    with pytest.raises(SpdyProtocolError) as err:
        decode_all(MALFORMED["version 2"])
    assert err.value.status == spdy.UNSUPPORTED_VERSION


def test_zlib_bomb_stops_at_the_cap():
    # 32 MiB of zeros in one header value compresses to ~32 KiB; decoding must stop near
    # the 1 MiB cap instead of inflating all of it.
    raw = block((b"a", b"\x00" * (32 << 20)))
    wire = syn_stream_with(compressed(raw))
    del raw
    assert len(wire) < spdy.MAX_CONTROL_LENGTH
    tracemalloc.start()
    try:
        with pytest.raises(SpdyProtocolError, match="over"):
            decode_all(wire)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * spdy.MAX_HEADER_BLOCK


def test_header_block_at_the_cap_is_accepted():
    value = b"v" * 1000
    raw = block((b"a", value))
    reader = FrameReader(max_header_block=len(raw))
    (frame,) = reader.feed(syn_stream_with(compressed(raw)))
    assert frame.headers["a"] == value.decode()
    with pytest.raises(SpdyProtocolError):
        FrameReader(max_header_block=len(raw) - 1).feed(syn_stream_with(compressed(raw)))


def test_reader_stays_failed():
    reader = FrameReader()
    with pytest.raises(SpdyProtocolError):
        reader.feed(MALFORMED["unknown type 5"])
    # The zlib context may be out of step after an error: even valid input is refused.
    with pytest.raises(SpdyProtocolError):
        reader.feed(FrameWriter().encode(Ping(1)))
