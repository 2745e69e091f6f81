"""Busybox-based test images, built here and pushed to the local registry with skopeo.

The base layer is Debian's static /bin/busybox with every applet linked in /bin, plus:

    /etc/passwd   root (0), podwire (1234, home /home/podwire), nobody (65534)
    /etc/group    root (0), podwire (1234), extra (2345, members: podwire), nogroup (65534)
    /tmp (1777), /root (0700), /home/podwire (owned by 1234), /proc /sys /dev /etc /run /var

An :class:`ImageSpec` adds the image config (USER, ENTRYPOINT, CMD, ENV, STOPSIGNAL,
WORKDIR, labels) and optional extra layers on top.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import subprocess
import tempfile
from typing import Optional

from ocitest import BuiltImage, Tar, image, index, write_layout

BUSYBOX = "/bin/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"podwire:x:1234:1234:podwire test user:/home/podwire:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = b"root:x:0:\npodwire:x:1234:\nextra:x:2345:podwire\nnogroup:x:65534:\n"


@dataclasses.dataclass
class ImageSpec:
    user: Optional[str] = None
    entrypoint: Optional[list] = None
    cmd: Optional[list] = dataclasses.field(default_factory=lambda: ["sh"])
    env: list = dataclasses.field(default_factory=lambda: [PATH_ENV])
    stop_signal: Optional[str] = None
    workdir: Optional[str] = None
    labels: Optional[dict] = None
    layers: list = dataclasses.field(default_factory=list)   # extra uncompressed tars, on top
    arch: str = "amd64"

    def config(self) -> dict:
        cfg = {"User": self.user, "Entrypoint": self.entrypoint, "Cmd": self.cmd, "Env": self.env,
               "StopSignal": self.stop_signal, "WorkingDir": self.workdir, "Labels": self.labels}
        return {k: v for k, v in cfg.items() if v is not None}


@functools.lru_cache(maxsize=1)
def busybox_layer() -> bytes:
    """The base rootfs tar (built once per session)."""
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    tar = Tar()
    for d in ("bin", "etc", "dev", "proc", "sys", "run", "var", "usr", "home"):
        tar.dir(d)
    tar.dir("tmp", mode=0o1777).dir("root", mode=0o700).dir("home/podwire", uid=1234, gid=1234)
    tar.file("bin/busybox", binary, mode=0o755)
    for applet in applets:
        if applet != "busybox":
            tar.symlink(f"bin/{applet}", "busybox")
    tar.file("etc/passwd", PASSWD).file("etc/group", GROUP)
    return tar.bytes()


def build(spec: ImageSpec, docker: bool = False) -> BuiltImage:
    return image([busybox_layer(), *spec.layers], spec.config(), arch=spec.arch, docker=docker)


class ImagePusher:
    """Pushes built images to a registry with skopeo (from OCI layouts in ``workdir``)."""

    def __init__(self, registry_host: str, workdir: str) -> None:
        self.host = registry_host
        self.workdir = workdir
        # Our own trust policy: a node's /etc/containers/policy.json may be absent or strict.
        self.policy = os.path.join(workdir, "policy.json")
        with open(self.policy, "w") as f:
            f.write('{"default": [{"type": "insecureAcceptAnything"}]}')

    def push(self, repo_tag: str, spec: Optional[ImageSpec] = None, fmt: Optional[str] = None) -> str:
        """Push ``spec`` as ``<host>/<repo_tag>``; ``fmt="v2s2"`` converts it to Docker
        schema 2 on the way.  Returns the reference."""
        img = build(spec or ImageSpec())
        return self._copy(repo_tag, img.manifest, img.blobs, fmt=fmt)

    def push_index(self, repo_tag: str, specs: dict) -> str:
        """Push a multi-arch index of ``{arch: ImageSpec}``."""
        built = [(build(dataclasses.replace(spec, arch=arch)), arch) for arch, spec in specs.items()]
        top = index(built)
        blobs = [b for img, _ in built for b in (img.manifest, *img.blobs)]
        return self._copy(repo_tag, top, blobs, all_images=True)

    def digest(self, ref: str) -> str:
        """The manifest digest the registry serves for ``ref`` (as a pull resolves it)."""
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                              f"docker://{ref}"], check=True, capture_output=True).stdout
        return "sha256:" + hashlib.sha256(out).hexdigest()

    def _copy(self, repo_tag: str, top, blobs, fmt=None, all_images=False) -> str:
        ref = f"{self.host}/{repo_tag}"
        layout = tempfile.mkdtemp(dir=self.workdir, prefix="layout-")
        src = write_layout(layout, "t", top, blobs)
        cmd = ["skopeo", "--policy", self.policy, "copy", "--quiet", "--dest-tls-verify=false"]
        cmd += ["--format", fmt] if fmt else []
        cmd += ["--all"] if all_images else []
        subprocess.run(cmd + [src, f"docker://{ref}"], check=True, capture_output=True,
                       env={**os.environ, "HOME": self.workdir})
        return ref
