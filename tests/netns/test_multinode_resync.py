"""podwire-cnid's periodic resync (`routing_resync`): state someone removed by hand on the
node -- a route, an FDB entry, the masquerade table -- comes back without any change of the
cluster's Nodes.  vxlan mode on the routed bed covers all three kinds of state."""
from __future__ import annotations

import subprocess
import time

import pytest

from cni.daemon.nodes.model import overlay_mac
from nodebed import Bed, wait_for


@pytest.fixture(scope="module")
def bed(podwire_bin_dir, tmp_path_factory):
    bed = Bed(tmp_path_factory.mktemp("mn-resync"), "vxlan", "routed", podwire_bin_dir)
    try:
        bed.build(2)
        for node in bed.nodes.values():
            bed.put_node(node)
        bed.nodes["n1"].start(None, 30, True, "--routing-resync", "1")
        bed.nodes["n2"].start()
        yield bed
    finally:
        bed.close()


def test_what_was_removed_by_hand_comes_back_at_the_next_resync(bed):
    n1, n2 = bed.nodes["n1"], bed.nodes["n2"]
    routes = {"10.244.2.0/24 via 10.244.2.0", "fd00:244:2::/64 via fd00:244:2::"}
    fdb = {f"{overlay_mac(n2.addresses[0])} dst {n2.addresses[0]}"}
    wait_for(lambda: n1.routes() == routes and n1.fdb() == fdb and n1.nat_table(), what="n1's routing state")
    reconciles = n1.health()["routing"]["reconciles"]

    run = lambda *argv: subprocess.run(["ip", "-n", n1.ns, *argv], check=True, capture_output=True)  # noqa: E731
    run("route", "del", "10.244.2.0/24")
    run("-6", "route", "del", "fd00:244:2::/64")
    subprocess.run(["bridge", "-n", n1.ns, "fdb", "del", overlay_mac(n2.addresses[0]), "dev", "podwire.vxlan",
                    "dst", n2.addresses[0]], check=True, capture_output=True)
    subprocess.run(["ip", "netns", "exec", n1.ns, "nft", "delete", "table", "inet", "podwire-nat"], check=True,
                   capture_output=True)
    assert n1.routes() == set() and n1.fdb() == set() and not n1.nat_table()

    removed = time.monotonic()
    wait_for(lambda: n1.routes() == routes and n1.fdb() == fdb and bool(n1.nat_table()), timeout=10,
             what="the resync putting it back")
    assert time.monotonic() - removed < 5
    assert n1.health()["routing"]["reconciles"] > reconciles
    # n2 (default resync, 60 s) was never touched and never needed to be
    assert n2.routes() == {"10.244.1.0/24 via 10.244.1.0", "fd00:244:1::/64 via fd00:244:1::"}
