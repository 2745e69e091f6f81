"""GC (spec 1.1): release every lease whose attachment is not in the valid list."""
from __future__ import annotations

import os

from ..errors import CniError, Code, invalid_config
from ..skel import CmdArgs
from . import allocator, config, stores
from .store import Attachment

VALID_KEY = "cni.dev/valid-attachments"
MISSPELLED_KEY = "cni.dev/attachments"  # what libcni sends too (cni#1101)


def cmd_gc(args: CmdArgs) -> None:
    valid = valid_attachments(args.config)
    path = config.store_dir(args.config)
    if not os.path.isdir(path):
        return None
    with stores.locked(args.context, path) as store:
        _, errors = allocator.collect_garbage(store, valid)
        store.rebuild_index()  # a full scan is fine here: also drops stale index entries
    if errors:
        raise CniError(Code.IO_FAILURE, f"GC could not release {len(errors)} leases", "; ".join(errors))
    return None


def valid_attachments(conf: dict) -> list[Attachment]:
    # No list at all is an error, not "nothing is valid": it would free every address.
    raw = conf.get(VALID_KEY, conf.get(MISSPELLED_KEY))
    if not isinstance(raw, list):
        raise invalid_config(f"GC needs a {VALID_KEY} list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) \
                or not isinstance(item.get("ifname"), str):
            raise invalid_config(f"invalid entry in {VALID_KEY}", repr(item))
        out.append(Attachment(item["containerID"], item["ifname"]))
    return out
