"""The monitor's control socket (ctl.sock in the state dir): one request line, one reply line.

Requests: "reopen" (ReopenContainerLog).  Replies: "ok" or "error <message>".
Unix socket paths are limited to 108 bytes and state dirs can be deeper than that, so the monitor
binds relative to its cwd (the state dir) and the client connects through /proc/self/fd/<dirfd>.
"""
from __future__ import annotations

import os
import socket
TYPE_CHECKING = False  # not `from typing`: the monitor does not import typing at run time

if TYPE_CHECKING:
    from typing import Callable

REPLY_OK = "ok"


class ControlServer:
    def __init__(self, name: str) -> None:
        """Bind `name` relative to the cwd (the monitor chdir()s into its state dir)."""
        self.name = name
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(name)
        self.sock.listen(8)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def serve_one(self, handlers: dict[str, Callable[[], None]]) -> None:
        """Answer one pending client; never block the monitor's loop for long."""
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(1.0)
            try:
                request = conn.recv(256).decode(errors="replace").strip()
                handler = handlers.get(request)
                if handler is None:
                    reply = f"error unknown request {request!r}"
                else:
                    try:
                        handler()
                        reply = REPLY_OK
                    except OSError as e:
                        reply = f"error {e}"
                conn.sendall(reply.encode() + b"\n")
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.name)
        except FileNotFoundError:
            pass


def request(state_dir: str, name: str, line: str, timeout: float = 5.0) -> str:
    """Send one request to the monitor whose state dir is `state_dir`; its reply line.

    Raises OSError (ENOENT / ECONNREFUSED) when no monitor listens: the container has exited."""
    dirfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
            s.settimeout(timeout)
            s.connect(f"/proc/self/fd/{dirfd}/{name}")
            s.sendall(line.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.decode(errors="replace").strip()
    finally:
        os.close(dirfd)
