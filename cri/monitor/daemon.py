"""Detaching from the shim and becoming the container's subreaper."""
from __future__ import annotations

import ctypes
import os

PR_SET_CHILD_SUBREAPER = 36


def detach() -> None:
    """Double fork: the shim only ever waits for the short-lived first child, and the monitor is
    re-parented to init, so killing or restarting the shim does not touch it.  The session is
    new (the shim spawns us with start_new_session) so no terminal or process-group signal aimed
    at the shim reaches us; the grandchild is not a session leader and can never acquire a
    controlling terminal."""
    if os.getsid(0) != os.getpid():
        os.setsid()
    if os.fork() > 0:
        os._exit(0)


def become_subreaper() -> None:
    """Orphans below us (the container init once `runc create` exits) are re-parented to us, so
    we can wait() for the init and read its exit status."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")
