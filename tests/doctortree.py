"""A node's file tree for podwire-doctor: healthy as built, and each test breaks one thing.

Everything is written under a temporary root; the doctor reads it through --root (Node.root),
so nothing on the host is read for a verdict or changed."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from cri.doctor.node import Node

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CONFLIST = REPO / "packaging" / "cni" / "10-podwire.conflist"
RELEASE = "6.1.0-18-amd64"
GiB = 1 << 30


def statvfs(free: int = 500 * GiB, total: int = 1000 * GiB, files: int = 1_000_000,
            favail: int = 900_000) -> os.statvfs_result:
    """A filesystem with `free` of `total` bytes (4 KiB blocks) and `favail` of `files` inodes."""
    block = 4096
    return os.statvfs_result((block, block, total // block, free // block, free // block,
                              files, favail, favail, 0, 255))


class Tree:
    def __init__(self, root: Path):
        self.root = root

    def path(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    def write(self, node_path: str, text: str, mode: int = 0o644) -> Path:
        path = self.path(node_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def executable(self, node_path: str, stdout: str = "") -> Path:
        return self.write(node_path, f"#!/bin/sh\necho '{stdout}'\n", 0o755)

    def mkdir(self, node_path: str, mode: int = 0o755) -> Path:
        path = self.path(node_path)
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        return path

    def remove(self, node_path: str) -> None:
        path = self.path(node_path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def healthy(self) -> "Tree":
        """A Debian 12 node as `make install` leaves it, with a systemd kubelet config."""
        self.write("/proc/sys/kernel/osrelease", RELEASE + "\n")
        self.write("/proc/filesystems", "nodev\tsysfs\nnodev\tbpf\n\text4\n")
        self.write("/proc/self/mounts", "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime,mode=700 0 0\n")
        self.write("/sys/kernel/btf/vmlinux", "")
        self.mkdir(f"/lib/modules/{RELEASE}/build/include")
        self.write("/proc/modules", "".join(f"{m} 40960 0 - Live 0x0000000000000000\n"
                                            for m in ("vxlan", "veth", "bridge", "sch_ingress")))
        self.write("/sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n")
        self.write("/proc/1/comm", "systemd\n")
        self.write("/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\n"
                   "kind: KubeletConfiguration\ncgroupDriver: systemd\n")
        self.executable("/usr/sbin/runc", "runc version 1.1.5+ds1")
        self.executable("/usr/bin/conmon", "conmon version 2.1.6")
        self.write("/etc/cni/net.d/10-podwire.conflist", SHIPPED_CONFLIST.read_text())
        for plugin in ("podwire", "podwire-ipam", "portmap", "loopback"):
            self.executable(f"/opt/cni/bin/{plugin}")
        self.write("/proc/sys/net/ipv4/ip_forward", "1\n")
        self.write("/proc/sys/net/ipv6/conf/all/forwarding", "1\n")
        for conf, value in (("all", 0), ("default", 2), ("podwire0", 2)):
            self.write(f"/proc/sys/net/ipv4/conf/{conf}/rp_filter", f"{value}\n")
        self.write("/etc/group", "root:x:0:\n")
        self.mkdir("/run/podwire", 0o755)
        return self

    def node(self, **overrides) -> Node:
        def no_probe(features):
            raise AssertionError(f"a tree is not the running node; probed {list(features)}")
        settings = {"root": str(self.root), "statvfs": lambda path: statvfs(), "probe_links": no_probe}
        return Node(**{**settings, **overrides})


def by_check(findings) -> dict:
    """Findings by check id (the ids are unique within one family's findings)."""
    out = {}
    for finding in findings:
        assert finding.check not in out, f"two findings for {finding.check}"
        out[finding.check] = finding
    return out
