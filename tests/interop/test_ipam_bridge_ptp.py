"""The reference bridge and ptp plugins exec podwire-ipam as their IPAM plugin."""
from __future__ import annotations

import os
import random
import subprocess

import pytest

from conftest import REFERENCE_PLUGIN_DIR, needs_root, run_plugin

pytestmark = [needs_root, pytest.mark.root, pytest.mark.interop, pytest.mark.skipif(
    not os.path.exists(os.path.join(REFERENCE_PLUGIN_DIR, "bridge")), reason="no reference plugins")]


def random_subnet() -> tuple[str, str]:
    """An unlikely-to-collide /24 and its prefix, e.g. ("10.123.45.0/24", "10.123.45.")."""
    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}."
    return f"{prefix}0/24", prefix


def netns_addresses(netns: str, ifname: str = "eth0") -> str:
    name = os.path.basename(netns)
    return subprocess.run(["ip", "-n", name, "-o", "addr", "show", "dev", ifname],
                          capture_output=True, text=True, check=True).stdout


def ipam(tmp_path, subnet: str) -> dict:
    return {"type": "podwire-ipam", "dataDir": str(tmp_path), "ranges": [[{"subnet": subnet}]]}


def lease_files(tmp_path, net: str) -> dict[str, bytes]:
    lease_dir = tmp_path / net
    return {n: (lease_dir / n).read_bytes() for n in os.listdir(lease_dir) if n[0].isdigit()}


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_bridge_with_podwire_ipam(cni_bin, netns, bridge_name, tmp_path, version):
    subnet, prefix = random_subnet()
    net = f"br-{version.replace('.', '')}"
    config = {"cniVersion": version, "name": net, "type": "bridge", "bridge": bridge_name,
              "isGateway": True, "ipam": ipam(tmp_path, subnet)}
    env = {"container_id": "ctr1", "netns": netns}

    code, result = run_plugin(cni_bin, "bridge", "ADD", config, **env)
    assert code == 0, result
    address = result["ips"][0]["address"]
    assert address == f"{prefix}2/24" and result["ips"][0]["gateway"] == f"{prefix}1"
    assert f"inet {address}" in netns_addresses(netns)
    assert lease_files(tmp_path, net) == {f"{prefix}2": b"ctr1\r\neth0"}

    if version != "0.3.1":  # CHECK arrived in 0.4.0
        assert run_plugin(cni_bin, "bridge", "CHECK", {**config, "prevResult": result}, **env) == (0, None)

    assert run_plugin(cni_bin, "bridge", "DEL", {**config, "prevResult": result}, **env) == (0, None)
    assert lease_files(tmp_path, net) == {}
    assert run_plugin(cni_bin, "bridge", "DEL", config, **env) == (0, None)  # DEL is idempotent


def test_bridge_dual_stack(cni_bin, netns, bridge_name, tmp_path):
    subnet, prefix = random_subnet()
    v6 = f"fd{random.randint(0, 0xff):02x}:{random.randint(0, 0xffff):x}::/64"
    config = {"cniVersion": "1.0.0", "name": "brdual", "type": "bridge", "bridge": bridge_name,
              "isGateway": True, "ipam": {**ipam(tmp_path, subnet),
                                          "ranges": [[{"subnet": subnet}], [{"subnet": v6}]]}}
    code, result = run_plugin(cni_bin, "bridge", "ADD", config, container_id="ctr2", netns=netns)
    assert code == 0, result
    shown = netns_addresses(netns)
    assert all(f" {ip['address']} " in shown for ip in result["ips"]), shown
    assert run_plugin(cni_bin, "bridge", "DEL", config, container_id="ctr2", netns=netns) == (0, None)
    assert not [n for n in os.listdir(tmp_path / "brdual") if n[0].isdigit() or n.startswith("fd")]


def test_ptp_with_podwire_ipam(cni_bin, netns, tmp_path):
    subnet, prefix = random_subnet()
    config = {"cniVersion": "1.0.0", "name": "ptpnet", "type": "ptp", "ipam": ipam(tmp_path, subnet)}
    env = {"container_id": "ctr3", "netns": netns}
    code, result = run_plugin(cni_bin, "ptp", "ADD", config, **env)
    assert code == 0, result  # on failure the netns fixture takes both veth ends with it
    assert f"inet {prefix}2/24" in netns_addresses(netns)
    routes = subprocess.run(["ip", "-n", os.path.basename(netns), "route"], capture_output=True,
                            text=True, check=True).stdout
    assert f"{subnet} via {prefix}1" in routes
    assert lease_files(tmp_path, "ptpnet") == {f"{prefix}2": b"ctr3\r\neth0"}
    assert run_plugin(cni_bin, "ptp", "CHECK", {**config, "prevResult": result}, **env) == (0, None)
    assert run_plugin(cni_bin, "ptp", "DEL", {**config, "prevResult": result}, **env) == (0, None)
    assert lease_files(tmp_path, "ptpnet") == {}
