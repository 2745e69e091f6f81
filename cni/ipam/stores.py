"""Which store the IPAM verbs open: host-local's on-disk one, or -- inside
podwire-cnid -- its in-memory copy written through to it (:mod:`.cached`)."""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Optional

from .disk import DiskStore

Opener = Callable[[str], ContextManager]
_opener: Optional[Opener] = None


def locked(path: str) -> ContextManager:
    """The store of the lease directory ``path``, locked, for one verb."""
    return (_opener or DiskStore.locked)(path)


def use(opener: Optional[Opener]) -> None:
    """Open stores with ``opener`` from now on (None: the plain DiskStore)."""
    global _opener
    _opener = opener


@contextlib.contextmanager
def using(opener: Opener):
    """:func:`use` for a block (tests)."""
    previous = _opener
    use(opener)
    try:
        yield
    finally:
        use(previous)
