"""The `podwire` plugin's network configuration, parsed and validated once.

Keys mean what they mean in the reference bridge plugin wherever the two
overlap (bridge, isGateway, isDefaultGateway, forceAddress, ipMasq, mtu,
hairpinMode, promiscMode, vlan, macspoofchk, enabledad); `mode` picks
between a Linux bridge and routed (/32 + link-local gateway) pods.
"""
from __future__ import annotations

import dataclasses
import re

from ..errors import CniError, Code, invalid_config

MODES = ("bridge", "routed")
DEFAULT_BRIDGE = "podwire0"
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_IFNAME_RE = re.compile(r"^[^\s/:]{1,15}$")


@dataclasses.dataclass(frozen=True)
class NetConf:
    name: str
    cni_version: str
    mode: str = "bridge"
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    force_address: bool = False
    ip_masq: bool = False
    ip_masq_backend: str = ""
    mtu: int = 0
    hairpin_mode: bool = False
    promisc_mode: bool = False
    vlan: int = 0
    macspoofchk: bool = False
    enable_dad: bool = False
    ipam: dict = dataclasses.field(default_factory=dict)
    dns: dict = dataclasses.field(default_factory=dict)
    mac: str = ""
    raw: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def ipam_type(self) -> str:
        return self.ipam.get("type", "")


def _get(conf: dict, key: str, kind: type, default):
    value = conf.get(key, default)
    if kind is int and isinstance(value, bool):
        raise invalid_config(f"{key} must be an integer", repr(value))
    if not isinstance(value, kind):
        raise invalid_config(f"{key} must be of type {kind.__name__}", repr(value))
    return value


def parse(conf: dict, cni_args: dict | None = None) -> NetConf:
    """Validate the stdin config; every problem is a code 7 error."""
    mode = _get(conf, "mode", str, "bridge")
    if mode not in MODES:
        raise invalid_config(f"unknown mode {mode!r}", f"supported: {', '.join(MODES)}")
    netconf = NetConf(
        name=conf["name"], cni_version=conf.get("cniVersion", "0.1.0"), mode=mode,
        bridge=_get(conf, "bridge", str, DEFAULT_BRIDGE),
        is_gateway=_get(conf, "isGateway", bool, False) or _get(conf, "isDefaultGateway", bool, False),
        is_default_gateway=_get(conf, "isDefaultGateway", bool, False),
        force_address=_get(conf, "forceAddress", bool, False),
        ip_masq=_get(conf, "ipMasq", bool, False),
        ip_masq_backend=_get(conf, "ipMasqBackend", str, ""),
        mtu=_get(conf, "mtu", int, 0), hairpin_mode=_get(conf, "hairpinMode", bool, False),
        promisc_mode=_get(conf, "promiscMode", bool, False), vlan=_get(conf, "vlan", int, 0),
        macspoofchk=_get(conf, "macspoofchk", bool, False),
        enable_dad=_get(conf, "enabledad", bool, False),
        ipam=_get(conf, "ipam", dict, {}), dns=_get(conf, "dns", dict, {}),
        mac=_requested_mac(conf, cni_args or {}), raw=conf)
    _validate(netconf)
    return netconf


def _validate(c: NetConf) -> None:
    if not _IFNAME_RE.match(c.bridge):
        raise invalid_config("invalid bridge name", repr(c.bridge))
    if c.hairpin_mode and c.promisc_mode:
        raise invalid_config("cannot set hairpin mode and promiscuous mode at the same time")
    if not 0 <= c.vlan <= 4094:
        raise invalid_config("invalid VLAN ID", f"{c.vlan} (must be between 0 and 4094)")
    if c.mtu and not 68 <= c.mtu <= 65535:
        raise invalid_config("invalid MTU", f"{c.mtu} (must be between 68 and 65535)")
    if c.ip_masq_backend not in ("", "nftables", "iptables"):
        raise invalid_config("invalid ipMasqBackend", repr(c.ip_masq_backend))
    if c.mode == "routed" and (c.vlan or c.hairpin_mode or c.promisc_mode):
        raise invalid_config("vlan, hairpinMode and promiscMode need mode \"bridge\"")
    if not c.ipam_type:
        raise invalid_config("missing ipam.type", "podwire needs an IPAM plugin, e.g. podwire-ipam")
    if c.mac and not _MAC_RE.match(c.mac):
        raise CniError(Code.INVALID_CONFIG, "invalid MAC address", c.mac)


def _requested_mac(conf: dict, cni_args: dict) -> str:
    """The `mac` capability, args.cni.mac or CNI_ARGS MAC= (that precedence, as in bridge)."""
    runtime = conf.get("runtimeConfig") or {}
    args = ((conf.get("args") or {}).get("cni") or {})
    mac = runtime.get("mac") or args.get("mac") or cni_args.get("MAC") or ""
    if not isinstance(mac, str):
        raise invalid_config("mac must be a string", repr(mac))
    return mac.lower()
