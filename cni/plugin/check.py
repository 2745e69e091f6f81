"""CHECK: compare the live attachment with prevResult (spec >= 0.4.0).

Later plugins in a chain may have added things, so CHECK verifies that what
*we* reported still exists, not that nothing else does.
"""
from __future__ import annotations

import ipaddress

from .. import netlink, version
from ..errors import CniError, Code, invalid_config
from ..skel import CmdArgs
from . import config, ipam
from .naming import host_veth_name


def check(args: CmdArgs) -> None:
    conf = config.parse(args.config, args.args)
    prev = args.config.get("prevResult")
    if not prev:
        raise invalid_config("required prevResult missing")
    prev = version.to_current(prev)
    ipam.run("CHECK", args)
    pod_iface = _pod_interface(prev, args)
    _check_pod(args, pod_iface, prev)
    _check_host(conf, args)


def _pod_interface(prev: dict, args: CmdArgs) -> dict:
    for iface in prev.get("interfaces", []):
        if iface.get("name") == args.ifname and iface.get("sandbox"):
            return iface
    raise CniError(Code.INTERNAL, f"prevResult has no interface {args.ifname!r} in a sandbox")


def _fail(msg: str, details: str = "") -> CniError:
    return CniError(Code.INTERNAL, msg, details)


def _check_pod(args: CmdArgs, iface: dict, prev: dict) -> None:
    with netlink.netns(args.context, args.netns) as ns:
        index = netlink.index_of(ns, args.ifname)
        if index is None:
            raise _fail(f"interface {args.ifname!r} not found in {args.netns}")
        mac = netlink.link(ns, index).get("IFLA_ADDRESS")
        if iface.get("mac") and mac.lower() != iface["mac"].lower():
            raise _fail(f"interface {args.ifname!r} has MAC {mac}, expected {iface['mac']}")
        live = {ipaddress.ip_interface(a).ip for a in netlink.addresses(ns, index)}
        for ip in prev.get("ips", []):
            want = ipaddress.ip_interface(ip["address"]).ip
            if want not in live:
                raise _fail(f"address {want} missing on {args.ifname!r}")
        _check_routes(ns, prev.get("routes", []))


def _check_routes(ns, routes: list[dict]) -> None:
    live = set()
    for family in (2, 10):
        for r in ns.route("dump", family=family):
            dst = r.get("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
            live.add((str(ipaddress.ip_network(f"{dst}/{r['dst_len']}")), r.get("RTA_GATEWAY") or ""))
    for route in routes:
        want = (str(ipaddress.ip_network(route["dst"], strict=False)), route.get("gw", ""))
        if want not in live:
            raise _fail(f"route {route['dst']} via {route.get('gw') or 'link'} missing")


def _check_host(conf, args: CmdArgs) -> None:
    name = host_veth_name(args.container_id, args.ifname)
    with netlink.host(args.context) as ipr:
        index = netlink.index_of(ipr, name)
        if index is None:
            raise _fail(f"host veth {name} not found")
        if conf.mode == "bridge":
            master = netlink.link(ipr, index).get("IFLA_MASTER")
            bridge = netlink.index_of(ipr, conf.bridge)
            if bridge is None or master != bridge:
                raise _fail(f"host veth {name} is not a port of bridge {conf.bridge!r}")
