"""STATUS (spec 1.1): ready when IPAM has addresses and the bridge can be made."""
from __future__ import annotations

import os

from .. import netlink
from ..context import Context
from ..errors import CniError, Code
from ..skel import CmdArgs
from . import config, ipam


def status(args: CmdArgs) -> None:
    conf = config.parse(args.config, args.args)
    if os.geteuid() != 0:
        raise CniError(Code.NOT_AVAILABLE, "podwire needs root (CAP_NET_ADMIN) to wire pods")
    if conf.mode == "bridge":
        _bridge_usable(args.context, conf)
    ipam.run("STATUS", args)


def _bridge_usable(ctx: Context, conf) -> None:
    with netlink.host(ctx) as ipr:
        index = netlink.index_of(ipr, conf.bridge)
        if index is None:
            return  # ADD will create it
        kind = netlink.link(ipr, index).get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
        if kind != "bridge":
            raise CniError(Code.NOT_AVAILABLE, f"{conf.bridge!r} exists but is a {kind}, not a bridge")
