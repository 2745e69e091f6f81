"""The container log file is made without following a symlink below the pod's log directory."""
from __future__ import annotations

import os

import grpc
import pytest

from cri.errors import CriError
from cri.monitor import logfile


def test_made_with_its_directories(tmp_path):
    path, created = logfile.prepare(str(tmp_path / "pod"), "app/0.log")
    assert path == str(tmp_path / "pod" / "app" / "0.log") and created and os.path.isfile(path)
    assert logfile.prepare(str(tmp_path / "pod"), "app/0.log") == (path, False)   # restart: appends


@pytest.mark.parametrize("plant", ["dir-link", "file-link", "fifo", "directory"])
def test_refuses_what_would_lead_conmon_elsewhere(tmp_path, plant):
    pod, outside = tmp_path / "pod", tmp_path / "etc"
    pod.mkdir()
    outside.mkdir()
    if plant == "dir-link":
        (pod / "app").symlink_to(outside)
    else:
        (pod / "app").mkdir()
        target = pod / "app" / "0.log"
        if plant == "file-link":
            target.symlink_to(outside / "passwd")
        elif plant == "fifo":
            os.mkfifo(target)
        else:
            target.mkdir()
    with pytest.raises(CriError) as err:
        logfile.prepare(str(pod), "app/0.log")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "log_path" in err.value.message
    assert list(outside.iterdir()) == []


def test_the_log_directory_itself_may_be_reached_through_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "logs").symlink_to(real)
    path, _ = logfile.prepare(str(tmp_path / "logs"), "c/0.log")
    assert os.path.isfile(real / "c" / "0.log") and path.endswith("c/0.log")
