"""Device nodes (linux.devices) and the devices-cgroup rules (linux.resources.devices)."""
from __future__ import annotations

import os
import stat
from typing import Any

from cri.errors import invalid

# containerd's HostDevices() skips these /dev subtrees for privileged containers.
_SKIP = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


def device_node(host_path: str, container_path: str) -> dict[str, Any] | None:
    """The OCI device for a host char/block device node, None for anything else."""
    try:
        st = os.stat(host_path)
    except FileNotFoundError:
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def _walk(host_dir: str, container_dir: str) -> list[dict[str, Any]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(host_dir):
        dirnames[:] = [d for d in dirnames if d not in _SKIP]
        for name in sorted(filenames):
            host = os.path.join(dirpath, name)
            if os.path.islink(host):
                continue
            node = device_node(host, os.path.join(container_dir, os.path.relpath(host, host_dir)))
            if node:
                out.append(node)
    return out


def host_devices() -> list[dict[str, Any]]:
    """Every device of the host, for privileged containers (not /dev/console: runc owns it)."""
    return [d for d in _walk("/dev", "/dev") if d["path"] != "/dev/console"]


def devices(cri_devices, privileged: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(linux.devices, linux.resources.devices) for the CRI Device list.

    A host path that is a directory brings every device below it (containerd does the same)."""
    if privileged:
        return host_devices(), [dict(ALLOW_ALL)]
    nodes, rules = [], [dict(DENY_ALL)]
    for d in cri_devices:
        perms = d.permissions or "rwm"
        # Kept: containerd and CRI-O pass other letters to runc, which then fails the create
        # ("unknown device access"); refused here with the field named instead.
        if not set(perms) <= set("rwm"):
            raise invalid(f"device {d.host_path}: bad permissions {perms!r}")
        host = os.path.realpath(d.host_path)
        if os.path.isdir(host):
            # A directory with no device nodes below it adds nothing, as in containerd and CRI-O.
            found = _walk(host, d.container_path)
        else:
            found = [n for n in [device_node(host, d.container_path)] if n]
            # Kept: containerd refuses a path that is not a device node; runc could not make it.
            if not found:
                raise invalid(f"device {d.host_path} is not a device node")
        for node in found:
            nodes.append(node)
            rules.append({"allow": True, "type": node["type"], "major": node["major"],
                          "minor": node["minor"], "access": perms})
    return nodes, rules
