"""STATUS (spec 1.1): ready when the store is usable and every range set has a
free address; otherwise code 50, naming what is wrong."""
from __future__ import annotations

import os

from ..errors import CniError, Code
from ..skel import CmdArgs
from . import allocator, config, stores


def cmd_status(args: CmdArgs) -> None:
    try:
        conf = config.load(args)
    except CniError as err:
        if err.code != Code.TRY_AGAIN_LATER:  # e.g. the node's pod CIDR is not known yet
            raise
        raise CniError(Code.NOT_AVAILABLE, err.msg, err.details) from None
    try:
        with stores.locked(args.context, conf.store_dir) as store:
            if not os.access(conf.store_dir, os.W_OK):
                raise CniError(Code.NOT_AVAILABLE, f"IPAM store {conf.store_dir} is not writable")
            full = [s for i, s in enumerate(conf.range_sets) if not allocator.has_free(store, i, s)]
    except CniError as err:
        if err.code != Code.IO_FAILURE:
            raise
        raise CniError(Code.NOT_AVAILABLE, f"IPAM store {conf.store_dir} is not usable", err.details) from None
    if full:
        raise CniError(Code.NOT_AVAILABLE, f"no IP addresses available in range set {full[0]}")
    return None
