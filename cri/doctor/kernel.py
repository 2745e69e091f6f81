"""Kernel checks: the release floor, bpffs, BTF, headers for bcc, and the link kinds and qdisc
podwire creates (asked of the kernel itself, linkprobe.py)."""
from __future__ import annotations

import re
from typing import Optional

from . import linkprobe
from .node import Node
from .report import Finding, blocker, ok, unchecked, warning

# podwire-netpol's floor: its drop events use a BPF ring buffer (5.8); README "Requirements".
MIN_RELEASE = (5, 8)
BPFFS = "/sys/fs/bpf"
BTF = "/sys/kernel/btf/vmlinux"
KHEADERS = "/sys/kernel/kheaders.tar.xz"      # CONFIG_IKHEADERS: bcc's fallback for headers

# Which component needs each kind, and whether it is a blocker without it.
LINK_KINDS = {
    "veth": (True, "every pod's interface is one end of a veth pair (CONFIG_VETH)"),
    "bridge": (True, "bridge mode, the default conflist's, puts pods on a bridge (CONFIG_BRIDGE)"),
    "vxlan": (False, "only the VXLAN overlay between nodes needs it; host-gw routes do not (CONFIG_VXLAN)"),
    "clsact": (True, "podwire-netpol attaches its programs to clsact hooks (CONFIG_NET_SCH_INGRESS)"),
}


def check(node: Node) -> list[Finding]:
    release = node.read("/proc/sys/kernel/osrelease")
    return [_release(release), _bpffs(node), _btf(node), _headers(node, release), *_link_kinds(node)]


def _release(release: Optional[str]) -> Finding:
    match = re.match(r"(\d+)\.(\d+)", release or "")
    if not match:
        return unchecked("kernel.release", f"cannot read the kernel release ({release!r})")
    version = (int(match[1]), int(match[2]))
    if version < MIN_RELEASE:
        floor = ".".join(map(str, MIN_RELEASE))
        return blocker("kernel.release", f"Linux {release} is older than {floor}",
                       f"boot a kernel >= {floor}: podwire-netpol's drop events need the BPF ring buffer")
    return ok("kernel.release", f"Linux {release}")


def _mounted_at(node: Node, mountpoint: str) -> Optional[str]:
    """The filesystem type mounted at `mountpoint` (the top one), None when nothing is."""
    fstype = None
    for line in (node.read("/proc/self/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == mountpoint:
            fstype = fields[2]
    return fstype


def _bpffs(node: Node) -> Finding:
    fstype = _mounted_at(node, BPFFS)
    if fstype == "bpf":
        return ok("kernel.bpffs", f"bpffs mounted at {BPFFS}")
    if fstype is not None:
        return blocker("kernel.bpffs", f"{BPFFS} is a {fstype} mount, not bpffs: podwire-netpol cannot pin its maps",
                       f"unmount it and mount bpffs there: mount -t bpf bpf {BPFFS}")
    filesystems = node.read("/proc/filesystems")
    if filesystems is not None and not re.search(r"\bbpf$", filesystems, re.M):
        return blocker("kernel.bpffs", "the kernel has no bpf filesystem (CONFIG_BPF_SYSCALL)",
                       "boot a kernel built with CONFIG_BPF_SYSCALL=y")
    # The agent mounts it itself when it starts, so this works, but only the agent's start
    # makes the pins reachable, and a mount made in a private mount namespace is lost.
    return warning("kernel.bpffs", f"bpffs is not mounted at {BPFFS} (podwire-netpol mounts it when it starts)",
                   f"mount it at boot: add 'bpf {BPFFS} bpf defaults 0 0' to /etc/fstab, "
                   f"then mount {BPFFS}")


def _btf(node: Node) -> Finding:
    if node.exists(BTF):
        return ok("kernel.btf", f"BTF at {BTF}")
    return ok("kernel.btf", f"no BTF ({BTF}); podwire does not need it: bcc compiles against the kernel headers")


def _headers(node: Node, release: Optional[str]) -> Finding:
    if not release:
        return unchecked("kernel.headers", "cannot read the kernel release to find its headers")
    build = f"/lib/modules/{release}/build"
    if node.exists(build) and node.exists(build + "/include"):
        return ok("kernel.headers", f"kernel headers at {build}")
    if node.exists(KHEADERS):
        return ok("kernel.headers", f"kernel headers in {KHEADERS}")
    return blocker("kernel.headers", f"no kernel headers for {release} ({build}): podwire-netpol cannot "
                   "compile its programs",
                   f"apt-get install linux-headers-{release} (make setup links Debian's for a custom kernel)")


def _loaded_modules(node: Node) -> set[str]:
    return {line.split()[0] for line in (node.read("/proc/modules") or "").splitlines() if line.strip()}


def _link_kinds(node: Node) -> list[Finding]:
    loaded = _loaded_modules(node)
    known = {kind for kind in LINK_KINDS if linkprobe.MODULES[kind] in loaded}
    findings = {kind: ok(f"kernel.{kind}", f"offered (module {linkprobe.MODULES[kind]} loaded)") for kind in known}
    to_probe = [kind for kind in LINK_KINDS if kind not in known]
    if to_probe and not node.is_live:
        for kind in to_probe:
            findings[kind] = unchecked(f"kernel.{kind}", f"not probed: {node.root} is not the running node")
    elif to_probe:
        for kind, result in node.probe_links(to_probe).items():
            findings[kind] = _link_kind(kind, result, _required(node, kind))
    return [findings[kind] for kind in LINK_KINDS]


def _required(node: Node, kind: str) -> bool:
    """Routed mode makes no bridge: without one, only a switch to bridge mode would break."""
    netlist = node.podwire_conflist
    routed = netlist is not None and any(p.get("type") == "podwire" and p.get("mode") == "routed"
                                         for p in netlist.plugins)
    return LINK_KINDS[kind][0] and not (kind == "bridge" and routed)


def _link_kind(kind: str, result: linkprobe.Probe, required: bool) -> Finding:
    check = f"kernel.{kind}"
    if result.offered is None:
        return unchecked(check, f"could not probe: {result.detail}")
    if result.offered:
        return ok(check, "offered (made one in a throwaway network namespace)")
    why = LINK_KINDS[kind][1]
    summary = f"the kernel refused to make one ({result.detail}); {why}"
    fix = f"load its module (modprobe {linkprobe.MODULES[kind]}) or boot a kernel that has it"
    return blocker(check, summary, fix) if required else warning(check, summary, fix)
