"""Is podwire's network the one runtimes pick?  containerd and CRI-O take the first valid config
in lexical order of the conf dir (libcni's ConfFiles); podwire-cri does the same unless
cri.toml's cni_network names a network."""
from __future__ import annotations

import os

from .node import Node
from .report import Finding, blocker, ok, warning

CHECK = "cni.config-order"


def check(node: Node) -> list[Finding]:
    conf_dir = node.conf_dir
    entry = node.podwire_entry
    if entry is None:
        return [blocker(CHECK, f"no config in {conf_dir} chains the podwire plugin",
                        f"make install writes {conf_dir}/10-podwire.conflist")]
    ours_path, podwire = entry
    ours = os.path.basename(ours_path)
    before = [(path, netlist, why) for path, netlist, why in node.conflists
              if os.path.basename(path) < ours]
    competing = [f"{path} (network {netlist.name!r})" for path, netlist, _ in before if netlist]
    invalid = [f"{path} ({why})" for path, netlist, why in before if netlist is None]
    rename = f"remove or rename it, or rename {ours} to sort first (e.g. 05-podwire.conflist)"
    if competing:
        summary = f"{', '.join(competing)} sorts before {ours}: runtimes take the first valid config"
        if node.cri_or_default.cni_network == podwire.name:
            return [warning(CHECK, summary + f"; podwire-cri picks {podwire.name!r} by name (cni_network), "
                            "containerd and CRI-O would not", rename)]
        return [blocker(CHECK, summary + f", so pods would not get network {podwire.name!r}", rename)]
    if invalid:
        return [warning(CHECK, f"{', '.join(invalid)} sorts before {ours} and is not a valid config: "
                        "libcni skips it, a runtime that stops at it would not reach podwire's", rename)]
    return [ok(CHECK, f"{ours_path} (network {podwire.name!r}) is the first config in {conf_dir}")]
