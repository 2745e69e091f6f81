"""The compile cache's object format (netpol/datapath/objects.py), without a kernel."""
from __future__ import annotations

import os
import struct
import time

import pytest

from netpol.datapath import objects
from netpol.datapath.loader import BPF_DIR, source_text


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("=BBhi", opcode, (src << 4) | dst, off, imm)


def ld_map(dst: int, fd: int, src: int = 1) -> bytes:
    """BPF_LD_IMM64 of a map fd (src 1) or map value (src 2): two slots."""
    return insn(0x18, dst, src, 0, fd) + insn(0, 0, 0, 0, 0)


def test_map_references_find_each_map_load_and_skip_the_second_slot():
    code = (insn(0xb7, 0, 0, 0, 0)           # r0 = 0
            + ld_map(1, 7)                   # r1 = map fd 7        (index 1, 2)
            + ld_map(2, 0x18, src=0)         # r2 = a plain 64-bit constant that looks like an opcode
            + ld_map(3, 9, src=2)            # r3 = value of map fd 9 (index 5, 6)
            + insn(0x95))                    # exit
    assert objects.map_references(code) == [(1, 7), (5, 9)]


def test_patch_writes_each_fd_at_its_instruction_and_nothing_else():
    code = insn(0xb7) + ld_map(1, 7) + ld_map(2, 7) + insn(0x95)
    spec = objects.ProgSpec(code, [(1, "pw_a"), (3, "pw_b")])
    out = objects.patch(spec, {"pw_a": 41, "pw_b": 42})
    assert objects.map_references(out) == [(1, 41), (3, 42)]
    assert out[:8] == code[:8] and out[-8:] == code[-8:] and len(out) == len(code)


def _sample(key: str = "k1") -> objects.Objects:
    return objects.Objects(key, "GPL", {"pw_a": objects.MapSpec(1, 4, 8, 16, 0, "a"),
                                        "pw_drops": objects.MapSpec(27, 0, 0, 4096, 0, None)},
                           {"from_pod": objects.ProgSpec(insn(0xb7) + insn(0x95), [])}, nf_error="no BTF")


def test_objects_round_trip_through_json():
    obj = _sample()
    back = objects.Objects.from_json(obj.to_json())
    assert back == obj


def test_the_key_changes_with_any_source_byte(tmp_path):
    import shutil
    copy = tmp_path / "bpf"
    shutil.copytree(BPF_DIR, copy)
    assert objects.cache_key(source_text(str(copy))) == objects.cache_key(source_text())
    with open(copy / "lib" / "conntrack.h", "a") as f:  # a header: inlined, so part of the key
        f.write("\n")
    assert objects.cache_key(source_text(str(copy))) != objects.cache_key(source_text())


@pytest.mark.parametrize("text", ["", "{", '{"format": 99, "key": "k1"}', '{"format": 1, "key": "k1"}', "[]"])
def test_an_unusable_object_reads_as_none(tmp_path, text):
    path = tmp_path / "k1.json"
    path.write_text(text)
    assert objects.read(str(path), "k1") is None


def test_an_object_for_another_key_reads_as_none(tmp_path):
    path = tmp_path / "k1.json"
    path.write_text(_sample("k2").to_json())
    assert objects.read(str(path), "k1") is None
    assert objects.read(str(tmp_path / "missing.json"), "k1") is None


def test_write_is_atomic_and_prunes_to_the_newest(tmp_path):
    cache = tmp_path / "cache"
    old = time.time() - 3600
    for i in range(6):
        objects.write(str(cache / f"old{i}.json"), _sample(f"old{i}"))
        os.utime(cache / f"old{i}.json", (old + i, old + i))
    (cache / "x.json.123.tmp").write_text("half")
    os.utime(cache / "x.json.123.tmp", (old, old))
    objects.write(str(cache / "new.json"), _sample("new"))
    names = sorted(os.listdir(cache))
    assert names == ["new.json", "old3.json", "old4.json", "old5.json"]
    assert objects.read(str(cache / "new.json"), "new") == _sample("new")


def test_a_failed_write_leaves_no_partial_object(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(objects.os, "replace", refuse)
    with pytest.raises(OSError):
        objects.write(str(tmp_path / "k1.json"), _sample())
    assert os.listdir(tmp_path) == []
