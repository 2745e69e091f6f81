"""The OCI runtime spec (config.json) for a CRI container.

build_spec() turns a CreateContainer request (ContainerConfig), the pod (PodContext: its config
and what the sandbox pinned) and the image config into the dict runc reads.  Everything that
needs the rootfs (user names) reads it through rootpath.py, never following links out of it.
"""
from __future__ import annotations

import dataclasses
import posixpath
import socket
from dataclasses import dataclass
from typing import Any, Mapping

from cri.errors import invalid
from cri.oci import caps, cgroupdriver, devices, mounts, namespaces, resources, seccomp, user
from cri.oci.imageconfig import settings

OCI_VERSION = "1.0.2-dev"  # what Debian's runc 1.1 implements
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CGROUP_ROOT = "/podwire"
# containerd's default masked/readonly paths (oci/spec.go populateDefaultUnixSpec).
DEFAULT_MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/sys/devices/virtual/powercap", "/proc/scsi",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Annotation naming a cgroup directory podwire made up for the pod (no cgroup_parent given):
# ContainerRuntime.remove() deletes it once empty.
OWNED_CGROUP_PARENT = "io.podwire.cgroup-parent"


@dataclass(frozen=True)
class PodContext:
    """The pod as a container sees it.  Namespace paths are the sandbox's pinned namespaces;
    "" means "none pinned" (see namespaces.py for each mode).  File paths are bound into the
    container when set."""
    id: str
    config: Any                  # runtime.v1 PodSandboxConfig
    netns_path: str = ""
    ipc_ns_path: str = ""
    uts_ns_path: str = ""
    pid_ns_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    hostname_path: str = ""
    shm_path: str = ""
    cgroup_root: str = DEFAULT_CGROUP_ROOT    # the config's cgroup_parent: a path, or a slice
    cgroup_driver: str = cgroupdriver.CGROUPFS
    # The pod's IPC/UTS sysctls, which runc writes in each container; the net.* ones were set
    # in the pod's netns once, and runc would refuse them in a container that joins it.
    sysctls: Mapping[str, str] = dataclasses.field(default_factory=dict)


def process_args(config, image: Mapping[str, Any]) -> list[str]:
    """Kubernetes semantics (containerd's getProcessArgs): `command` replaces the Entrypoint and
    then the image Cmd is ignored; `args` replace Cmd."""
    command, args = list(config.command), list(config.args)
    if not command:
        if not args:
            args = list(image.get("Cmd") or [])
        entrypoint = list(image.get("Entrypoint") or [])
        if entrypoint != [""]:
            command = entrypoint
    # Kept: containerd refuses it with the same words; runc would fail on empty args.
    if not command and not args:
        raise invalid("no command specified")
    return command + args


def process_env(config, image: Mapping[str, Any], hostname: str) -> list[str]:
    """Image Env, then HOSTNAME, then the request's envs; a later KEY replaces an earlier one."""
    env: dict[str, str] = {}
    for item in image.get("Env") or []:
        key, _, _ = item.partition("=")
        env[key] = item
    if hostname:
        env["HOSTNAME"] = f"HOSTNAME={hostname}"
    for kv in config.envs:
        env[kv.key] = f"{kv.key}={kv.value}"
    if "PATH" not in env:
        env = {"PATH": DEFAULT_PATH, **env}
    return list(env.values())


def cgroups_path(pod: PodContext, container_id: str) -> tuple[str, str]:
    """(cgroupsPath, owned parent or "").

    cgroupfs: under the kubelet's cgroup_parent when given, else under <cgroup_root>/<pod-id>, a
    directory podwire owns and removes.  systemd: "<slice>:cri-podwire:<id>" (a scope
    cri-podwire-<id>.scope) in the slice the kubelet's parent names, else in the configured
    slice, which systemd owns.  A parent of the other driver's form is INVALID_ARGUMENT."""
    parent = pod.config.linux.cgroup_parent
    if pod.cgroup_driver == cgroupdriver.SYSTEMD:
        try:
            slice_name = cgroupdriver.check_parent(parent or pod.cgroup_root, cgroupdriver.SYSTEMD)
        except ValueError as e:
            raise invalid(str(e)) from None
        return cgroupdriver.systemd_cgroups_path(slice_name, container_id), ""
    if parent:
        try:
            cgroupdriver.check_parent(parent, cgroupdriver.CGROUPFS)
        except ValueError as e:
            raise invalid(str(e)) from None
        return posixpath.join("/", parent, container_id), ""
    owned = posixpath.join(pod.cgroup_root, pod.id)
    return posixpath.join(owned, container_id), owned


