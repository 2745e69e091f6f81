"""What node the VM suite really ran on: printed for `make vm-test` to report, and asserted, so a
run that silently fell back to the wrong kind of node fails instead of passing vacuously."""
from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("PODWIRE_IN_VM") != "1",
                                reason="runs inside the VM of `make vm-test` only")


def _cmdline() -> str:
    with open("/proc/cmdline") as f:
        return f.read()


def test_pid1_is_systemd():
    with open("/proc/1/comm") as f:
        assert f.read().strip() == "systemd"


def test_cgroup_version_is_the_one_asked_for():
    from cri.oci import cgroups
    asked_v1 = re.search(r"systemd\.unified_cgroup_hierarchy=0", _cmdline()) is not None
    assert cgroups.is_v2() is (not asked_v1)
    print(f"PODWIRE_VM_CGROUP_VERSION={'v2' if cgroups.is_v2() else 'v1'}")


def test_report_the_cgroup_driver_the_shim_defaults_to(capsys):
    from cri import config
    default = getattr(config, "default_cgroup_driver", None)
    driver = default() if default else "cgroupfs"
    with capsys.disabled():
        print(f"\nPODWIRE_VM_CGROUP_DRIVER={driver}")
    assert driver in ("systemd", "cgroupfs")
