"""The two cgroup drivers: where a container's cgroup goes, and the names systemd gives it.

cgroupfs: runc makes the directories itself; a cgroupsPath is a path such as
/kubepods/burstable/pod<uid>/<id>, the same under every hierarchy.

systemd (runc --systemd-cgroup): runc asks systemd for a transient scope.  Its cgroupsPath is
"slice:prefix:name" and the unit is <prefix>-<name>.scope inside <slice> (runc
libcontainer/specconv).  podwire's prefix is "cri-podwire", after containerd's "cri-containerd"
and CRI-O's "crio".  systemd nests slices by the dashes in their names, so the scope's directory
is the slice's expansion (kubepods-burstable-pod1.slice -> /kubepods.slice/
kubepods-burstable.slice/kubepods-burstable-pod1.slice) joined with the unit name; the kubelet
sends a pod's parent in that expanded form.

Everything here is pure (strings in, strings or ValueError out): callers turn a ValueError into
their own error (INVALID_ARGUMENT for a request, ConfigError for cri.toml).
"""
from __future__ import annotations

import posixpath

SYSTEMD = "systemd"
CGROUPFS = "cgroupfs"
DRIVERS = (SYSTEMD, CGROUPFS)
SCOPE_PREFIX = "cri-podwire"
SLICE_SUFFIX = ".slice"
DEFAULT_CGROUPFS_PARENT = "/podwire"
# Pods that come without a cgroup_parent (crictl, critest without RuntimeConfig): one slice for
# all of them.  Not a slice per pod as /podwire/<pod> is with cgroupfs: systemd owns slices, and
# removing one means stopping the unit, which would kill a container racing into it.
DEFAULT_SYSTEMD_PARENT = "podwire.slice"
# runc's slice for a systemd cgroupsPath whose slice part is empty.
RUNC_DEFAULT_SLICE = "system.slice"
# Where the scopes of conmon and of PID-namespace holders go (CRI-O's monitor_cgroup default).
MONITOR_SLICE = "system.slice"


def default_parent(driver: str) -> str:
    return DEFAULT_SYSTEMD_PARENT if driver == SYSTEMD else DEFAULT_CGROUPFS_PARENT


