"""podwire-doctor: check this node before podwire serves it.

Prints one line per check, problems first, each with how to fix it.  Exit status: 0 when
nothing blocks podwire (warnings allowed), 1 when something does, 3 when only warnings were
found and --strict was given, 2 on bad usage.  -o json prints the same report as data.
Every path is a node path; --root puts them all under a directory (a mounted image, a test
tree), and then the link kinds, which only the running kernel can answer, are not probed."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional

from .. import config as cri_config
from . import (cgroups, cniconf, diskspace, kernel, masquerade, node as node_mod, plugins, report, runtimes, sockets,
               sysctls)
from .node import Node

# In the order the report lists them within a status.
FAMILIES: tuple[tuple[str, Callable[[Node], list[report.Finding]]], ...] = (
    ("kernel", kernel.check), ("cgroup", cgroups.check), ("runtime", runtimes.check),
    ("cni", cniconf.check), ("cni", plugins.check), ("cni", masquerade.check), ("socket", sockets.check),
    ("sysctl", sysctls.check), ("disk", diskspace.check),
)


def run_checks(node: Node) -> list[report.Finding]:
    """Every family's findings; a check that breaks is reported, not fatal to the others."""
    findings: list[report.Finding] = []
    for family, check in FAMILIES:
        try:
            findings += check(node)
        except Exception as exc:  # a bug or an unforeseen node: say so and go on
            findings.append(report.unchecked(f"{family}.{check.__module__.rsplit('.', 1)[-1]}",
                                             f"the check failed: {type(exc).__name__}: {exc}"))
    return findings


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="podwire-doctor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text")
    parser.add_argument("--strict", action="store_true", help="warnings fail too (exit 3)")
    parser.add_argument("--root", default="/", help="the node's file tree (default /)")
    parser.add_argument("--cri-config", default=cri_config.DEFAULT_PATH, help="podwire-cri's config")
    parser.add_argument("--cnid-config", default=node_mod.CNID_CONFIG, help="podwire-cnid's config")
    parser.add_argument("--kubelet-config", default=node_mod.KUBELET_CONFIG,
                        help="the kubelet's KubeletConfiguration (cgroupDriver)")
    parser.add_argument("--cni-conf-dir", default="", help="default: cri.toml's cni_conf_dir")
    parser.add_argument("--cni-bin-dir", default=node_mod.RUNTIME_CNI_BIN_DIR,
                        help="where the runtimes look for plugins")
    parser.add_argument("--distro-cni-bin-dir", default=node_mod.DISTRO_CNI_BIN_DIR,
                        help="where the distribution puts the reference plugins")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None, out=None) -> int:
    opts = parse_args(argv)
    out = out or sys.stdout
    node = Node(root=opts.root, cri_config=opts.cri_config, cnid_config=opts.cnid_config,
                kubelet_config=opts.kubelet_config, cni_conf_dir=opts.cni_conf_dir,
                runtime_cni_bin_dir=opts.cni_bin_dir, distro_cni_bin_dir=opts.distro_cni_bin_dir)
    findings = run_checks(node)
    if opts.output == "json":
        report.write_json(findings, opts.root, out, opts.strict)
    else:
        report.write_text(findings, out)
    return report.exit_code(findings, opts.strict)


if __name__ == "__main__":
    sys.exit(main())
