"""podwire-doctor's free-space checks with a fake statvfs: floors (blockers), the kubelet's
eviction thresholds (warnings), inodes, and which directory is measured."""
from __future__ import annotations

import pytest

from cri.doctor import diskspace
from cri.doctor.report import BLOCKER, OK, UNCHECKED, WARNING
from doctortree import GiB, Tree, by_check, statvfs

MiB = 1 << 20


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path).healthy()


def findings(tree: Tree, **fs) -> dict:
    return by_check(diskspace.check(tree.node(statvfs=lambda path: statvfs(**fs))))


def test_healthy(tree):
    found = findings(tree)
    assert set(found) == {"disk.state", "disk.cni", "disk.run"}
    assert {f.status for f in found.values()} == {OK}
    assert found["disk.state"].summary.endswith("500.0 GiB free of 1000.0 GiB")


@pytest.mark.parametrize("free, total, state, cni, run", [
    (100 * GiB, 1000 * GiB, WARNING, OK, OK),          # 10%: the kubelet's imagefs threshold is 15%
    (50 * GiB, 1000 * GiB, WARNING, WARNING, WARNING),
    (900 * MiB, 4 * GiB, BLOCKER, OK, OK),             # a pull needs room: 1 GiB floor
    (32 * MiB, 128 * MiB, BLOCKER, BLOCKER, OK),
    (8 * MiB, 64 * MiB, BLOCKER, BLOCKER, BLOCKER),
])
def test_thresholds(tree, free, total, state, cni, run):
    found = findings(tree, free=free, total=total)
    assert (found["disk.state"].status, found["disk.cni"].status, found["disk.run"].status) == (state, cni, run)


def test_inodes(tree):
    assert findings(tree, files=1_000_000, favail=500)["disk.cni"].status == BLOCKER
    assert findings(tree, files=1_000_000, favail=40_000)["disk.cni"].status == WARNING
    assert findings(tree, files=0, favail=0)["disk.cni"].status == OK     # btrfs: no inode count


def test_measures_the_nearest_existing_directory(tree):
    seen = []
    tree.mkdir("/var/lib/podwire")
    node = tree.node(statvfs=lambda path: seen.append(path) or statvfs())
    diskspace.check(node)
    assert seen == [str(tree.path("/var/lib/podwire")), str(tree.path("/var/lib")), str(tree.path("/run/podwire"))]


def test_statvfs_failure(tree):
    def refuse(path):
        raise PermissionError(13, "Permission denied")
    found = by_check(diskspace.check(tree.node(statvfs=refuse)))
    assert found["disk.run"].status == UNCHECKED and "Permission denied" in found["disk.run"].summary
