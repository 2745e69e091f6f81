"""podwire-doctor's CNI checks over trees: podwire's conflist is the first one runtimes read, and
the plugins it chains (plus loopback) are where containerd and CRI-O look."""
from __future__ import annotations

import json

import pytest

from cri.doctor import cniconf, plugins
from cri.doctor.report import BLOCKER, OK, WARNING
from doctortree import SHIPPED_CONFLIST, Tree, by_check

OTHER = json.dumps({"cniVersion": "1.0.0", "name": "flannel",
                    "plugins": [{"type": "flannel"}, {"type": "portmap", "capabilities": {"portMappings": True}}]})


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path).healthy()


def order(tree: Tree, **overrides):
    [finding] = cniconf.check(tree.node(**overrides))
    return finding


def plugin_findings(tree: Tree) -> dict:
    return by_check(plugins.check(tree.node()))


def test_healthy(tree):
    assert order(tree).status == OK
    assert order(tree).summary == "/etc/cni/net.d/10-podwire.conflist (network 'podwire') is the first config " \
                                  "in /etc/cni/net.d"
    assert {f.status for f in plugin_findings(tree).values()} == {OK}


def test_a_config_sorting_first_takes_the_pods(tree):
    tree.write("/etc/cni/net.d/05-flannel.conflist", OTHER)
    found = order(tree)
    assert found.status == BLOCKER
    assert "/etc/cni/net.d/05-flannel.conflist (network 'flannel') sorts before 10-podwire.conflist" in found.summary


def test_lexical_not_numeric_order(tree):
    tree.write("/etc/cni/net.d/9-flannel.conflist", OTHER)       # "9" > "1": after, harmless
    assert order(tree).status == OK
    tree.write("/etc/cni/net.d/099-flannel.conflist", OTHER)     # "0" < "1": first
    assert order(tree).status == BLOCKER


def test_named_network_in_cri_toml_is_only_a_warning(tree):
    tree.write("/etc/cni/net.d/05-flannel.conflist", OTHER)
    tree.write("/etc/podwire/cri.toml", 'cni_network = "podwire"\n')
    found = order(tree)
    assert found.status == WARNING and "containerd and CRI-O would not" in found.summary


def test_an_invalid_file_first_is_a_warning(tree):
    tree.write("/etc/cni/net.d/01-broken.conf", "{not json")
    found = order(tree)
    assert found.status == WARNING and "01-broken.conf" in found.summary


def test_no_podwire_config(tree):
    tree.remove("/etc/cni/net.d/10-podwire.conflist")
    tree.write("/etc/cni/net.d/05-flannel.conflist", OTHER)
    found = order(tree)
    assert found.status == BLOCKER and "no config in /etc/cni/net.d chains the podwire plugin" in found.summary


def test_conf_dir_from_cri_toml(tree):
    tree.write("/srv/net.d/10-podwire.conflist", SHIPPED_CONFLIST.read_text())
    tree.write("/etc/cni/net.d/05-flannel.conflist", OTHER)
    tree.write("/etc/podwire/cri.toml", 'cni_conf_dir = "/srv/net.d"\n')
    assert order(tree).status == OK


def test_default_chain_is_the_shipped_conflists():
    shipped = json.loads(SHIPPED_CONFLIST.read_text())
    types = []
    for plugin in shipped["plugins"]:
        types += [plugin["type"]] + ([plugin["ipam"]["type"]] if "ipam" in plugin else [])
    assert tuple(types) == plugins.DEFAULT_CHAIN


def test_needed_plugins_include_ipam_and_loopback(tree):
    assert plugins.needed(tree.node()) == ["podwire", "podwire-ipam", "portmap", "loopback"]
    conflist = tree.path("/etc/cni/net.d/10-podwire.conflist")
    conflist.write_text(conflist.read_text().replace('"portmap"', '"bandwidth"'))
    assert plugins.needed(tree.node()) == ["podwire", "podwire-ipam", "bandwidth", "loopback"]
    tree.remove("/etc/cni/net.d/10-podwire.conflist")       # none yet: what make install will write
    assert plugins.needed(tree.node()) == ["podwire", "podwire-ipam", "portmap", "loopback"]


def test_reference_plugins_only_in_debians_dir(tree):
    """containerd with its default bin_dir on a node with Debian's containernetworking-plugins."""
    for name in ("portmap", "loopback"):
        tree.path(f"/opt/cni/bin/{name}").rename(tree.mkdir("/usr/lib/cni") / name)
    found = plugin_findings(tree)["cni.plugins"]
    assert found.status == BLOCKER
    assert found.summary == "portmap, loopback only in /usr/lib/cni: containerd and CRI-O look in /opt/cni/bin alone"
    assert "ln -s /usr/lib/cni/$p /opt/cni/bin/$p" in found.fix
    assert plugin_findings(tree)["cni.executables"].status == OK


def test_a_link_into_debians_dir_is_enough(tree):
    tree.remove("/opt/cni/bin/portmap")
    tree.executable("/usr/lib/cni/portmap")
    tree.path("/opt/cni/bin/portmap").symlink_to(tree.path("/usr/lib/cni/portmap"))
    assert plugin_findings(tree)["cni.plugins"].status == OK
    tree.remove("/usr/lib/cni/portmap")                     # a dangling link is no plugin
    assert plugin_findings(tree)["cni.plugins"].status == BLOCKER


def test_reference_plugins_nowhere(tree):
    tree.remove("/opt/cni/bin/loopback")
    found = plugin_findings(tree)["cni.plugins"]
    assert found.status == BLOCKER and "containernetworking-plugins" in found.fix
    assert found.summary == "loopback neither in /opt/cni/bin nor in /usr/lib/cni"


def test_podwire_not_installed(tree):
    tree.remove("/opt/cni/bin/podwire-ipam")
    found = plugin_findings(tree)["cni.executables"]
    assert found.status == BLOCKER and found.summary == "podwire-ipam not in /opt/cni/bin"


def masquerade(tree: Tree):
    from cri.doctor import masquerade as masq_check
    return masq_check.check(tree.node())


def test_ipmasq_is_the_conflists_business_without_routing(tree):
    [found] = masquerade(tree)
    assert found.status == OK and "ipMasq decides masquerading (on)" in found.summary


@pytest.mark.parametrize("routing", ["host-gw", "vxlan"])
def test_ipmasq_with_routing_between_nodes_is_a_warning(tree, routing):
    tree.write("/etc/podwire/cnid.toml", f'node_name = "n1"\nrouting = "{routing}"\n')
    [found] = masquerade(tree)
    assert found.status == WARNING and routing in found.summary and "ipMasq: true" in found.summary
    assert '"ipMasq": false' in found.fix


def test_routing_with_ipmasq_off_is_fine(tree):
    tree.write("/etc/podwire/cnid.toml", 'node_name = "n1"\nrouting = "host-gw"\n')
    shipped = json.loads(SHIPPED_CONFLIST.read_text())
    for plugin in shipped["plugins"]:
        plugin.pop("ipMasq", None)
    tree.write("/etc/cni/net.d/10-podwire.conflist", json.dumps(shipped))
    [found] = masquerade(tree)
    assert found.status == OK and "routing host-gw" in found.summary


def test_a_broken_cnid_toml_reads_as_no_routing(tree):
    tree.write("/etc/podwire/cnid.toml", "routing = ")
    assert masquerade(tree)[0].status == OK
