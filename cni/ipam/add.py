"""ADD: lease one address per range set to (containerID, ifname)."""
from __future__ import annotations

from typing import Optional

from .. import version
from ..skel import CmdArgs
from . import allocator, config, stores
from .store import Attachment


def cmd_add(args: CmdArgs) -> dict:
    conf = config.load(args)
    # Read resolv.conf before allocating: a bad path must not cost a lease.
    dns = config.parse_resolv_conf(conf.resolv_conf) if conf.resolv_conf else None
    owner = Attachment(args.container_id, args.ifname)
    with stores.locked(args.context, conf.store_dir) as store:
        allocs = allocator.allocate(store, conf.range_sets, owner, conf.requested)
    return build_result(allocs, conf, dns)


def build_result(allocs: list[allocator.Allocation], conf: config.IpamConfig,
                 dns: Optional[dict]) -> dict:
    """The IPAM result in podwire's internal (1.1.0) shape, empty keys omitted."""
    result: dict = {"cniVersion": version.CURRENT, "ips": [a.to_result() for a in allocs]}
    if conf.routes:
        result["routes"] = [dict(r) for r in conf.routes]
    if dns:
        result["dns"] = dns
    return result
