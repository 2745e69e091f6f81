"""Idempotent DEL, all-or-nothing ADD, GC, concurrency and bad input — each checked
against the host's links, leases and namespaces before and after."""
from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import subprocess

import pytest

from cni.plugin.naming import host_veth_name
from cnitest import host_snapshot
from conftest import needs_root

pytestmark = needs_root


def test_del_twice_succeeds(network, netns):
    conf = network.conf()
    assert network.run("ADD", conf, "c1", netns)[0] == 0
    assert network.run("DEL", conf, "c1", netns) == (0, None)
    assert network.run("DEL", conf, "c1", netns) == (0, None)
    assert network.leases() == {}


def test_del_without_netns_or_after_netns_deleted_frees_the_lease(network, netns_factory):
    conf = network.conf()
    ns = netns_factory()
    code, result = network.run("ADD", conf, "c1", ns)
    assert code == 0
    host_veth = result["interfaces"][1]["name"]
    subprocess.run(["ip", "netns", "del", os.path.basename(ns)], check=True)
    assert network.run("DEL", conf, "c1", ns) == (0, None)
    assert network.leases() == {}
    assert host_veth not in host_snapshot((network.bridge,))["links"]
    assert network.run("DEL", conf, "c1", "") == (0, None)


def test_add_with_ifname_taken_leaves_nothing(network, netns):
    subprocess.run(["ip", "-n", os.path.basename(netns), "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"], check=True)
    before = host_snapshot((network.bridge,))
    code, out = network.run("ADD", network.conf(), "c1", netns)
    assert code != 0 and "already exists" in out["msg"]
    assert network.leases() == {}
    assert host_snapshot((network.bridge,))["links"] == before["links"]


def test_add_with_addresses_exhausted_leaves_nothing(network, netns_factory):
    base = network.subnet4.rsplit(".", 1)[0]
    conf = network.conf(ipam={"ranges": [[{"subnet": network.subnet4, "rangeStart": f"{base}.10",
                                            "rangeEnd": f"{base}.10"}]]})
    first, second = netns_factory(), netns_factory()
    assert network.run("ADD", conf, "c1", first)[0] == 0
    before = host_snapshot((network.bridge,))
    code, out = network.run("ADD", conf, "c2", second)
    assert code != 0 and f"{base}.10" in out["msg"]
    assert host_snapshot((network.bridge,))["links"] == before["links"]
    assert list(network.leases()) == [f"{base}.10"]
    network.run("DEL", conf, "c1", first)


def test_add_failing_after_the_veth_undoes_veth_and_lease(network, netns):
    """A failure late in ADD (a route IPAM asks for cannot be added) unwinds everything."""
    conf = network.conf(ipam={"routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]})
    before = host_snapshot((network.bridge,))
    code, out = network.run("ADD", conf, "c1", netns)
    assert code != 0, out
    assert host_snapshot((network.bridge,))["links"] == before["links"]
    assert network.leases() == {}
    assert subprocess.run(["ip", "-n", os.path.basename(netns), "link", "show", "eth0"],
                          capture_output=True).returncode != 0


def test_gc_removes_stale_links_and_leases(network, netns_factory):
    conf = network.conf(cni_version="1.1.0", ipMasq=True)
    pods = {f"c{i}": netns_factory() for i in range(3)}
    results = {cid: network.run("ADD", conf, cid, ns)[1] for cid, ns in pods.items()}
    gc_conf = {**conf, "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}
    assert network.run("GC", gc_conf) == (0, None)
    links = host_snapshot((network.bridge,))["links"]
    assert results["c1"]["interfaces"][1]["name"] in links
    assert results["c0"]["interfaces"][1]["name"] not in links
    assert results["c2"]["interfaces"][1]["name"] not in links
    assert list(network.leases().values()) == ["c1\r\neth0"]
    network.run("DEL", conf, "c1", pods["c1"])


def test_status_reports_ready_and_exhaustion(network, netns):
    base = network.subnet4.rsplit(".", 1)[0]
    conf = network.conf(ipam={"ranges": [[{"subnet": network.subnet4, "rangeStart": f"{base}.10",
                                            "rangeEnd": f"{base}.10"}]]})
    assert network.run("STATUS", conf) == (0, None)
    assert network.run("ADD", conf, "c1", netns)[0] == 0
    code, out = network.run("STATUS", conf)
    assert code != 0 and out["code"] == 50
    network.run("DEL", conf, "c1", netns)
    assert network.run("STATUS", conf) == (0, None)


def test_fifty_concurrent_adds_get_distinct_addresses_and_dels_leave_nothing(network, netns_factory):
    conf = network.conf()
    pods = [(f"burst{i}", netns_factory()) for i in range(50)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        adds = list(pool.map(lambda p: network.run("ADD", conf, p[0], p[1]), pods))
    failures = [out for code, out in adds if code != 0]
    assert not failures, failures[:3]
    addresses = [out["ips"][0]["address"] for _, out in adds]
    assert len(set(addresses)) == 50
    assert all(ipaddress.ip_interface(a).ip in ipaddress.ip_network(network.subnet4) for a in addresses)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        dels = list(pool.map(lambda p: network.run("DEL", conf, p[0], p[1]), pods))
    assert all(d == (0, None) for d in dels), [d for d in dels if d != (0, None)][:3]
    assert network.leases() == {}
    # This test's host veths by name: other test runs on the host may add links meanwhile.
    ours = {host_veth_name(cid, "eth0") for cid, _ in pods}
    assert ours & set(host_snapshot()["links"]) == set()


@pytest.mark.parametrize("case,code", [
    ("malformed-json", 6), ("unknown-version", 1), ("missing-ifname", 4), ("dotdot-id", 4),
    ("long-id", 4), ("regular-file-netns", 8), ("overlapping-ranges", 7),
])
def test_bad_input_gets_its_code_and_changes_nothing(network, netns, tmp_path, case, code):
    conf, env = network.conf(), {"container_id": "c1", "netns": netns}
    stdin: dict | str = conf
    if case == "malformed-json":
        stdin = '{"cniVersion": "1.1.0", "name": '
    elif case == "unknown-version":
        stdin = {**conf, "cniVersion": "9.9.9"}
    elif case == "missing-ifname":
        env["ifname"] = ""
    elif case == "dotdot-id":
        env["container_id"] = "../x"
    elif case == "long-id":
        env["container_id"] = "a" * 300
    elif case == "regular-file-netns":
        fake = tmp_path / "not-a-netns"
        fake.write_text("")
        env["netns"] = str(fake)
    elif case == "overlapping-ranges":
        stdin = network.conf(ipam={"ranges": [[{"subnet": network.subnet4}],
                                               [{"subnet": network.subnet4.replace(".0/24", ".128/25")}]]})
    before = host_snapshot((network.bridge,))
    rc, out = network.run("ADD", stdin, **env)
    assert rc != 0 and out["code"] == code, out
    assert host_snapshot((network.bridge,)) == before
    assert network.leases() == {}
