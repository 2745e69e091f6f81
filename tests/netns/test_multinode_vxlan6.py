"""VXLAN over an IPv6 underlay: nodes whose only InternalIP is IPv6 (an IPv6-only or
IPv6-first cluster network) carry both pod families through one podwire.vxlan device whose
outer packets are IPv6.  The routed bed (nodes behind a router, no shared L2) with every
Node object published with its IPv6 address alone."""
from __future__ import annotations

import pytest

from cni.daemon.nodes.model import overlay_mac
from nodebed import Bed, tcp_exchange, wait_for


@pytest.fixture(scope="module")
def bed(podwire_bin_dir, tmp_path_factory):
    bed = Bed(tmp_path_factory.mktemp("mn-vxlan6"), "vxlan", "routed", podwire_bin_dir)
    try:
        bed.build(2)
        for node in bed.nodes.values():
            node.addresses = node.addresses[1:]  # fc00:<i>::2 only
            bed.put_node(node)
        for node in bed.nodes.values():
            node.start()
            node.add_pod()
        yield bed
    finally:
        bed.close()


def test_both_pod_families_ride_an_ipv6_underlay(bed):
    n1, n2 = bed.nodes["n1"], bed.nodes["n2"]
    wait_for(lambda: n1.fdb() == {f"{overlay_mac(n2.addresses[0])} dst {n2.addresses[0]}"}, what="n1's FDB")
    assert n1.neighbours() == {"10.244.2.0", "fd00:244:2::"}
    assert n1.routes() == {"10.244.2.0/24 via 10.244.2.0", "fd00:244:2::/64 via fd00:244:2::"}
    a, b = n1.pods[0], n2.pods[0]
    assert a.mtu() == b.mtu() == 1430  # 1500 underlay less VXLAN over IPv6 (70)
    for family in (4, 6):
        assert a.ping(b.ip(family)) and b.ping(a.ip(family)), f"IPv{family}"
        assert tcp_exchange(a.ns, b.ns, b.ip(family)) == a.ip(family)  # full-size segments, source kept
    detail = " ".join(n1.vxlan_details().split())
    assert f"local {n1.addresses[0]}" in detail, detail
