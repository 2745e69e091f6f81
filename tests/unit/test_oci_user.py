"""User and group resolution from the image's rootfs, without escaping it."""
from __future__ import annotations

import os

import pytest
from cri_api.v1 import api_pb2

from cri.errors import CriError
from cri.oci import rootpath
from cri.oci.user import resolve_user

PASSWD = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:alice,bob\nwheel:x:10:alice\nalice:x:1000:alice\nbob:x:1001:\n"


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return str(root)


def ctx(**kw) -> api_pb2.LinuxContainerSecurityContext:
    return api_pb2.LinuxContainerSecurityContext(**kw)


def uid(v: int) -> api_pb2.Int64Value:
    return api_pb2.Int64Value(value=v)


@pytest.mark.parametrize("sc, image_user, expected", [
    (ctx(), "", (0, 0, [0])),
    (ctx(), "alice", (1000, 1000, [1000, 50, 10])),      # group "alice" is the primary: skipped
    (ctx(), "1001", (1001, 1001, [1001, 50])),
    (ctx(), "1001:10", (1001, 10, [10, 50])),
    (ctx(), "alice:staff", (1000, 50, [50, 10])),
    (ctx(), "4242", (4242, 0, [0])),                     # unknown uid: gid 0, no groups
    (ctx(run_as_user=uid(1000)), "bob", (1000, 1000, [1000, 50, 10])),   # request beats image
    (ctx(run_as_username="bob"), "alice", (1001, 1001, [1001, 50])),
    (ctx(run_as_user=uid(1000), run_as_group=uid(7), supplemental_groups=[8, 50]), "",
     (1000, 7, [7, 50, 10, 8])),
    (ctx(run_as_user=uid(1000), supplemental_groups=[8], supplemental_groups_policy=1), "",
     (1000, 1000, [1000, 8])),                            # Strict: no /etc/group lookup
])
def test_resolve(rootfs, sc, image_user, expected):
    user = resolve_user(rootfs, sc, image_user)
    assert (user["uid"], user["gid"], user["additionalGids"]) == expected


def test_unknown_names_are_invalid(rootfs):
    with pytest.raises(CriError, match="mallory"):
        resolve_user(rootfs, ctx(run_as_username="mallory"), "")
    with pytest.raises(CriError, match="nogroup"):
        resolve_user(rootfs, ctx(), "alice:nogroup")
    with pytest.raises(CriError, match="run_as_group"):
        resolve_user(rootfs, ctx(run_as_group=uid(5)), "")


def test_symlinked_passwd_cannot_escape_the_rootfs(tmp_path):
    outside = tmp_path / "host-passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").symlink_to(str(outside))        # absolute: resolved inside root
    with pytest.raises(CriError, match="evil"):
        resolve_user(str(root), ctx(run_as_username="evil"), "")
    os.unlink(root / "etc" / "passwd")
    (root / "etc" / "passwd").symlink_to("../../../../../../host-passwd")  # ".." stops at root
    with pytest.raises(CriError, match="evil"):
        resolve_user(str(root), ctx(run_as_username="evil"), "")


def test_symlink_inside_the_rootfs_is_followed(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib" / "passwd").write_text("svc:x:77:77::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to("/lib/passwd")
    assert resolve_user(str(root), ctx(run_as_username="svc"), "")["uid"] == 77


def test_secure_join_fallback(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "up").symlink_to("../../../../etc")
    (root / "a" / "abs").symlink_to("/a")
    assert rootpath.secure_join(str(root), "/a/up/passwd") == str(root / "etc" / "passwd")
    assert rootpath.secure_join(str(root), "a/abs/x") == str(root / "a" / "x")
    assert rootpath.secure_join(str(root), "../../x") == str(root / "x")
