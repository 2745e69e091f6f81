"""sd_notify(3) for the daemons' Type=notify units, without a dependency: the state is one
datagram to the socket systemd names in $NOTIFY_SOCKET ("@..." is the abstract namespace).
Nothing happens when not started by systemd.  Lives in cni/ (stdlib only, the lowest layer),
so that podwire-cnid, podwire-netpol and podwire-cri share it."""
from __future__ import annotations

import os
import socket


def notify(state: str) -> None:
    """READY=1 once serving, STOPPING=1 when shutting down."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return
    address = "\0" + target[1:] if target.startswith("@") else target
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), address)
