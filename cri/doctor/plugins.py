"""Are the plugins podwire's conflist chains where containerd and CRI-O look for them?

Both look in one bin_dir, /opt/cni/bin by default, and both run `loopback` for every pod.
Debian's containernetworking-plugins installs the reference plugins in /usr/lib/cni, which
podwire-cri searches too (cri.toml cni_bin_dirs) but those runtimes do not: make install links
them into /opt/cni/bin, and this check reports a node where that is (still) missing."""
from __future__ import annotations

import os

from .node import Node
from .report import Finding, blocker, ok

CHECK = "cni.plugins"
EXECUTABLES_CHECK = "cni.executables"
# The plugin types of packaging/cni/10-podwire.conflist (a unit test keeps the two in sync), for
# a node without podwire's conflist yet.
DEFAULT_CHAIN = ("podwire", "podwire-ipam", "portmap")
ALWAYS_RUN = ("loopback",)            # containerd and CRI-O bring up each pod's lo with it
PODWIRE_EXECUTABLES = ("podwire", "podwire-ipam")


def needed(node: Node) -> list[str]:
    """Every plugin type the conflist execs (main, chained and IPAM plugins), then loopback."""
    netlist = node.podwire_conflist
    if netlist is None:
        types = list(DEFAULT_CHAIN)
    else:
        types = []
        for plugin in netlist.plugins:
            types.append(plugin.get("type", ""))
            ipam = plugin.get("ipam")
            if isinstance(ipam, dict) and ipam.get("type"):
                types.append(ipam["type"])
    return list(dict.fromkeys(t for t in [*types, *ALWAYS_RUN] if t))


def _executable(node: Node, directory: str, name: str) -> bool:
    path = node.path(os.path.join(directory, name))
    return os.path.isfile(path) and os.access(path, os.X_OK)


def check(node: Node) -> list[Finding]:
    bin_dir, distro_dir = node.runtime_cni_bin_dir, node.distro_cni_bin_dir
    wanted = needed(node)
    ours = [name for name in wanted if name in PODWIRE_EXECUTABLES]
    others = [name for name in wanted if name not in PODWIRE_EXECUTABLES]
    return [_executables(node, ours, bin_dir), _reference_plugins(node, others, bin_dir, distro_dir)]


def _executables(node: Node, names: list[str], bin_dir: str) -> Finding:
    missing = [name for name in names if not _executable(node, bin_dir, name)]
    if missing:
        return blocker(EXECUTABLES_CHECK, f"{', '.join(missing)} not in {bin_dir}",
                       "make install (it writes them there)")
    return ok(EXECUTABLES_CHECK, f"{', '.join(names)} in {bin_dir}")


def _reference_plugins(node: Node, names: list[str], bin_dir: str, distro_dir: str) -> Finding:
    missing = [name for name in names if not _executable(node, bin_dir, name)]
    linkable = [name for name in missing if _executable(node, distro_dir, name)]
    absent = [name for name in missing if name not in linkable]
    problems, fixes = [], []
    if linkable:
        problems.append(f"{', '.join(linkable)} only in {distro_dir}: containerd and CRI-O look in {bin_dir} alone")
        fixes.append(f"link them: for p in {' '.join(linkable)}; do ln -s {distro_dir}/$p {bin_dir}/$p; done "
                     "(make install does), or add the directory to the runtime's bin_dir")
    if absent:
        problems.append(f"{', '.join(absent)} neither in {bin_dir} nor in {distro_dir}")
        fixes.append("apt-get install containernetworking-plugins (then make install links them)")
    if problems:
        return blocker(CHECK, "; ".join(problems), "; ".join(fixes))
    return ok(CHECK, f"{', '.join(names)} in {bin_dir}")
