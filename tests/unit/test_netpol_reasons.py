"""The C headers and their Python mirrors agree (drop reasons, constants); the structs' layout:
tests/unit/test_netpol_struct_layout.py."""
from __future__ import annotations

import os
import re

from netpol.compiler import entries
from netpol.datapath import reasons
from netpol.datapath.loader import BPF_DIR, source_text


def _read(name: str) -> str:
    with open(os.path.join(BPF_DIR, "lib", name)) as f:
        return f.read()


def test_drop_reason_table_matches_the_header():
    in_header = reasons.parse_header(_read("drop_reasons.h"))
    in_python = {name: code for name, (code, _) in reasons.REASONS.items()}
    assert in_header == in_python
    assert all(getattr(reasons, name) == code for name, code in in_header.items())
    assert len(set(in_header.values())) == len(in_header)
    assert max(in_header.values()) < reasons.REASON_MAX
    assert re.search(rf"#define REASON_MAX {reasons.REASON_MAX}\b", _read("drop_reasons.h"))
    assert all(reasons.is_drop(c) == n.startswith("DROP_") for n, c in in_header.items())


def test_common_constants_match_the_compiler():
    common = _read("common.h")
    for name, value in (("DIR_INGRESS", entries.DIR_INGRESS), ("DIR_EGRESS", entries.DIR_EGRESS),
                        ("ANY_IDENTITY", entries.ANY_IDENTITY), ("WORLD_IDENTITY", entries.WORLD_IDENTITY)):
        assert re.search(rf"#define {name} {value}\b", common), name
    assert entries.ISOLATE_INGRESS == 1 << entries.DIR_INGRESS and entries.ISOLATE_EGRESS == 1 << entries.DIR_EGRESS


def test_sources_inline_every_header_once():
    text = source_text()
    assert '#include "' not in text
    assert text.count("#define PW_MAPS_H") == 1
    assert "int from_pod(struct __sk_buff *skb)" in text and "int to_pod(struct __sk_buff *skb)" in text
