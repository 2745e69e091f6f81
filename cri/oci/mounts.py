"""OCI mounts: containerd's defaults, the pod's files (/etc/hosts, resolv.conf, hostname,
/dev/shm) and the CRI mounts (bind, readonly, propagation, recursive read-only).

Host paths are the node's: symlinks in them are resolved on the host (os.path.realpath) and a
missing host path is created as a directory, as containerd does for hostPath volumes.  The
container side needs nothing here: runc resolves mount targets inside the rootfs (securejoin).
"""
from __future__ import annotations

import logging
import os
import posixpath
from typing import Any, Iterable, Mapping

from cri.errors import invalid

PRIVATE, HOST_TO_CONTAINER, BIDIRECTIONAL = 0, 1, 2  # runtime.v1 MountPropagation

log = logging.getLogger(__name__)
_PROPAGATION = {PRIVATE: "rprivate", HOST_TO_CONTAINER: "rslave", BIDIRECTIONAL: "rshared"}


def default_mounts(privileged: bool) -> list[dict[str, Any]]:
    """containerd's populateDefaultUnixSpec mounts minus /run (CRI's WithoutRunMount), plus the
    cgroup filesystem; sysfs and cgroup are writable only for privileged containers."""
    ro = [] if privileged else ["ro"]
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts",
               ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        _mount("/dev/shm", "tmpfs", "shm",
               ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *ro]),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup",
               ["nosuid", "noexec", "nodev", "relatime", *ro]),
    ]


def _mount(dest: str, kind: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": options}


def bind(dest: str, source: str, readonly: bool, propagation: str = "rprivate",
         extra: Iterable[str] = ()) -> dict[str, Any]:
    return _mount(dest, "bind", source, ["rbind", propagation, "ro" if readonly else "rw", *extra])


def pod_file_mounts(pod, readonly_rootfs: bool, ipc_host: bool) -> list[dict[str, Any]]:
    """The sandbox's hosts/resolv.conf/hostname (read-only along with a read-only rootfs, as in
    containerd) and its /dev/shm (the host's with a host IPC namespace)."""
    out = []
    for dest, source in (("/etc/hosts", pod.hosts_path), ("/etc/resolv.conf", pod.resolv_conf_path),
                         ("/etc/hostname", pod.hostname_path)):
        if source:
            out.append(bind(dest, source, readonly_rootfs))
    shm = "/dev/shm" if ipc_host else pod.shm_path
    if shm:
        out.append(bind("/dev/shm", shm, False, extra=("nosuid", "nodev", "noexec")))
    return out


def cri_mounts(mounts, mountinfo: str = "/proc/self/mountinfo",
               image_sources: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """OCI mounts for the CRI Mount list, and the rootfs propagation they need ("" = default).
    `image_sources`: container path -> the host path of each image volume, already mounted
    read-only (cri/oci/imagevolume.py)."""
    out, rootfs_propagation = [], ""
    for m in mounts:
        _check_supported(m)
        # A relative container path is under the root, as runc resolves it (and containerd and
        # CRI-O pass it through); absolute here, so the merge with the defaults sees it.
        dest = posixpath.normpath(posixpath.join("/", m.container_path))
        if is_image_volume(m):
            source = (image_sources or {}).get(m.container_path)
            if source is None:
                raise invalid(f"mount {m.container_path}: image volume was not prepared")
            # Never noexec: binaries shipped in an image volume are meant to run (critest).
            out.append(bind(dest, source, True))
            continue
        source = resolve_host_path(m.host_path)
        propagation = _PROPAGATION.get(m.propagation)
        if propagation is None:
            # containerd and CRI-O warn and mount rprivate: the most isolated mode, so a value
            # from a newer API weakens nothing.
            log.warning("mount %s: unknown propagation %s; using rprivate", m.container_path, m.propagation)
            propagation = "rprivate"
        if m.propagation == BIDIRECTIONAL:
            _require_peer(source, mountinfo, ("shared:",), m.container_path)
            rootfs_propagation = "rshared"
        elif m.propagation == HOST_TO_CONTAINER:
            _require_peer(source, mountinfo, ("shared:", "master:"), m.container_path)
            rootfs_propagation = rootfs_propagation or "rslave"
        extra = ["rro"] if m.recursive_read_only else []
        out.append(bind(dest, source, m.readonly, propagation, extra))
    return out, rootfs_propagation


def is_image_volume(m) -> bool:
    return m.HasField("image") and bool(m.image.image)


def _check_supported(m) -> None:
    # Kept: CRI-O refuses an empty container path; there is nowhere to mount it.  (A relative
    # one is taken, as containerd and CRI-O take it: runc mounts it under the root.)
    if not m.container_path:
        raise invalid("mount with an empty container path")
    # Kept: id-mapped mounts need user namespaces, which podwire does not implement; mounting
    # without the mapping would give the files the wrong owners.
    if len(m.uidMappings) or len(m.gidMappings):
        raise invalid(f"mount {m.container_path}: id-mapped mounts are not supported")
    if m.recursive_read_only and not (m.readonly and m.propagation == PRIVATE):
        raise invalid(f"mount {m.container_path}: recursive read-only needs readonly and "
                      "private propagation")
    if not m.host_path and not is_image_volume(m):
        raise invalid(f"mount {m.container_path}: empty host path")


def resolve_host_path(path: str) -> str:
    """realpath of a host path, creating it (0755 directory) first if it is missing."""
    # Kept: a relative host path would resolve against the shim's working directory.
    if not os.path.isabs(path):
        raise invalid(f"mount host path {path!r} must be absolute")
    if not os.path.lexists(path):
        os.makedirs(path, mode=0o755, exist_ok=True)
    return os.path.realpath(path)


def _require_peer(path: str, mountinfo: str, tags: tuple[str, ...], dest: str) -> None:
    """runc can only propagate from a mount that is shared (or a slave): check the host mount
    that contains `path`, as containerd's ensureShared/ensureSharedOrSlave do."""
    best, optional = "", ""
    with open(mountinfo) as f:
        for line in f:
            fields = line.split(" - ")[0].split()
            point = fields[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, optional = point, " ".join(fields[6:])
    if not any(t in optional for t in tags):
        raise invalid(f"mount {dest}: host path {path} is on mount {best}, which is not "
                      f"{' or '.join(t.rstrip(':') for t in tags)}")


def merge(defaults: list[dict[str, Any]], overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Later lists win per destination; parents before children so none is shadowed (containerd
    sorts CRI mounts by path depth)."""
    by_dest: dict[str, dict[str, Any]] = {}
    for m in [*defaults, *overrides]:
        by_dest[os.path.normpath(m["destination"])] = m
    ordered = sorted(by_dest.items(), key=lambda kv: kv[0].rstrip("/").count("/"))
    return [m for _, m in ordered]
