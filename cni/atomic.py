"""Crash-safe file writes for every podwire component (cni/ is the lowest layer all import):
a reader, or a daemon restarted after a crash, sees the old content or the new, never a torn
file.  Temp file in the same directory, fsync, rename over, fsync the directory so the rename
itself is durable; the temp file never outlives a failure."""
from __future__ import annotations

import contextlib
import os


def write_bytes(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """``durable=False`` keeps the atomic rename but skips the fsyncs, for files that need not
    survive a power loss (a reboot makes them meaningless anyway)."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)          # the umask may have taken bits off
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
