"""`podwire` executable: map CNI_COMMAND to a verb (skel does the rest).

Verb modules are imported only when their verb runs, so VERSION and errors
about the environment answer without loading netlink code.
"""
from __future__ import annotations

from .. import skel


def _add(args):
    from .add import add
    return add(args)


def _delete(args):
    from .delete import delete
    return delete(args)


def _check(args):
    from .check import check
    return check(args)


def _status(args):
    from .status import status
    return status(args)


def _gc(args):
    from .gc import gc
    return gc(args)


VERBS = skel.Verbs(add=_add, delete=_delete, check=_check, status=_status, gc=_gc, about="podwire")


def main() -> int:
    return skel.main(VERBS)