def _security_paths(sc, privileged: bool) -> tuple[list[str], list[str]]:
    """Privileged: none.  Else the request's lists (the kubelet sends the defaults for
    procMount Default), falling back to containerd's defaults when it sends none."""
    if privileged:
        return [], []
    return (list(sc.masked_paths) or list(DEFAULT_MASKED_PATHS),
            list(sc.readonly_paths) or list(DEFAULT_READONLY_PATHS))


def build_spec(container_id: str, config, pod: PodContext, image_config: Mapping[str, Any] | None,
               rootfs: str, *, target_pid_ns_path: str = "",
               oom_score_adj_floor: int | None = None,
               image_sources: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config.json dict.  `rootfs`: the mounted container rootfs (absolute path);
    `image_sources`: container path -> host path of each mounted image volume."""
    image = settings(image_config)
    sc = config.linux.security_context
    privileged = sc.privileged
    # Kept (security): containerd and CRI-O refuse it too; a privileged container would escape
    # the unprivileged pod's isolation.
    if privileged and not pod.config.linux.security_context.privileged:
        raise invalid("privileged container in a non-privileged sandbox")
    ns_list = namespaces.linux_namespaces(sc.namespace_options, pod, target_pid_ns_path)
    # The pod's hostname; with the host's UTS namespace only the HOSTNAME variable shows it.
    hostname = pod.config.hostname or socket.gethostname()
    own_uts = namespaces.has(ns_list, "uts")
    cap_set = caps.capability_set(sc.capabilities.add_capabilities,
                                  sc.capabilities.drop_capabilities, privileged)
    cgroups, owned_parent = cgroups_path(pod, container_id)
    linux = _linux(config, pod, sc, privileged, ns_list, cap_set, cgroups)
    process = {
        "terminal": config.tty,
        "user": user.resolve_user(rootfs, sc, image.get("User") or ""),
        "args": process_args(config, image),
        "env": process_env(config, image, hostname),
        "cwd": config.working_dir or image.get("WorkingDir") or "/",
        "capabilities": caps.process_capabilities(cap_set,
                                                  sc.capabilities.add_ambient_capabilities),
        "noNewPrivileges": sc.no_new_privs,
        "oomScoreAdj": resources.clamp_oom_score_adj(config.linux.resources.oom_score_adj,
                                                     oom_score_adj_floor),
    }
    mount_list, propagation = _mounts(config, pod, sc, privileged, image_sources)
    if propagation:
        linux["rootfsPropagation"] = propagation
    spec = {"ociVersion": OCI_VERSION, "process": process,
            "root": {"path": rootfs, "readonly": sc.readonly_rootfs},
            "mounts": mount_list,
            "annotations": _annotations(config, pod, container_id, owned_parent),
            "linux": linux}
    if own_uts:
        spec["hostname"] = hostname
    return spec


def _linux(config, pod: PodContext, sc, privileged: bool, ns_list: list[dict[str, str]],
           cap_set: list[str], cgroups: str) -> dict[str, Any]:
    nodes, device_rules = devices.devices(config.devices, privileged)
    res = resources.linux_resources(config.linux.resources if config.linux.HasField("resources")
                                    else None)
    res["devices"] = device_rules
    masked, readonly = _security_paths(sc, privileged)
    linux: dict[str, Any] = {"namespaces": ns_list, "resources": res, "cgroupsPath": cgroups,
                             "devices": nodes, "maskedPaths": masked, "readonlyPaths": readonly,
                             "sysctl": dict(pod.sysctls)}
    profile = seccomp.select_profile(sc, privileged, cap_set)
    if profile is not None:
        linux["seccomp"] = profile
    return linux


def _mounts(config, pod: PodContext, sc, privileged: bool,
            image_sources: Mapping[str, str] | None) -> tuple[list[dict[str, Any]], str]:
    """(mounts, rootfs propagation): defaults < pod files < the request's, per destination."""
    ipc_host = sc.namespace_options.ipc == namespaces.NODE
    pod_files = mounts.pod_file_mounts(pod, sc.readonly_rootfs, ipc_host)
    requested, propagation = mounts.cri_mounts(config.mounts, image_sources=image_sources)
    return mounts.merge(mounts.default_mounts(privileged), pod_files + requested), propagation


def _annotations(config, pod: PodContext, container_id: str, owned_parent: str) -> dict[str, str]:
    out = dict(config.annotations)
    out.update({"io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": config.metadata.name,
                "io.kubernetes.cri.sandbox-id": pod.id})
    if owned_parent:
        out[OWNED_CGROUP_PARENT] = owned_parent
    return out
