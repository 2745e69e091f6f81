"""The daemon's namespace-socket broker: sockets really live in the pod's namespace,
the daemon's own threads never leave the host namespace, bad fds are refused."""
from __future__ import annotations

import os
import subprocess

import pytest

from cni import netlink
from cni.context import Context
from cni.daemon.nsbroker import NsBroker
from cni.errors import CniError
from cnitest import needs_root

pytestmark = needs_root


@pytest.fixture
def broker():
    b = NsBroker()
    yield b
    b.close()


def test_socket_sees_the_pods_links_not_the_hosts(broker, netns):
    subprocess.run(["ip", "-n", os.path.basename(netns), "link", "add", "brk0", "type", "veth",
                    "peer", "name", "brk1"], check=True)
    own = os.stat("/proc/thread-self/ns/net").st_ino
    ctx = Context(ns_sockets=broker)
    with netlink.netns(ctx, netns) as ns:
        names = {link.get("IFLA_IFNAME") for link in ns.link("dump")}
    assert {"lo", "brk0", "brk1"} <= names and "eth0" not in names
    assert os.stat("/proc/thread-self/ns/net").st_ino == own


def test_not_a_netns_is_an_invalid_netns_error(broker, tmp_path):
    fake = tmp_path / "file"
    fake.write_text("")
    ctx = Context(ns_sockets=broker)
    with pytest.raises(CniError) as err:
        with netlink.netns(ctx, str(fake)):
            pass
    assert err.value.code == 8


def test_a_dead_broker_falls_back_to_pyroute2(broker, netns):
    broker.close()
    ctx = Context(ns_sockets=broker)
    with netlink.netns(ctx, netns) as ns:
        assert any(link.get("IFLA_IFNAME") == "lo" for link in ns.link("dump"))
