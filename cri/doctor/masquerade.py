"""Does the plugin masquerade traffic that podwire-cnid routes between nodes?

With `routing` on (host-gw or vxlan, cnid.toml), podwire-cnid masquerades only what leaves every
node's pod CIDRs.  A conflist that still says `ipMasq: true` (the single-node default) makes the
plugin masquerade everything leaving the local subnet, other nodes' pods included: they would see
the node's address instead of the pod's, and NetworkPolicy peers by pod address would not match."""
from __future__ import annotations

from .node import PODWIRE_PLUGIN, Node
from .report import Finding, ok, warning

CHECK = "cni.masquerade"


def check(node: Node) -> list[Finding]:
    routing = str(node.cnid_settings.get("routing", "none"))
    netlist = node.podwire_conflist
    if netlist is None:
        return []  # cni.config-order says so
    masq = [p for p in netlist.plugins if p.get("type") == PODWIRE_PLUGIN and p.get("ipMasq")]
    if routing == "none":
        return [ok(CHECK, "no routing between nodes (cnid.toml): the conflist's ipMasq decides masquerading "
                          f"({'on' if masq else 'off'})")]
    if masq:
        return [warning(CHECK, f"network {netlist.name!r} has ipMasq: true while podwire-cnid routes between "
                               f"nodes ({routing}): pods on other nodes would see this node's address, not the "
                               "pod's, and policies naming pod addresses would not match them",
                        "set \"ipMasq\": false in the podwire plugin's config; podwire-cnid masquerades "
                        "traffic leaving the cluster's pod CIDRs itself (cnid.toml masquerade)")]
    return [ok(CHECK, f"ipMasq off with routing {routing}: podwire-cnid masquerades only what leaves the "
                      "cluster's pod CIDRs")]
