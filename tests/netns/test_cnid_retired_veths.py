"""podwire-cnid's deferred veth deletion: DEL retires the pair (renamed, cut off) and the
daemon deletes it later.  A re-ADD of the same attachment, many cycles, and a kill -9 with
deletions pending must all leave a consistent state: no collision, no leak, no duplicate."""
from __future__ import annotations

import concurrent.futures
import json
import random
import subprocess
import time

import pytest

from cni.plugin.naming import host_veth_name, is_retired, parse_alias
from cnitest import Daemon, Network, ping, unique
from conftest import needs_root

pytestmark = needs_root


@pytest.fixture(scope="module")
def bin_dir(podwire_bin_dir) -> str:
    return podwire_bin_dir


@pytest.fixture
def daemon(tmp_path):
    """Start a podwire-cnid on the test's own socket (the same workdir on a restart)."""
    made: list[Daemon] = []

    def start(*args: str) -> Daemon:
        workdir = tmp_path / "cnid"
        workdir.mkdir(exist_ok=True)
        made.append(Daemon(str(workdir), *args).start())
        return made[-1]

    yield start
    for d in made:
        d.stop()


@pytest.fixture
def net(bin_dir, bridge_name, tmp_path):
    octet = random.randint(0, 255)
    n = Network(name=unique("pwr-", 20), bridge=bridge_name, subnet4=f"10.{random.randint(100, 250)}.{octet}.0/24",
                subnet6=f"fd{random.randint(16, 255):02x}:{octet:x}::/64", data_dir=str(tmp_path / "ipam"),
                bin_dir=bin_dir)
    yield n
    from cni.context import STANDALONE
    from cni.plugin.gc import remove_stale_links
    remove_stale_links(STANDALONE, n.name, set())  # also every retired veth, should a test fail


def via(d: Daemon) -> dict:
    return {"extra_env": {"PODWIRE_CNID_SOCKET": d.socket}}


def links(netns: str = "") -> list[dict]:
    cmd = ["ip", "-j", "-d"] + (["-n", netns.rsplit("/", 1)[-1]] if netns else []) + ["link", "show"]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def ours(network: str) -> list[str]:
    """Host links whose ifalias names ``network``: live and retired veths alike."""
    return [link["ifname"] for link in links()
            if (parse_alias(link.get("ifalias", "")) or ("",))[0] == network]


def wait_reaped(d: Daemon, network: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (d.health()["retired_veths"]["pending"] or ours(network)) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("reap_delay", ["0", "60"])  # racing the reaper, and surely before it
def test_del_then_immediate_add_of_the_same_attachment(daemon, net, netns, reap_delay):
    d = daemon("--reap-delay", reap_delay)
    conf = net.conf()
    code, first = net.run("ADD", conf, "again", netns, **via(d))
    assert code == 0, first
    assert net.run("DEL", conf, "again", netns, **via(d)) == (0, None)
    assert net.leases() == {}  # released before DEL returned
    code, second = net.run("ADD", conf, "again", netns, **via(d))
    assert code == 0, second
    address = second["ips"][0]["address"]
    assert net.leases() == {address.split("/")[0]: "again\r\neth0"}
    pod = {link["ifname"]: link for link in links(netns)}
    assert "UP" in pod["eth0"]["flags"]
    retired = [name for name in pod if is_retired(name)]
    assert all("UP" not in pod[name]["flags"] for name in retired)  # an old end is cut off
    if reap_delay != "0":
        assert len(retired) == 1 and len([n for n in ours(net.name) if is_retired(n)]) == 1
    addrs = json.loads(subprocess.run(["ip", "-j", "-n", netns.rsplit("/", 1)[-1], "addr", "show", "eth0"],
                                      capture_output=True, text=True, check=True).stdout)
    assert [f"{a['local']}/{a['prefixlen']}" for a in addrs[0]["addr_info"] if a["family"] == "inet"] == [address]
    assert ping(netns, net.gateway4())
    assert host_veth_name("again", "eth0") in ours(net.name)
    assert net.run("DEL", conf, "again", netns, **via(d)) == (0, None)
    assert d.stop() == 0  # a clean stop deletes what is still pending
    assert ours(net.name) == [] and net.leases() == {}


def test_200_cycles_leave_no_link_lease_or_pending_deletion(daemon, net, netns):
    d = daemon()
    conf = net.conf()
    for i in range(200):
        code, out = net.run("ADD", conf, f"cycle{i}", netns, **via(d))
        assert code == 0, out
        assert net.run("DEL", conf, f"cycle{i}", netns, **via(d)) == (0, None)
    wait_reaped(d, net.name)
    assert ours(net.name) == []
    assert net.leases() == {}
    assert [link["ifname"] for link in links(netns)] == ["lo"]  # no retired pod end either
    health = d.health()["retired_veths"]
    assert health == {"pending": 0, "deleted": 200}


def test_kill_9_with_deletions_pending_then_restart(daemon, net, netns_factory):
    conf = net.conf()
    pods = [(f"k9-{i}", netns_factory()) for i in range(10)]
    d = daemon("--reap-delay", "600")  # nothing is deleted before the kill

    def run_all(command: str, target: Daemon) -> list:
        with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
            return list(pool.map(lambda p: net.run(command, conf, *p, **via(target)), pods))

    first = run_all("ADD", d)
    assert all(code == 0 for code, _ in first), first
    assert run_all("DEL", d) == [(0, None)] * len(pods)
    assert d.health()["retired_veths"]["pending"] == len(pods)
    assert len([n for n in ours(net.name) if is_retired(n)]) == len(pods)
    assert net.leases() == {}
    d.kill()
    d = daemon()  # its start deletes what the dead daemon left pending, before serving
    assert ours(net.name) == []
    for _, ns in pods:
        assert [link["ifname"] for link in links(ns)] == ["lo"]
    second = run_all("ADD", d)
    assert all(code == 0 for code, _ in second), second
    addresses = [out["ips"][0]["address"] for _, out in second]
    assert len(set(addresses)) == len(pods)
    assert sorted(net.leases().values()) == sorted(f"{cid}\r\neth0" for cid, _ in pods)
    assert run_all("DEL", d) == [(0, None)] * len(pods)
    wait_reaped(d, net.name)
    assert ours(net.name) == [] and net.leases() == {}
