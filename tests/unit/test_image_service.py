"""ImageService against an in-process registry: pulls (tag, digest, index, schema 2,
auth, mirrors), verification, lookups, tags, removal, GC, persistence, concurrency."""
from __future__ import annotations

import os
import threading
import time

import grpc
import pytest

from cri.errors import CriError
from cri.images.auth import Credentials
from cri.images.service import ImageService
from fakeregistry import FakeRegistry
from ocitest import Tar, image, index

BASE = Tar().dir("etc").file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n").bytes()


def make(version: str, **config):
    return image([BASE, Tar().file("etc/version", version.encode()).bytes()], config)


@pytest.fixture
def registry():
    with FakeRegistry() as reg:
        yield reg


@pytest.fixture
def service(tmp_path):
    return ImageService(root=str(tmp_path / "images"), hosts_dir=str(tmp_path / "certs.d"))


def push(reg: FakeRegistry, repo: str, tag: str, img) -> str:
    return reg.push(repo, tag, img.manifest, img.blobs)


def test_pull_by_tag_and_lookups(registry, service):
    img = make("1", User="1000:1000", Cmd=["sh"])
    ref = push(registry, "test/busybox", "1.0", img)
    got = service.pull(ref)
    assert got.id == img.id
    assert got.repo_tags == (ref,)
    assert got.repo_digests == (f"{registry.host}/test/busybox@{img.manifest.digest}",)
    assert got.size == len(img.config.data) + sum(len(b.data) for b in img.layers)
    assert got.config["Cmd"] == ["sh"] and got.uid == 1000 and got.username == ""
    for name in (ref, got.id, got.id[7:], got.id[:19], got.id[7:19], got.repo_digests[0]):
        assert service.status(name) == got, name
    assert service.status(f"{registry.host}/test/busybox:other") is None
    assert service.list() == [got]
    assert service.list(ref) == [got] and service.list("nothing:here") == []


def test_layer_dirs_are_top_first(registry, service):
    img = make("1")
    image_ = service.pull(push(registry, "t/x", "1", img))
    top, base = service.layer_dirs(image_)
    assert open(os.path.join(top, "etc/version")).read() == "1"
    assert os.path.exists(os.path.join(base, "etc/passwd"))
    assert not os.path.exists(os.path.join(top, "etc/passwd"))


def test_pull_by_digest_and_without_tag(registry, service):
    img = make("1")
    push(registry, "t/x", "latest", img)
    by_digest = service.pull(f"{registry.host}/t/x@{img.manifest.digest}")
    assert by_digest.repo_tags == () and by_digest.repo_digests
    latest = service.pull(f"{registry.host}/t/x")
    assert latest.id == img.id and latest.repo_tags == (f"{registry.host}/t/x:latest",)


def test_index_picks_linux_amd64(registry, service):
    amd, arm = make("amd64"), make("arm64")
    arm = image([BASE, Tar().file("etc/version", b"arm64").bytes()], arch="arm64")
    idx = index([(arm, "arm64"), (amd, "amd64")])
    registry.push("t/multi", "1", idx, [*amd.blobs, *arm.blobs, amd.manifest, arm.manifest])
    registry.manifests[("t/multi", amd.manifest.digest)] = amd.manifest
    registry.manifests[("t/multi", arm.manifest.digest)] = arm.manifest
    got = service.pull(f"{registry.host}/t/multi:1")
    assert got.id == amd.id and got.architecture == "amd64"
    assert got.repo_digests == (f"{registry.host}/t/multi@{idx.digest}",)   # the index's digest
    assert registry.blob_gets(arm.config.digest) == 0


def test_docker_schema2(registry, service):
    img = image([BASE], {"User": "nobody"}, docker=True)
    got = service.pull(push(registry, "t/docker", "v2", img))
    assert got.id == img.id and got.username == "nobody" and got.uid is None


def test_tampered_blob_is_rejected_and_nothing_kept(registry, service):
    img = make("1")
    push(registry, "t/x", "1", img)
    registry.blobs[img.layers[1].digest] = img.layers[0].data     # wrong bytes for that digest
    with pytest.raises(CriError) as exc:
        service.pull(f"{registry.host}/t/x:1")
    assert exc.value.code == grpc.StatusCode.DATA_LOSS
    root = service.root
    assert os.listdir(os.path.join(root, "ingest")) == [] and os.listdir(os.path.join(root, "tmp")) == []
    assert os.listdir(os.path.join(root, "layers")) == []      # the good layer was collected too
    assert service.list() == []


