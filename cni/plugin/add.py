"""ADD: wire a pod into the network, all or nothing.

Each side effect registers its undo the moment it succeeds; the ExitStack is
disarmed (pop_all) only when the whole attachment exists, so any failure
leaves no veth, no route, no firewall rule and no IPAM lease behind.
"""
from __future__ import annotations

import contextlib
import dataclasses

from .. import netlink
from ..context import Context
from ..ipam import nodecidr
from ..skel import CmdArgs
from . import bridge, config, firewall, ipam, netpol, pod, result, routed, veth
from .naming import attachment_key, host_alias, host_veth_name
from .pod import ROUTED_GW4, ROUTED_GW6


def add(args: CmdArgs) -> dict:
    conf = config.parse(args.config, args.args)
    if not conf.mtu:
        # podwire-cnid's overlay (routing = "vxlan") publishes the MTU its encapsulation leaves.
        conf = dataclasses.replace(conf, mtu=nodecidr.pod_mtu())
    with netlink.netns(args.context, args.netns) as ns:  # one socket in the pod's namespace for every step
        return _add(args, conf, ns)


def _add(args: CmdArgs, conf, ns) -> dict:
    ctx = args.context
    host_name = host_veth_name(args.container_id, args.ifname)
    key = attachment_key(conf.name, args.container_id, args.ifname)
    with contextlib.ExitStack() as undo:
        ipam_result = ipam.run("ADD", args) or {}
        undo.callback(ipam.run, "DEL", args)
        leased = ipam_result.get("ips", [])
        ips = [dict(ip) for ip in leased]
        bridge_index, bridge_mac = (bridge.ensure_bridge(ctx, conf) if conf.mode == "bridge" else (0, ""))
        pair = veth.create(ctx, ns, args.netns, host_name, args.ifname, undo, mtu=conf.mtu, mac=conf.mac,
                           alias=host_alias(conf.name, args.container_id, args.ifname),
                           routed=conf.mode == "routed", master=bridge_index)
        routes = _host_side(ctx, conf, bridge_index, pair, ips, ipam_result.get("routes", []))
        pod.configure(conf, ns, pair, ips, routes)
        _firewall(conf, key, pair, leased, undo)
        netpol.register(args, host_name, ips, undo)  # policy programs on before the pod runs
        out = result.build(conf, pair, args.netns, ips, routes,
                           conf.dns or ipam_result.get("dns", {}), bridge_mac)
        undo.pop_all()
    return out


def _host_side(ctx: Context, conf, bridge_index: int, pair, ips: list[dict], ipam_routes: list[dict]) -> list[dict]:
    """Host end of the pair; returns the pod's routes for this mode."""
    if conf.mode == "routed":
        routed.add_host_routes(ctx, pair.host_index, ips)
        routes = pod.routed_routes(ips, ipam_routes)
        for ip in ips:  # what the pod really has: a host address behind a link-local gateway
            ip["address"] = pod.host_prefix(ip["address"])
            ip["gateway"] = ROUTED_GW4 if ":" not in ip["address"] else ROUTED_GW6
        return routes
    bridge.configure_port(ctx, conf, pair.host_index)  # already the bridge's: veth.create
    if conf.is_gateway:
        bridge.set_gateways(ctx, conf, bridge_index, ips)
    return pod.bridge_routes(conf, ips, ipam_routes)


def _firewall(conf, key: str, pair, leased: list[dict], undo: contextlib.ExitStack) -> None:
    """Masquerade what leaves the leased subnets (not the pod's /32 in routed mode)."""
    if conf.ip_masq and leased:
        undo.callback(firewall.remove, conf.name, key)
        firewall.add_masq(conf.name, key, leased, conf.ip_masq_backend)
    if conf.macspoofchk:
        undo.callback(firewall.remove, conf.name, key)
        firewall.add_macspoofchk(conf.name, key, pair.host_name, pair.container_mac)
