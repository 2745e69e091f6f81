"""Validation rules relaxed to what containerd and CRI-O accept, and the ones tightened for a
reason (each case names its peer's behaviour)."""
from __future__ import annotations

import signal

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.images import digest
from cri.oci import devices, mounts, signals
from cri.sandbox import sysctl


@pytest.mark.parametrize("text, number", [
    ("SIGTERM", 15), ("term", 15), ("9", 9), ("SIGRTMIN", signal.SIGRTMIN),
    ("SIGRTMIN+3", signal.SIGRTMIN + 3),           # systemd images' STOPSIGNAL
    ("RTMAX-2", signal.SIGRTMAX - 2), ("SIGRTMAX", signal.SIGRTMAX),
])
def test_signals_the_shared_parser_reads(text, number):
    assert signals.parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGFOO", "0", "65", "SIGRTMAX+1", "SIGRTMIN-1", "RTMIN+x"])
def test_signals_nobody_reads(text):
    with pytest.raises(CriError) as err:
        signals.parse_signal(text)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_an_images_bad_stopsignal_falls_back_to_sigterm(caplog):
    """CRI-O's choice: the image author's typo does not stop the container from being created."""
    cfg = api.ContainerConfig()
    assert signals.stop_signal(cfg, {"config": {"StopSignal": "SIGBOGUS"}}) == signal.SIGTERM
    assert "SIGBOGUS" in caplog.text
    assert signals.stop_signal(cfg, {"config": {"StopSignal": "SIGRTMIN+3"}}) == signal.SIGRTMIN + 3


def _mount(**kw) -> api.Mount:
    return api.Mount(**kw)


def test_unknown_propagation_mounts_rprivate(tmp_path, caplog):
    out, _ = mounts.cri_mounts([_mount(container_path="/d", host_path=str(tmp_path), propagation=7)])
    assert "rprivate" in out[0]["options"] and "unknown propagation" in caplog.text


@pytest.mark.parametrize("given, dest", [("data", "/data"), ("a/../b", "/b"), ("../../x", "/x")])
def test_relative_container_path_lands_under_the_root(tmp_path, given, dest):
    out, _ = mounts.cri_mounts([_mount(container_path=given, host_path=str(tmp_path))])
    assert out[0]["destination"] == dest


def test_empty_container_path_is_still_refused(tmp_path):
    with pytest.raises(CriError) as err:
        mounts.cri_mounts([_mount(container_path="", host_path=str(tmp_path))])
    assert "empty container path" in err.value.message


def test_a_device_directory_without_nodes_adds_nothing(tmp_path):
    nodes, rules = devices.devices([api.Device(host_path=str(tmp_path), container_path="/dev/x",
                                               permissions="rw")], False)
    assert nodes == [] and len(rules) == 1 and rules[0]["allow"] is False


def test_a_regular_file_as_a_device_is_still_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(CriError):
        devices.devices([api.Device(host_path=str(tmp_path / "f"), container_path="/dev/x")], False)


def test_sha384_digests_as_go_digest_accepts():
    assert digest.is_digest("sha384:" + "a" * 96)
    assert not digest.is_digest("sha384:" + "a" * 64) and not digest.is_digest("md5:" + "a" * 32)


def test_kernel_hostname_sysctl_points_at_the_hostname_field():
    """runc refuses it beside the spec's hostname: every container would fail to create."""
    with pytest.raises(CriError) as err:
        sysctl.split({"kernel.hostname": "x"}, False, False, False)
    assert "hostname instead" in err.value.message
    assert sysctl.split({"kernel.domainname": "d", "net.core.somaxconn": "1"}, False, False, False) == (
        {"net.core.somaxconn": "1"}, {"kernel.domainname": "d"})
