"""DEL: remove an attachment; idempotent and best-effort.

The spec (SPEC.md, DEL): "Plugins should generally complete a DEL action
without error even if some resources are missing" and the runtime may call DEL
with no netns at all (kubernetes#43014: the netns is often already gone).  So:
a missing netns, link, rule or lease is success, every step runs even if an
earlier one failed, and the IPAM lease is always released.
"""
from __future__ import annotations

from ..skel import CmdArgs
from . import config, firewall, ipam, netpol, veth
from .naming import attachment_key, host_veth_name


def delete(args: CmdArgs) -> None:
    conf = config.parse(args.config, args.args)
    key = attachment_key(conf.name, args.container_id, args.ifname)
    errors: list[Exception] = []
    for step in (lambda: netpol.unregister(args, host_veth_name(args.container_id, args.ifname)),
                 lambda: _remove_links(args), lambda: _remove_rules(conf, key),
                 lambda: ipam.run("DEL", args)):
        try:
            step()
        except Exception as exc:  # keep going: the lease must be released regardless
            errors.append(exc)
    if errors:
        raise errors[0]


def _remove_rules(conf, key: str) -> None:
    # Like the reference bridge: only a config that asks for rules had them made (a
    # config changed since ADD leaves them to GC).  Listing rules costs 4 execs.
    if conf.ip_masq or conf.macspoofchk:
        firewall.remove(conf.name, key)


def _remove_links(args: CmdArgs) -> None:
    veth.remove(args.context, args.netns, host_veth_name(args.container_id, args.ifname), args.ifname)
