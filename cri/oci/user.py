"""The container's user and groups, as containerd's CRI resolves them.

Order of precedence: run_as_username, run_as_user (+ run_as_group), else the image's USER
("name", "uid", "name:group", "uid:gid").  Names are looked up in the image's /etc/passwd and
/etc/group, read inside the rootfs (rootpath.py).  Supplementary groups: the primary gid, the
/etc/group groups listing the user (not with SupplementalGroupsPolicy Strict), then the pod's
supplemental_groups."""
from __future__ import annotations

from dataclasses import dataclass

from cri.errors import invalid
from cri.oci.rootpath import read_file

STRICT = 1  # runtime.v1 SupplementalGroupsPolicy.Strict


@dataclass(frozen=True)
class Passwd:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _lines(rootfs: str, path: str) -> list[list[str]]:
    data = read_file(rootfs, path) or b""
    return [line.split(":") for line in data.decode(errors="replace").splitlines()
            if line and not line.startswith("#")]


def passwd(rootfs: str) -> list[Passwd]:
    out = []
    for f in _lines(rootfs, "/etc/passwd"):
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            out.append(Passwd(f[0], int(f[2]), int(f[3])))
    return out


def groups(rootfs: str) -> list[Group]:
    out = []
    for f in _lines(rootfs, "/etc/group"):
        if len(f) >= 3 and f[2].isdigit():
            members = tuple(m for m in (f[3].split(",") if len(f) > 3 else []) if m)
            out.append(Group(f[0], int(f[2]), members))
    return out


def _lookup_user(rootfs: str, spec: str) -> tuple[int, int, str]:
    """(uid, gid, name) for "name" or "uid"; a numeric uid absent from passwd gets gid 0."""
    entries = passwd(rootfs)
    if spec.isdigit():
        uid = int(spec)
        found = next((e for e in entries if e.uid == uid), None)
        return uid, found.gid if found else 0, found.name if found else ""
    found = next((e for e in entries if e.name == spec), None)
    # Kept: containerd and CRI-O fail too (no uid for the name); never guess root.
    if found is None:
        raise invalid(f"user {spec!r} not found in the image's /etc/passwd")
    return found.uid, found.gid, found.name


def _lookup_group(rootfs: str, spec: str) -> int:
    if spec.isdigit():
        return int(spec)
    found = next((g for g in groups(rootfs) if g.name == spec), None)
    # Kept: as for users: no gid to run with.
    if found is None:
        raise invalid(f"group {spec!r} not found in the image's /etc/group")
    return found.gid


def _member_gids(rootfs: str, username: str) -> list[int]:
    # containerd skips the group named like the user: that is the primary group.
    return [g.gid for g in groups(rootfs) if g.name != username and username in g.members]


def resolve_user(rootfs: str, security_context, image_user: str) -> dict:
    """OCI process.user {uid, gid, additionalGids}."""
    sc = security_context
    has_uid = sc.HasField("run_as_user")
    # Kept: containerd refuses it with the same meaning ("user group is specified without user").
    if sc.HasField("run_as_group") and not (has_uid or sc.run_as_username):
        raise invalid("run_as_group is set without run_as_user or run_as_username")
    if sc.run_as_username:
        user_spec, group_spec = sc.run_as_username, ""
    elif has_uid:
        user_spec, group_spec = str(sc.run_as_user.value), ""
    else:
        user_spec, _, group_spec = (image_user or "0").partition(":")
    if sc.HasField("run_as_group"):
        group_spec = str(sc.run_as_group.value)
    uid, gid, name = _lookup_user(rootfs, user_spec)
    if group_spec:
        gid = _lookup_group(rootfs, group_spec)
    extra = [] if sc.supplemental_groups_policy == STRICT or not name else _member_gids(rootfs, name)
    additional: list[int] = []
    for g in [gid, *extra, *sc.supplemental_groups]:
        if g not in additional:
            additional.append(g)
    return {"uid": uid, "gid": gid, "additionalGids": additional}
