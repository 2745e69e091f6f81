"""podwire with the reference Go plugins: the reference host-local as our IPAM."""
from __future__ import annotations

import subprocess

from cnitest import leases, ping
from conftest import needs_root

pytestmark = needs_root


def test_podwire_with_reference_host_local(network, netns_factory):
    # Debian's reference plugins speak up to 1.0.0.
    network.ipam_type = "host-local"
    conf = network.conf(cni_version="1.0.0")
    a, b = netns_factory(), netns_factory()
    code, ra = network.run("ADD", conf, "ref-a", a)
    assert code == 0, ra
    code, rb = network.run("ADD", conf, "ref-b", b)
    assert code == 0, rb
    try:
        lease_files = leases(network.data_dir, network.name)
        assert sorted(lease_files.values()) == ["ref-a\r\neth0", "ref-b\r\neth0"]
        assert ping(a, rb["ips"][0]["address"].split("/")[0])
        assert network.run("CHECK", {**conf, "prevResult": ra}, "ref-a", a) == (0, None)
    finally:
        assert network.run("DEL", conf, "ref-a", a) == (0, None)
        assert network.run("DEL", conf, "ref-b", b) == (0, None)
    assert leases(network.data_dir, network.name) == {}
    assert subprocess.run(["ip", "link", "show", ra["interfaces"][1]["name"]], capture_output=True).returncode != 0
