"""Inter-node routing's desired state, computed from Node objects (cni/daemon/nodes/model.py)."""
from __future__ import annotations

import pytest

from cni.daemon.nodes import masquerade
from cni.daemon.nodes.model import (Node, Peer, Route, RoutingError, desired, node_from_object, overlay_gateway,
                                    overlay_mac, overlay_mtu)


def obj(name, cidrs=(), addresses=(), single=None, extra_addresses=()):
    spec = {"podCIDRs": list(cidrs)} if cidrs else ({"podCIDR": single} if single else {})
    return {"metadata": {"name": name}, "spec": spec,
            "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses] +
                       [{"type": t, "address": a} for t, a in extra_addresses]}}


N1 = Node("n1", ("10.244.1.0/24", "fd00:1::/64"), ("192.168.0.1", "fc00::1"))
N2 = Node("n2", ("10.244.2.0/24", "fd00:2::/64"), ("192.168.0.2", "fc00::2"))
N3 = Node("n3", ("10.244.3.0/24",), ("192.168.0.3",))


def test_node_objects_give_pod_cidrs_and_internal_ips_only():
    node = node_from_object(obj("n1", ["10.244.1.0/24", "fd00:1::/64"], ["192.168.0.1", "fc00::1"],
                                extra_addresses=[("ExternalIP", "203.0.113.1"), ("Hostname", "n1")]))
    assert node == N1
    assert node_from_object(obj("n2", single="10.244.2.0/24")).pod_cidrs == ("10.244.2.0/24",)
    # A malformed field is dropped, not fatal: one bad Node must not stop the others.
    bad = node_from_object(obj("n3", ["nonsense", "10.244.3.0/24"], ["not-an-ip", "192.168.0.3"]))
    assert bad == N3
    assert node_from_object({"metadata": {"name": "n4"}}) == Node("n4")


def test_host_gw_routes_each_remote_cidr_via_its_address_of_the_same_family():
    want = desired("host-gw", "n1", [N1, N2, N3])
    assert want.routes == {Route("10.244.2.0/24", "192.168.0.2"), Route("fd00:2::/64", "fc00::2"),
                           Route("10.244.3.0/24", "192.168.0.3")}
    assert not want.problems and not want.peers
    assert want.remote_nodes == 2 and want.local_cidrs == N1.pod_cidrs


def test_own_node_is_skipped_and_a_node_without_an_address_of_the_family_too():
    v4_only = Node("n2", ("10.244.2.0/24", "fd00:2::/64"), ("192.168.0.2",))
    want = desired("host-gw", "n1", [N1, v4_only])
    assert want.routes == {Route("10.244.2.0/24", "192.168.0.2")}
    assert want.skipped == ["n2: no InternalIP of the family of fd00:2::/64"]
    assert all(r.dst not in N1.pod_cidrs for r in desired("vxlan", "n1", [N1, N2]).routes)


def test_the_local_node_unknown_or_without_addresses_is_a_problem_and_routes_nothing():
    assert desired("host-gw", "n1", [N2]).problems == ["routing: Node 'n1' not seen yet"]
    want = desired("vxlan", "n1", [Node("n1", ("10.244.1.0/24",)), N2])
    assert want.problems == ["routing: Node 'n1' has no InternalIP"] and not want.routes and not want.peers


def test_vxlan_peers_routes_and_gateways_dual_stack_over_an_ipv4_underlay():
    want = desired("vxlan", "n1", [N1, N2, N3])
    assert want.local_underlay == "192.168.0.1"
    assert want.peers == {Peer("02:77:c0:a8:00:02", "192.168.0.2", ("10.244.2.0", "fd00:2::")),
                          Peer("02:77:c0:a8:00:03", "192.168.0.3", ("10.244.3.0",))}
    assert want.routes == {Route("10.244.2.0/24", "10.244.2.0", onlink=True),
                           Route("fd00:2::/64", "fd00:2::", onlink=True),
                           Route("10.244.3.0/24", "10.244.3.0", onlink=True)}


def test_vxlan_over_an_ipv6_underlay_when_the_node_has_no_ipv4_address():
    n1 = Node("n1", ("fd00:1::/64",), ("fc00::1",))
    n2 = Node("n2", ("fd00:2::/64",), ("fc00::2",))
    n3 = Node("n3", ("fd00:3::/64",), ("192.168.0.3",))  # no IPv6 underlay: unreachable
    want = desired("vxlan", "n1", [n1, n2, n3])
    assert want.local_underlay == "fc00::1"
    assert want.peers == {Peer(overlay_mac("fc00::2"), "fc00::2", ("fd00:2::",))}
    assert want.skipped == ["n3: no IPv6 InternalIP"]


def test_deterministic_macs_are_unicast_locally_administered_and_distinct():
    assert overlay_mac("10.0.0.1") == "02:77:0a:00:00:01"
    macs = {overlay_mac(f"fc00::{i:x}") for i in range(1, 2000)} | {overlay_mac("10.0.0.1")}
    assert len(macs) == 2000
    for mac in macs:
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01  # locally administered, unicast
    assert overlay_mac("fc00::2") == overlay_mac("fc00:0::2")  # same address, same MAC anywhere


def test_mtu_leaves_room_for_the_encapsulation_of_the_underlay_family():
    assert overlay_mtu(1500, 4) == 1450
    assert overlay_mtu(1500, 6) == 1430
    assert overlay_mtu(9000, 4) == 8950
    assert overlay_gateway("10.244.7.0/24") == "10.244.7.0" and overlay_gateway("fd00:7::/64") == "fd00:7::"


def test_mode_switch_changes_the_whole_desired_state():
    nodes = [N1, N2]
    vx, gw, none = (desired(m, "n1", nodes) for m in ("vxlan", "host-gw", "none"))
    assert all(r.onlink for r in vx.routes) and not any(r.onlink for r in gw.routes)
    assert not none.routes and not none.peers and not none.problems
    assert not gw.routes & vx.routes
    with pytest.raises(RoutingError, match="unknown routing mode"):
        desired("bgp", "n1", nodes)


def test_cluster_cidrs_are_every_nodes_collapsed():
    want = desired("host-gw", "n1", [N1, N2, N3, Node("n4", ("10.244.2.0/23",), ("192.168.0.4",))])
    assert want.cluster_cidrs == ("10.244.1.0/24", "10.244.2.0/23", "fd00:1::/64", "fd00:2::/64")


def test_masquerade_script_excludes_the_cluster_and_replaces_the_table_atomically():
    text = masquerade.script(("10.244.1.0/24", "fd00:1::/64"), ("10.244.1.0/24", "10.244.2.0/24", "fd00:1::/64"))
    lines = text.splitlines()
    assert lines[:3] == ["add table inet podwire-nat", "delete table inet podwire-nat", "table inet podwire-nat {"]
    assert "    elements = { 10.244.1.0/24, 10.244.2.0/24 }" in lines
    assert "    ip saddr 10.244.1.0/24 ip daddr != @cluster4 masquerade" in lines
    assert "    ip6 saddr fd00:1::/64 ip6 daddr != @cluster6 masquerade" in lines
    v4_only = masquerade.script(("10.244.1.0/24",), ("10.244.1.0/24", "fd00:2::/64"))
    assert "cluster6" not in v4_only and "ip6" not in v4_only
