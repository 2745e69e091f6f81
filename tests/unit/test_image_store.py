"""ImageStore records: lookups, the tag-moving rule, leases against GC, persistence."""
from __future__ import annotations

import json
import os

from cri.images.image import Image, user_id
from cri.images.store import ImageStore, Layer, State
from ocitest import sha256

A, B = "sha256:" + "a1" * 32, "sha256:" + "a2" * 32


def state(*images: Image) -> State:
    return State({i.id: i for i in images}, {}, {})


def test_resolve_forms():
    img = Image(A, ("docker.io/library/busybox:1",), ("docker.io/library/busybox@sha256:" + "c" * 64,))
    s = state(img, Image(B))
    for name in ("busybox:1", "docker.io/library/busybox:1", "library/busybox:1", A, A[7:],
                 "busybox@sha256:" + "c" * 64, "a1a1", "sha256:a1a1"):
        assert s.resolve(name) is img, name
    for name in ("a", "sha256:a", "busybox", "busybox:2", "zz", "Not Valid"):
        assert s.resolve(name) is None, name            # "a" is ambiguous: a1…, a2…


def test_user_id():
    assert user_id("") == (None, "")
    assert user_id("1000") == (1000, "")
    assert user_id("1000:50") == (1000, "")
    assert user_id("nobody") == (None, "nobody")
    assert user_id("nobody:nogroup") == (None, "nobody")
    assert user_id("1_0") == (None, "1_0")


def _blob(store: ImageStore, data: bytes) -> str:
    digest = sha256(data)
    store.content.put_blob(digest, data)
    return digest


def _layer(store: ImageStore, name: str) -> str:
    diff_id = sha256(name.encode())
    with store.lease() as lease:
        lease.add(diff_id)
        with store.content.unpacking(diff_id) as tmp:
            open(os.path.join(tmp, name), "w").close()
        store.add_layer(diff_id, Layer(0, 1))
    return diff_id


def test_a_tag_moves_to_the_newer_image(tmp_path):
    store = ImageStore(str(tmp_path))
    with store.lease() as lease:
        cfg_a, cfg_b = sha256(b"a"), sha256(b"b")
        for d in (cfg_a, cfg_b):
            lease.add(d)
        _blob(store, b"a"), _blob(store, b"b")
        store.add(Image(cfg_a, blobs=(cfg_a,)), "docker.io/r/x:1", "docker.io/r/x@" + cfg_a)
        store.add(Image(cfg_b, blobs=(cfg_b,)), "docker.io/r/x:1", "docker.io/r/x@" + cfg_b)
    assert store.resolve("docker.io/r/x:1").id == cfg_b
    assert store.resolve(cfg_a).repo_tags == ()          # kept: reachable by its digest
    assert store.resolve("r/x@" + cfg_a).id == cfg_a
    store.add(Image(cfg_a, blobs=(cfg_a,)), "docker.io/r/y:1", "docker.io/r/y@" + cfg_a)
    assert store.resolve(cfg_a).repo_tags == ("docker.io/r/y:1",)
    assert len(store.resolve(cfg_a).repo_digests) == 2


def test_leased_content_survives_gc_and_records_persist(tmp_path):
    store = ImageStore(str(tmp_path))
    diff_id = _layer(store, "base")
    assert not store.has_layer(diff_id)                  # lease ended, nothing refers to it
    with store.lease() as lease:
        lease.add(diff_id)
        lease.add(sha256(b"cfg"))
        with store.content.unpacking(diff_id) as tmp:
            open(os.path.join(tmp, "f"), "w").close()
        store.add_layer(diff_id, Layer(10, 2))
        store.remove("sha256:" + "0" * 64)               # a GC while the pull runs
        assert store.has_layer(diff_id)
        _blob(store, b"cfg")
        img = store.add(Image(sha256(b"cfg"), diff_ids=(diff_id,), blobs=(sha256(b"cfg"),)),
                        "docker.io/r/x:1", "docker.io/r/x@" + sha256(b"m"))
    again = ImageStore(str(tmp_path))
    assert again.resolve("docker.io/r/x:1") == img and again.usage() == (10 + 3, 2 + 1)
    with open(tmp_path / "images.json") as f:
        assert json.load(f)["version"] == 1
