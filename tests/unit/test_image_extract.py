"""Layer extraction: hostile tarballs cannot write outside the layer dir; metadata is kept.
Ownership, device nodes and overlayfs whiteouts need root: tests/root/test_image_extract_root.py."""
from __future__ import annotations

import gzip
import io
import os
import stat

import grpc
import pytest

from cri.errors import CriError
from cri.images import layer
from cri.images.extract import extract
from ocitest import Tar, sha256


@pytest.fixture
def dirs(tmp_path):
    """(root, outside): the layer dir and a sibling holding a secret that must survive."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("keep")
    yield str(root), str(outside)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == "keep"
    assert os.stat(outside / "secret").st_nlink == 1
    assert sorted(os.listdir(tmp_path)) == ["outside", "root"]


def unpack(tar: Tar, root: str):
    return extract(io.BytesIO(tar.bytes()), root)


def test_dotdot_and_absolute_names_stay_inside(dirs):
    root, outside = dirs
    unpack(Tar().file("../../outside/secret", b"pwned").file("/abs/evil", b"x")
           .file("a/../../b", b"y"), root)
    assert open(os.path.join(root, "outside/secret")).read() == "pwned"
    assert open(os.path.join(root, "abs/evil")).read() == "x"
    assert open(os.path.join(root, "b")).read() == "y"


@pytest.mark.parametrize("target", ["ABS", "../../../../../../outside", "/", "../.."])
def test_write_through_symlinked_parent_stays_inside(dirs, target):
    root, outside = dirs
    target = outside if target == "ABS" else target
    unpack(Tar().symlink("link", target).file("link/secret", b"pwned")
           .file("link/new", b"pwned"), root)
    assert os.readlink(os.path.join(root, "link")) == target     # the link itself is kept


def test_symlink_at_target_is_replaced_not_followed(dirs):
    root, outside = dirs
    unpack(Tar().symlink("f", os.path.join(outside, "secret")).file("f", b"mine"), root)
    assert not os.path.islink(os.path.join(root, "f"))
    assert open(os.path.join(root, "f")).read() == "mine"


def test_directory_entry_over_symlink_is_a_real_dir(dirs):
    root, outside = dirs
    unpack(Tar().symlink("d", outside).dir("d").file("d/x", b"1"), root)
    assert os.path.isdir(os.path.join(root, "d")) and not os.path.islink(os.path.join(root, "d"))


@pytest.mark.parametrize("linkname", ["ABS", "../outside/secret", "sym/secret", "/etc/passwd"])
def test_hardlink_cannot_reach_outside(dirs, linkname):
    root, outside = dirs
    linkname = os.path.join(outside, "secret") if linkname == "ABS" else linkname
    with pytest.raises(CriError) as exc:
        unpack(Tar().symlink("sym", outside).hardlink("hl", linkname), root)
    assert exc.value.code == grpc.StatusCode.DATA_LOSS


def test_hardlink_to_a_symlink_links_the_symlink(dirs):
    root, outside = dirs
    unpack(Tar().symlink("sym", os.path.join(outside, "secret")).hardlink("hl", "sym")
           .file("hl", b"replaced"), root)
    assert os.readlink(os.path.join(root, "sym")) == os.path.join(outside, "secret")


def test_symlink_loop_is_an_error(dirs):
    root, _ = dirs
    with pytest.raises(CriError, match="too many levels"):
        unpack(Tar().symlink("a", "b").symlink("b", "a").file("a/x", b""), root)


def test_regular_layer(tmp_path):
    root = str(tmp_path)
    stats = unpack(Tar().dir("etc", mode=0o700).file("etc/motd", b"hello", mode=0o640)
                   .symlink("etc/link", "motd").hardlink("etc/hard", "etc/motd", mode=0o640)
                   .file("bin/tool", b"#!", mode=0o4755)
                   .file("x", b"v", xattrs={"user.note": "yes", "trusted.overlay.redirect": "/x"}),
                   root)
    assert open(os.path.join(root, "etc/motd")).read() == "hello"
    assert os.readlink(os.path.join(root, "etc/link")) == "motd"
    assert os.stat(os.path.join(root, "etc/hard")).st_ino == os.stat(os.path.join(root, "etc/motd")).st_ino
    assert stat.S_IMODE(os.stat(os.path.join(root, "etc")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(root, "etc/motd")).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(os.path.join(root, "bin/tool")).st_mode) == 0o4755
    assert os.stat(os.path.join(root, "etc")).st_mtime == 1_700_000_000   # dirs last
    assert os.getxattr(os.path.join(root, "x"), "user.note") == b"yes"
    assert "trusted.overlay.redirect" not in os.listxattr(os.path.join(root, "x"))
    assert stats.size == len("hello") + 2 + 1


def test_later_entry_replaces_earlier(tmp_path):
    root = str(tmp_path)
    unpack(Tar().dir("p").file("p/x", b"1").file("p", b"now a file"), root)
    assert open(os.path.join(root, "p")).read() == "now a file"


def test_entry_under_a_file_is_an_error(tmp_path):
    with pytest.raises(CriError, match="not a directory"):
        unpack(Tar().file("f", b"").file("f/x", b""), str(tmp_path))


def test_unpack_gzip_and_plain_checks_diff_id(tmp_path):
    tar = Tar().file("a", b"content").bytes()
    for i, blob in enumerate([gzip.compress(tar), tar]):
        dest = tmp_path / str(i)
        dest.mkdir()
        layer.unpack(io.BytesIO(blob), sha256(tar), str(dest))
        assert (dest / "a").read_bytes() == b"content"


def test_unpack_diff_id_mismatch(tmp_path):
    tar = Tar().file("a", b"content").bytes()
    with pytest.raises(CriError) as exc:
        layer.unpack(io.BytesIO(gzip.compress(tar)), sha256(b"other"), str(tmp_path))
    assert exc.value.code == grpc.StatusCode.DATA_LOSS


def test_unpack_corrupt_gzip(tmp_path):
    with pytest.raises(CriError) as exc:
        layer.unpack(io.BytesIO(b"\x1f\x8b" + b"garbage" * 10), sha256(b""), str(tmp_path))
    assert exc.value.code == grpc.StatusCode.DATA_LOSS
