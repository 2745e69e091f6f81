"""Routed mode, host side: a /32 (/128) route per pod address on its host veth."""
from __future__ import annotations

import ipaddress

from .. import netlink
from ..context import Context
from .sysctl import enable_forwarding

_RT_SCOPE_LINK = 253


def add_host_routes(ctx: Context, host_index: int, ips: list[dict]) -> None:
    versions = set()
    with netlink.host(ctx) as ipr:
        for ip in ips:
            addr = ipaddress.ip_interface(ip["address"]).ip
            with netlink.about(f"cannot add host route {addr}/{addr.max_prefixlen} to host veth "
                               f"index {host_index}"):
                netlink.add_route(ipr, f"{addr}/{addr.max_prefixlen}", index=host_index,
                                  scope=_RT_SCOPE_LINK if addr.version == 4 else 0)
            versions.add(addr.version)
    enable_forwarding(4 in versions, 6 in versions)
