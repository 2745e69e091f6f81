"""Port-forward's dialer (cri/streaming/dial.py) in the host netns, and its errors.  Dialing
into a pod's namespace needs root: tests/netns/test_stream_dial_netns.py."""
from __future__ import annotations

import asyncio

import pytest

from cri.streaming import StreamError
from cri.streaming.dial import PodDialer
from dialtest import Servers, fd_count, free_port, greet


@pytest.fixture
def host_servers():
    servers = Servers(None)
    yield servers
    servers.stop()


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

