"""Many podwire-ipam processes on one network at once, as a runtime starting
pods in parallel would exec them: the flock keeps every address unique."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from conftest import run_plugin

N = 50
ENV = {"CNI_NETNS_OVERRIDE": "1"}  # no real netns needed: IPAM never enters it


def lease_files(lease_dir) -> list[str]:
    return [n for n in os.listdir(lease_dir) if n[0].isdigit()]


def test_concurrent_adds_get_distinct_addresses_and_dels_free_them(cni_bin, tmp_path):
    config = {"cniVersion": "1.0.0", "name": "conc",
              "ipam": {"type": "podwire-ipam", "dataDir": str(tmp_path),
                       "ranges": [[{"subnet": "10.77.0.0/24"}]]}}

    def call(command: str, n: int):
        return run_plugin(cni_bin, "podwire-ipam", command, config, container_id=f"pod{n}",
                          netns="/var/run/netns/none", extra_env=ENV)

    with ThreadPoolExecutor(N) as pool:
        adds = list(pool.map(lambda n: call("ADD", n), range(N)))
    assert [code for code, _ in adds] == [0] * N, adds
    addresses = [out["ips"][0]["address"] for _, out in adds]
    assert len(set(addresses)) == N
    lease_dir = tmp_path / "conc"
    assert len(lease_files(lease_dir)) == N
    for n, address in enumerate(addresses):  # each lease file names its own pod
        assert (lease_dir / address.split("/")[0]).read_bytes() == f"pod{n}\r\neth0".encode()

    with ThreadPoolExecutor(N) as pool:
        dels = list(pool.map(lambda n: call("DEL", n), range(N)))
    assert dels == [(0, None)] * N
    assert lease_files(lease_dir) == []
    assert os.listdir(lease_dir / ".podwire-index" / "attachments") == []
