"""podwire-doctor's sysctl checks over trees: forwarding per family the network uses, and strict
reverse-path filtering where pod interfaces get it."""
from __future__ import annotations

import pytest

from cri.doctor import sysctls
from cri.doctor.report import BLOCKER, OK, UNCHECKED, WARNING
from doctortree import Tree, by_check


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path).healthy()


def findings(tree: Tree) -> dict:
    return by_check(sysctls.check(tree.node()))


def ipv4_only(tree: Tree) -> None:
    conflist = tree.path("/etc/cni/net.d/10-podwire.conflist")
    conflist.write_text(conflist.read_text().replace(',\n          [{"subnet": "fd85::/64"}]', ""))


def test_healthy(tree):
    assert {f.status for f in findings(tree).values()} == {OK}


def test_ipv4_forwarding_off(tree):
    tree.write("/proc/sys/net/ipv4/ip_forward", "0")
    found = findings(tree)["sysctl.ipv4-forwarding"]
    assert found.status == WARNING and "net.ipv4.ip_forward=1" in found.fix


def test_ipv6_forwarding_off_matters_only_with_an_ipv6_range(tree):
    tree.write("/proc/sys/net/ipv6/conf/all/forwarding", "0")
    assert findings(tree)["sysctl.ipv6-forwarding"].status == WARNING
    ipv4_only(tree)
    assert "fd85" not in tree.path("/etc/cni/net.d/10-podwire.conflist").read_text()
    found = findings(tree)["sysctl.ipv6-forwarding"]
    assert found.status == OK and "no IPv6 range" in found.summary


def test_ipv6_disabled_with_an_ipv6_range(tree):
    tree.remove("/proc/sys/net/ipv6")
    assert findings(tree)["sysctl.ipv6-forwarding"].status == BLOCKER
    ipv4_only(tree)
    assert findings(tree)["sysctl.ipv6-forwarding"].status == OK


@pytest.mark.parametrize("all_, default, bridge, status", [
    (0, 0, 0, OK), (2, 2, 2, OK), (0, 2, 0, OK),
    (1, 0, 0, WARNING),            # all=1 makes every interface strict
    (0, 1, 0, WARNING),            # new host veths start strict
    (0, 0, 1, WARNING),            # the bridge itself
    (1, 2, 2, OK),                 # max(all, iface): loose wins over strict
])
def test_rp_filter_effective_value(tree, all_, default, bridge, status):
    for conf, value in (("all", all_), ("default", default), ("podwire0", bridge)):
        tree.write(f"/proc/sys/net/ipv4/conf/{conf}/rp_filter", str(value))
    assert findings(tree)["sysctl.rp-filter"].status == status


def test_rp_filter_of_the_conflists_bridge(tree):
    conflist = tree.path("/etc/cni/net.d/10-podwire.conflist")
    conflist.write_text(conflist.read_text().replace('"bridge": "podwire0"', '"bridge": "cbr0"'))
    tree.write("/proc/sys/net/ipv4/conf/cbr0/rp_filter", "1")
    found = findings(tree)["sysctl.rp-filter"]
    assert found.status == WARNING and "cbr0" in found.summary


def test_unreadable(tree):
    tree.remove("/proc/sys/net/ipv4")
    found = findings(tree)
    assert found["sysctl.ipv4-forwarding"].status == UNCHECKED
    assert found["sysctl.rp-filter"].status == UNCHECKED
