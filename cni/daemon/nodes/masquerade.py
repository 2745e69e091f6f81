"""Masquerade what leaves the cluster's pod CIDRs, never pod-to-pod traffic.

One nftables table of podwire-cnid's own, ``inet podwire-nat`` (the plugin's per-pod
``ipMasq`` rules live in ``inet podwire``; the two never edit each other's table):

    set cluster4/cluster6      every Node's pod CIDRs (this node's included)
    chain postrouting          ip saddr <this node's pod CIDR> ip daddr != @cluster4 masquerade

It is rewritten whole in one nft transaction (``add table; delete table; table {...}``),
so a reconcile is atomic and idempotent, and a crash leaves either the old table or the new.

The plugin's ``ipMasq`` masquerades everything not in the pod's *own node's* subnet --
cross-node pod traffic included -- and NAT takes the first chain that translates.  With
routing on, set ``ipMasq: false`` in the conflist (docs/cni.md says so); this table
replaces it.
"""
from __future__ import annotations

import ipaddress
import shutil
import subprocess
from typing import Sequence

from .model import RoutingError

TABLE = "podwire-nat"


def script(local_cidrs: Sequence[str], cluster_cidrs: Sequence[str]) -> str:
    """The nft script that makes the table exactly this (pure; unit-tested)."""
    lines = [f"add table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{"]
    rules = []
    for version, fam, kind in ((4, "ip", "ipv4_addr"), (6, "ip6", "ipv6_addr")):
        inside = [c for c in cluster_cidrs if ipaddress.ip_network(c).version == version]
        local = [c for c in local_cidrs if ipaddress.ip_network(c).version == version]
        if not local:
            continue
        lines += [f"  set cluster{version} {{", f"    type {kind}; flags interval;",
                  f"    elements = {{ {', '.join(inside or local)} }}", "  }"]
        rules += [f"    {fam} saddr {c} {fam} daddr != @cluster{version} masquerade" for c in local]
    # srcnat - 10: before the plugin's ipMasq chain (srcnat), so traffic leaving the cluster
    # is translated here whatever the conflist says.
    lines += ["  chain postrouting {", "    type nat hook postrouting priority srcnat - 10; policy accept;",
              *rules, "  }", "}"]
    return "\n".join(lines) + "\n"


def apply(local_cidrs: Sequence[str], cluster_cidrs: Sequence[str]) -> None:
    _nft(script(local_cidrs, cluster_cidrs))


def exists() -> bool:
    if shutil.which("nft") is None:
        return False
    return subprocess.run(["nft", "list", "table", "inet", TABLE], capture_output=True,
                          timeout=30).returncode == 0


def remove() -> bool:
    """Delete the table; False when there was none (or no nft: then nothing was made)."""
    if shutil.which("nft") is None:
        return False
    return _nft(f"delete table inet {TABLE}\n", missing_ok=True)


def _nft(text: str, missing_ok: bool = False) -> bool:
    if shutil.which("nft") is None:
        raise RoutingError("masquerade needs nft (nftables), not found on PATH")
    proc = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        if missing_ok and ("No such file" in proc.stderr or "does not exist" in proc.stderr):
            return False
        raise RoutingError(f"nft: {proc.stderr.strip()}")
    return True
