"""Deterministic names and tags for what an attachment creates on the host.

The host veth's name is a hash of (container ID, ifname), so DEL finds it with
nothing but the CNI_* variables; its ifalias records network, container ID and
ifname, so GC can tell which stale links belong to which network.
"""
from __future__ import annotations

import hashlib
import secrets

HOST_VETH_PREFIX = "pw"
ALIAS_PREFIX = "podwire"
# A retired veth (DEL done, the kernel's deletion pending in podwire-cnid): both ends carry
# this prefix plus 12 random hex digits.  "x" is no hex digit, so no live host veth
# (HOST_VETH_PREFIX + hex) ever matches, and whoever finds such a link may delete it.
RETIRED_PREFIX = "pwx"


def host_veth_name(container_id: str, ifname: str) -> str:
    digest = hashlib.sha256(f"{container_id}\x00{ifname}".encode()).hexdigest()
    return HOST_VETH_PREFIX + digest[:12]  # 14 characters: fits IFNAMSIZ


def retired_name() -> str:
    """A fresh name for a retired veth end: unique, so an attachment retired twice before
    its first link is reaped (DEL, ADD, DEL) never collides with itself."""
    return RETIRED_PREFIX + secrets.token_hex(6)  # 15 characters: IFNAMSIZ - 1


def is_retired(name: str) -> bool:
    return name.startswith(RETIRED_PREFIX) and len(name) == len(RETIRED_PREFIX) + 12


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
