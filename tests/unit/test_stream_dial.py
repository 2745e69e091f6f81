"""Port-forward's dialer (cri/streaming/dial.py): connections to localhost inside a pod's netns
through the netns_dialer process, and in the host netns directly."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import needs_root
from cri.streaming import StreamError
from cri.streaming.dial import PodDialer

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


@pytest.fixture
def pod_netns(netns_factory):
    """(netns path, servers inside it); the netns (netns_factory) and servers always removed."""
    path = netns_factory("pwdial-")
    servers = Servers(os.path.basename(path))
    yield path, servers
    servers.stop()


@pytest.fixture
def host_servers():
    servers = Servers(None)
    yield servers
    servers.stop()


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


@needs_root
def test_connects_v4_then_v6_inside_the_netns(pod_netns):
    path, servers = pod_netns

    async def run():
        async with PodDialer(path) as dialer:
            assert await greet(await dialer.connect(servers.v4)) == b"v4\nping"
            # Nothing on 127.0.0.1:<v6 port> (in that netns): refused, then [::1] answers.
            assert await greet(await dialer.connect(servers.v6)) == b"v6\nping"
            pid = dialer._proc.pid
        return pid

    before = fd_count()
    pid = asyncio.run(run())
    assert not os.path.exists(f"/proc/{pid}"), "dialer process left behind"
    assert fd_count() == before


@needs_root
def test_the_netns_is_not_the_hosts(pod_netns, host_servers):
    path, _ = pod_netns

    async def run():
        async with PodDialer(path) as dialer:
            with pytest.raises(StreamError) as err:
                await dialer.connect(host_servers.v4)      # listens in the host netns only
            return str(err.value)

    message = asyncio.run(run())
    assert message.startswith(f"failed to connect to localhost:{host_servers.v4} inside namespace '{path}': ")
    assert "IPv4: Connection refused; IPv6: Connection refused" in message


@needs_root
def test_concurrent_connects(pod_netns):
    path, servers = pod_netns

    async def run():
        async with PodDialer(path) as dialer:
            refused = free_port()
            results = await asyncio.gather(
                *(dialer.connect([servers.v4, servers.v6, refused][i % 3]) for i in range(30)),
                return_exceptions=True)
            greetings = await asyncio.gather(*(greet(r) for r in results if isinstance(r, socket.socket)))
            return greetings, [r for r in results if not isinstance(r, socket.socket)]

    before = fd_count()
    greetings, errors = asyncio.run(run())
    assert sorted(greetings) == [b"v4\nping"] * 10 + [b"v6\nping"] * 10
    assert len(errors) == 10 and all(isinstance(e, StreamError) for e in errors)
    assert fd_count() == before


@needs_root
def test_cancelled_connect_and_close_leave_nothing(pod_netns):
    path, servers = pod_netns

    async def run():
        dialer = PodDialer(path)
        await dialer.__aenter__()
        task = asyncio.create_task(dialer.connect(servers.v4))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pid = dialer._proc.pid
        await dialer.close()
        with pytest.raises(StreamError):
            await dialer.connect(servers.v4)        # closed for good
        return pid

    before = fd_count()
    pid = asyncio.run(run())
    assert not os.path.exists(f"/proc/{pid}")
    assert fd_count() == before


@needs_root
def test_missing_netns_is_a_stream_error(tmp_path):
    async def run():
        async with PodDialer(str(tmp_path / "no-such-netns")):
            pass

    before = fd_count()
    with pytest.raises(StreamError, match="cannot enter network namespace .*No such file"):
        asyncio.run(run())
    assert fd_count() == before


def test_host_netns_connects_directly(host_servers):
    async def run():
        async with PodDialer("") as dialer:
            assert dialer._proc is None            # no dialer process for the host network
            assert await greet(await dialer.connect(host_servers.v4)) == b"v4\nping"
            assert await greet(await dialer.connect(host_servers.v6)) == b"v6\nping"
            refused = free_port()
            with pytest.raises(StreamError, match=f"localhost:{refused} inside namespace 'host'"):
                await dialer.connect(refused)
            results = await asyncio.gather(*(dialer.connect(host_servers.v4) for _ in range(10)))
            return await asyncio.gather(*map(greet, results))

    assert asyncio.run(run()) == [b"v4\nping"] * 10


def test_invalid_port():
    async def run():
        async with PodDialer("") as dialer:
            await dialer.connect(0)

    with pytest.raises(StreamError, match="invalid port 0"):
        asyncio.run(run())
