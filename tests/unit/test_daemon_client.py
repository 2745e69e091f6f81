"""The executables' start-up path: what it imports, and that it answers the same
through a daemon as in process (VERSION needs no root)."""
from __future__ import annotations

import subprocess
import sys

from cni.install import CODE_DIR, write_wrappers
from cnitest import Daemon, run_plugin


def test_start_up_imports_nothing_beyond_the_interpreters_builtins():
    probe = ("import sys; before = set(sys.modules); sys.path.insert(0, %r); "
             "import cni.daemon.client; print(' '.join(sorted(set(sys.modules) - before)))" % CODE_DIR)
    new = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert set(new) <= {"cni", "cni.daemon", "cni.daemon.client", "cni.daemon.wire", "_socket"}, new


def test_version_through_the_daemon_and_in_process_alike(tmp_path):
    bin_dir = str(tmp_path / "bin")
    write_wrappers(bin_dir, sys.executable)
    (tmp_path / "cnid").mkdir()
    daemon = Daemon(str(tmp_path / "cnid")).start()
    try:
        conf = {"cniVersion": "0.4.0"}
        via_daemon = run_plugin(bin_dir, "podwire", "VERSION", conf, extra_env={"PODWIRE_CNID_SOCKET": daemon.socket})
        in_process = run_plugin(bin_dir, "podwire", "VERSION", conf, extra_env={"PODWIRE_CNID_SOCKET": ""})
        assert via_daemon == in_process == (0, {"cniVersion": "0.4.0", "supportedVersions": [
            "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        assert daemon.health()["served"] == 1
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_wrappers_run_isolated_without_site_packages(tmp_path):
    write_wrappers(str(tmp_path), "/usr/bin/python3")
    head = (tmp_path / "podwire").read_text().splitlines()
    assert head[0] == "#!/usr/bin/python3 -IS"
    assert f"sys.path.insert(0, {CODE_DIR!r})" in head
