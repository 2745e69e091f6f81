"""Routing's settings, health and the overlay MTU the plugin picks up."""
from __future__ import annotations

import pytest

from cni.daemon import main
from cni.daemon.nodes.model import Node, RoutingError, desired
from cni.daemon.nodes.router import NodeRouter
from cni.ipam import nodecidr


def test_routing_defaults_to_none_and_needs_a_node_name(tmp_path):
    opts = main.parse_args(["--config", str(tmp_path / "absent.toml")])
    assert (opts.routing, opts.vxlan_vni, opts.vxlan_port, opts.masquerade) == ("none", 1, 8472, True)
    with pytest.raises(SystemExit):
        main.parse_args(["--config", str(tmp_path / "absent.toml"), "--routing", "vxlan"])
    opts = main.parse_args(["--config", str(tmp_path / "absent.toml"), "--routing", "host-gw", "--node-name", "n1",
                            "--no-masquerade"])
    assert opts.routing == "host-gw" and opts.masquerade is False


def test_routing_settings_from_cnid_toml(tmp_path):
    conf = tmp_path / "cnid.toml"
    conf.write_text('routing = "vxlan"\nnode_name = "n1"\nvxlan_vni = 42\nvxlan_port = 4789\n')
    opts = main.parse_args(["--config", str(conf)])
    assert (opts.routing, opts.vxlan_vni, opts.vxlan_port) == ("vxlan", 42, 4789)
    conf.write_text('routing = "vxlan"\nnode_name = "n1"\nvxlan_vni = 0\n')
    with pytest.raises(SystemExit):
        main.parse_args(["--config", str(conf)])


def test_routing_resync_is_a_positive_number_of_seconds(tmp_path):
    absent = ["--config", str(tmp_path / "absent.toml")]
    assert main.parse_args(absent).routing_resync == 60.0
    assert main.parse_args([*absent, "--routing-resync", "2.5"]).routing_resync == 2.5
    conf = tmp_path / "cnid.toml"
    conf.write_text("routing_resync = 0\n")
    with pytest.raises(SystemExit):
        main.parse_args(["--config", str(conf)])
    with pytest.raises(SystemExit):
        main.parse_args([*absent, "--routing-resync", "-1"])
    for bad in ('"60"', "true"):
        conf.write_text(f"routing_resync = {bad}\n")
        with pytest.raises(SystemExit):
            main.parse_args(["--config", str(conf)])


def test_health_says_why_routing_is_not_ready(tmp_path):
    router = NodeRouter("host-gw", "n1", str(tmp_path / "mtu"))
    assert router.problem() == "routing: Node objects not listed yet"
    router.nodes = {}
    assert router.problem() == "routing: not reconciled yet"
    router.state = desired("host-gw", "n1", [Node("n1", ("10.244.1.0/24",))])
    assert router.problem() == "routing: Node 'n1' has no InternalIP"
    router.state = desired("host-gw", "n1", [Node("n1", ("10.244.1.0/24",), ("192.168.0.1",)),
                                             Node("n2", ("10.244.2.0/24",), ("192.168.0.2",))])
    assert router.problem() is None
    assert router.stats() == {"mode": "host-gw", "routes": 1, "remote_nodes": 1, "reconciles": 0}
    router.last_error = "RoutingError: cannot add route 10.244.2.0/24 via 192.168.0.2: Network is unreachable"
    assert router.problem().startswith("routing not ready: RoutingError")
    assert NodeRouter("none", "", str(tmp_path / "mtu")).problem() is None
    with pytest.raises(RoutingError):
        NodeRouter("vxlan", "", str(tmp_path / "mtu"))


def test_the_plugin_reads_the_overlay_mtu_next_to_the_pod_cidrs(tmp_path, monkeypatch):
    cidrs = tmp_path / "pod-cidrs.json"
    monkeypatch.setenv(nodecidr.PATH_ENV, str(cidrs))
    assert nodecidr.mtu_path() == str(tmp_path / "pod-mtu.json")
    assert nodecidr.pod_mtu() == 0  # no overlay: the link's default
    (tmp_path / "pod-mtu.json").write_text('{"mtu": 1450}')
    assert nodecidr.pod_mtu() == 1450
    (tmp_path / "pod-mtu.json").write_text("garbage")
    assert nodecidr.pod_mtu() == 0
