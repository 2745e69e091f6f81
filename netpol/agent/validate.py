"""Checks and merges for endpoint input (pods come from the shim, CNI and sources)."""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Optional

from ..errors import InvalidArgument
from ..model import PROTOCOLS, Pod
from ..validation import port_name_errors

FIELDS = ("labels", "ips", "interface", "ports", "container_id")


def validate_pod(pod: Pod, fields: Optional[set[str]] = None) -> None:
    unknown = set(fields or ()) - set(FIELDS)
    if unknown:
        raise InvalidArgument(f"unknown endpoint field(s) in update mask: {', '.join(sorted(unknown))}")
    if not pod.namespace or not pod.name:
        raise InvalidArgument("endpoint namespace and name are required")
    for ip in pod.ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"endpoint {pod.key}: {ip!r} is not an IP address") from None
    for port in pod.ports:
        if port.protocol not in PROTOCOLS:
            raise InvalidArgument(f"endpoint {pod.key}: port {port.name!r}: unsupported protocol {port.protocol!r}")
        if not 1 <= port.port <= 65535:
            raise InvalidArgument(f"endpoint {pod.key}: port {port.name!r}: {port.port} is not in 1-65535")
        if port.name and port_name_errors(port.name):
            raise InvalidArgument(f"endpoint {pod.key}: port name {port.name!r}: {port_name_errors(port.name)[0]}")


def merge_pod(old: Pod, new: Pod, fields: Optional[set[str]]) -> Pod:
    """``old`` with the named fields taken from ``new`` (an update mask)."""
    return dataclasses.replace(old, **{f: getattr(new, f) for f in fields or ()})
