"""Host sysctls a gateway needs (written in the host namespace only)."""
from __future__ import annotations


def _write(path: str, value: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
    except FileNotFoundError:
        return  # e.g. IPv6 disabled on this host: nothing to forward
    with open(path, "w") as f:
        f.write(value)


def enable_forwarding(ipv4: bool, ipv6: bool) -> None:
    if ipv4:
        _write("/proc/sys/net/ipv4/ip_forward", "1")
    if ipv6:
        _write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
