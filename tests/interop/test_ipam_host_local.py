"""podwire-ipam and the reference host-local on one lease directory: a node can
switch between them, or run both, without losing or sharing an address."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REFERENCE_PLUGIN_DIR, run_plugin

pytestmark = [pytest.mark.interop, pytest.mark.skipif(
    not os.path.exists(os.path.join(REFERENCE_PLUGIN_DIR, "host-local")), reason="no reference host-local")]

ENV = {"CNI_NETNS_OVERRIDE": "1"}  # IPAM never enters the netns


@pytest.fixture
def config(tmp_path):
    """One dual-stack network; the same config serves both plugins (only ``type`` differs)."""
    return {"cniVersion": "1.0.0", "name": "mixed",
            "ipam": {"dataDir": str(tmp_path), "ranges": [[{"subnet": "10.78.0.0/24"}],
                                                          [{"subnet": "fd00:78::/64"}]]}}


def call(cni_bin, plugin: str, command: str, config: dict, cid: str):
    conf = {**config, "ipam": {**config["ipam"], "type": plugin}}
    return run_plugin(cni_bin, plugin, command, conf, container_id=cid,
                      netns="/var/run/netns/none", extra_env=ENV)


def leases(lease_dir) -> dict[str, bytes]:
    return {n: (lease_dir / n).read_bytes() for n in os.listdir(lease_dir)
            if n[0].isdigit() or n.startswith("fd")}


def plugin_for(n: int) -> str:
    return "host-local" if n % 2 else "podwire-ipam"


def test_interleaved_plugins_never_share_an_address(cni_bin, config, tmp_path):
    count = 40
    with ThreadPoolExecutor(16) as pool:
        adds = list(pool.map(lambda n: call(cni_bin, plugin_for(n), "ADD", config, f"pod{n}"),
                             range(count)))
    assert [code for code, _ in adds] == [0] * count, adds
    addresses = [ip["address"].split("/")[0] for _, out in adds for ip in out["ips"]]
    assert len(addresses) == 2 * count and len(set(addresses)) == 2 * count
    lease_dir = tmp_path / "mixed"
    on_disk = leases(lease_dir)
    for n, (_, out) in enumerate(adds):
        for ip in out["ips"]:
            assert on_disk[ip["address"].split("/")[0]] == f"pod{n}\r\neth0".encode()
    # Each plugin releases the other's leases.
    with ThreadPoolExecutor(16) as pool:
        dels = list(pool.map(lambda n: call(cni_bin, plugin_for(n + 1), "DEL", config, f"pod{n}"),
                             range(count)))
    assert [code for code, _ in dels] == [0] * count, dels
    assert leases(lease_dir) == {}


def test_podwire_takes_over_a_host_local_directory(cni_bin, config, tmp_path):
    code, first = call(cni_bin, "host-local", "ADD", config, "hl1")
    assert code == 0
    # podwire-ipam's first open migrates: the host-local lease is found, not duplicated
    code, again = call(cni_bin, "podwire-ipam", "ADD", config, "hl1")
    assert (code, again["ips"]) == (0, first["ips"])
    code, out = call(cni_bin, "podwire-ipam", "ADD", config, "pw1")
    assert [ip["address"] for ip in out["ips"]] == ["10.78.0.3/24", "fd00:78::3/64"]  # cursor carried on
    # host-local writes after the migration are found too
    code, late = call(cni_bin, "host-local", "ADD", config, "hl2")
    assert [ip["address"] for ip in late["ips"]] == ["10.78.0.4/24", "fd00:78::4/64"]
    assert call(cni_bin, "podwire-ipam", "DEL", config, "hl2") == (0, None)
    assert call(cni_bin, "podwire-ipam", "DEL", config, "hl1") == (0, None)
    assert set(leases(tmp_path / "mixed")) == {"10.78.0.3", "fd00:78::3"}


def test_host_local_sees_podwire_leases_and_leaves_the_index_alone(cni_bin, config, tmp_path):
    call(cni_bin, "podwire-ipam", "ADD", config, "pw1")
    call(cni_bin, "podwire-ipam", "ADD", config, "pw2")
    assert call(cni_bin, "host-local", "CHECK", config, "pw1") == (0, None)
    assert call(cni_bin, "host-local", "DEL", config, "pw1") == (0, None)
    index = tmp_path / "mixed" / ".podwire-index" / "attachments"
    assert "pw2@eth0" in os.listdir(index)  # host-local's walk did not delete it
    code, out = call(cni_bin, "podwire-ipam", "ADD", config, "pw2")
    assert [ip["address"] for ip in out["ips"]] == ["10.78.0.3/24", "fd00:78::3/64"]
    assert call(cni_bin, "podwire-ipam", "CHECK", config, "pw1")[0] == 1
    assert set(leases(tmp_path / "mixed")) == {"10.78.0.3", "fd00:78::3"}
