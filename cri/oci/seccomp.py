"""Seccomp selection: unconfined, runtime/default, localhost/<path> (CRI semantics of containerd)."""
from __future__ import annotations

import json
import os
import platform
from typing import Any

from cri.errors import invalid
from cri.oci import seccomp_default as D

ALLOW = "SCMP_ACT_ALLOW"


def _rule(names: list[str], action: str = ALLOW, **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


def default_profile(bounding: list[str], machine: str | None = None) -> dict[str, Any]:
    """containerd's DefaultProfile(sp): fixed allow list + arch + capability-dependent rules."""
    machine = machine or platform.machine()
    syscalls = [_rule(list(D.ALLOWED))]
    syscalls += [_rule(["personality"], args=[{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}])
                 for p in D.PERSONALITIES]
    if D.BY_ARCH.get(machine):
        syscalls.append(_rule(list(D.BY_ARCH[machine])))
    syscalls += [_rule(list(D.BY_CAP[c])) for c in bounding if c in D.BY_CAP]
    if "CAP_SYS_ADMIN" not in bounding:
        syscalls.append(_rule(["clone"], args=[{"index": 0, "value": D.CLONE_NAMESPACE_FLAGS,
                                                "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]))
        # ENOSYS, not EPERM, so glibc falls back to clone(2) (moby#42681).
        syscalls.append(_rule(["clone3"], "SCMP_ACT_ERRNO", errnoRet=D.ENOSYS))
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": list(D.ARCHES.get(machine, [])),
            "syscalls": syscalls}


def select_profile(security_context: Any, privileged: bool,
                   bounding: list[str]) -> dict[str, Any] | None:
    """The OCI linux.seccomp for a container, None for unconfined.

    Privileged containers run unconfined.  The `seccomp` message wins over the deprecated
    `seccomp_profile_path` string; with neither, the container is unconfined (containerd's
    default; the kubelet sends RuntimeDefault itself when --seccomp-default is on)."""
    if privileged:
        return None
    if security_context.HasField("seccomp"):
        profile = security_context.seccomp
        kind = profile.ProfileType.Name(profile.profile_type)
        ref = profile.localhost_ref
    else:
        kind, ref = _legacy(security_context.seccomp_profile_path)
    if kind == "Unconfined":
        return None
    if kind == "RuntimeDefault":
        return default_profile(bounding)
    return load_localhost(ref, bounding)


def _legacy(path: str) -> tuple[str, str]:
    if path in ("", "unconfined"):
        return "Unconfined", ""
    if path in ("runtime/default", "docker/default"):
        return "RuntimeDefault", ""
    if path.startswith("localhost/"):
        return "Localhost", path[len("localhost/"):]
    # Kept: containerd and CRI-O refuse an unknown profile name; running unconfined instead
    # would silently drop the isolation that was asked for.
    raise invalid(f"unknown seccomp profile {path!r}")


def load_localhost(path: str, bounding: list[str]) -> dict[str, Any]:
    """A profile file on the node, in Docker's format (archMap, includes/excludes) or OCI's."""
    # Kept: a relative path would resolve against the shim's working directory (containerd
    # and CRI-O also want the kubelet's absolute <seccomp root>/<profile>).
    if not os.path.isabs(path):
        raise invalid(f"seccomp localhost profile path must be absolute: {path!r}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise invalid(f"cannot load seccomp profile {path}: {e}") from None
    return from_docker_format(data, bounding)


def from_docker_format(data: dict[str, Any], bounding: list[str],
                       machine: str | None = None) -> dict[str, Any]:
    machine = machine or platform.machine()
    arch_names = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
    native = arch_names.get(machine, "")
    out: dict[str, Any] = {"defaultAction": data.get("defaultAction", "SCMP_ACT_ERRNO")}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if key in data:
            out[key] = data[key]
    arches = list(data.get("architectures", []))
    for entry in data.get("archMap") or []:
        if entry.get("architecture") == native:
            arches += [entry["architecture"], *entry.get("subArchitectures", [])]
    out["architectures"] = arches
    out["syscalls"] = [_syscall_rule(s) for s in data.get("syscalls", [])
                       if _applies(s, bounding, machine)]
    return out


def _syscall_rule(s: dict[str, Any]) -> dict[str, Any]:
    rule = {"names": s.get("names") or [s["name"]], "action": s["action"]}
    for key in ("args", "errnoRet"):
        if s.get(key) is not None:
            rule[key] = s[key]
    return rule


def _applies(s: dict[str, Any], bounding: list[str], machine: str) -> bool:
    """Docker profiles' includes/excludes by capability and architecture."""
    inc, exc = s.get("includes") or {}, s.get("excludes") or {}
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    if inc.get("caps") and not all(c in bounding for c in inc["caps"]):
        return False
    if exc.get("caps") and any(c in bounding for c in exc["caps"]):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    return not (exc.get("arches") and arch in exc["arches"])
