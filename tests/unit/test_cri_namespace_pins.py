"""cri.sandbox.namespaces.pin: one `unshare` makes and pins the pod's network, IPC and UTS
namespaces (loopback up, hostname set); a failure unpins what it made.  No root: the helper
process is replaced."""
from __future__ import annotations

import pytest

from cri import errors
from cri.sandbox import namespaces


@pytest.fixture
def runs(monkeypatch):
    argvs: list[list[str]] = []
    monkeypatch.setattr(namespaces, "_prepare_netns_dir", lambda: None)
    monkeypatch.setattr(namespaces.proc, "run", lambda argv, **kw: argvs.append(argv))
    return argvs


def test_all_three_in_one_start_up(tmp_path, runs):
    net, ipc, uts = (str(tmp_path / n) for n in ("netns/pod", "ns/ipc", "ns/uts"))
    namespaces.pin(net, ipc, uts, "web-0")
    assert runs == [["unshare", f"--net={net}", f"--ipc={ipc}", f"--uts={uts}", "sh", "-c",
                     'ip link set lo up && printf %s "$1" > /proc/sys/kernel/hostname', "pin", "web-0"]]
    assert all((tmp_path / n).exists() for n in ("netns/pod", "ns/ipc", "ns/uts"))   # mount targets


def test_network_only_runs_ip_directly(tmp_path, runs):
    net = str(tmp_path / "pod")
    namespaces.pin(net, "", "", "ignored")
    assert runs == [["unshare", f"--net={net}", "ip", "link", "set", "lo", "up"]]


def test_host_network_pod_pins_ipc_only(tmp_path, runs):
    ipc = str(tmp_path / "ipc")
    namespaces.pin("", ipc, "", "node")
    assert runs == [["unshare", f"--ipc={ipc}", "true"]]
    namespaces.pin("", "", "", "node")
    assert len(runs) == 1          # nothing wanted: nothing run


def test_failure_unpins_everything(tmp_path, monkeypatch):
    monkeypatch.setattr(namespaces, "_prepare_netns_dir", lambda: None)

    def fail(argv, **kw):
        raise errors.internal("unshare: boom")
    monkeypatch.setattr(namespaces.proc, "run", fail)
    unpinned: list[str] = []
    monkeypatch.setattr(namespaces, "unpin", unpinned.append)
    net, uts = str(tmp_path / "net"), str(tmp_path / "uts")
    with pytest.raises(errors.CriError):
        namespaces.pin(net, "", uts, "x")
    assert unpinned == [net, uts]


def test_remove_netns_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setattr(namespaces, "NETNS_DIR", str(tmp_path))
    (tmp_path / "podwire-x").touch()          # a pin whose mount is already gone
    namespaces.remove_netns("podwire-x")
    assert not (tmp_path / "podwire-x").exists()
    namespaces.remove_netns("podwire-x")
