"""podwire's inter-node routes: tagged with their own route protocol, reconciled whole.

The tag is what makes a crash harmless: after a kill -9 the next run finds every route
it (or any earlier run, in any mode) installed by ``proto`` alone, with no state file to
lose or trust, and removes those no longer wanted.  112 is unassigned in iproute2's
rt_protos; ``ip route show proto 112`` lists exactly podwire's.
"""
from __future__ import annotations

import socket
from typing import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ...netlink import GONE
from .model import Route, RoutingError

RTPROT_PODWIRE = 112
RTNH_F_ONLINK = 4
MAIN_TABLE = 254


def installed(ipr: IPRoute) -> dict[Route, dict]:
    """Our routes in the main table, keyed as :class:`Route`; values: what deletes them."""
    out = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.route("dump", family=family):
            if msg["proto"] != RTPROT_PODWIRE or msg.get("table") != MAIN_TABLE:
                continue
            route = Route(f"{msg.get('dst')}/{msg['dst_len']}", msg.get("gateway") or "",
                          bool(msg["flags"] & RTNH_F_ONLINK))
            out[route] = {"family": family, "dst": msg.get("dst"), "dst_len": msg["dst_len"],
                          "gateway": msg.get("gateway"), "oif": msg.get("oif"), "table": MAIN_TABLE,
                          "proto": RTPROT_PODWIRE}
    return out


def reconcile(ipr: IPRoute, want: Iterable[Route], overlay_index: int = 0) -> tuple[int, int]:
    """Make our routes exactly ``want``; (added, removed).  Onlink routes go through
    ``overlay_index``.  Stale ones go first: a route whose gateway changed is then
    replaced, never removed after its replacement."""
    want = set(want)
    have = installed(ipr)
    removed = 0
    for route, spec in have.items():
        if route not in want:
            try:
                ipr.route("del", **spec)
                removed += 1
            except NetlinkError as exc:
                if exc.code not in GONE:  # gone already: what we wanted
                    raise RoutingError(f"cannot remove route {route.dst} via {route.gateway}: {exc}") from None
    added, failed = 0, []
    for route in sorted(want - set(have), key=lambda r: r.dst):
        spec = {"dst": route.dst, "gateway": route.gateway, "proto": RTPROT_PODWIRE, "table": MAIN_TABLE}
        if route.onlink:
            spec.update(oif=overlay_index, flags=RTNH_F_ONLINK)
        try:
            ipr.route("replace", **spec)
            added += 1
        except NetlinkError as exc:
            # e.g. ENETUNREACH: a host-gw gateway on none of our links (the nodes share no L2
            # segment: vxlan's case).  The other nodes' routes still go in.
            failed.append(f"{route.dst} via {route.gateway}: {exc.args[-1] if exc.args else exc}")
    if failed:
        raise RoutingError(f"cannot add route {'; '.join(failed)}")
    return added, removed
