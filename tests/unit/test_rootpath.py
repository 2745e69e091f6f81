"""The one in-root resolver (cri/oci/rootpath.py) in the mode the layer extractor uses."""
from __future__ import annotations

import errno
import os

import pytest

from cri.oci.rootpath import secure_join


def test_make_dirs_creates_what_is_missing_through_links_inside_the_root(tmp_path):
    root = tmp_path / "layer"
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("/usr/lib", root / "lib")         # absolute: means the root's /usr/lib
    os.symlink("../../../..", root / "usr" / "up")  # climbs: stops at the root
    got = secure_join(str(root), "lib/x86/deep", make_dirs=True)
    assert got == str(root / "usr" / "lib" / "x86" / "deep") and os.path.isdir(got)
    assert oct(os.stat(got).st_mode & 0o777) == "0o755"
    assert secure_join(str(root), "usr/up/etc", make_dirs=True) == str(root / "etc")
    assert not (tmp_path / "etc").exists()  # nothing was made outside


def test_make_dirs_refuses_a_file_on_the_way_and_names_it(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("")
    with pytest.raises(NotADirectoryError) as caught:
        secure_join(str(tmp_path), "etc/passwd/x", make_dirs=True)
    assert caught.value.filename == "etc/passwd"


def test_a_symlink_loop_is_eloop(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError) as caught:
        secure_join(str(tmp_path), "a/x", make_dirs=True)
    assert caught.value.errno == errno.ELOOP


def test_without_make_dirs_nothing_is_created(tmp_path):
    assert secure_join(str(tmp_path), "a/b") == str(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
