"""DEL: release every lease of (containerID, ifname)."""
from __future__ import annotations

import os

from ..skel import CmdArgs
from . import allocator, config, stores
from .store import Attachment


def cmd_del(args: CmdArgs) -> None:
    # SPEC.md, DEL: "Plugins should generally complete a DEL action without
    # error even if some resources are missing" -- so no lease, or no store at
    # all, is success, and a repeated DEL is too.  Only the store location is
    # read from the config, so a since-broken range config cannot block DEL.
    path = config.store_dir(args.config)
    if not os.path.isdir(path):
        return None
    with stores.locked(args.context, path) as store:
        allocator.release(store, Attachment(args.container_id, args.ifname))
    return None
