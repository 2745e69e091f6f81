"""Bridge mode, host side: the shared bridge, its gateway addresses, the pod's port."""
from __future__ import annotations

import errno
import ipaddress

from .. import netlink
from ..context import Context
from ..errors import CniError, Code, invalid_config
from .config import NetConf
from .sysctl import enable_forwarding


_IFF_UP = 0x1
_IFF_PROMISC = 0x100


def ensure_bridge(ctx: Context, conf: NetConf) -> tuple[int, str]:
    """Create the bridge if needed (shared by every pod, never undone); (index, mac)."""
    with netlink.host(ctx) as ipr:
        bridge = netlink.find_link(ipr, conf.bridge) or _create(ipr, conf)
        index = bridge["index"]
        info = bridge.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
        if info != "bridge":
            raise invalid_config(f"{conf.bridge!r} already exists but is not a bridge", f"kind {info}")
        if conf.vlan:
            _enable_vlan_filtering(ipr, conf, index)
        if conf.promisc_mode:
            ipr.link("set", index=index, flags=_IFF_PROMISC, change=_IFF_PROMISC)
        if not bridge["flags"] & _IFF_UP:  # every pod's ADD passes here: skip what is done
            ipr.link("set", index=index, state="up")
        return index, bridge.get("IFLA_ADDRESS")  # pinned at creation: up/promisc keep it


def _enable_vlan_filtering(ipr, conf: NetConf, index: int) -> None:
    try:
        ipr.link("set", index=index, kind="bridge", br_vlan_filtering=1)
    except netlink.NetlinkError as exc:
        if exc.code == errno.EOPNOTSUPP:
            raise CniError(Code.INTERNAL, f"cannot use vlan {conf.vlan}: this kernel has no bridge "
                           "VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)") from None
        raise


def _create(ipr, conf: NetConf):
    spec: dict[str, object] = {"ifname": conf.bridge, "kind": "bridge"}
    if conf.mtu:
        spec["mtu"] = conf.mtu
    try:
        ipr.link("add", **spec)
    except netlink.NetlinkError as exc:
        # Concurrent ADDs race to create the bridge: EEXIST means another won (plugins#366).
        if exc.code != errno.EEXIST:
            raise
    bridge = netlink.find_link(ipr, conf.bridge)
    # Pin the bridge's MAC: a random one is replaced by the lowest port MAC as pods join,
    # which would make every pod's cached gateway neighbour stale.
    ipr.link("set", index=bridge["index"], address=bridge.get("IFLA_ADDRESS"))
    return bridge


def set_gateways(ctx: Context, conf: NetConf, bridge_index: int, ips: list[dict]) -> None:
    """isGateway: the IPAM gateway of each family on the bridge, forwarding on."""
    families = set()
    with netlink.host(ctx) as ipr:
        for ip in ips:
            gateway = ip.get("gateway")
            if not gateway:
                continue
            pod = ipaddress.ip_interface(ip["address"])
            _ensure_gateway(ipr, conf, bridge_index, f"{gateway}/{pod.network.prefixlen}")
            families.add(pod.version)
    enable_forwarding(4 in families, 6 in families)


def _ensure_gateway(ipr, conf: NetConf, index: int, wanted: str) -> None:
    """Add first, look later: every pod after the bridge's first finds its gateway there
    (EEXIST), which saves an address dump per ADD.  Only a fresh gateway is checked for
    another address of its subnet on the bridge."""
    try:
        netlink.add_address(ipr, index, wanted, nodad=not conf.enable_dad)
    except netlink.NetlinkError as exc:
        if exc.code == errno.EEXIST:
            return
        raise
    want = ipaddress.ip_interface(wanted)
    clashing = [c for c in netlink.addresses(ipr, index) if ipaddress.ip_interface(c).network == want.network
                and ipaddress.ip_interface(c) != want]
    if not clashing:
        return
    # Ours went in as a secondary address of the old one's subnet: out again, before the old
    # primary goes (deleting a primary takes its secondaries with it).
    ipr.addr("del", index=index, address=str(want.ip), prefixlen=want.network.prefixlen)
    if not conf.force_address:
        raise CniError(Code.INTERNAL, f"{conf.bridge!r} already has an IP address different from {wanted}",
                       f"found {clashing}; set forceAddress to replace it")
    for old in clashing:
        old_if = ipaddress.ip_interface(old)
        ipr.addr("del", index=index, address=str(old_if.ip), prefixlen=old_if.network.prefixlen)
    netlink.add_address(ipr, index, wanted, nodad=not conf.enable_dad, exist_ok=True)


def configure_port(ctx: Context, conf: NetConf, host_index: int) -> None:
    """The pod's bridge port options (the port itself is made by veth.create)."""
    if not (conf.hairpin_mode or conf.vlan):
        return
    with netlink.host(ctx) as ipr:
        if conf.hairpin_mode:
            ipr.brport("set", index=host_index, mode=1)
        if conf.vlan:
            ipr.vlan_filter("add", index=host_index,
                            vlan_info={"vid": conf.vlan, "flags": ["pvid", "untagged"]})
            ipr.vlan_filter("del", index=host_index, vlan_info={"vid": 1})
