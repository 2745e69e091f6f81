"""Per-attachment firewall rules: masquerading (ipMasq) and MAC spoof checks.

Every rule carries a comment derived from (network, container ID, ifname), so
DEL and GC find an attachment's rules with nothing but its key.  nftables is
the default; ipMasq falls back to iptables when nft is absent or asked for.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import shutil
import subprocess

from ..errors import CniError, Code

TABLE = "podwire"
_MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


def _hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def network_tag(network: str) -> str:
    return f"podwire/{_hash(network, 8)}/"


def comment(network: str, key: str) -> str:
    """Bounded length (nft comments are at most 128 bytes), network-scoped for GC."""
    return network_tag(network) + _hash(key, 16)


def backend(preferred: str = "") -> str:
    if preferred:
        return preferred
    return "nftables" if shutil.which("nft") else "iptables"


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise CniError(Code.INTERNAL, f"{argv[0]} failed", proc.stderr.strip())
    return proc.stdout


# --- adding ----------------------------------------------------------------

def add_masq(network: str, key: str, ips: list[dict], preferred_backend: str = "") -> None:
    tag = comment(network, key)
    if backend(preferred_backend) == "iptables":
        for ip in ips:
            _iptables_masq(ip["address"], tag)
        return
    lines = [f"add table inet {TABLE}",
             f"add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"]
    for ip in ips:
        iface = ipaddress.ip_interface(ip["address"])
        fam = "ip" if iface.version == 4 else "ip6"
        lines.append(f"add rule inet {TABLE} postrouting {fam} saddr {iface.ip} {fam} daddr != "
                     f"{{ {iface.network}, {_MULTICAST[iface.version]} }} masquerade comment \"{tag}\"")
    _run(["nft", "-f", "-"], "\n".join(lines) + "\n")


def _iptables_masq(address: str, tag: str) -> None:
    iface = ipaddress.ip_interface(address)
    tool = "iptables" if iface.version == 4 else "ip6tables"
    _run([tool, "-w", "-t", "nat", "-A", "POSTROUTING", "-s", str(iface.ip), "!", "-d", str(iface.network),
          "-m", "comment", "--comment", tag, "-j", "MASQUERADE"])


def add_macspoofchk(network: str, key: str, host_veth: str, mac: str) -> None:
    """Frames entering the bridge from this pod must carry the pod's MAC."""
    tag = comment(network, key)
    _run(["nft", "-f", "-"], "\n".join([
        f"add table bridge {TABLE}",
        f"add chain bridge {TABLE} prerouting {{ type filter hook prerouting priority -300; policy accept; }}",
        f"add rule bridge {TABLE} prerouting iifname \"{host_veth}\" ether saddr != {mac} drop comment \"{tag}\"",
    ]) + "\n")


# --- removing (idempotent: missing tables, chains or rules are success) -------------

def remove(network: str, key: str) -> None:
    _remove_where(lambda c: c == comment(network, key))


def gc(network: str, valid_keys: set[str]) -> None:
    """Remove this network's rules whose attachment is not in ``valid_keys``."""
    tag = network_tag(network)
    keep = {comment(network, k) for k in valid_keys}
    _remove_where(lambda c: c.startswith(tag) and c not in keep)


def _remove_where(match) -> None:
    if shutil.which("nft"):
        for family, chain in (("inet", "postrouting"), ("bridge", "prerouting")):
            for handle in _nft_handles(family, chain, match):
                _run(["nft", "delete", "rule", family, TABLE, chain, "handle", str(handle)], check=False)
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool):
            _iptables_remove(tool, match)


def _nft_handles(family: str, chain: str, match) -> list[int]:
    out = _run(["nft", "-j", "list", "chain", family, TABLE, chain], check=False)
    if not out:
        return []
    handles = []
    for item in json.loads(out).get("nftables", []):
        rule = item.get("rule")
        if rule and match(rule.get("comment", "")):
            handles.append(rule["handle"])
    return handles


def _iptables_remove(tool: str, match) -> None:
    for line in _run([tool, "-w", "-t", "nat", "-S", "POSTROUTING"], check=False).splitlines():
        parts = line.split()
        if "--comment" not in parts:
            continue
        tag = parts[parts.index("--comment") + 1].strip('"')
        if match(tag):
            _run([tool, "-w", "-t", "nat", "-D", *parts[1:]], check=False)
