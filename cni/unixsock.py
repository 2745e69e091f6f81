"""Unix socket files of podwire's daemons (podwire-cnid, podwire-cri, podwire-netpol).

Standard library only, and in cni/ because that is the lowest layer all three may import.
A daemon that crashed leaves its socket file behind: nobody answers on it, and it is removed.
A file somebody answers on belongs to a daemon that is running: that is an error for the
caller to report in its own protocol's words."""
from __future__ import annotations

import contextlib
import os
import socket


class SocketInUse(Exception):
    """Another process answers on the socket file."""


def clear_stale(path: str) -> None:
    """Remove ``path`` if it is a socket nobody answers on; SocketInUse if somebody does."""
    if not os.path.lexists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except OSError:               # refused (stale), gone meanwhile, or not a socket at all
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise SocketInUse(f"{path} is in use")
