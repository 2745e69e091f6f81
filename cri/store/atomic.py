"""Crash-safe file writes: a reader (or the shim after a crash) sees the old
content or the new one, never a torn file.  Temp file in the same directory,
fsync, rename over, fsync the directory so the rename itself is durable."""
from __future__ import annotations

import json
import os


def write_bytes(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """``durable=False`` keeps the atomic rename but skips the fsyncs, for files that
    need not survive a power loss (a reboot makes them meaningless anyway)."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if not durable:
        return
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json(path: str, obj, durable: bool = True) -> None:
    write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode(), durable=durable)


def read_json(path: str):
    with open(path, "rb") as f:
        return json.loads(f.read())


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
