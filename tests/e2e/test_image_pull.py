"""ImageService and the image RPC handlers against a real docker-registry."""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import types
import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2 as api

from cri.errors import CriError
from cri.images.auth import Credentials
from cri.rpc import image_fsinfo, image_list, image_pull, image_remove, image_status
from cri.server.metrics import CriMetrics
from ocitest import Tar
from testimages import ImageSpec

# Not `from conftest import needs_root`: another conftest.py below tests/ may shadow it.
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, mount)")


def spec(image: str) -> api.ImageSpec:
    return api.ImageSpec(image=image)


def test_pull_by_tag(image_service, test_images):
    ref = test_images.busybox
    img = image_service.pull(ref)
    assert img.id.startswith("sha256:") and img.repo_tags == (ref,)
    assert img.repo_digests == (test_images.by_digest(ref),)
    assert img.config["Cmd"] == ["sh"] and img.size > 500_000
    assert image_service.status(ref) == img and image_service.list() == [img]
    top = image_service.layer_dirs(img)[0]
    assert os.path.islink(os.path.join(top, "bin/sh")) and os.access(os.path.join(top, "bin/busybox"), os.X_OK)
    assert os.stat(os.path.join(top, "home/podwire")).st_uid == 1234


def test_pull_by_digest(image_service, test_images):
    ref = test_images.by_digest(test_images.busybox)
    img = image_service.pull(ref)
    assert img.repo_digests == (ref,) and img.repo_tags == ()
    assert image_service.status(ref) == img


def test_pull_without_tag_means_latest(image_service, image_pusher):
    ref = image_pusher.push("podwire-test/notag:latest")
    img = image_service.pull(ref.rsplit(":", 1)[0])
    assert img.repo_tags == (ref,)


def test_index_resolves_to_linux_amd64(image_service, test_images):
    img = image_service.pull(test_images.multiarch)
    assert img.architecture == "amd64" and img.config["Labels"] == {"arch": "amd64"}
    assert img.repo_digests == (test_images.by_digest(test_images.multiarch),)


def test_docker_schema2(image_service, test_images):
    img = image_service.pull(test_images.schema2)
    assert img.repo_tags == (test_images.schema2,) and img.config["Cmd"] == ["sh"]


def test_image_user_and_config(image_service, test_images):
    named = image_service.pull(test_images.user_named)
    assert (named.username, named.uid) == ("podwire", None)
    numeric = image_service.pull(test_images.user_numeric)
    assert (numeric.username, numeric.uid) == ("", 1234)
    cfg = image_service.pull(test_images.configured).config
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["echo configured"]
    assert "PODWIRE_TEST=1" in cfg["Env"] and cfg["StopSignal"] == "SIGUSR1"
    assert cfg["WorkingDir"] == "/home/podwire" and cfg["Labels"] == {"io.podwire.test": "configured"}


