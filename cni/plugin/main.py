"""`podwire` executable: map CNI_COMMAND to a verb (skel does the rest).

Verb modules are imported only when their verb runs, so VERSION and errors
about the environment answer without loading netlink code.
"""
from __future__ import annotations

from .. import skel


def _in_kernel_terms(verb: str, run):
    """A kernel refusal no call site named still leaves as a typed CNI error (EEXIST,
    ENODEV, ENOENT, EBUSY have codes of their own), never as a raw netlink tuple."""
    from .. import netlink
    with netlink.about(f"{verb}: the kernel refused a request"):
        return run()


def _add(args):
    from .add import add
    return _in_kernel_terms("ADD", lambda: add(args))


def _delete(args):
    from .delete import delete
    return _in_kernel_terms("DEL", lambda: delete(args))


def _check(args):
    from .check import check
    return _in_kernel_terms("CHECK", lambda: check(args))


def _status(args):
    from .status import status
    return _in_kernel_terms("STATUS", lambda: status(args))


def _gc(args):
    from .gc import gc
    return _in_kernel_terms("GC", lambda: gc(args))


VERBS = skel.Verbs(add=_add, delete=_delete, check=_check, status=_status, gc=_gc, about="podwire")


def main() -> int:
    return skel.main(VERBS)
