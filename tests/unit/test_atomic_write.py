"""The project's one atomic write: all or nothing, its mode whatever the umask, and no temp file
left when writing fails."""
from __future__ import annotations

import os

import pytest

from cni import atomic
from cri.monitor import files


def test_replaces_whole_and_keeps_the_mode(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    old = os.umask(0o077)
    try:
        atomic.write_bytes(str(path), b"new", mode=0o755)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o755
    assert os.listdir(tmp_path) == ["f"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def broken(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        atomic.write_bytes(str(path), b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f"]


def test_the_monitors_json_no_longer_leaves_its_temp_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(OSError):
        files.write_json(str(tmp_path / "state.json"), {"a": 1})
    assert os.listdir(tmp_path) == []


def test_threads_writing_one_path_at_once_never_tear_it(tmp_path):
    import concurrent.futures
    path = str(tmp_path / "f")
    payloads = [bytes([i]) * 65536 for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda data: atomic.write_bytes(path, data), payloads * 4))
    assert open(path, "rb").read() in payloads  # one writer's whole content
    assert os.listdir(tmp_path) == ["f"]


def test_a_scratch_dir_keeps_the_temp_out_of_the_target_directory(tmp_path, monkeypatch):
    target, scratch = tmp_path / "blobs", tmp_path / "ingest"
    target.mkdir()
    scratch.mkdir()
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), sorted(os.listdir(target))))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic.write_bytes(str(target / "abc"), b"x", scratch_dir=str(scratch))
    assert seen == [(str(scratch), [])]  # the temp lived in scratch; the target dir never listed it
    assert (target / "abc").read_bytes() == b"x" and os.listdir(scratch) == []
