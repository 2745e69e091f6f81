"""Helpers for the port-forward dialer tests (tests/unit/test_stream_dial.py, and
tests/netns/test_stream_dial_netns.py for pods' namespaces): imported, not collected."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap

# Listens on 127.0.0.1 and [::1] (ephemeral ports, printed), greets each connection with the
# address family it came in on, then echoes one line.
SERVER = textwrap.dedent("""
    import selectors, socket, sys
    sel = selectors.DefaultSelector()
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family)
        s.bind((host, 0))
        s.listen(64)
        sel.register(s, selectors.EVENT_READ, b"v4" if family == socket.AF_INET else b"v6")
        print(s.getsockname()[1], flush=True)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()
            conn.sendall(key.data + b"\\n")
            conn.sendall(conn.recv(100))
            conn.close()
""")


class Servers:
    """The two listeners in a netns (or in the host netns for netns=None)."""

    def __init__(self, netns_name: str | None) -> None:
        prefix = ["ip", "netns", "exec", netns_name] if netns_name else []
        self.proc = subprocess.Popen([*prefix, sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
        self.v4, self.v6 = (int(self.proc.stdout.readline()) for _ in range(2))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def greet(sock: socket.socket) -> bytes:
    """The server's greeting line plus the echo of b"ping"."""
    loop = asyncio.get_running_loop()
    with sock:
        assert not sock.getblocking()
        await loop.sock_sendall(sock, b"ping")
        data = b""
        while not data.endswith(b"ping"):
            chunk = await loop.sock_recv(sock, 100)
            assert chunk, data
            data += chunk
        return data


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))
