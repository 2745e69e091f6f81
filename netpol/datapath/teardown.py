"""Remove the datapath from a node (`podwire-netpol teardown`, run by `make uninstall`).

Stopping the agent deliberately leaves enforcement in place; uninstalling must
not, or the programs would keep filtering pods forever.  Our filters are found
by their fixed priority and program names, so other tc users are untouched.
The netfilter links of the post-DNAT check are pinned with the maps (nfhook.py):
unpinning releases them.
"""
from __future__ import annotations

from pyroute2 import IPRoute

from . import tc
from .loader import PROGRAMS, remove_pins


def teardown(pin_dir: str, only: set[str] | None = None) -> list[str]:
    """Detach from every interface (or those named in ``only``), then unpin."""
    done = []
    with IPRoute() as ipr:
        links = [(link["index"], link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()]
    for index, name in links:
        if only is not None and name not in only:
            continue
        if set(tc.attached(index).values()) & set(PROGRAMS):
            tc.detach(index)
            done.append(f"detached from {name}")
    remove_pins(pin_dir)
    done.append(f"removed {pin_dir}")
    return done
