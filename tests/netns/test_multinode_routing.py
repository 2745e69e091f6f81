"""Pod-to-pod routing between nodes: podwire-cnid in each "node" (a network namespace)
learns the cluster's Nodes from an API stub through the official client and installs
host-gw routes (nodes on one L2 underlay) or a VXLAN overlay (nodes behind a router).

One bed per mode (module scope: three nodes' daemons start once); the tests run in order
and each leaves the bed as it found it (n1 and n2 up, n3 absent from the API).
"""
from __future__ import annotations

import signal

import pytest

from cni.daemon.nodes.model import overlay_mac
from nodebed import Bed, tcp_exchange, wait_for

MODES = {"host-gw": "l2", "vxlan": "routed"}


@pytest.fixture(scope="module")
def bin_dir(podwire_bin_dir) -> str:
    return podwire_bin_dir


@pytest.fixture(scope="module", params=list(MODES))
def bed(request, bin_dir, tmp_path_factory):
    mode = request.param
    bed = Bed(tmp_path_factory.mktemp(f"mn-{mode}"), mode, MODES[mode], bin_dir)
    try:
        bed.build(3)
        n1, n2 = bed.nodes["n1"], bed.nodes["n2"]
        for node in (n1, n2):
            bed.put_node(node)
        for node in (n1, n2):
            node.start()
        for node in (n1, n2):
            node.add_pod()
        yield bed
    finally:
        bed.close()


def expected_routes(bed, local, remotes) -> set[str]:
    out = set()
    for node in remotes:
        for cidr, address in zip(node.pod_cidrs, node.addresses, strict=True):
            gateway = cidr.split("/")[0] if bed.mode == "vxlan" else address
            out.add(f"{cidr} via {gateway}")
    return out


def test_pods_on_two_nodes_talk_ipv4_and_ipv6(bed):
    n1, n2 = bed.nodes["n1"], bed.nodes["n2"]
    wait_for(lambda: n1.routes() == expected_routes(bed, n1, [n2]), what="n1's routes")
    a, b = n1.pods[0], n2.pods[0]
    for family in (4, 6):
        assert a.ping(b.ip(family)), f"IPv{family} ping {a.ip(family)} -> {b.ip(family)}"
        assert b.ping(a.ip(family))
        # The server sees the pod's own address: pod-to-pod is never masqueraded.
        assert tcp_exchange(a.ns, b.ns, b.ip(family)) == a.ip(family)
        # The node itself reaches a remote pod too (an API server's webhook call, a NodePort's
        # DNAT to a backend on another node), whatever source address the kernel picks.
        assert tcp_exchange(n1.ns, b.ns, b.ip(family), size=1000)
    if bed.mode == "vxlan":
        assert a.mtu() == b.mtu() == 1450  # 1500 underlay less VXLAN over IPv4 (50)
        assert n1.fdb() == {f"{overlay_mac(n2.addresses[0])} dst {n2.addresses[0]}"}
        assert n1.neighbours() == {"10.244.2.0", "fd00:244:2::"}
    else:
        assert a.mtu() == 1500 and not n1.has_link("podwire.vxlan")


def test_traffic_leaving_the_cluster_is_masqueraded(bed):
    n1 = bed.nodes["n1"]
    a = n1.pods[0]
    assert n1.inside_cluster("10.244.2.9") and n1.inside_cluster("fd00:244:2::9")
    assert not n1.inside_cluster(bed.outside4) and not n1.inside_cluster(bed.outside6)
    assert tcp_exchange(a.ns, bed.hub, bed.outside4, size=1000) == n1.addresses[0]
    assert tcp_exchange(a.ns, bed.hub, bed.outside6, size=1000) == n1.addresses[1]


def test_a_node_added_then_removed_takes_its_routes_with_it(bed):
    n1, n2, n3 = bed.nodes["n1"], bed.nodes["n2"], bed.nodes["n3"]
    bed.put_node(n3)
    n3.start()
    try:
        wait_for(lambda: n1.routes() == expected_routes(bed, n1, [n2, n3]), what="n3's routes on n1")
        c = n3.add_pod()
        a = n1.pods[0]
        assert a.ping(c.ip(4)) and a.ping(c.ip(6))
        assert n1.inside_cluster("10.244.3.9") and n1.inside_cluster("fd00:244:3::9")  # not masqueraded
        assert tcp_exchange(c.ns, a.ns, a.ip(4), size=1000) == c.ip(4)
    finally:
        n3.kill()
        bed.delete_node(n3)
    wait_for(lambda: n1.routes() == expected_routes(bed, n1, [n2]), what="n3's routes gone from n1")
    wait_for(lambda: not n1.inside_cluster("10.244.3.9"), what="n3's CIDR gone from the masquerade set")
    if bed.mode == "vxlan":
        assert overlay_mac(n3.addresses[0]) not in " ".join(n1.fdb())
        assert "10.244.3.0" not in n1.neighbours()


def test_restart_after_kill9_with_a_node_removed_meanwhile_leaves_nothing_stale(bed):
    n1, n2, n3 = bed.nodes["n1"], bed.nodes["n2"], bed.nodes["n3"]
    bed.put_node(n3)
    wait_for(lambda: n1.routes() == expected_routes(bed, n1, [n2, n3]), what="n3's routes on n1")
    n1.kill(signal.SIGKILL)
    bed.delete_node(n3)
    assert n1.routes() == expected_routes(bed, n1, [n2, n3])  # nobody there to remove them
    n1.start()
    wait_for(lambda: n1.routes() == expected_routes(bed, n1, [n2]), what="stale routes removed")
    if bed.mode == "vxlan":
        assert n1.fdb() == {f"{overlay_mac(n2.addresses[0])} dst {n2.addresses[0]}"}
        assert n1.neighbours() == {"10.244.2.0", "fd00:244:2::"}
    assert not n1.inside_cluster("10.244.3.9") and n1.inside_cluster("10.244.2.9")
    a, b = n1.pods[0], n2.pods[0]
    assert a.ping(b.ip(4)) and a.ping(b.ip(6))


def test_switching_modes_removes_the_other_modes_state(bed):
    n1, n2 = bed.nodes["n1"], bed.nodes["n2"]
    try:
        if bed.mode == "vxlan":
            # host-gw on a routed underlay: the overlay is gone, and the daemon says why no
            # route could replace it (the peer is not on-link), rather than pretending.
            n1.kill()
            n1.start("host-gw", wait=False)
            wait_for(lambda: "unreachable" in " ".join(n1.health().get("problems", [])), what="host-gw refused")
            assert not n1.has_link("podwire.vxlan") and not n1.routes()
        else:
            n1.kill()
            n1.start("vxlan")
            wait_for(lambda: n1.routes() == {f"{c} via {c.split('/')[0]}" for c in n2.pod_cidrs}, what="vxlan routes")
            assert n1.has_link("podwire.vxlan")
        n1.kill()
        n1.start("none")
        wait_for(lambda: not n1.routes(), what="no podwire route in mode none")
        assert n1.nat_table() == "" and not n1.has_link("podwire.vxlan")
        assert n1.health()["routing"]["mode"] == "none"
    finally:
        n1.kill()
        n1.start()
    wait_for(lambda: n1.routes() == expected_routes(bed, n1, [n2]), what="routes back")
    a, b = n1.pods[0], n2.pods[0]
    assert a.ping(b.ip(4)) and a.ping(b.ip(6))
