"""The veth pair: host end in the host namespace, pod end named CNI_IFNAME in the pod."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os

from .. import netlink
from ..context import Context, LinkReaper
from ..errors import CniError, Code
from .naming import retired_name


@dataclasses.dataclass
class Pair:
    host_name: str
    host_index: int
    host_mac: str
    container_name: str
    container_index: int
    container_mac: str


def ensure_ifname_free(ns, netns_path: str, ifname: str) -> None:
    """The spec's ADD: 'error if the name exists' — checked before any side effect.
    ``ns``: an IPRoute in the pod's namespace (netlink.netns)."""
    if netlink.find_link(ns, ifname) is not None:
        raise CniError(Code.EXISTS, f"container interface {ifname!r} already exists",
                       f"in netns {netns_path}")


def remove_stale_host_end(ctx: Context, host_name: str) -> None:
    """A host veth with our deterministic name but no live pod end is a leftover of a
    crashed ADD for this very attachment: remove it so the name can be reused."""
    netlink.delete_host_link(ctx, host_name)


def create(ctx: Context, ns, netns_path: str, host_name: str, ifname: str, undo: contextlib.ExitStack, *,
           mtu: int, mac: str, alias: str, routed: bool, master: int = 0) -> Pair:
    """Create the pair in one netlink request: the peer is born inside the pod netns.
    Its delete goes on ``undo`` the moment the pair exists, before any later step can
    fail.  ``ns``: an IPRoute in that namespace; ``master``: the bridge to enslave the
    host end to (in the same request that names and raises it)."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer: dict[str, object] = {"ifname": ifname, "net_ns_fd": fd}
        if mtu:
            peer["mtu"] = mtu
        if mac:
            peer["address"] = mac
        spec: dict[str, object] = {"ifname": host_name, "kind": "veth", "peer": peer}
        if mtu:
            spec["mtu"] = mtu
        with netlink.host(ctx) as ipr:
            _add_pair(ctx, ipr, ns, spec, netns_path, ifname)
            undo.callback(delete_host_end, ctx, host_name)
            host = netlink.find_link(ipr, host_name)  # index and MAC in one request
            _host_end_ipv6(host_name, routed)
            with netlink.about(f"cannot bring up host veth {host_name!r}"):
                netlink.set_link(ipr, host["index"], up=True, alias=alias, master=master or None)
    finally:
        os.close(fd)
    pod = netlink.find_link(ns, ifname)
    return Pair(host_name, host["index"], host.get("IFLA_ADDRESS"), ifname, pod["index"], pod.get("IFLA_ADDRESS"))


def _add_pair(ctx: Context, ipr, ns, spec: dict, netns_path: str, ifname: str) -> None:
    """The create request; only when the kernel says EEXIST do we look at why -- no
    lookups on the common path.  CNI_IFNAME taken in the pod is the spec's error; our
    deterministic host name taken is a crashed ADD's leftover, deleted, then one retry."""
    host_name = str(spec["ifname"])
    what = f"cannot create veth {host_name!r} with pod end {ifname!r}"
    try:
        ipr.link("add", **spec)
        return
    except netlink.NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise netlink.kernel_error(exc, what, f"pod end in netns {netns_path}") from None
    ensure_ifname_free(ns, netns_path, ifname)
    remove_stale_host_end(ctx, host_name)
    with netlink.about(what, f"pod end in netns {netns_path}"):
        ipr.link("add", **spec)


def _host_end_ipv6(name: str, routed: bool) -> None:
    """Before the link goes up, which is when the kernel makes its link-local address.

    Routed: no DAD -- a tentative link-local cannot send neighbour solicitations,
    which would stall the pod's IPv6 for a second or more.  Bridge: no link-local
    at all (addr_gen_mode 1 = none) -- a bridge port needs no address of its own,
    and deleting a link with a valid IPv6 address costs the kernel 15-20 ms more."""
    setting = ("accept_dad", "0") if routed else ("addr_gen_mode", "1")
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/{setting[0]}", "w") as f:
            f.write(setting[1])
    except FileNotFoundError:
        pass  # IPv6 disabled on this host


def delete_host_end(ctx: Context, host_name: str) -> bool:
    """Deleting one end of a veth deletes both; a missing link is success (DEL is idempotent)."""
    return netlink.delete_host_link(ctx, host_name)


def remove(ctx: Context, netns_path: str, host_name: str, ifname: str) -> None:
    """DEL's link step: the pair goes, at once or (podwire-cnid) retired for its reaper."""
    if ctx.link_reaper is not None and _retire(ctx, ctx.link_reaper, netns_path, host_name, ifname):
        return
    if delete_host_end(ctx, host_name):
        return  # the pod end went with it
    if netlink.netns_exists(netns_path):
        # No host end (e.g. the host side was cleaned by hand): remove the pod end if it
        # is still there, so a later ADD with the same ifname succeeds.
        with netlink.netns(ctx, netns_path) as ns:
            netlink.delete_link(ns, ifname)


def _retire(ctx: Context, reaper: LinkReaper, netns_path: str, host_name: str, ifname: str) -> bool:
    """Cut the pod off and free both names now; leave the deletion to the reaper.

    The kernel needs 15-20 ms of RCU waits to delete a veth, which DEL need not wait
    for.  Each step leaves a state every later verb handles: (1) the pod end, renamed
    and down: the pod has no network and CNI_IFNAME is free in its netns (its IPv4
    address stays on a down link, without routes; IPv6 ones go with the down); (2) the
    host end, renamed and out of the bridge (without carrier, its peer being down): the
    deterministic name is free for a re-ADD of this attachment; (3) the reaper deletes the reserved name later, and a
    daemon (re)start or GC deletes whatever carries the prefix.  Interrupted after (1),
    a re-ADD deletes the stale host end in line, a repeated DEL retires it.  False:
    no host end to retire (the standalone steps handle what may be left)."""
    with netlink.host(ctx) as ipr:
        host = netlink.find_link(ipr, host_name)
    if host is None:
        return False
    name = retired_name()
    if netlink.netns_exists(netns_path):
        with netlink.netns(ctx, netns_path) as ns:
            pod = netlink.find_link(ns, ifname)
            # Only our own pod end: its index is the host end's peer (IFLA_LINK).
            if pod is not None and pod["index"] == host.get("IFLA_LINK"):
                with netlink.about(f"cannot retire pod interface {ifname!r}", f"in netns {netns_path}"):
                    _rename(ns, pod["index"], name, up=False)
    with netlink.host(ctx) as ipr, netlink.about(f"cannot retire host veth {host_name!r}"):
        try:
            # Not down: the pod end is, so this end has no carrier and carries nothing;
            # downing it costs the kernel another ~3 ms (qdisc deactivation, RCU wait).
            _rename(ipr, host["index"], name, master=0)
        except netlink.NetlinkError as exc:
            if exc.code in netlink.GONE:
                return True  # the netns went and took the pair with it
            raise
    reaper.defer(name)
    return True


def _rename(ipr, index: int, name: str, **changes) -> None:
    """Rename a link and apply ``changes`` in one request where the kernel allows renaming a
    link that is up (6.2 and later); before that it answers EBUSY, so the link goes down first
    and is renamed in a second request."""
    try:
        netlink.set_link(ipr, index, ifname=name, **changes)
    except netlink.NetlinkError as exc:
        if exc.code != errno.EBUSY:
            raise
        netlink.set_link(ipr, index, **{**changes, "up": False})
        netlink.set_link(ipr, index, ifname=name)
