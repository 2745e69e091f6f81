"""podwire-doctor's runc and conmon checks: found as cri.toml names them under the root, and
their versions against the floors (blocker) and the tested versions (warning)."""
from __future__ import annotations

import pytest

from cri.doctor import runtimes
from cri.doctor.report import BLOCKER, OK, WARNING
from doctortree import Tree, by_check


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path).healthy()


def findings(tree: Tree) -> dict:
    return by_check(runtimes.check(tree.node()))


def test_healthy(tree):
    found = findings(tree)
    assert found["runtime.runc"].status == OK and found["runtime.runc"].summary.startswith("runc 1.1.5 (")
    assert found["runtime.conmon"].status == OK and found["runtime.conmon"].summary.startswith("conmon 2.1.6 (")


@pytest.mark.parametrize("text, version", [
    ("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev", (1, 1, 5, 1)),
    ("runc version 1.0.0-rc93", (1, 0, 0, 0)),
    ("runc version 1.2.0-rc.1", (1, 2, 0, 0)),
    ("conmon version 2.1.6\ncommit: unknown", (2, 1, 6, 1)),
    ("conmon version v2.0.2", (2, 0, 2, 1)),
    ("usage: runc", None),
])
def test_parse_version(text, version):
    assert runtimes.parse_version(text) == version


def test_release_candidate_is_below_its_release():
    assert runtimes.parse_version("runc version 1.0.0-rc93") < runtimes.FLOORS["runc"][0]


@pytest.mark.parametrize("tool, version, status", [
    ("runc", "0.1.1", BLOCKER), ("runc", "1.0.0-rc93", BLOCKER), ("runc", "1.0.3", WARNING),
    ("runc", "1.1.0", OK), ("runc", "1.3.0", OK),
    ("conmon", "1.0.0", BLOCKER), ("conmon", "2.0.30", WARNING), ("conmon", "2.1.0", OK),
])
def test_version_floors(tree, tool, version, status):
    path = "/usr/sbin/runc" if tool == "runc" else "/usr/bin/conmon"
    tree.executable(path, f"{tool} version {version}")
    assert findings(tree)[f"runtime.{tool}"].status == status


def test_missing(tree):
    tree.remove("/usr/bin/conmon")
    found = findings(tree)["runtime.conmon"]
    assert found.status == BLOCKER and "apt-get install conmon" in found.fix


def test_not_executable_is_missing(tree):
    tree.path("/usr/sbin/runc").chmod(0o644)
    assert findings(tree)["runtime.runc"].status == BLOCKER


def test_path_from_cri_toml(tree):
    tree.remove("/usr/sbin/runc")
    tree.executable("/opt/runc/bin/runc-1.2", "runc version 1.2.4")
    tree.write("/etc/podwire/cri.toml", 'runc = "/opt/runc/bin/runc-1.2"\n')
    found = findings(tree)["runtime.runc"]
    assert found.status == OK and found.summary.startswith("runc 1.2.4")


def test_no_version_in_the_output(tree):
    tree.executable("/usr/sbin/runc", "something else entirely")
    found = findings(tree)["runtime.runc"]
    assert found.status == BLOCKER and "says no version" in found.summary