def test_concurrent_pulls_download_each_blob_once(image_service, image_pusher, local_registry):
    ref = image_pusher.push(f"podwire-test/concurrent:{uuid.uuid4().hex[:8]}",
                            ImageSpec(layers=[Tar().file("unique", uuid.uuid4().bytes).bytes()]))
    manifest = image_pusher.digest(ref)
    layer_digests = _layer_digests(ref)
    before = {d: local_registry.blob_gets(d) for d in layer_digests}
    results, errors = [], []

    def pull(name):
        try:
            results.append(image_service.pull(name))
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
    names = [ref] * 4 + [f"{ref.rsplit(':', 1)[0]}@{manifest}"] * 2
    threads = [threading.Thread(target=pull, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len({r.id for r in results}) == 1
    for d in layer_digests:
        assert local_registry.blob_gets(d) - before[d] == 1, d


def test_bearer_token_auth(image_service, token_registry, test_images):
    ref = token_registry.ref(test_images.busybox)
    with pytest.raises(CriError) as exc:
        image_service.pull(ref)
    assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(CriError):
        image_service.pull(ref, auth=Credentials(token_registry.user, "wrong"))
    req = api.PullImageRequest(image=spec(ref), auth=api.AuthConfig(
        username=token_registry.user, password=token_registry.password))
    resp = image_pull.pull_image(types.SimpleNamespace(images=image_service, metrics=CriMetrics()), req)
    assert image_service.status(ref).id == resp.image_ref
    last = token_registry.token_server.requests[-1]
    assert last["service"] == "podwire-test" and last["scope"] == "repository:podwire-test/busybox:pull"


def test_basic_auth(image_service, basic_auth_registry, test_images):
    ref = basic_auth_registry.ref(test_images.user_named)
    with pytest.raises(CriError) as exc:
        image_service.pull(ref)
    assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
    img = image_service.pull(ref, auth=Credentials(basic_auth_registry.user, basic_auth_registry.password))
    assert img.username == "podwire"


@pytest.mark.parametrize("upstream, ref, repo", [
    ("registry.k8s.io", "registry.k8s.io/podwire-test/busybox:1.0", None),
    ("docker.io", "pwtest:1.0", "library/pwtest:1.0"),       # docker.io/library/pwtest
])
def test_mirror_from_hosts_toml(image_service, image_pusher, test_images, upstream, ref, repo):
    if repo:
        image_pusher.push(repo)
    hosts = os.path.join(image_service.hosts.config_dir, upstream)
    os.makedirs(hosts)
    with open(os.path.join(hosts, "hosts.toml"), "w") as f:
        f.write(f'[host."http://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n'  # down
                f'[host."http://{test_images.host}"]\n  capabilities = ["pull", "resolve"]\n')
    img = image_service.pull(ref)
    assert image_service.status(ref) == img
    assert img.repo_tags[0].startswith(upstream + "/")


def test_remove_by_one_tag_removes_all(image_service, image_pusher):
    a = image_pusher.push("podwire-test/tags:a")
    b = image_pusher.push("podwire-test/tags:b")
    image_service.pull(a)
    img = image_service.pull(b)
    assert set(img.repo_tags) == {a, b}
    svc = types.SimpleNamespace(images=image_service, containers=types.SimpleNamespace(list=list))
    image_remove.remove_image(svc, api.RemoveImageRequest(image=spec(a)))
    for name in (a, b, img.id):
        assert not image_status.image_status(svc, api.ImageStatusRequest(image=spec(name))).HasField("image")
    image_remove.remove_image(svc, api.RemoveImageRequest(image=spec(a)))      # idempotent
    assert os.listdir(os.path.join(image_service.root, "layers")) == []


def test_status_list_fsinfo_handlers(image_service, test_images):
    svc = types.SimpleNamespace(images=image_service, metrics=CriMetrics())
    absent = image_status.image_status(svc, api.ImageStatusRequest(image=spec(test_images.busybox)))
    assert not absent.HasField("image") and not absent.info
    image_pull.pull_image(svc, api.PullImageRequest(image=spec(test_images.user_numeric)))
    st = image_status.image_status(svc, api.ImageStatusRequest(image=spec(test_images.user_numeric),
                                                               verbose=True))
    assert st.image.uid.value == 1234 and st.image.username == ""
    assert '"User": "1234:1234"' in st.info["info"]
    listed = image_list.list_images(svc, api.ListImagesRequest())
    assert [i.id for i in listed.images] == [st.image.id]
    filtered = image_list.list_images(svc, api.ListImagesRequest(
        filter=api.ImageFilter(image=spec("podwire-test/absent:1"))))
    assert list(filtered.images) == []
    fs = image_fsinfo.image_fs_info(svc, api.ImageFsInfoRequest()).image_filesystems[0]
    assert fs.fs_id.mountpoint == image_service.root
    assert fs.used_bytes.value > 1_000_000 and fs.inodes_used.value > 200


def test_layers_stack_in_overlayfs(image_service, test_images):
    img = image_service.pull(test_images.layered)
    target = tempfile.mkdtemp(prefix="podwire-overlay-")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=" + ":".join(image_service.layer_dirs(img)), target], check=True)
    try:
        assert open(os.path.join(target, "etc/motd")).read() == "upper motd\n"
        assert os.listdir(os.path.join(target, "var/cache")) == ["new"]     # opaque
        assert os.listdir(os.path.join(target, "opt")) == []                # whited out
        assert os.path.exists(os.path.join(target, "bin/busybox"))
    finally:
        subprocess.run(["umount", target], check=True)
        os.rmdir(target)


def test_hostile_layer_cannot_escape(image_service, image_pusher):
    outside = f"/tmp/podwire-escape-{uuid.uuid4().hex[:8]}"
    hostile = (Tar().symlink("escape", outside).file("escape/pwned", b"x")
               .file(f"../../../..{outside}-dotdot", b"x").file(f"{outside}-abs", b"x")
               .symlink("up", "../../../../../../tmp").hardlink("hl", "/etc/shadow", mode=0o600)
               .bytes())
    ref = image_pusher.push("podwire-test/hostile:1", ImageSpec(layers=[hostile]))
    with pytest.raises(CriError) as exc:
        image_service.pull(ref)      # the hardlink to a file outside the layer is refused
    assert exc.value.code == grpc.StatusCode.DATA_LOSS
    benign = (Tar().symlink("escape", outside).file("escape/pwned", b"x")
              .file(f"../../../..{outside}-dotdot", b"x").bytes())
    img = image_service.pull(image_pusher.push("podwire-test/hostile:2", ImageSpec(layers=[benign])))
    top = image_service.layer_dirs(img)[0]
    assert os.path.exists(os.path.join(top, outside.lstrip("/"), "pwned"))
    for path in (outside, f"{outside}-dotdot", f"{outside}-abs"):
        assert not os.path.lexists(path)


def _layer_digests(ref: str) -> list[str]:
    import json
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                         check=True, capture_output=True).stdout
    return [layer["digest"] for layer in json.loads(raw)["layers"]]
