"""packaging/cni_plugin_links.sh, which make install runs: the reference plugins a distribution
keeps in /usr/lib/cni are linked into the runtimes' bin dir when missing there, each link made is
recorded, and unlink removes those links and nothing else.  Temporary directories only."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "cni_plugin_links.sh"


@pytest.fixture
def dirs(tmp_path):
    distro, bin_dir = tmp_path / "usr-lib-cni", tmp_path / "opt-cni-bin"
    distro.mkdir()
    for name in ("portmap", "loopback", "bridge"):
        (distro / name).write_text("#!/bin/sh\n")
        (distro / name).chmod(0o755)
    (distro / "README").write_text("not a plugin\n")        # not executable: never linked
    return distro, bin_dir, tmp_path / "lib-podwire" / "cni-plugin-links"


def run(verb: str, distro: Path, bin_dir: Path, record: Path) -> str:
    done = subprocess.run([str(SCRIPT), verb, str(bin_dir), str(record)], capture_output=True, text=True,
                          env={**os.environ, "FROM_DIR": str(distro)}, check=True)
    assert done.stderr == ""
    return done.stdout


def test_links_what_is_missing_and_says_so(dirs):
    distro, bin_dir, record = dirs
    bin_dir.mkdir()
    (bin_dir / "bridge").write_text("#!/bin/sh\n# the admin's own\n")
    out = run("link", distro, bin_dir, record)
    assert out == (f"install: linked loopback portmap from {distro} into {bin_dir} "
                   "(containerd and CRI-O look only there)\n")
    assert os.readlink(bin_dir / "portmap") == str(distro / "portmap")
    assert os.readlink(bin_dir / "loopback") == str(distro / "loopback")
    assert not (bin_dir / "bridge").is_symlink() and "admin" in (bin_dir / "bridge").read_text()
    assert not (bin_dir / "README").exists()
    assert sorted(record.read_text().splitlines()) == [f"{bin_dir}/loopback {distro}/loopback",
                                                       f"{bin_dir}/portmap {distro}/portmap"]


def test_again_links_nothing_and_keeps_the_record(dirs):
    distro, bin_dir, record = dirs
    run("link", distro, bin_dir, record)
    before = record.read_text()
    assert run("link", distro, bin_dir, record) == ""
    assert record.read_text() == before


def test_a_dangling_link_is_left_alone(dirs):
    distro, bin_dir, record = dirs
    bin_dir.mkdir()
    (bin_dir / "portmap").symlink_to("/nonexistent/portmap")
    run("link", distro, bin_dir, record)
    assert os.readlink(bin_dir / "portmap") == "/nonexistent/portmap"


def test_unlink_removes_only_its_own_unchanged_links(dirs):
    distro, bin_dir, record = dirs
    bin_dir.mkdir()
    (bin_dir / "bridge").write_text("#!/bin/sh\n")
    run("link", distro, bin_dir, record)
    # Since install, the admin repointed loopback at a plugin of their own.
    (bin_dir / "loopback").unlink()
    (bin_dir / "loopback").symlink_to("/usr/local/libexec/cni/loopback")
    out = run("unlink", distro, bin_dir, record)
    assert out == f"uninstall: removed the links to portmap from {bin_dir}\n"
    assert sorted(os.listdir(bin_dir)) == ["bridge", "loopback"]
    assert os.readlink(bin_dir / "loopback") == "/usr/local/libexec/cni/loopback"
    assert not record.exists()
    assert run("unlink", distro, bin_dir, record) == ""     # nothing recorded: nothing to do


def test_no_distro_dir_is_nothing_to_do(dirs, tmp_path):
    _, bin_dir, record = dirs
    assert run("link", tmp_path / "absent", bin_dir, record) == ""
    assert not record.exists()


def test_usage():
    done = subprocess.run([str(SCRIPT), "relink", "a", "b"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
