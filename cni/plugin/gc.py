"""GC (spec 1.1): remove every attachment of this network not in cni.dev/valid-attachments.

Host veths are found by their ifalias (network/containerID/ifname), firewall
rules by their network-scoped comment; IPAM gets the same GC.  GC continues
past errors, as the spec asks, and reports the first one at the end.
"""
from __future__ import annotations

from .. import netlink
from ..context import Context
from ..errors import invalid_config
from ..skel import CmdArgs
from . import config, firewall, ipam
from .naming import attachment_key, is_retired, parse_alias


def valid_attachments(conf: dict) -> set[tuple[str, str]]:
    items = conf.get("cni.dev/valid-attachments", conf.get("cni.dev/attachments"))
    if items is None:
        return set()
    if not isinstance(items, list):
        raise invalid_config("cni.dev/valid-attachments must be a list")
    try:
        return {(a["containerID"], a["ifname"]) for a in items}
    except (TypeError, KeyError):
        raise invalid_config("each valid attachment needs containerID and ifname") from None


def gc(args: CmdArgs) -> None:
    conf = config.parse(args.config, args.args)
    valid = valid_attachments(args.config)
    errors: list[Exception] = []
    for step in (lambda: remove_stale_links(args.context, conf.name, valid),
                 lambda: firewall.gc(conf.name, {attachment_key(conf.name, c, i) for c, i in valid}),
                 lambda: ipam.run("GC", args)):
        try:
            step()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def remove_stale_links(ctx: Context, network: str, valid: set[tuple[str, str]]) -> None:
    """Delete this network's host veths whose attachment is not in ``valid``, and every
    retired veth (a DEL finished with it; its deletion was pending when a daemon died)."""
    with netlink.host(ctx) as ipr:
        for link in ipr.link("dump"):
            name = link.get("IFLA_IFNAME") or ""
            owner = parse_alias(link.get("IFLA_IFALIAS") or "")
            if is_retired(name) or (owner and owner[0] == network and owner[1:] not in valid):
                netlink.delete_link(ipr, name)
