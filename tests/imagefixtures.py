"""Fixtures shared by all CRI e2e tests: a real registry with test images, its auth
variants, and an ImageService on a private root.  Loaded as a pytest plugin by
tests/conftest.py; the shim's own fixtures are in tests/e2e/crifixtures.py.

Session-scoped, started on first use and always stopped at the end:

  local_registry       LocalRegistry: docker-registry on 127.0.0.1:<port>, no auth
                       (.host, .url, .requests(), .blob_gets(digest))
  image_pusher         ImagePusher: .push("podwire-test/x:1", ImageSpec(...), fmt=None) -> ref,
                       .push_index(repo_tag, {arch: ImageSpec}) -> ref, .digest(ref)
  test_images          TestImages: refs of the standard images (below) and their digests
  token_registry       AuthRegistry: the same images behind Bearer tokens (user/password)
  basic_auth_registry  AuthRegistry: the same images behind htpasswd Basic auth

Per test:

  image_service        ImageService with a temp root and a temp hosts dir
                       (``image_service.hosts.config_dir``); removed afterwards
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import pytest

from localregistry import REGISTRY_BIN, LocalRegistry, TokenServer, htpasswd_auth
from ocitest import Tar
from testimages import ImagePusher, ImageSpec, PATH_ENV

TOOLS = (REGISTRY_BIN, "/usr/bin/skopeo")
IS_ROOT = os.geteuid() == 0


@dataclasses.dataclass(frozen=True)
class TestImages:
    host: str
    busybox: str        # busybox rootfs, root user, CMD ["sh"]
    user_named: str     # USER podwire (uid 1234 in /etc/passwd)
    user_numeric: str   # USER 1234:1234
    configured: str     # ENTRYPOINT ["/bin/sh","-c"] CMD ["echo configured"], ENV PODWIRE_TEST=1,
                        # STOPSIGNAL SIGUSR1, WORKDIR /home/podwire, label io.podwire.test
    layered: str        # + 2 layers: /opt/gone whited out, /var/cache opaque, /etc/motd replaced
    multiarch: str      # an OCI index: linux/arm64 and linux/amd64
    schema2: str        # busybox as Docker schema 2 (skopeo --format v2s2)
    volume: str         # busybox + /data (hello.txt, sub/deep.txt) and /links: in -> /data,
                        # rel -> ../data, up -> ../../.. (climbs out), loop -> loop (image volumes)
    digests: dict       # ref -> the manifest (or index) digest the registry serves

    __test__ = False    # not a test class, despite the name

    def by_digest(self, ref: str) -> str:
        return f"{ref.rsplit(':', 1)[0]}@{self.digests[ref]}"


@dataclasses.dataclass(frozen=True)
class AuthRegistry:
    registry: LocalRegistry
    user: str
    password: str
    token_server: TokenServer = None

    @property
    def host(self) -> str:
        return self.registry.host

    def ref(self, ref: str) -> str:
        """``ref`` of the open registry, on this one."""
        return self.host + "/" + ref.split("/", 1)[1]


@pytest.fixture(scope="session")
def registry_workdir():
    if not IS_ROOT or not all(os.path.exists(t) for t in TOOLS):
        pytest.skip("needs root, docker-registry and skopeo")
    path = tempfile.mkdtemp(prefix="podwire-registry-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def local_registry(registry_workdir):
    reg = LocalRegistry(os.path.join(registry_workdir, "open"),
                        os.path.join(registry_workdir, "storage")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def image_pusher(local_registry, registry_workdir):
    work = os.path.join(registry_workdir, "layouts")
    os.makedirs(work)
    return ImagePusher(local_registry.host, work)


@pytest.fixture(scope="session")
def test_images(image_pusher):
    p = image_pusher
    refs = dict(
        busybox=p.push("podwire-test/busybox:1.0"),
        user_named=p.push("podwire-test/busybox-user:1.0", ImageSpec(user="podwire")),
        user_numeric=p.push("podwire-test/busybox-uid:1.0", ImageSpec(user="1234:1234")),
        configured=p.push("podwire-test/busybox-configured:1.0", ImageSpec(
            entrypoint=["/bin/sh", "-c"], cmd=["echo configured"], env=[PATH_ENV, "PODWIRE_TEST=1"],
            stop_signal="SIGUSR1", workdir="/home/podwire", labels={"io.podwire.test": "configured"})),
        layered=p.push("podwire-test/layered:1.0", ImageSpec(layers=_whiteout_layers())),
        multiarch=p.push_index("podwire-test/multiarch:1.0", {
            "arm64": ImageSpec(labels={"arch": "arm64"}),
            "amd64": ImageSpec(labels={"arch": "amd64"})}),
        schema2=p.push("podwire-test/busybox-v2s2:1.0", fmt="v2s2"),
        volume=p.push("podwire-test/volume-data:1.0", ImageSpec(layers=[_volume_layer()])))
    return TestImages(host=p.host, digests={r: p.digest(r) for r in refs.values()}, **refs)


@pytest.fixture(scope="session")
def token_registry(local_registry, registry_workdir, test_images):
    work = os.path.join(registry_workdir, "token")
    tokens = TokenServer(work, "alice", "s3cret-token").start()
    reg = LocalRegistry(work, local_registry.storage, auth=tokens.registry_auth()).start()
    yield AuthRegistry(reg, tokens.user, tokens.password, tokens)
    reg.stop()
    tokens.stop()


@pytest.fixture(scope="session")
def basic_auth_registry(local_registry, registry_workdir, test_images):
    work = os.path.join(registry_workdir, "basic")
    reg = LocalRegistry(work, local_registry.storage,
                        auth=htpasswd_auth(work, "bob", "s3cret-basic")).start()
    yield AuthRegistry(reg, "bob", "s3cret-basic")
    reg.stop()


@pytest.fixture
def image_service(tmp_path):
    from cri.images.service import ImageService
    root = tempfile.mkdtemp(prefix="podwire-images-")
    hosts = tmp_path / "certs.d"
    hosts.mkdir()
    yield ImageService(root=root, hosts_dir=str(hosts))
    shutil.rmtree(root, ignore_errors=True)


def _volume_layer() -> bytes:
    return (Tar().dir("data").file("data/hello.txt", b"hello from an image\n").dir("data/sub")
            .file("data/sub/deep.txt", b"deep\n").dir("links").symlink("links/in", "/data")
            .symlink("links/rel", "../data").symlink("links/up", "../../..")
            .symlink("links/loop", "loop").bytes())


def _whiteout_layers() -> list:
    lower = (Tar().dir("etc").file("etc/motd", b"lower motd\n").dir("var").dir("var/cache")
             .file("var/cache/old", b"old").dir("opt").file("opt/gone", b"x").bytes())
    upper = (Tar().dir("etc").file("etc/motd", b"upper motd\n").dir("opt").whiteout("opt/gone")
             .dir("var").dir("var/cache").opaque("var/cache").file("var/cache/new", b"new").bytes())
    return [lower, upper]
