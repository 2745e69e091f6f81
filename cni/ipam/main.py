"""The ``podwire-ipam`` executable, and the verbs podwire's main plugin calls
in process (``VERBS.add(args)`` etc.).  Standard library only."""
from __future__ import annotations

from .. import skel
from .add import cmd_add
from .check import cmd_check
from .delete import cmd_del
from .gc import cmd_gc
from .status import cmd_status

VERBS = skel.Verbs(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status,
                   gc=cmd_gc, about="podwire-ipam")


def main() -> int:
    return skel.main(VERBS)
