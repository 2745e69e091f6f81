"""Which store the IPAM verbs open: host-local's on-disk one, or -- inside
podwire-cnid, whose context carries it -- its in-memory copy written through to
it (:mod:`.cached`)."""
from __future__ import annotations

from typing import ContextManager

from ..context import Context
from .disk import DiskStore


def locked(ctx: Context, path: str) -> ContextManager:
    """The store of the lease directory ``path``, locked, for one verb."""
    return (ctx.open_store or DiskStore.locked)(path)
