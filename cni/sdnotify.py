"""sd_notify(3) for the daemons' Type=notify units, without a dependency: the state is one
datagram to the socket systemd names in $NOTIFY_SOCKET ("@..." is the abstract namespace).
Nothing happens when not started by systemd.  Lives in cni/ (stdlib only, the lowest layer),
so that podwire-cnid, podwire-netpol and podwire-cri share it."""
from __future__ import annotations

import os
import socket

_claimed: str | None = None


def claim() -> None:
    """Take $NOTIFY_SOCKET out of the environment, keeping it for notify(): what the daemon
    starts must not inherit it.  runc, given one, proxies it into the container and `runc start`
    then waits for the container itself to report READY=1 (a busybox never does): the shim's
    starts hung under its Type=notify unit.  systemd's own sd_notify(unset_environment=1)."""
    global _claimed
    target = os.environ.pop("NOTIFY_SOCKET", None)
    if target:
        _claimed = target


def notify(state: str) -> None:
    """READY=1 once serving, STOPPING=1 when shutting down."""
    target = _claimed or os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return
    address = "\0" + target[1:] if target.startswith("@") else target
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), address)
