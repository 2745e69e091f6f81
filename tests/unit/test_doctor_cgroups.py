"""podwire-doctor's cgroup checks over trees: the version, and podwire-cri's driver (cri.toml,
else PID 1) against the kubelet's cgroupDriver."""
from __future__ import annotations

import pytest

from cri import config
from cri.doctor import cgroups
from cri.doctor.node import Node
from cri.doctor.report import BLOCKER, OK, WARNING
from doctortree import Tree, by_check


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path).healthy()


def findings(tree: Tree) -> dict:
    return by_check(cgroups.check(tree.node()))


def use_v1(tree: Tree) -> None:
    tree.remove("/sys/fs/cgroup/cgroup.controllers")
    tree.mkdir("/sys/fs/cgroup/memory")


def test_healthy(tree):
    found = findings(tree)
    assert found["cgroup.version"].status == OK and found["cgroup.version"].summary == "cgroup v2"
    assert found["cgroup.driver"].status == OK
    assert found["cgroup.driver"].summary == "podwire-cri and the kubelet both use systemd"


def test_v1_is_a_warning_unless_the_kubelet_refuses_it(tree):
    use_v1(tree)
    assert findings(tree)["cgroup.version"].status == WARNING
    tree.write("/var/lib/kubelet/config.yaml", "cgroupDriver: systemd\nfailCgroupV1: true\n")
    assert findings(tree)["cgroup.version"].status == BLOCKER


def test_hybrid_is_v1(tree):
    tree.remove("/sys/fs/cgroup/cgroup.controllers")
    tree.write("/sys/fs/cgroup/unified/cgroup.controllers", "")
    assert cgroups.cgroup_version(tree.node()) == "hybrid"
    assert findings(tree)["cgroup.version"].status == WARNING


def test_no_cgroups_at_all(tree):
    tree.remove("/sys/fs/cgroup")
    assert findings(tree)["cgroup.version"].status == BLOCKER


def test_kubelet_on_cgroupfs_against_a_systemd_shim(tree):
    tree.write("/var/lib/kubelet/config.yaml", "cgroupDriver: cgroupfs\n")
    found = findings(tree)["cgroup.driver"]
    assert found.status == BLOCKER
    assert "podwire-cri uses systemd, the kubelet's cgroupDriver is cgroupfs" in found.summary


def test_kubelet_default_driver_is_cgroupfs(tree):
    tree.write("/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n")
    assert findings(tree)["cgroup.driver"].status == BLOCKER
    tree.write("/proc/1/comm", "init")             # the shim follows PID 1: cgroupfs too
    assert findings(tree)["cgroup.driver"].status == OK


def test_kubelet_taking_the_driver_from_the_runtime(tree):
    tree.write("/var/lib/kubelet/config.yaml", "cgroupDriver: cgroupfs\n"
               "featureGates:\n  KubeletCgroupDriverFromCRI: true\n")
    found = findings(tree)["cgroup.driver"]
    assert found.status == OK and "KubeletCgroupDriverFromCRI" in found.summary


def test_cri_toml_driver_wins_over_pid1(tree):
    tree.write("/etc/podwire/cri.toml", 'cgroup_driver = "cgroupfs"\n')
    assert cgroups.shim_driver(tree.node(), tree.node().cri) == "cgroupfs"
    assert findings(tree)["cgroup.driver"].status == BLOCKER     # the kubelet says systemd


def test_systemd_driver_without_systemd(tree):
    tree.write("/etc/podwire/cri.toml", 'cgroup_driver = "systemd"\n')
    tree.write("/proc/1/comm", "tini")
    found = findings(tree)["cgroup.driver"]
    assert found.status == BLOCKER and "PID 1 is tini" in found.summary


def test_parent_of_the_other_drivers_form(tree):
    tree.write("/etc/podwire/cri.toml", 'cgroup_parent = "/podwire"\n')   # a path, under systemd
    found = findings(tree)["cgroup.driver"]
    assert found.status == BLOCKER and "cgroup_parent" in found.fix


def test_broken_cri_toml(tree):
    tree.write("/etc/podwire/cri.toml", "no_such_key = 1\n")
    found = findings(tree)["cgroup.driver"]
    assert found.status == BLOCKER and "podwire-cri would not start" in found.summary


def test_no_kubelet_config(tree):
    tree.remove("/var/lib/kubelet/config.yaml")
    found = findings(tree)["cgroup.driver"]
    assert found.status == OK and "no kubelet config" in found.summary


def test_unreadable_kubelet_config(tree):
    tree.write("/var/lib/kubelet/config.yaml", "cgroupDriver: [systemd\n")
    assert findings(tree)["cgroup.driver"].status == WARNING


def test_same_rule_as_the_shim_on_this_node():
    """The doctor reads PID 1 under its root; on / it must resolve as podwire-cri does."""
    assert cgroups.shim_driver(Node(), config.Config()) == config.default_cgroup_driver()
