"""The podwire plugin in real namespaces, for every supported CNI spec version and both modes
(standalone and through podwire-cnid): ADD's result in the config's version and shape
(tests/cnispec.py), CHECK from 0.4.0 (and that it notices a lost address), STATUS and GC from
1.1.0 (refused with code 1 before), DEL; and the same list through cni.libcni, as the CRI
shim drives it.  The rootless half of the matrix (skel, IPAM, libcni conversions) is
tests/unit/test_spec_matrix.py."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from cni.libcni import CNIConfig, RuntimeConf, conflist_from_bytes
from cnispec import SPEC_VERSIONS, addresses, allows, check_result, is_legacy, refusal


def addresses_in(netns: str, ifname: str = "eth0") -> set[str]:
    out = subprocess.run(["ip", "-n", os.path.basename(netns), "-o", "addr", "show", "dev", ifname],
                         capture_output=True, text=True).stdout
    return {line.split()[3] for line in out.splitlines() if " inet" in line and "fe80" not in line}


def host_link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def refused(answer, v: str, verb: str) -> bool:
    code, out = answer
    return code == 1 and {k: out[k] for k in ("cniVersion", "code", "msg")} == refusal(v, verb)


@pytest.mark.parametrize("v", SPEC_VERSIONS)
def test_every_verb_in_every_version(network, netns, v):
    conf = network.conf(v, dual=True)
    assert network.run("VERSION", conf) == (0, {"cniVersion": v, "supportedVersions": list(SPEC_VERSIONS)})

    code, result = network.run("ADD", conf, "c1", netns)
    assert code == 0, result
    check_result(result, v)
    ips = addresses(result)
    assert set(ips) == addresses_in(netns)
    subnet4 = ipaddress.ip_network(network.subnet4)
    assert ipaddress.ip_interface(ips[0]).ip in subnet4
    if is_legacy(v):
        assert result["ip4"]["gateway"] == network.gateway4()
        assert {"dst": "0.0.0.0/0", "gw": network.gateway4()} in result["ip4"]["routes"]
        host_veths = set()
    else:
        bridge, host, pod = result["interfaces"]
        assert bridge["name"] == network.bridge and "sandbox" not in host
        assert pod["name"] == "eth0" and pod["sandbox"] == netns
        assert [ip["interface"] for ip in result["ips"]] == [2] * len(ips)
        assert result["ips"][0]["gateway"] == network.gateway4()
        assert host_link_exists(host["name"])
        host_veths = {host["name"]}
    held = network.leases()
    assert sorted(held.values()) == ["c1\r\neth0"] * len(ips)

    with_prev = {**conf, "prevResult": result}
    if allows(v, "CHECK"):
        assert network.run("CHECK", with_prev, "c1", netns) == (0, None)
        subprocess.run(["ip", "-n", os.path.basename(netns), "addr", "del", ips[0], "dev", "eth0"], check=True)
        code, out = network.run("CHECK", with_prev, "c1", netns)
        assert code == 1 and out["code"] != 0, out           # the pod lost its address: CHECK says so
        subprocess.run(["ip", "-n", os.path.basename(netns), "addr", "add", ips[0], "dev", "eth0"], check=True)
    else:
        assert refused(network.run("CHECK", with_prev, "c1", netns), v, "CHECK")

    status = network.run("STATUS", conf)
    assert (status == (0, None)) if allows(v, "STATUS") else refused(status, v, "STATUS"), status

    gc = network.run("GC", {**conf, "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    assert (gc == (0, None)) if allows(v, "GC") else refused(gc, v, "GC"), gc
    assert network.leases() == held and all(map(host_link_exists, host_veths))   # c1 is valid: kept
    if allows(v, "GC"):
        assert network.run("GC", {**conf, "cni.dev/valid-attachments": []}) == (0, None)
        assert network.leases() == {} and not any(map(host_link_exists, host_veths))

    assert network.run("DEL", with_prev if allows(v, "CHECK") else conf, "c1", netns) == (0, None)
    assert network.leases() == {}
    assert addresses_in(netns) == set()
    assert not any(map(host_link_exists, host_veths))
    assert network.run("DEL", conf, "c1", netns) == (0, None)


@pytest.mark.parametrize("v", SPEC_VERSIONS)
def test_libcni_drives_the_plugin_in_every_version(network, netns, tmp_path, v):
    plugin = {k: val for k, val in network.conf(v).items() if k not in ("cniVersion", "name")}
    nets = conflist_from_bytes(json.dumps({"cniVersion": v, "name": network.name, "plugins": [plugin]}).encode())
    cni = CNIConfig([network.bin_dir], cache_dir=str(tmp_path / "cache"))
    rt = RuntimeConf("c1", netns, "eth0")

    result = cni.add_network_list(nets, rt)
    check_result(result, v)
    assert set(addresses(result)) == addresses_in(netns)
    assert cni.get_cached_result(nets, rt) == result
    if allows(v, "CHECK"):
        cni.check_network_list(nets, rt)
    cni.get_status_network_list(nets)
    cni.gc_network_list(nets, [("c1", "eth0")])
    assert list(network.leases().values()) == ["c1\r\neth0"]
    cni.del_network_list(nets, rt)
    assert network.leases() == {} and addresses_in(netns) == set()
    assert cni.get_cached_result(nets, rt) is None
