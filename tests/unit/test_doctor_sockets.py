"""podwire-doctor's socket checks over a tree with real unix sockets bound in it: modes, owners
and groups against the README's security model.  The test user stands in for root as owner."""
from __future__ import annotations

import grp
import os
import socket

import pytest

from cri.doctor import sockets
from cri.doctor.report import BLOCKER, OK, UNCHECKED, WARNING
from doctortree import Tree, by_check


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Tree:
    monkeypatch.setattr(sockets, "OWNER_UID", os.getuid())
    tree = Tree(tmp_path).healthy()
    # The shim's group is the test user's group (as socket_group names a group of root's).
    group = grp.getgrgid(os.getgid()).gr_name
    tree.write("/etc/group", f"{group}:x:{os.getgid()}:\n")
    tree.write("/etc/podwire/cri.toml", f'socket_group = "{group}"\n')
    return tree


@pytest.fixture
def bind(tree):
    """Bind a unix socket at a node path in the tree, with a mode; all closed afterwards."""
    made = []

    def make(node_path: str, mode: int) -> str:
        path = str(tree.path(node_path))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        made.append(sock)
        os.chmod(path, mode)
        return path
    yield make
    for sock in made:
        sock.close()


def findings(tree: Tree) -> dict:
    return by_check(sockets.check(tree.node()))


def test_no_daemon_running(tree):
    found = findings(tree)
    assert set(found) == {"socket.run-dir", "socket.cri", "socket.cnid", "socket.netpol", "socket.netpol-cni"}
    assert {f.status for f in found.values()} == {OK}
    assert "not running" in found["socket.cri"].summary


def test_every_socket_as_the_daemons_make_it(tree, bind):
    bind("/run/podwire/cri.sock", 0o660)
    for name in ("cni.sock", "netpol.sock", "netpol-cni.sock"):
        bind(f"/run/podwire/{name}", 0o600)
    found = findings(tree)
    assert {f.status for f in found.values()} == {OK}
    assert found["socket.cri"].summary.endswith("mode 0660")


@pytest.mark.parametrize("name, check, mode", [("cri.sock", "socket.cri", 0o666), ("cni.sock", "socket.cnid", 0o660),
                                               ("netpol.sock", "socket.netpol", 0o602),
                                               ("netpol-cni.sock", "socket.netpol-cni", 0o622)])
def test_writable_by_others_is_a_blocker(tree, bind, name, check, mode):
    bind(f"/run/podwire/{name}", mode)
    found = findings(tree)[check]
    assert found.status == BLOCKER and "others may connect" in found.summary
    assert f"mode {mode:04o}" in found.summary


def test_narrower_or_read_only_extra_is_a_warning(tree, bind):
    bind("/run/podwire/cri.sock", 0o600)      # the group cannot connect: not what socket_group says
    bind("/run/podwire/cni.sock", 0o644)      # read bits do not let anyone connect
    found = findings(tree)
    assert found["socket.cri"].status == WARNING and "expected 0660" in found["socket.cri"].summary
    assert found["socket.cnid"].status == WARNING


def test_cri_socket_in_another_group(tree, bind):
    tree.write("/etc/group", "root:x:0:\nkubeadmins:x:4242:\n")
    tree.write("/etc/podwire/cri.toml", 'socket_group = "kubeadmins"\n')
    bind("/run/podwire/cri.sock", 0o660)      # the test user's group, not kubeadmins
    found = findings(tree)["socket.cri"]
    assert found.status == BLOCKER and "not group kubeadmins" in found.summary


def test_not_owned_by_root(tree, bind, monkeypatch):
    bind("/run/podwire/cni.sock", 0o600)
    monkeypatch.setattr(sockets, "OWNER_UID", os.getuid() + 1)
    found = findings(tree)
    assert found["socket.cnid"].status == BLOCKER and "not root's" in found["socket.cnid"].summary
    assert found["socket.run-dir"].status == BLOCKER


def test_not_a_socket(tree):
    tree.write("/run/podwire/netpol.sock", "")
    assert findings(tree)["socket.netpol"].status == WARNING


def test_run_dir_writable_by_others(tree):
    tree.path("/run/podwire").chmod(0o777)
    found = findings(tree)["socket.run-dir"]
    assert found.status == BLOCKER and "may replace the sockets" in found.summary


def test_socket_paths_from_the_configs(tree, bind):
    tree.write("/etc/podwire/cri.toml", 'listen = "unix:///srv/cri.sock"\nnetpol_socket = ""\n'
               'socket_group = "root"\n')
    tree.write("/etc/podwire/cnid.toml", 'socket = "/srv/cnid.sock"\n')
    conflist = tree.path("/etc/cni/net.d/10-podwire.conflist")
    conflist.write_text(conflist.read_text().replace('"mode": "bridge",',
                                                     '"mode": "bridge", "netpolSocket": "/srv/np.sock",'))
    bind("/srv/cri.sock", 0o666)
    bind("/srv/cnid.sock", 0o666)
    bind("/srv/np.sock", 0o666)
    found = findings(tree)
    assert "socket.netpol" not in found            # netpol_socket = "": the shim uses no agent
    assert found["socket.cri"].status == BLOCKER and "/srv/cri.sock" in found["socket.cri"].summary
    assert found["socket.cnid"].status == BLOCKER and "/srv/cnid.sock" in found["socket.cnid"].summary
    assert found["socket.netpol-cni"].status == BLOCKER and "/srv/np.sock" in found["socket.netpol-cni"].summary


def test_a_directory_the_user_may_not_enter(tree, bind, monkeypatch):
    """Not root on a node whose socket directory is closed: say so, per socket, and go on."""
    bind("/run/podwire/cri.sock", 0o660)
    real_lstat = os.lstat

    def lstat(path):
        if str(path).endswith("cni.sock"):
            raise PermissionError(13, "Permission denied", path)
        return real_lstat(path)
    monkeypatch.setattr(sockets.os, "lstat", lstat)
    found = findings(tree)
    assert found["socket.cnid"].status == UNCHECKED and "permission denied" in found["socket.cnid"].summary
    assert found["socket.cri"].status == OK