def expand_slice(name: str) -> str:
    """The cgroup path systemd gives the slice unit `name`, as runc's ExpandSlice computes it:
    "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice", "-.slice" (the root slice) -> "/".
    ValueError for what systemd would not accept as a slice name."""
    if not name.endswith(SLICE_SUFFIX) or "/" in name:
        raise ValueError(f"{name!r} is not a slice name (<name>{SLICE_SUFFIX}, without '/')")
    stem = name[:-len(SLICE_SUFFIX)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for part in stem.split("-"):
        if not part:        # "", "-a", "a-", "a--b": systemd refuses these
            raise ValueError(f"{name!r} is not a valid slice name (empty part between dashes)")
        path += "/" + prefix + part + SLICE_SUFFIX
        prefix += part + "-"
    return path


def slice_of(parent: str) -> str:
    """The slice unit a systemd-style parent names: its last path element.  The kubelet sends
    the expanded path (/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice),
    critest sends "/test.slice", a config may say just "podwire.slice".  The path must be the
    slice's own expansion: "/a.slice/b.slice" names no place systemd would put b.slice.
    ValueError when it is no slice or not where systemd puts it."""
    path = posixpath.normpath("/" + parent.strip("/")) if parent.strip("/") else "/"
    name = posixpath.basename(path)
    if not name.endswith(SLICE_SUFFIX):
        raise ValueError(f"{parent!r} is not a systemd slice (such as "
                         f"kubepods-burstable-pod<uid>{SLICE_SUFFIX})")
    expanded = expand_slice(name)
    if "/" in parent.strip("/") and path != expanded:
        raise ValueError(f"{parent!r} is not where systemd puts slice {name} ({expanded})")
    return name


def is_slice(parent: str) -> bool:
    """Does `parent` look like a systemd slice (its last element ends in .slice)?  containerd's
    test for which form a cgroup_parent has."""
    return posixpath.basename(parent.rstrip("/")).endswith(SLICE_SUFFIX)


def check_parent(parent: str, driver: str) -> str:
    """The parent in the driver's form: for systemd the slice name, for cgroupfs the absolute
    path.  ValueError, saying which driver podwire-cri uses, when it has the other driver's form."""
    if driver == SYSTEMD:
        try:
            return slice_of(parent)
        except ValueError as e:
            raise ValueError(f"cgroup parent {e}; podwire-cri uses the systemd cgroup driver "
                             f"(cgroup_driver in cri.toml), which takes slices") from None
    if is_slice(parent):
        raise ValueError(f"cgroup parent {parent!r} is a systemd slice; podwire-cri uses the "
                         f"cgroupfs cgroup driver (cgroup_driver in cri.toml), which takes paths "
                         f"such as /kubepods/burstable/pod<uid>")
    return posixpath.normpath("/" + parent.lstrip("/"))


def systemd_cgroups_path(slice_name: str, container_id: str) -> str:
    """runc's "slice:prefix:name" for a container in `slice_name`."""
    return f"{slice_name}:{SCOPE_PREFIX}:{container_id}"


def is_systemd_path(cgroups_path: str) -> bool:
    """A systemd cgroupsPath ("slice:prefix:name") rather than a cgroupfs path."""
    return not cgroups_path.startswith("/") and cgroups_path.count(":") == 2


def unit_name(prefix: str, name: str) -> str:
    """runc's getUnitName: a scope "<prefix>-<name>.scope", unless name is itself a slice."""
    return name if name.endswith(SLICE_SUFFIX) else f"{prefix}-{name}.scope"


def cgroup_dir(cgroups_path: str) -> str:
    """The cgroup directory, relative to a hierarchy's root, that a cgroupsPath names: a cgroupfs
    path as it is; "slice:prefix:name" as <expanded slice>/<prefix>-<name>.scope."""
    if not is_systemd_path(cgroups_path):
        return cgroups_path
    slice_name, prefix, name = cgroups_path.split(":")
    parent = expand_slice(slice_name or RUNC_DEFAULT_SLICE)
    if name.endswith(SLICE_SUFFIX):
        return expand_slice(name)
    return posixpath.join(parent, unit_name(prefix, name))


def pod_cgroup_dir(parent: str, driver: str) -> str | None:
    """The pod cgroup's directory for the kubelet's cgroup_parent, None when there is none to
    touch (no parent, the root, one that would leave the hierarchy, one of the other driver)."""
    if not parent or ".." in parent.split("/"):
        return None
    try:
        path = expand_slice(slice_of(parent)) if driver == SYSTEMD else check_parent(parent, driver)
    except ValueError:
        return None
    return None if path == "/" else path


def conmon_scope_argv(container_id: str, slice_name: str) -> list[str]:
    """The prefix that starts conmon in a transient scope of its own, podwire-conmon-<id>.scope,
    in `slice_name`, under the systemd driver.

    Why: conmon must outlive the shim.  Left in podwire-cri.service's cgroup, it would be killed
    by a `systemctl stop` whose KillMode kills the cgroup, and with KillMode=process it would
    stay behind in the unit's cgroup, which then never empties.  conmon's own --systemd-cgroup
    does not help: it only passes --systemd-cgroup on to `runc create` and leaves conmon itself
    where it was started.  `systemd-run --scope` asks systemd for the scope, moves itself into it
    and then execs conmon with the same pid, environment and file descriptors (the sync pipe
    stays open), so the rest of the start-up is unchanged.  --collect: the unit is gone once
    conmon exits, whatever its exit status.  The slice is system.slice by default, as CRI-O's
    monitor_cgroup: conmon's memory is not charged to the pod, and a pod slice stopped by the
    kubelet takes no monitor with it."""
    return ["systemd-run", "--scope", "--quiet", "--collect",
            f"--unit=podwire-conmon-{container_id}", f"--slice={slice_name}",
            f"--description=podwire-cri container monitor (conmon) of {container_id}", "--"]


def holder_scope_argv(pod_id: str, slice_name: str) -> list[str]:
    """The same for a pod's PID-namespace holder (cri/sandbox/namespaces.py), which, like conmon,
    must outlive the shim and must not stay in its unit's cgroup."""
    return ["systemd-run", "--scope", "--quiet", "--collect",
            f"--unit=podwire-pidns-{pod_id}", f"--slice={slice_name}",
            f"--description=podwire-cri PID namespace holder of pod {pod_id}", "--"]
