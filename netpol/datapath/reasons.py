"""Verdict reasons, mirroring netpol/bpf/lib/drop_reasons.h.

Must be in sync with that header (tests/unit/test_netpol_reasons.py parses it
and compares).  FWD_* are counted only; DROP_* also produce drop events.
"""
from __future__ import annotations

import re

FWD_UNISOLATED = 1
FWD_POLICY = 2
FWD_REPLY = 3
FWD_HOST = 4
FWD_SELF = 5
FWD_CONTROL = 6
FWD_DEFERRED = 7

DROP_POLICY = 16
DROP_SPOOFED_SOURCE = 17
DROP_UNKNOWN_ENDPOINT = 18
DROP_MALFORMED = 19
DROP_UNSUPPORTED_L3 = 20
DROP_NO_CONNECTION = 21
DROP_SERVICE_BYPASS = 22

REASON_MAX = 32

# name (as in the header, without the prefix) -> (code, text shown to users)
REASONS: dict[str, tuple[int, str]] = {
    "FWD_UNISOLATED": (FWD_UNISOLATED, "not isolated"),
    "FWD_POLICY": (FWD_POLICY, "allowed by policy"),
    "FWD_REPLY": (FWD_REPLY, "reply of a tracked connection"),
    "FWD_HOST": (FWD_HOST, "from the node"),
    "FWD_SELF": (FWD_SELF, "pod to itself"),
    "FWD_CONTROL": (FWD_CONTROL, "ARP / neighbour discovery"),
    "FWD_DEFERRED": (FWD_DEFERRED, "to a Service: judged after DNAT"),
    "DROP_POLICY": (DROP_POLICY, "Policy denied"),
    "DROP_SPOOFED_SOURCE": (DROP_SPOOFED_SOURCE, "Source address not the pod's"),
    "DROP_UNKNOWN_ENDPOINT": (DROP_UNKNOWN_ENDPOINT, "Unknown endpoint"),
    "DROP_MALFORMED": (DROP_MALFORMED, "Malformed packet"),
    "DROP_UNSUPPORTED_L3": (DROP_UNSUPPORTED_L3, "Unsupported L3 protocol"),
    "DROP_NO_CONNECTION": (DROP_NO_CONNECTION, "Reply without a tracked connection"),
    "DROP_SERVICE_BYPASS": (DROP_SERVICE_BYPASS, "Service traffic that bypassed the post-DNAT check"),
}
TEXT = {code: text for code, text in REASONS.values()}


def text_of(code: int) -> str:
    return TEXT.get(code, f"reason {code}")


def is_drop(code: int) -> bool:
    return code >= DROP_POLICY


def parse_header(source: str) -> dict[str, int]:
    """The FWD_*/DROP_* defines of drop_reasons.h, for the consistency test."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^#define\s+((?:FWD|DROP)_[A-Z0-9_]+)\s+(\d+)", source, re.M)}
