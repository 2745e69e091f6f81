"""The daemons' one stale-socket probe: a dead daemon's socket file goes, a live one stays."""
from __future__ import annotations

import socket

import pytest

from cni import unixsock


def test_missing_is_fine(tmp_path):
    unixsock.clear_stale(str(tmp_path / "none.sock"))


def test_a_socket_nobody_answers_on_is_removed(tmp_path):
    path = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()                                   # bound, never listened: what a crash leaves
    unixsock.clear_stale(path)
    assert not (tmp_path / "dead.sock").exists()


def test_a_live_socket_is_someone_elses(tmp_path):
    path = str(tmp_path / "live.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        s.listen(1)
        with pytest.raises(unixsock.SocketInUse):
            unixsock.clear_stale(path)
        assert (tmp_path / "live.sock").exists()
