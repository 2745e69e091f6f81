"""Pod side of an attachment: addresses, routes and neighbours inside the pod netns."""
from __future__ import annotations

import ipaddress
import time

from .. import netlink
from .config import NetConf
from .veth import Pair

# Routed mode's gateways: link-local, identical in every pod, answered by the host veth.
ROUTED_GW4 = "169.254.1.1"
ROUTED_GW6 = "fe80::1"
_NUD_PERMANENT = 0x80
_RT_SCOPE_LINK = 253
_DAD_WAIT_S = 5.0


def _default(version: int) -> str:
    return "0.0.0.0/0" if version == 4 else "::/0"


def _version(cidr: str) -> int:
    return ipaddress.ip_network(cidr, strict=False).version


def bridge_routes(conf: NetConf, ips: list[dict], ipam_routes: list[dict]) -> list[dict]:
    """IPAM routes with their gateway filled in, plus default routes for isDefaultGateway."""
    gateways: dict[int, str] = {ipaddress.ip_address(ip["gateway"]).version: ip["gateway"]
                for ip in ips if ip.get("gateway")}
    routes = []
    for route in ipam_routes:
        gw = route.get("gw") or gateways.get(_version(route["dst"]), "")
        routes.append({**route, "gw": gw} if gw else dict(route))
    if conf.is_default_gateway:
        have = {_version(r["dst"]) for r in routes if ipaddress.ip_network(r["dst"]).prefixlen == 0}
        for fam, gw in sorted(gateways.items()):
            if fam not in have:
                routes.append({"dst": _default(fam), "gw": gw})
    return routes


def routed_routes(ips: list[dict], ipam_routes: list[dict]) -> list[dict]:
    """Everything goes through the link-local gateway: the pod's subnets and IPAM's routes."""
    gw = {4: ROUTED_GW4, 6: ROUTED_GW6}
    routes = []
    for ip in ips:
        net = ipaddress.ip_interface(ip["address"]).network
        if net.prefixlen < net.max_prefixlen:
            routes.append({"dst": str(net), "gw": gw[net.version]})
    for route in ipam_routes:
        entry = {**route, "gw": gw[_version(route["dst"])]}
        if entry not in routes:
            routes.append(entry)
    return routes


def configure(conf: NetConf, ns, pair: Pair, ips: list[dict], routes: list[dict]) -> None:
    """Bring the pod interface up with its addresses and routes (all-or-nothing is the
    caller's: deleting the veth undoes everything done here).  ``ns``: an IPRoute in
    the pod's namespace."""
    index, name = pair.container_index, pair.container_name
    with netlink.about(f"cannot bring up pod interface {name!r}"):
        netlink.set_link(ns, index, up=True)
    for ip in ips:
        with netlink.about(f"cannot add address {ip['address']} to pod interface {name!r}"):
            netlink.add_address(ns, index, ip["address"], nodad=not conf.enable_dad)
    if conf.mode == "routed":
        with netlink.about(f"cannot add the link-local gateway on pod interface {name!r}"):
            _routed_gateways(ns, index, pair.host_mac, ips)
    for route in routes:
        extra = {k: route[k] for k in ("priority", "table") if route.get(k)}
        via = f" via {route['gw']}" if route.get("gw") else ""
        with netlink.about(f"cannot add route {route['dst']}{via} on pod interface {name!r}"):
            netlink.add_route(ns, route["dst"], gateway=route.get("gw", ""), index=index, **extra)
    if conf.enable_dad:
        _wait_for_dad(ns, index)


def host_prefix(cidr: str) -> str:
    iface = ipaddress.ip_interface(cidr)
    return f"{iface.ip}/{iface.max_prefixlen}"


def _routed_gateways(ns, index: int, host_mac: str, ips: list[dict]) -> None:
    """A static neighbour for the link-local gateway: the host veth's MAC, so the pod
    never depends on proxy ARP/NDP (and on the host having a route for 169.254.1.1)."""
    versions = {ipaddress.ip_interface(ip["address"]).version for ip in ips}
    if 4 in versions:
        netlink.add_route(ns, f"{ROUTED_GW4}/32", index=index, scope=_RT_SCOPE_LINK)
        ns.neigh("replace", dst=ROUTED_GW4, lladdr=host_mac, ifindex=index, state=_NUD_PERMANENT)
    if 6 in versions:
        ns.neigh("replace", dst=ROUTED_GW6, lladdr=host_mac, ifindex=index, state=_NUD_PERMANENT)


def _wait_for_dad(ns, index: int) -> None:
    """enabledad: wait (bounded) until no address is tentative any more."""
    deadline = time.monotonic() + _DAD_WAIT_S
    while time.monotonic() < deadline:
        if not any(m.get("IFA_FLAGS", 0) & netlink.IFA_F_TENTATIVE for m in ns.addr("dump", index=index)):
            return
        time.sleep(0.05)