def test_tampered_manifest_by_digest_is_rejected(registry, service):
    img, other = make("1"), make("2")
    push(registry, "t/x", "1", img)
    registry.manifests[("t/x", img.manifest.digest)] = other.manifest
    with pytest.raises(CriError) as exc:
        service.pull(f"{registry.host}/t/x@{img.manifest.digest}")
    assert exc.value.code == grpc.StatusCode.DATA_LOSS


def test_missing_image_is_not_found(registry, service):
    with pytest.raises(CriError) as exc:
        service.pull(f"{registry.host}/t/absent:1")
    assert exc.value.code == grpc.StatusCode.NOT_FOUND


def test_unreachable_registry_is_unavailable(service):
    with pytest.raises(CriError) as exc:
        service.pull("127.0.0.1:1/t/x:1")
    assert exc.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("mode", ["bearer", "basic"])
def test_auth(tmp_path, mode):
    with FakeRegistry(auth=mode) as reg:
        svc = ImageService(root=str(tmp_path / "img"), hosts_dir=None)
        ref = push(reg, "private/x", "1", make("1"))
        with pytest.raises(CriError) as exc:
            svc.pull(ref)
        assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(CriError):
            svc.pull(ref, auth=Credentials("alice", "wrong"))
        assert svc.pull(ref, auth=Credentials("alice", "s3cret")).repo_tags == (ref,)
        if mode == "bearer":
            last = reg.token_requests[-1]
            assert last["service"] == "fake" and last["scope"] == "repository:private/x:pull"


def test_auth_from_cri_auth_config_field(tmp_path):
    from cri_api.v1 import api_pb2 as api
    with FakeRegistry(auth="bearer") as reg:
        svc = ImageService(root=str(tmp_path / "img"), hosts_dir=None)
        ref = push(reg, "private/x", "1", make("1"))
        encoded = api.AuthConfig(auth="YWxpY2U6czNjcmV0")     # base64("alice:s3cret")
        assert svc.pull(ref, auth=encoded).repo_tags == (ref,)


def test_identity_token_uses_the_refresh_grant(tmp_path):
    with FakeRegistry(auth="bearer") as reg:
        svc = ImageService(root=str(tmp_path / "img"), hosts_dir=None)
        ref = push(reg, "private/x", "1", make("1"))
        assert svc.pull(ref, auth=Credentials(identity_token="refresh-me"))
        grant = reg.token_requests[-1]
        assert grant["grant_type"] == "refresh_token" and grant["scope"] == "repository:private/x:pull"


def test_registry_token_is_sent_as_is(tmp_path):
    with FakeRegistry(auth="bearer") as reg:
        reg.tokens.add("given-token")
        svc = ImageService(root=str(tmp_path / "img"), hosts_dir=None)
        ref = push(reg, "private/x", "1", make("1"))
        assert svc.pull(ref, auth=Credentials(registry_token="given-token"))
        assert reg.token_requests == []


def test_mirror_serves_a_foreign_registry(registry, tmp_path):
    img = make("pause")
    push(registry, "pause", "3.9", img)
    certs = tmp_path / "certs.d" / "registry.k8s.io"
    certs.mkdir(parents=True)
    (certs / "hosts.toml").write_text(
        'server = "https://registry.k8s.io"\n'
        '[host."http://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n'   # dead mirror first
        f'[host."http://{registry.host}"]\n  capabilities = ["pull", "resolve"]\n')
    svc = ImageService(root=str(tmp_path / "img"), hosts_dir=str(tmp_path / "certs.d"))
    got = svc.pull("registry.k8s.io/pause:3.9")
    assert got.id == img.id and got.repo_tags == ("registry.k8s.io/pause:3.9",)
    assert svc.status("registry.k8s.io/pause:3.9") == got


def test_concurrent_pulls_download_once(registry, service):
    img = make("1")
    ref = push(registry, "t/x", "1", img)
    gate = registry.gates[img.layers[0].digest] = threading.Event()
    results, errors = [], []

    def pull(name):
        try:
            results.append(service.pull(name))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    names = [ref, ref, ref, f"{registry.host}/t/x@{img.manifest.digest}"]
    threads = [threading.Thread(target=pull, args=(n,)) for n in names]
    for t in threads:
        t.start()
    _wait_for(lambda: registry.blob_gets(img.layers[0].digest) >= 1)
    # List/Status answer while the pull is stuck in a download.
    start = time.monotonic()
    assert service.status(ref) is None and service.list() == []
    assert time.monotonic() - start < 0.5
    gate.set()
    for t in threads:
        t.join(30)
    assert not errors and len({r.id for r in results}) == 1 and len(results) == 4
    for blob in img.layers:
        assert registry.blob_gets(blob.digest) == 1
    assert set(service.status(ref).repo_digests) == {f"{registry.host}/t/x@{img.manifest.digest}"}


