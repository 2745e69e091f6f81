"""Crash-safe file writes for every podwire component (cni/ is the lowest layer all import):
a reader, or a daemon restarted after a crash, sees the old content or the new, never a torn
file.  Temp file in the same directory, fsync, rename over, fsync the directory so the rename
itself is durable; the temp file never outlives a failure."""
from __future__ import annotations

import contextlib
import itertools
import os
import _thread
from typing import Optional

_serial = itertools.count()  # with pid and thread: a temp name no concurrent call shares


def write_bytes(path: str, data: bytes, mode: int = 0o600, durable: bool = True,
                scratch_dir: Optional[str] = None) -> None:
    """``durable=False`` keeps the atomic rename but skips the fsyncs, for files that need not
    survive a power loss (a reboot makes them meaningless anyway).  ``scratch_dir`` (same
    filesystem) holds the temp file instead of ``path``'s directory, for directories whose
    listing must never show one, even after a kill -9 (the image store's blobs).  Temp names
    are unique per call, so threads writing the same path at once cannot tear each other's."""
    directory = os.path.dirname(path) or "."
    # Not tempfile: importing it costs the CNI executables ~3 ms per pod (random, shutil).
    name = f".{os.path.basename(path)}.{os.getpid()}-{_thread.get_ident()}-{next(_serial)}.tmp"
    tmp = os.path.join(scratch_dir or directory, name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
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
