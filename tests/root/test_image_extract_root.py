"""Layer extraction, the parts that need root: ownership (chown), device nodes and fifos
(mknod), and overlayfs whiteouts (0/0 character devices, trusted.overlay.opaque xattrs)."""
from __future__ import annotations

import io
import os
import stat

from cri.images.extract import OPAQUE_XATTR, extract
from ocitest import Tar


def unpack(tar: Tar, root: str):
    return extract(io.BytesIO(tar.bytes()), root)


def test_ownership_devices_and_fifos(tmp_path):
    root = str(tmp_path)
    unpack(Tar().file("owned", b"", uid=1234, gid=5678).chardev("dev/null", 1, 3)
           .fifo("pipe"), root)
    st = os.stat(os.path.join(root, "owned"))
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    dev = os.stat(os.path.join(root, "dev/null"))
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert stat.S_ISFIFO(os.stat(os.path.join(root, "pipe")).st_mode)


def test_whiteouts_become_overlay_whiteouts(tmp_path):
    root = str(tmp_path)
    unpack(Tar().dir("etc").whiteout("etc/motd").opaque("var/cache").dir("var/cache/keep")
           .file(".wh..wh.plnk/123", b"aufs"), root)
    wh = os.lstat(os.path.join(root, "etc/motd"))
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert os.getxattr(os.path.join(root, "var/cache"), OPAQUE_XATTR) == b"y"
    assert os.path.isdir(os.path.join(root, "var/cache/keep"))
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(root) for n in ds + fs)
