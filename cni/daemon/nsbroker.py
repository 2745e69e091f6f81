"""A single-threaded helper process that opens netlink sockets inside pod namespaces.

The daemon is long-lived and threaded, so it never calls setns() itself (a thread
switched into a pod's namespace could run other work there).  pyroute2's answer
is to fork a child per socket, which costs ~8 ms per verb in a 40 MB process.
This broker is the same idea made cheap: one small process, started once, with
exactly one thread, whose only job is

    receive a netns fd -> setns() in -> socket(AF_NETLINK) -> setns() back -> send the socket

Sockets stay bound to the namespace they were created in, so the daemon's
threads use them from the host namespace.  If the broker cannot return to its
own namespace it exits at once; the daemon then falls back to pyroute2's fork.
Standard library only; run as ``python -S -m cni.daemon.nsbroker FD``.
"""
from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
import threading
from typing import Optional

_CLONE_NEWNET = 0x40000000
_NETLINK_ROUTE = 0


# --- the broker process ---------------------------------------------------------------

def _serve(channel: socket.socket) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(channel, 16, 1)
        except OSError:
            return
        if not fds:
            return  # the daemon closed its end: we are done
        ns_fd, = fds
        try:
            if libc.setns(ns_fd, _CLONE_NEWNET) != 0:
                channel.send(f"E{os.strerror(ctypes.get_errno())}".encode())
                continue
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:
                    os._exit(70)  # never serve another request from the wrong namespace
            socket.send_fds(channel, [b"K"], [sock.fileno()])
            sock.close()
        finally:
            os.close(ns_fd)


# --- the daemon's side ------------------------------------------------------------------

class NsBroker:
    """Client of one broker process; thread-safe (requests are serialised, ~50 µs each)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-m", "cni.daemon.nsbroker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env={**os.environ, "PYTHONPATH": package_root},
            stdin=subprocess.DEVNULL)
        theirs.close()
        self._channel = ours
        self._lock = threading.Lock()

    def open_socket(self, ns_fd: int) -> Optional[socket.socket]:
        """A NETLINK_ROUTE socket in the namespace of ``ns_fd``; None if the broker is gone
        (the caller falls back).  Raises OSError when the fd is not a usable netns."""
        with self._lock:
            try:
                socket.send_fds(self._channel, [b"N"], [ns_fd])
                msg, fds, _, _ = socket.recv_fds(self._channel, 256, 1)
            except OSError:
                return None
        if not msg:
            return None
        if msg[:1] == b"E":
            raise OSError(msg[1:].decode())
        return socket.socket(fileno=fds[0])

    def close(self) -> None:
        self._channel.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


if __name__ == "__main__":
    _serve(socket.socket(fileno=int(sys.argv[1])))
