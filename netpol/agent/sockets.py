"""The agent's unix sockets, root's only, made without touching the process umask.

umask is process-wide: changing it around a bind while the agent's other threads create files
(state, pins) would give those files the socket's mode, or the socket theirs.  Instead the
socket is bound inside a fresh 0700 directory beside its final path, made 0600, and renamed
into place: the listening socket moves with its name, and at no moment can anyone but root
reach it."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, TypeVar

T = TypeVar("T")


def bind_private(path: str, bind: Callable[[str], T]) -> T:
    """Run ``bind(staging_path)``, then move the socket it made to ``path`` (mode 0600)."""
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".bind-", dir=parent)      # 0700
    try:
        staged = os.path.join(staging, "socket")
        result = bind(staged)
        os.chmod(staged, 0o600)
        os.replace(staged, path)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
