"""CHECK: the attachment still holds its leases, and prevResult's addresses in
our ranges are the ones leased to it."""
from __future__ import annotations

import ipaddress
import os
from typing import Optional

from .. import version
from ..errors import CniError, Code
from ..skel import CmdArgs
from . import allocator, config, stores
from .config import IP
from .store import Attachment


def cmd_check(args: CmdArgs) -> None:
    conf = config.load(args)
    owner = Attachment(args.container_id, args.ifname)
    if not os.path.isdir(conf.store_dir):
        raise CniError(Code.INTERNAL, f"{owner} holds no address: no IPAM store {conf.store_dir}")
    ips = prev_result_ips(args.config)
    with stores.locked(args.context, conf.store_dir) as store:
        allocator.verify(store, conf.range_sets, owner, ips)
    return None


def prev_result_ips(conf: dict) -> Optional[list[IP]]:
    """The addresses of ``prevResult`` (of the config's version), if any."""
    prev = conf.get("prevResult")
    if not prev:
        return None
    if not isinstance(prev, dict):
        raise CniError(Code.DECODING_FAILURE, "prevResult is not a JSON object")
    result = version.to_current({"cniVersion": conf.get("cniVersion", "0.1.0"), **prev})
    try:
        return [ipaddress.ip_interface(ip["address"]).ip for ip in result.get("ips") or ()]
    except (KeyError, TypeError, ValueError) as exc:
        raise CniError(Code.DECODING_FAILURE, "invalid address in prevResult", str(exc)) from None
