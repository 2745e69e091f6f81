"""Attach the programs to a host veth with a tc clsact qdisc (pyroute2).

from_pod goes on the clsact ingress hook (what the pod sends), to_pod on the
egress hook (what it receives).  Filters use a fixed priority and handle so a
re-attach (agent restart, program upgrade) is an atomic `replace`, never a
window without a program.
"""
from __future__ import annotations

import errno

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..errors import DatapathError, FailedPrecondition

PRIO, HANDLE = 1, 1
HOOKS = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
GONE = (errno.ENODEV, errno.ENOENT, errno.EINVAL)


def interface_index(name: str) -> int:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
    if not found:
        raise FailedPrecondition(f"interface {name!r} does not exist on this node")
    return found[0]


def attach(ifindex: int, programs: dict[str, tuple[int, str]]) -> None:
    """``programs``: hook ("ingress"/"egress") -> (prog fd, prog name)."""
    with IPRoute() as ipr:
        try:
            ipr.tc("add", "clsact", ifindex)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise DatapathError(f"clsact on ifindex {ifindex}: {exc}") from exc
        done = []
        try:
            for hook, (fd, name) in programs.items():
                ipr.tc("replace-filter", "bpf", ifindex, HANDLE, fd=fd, name=name, parent=HOOKS[hook],
                       classid=1, direct_action=True, prio=PRIO)
                done.append(hook)
        except NetlinkError as exc:
            for hook in done:
                _delete_filter(ipr, ifindex, hook)
            raise DatapathError(f"attaching BPF to ifindex {ifindex}: {exc}") from exc


def detach(ifindex: int) -> None:
    """Remove our filters (and clsact if nothing else uses it); a vanished link is fine."""
    with IPRoute() as ipr:
        for hook in HOOKS:
            _delete_filter(ipr, ifindex, hook)
        try:
            if not any(_filters(ipr, ifindex, hook) for hook in HOOKS):
                ipr.tc("del", "clsact", ifindex)
        except NetlinkError as exc:
            if exc.code not in GONE:
                raise DatapathError(f"removing clsact from ifindex {ifindex}: {exc}") from exc


def attached(ifindex: int) -> dict[str, str]:
    """hook -> name of the BPF program in our filter slot (empty if none)."""
    out = {}
    with IPRoute() as ipr:
        for hook in HOOKS:
            for msg in _filters(ipr, ifindex, hook):
                opts = msg.get_attr("TCA_OPTIONS")
                if opts is not None and msg.get("info") >> 16 == PRIO:
                    out[hook] = opts.get_attr("TCA_BPF_NAME") or ""
    return out


def _filters(ipr: IPRoute, ifindex: int, hook: str) -> list:
    try:
        return [f for f in ipr.get_filters(index=ifindex, parent=HOOKS[hook]) if f.get_attr("TCA_OPTIONS")]
    except NetlinkError as exc:
        if exc.code in GONE:
            return []
        raise


def _delete_filter(ipr: IPRoute, ifindex: int, hook: str) -> None:
    try:
        ipr.tc("del-filter", "bpf", ifindex, HANDLE, parent=HOOKS[hook], prio=PRIO)
    except NetlinkError as exc:
        if exc.code not in GONE:
            raise DatapathError(f"detaching BPF from ifindex {ifindex}: {exc}") from exc
