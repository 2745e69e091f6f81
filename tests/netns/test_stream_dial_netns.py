"""Port-forward's dialer (cri/streaming/dial.py) into a pod's network namespace: connections
to localhost inside it through the netns_dialer process.  Root: it makes namespaces and enters
them (the host-netns and error cases are in tests/unit/test_stream_dial.py)."""
from __future__ import annotations

import asyncio
import os
import socket

import pytest

from cri.streaming import StreamError
from cri.streaming.dial import PodDialer
from dialtest import Servers, fd_count, free_port, greet


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
