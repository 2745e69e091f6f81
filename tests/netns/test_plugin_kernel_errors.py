"""The veth pair's undo and the kernel's refusals, seen from the host.

The pair's delete is registered the moment the link exists, so a failure in the
steps that follow inside veth.create (sysctls, alias, link up) leaks nothing; and a
refusal reaches the runtime as a typed CNI error naming the object."""
from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from cni import netlink
from cni.context import STANDALONE
from cni.errors import CniError, Code
from cni.plugin import veth
from cnitest import host_snapshot, unique
from conftest import needs_root

pytestmark = needs_root


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.mark.parametrize("failing_step", ["_host_end_ipv6", "find_link"])
def test_failure_right_after_the_pair_exists_deletes_the_pair(netns, monkeypatch, failing_step):
    host_name = unique("pwv", 15)
    real_find = netlink.find_link
    calls = {"n": 0}

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure after the link exists")

    def find_then_fail(ipr, name):
        if name == host_name and not calls["n"]:  # only the lookup inside create(), not the undo's
            calls["n"] += 1
            assert host_name in _host_links()  # the pair really existed when the step failed
            raise RuntimeError("injected failure after the link exists")
        return real_find(ipr, name)

    monkeypatch.setattr(veth, "_host_end_ipv6", boom) if failing_step == "_host_end_ipv6" else \
        monkeypatch.setattr(veth.netlink, "find_link", find_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        with netlink.netns(STANDALONE, netns) as ns, contextlib.ExitStack() as undo:
            veth.create(STANDALONE, ns, netns, host_name, "eth0", undo, mtu=0, mac="", alias="pw-test", routed=False)
    assert host_name not in _host_links()
    inside = subprocess.run(["ip", "-n", os.path.basename(netns), "link", "show", "eth0"], capture_output=True)
    assert inside.returncode != 0  # the pod end went with the host end


def test_taken_ifname_is_code_100_and_names_the_interface(network, netns):
    subprocess.run(["ip", "-n", os.path.basename(netns), "link", "add", "eth0", "type", "veth",
                    "peer", "name", "eth0peer"], check=True)
    code, out = network.run("ADD", network.conf(), "c1", netns)
    assert code != 0
    assert out["code"] == Code.EXISTS and "'eth0' already exists" in out["msg"], out
    assert network.leases() == {}


def test_unreachable_gateway_names_the_route_and_interface(network, netns):
    conf = network.conf(ipam={"routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]})
    before = host_snapshot((network.bridge,))
    code, out = network.run("ADD", conf, "c1", netns)
    assert code != 0
    assert "cannot add route 192.0.2.0/24 via 198.51.100.1 on pod interface 'eth0'" in out["msg"], out
    assert "(101," not in out["msg"] and out["code"] == Code.INTERNAL  # ENETUNREACH has no code of its own
    assert host_snapshot((network.bridge,))["links"] == before["links"]
    assert network.leases() == {}


def test_raw_netlink_error_never_leaves_about():
    with pytest.raises(CniError) as caught:
        with netlink.host(STANDALONE) as ipr, netlink.about("cannot delete link 'pw-nonexistent0'"):
            ipr.link("del", ifname="pw-nonexistent0")
    assert caught.value.code == Code.NOT_FOUND
