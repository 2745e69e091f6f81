"""cni.sdnotify: the datagram systemd's Type=notify waits for, to a path or an abstract socket."""
from __future__ import annotations

import os
import socket

import pytest

from cni import sdnotify


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(5)
    yield sock
    sock.close()


def test_ready_reaches_a_path_socket(listener, tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    listener.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    sdnotify.notify("READY=1")
    assert listener.recv(64) == b"READY=1"


def test_at_means_the_abstract_namespace(listener, monkeypatch):
    name = f"podwire-test-notify-{os.getpid()}"
    listener.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    sdnotify.notify("STOPPING=1")
    assert listener.recv(64) == b"STOPPING=1"


def test_nothing_without_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sdnotify.notify("READY=1")   # no socket named: returns, raises nothing


def test_claim_hides_the_socket_from_children_and_keeps_it(listener, tmp_path, monkeypatch):
    """What the shim does at start: runc must never inherit $NOTIFY_SOCKET (given one, `runc
    start` waits for the container to notify), while READY=1 still reaches systemd."""
    import subprocess
    import sys
    path = str(tmp_path / "notify")
    listener.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(sdnotify, "_claimed", None)
    sdnotify.claim()
    assert "NOTIFY_SOCKET" not in os.environ
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('NOTIFY_SOCKET', ''))"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == ""
    sdnotify.notify("READY=1")
    assert listener.recv(64) == b"READY=1"
