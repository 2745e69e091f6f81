"""Reference-bridge keys and capabilities honoured by podwire: mac, ips, mtu, hairpin,
vlan, ipMasq and macspoofchk, observed on the live host and pod."""
from __future__ import annotations

import json
import os
import subprocess

from conftest import needs_root

pytestmark = needs_root


def _link(name: str, netns: str = "") -> dict:
    cmd = ["ip", "-d", "-j", "link", "show", name]
    if netns:
        cmd[1:1] = ["-n", netns.rsplit("/", 1)[1]]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)[0]


def test_requested_mac_ip_and_mtu(network, netns):
    conf = network.conf(mtu=1400, capabilities={"mac": True, "ips": True})
    wanted_ip = network.subnet4.replace(".0/24", ".77")
    conf["runtimeConfig"] = {"mac": "02:42:ac:11:00:07", "ips": [f"{wanted_ip}/24"]}
    code, result = network.run("ADD", conf, "c1", netns)
    assert code == 0, result
    assert result["ips"][0]["address"] == f"{wanted_ip}/24"
    pod = _link("eth0", netns)
    assert pod["address"] == "02:42:ac:11:00:07" and pod["mtu"] == 1400
    assert _link(result["interfaces"][1]["name"])["mtu"] == 1400
    network.run("DEL", conf, "c1", netns)


def test_cni_args_ip(network, netns):
    wanted_ip = network.subnet4.replace(".0/24", ".99")
    code, result = network.run("ADD", network.conf(), "c1", netns, cni_args=f"IgnoreUnknown=1;IP={wanted_ip}")
    assert code == 0, result
    assert result["ips"][0]["address"] == f"{wanted_ip}/24"
    network.run("DEL", network.conf(), "c1", netns)


def test_hairpin_on_the_bridge_port(network, netns):
    conf = network.conf(hairpinMode=True)
    code, result = network.run("ADD", conf, "c1", netns)
    assert code == 0, result
    host = result["interfaces"][1]["name"]
    assert _link(host)["linkinfo"]["info_slave_data"]["hairpin"] is True
    network.run("DEL", conf, "c1", netns)


def _kernel_has_vlan_filtering(bridge: str) -> bool:
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        return subprocess.run(["ip", "link", "set", bridge, "type", "bridge", "vlan_filtering", "1"],
                              capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", bridge])


def test_vlan_on_the_bridge_port(network, netns):
    conf = network.conf(vlan=42)
    has_filtering = _kernel_has_vlan_filtering(network.bridge)
    # The VM's stock kernel has it: there the real path must run, never the fallback.
    assert has_filtering or os.environ.get("PODWIRE_IN_VM") != "1"
    if not has_filtering:
        # Without CONFIG_BRIDGE_VLAN_FILTERING the ADD must fail cleanly, leaving nothing.
        code, out = network.run("ADD", conf, "c1", netns)
        assert code != 0 and "VLAN filtering" in out["msg"]
        assert network.leases() == {}
        return
    code, result = network.run("ADD", conf, "c1", netns)
    assert code == 0, result
    host = result["interfaces"][1]["name"]
    vlans = json.loads(subprocess.run(["bridge", "-j", "vlan", "show", "dev", host],
                                      capture_output=True, text=True).stdout)
    vids = {v["vlan"]: v.get("flags", []) for v in vlans[0]["vlans"]}
    assert set(vids) == {42} and "PVID" in vids[42]
    network.run("DEL", conf, "c1", netns)


def _nft_comments(family: str) -> str:
    return subprocess.run(["nft", "list", "table", family, "podwire"], capture_output=True, text=True).stdout


def test_ip_masq_and_macspoofchk_rules_come_and_go(network, netns):
    conf = network.conf(ipMasq=True, macspoofchk=True)
    code, result = network.run("ADD", conf, "c1", netns)
    assert code == 0, result
    pod_ip = result["ips"][0]["address"].split("/")[0]
    assert f"ip saddr {pod_ip}" in _nft_comments("inet")
    assert f"ether saddr != {result['interfaces'][2]['mac']}" in _nft_comments("bridge")
    network.run("DEL", conf, "c1", netns)
    assert f"ip saddr {pod_ip}" not in _nft_comments("inet")
    assert result["interfaces"][1]["name"] not in _nft_comments("bridge")


def test_bridge_name_taken_by_another_kind_is_rejected(network, netns):
    subprocess.run(["ip", "link", "add", network.bridge, "type", "veth", "peer", "name", network.bridge[:11] + "peer"], check=True)
    code, out = network.run("ADD", network.conf(), "c1", netns)
    assert code != 0 and out["code"] == 7 and "not a bridge" in out["msg"]
    assert network.leases() == {}