def test_retag_moves_the_tag(registry, service):
    old, new = make("1"), make("2")
    ref = push(registry, "t/x", "1", old)
    service.pull(ref)
    push(registry, "t/x", "1", new)
    assert service.pull(ref).id == new.id
    moved = service.status(old.id)
    assert moved.repo_tags == () and moved.repo_digests    # still reachable by its digest
    assert service.status(ref).id == new.id


def test_remove_by_one_tag_removes_all_and_collects(registry, service):
    img, other = make("1"), make("2")
    a, b = push(registry, "t/x", "a", img), push(registry, "t/y", "b", img)
    service.pull(a)
    got = service.pull(b)
    service.pull(push(registry, "t/z", "1", other))      # shares the base layer
    assert set(got.repo_tags) == {a, b}
    service.remove(b)
    assert service.status(a) is None and service.status(img.id) is None
    service.remove(a)                                     # idempotent
    service.remove(img.id)
    layers = os.listdir(os.path.join(service.root, "layers"))
    assert sorted(layers) == sorted(d[7:] for d in other.diff_ids)
    blobs = os.listdir(os.path.join(service.root, "blobs", "sha256"))
    assert img.config.digest[7:] not in blobs and other.config.digest[7:] in blobs


def test_held_layers_survive_removal_until_released(registry, service):
    img = make("1")
    got = service.pull(push(registry, "t/x", "1", img))
    dirs = service.hold("ctr-1", got)
    service.remove(got.id)
    assert all(os.path.isdir(d) for d in dirs)
    assert ImageService(root=service.root, hosts_dir=None).store.state.holders   # persisted
    service.release("ctr-1")
    service.release("ctr-1")
    assert not any(os.path.exists(d) for d in dirs)


def test_records_survive_a_restart(registry, service):
    got = service.pull(push(registry, "t/x", "1", make("1")))
    os.makedirs(os.path.join(service.root, "tmp", "half-unpacked"))     # crash leftovers
    open(os.path.join(service.root, "ingest", "partial"), "w").close()
    again = ImageService(root=service.root, hosts_dir=None)
    assert again.status(got.repo_tags[0]) == got and again.list() == [got]
    assert os.listdir(os.path.join(service.root, "tmp")) == []
    assert os.listdir(os.path.join(service.root, "ingest")) == []
    assert again.layer_dirs(got) == service.layer_dirs(got)


def test_restart_drops_images_whose_layers_vanished(registry, service):
    import shutil
    got = service.pull(push(registry, "t/x", "1", make("1")))
    shutil.rmtree(service.layer_dirs(got)[0])
    assert ImageService(root=service.root, hosts_dir=None).list() == []


def test_progress_reports_each_layer(registry, service):
    img = make("1")
    seen: dict[str, tuple[int, int]] = {}
    service.pull(push(registry, "t/x", "1", img),
                 progress=lambda digest, done, total: seen.__setitem__(digest, (done, total)))
    assert seen == {b.digest: (len(b.data), len(b.data)) for b in img.layers}


def test_fs_info(registry, service):
    mount, used, inodes = service.fs_info()
    assert mount == service.root and used == 0 and inodes == 0
    service.pull(push(registry, "t/x", "1", make("1")))
    _, used, inodes = service.fs_info()
    assert used > 0 and inodes >= 4


def test_invalid_reference(service):
    with pytest.raises(CriError) as exc:
        service.pull("Not/A:Valid:Ref")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT


def _wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_containers_volume_holds_are_released_with_it(registry, service):
    """Image volumes hold as ``<container>/volume/<n>``; releasing the container drops them all,
    and only them (``ctr-10`` is another container, not a volume of ``ctr-1``)."""
    vol = service.pull(push(registry, "t/vol", "1", make("vol")))
    other = service.pull(push(registry, "t/other", "1", make("other")))
    vol_dirs = service.hold("ctr-1/volume/0", vol)
    other_dirs = service.hold("ctr-10", other)
    service.remove(vol.id)
    service.remove(other.id)
    assert all(os.path.isdir(d) for d in vol_dirs + other_dirs)
    service.release("ctr-1")
    only_vol = set(vol_dirs) - set(other_dirs)          # both share the base layer
    assert only_vol and not any(os.path.exists(d) for d in only_vol)
    assert all(os.path.isdir(d) for d in other_dirs)
    service.release("ctr-10")
    assert not any(os.path.exists(d) for d in other_dirs)


def test_credentials_keep_their_secrets_out_of_repr():
    from cri.images.auth import Credentials
    creds = Credentials("alice", "s3cret-pw", "refresh-tok", "bearer-tok")
    text = repr(creds) + str(creds)
    assert "alice" in text
    assert not any(secret in text for secret in ("s3cret-pw", "refresh-tok", "bearer-tok"))
