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
_MS_BIND, _MS_REC, _MS_SHARED = 4096, 16384, 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)


def netns_name(pod_id: str) -> str:
    return f"podwire-{pod_id[:16]}"


def pin(net_path: str, ipc_path: str, uts_path: str, hostname: str) -> None:
    """New network, IPC and/or UTS namespaces pinned at the given files ("" = not wanted): the
    network one with loopback up, the UTS one named ``hostname``.  One `unshare` child makes
    and pins all of them (what `ip netns add` + `ip -n NAME link set lo up` + `unshare --ipc
    --uts` did in four start-ups); on failure nothing stays pinned."""
    paths = {kind: path for kind, path in (("net", net_path), ("ipc", ipc_path), ("uts", uts_path)) if path}
    if not paths:
        return
    if net_path:
        _prepare_netns_dir()
    argv = ["unshare", *(f"--{kind}={path}" for kind, path in paths.items())]
    # Not hostname(1): Debian's refuses names the kernel takes (capitals are fine, but "_", spaces
    # and a leading "-" are not).  The proc file is sethostname(2) for the child's new UTS namespace.
    steps = (["ip link set lo up"] if net_path else []) + \
        (['printf %s "$1" > /proc/sys/kernel/hostname'] if uts_path and hostname else [])
    if steps == ["ip link set lo up"]:
        argv += ["ip", "link", "set", "lo", "up"]
    else:
        argv += (["sh", "-c", " && ".join(steps), "pin", hostname] if steps else ["true"])
    try:
        for path in paths.values():
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            open(path, "a").close()     # the bind-mount target must exist
        proc.run(argv, what="creating the pod's namespaces")
    except Exception:
        for path in paths.values():
            unpin(path)
        raise


_netns_dir_ready = False


def _prepare_netns_dir() -> None:
    """/run/netns as `ip netns add` leaves it: a mount point with shared propagation, so a pin
    made here shows in mount namespaces made later from this one (iproute2's netns_add)."""
    global _netns_dir_ready
    if _netns_dir_ready:
        return
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    target = os.fsencode(NETNS_DIR)
    if _libc.mount(b"none", target, None, _MS_SHARED | _MS_REC, None) != 0:
        if ctypes.get_errno() != errno.EINVAL:          # EINVAL: not a mount point yet
            raise errors.internal(f"making {NETNS_DIR} shared: {os.strerror(ctypes.get_errno())}")
        if _libc.mount(target, target, b"none", _MS_BIND | _MS_REC, None) != 0 or \
                _libc.mount(b"none", target, None, _MS_SHARED | _MS_REC, None) != 0:
            raise errors.internal(f"mounting {NETNS_DIR}: {os.strerror(ctypes.get_errno())}")
    _netns_dir_ready = True


def remove_netns(name: str) -> None:
    """What `ip netns del` does, without its start-up: lazy-unmount the pin and remove the file.
    Idempotent: a netns that is already gone (e.g. after a reboot) is success."""
    unpin(os.path.join(NETNS_DIR, name))


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.ismount(path)


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
