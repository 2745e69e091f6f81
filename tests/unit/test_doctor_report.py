"""podwire-doctor's report: the exit-code policy, the JSON shape, the text layout, and the whole
command over a healthy tree and over broken ones."""
from __future__ import annotations

import io
import json
import os

import pytest

from cri.doctor import main as doctor, report, sockets
from cri.doctor.report import BLOCKER, OK, UNCHECKED, WARNING, Finding
from doctortree import Tree


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Tree:
    # The tree's files are the test user's: that user stands in for root as the sockets' owner.
    monkeypatch.setattr(sockets, "OWNER_UID", os.getuid())
    return Tree(tmp_path / "node").healthy()


def run(tree: Tree, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    # The link kinds are known from /proc/modules in a tree; the prober must not run.
    code = doctor.main(["--root", str(tree.root), *args], out=out)
    return code, out.getvalue()


@pytest.mark.parametrize("statuses, strict, code", [
    ([], False, 0),
    ([OK, UNCHECKED], False, 0),
    ([OK, WARNING], False, 0),
    ([OK, WARNING], True, 3),
    ([WARNING, BLOCKER], False, 1),
    ([WARNING, BLOCKER], True, 1),
    ([UNCHECKED], True, 0),
])
def test_exit_code_policy(statuses, strict, code):
    findings = [Finding(f"x.{i}", status, "s") for i, status in enumerate(statuses)]
    assert report.exit_code(findings, strict) == code


def test_healthy_tree_exits_0_with_every_check_ok(tree):
    code, out = run(tree, "-o", "json")
    data = json.loads(out)
    assert code == 0 and data["exit_code"] == 0
    not_ok = [f for f in data["findings"] if f["status"] != OK]
    assert not_ok == []


def test_json_shape(tree):
    tree.remove("/opt/cni/bin/portmap")               # one blocker
    tree.write("/proc/sys/net/ipv4/ip_forward", "0")  # one warning
    code, out = run(tree, "-o", "json")
    data = json.loads(out)
    assert set(data) == {"version", "root", "exit_code", "counts", "findings"}
    assert data["version"] == 1 and data["root"] == str(tree.root)
    assert code == data["exit_code"] == 1
    assert set(data["counts"]) == {OK, WARNING, BLOCKER, UNCHECKED}
    assert sum(data["counts"].values()) == len(data["findings"])
    assert data["counts"][BLOCKER] == 1 and data["counts"][WARNING] == 1
    for finding in data["findings"]:
        assert set(finding) == {"check", "status", "summary", "fix"}
        assert finding["status"] in report.STATUSES and finding["summary"]
        family = finding["check"].split(".")[0]
        assert family in {"kernel", "cgroup", "runtime", "cni", "socket", "sysctl", "disk"}
        assert bool(finding["fix"]) == (finding["status"] in (WARNING, BLOCKER))
    ids = [f["check"] for f in data["findings"]]
    assert len(ids) == len(set(ids))
    # Every family of the brief is there.
    for check in ("kernel.bpffs", "kernel.clsact", "kernel.btf", "kernel.veth", "kernel.bridge", "kernel.vxlan",
                  "cgroup.version", "cgroup.driver", "runtime.runc", "runtime.conmon", "cni.config-order",
                  "cni.plugins", "socket.cri", "socket.cnid", "socket.netpol", "sysctl.ipv4-forwarding",
                  "sysctl.ipv6-forwarding", "sysctl.rp-filter", "disk.state", "disk.cni", "disk.run"):
        assert check in ids


def test_json_and_text_say_the_same(tree):
    tree.write("/var/lib/kubelet/config.yaml", "cgroupDriver: cgroupfs\n")
    _, text = run(tree)
    _, js = run(tree, "-o", "json")
    data = json.loads(js)
    findings, counts = data["findings"], data["counts"]
    lines = text.splitlines()
    assert len(lines) == len(findings) + sum(1 for f in findings if f["fix"]) + 1
    assert counts[BLOCKER] == 1
    assert lines[-1] == f"1 blocker, 0 warning, 0 unchecked, {counts[OK]} ok"
    # Problems come first, each with its fix on the next line.
    assert lines[0].split()[:2] == ["BLOCKER", "cgroup.driver"]
    assert lines[1].strip().startswith("fix: set cgroupDriver: systemd")


def test_warnings_fail_only_under_strict(tree):
    tree.write("/proc/sys/net/ipv4/ip_forward", "0")
    assert run(tree)[0] == 0
    assert run(tree, "--strict")[0] == 3
    assert json.loads(run(tree, "--strict", "-o", "json")[1])["exit_code"] == 3


def test_a_check_that_breaks_is_reported_not_fatal(tree, monkeypatch):
    def broken(node):
        raise RuntimeError("boom")
    monkeypatch.setattr(doctor, "FAMILIES", (("cgroup", broken), *doctor.FAMILIES[2:]))
    code, out = run(tree, "-o", "json")
    findings = json.loads(out)["findings"]
    failed = [f for f in findings if f["status"] == UNCHECKED]
    assert [f["summary"] for f in failed] == ["the check failed: RuntimeError: boom"]
    assert code == 0 and any(f["check"] == "runtime.runc" for f in findings)


def test_paths_are_overridable(tree):
    """Every input can be moved: conf and bin dirs, the configs; all under the root."""
    tree.write("/srv/net.d/10-podwire.conflist", tree.path("/etc/cni/net.d/10-podwire.conflist").read_text())
    tree.remove("/etc/cni/net.d")
    tree.mkdir("/srv/bin")
    for plugin in ("podwire", "podwire-ipam", "portmap", "loopback"):
        tree.path(f"/opt/cni/bin/{plugin}").rename(tree.path(f"/srv/bin/{plugin}"))
    tree.path("/var/lib/kubelet/config.yaml").rename(tree.path("/srv/kubelet.yaml"))
    code, _ = run(tree, "--cni-conf-dir", "/srv/net.d", "--cni-bin-dir", "/srv/bin",
                  "--kubelet-config", "/srv/kubelet.yaml", "--cri-config", "/srv/none.toml")
    assert code == 0
    assert run(tree)[0] == 1     # where the defaults look, nothing is left
