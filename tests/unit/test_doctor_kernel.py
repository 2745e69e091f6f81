"""podwire-doctor's kernel checks over trees: the release floor, bpffs, BTF, headers, and the
link kinds, known from loaded modules or from the prober's answer (never probed in a tree)."""
from __future__ import annotations

import pytest

from cri.doctor import kernel, linkprobe
from cri.doctor.linkprobe import Probe
from cri.doctor.report import BLOCKER, OK, UNCHECKED, WARNING
from doctortree import RELEASE, Tree, by_check


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path).healthy()


def findings(tree: Tree, **overrides) -> dict:
    return by_check(kernel.check(tree.node(**overrides)))


def test_healthy(tree):
    assert {check: f.status for check, f in findings(tree).items()} == {
        check: OK for check in ("kernel.release", "kernel.bpffs", "kernel.btf", "kernel.headers",
                                "kernel.veth", "kernel.bridge", "kernel.vxlan", "kernel.clsact")}


@pytest.mark.parametrize("release, status", [("5.7.19", BLOCKER), ("5.8.0", OK), ("4.19.0-26-amd64", BLOCKER),
                                             ("6.12.9", OK), ("garbage", UNCHECKED)])
def test_release_floor_is_5_8(tree, release, status):
    tree.write("/proc/sys/kernel/osrelease", release)
    assert findings(tree)["kernel.release"].status == status


def test_bpffs_not_mounted_is_a_warning_the_agent_mounts_it(tree):
    tree.write("/proc/self/mounts", "sysfs /sys sysfs rw 0 0\n")
    found = findings(tree)["kernel.bpffs"]
    assert found.status == WARNING and "not mounted" in found.summary
    assert "/etc/fstab" in found.fix


def test_bpffs_unsupported_is_a_blocker(tree):
    tree.write("/proc/self/mounts", "sysfs /sys sysfs rw 0 0\n")
    tree.write("/proc/filesystems", "nodev\tsysfs\n\text4\n")
    found = findings(tree)["kernel.bpffs"]
    assert found.status == BLOCKER and "CONFIG_BPF_SYSCALL" in found.summary


def test_something_else_mounted_on_bpffs_is_a_blocker(tree):
    # The top mount counts: bpffs underneath a tmpfs is hidden from the agent.
    tree.write("/proc/self/mounts", "bpf /sys/fs/bpf bpf rw 0 0\ntmpfs /sys/fs/bpf tmpfs rw 0 0\n")
    found = findings(tree)["kernel.bpffs"]
    assert found.status == BLOCKER and "tmpfs" in found.summary


def test_btf_absent_is_fine(tree):
    tree.remove("/sys/kernel/btf/vmlinux")
    found = findings(tree)["kernel.btf"]
    assert found.status == OK and "does not need" in found.summary


def test_no_headers_is_a_blocker_for_the_agent(tree):
    tree.remove(f"/lib/modules/{RELEASE}/build")
    found = findings(tree)["kernel.headers"]
    assert found.status == BLOCKER and f"linux-headers-{RELEASE}" in found.fix
    tree.write("/sys/kernel/kheaders.tar.xz", "")
    assert findings(tree)["kernel.headers"].status == OK


def test_link_kinds_of_unloaded_modules_are_not_probed_in_a_tree(tree):
    tree.write("/proc/modules", "veth 40960 0 - Live 0x0\n")
    found = findings(tree)      # the tree's prober raises if called
    assert found["kernel.veth"].status == OK
    for kind in ("bridge", "vxlan", "clsact"):
        assert found[f"kernel.{kind}"].status == UNCHECKED
        assert "not the running node" in found[f"kernel.{kind}"].summary


@pytest.mark.parametrize("kind, required_status", [("veth", BLOCKER), ("bridge", BLOCKER), ("clsact", BLOCKER),
                                                   ("vxlan", WARNING)])
def test_a_refused_link_kind(kind, required_status):
    refused = Probe(False, "Error: Unknown device type.")
    found = kernel._link_kind(kind, refused, kernel.LINK_KINDS[kind][0])
    assert found.status == required_status
    assert "Unknown device type" in found.summary and f"modprobe {kernel.linkprobe.MODULES[kind]}" in found.fix
    assert kernel._link_kind(kind, Probe(True), True).status == OK
    assert kernel._link_kind(kind, Probe(None, "needs root"), True).status == UNCHECKED


def test_no_bridge_is_only_a_warning_in_routed_mode(tree):
    conflist = tree.path("/etc/cni/net.d/10-podwire.conflist")
    conflist.write_text(conflist.read_text().replace('"mode": "bridge"', '"mode": "routed"'))
    node = tree.node()
    assert kernel._required(node, "bridge") is False
    assert kernel._required(node, "veth") is True
    assert kernel._required(tree.node(cni_conf_dir="/nowhere"), "bridge") is True


def test_without_root_the_prober_says_it_could_not_check(monkeypatch):
    monkeypatch.setattr(linkprobe.os, "geteuid", lambda: 1000)
    assert linkprobe.probe_all(["veth", "clsact"]) == {
        "veth": Probe(None, "needs root (a private network namespace)"),
        "clsact": Probe(None, "needs root (a private network namespace)")}


def test_without_the_tools_the_prober_says_so(monkeypatch):
    monkeypatch.setattr(linkprobe.os, "geteuid", lambda: 0)
    monkeypatch.setattr(linkprobe.shutil, "which", lambda tool: None if tool == "tc" else f"/usr/bin/{tool}")
    assert linkprobe.probe_all(["clsact"]) == {"clsact": Probe(None, "no tc command")}
