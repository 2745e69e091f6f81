"""The shim's JSON records, written crash-safe through cni.atomic (the project's one atomic
write): a reader, or the shim after a crash, sees the old content or the new, never a torn file."""
from __future__ import annotations

import json

from cni import atomic


def write_bytes(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    atomic.write_bytes(path, data, mode, durable)


def write_json(path: str, obj, durable: bool = True) -> None:
    write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode(), durable=durable)


def read_json(path: str):
    with open(path, "rb") as f:
        return json.loads(f.read())

