"""Pinned pod namespaces: network (in /run/netns, so `ip netns` shows it), IPC and UTS.

A namespace lives as long as a process is in it or a bind mount of its nsfs
file exists.  Pinning by bind mount (what `ip netns add` and `unshare --ipc=FILE`
do) is what lets a pod exist with no pause process: containers join the pinned
files through the OCI spec, and restarting the shim touches none of it.
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import subprocess
import time
from typing import Sequence

from .. import errors
from . import proc

log = logging.getLogger(__name__)

NETNS_DIR = "/run/netns"
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def netns_name(pod_id: str) -> str:
    return f"podwire-{pod_id[:16]}"


def create_netns(name: str) -> str:
    """A new network namespace pinned at /run/netns/<name>, loopback up."""
    proc.run(["ip", "netns", "add", name], what=f"creating netns {name}")
    try:
        proc.run(["ip", "-n", name, "link", "set", "lo", "up"], what=f"loopback up in {name}")
    except Exception:
        remove_netns(name)
        raise
    return os.path.join(NETNS_DIR, name)


def remove_netns(name: str) -> None:
    """Idempotent: a netns that is already gone (e.g. after a reboot) is success."""
    path = os.path.join(NETNS_DIR, name)
    if not os.path.lexists(path):
        return
    res = proc.run(["ip", "netns", "del", name], check=False)
    if res.returncode != 0 and os.path.lexists(path):
        # `ip netns del` fails on a dangling file (mount already gone); finish the job.
        unpin(path)


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.ismount(path)


def pin_ipc_uts(ipc_path: str, uts_path: str, hostname: str) -> None:
    """New IPC and/or UTS namespaces pinned at the given files ("" = not wanted); the UTS
    one gets ``hostname``.  One `unshare` child does all of it."""
    paths = {kind: path for kind, path in (("ipc", ipc_path), ("uts", uts_path)) if path}
    if not paths:
        return
    argv = ["unshare"]
    for kind, path in paths.items():
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        open(path, "a").close()     # the bind-mount target must exist
        argv.append(f"--{kind}={path}")
    # Not hostname(1): Debian's refuses names the kernel takes (capitals are fine, but "_", spaces
    # and a leading "-" are not).  The proc file is sethostname(2) for the child's new UTS namespace.
    argv += (["sh", "-c", 'printf %s "$1" > /proc/sys/kernel/hostname', "sethostname", hostname]
             if uts_path and hostname else ["true"])
    try:
        proc.run(argv, what="pinning pod IPC/UTS namespaces")
    except Exception:
        for path in paths.values():
            unpin(path)
        raise


def unpin(path: str) -> None:
    """Lazy-unmount a pinned namespace file and remove it; missing is success."""
    if not path:
        return
    if _libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):   # EINVAL: not a mount point (any more)
            log.warning("unmounting %s: %s", path, os.strerror(err))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def start_pid_holder(directory: str, prefix: Sequence[str] = ()) -> tuple[int, str]:
    """A pod-wide PID namespace (shareProcessNamespace): unlike net/IPC/UTS it
    cannot be pinned by a bind mount alone (no process can enter a PID namespace
    whose init has exited), so a tiny init holds it: the one case with a pause
    process, as in CRI-O with drop_infra_ctr.  It is started in its own session
    so it outlives the shim; ``sh`` waits in a loop and so reaps what it adopts.  ``prefix``:
    a command it is started under that execs it with the same pid (the systemd driver's
    ``systemd-run --scope``)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    holder = subprocess.Popen(
        [*prefix, "unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
         "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)
    # The namespace's init is unshare's child; wait until it exists.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        children = _children(holder.pid)
        if children:
            return holder.pid, f"/proc/{children[0]}/ns/pid"
        time.sleep(0.005)
    holder.kill()
    raise errors.internal("pid namespace holder did not start")


def stop_pid_holder(pid: int) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGKILL)     # --kill-child takes the namespace's init with it
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []
