"""Deterministic names and tags for what an attachment creates on the host.

The host veth's name is a hash of (container ID, ifname), so DEL finds it with
nothing but the CNI_* variables; its ifalias records network, container ID and
ifname, so GC can tell which stale links belong to which network.
"""
from __future__ import annotations

import hashlib

HOST_VETH_PREFIX = "pw"
ALIAS_PREFIX = "podwire"


def host_veth_name(container_id: str, ifname: str) -> str:
    digest = hashlib.sha256(f"{container_id}\x00{ifname}".encode()).hexdigest()
    return HOST_VETH_PREFIX + digest[:12]  # 14 characters: fits IFNAMSIZ


def attachment_key(network: str, container_id: str, ifname: str) -> str:
    """One string naming an attachment: used in link aliases and firewall comments."""
    return f"{network}/{container_id}/{ifname}"


def host_alias(network: str, container_id: str, ifname: str) -> str:
    return f"{ALIAS_PREFIX}:{attachment_key(network, container_id, ifname)}"


def parse_alias(alias: str) -> tuple[str, str, str] | None:
    """(network, container ID, ifname) from a host veth's ifalias, or None if not ours."""
    prefix = f"{ALIAS_PREFIX}:"
    if not alias or not alias.startswith(prefix):
        return None
    parts = alias[len(prefix):].split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None
