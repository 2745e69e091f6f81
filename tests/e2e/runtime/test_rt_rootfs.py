"""The overlay rootfs: layer order, many layers, idempotent unmount."""
from __future__ import annotations

import os

import pytest

from cri.oci import rootfs
from rtfixtures import busybox_rootfs, env, needs_runc  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, needs_runc]


def test_upper_layers_win(env, tmp_path):
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "motd").write_text("top\n")
    (top / "bin").mkdir()
    cid = "layers" + os.urandom(4).hex()
    path = env.rt.prepare_rootfs(cid, [env.layer, str(top)])  # manifest order: base first
    try:
        with open(os.path.join(path, "etc", "motd")) as f:
            assert f.read() == "top\n"
        assert os.path.exists(os.path.join(path, "bin", "busybox"))
    finally:
        env.rt.remove(cid)
    assert not os.path.exists(env.rt.bundle_dir(cid))


def test_many_layers_beyond_one_mount_page(tmp_path):
    base = tmp_path / ("long-layer-directory-name-" + "x" * 60)
    layers = []
    for i in range(60):  # ~60 * 110 bytes of lowerdir: more than the 4 KiB mount data page
        d = base / f"layer-{i:03d}"
        d.mkdir(parents=True)
        (d / f"f{i}").write_text(str(i))
        layers.append(str(d))
    target = tmp_path / "rootfs"
    rootfs.mount_rootfs(layers, str(tmp_path / "upper"), str(tmp_path / "work"), str(target))
    try:
        assert sorted(os.listdir(target)) == sorted(f"f{i}" for i in range(60))
    finally:
        rootfs.unmount_rootfs(str(target))
    assert not os.path.ismount(target)
    rootfs.unmount_rootfs(str(target))  # idempotent
