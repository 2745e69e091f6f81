"""Image volumes without root: request checks, image_sub_path resolution inside an image root,
the OCI mounts they become, and ImageSpec.image_ref on the wire."""
from __future__ import annotations

import os

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.oci import imagevolume, mounts
from cri.rpc import image_volumes


@pytest.fixture
def image_root(tmp_path):
    """An unpacked image: /data/hello.txt, /data/sub/, and links in and out of it."""
    root = tmp_path / "image"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "hello.txt").write_text("hello\n")
    (root / "links").mkdir()
    for name, target in {"abs": "/data", "rel": "../data", "up": "../../..", "abs-up": "/../..",
                         "chain": "rel/sub", "loop": "loop", "dangling": "/nowhere"}.items():
        os.symlink(target, root / "links" / name)
    return str(root)


@pytest.mark.parametrize("sub_path, expect", [
    ("", ""), ("/", ""), ("data", "data"), ("data/", "data"), ("data/hello.txt", "data/hello.txt"),
    ("links/abs", "data"), ("links/rel", "data"), ("links/chain", "data/sub"),
    ("links/abs/sub", "data/sub"), ("./data/./sub", "data/sub"),
])
def test_sub_path_resolves_inside_the_image(image_root, sub_path, expect):
    got = imagevolume.resolve_sub_path(image_root, "/v", sub_path)
    assert got == os.path.join(image_root, expect).rstrip("/")


@pytest.mark.parametrize("sub_path, code, words", [
    ("links/up", grpc.StatusCode.INVALID_ARGUMENT, "leads out of the image"),
    ("links/up/etc/passwd", grpc.StatusCode.INVALID_ARGUMENT, "leads out of the image"),
    ("links/abs-up", grpc.StatusCode.INVALID_ARGUMENT, "leads out of the image"),
    ("links/loop", grpc.StatusCode.INVALID_ARGUMENT, "too many symlinks"),
    ("links/dangling", grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("missing", grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("data/missing/deeper", grpc.StatusCode.NOT_FOUND, "does not exist"),
])
def test_sub_path_refused(image_root, sub_path, code, words):
    with pytest.raises(CriError) as err:
        imagevolume.resolve_sub_path(image_root, "/v", sub_path)
    assert err.value.code == code and words in err.value.message and sub_path in err.value.message


@pytest.mark.parametrize("readonly, sub_path, words", [
    (False, "", "read-only"),
    (True, "/etc", "must be relative"),
    (True, "..", "'..'"),
    (True, "data/../../etc", "'..'"),
])
def test_request_refused_before_mounting(readonly, sub_path, words):
    with pytest.raises(CriError) as err:
        imagevolume.check_request("/v", readonly, sub_path)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.message


def test_request_accepted():
    imagevolume.check_request("/v", True, "")
    imagevolume.check_request("/v", True, "a/b..c/..d")     # dots inside names are fine


def test_image_volume_becomes_a_read_only_bind_without_noexec(tmp_path):
    vol = api.Mount(container_path="/v", readonly=True, image=api.ImageSpec(image="sha256:" + "a" * 64))
    out, propagation = mounts.cri_mounts([vol], image_sources={"/v": "/img/root/data"})
    assert out == [{"destination": "/v", "type": "bind", "source": "/img/root/data",
                    "options": ["rbind", "rprivate", "ro"]}]
    assert propagation == ""
    with pytest.raises(CriError, match="not prepared"):
        mounts.cri_mounts([vol], image_sources={})


def test_host_path_still_required_for_other_mounts():
    with pytest.raises(CriError, match="empty host path"):
        mounts.cri_mounts([api.Mount(container_path="/v", readonly=True)])


def test_image_ref_on_the_wire():
    """Newer clients read ImageSpec.image_ref (field 20); the stubs here may not know it."""
    spec = api.ImageSpec(image="busybox")
    image_volumes.set_image_ref(spec, "sha256:" + "b" * 64)
    data = spec.SerializeToString()
    assert data.endswith(b"\xa2\x01\x47sha256:" + b"b" * 64)      # tag 20/LEN, 71 bytes
    back = api.ImageSpec()
    back.ParseFromString(data)
    assert back.image == "busybox" and back.SerializeToString() == data


def test_varint_multi_byte():
    assert image_volumes._varint(300) == b"\xac\x02"
    assert image_volumes._varint(0) == b"\x00"
