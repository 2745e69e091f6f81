"""podwire in real namespaces: result shape, connectivity, modes, dual stack (every spec version's
verbs: tests/netns/test_spec_versions.py)."""
from __future__ import annotations

import subprocess

import pytest

from cnitest import ping
from conftest import needs_root

pytestmark = needs_root


def test_result_shape_serves_chained_plugins(network, netns):
    code, result = network.run("ADD", network.conf(), "c1", netns)
    assert code == 0
    bridge, host, pod = result["interfaces"]
    assert bridge["name"] == network.bridge
    assert "sandbox" not in host and host["name"].startswith("pw")
    assert pod == {"name": "eth0", "mac": pod["mac"], "sandbox": netns}
    assert result["ips"][0]["interface"] == 2
    assert result["ips"][0]["gateway"] == network.gateway4()
    assert {"dst": "0.0.0.0/0", "gw": network.gateway4()} in result["routes"]
    network.run("DEL", network.conf(), "c1", netns)


@pytest.mark.parametrize("mode", ["bridge", "routed"])
def test_two_pods_reach_each_other_and_the_gateway_dual_stack(network, netns_factory, mode):
    conf = network.conf(dual=True, mode=mode)
    a, b = netns_factory(), netns_factory()
    code, ra = network.run("ADD", conf, "pod-a", a)
    assert code == 0, ra
    code, rb = network.run("ADD", conf, "pod-b", b)
    assert code == 0, rb
    try:
        for ip in rb["ips"]:
            assert ping(a, ip["address"].split("/")[0]), f"{mode}: a cannot reach {ip['address']}"
        for ip in ra["ips"]:
            assert ping(b, ip["address"].split("/")[0]), f"{mode}: b cannot reach {ip['address']}"
        if mode == "bridge":
            assert ping(a, network.gateway4())
        else:
            assert [ip["gateway"] for ip in ra["ips"]] == ["169.254.1.1", "fe80::1"]
            assert ra["ips"][0]["address"].endswith("/32") and ra["ips"][1]["address"].endswith("/128")
            # The host reaches the pod through its /32 route on the host veth.
            assert subprocess.run(["ping", "-c1", "-W2", ra["ips"][0]["address"].split("/")[0]],
                                  capture_output=True).returncode == 0
        for rid, ns, res in (("pod-a", a, ra), ("pod-b", b, rb)):
            code, out = network.run("CHECK", {**conf, "prevResult": res}, rid, ns)
            assert code == 0, out
    finally:
        network.run("DEL", conf, "pod-a", a)
        network.run("DEL", conf, "pod-b", b)
    assert network.leases() == {}


def test_routed_mode_creates_no_bridge(network, netns):
    conf = network.conf(mode="routed")
    code, result = network.run("ADD", conf, "c1", netns)
    assert code == 0, result
    assert subprocess.run(["ip", "link", "show", network.bridge], capture_output=True).returncode != 0
    host = result["interfaces"][0]["name"]
    pod_ip = result["ips"][0]["address"].split("/")[0]
    routes = subprocess.run(["ip", "route", "show", pod_ip], capture_output=True, text=True).stdout
    assert f"dev {host}" in routes
    network.run("DEL", conf, "c1", netns)
    assert subprocess.run(["ip", "route", "show", pod_ip], capture_output=True, text=True).stdout == ""
