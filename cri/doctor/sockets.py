"""Owners and modes of podwire's sockets, against the README's security model.

Connecting to a unix socket needs write permission on it, so a write bit beyond the expected
mode (or a group-writable socket in the wrong group) hands what the socket grants to others:
a blocker.  A socket that is not there is fine: its daemon is not running."""
from __future__ import annotations

import dataclasses
import grp
import os
import stat
from typing import Optional

from .node import Node
from .report import Finding, blocker, ok, unchecked, warning

RUN_DIR_MODE = 0o755
OWNER_UID = 0       # the daemons run as root and make their sockets root's


@dataclasses.dataclass(frozen=True)
class Expected:
    check: str
    path: str           # node path
    daemon: str
    mode: int
    grants: str         # what connecting gives (README "Security model")
    group: str = "root"


def expected(node: Node) -> list[Expected]:
    cfg = node.cri_or_default
    sockets = [
        Expected("socket.cri", cfg.socket_path, "podwire-cri", cfg.socket_mode,
                 "the whole CRI, i.e. root on the node", cfg.socket_group),
        Expected("socket.cnid", node.cnid_socket, "podwire-cnid", 0o600, "CNI verbs as root"),
        Expected("socket.netpol-cni", node.netpol_cni_socket, "podwire-netpol", 0o600,
                 "registering and unregistering pods"),
    ]
    if cfg.netpol_socket:
        sockets.insert(2, Expected("socket.netpol", cfg.netpol_socket, "podwire-netpol", 0o600,
                                   "reading and changing network policies"))
    return sockets


def check(node: Node) -> list[Finding]:
    return [_run_dir(node), *(_socket(node, want) for want in expected(node))]


def _run_dir(node: Node) -> Finding:
    run_dir = node.cri_or_default.run_dir
    try:
        st = os.lstat(node.path(run_dir))
    except FileNotFoundError:
        return ok("socket.run-dir", f"{run_dir} not there yet (the daemons make it, mode {RUN_DIR_MODE:04o})")
    except PermissionError:
        return unchecked("socket.run-dir", f"cannot look at {run_dir}: permission denied (run as root)")
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        return blocker("socket.run-dir", f"{run_dir} is not a directory", f"remove it; the daemons make {run_dir}")
    if st.st_uid != OWNER_UID or mode & 0o022:
        return blocker("socket.run-dir", f"{run_dir} is owned by uid {st.st_uid}, mode {mode:04o}: whoever may "
                       "write there may replace the sockets",
                       f"chown root:root {run_dir}; chmod {RUN_DIR_MODE:04o} {run_dir}")
    return ok("socket.run-dir", f"{run_dir} root's, mode {mode:04o}")


def _gid(node: Node, group: str) -> Optional[int]:
    """The group's id in the node's /etc/group (or the running node's NSS)."""
    for line in (node.read("/etc/group") or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == group and fields[2].isdigit():
            return int(fields[2])
    if node.is_live:
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            pass
    return 0 if group == "root" else None


def _socket(node: Node, want: Expected) -> Finding:
    try:
        st = os.lstat(node.path(want.path))
    except FileNotFoundError:
        return ok(want.check, f"{want.path} not there ({want.daemon} is not running); checked when it is")
    except PermissionError:
        return unchecked(want.check, f"cannot look at {want.path}: permission denied (run as root)")
    mode = stat.S_IMODE(st.st_mode)
    fix = f"restart {want.daemon}: it sets mode {want.mode:04o} owner root" + \
        (f" group {want.group}" if want.group != "root" else "")
    if not stat.S_ISSOCK(st.st_mode):
        return warning(want.check, f"{want.path} is not a socket", f"remove it, then {fix}")
    shown = f"{want.path} uid {st.st_uid} gid {st.st_gid} mode {mode:04o}"
    if st.st_uid != OWNER_UID:
        return blocker(want.check, f"{shown}: not root's; its owner may connect ({want.grants})", fix)
    if mode & ~want.mode & 0o022:
        return blocker(want.check, f"{shown}: wider than {want.mode:04o}, others may connect ({want.grants})", fix)
    gid = _gid(node, want.group)
    if mode & 0o020 and st.st_gid != gid:
        return blocker(want.check, f"{shown}: group-writable, and not group {want.group} (socket_group): "
                       f"its members may connect ({want.grants})", fix)
    if mode != want.mode:
        return warning(want.check, f"{shown}: expected {want.mode:04o}", fix)
    return ok(want.check, shown)
