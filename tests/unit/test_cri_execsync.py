"""ExecSync's reading of the CRI log conmon writes for the command's output."""
from __future__ import annotations

from cri.oci import execsync


def test_output_joins_partials_splits_streams_and_caps(tmp_path, monkeypatch):
    log = tmp_path / "output.log"
    log.write_bytes(b"2026-01-01T00:00:00.000000001+00:00 stdout P hel\n"
                    b"2026-01-01T00:00:00.000000002+00:00 stdout F lo world\n"
                    b"2026-01-01T00:00:00.000000003+00:00 stderr F oops\n"
                    b"2026-01-01T00:00:00.000000004+00:00 stdout F\n"
                    b"garbage\n"
                    b"2026-01-01T00:00:00.000000005+00:00 stdout P no newline at the end\n")
    assert execsync._output(str(log)) == (b"hello world\n\nno newline at the end", b"oops\n")
    monkeypatch.setattr(execsync, "MAX_OUTPUT", 4)
    assert execsync._output(str(log)) == (b"hell", b"oops")


def test_no_output_file_is_empty_output(tmp_path):
    assert execsync._output(str(tmp_path / "absent.log")) == (b"", b"")
