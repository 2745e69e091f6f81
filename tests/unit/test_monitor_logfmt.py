"""The CRI log line encoder and the monitor's state derivation."""
from __future__ import annotations

import os
import re

from cri.monitor import files
from cri.monitor.logfmt import LineEncoder, timestamp
from cri.oci.state import State, read_state


def enc(max_line: int = 16384) -> LineEncoder:
    return LineEncoder("stdout", max_line, clock=lambda: 1_700_000_000_123_456_789)


def msgs(lines: list[bytes]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        assert line.endswith(b"\n")
        ts, stream, tag, msg = line[:-1].decode().split(" ", 3)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", ts) and stream == "stdout"
        out.append((tag, msg))
    return out


def test_timestamp_is_rfc3339nano_utc():
    assert timestamp(1_700_000_000_000_000_001) == b"2023-11-14T22:13:20.000000001Z"


def test_full_lines_crlf_and_fragments():
    e = enc()
    assert msgs(e.feed(b"one\ntw")) == [("F", "one")]
    assert msgs(e.feed(b"o\r\n\nthree")) == [("F", "two"), ("F", "")]
    assert msgs(e.close()) == [("P", "three")]  # unterminated at EOF
    assert e.close() == []


def test_long_lines_split_at_max_line():
    e = enc(max_line=8)
    assert msgs(e.feed(b"12345678\n")) == [("F", "12345678")]        # exactly max: one F
    assert msgs(e.feed(b"123456789\n")) == [("P", "12345678"), ("F", "9")]
    assert msgs(e.feed(b"x" * 20)) == [("P", "x" * 8), ("P", "x" * 8)]
    assert msgs(e.feed(b"\n")) == [("F", "xxxx")]


def test_default_max_is_16k():
    e = LineEncoder("stderr")
    lines = e.feed(b"a" * 40000 + b"\n")
    assert [len(line.split(b" ", 3)[3]) - 1 for line in lines] == [16384, 16384, 40000 - 32768]
    assert [line.split(b" ")[2] for line in lines] == [b"P", b"P", b"F"]


def test_state_from_files(tmp_path):
    d = str(tmp_path)
    assert read_state("x", str(tmp_path / "missing")) is None
    me = files.ProcRef.of(os.getpid())
    files.write_json(os.path.join(d, files.MONITOR), me.to_json())
    assert read_state("x", d).state == State.CREATED               # create under way
    files.write_json(os.path.join(d, files.CREATED), {**me.to_json(), "created_at": 1})
    assert read_state("x", d).state == State.CREATED               # init alive, not started
    files.write_json(os.path.join(d, files.STARTED), {"started_at": 2})
    assert read_state("x", d).state == State.RUNNING
    files.write_json(os.path.join(d, files.EXIT), {"exit_code": 1, "finished_at": 3,
                                                   "reason": "Error"})
    st = read_state("x", d)
    assert (st.state, st.exit_code, st.reason, st.created_at, st.started_at, st.finished_at) == \
        (State.EXITED, 1, "Error", 1, 2, 3)


def test_state_when_monitor_and_init_are_gone(tmp_path):
    d = str(tmp_path)
    gone = {"pid": 2 ** 22 + 1, "start_time": 1}  # above pid_max: never alive
    files.write_json(os.path.join(d, files.MONITOR), gone)
    assert read_state("x", d).state == State.UNKNOWN               # create failed
    files.write_json(os.path.join(d, files.CREATED), {**gone, "created_at": 1})
    st = read_state("x", d)
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, 255, "Unknown")
